import CEvpl

// ABI area: block I/O

/// Open a file or block device (`uri`: a path, optionally "file://path") for
/// asynchronous I/O with `protocol`. EVPL_BLOCK_PROTOCOL_IO_URING works where
/// io_uring does; EVPL_BLOCK_PROTOCOL_VFIO is not built. Returns NULL with a
/// logged reason on failure.
@_cdecl("evpl_block_open_device")
public func evpl_block_open_device(_ protocol: evpl_block_protocol_id, _ uri: UnsafePointer<CChar>?) -> BlockDeviceHandle? {
    guard let uri else {
        Log.misuse("evpl_block_open_device", "NULL uri")
        return nil
    }
    guard let dev = BlockDevice.open(`protocol`, uri: String(cString: uri)) else { return nil }
    return Unmanaged.passRetained(dev).handle
}

/// Close a device; its descriptors close once every queue on it is closed.
@_cdecl("evpl_block_close_device")
public func evpl_block_close_device(_ blockdev: BlockDeviceHandle?) {
    guard let blockdev, let dev = Unmanaged<BlockDevice>.borrow(blockdev) else {
        return Log.misuse("evpl_block_close_device", "NULL device")
    }
    dev.close()
    Unmanaged<BlockDevice>.fromOpaque(UnsafeRawPointer(blockdev)).release()
}

/// The device's size in bytes (0 for NULL).
@_cdecl("evpl_block_size")
public func evpl_block_size(_ blockdev: BlockDeviceHandle?) -> UInt64 {
    Unmanaged<BlockDevice>.borrow(blockdev)?.size ?? 0
}

/// The largest single request in bytes (0 for NULL).
@_cdecl("evpl_block_max_request_size")
public func evpl_block_max_request_size(_ blockdev: BlockDeviceHandle?) -> UInt64 {
    Unmanaged<BlockDevice>.borrow(blockdev)?.maxRequestSize ?? 0
}

/// Open this loop's queue on a device (its I/O goes through the loop's
/// io_uring; callbacks run on the loop). NULL with a logged reason on failure.
@_cdecl("evpl_block_open_queue")
public func evpl_block_open_queue(_ evpl: LoopHandle?, _ blockdev: BlockDeviceHandle?) -> BlockQueueHandle? {
    guard let loop = Unmanaged<EventLoop>.borrow(evpl), let dev = Unmanaged<BlockDevice>.borrow(blockdev),
          !dev.isClosed else {
        Log.misuse("evpl_block_open_queue", "NULL loop, or a NULL or closed device")
        return nil
    }
    guard IoUringTCP.ring(loop) != nil else { return nil }
    return Unmanaged.passRetained(BlockQueue(loop: loop, device: dev)).handle
}

/// Close a queue. Requests in flight still complete; requests made on it
/// afterwards fail through their callback with ESHUTDOWN until the loop is destroyed.
@_cdecl("evpl_block_close_queue")
public func evpl_block_close_queue(_ evpl: LoopHandle?, _ queue: BlockQueueHandle?) {
    guard Unmanaged<EventLoop>.borrow(evpl) != nil, let q = Unmanaged<BlockQueue>.borrow(queue) else {
        return Log.misuse("evpl_block_close_queue", "NULL loop or queue")
    }
    q.close()
}

/// Read `niov` iovecs' worth of bytes at `offset`; `callback(evpl, status,
/// private_data)` runs on the loop with status 0 or a positive errno
/// (EINVAL past the end of the device, EIO on a short read).
@_cdecl("evpl_block_read")
public func evpl_block_read(_ evpl: LoopHandle?, _ queue: BlockQueueHandle?, _ iov: UnsafeMutablePointer<evpl_iovec>?,
                            _ niov: CInt, _ offset: UInt64, _ callback: evpl_block_callback_t?,
                            _ private_data: UnsafeMutableRawPointer?) {
    guard Unmanaged<EventLoop>.borrow(evpl) != nil, let q = Unmanaged<BlockQueue>.borrow(queue), iov != nil || niov == 0 else {
        return Log.misuse("evpl_block_read", "NULL loop, queue or iovecs")
    }
    q.submit(.read, UnsafePointer(iov), Int(niov), offset: offset, callback: callback, privateData: private_data)
}

/// Write `niov` iovecs at `offset` (durably before the callback when `sync`
/// is nonzero); the callback gets 0 or a positive errno.
@_cdecl("evpl_block_write")
public func evpl_block_write(_ evpl: LoopHandle?, _ queue: BlockQueueHandle?, _ iov: UnsafePointer<evpl_iovec>?,
                             _ niov: CInt, _ offset: UInt64, _ sync: CInt, _ callback: evpl_block_callback_t?,
                             _ private_data: UnsafeMutableRawPointer?) {
    guard Unmanaged<EventLoop>.borrow(evpl) != nil, let q = Unmanaged<BlockQueue>.borrow(queue), iov != nil || niov == 0 else {
        return Log.misuse("evpl_block_write", "NULL loop, queue or iovecs")
    }
    q.submit(.write(sync: sync != 0), iov, Int(niov), offset: offset, callback: callback, privateData: private_data)
}

/// Make every completed write durable (fsync); the callback gets 0 or a positive errno.
@_cdecl("evpl_block_flush")
public func evpl_block_flush(_ evpl: LoopHandle?, _ queue: BlockQueueHandle?, _ callback: evpl_block_callback_t?,
                             _ private_data: UnsafeMutableRawPointer?) {
    guard Unmanaged<EventLoop>.borrow(evpl) != nil, let q = Unmanaged<BlockQueue>.borrow(queue) else {
        return Log.misuse("evpl_block_flush", "NULL loop or queue")
    }
    q.submit(.flush, nil, 0, offset: 0, callback: callback, privateData: private_data)
}
