import CEvpl
import CEvplUring
import Glibc

/// A loop's queue on a block device (`struct evpl_block_queue`): requests go
/// through the loop's io_uring and their callbacks run on the loop.
final class BlockQueue {
    unowned(unsafe) let loop: EventLoop
    let device: BlockDevice
    private(set) var closed = false
    /// Finished requests kept for reuse, so steady I/O allocates nothing.
    private var free: [BlockRequest] = []

    init(loop: EventLoop, device: BlockDevice) {
        self.loop = loop
        self.device = device
        device.queueOpened()
    }

    enum Operation {
        case read, write(sync: Bool), flush
    }

    /// Queues one request; argument errors (closed queue, bad offset, too
    /// many iovecs) complete through the callback too, on the loop, never
    /// from inside this call.
    func submit(_ op: Operation, _ iov: UnsafePointer<evpl_iovec>?, _ niov: Int, offset: UInt64,
                callback: evpl_block_callback_t?, privateData: UnsafeMutableRawPointer?) {
        let req = free.popLast() ?? BlockRequest(capacity: Int(loop.global.maxNumIovec))
        req.queue = self
        req.callback = callback
        req.privateData = privateData
        req.error = 0
        req.expected = 0
        let uring = loop.uring.unsafelyUnwrapped
        let sqe = uring.sqe()
        // The kernel holds the request until its completion: +1 until `complete`.
        let token = Uring.token(.block, Unmanaged.passRetained(req).toOpaque())
        loop.blockInflight += 1
        var length = 0
        var aligned = offset % UInt64(BlockDevice.directAlignment) == 0
        if let iov {
            for i in 0..<min(niov, req.capacity) {
                let v = iov[i]
                req.iov[i] = iovec(iov_base: v.data, iov_len: Int(v.length))
                length += Int(v.length)
                aligned = aligned && Int(bitPattern: v.data) % BlockDevice.directAlignment == 0
                    && Int(v.length) % BlockDevice.directAlignment == 0
            }
        }
        req.expected = length
        if closed {
            req.error = ESHUTDOWN
        } else if niov > req.capacity || niov < 0 {
            req.error = EINVAL
        } else if case .flush = op {
        } else if length == 0 || offset > device.size || UInt64(length) > device.size - offset
                    || UInt64(length) > device.maxRequestSize {
            req.error = EINVAL
        }
        if req.error != 0 {
            cevpl_uring_prep_nop(sqe, token)
            return
        }
        let fd = aligned && device.directFd >= 0 ? device.directFd : device.fd
        switch op {
        case .read:
            cevpl_uring_prep_readv(sqe, fd, req.iov, UInt32(niov), offset, token)
        case .write(let sync):
            cevpl_uring_prep_writev(sqe, fd, req.iov, UInt32(niov), offset, sync ? CEVPL_RWF_DSYNC : 0, token)
        case .flush:
            req.expected = -1
            cevpl_uring_prep_fsync(sqe, device.fd, token)
        }
    }

    func recycle(_ req: BlockRequest) {
        req.queue = nil
        free.append(req)
    }

    /// evpl_block_close_queue: requests in flight still complete (their
    /// callbacks run); later requests on this queue fail with ESHUTDOWN.
    func close() {
        guard !closed else { return }
        closed = true
        device.queueClosed()
        // The handle stays valid (later requests fail with ESHUTDOWN) until
        // the loop goes away: the loop takes over the handle's reference.
        loop.closedBlockQueues.append(Unmanaged.passUnretained(self))
    }
}

/// One block request in flight; its iovec array must outlive the submission.
final class BlockRequest {
    let iov: UnsafeMutablePointer<iovec>
    let capacity: Int
    var queue: BlockQueue?
    var callback: evpl_block_callback_t?
    var privateData: UnsafeMutableRawPointer?
    /// An argument error decided at submission (delivered through a NOP).
    var error: CInt = 0
    /// Bytes a read or write must move; -1 for a flush.
    var expected = 0

    init(capacity: Int) {
        self.capacity = max(capacity, 1)
        iov = .allocate(capacity: self.capacity)
    }

    deinit { iov.deallocate() }

    /// A completion from the loop's ring: status 0, or a positive errno
    /// (EIO for a short transfer).
    static func complete(_ object: UnsafeMutableRawPointer, _ res: Int32) {
        let req = Unmanaged<BlockRequest>.fromOpaque(object).takeRetainedValue()
        guard let queue = req.queue else { return }
        var status: CInt = req.error
        if status == 0 {
            if res < 0 {
                status = -res
            } else if req.expected >= 0 && Int(res) != req.expected {
                status = EIO
            }
        }
        let loop = queue.loop
        loop.blockInflight -= 1
        let callback = req.callback
        let priv = req.privateData
        queue.recycle(req)
        callback?(loop.handle, status, priv)
    }
}
