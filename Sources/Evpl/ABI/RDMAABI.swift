import CEvpl
import Glibc

// ABI area: RDMA one-sided operations (T3)
//
// They run on RC binds (STREAM_RDMACM_RC, DATAGRAM_RDMACM_RC); on any other
// bind the callback gets ENOTSUP.  Callbacks run on the bind's loop: from the
// loop after the operation completed, or from inside the call when it is refused.

/// The remote key and address under which the peer of `bind` can read and
/// write `iovec` (memory from evpl_iovec_alloc). On a bind without RDMA
/// both are set to 0 and one line is logged.
@_cdecl("evpl_rdma_get_address")
public func evpl_rdma_get_address(_ evpl: LoopHandle?, _ bind: BindHandle?, _ iovec: UnsafeMutablePointer<evpl_iovec>?,
                                  _ r_key: UnsafeMutablePointer<UInt32>?, _ r_address: UnsafeMutablePointer<UInt64>?) {
    r_key?.pointee = 0
    r_address?.pointee = 0
    guard evpl != nil, let b = Unmanaged<Bind>.borrow(bind), let iovec, b.state != .free else {
        return Log.misuse("evpl_rdma_get_address", "NULL loop, bind or iovec, or a closed bind")
    }
    guard let (key, address) = b.rdmaAddress(iovec) else {
        return Log.error("rdma", "evpl_rdma_get_address: not an RDMA RC bind, or memory not from evpl_iovec_alloc")
    }
    r_key?.pointee = key
    r_address?.pointee = address
}

/// Read `remote_key`/`remote_address` of the peer into `iov` (niov entries,
/// at most rdmacm_max_sge); `callback(status, private_data)` follows from
/// the loop with 0 or a positive errno.
@_cdecl("evpl_rdma_read")
public func evpl_rdma_read(_ evpl: LoopHandle?, _ bind: BindHandle?, _ remote_key: UInt32, _ remote_address: UInt64,
                           _ iov: UnsafeMutablePointer<evpl_iovec>?, _ niov: CInt,
                           _ callback: RdmaCallback?,
                           _ private_data: UnsafeMutableRawPointer?) {
    oneSided("evpl_rdma_read", evpl, bind, write: false, remote_key, remote_address, iov, niov, 0, callback, private_data)
}

/// Write `iov` (niov entries) to `remote_key`/`remote_address` of the peer.
/// With EVPL_RDMA_FLAG_TAKE_REF the library takes over the caller's
/// references; otherwise it holds its own until the write completed.
@_cdecl("evpl_rdma_write")
public func evpl_rdma_write(_ evpl: LoopHandle?, _ bind: BindHandle?, _ remote_key: UInt32, _ remote_address: UInt64,
                            _ iov: UnsafeMutablePointer<evpl_iovec>?, _ niov: CInt, _ flags: CUnsignedInt,
                            _ callback: RdmaCallback?,
                            _ private_data: UnsafeMutableRawPointer?) {
    oneSided("evpl_rdma_write", evpl, bind, write: true, remote_key, remote_address, iov, niov, flags, callback, private_data)
}

private func oneSided(_ function: StaticString, _ evpl: LoopHandle?, _ bind: BindHandle?, write: Bool,
                      _ key: UInt32, _ address: UInt64, _ iov: UnsafeMutablePointer<evpl_iovec>?, _ niov: CInt,
                      _ flags: CUnsignedInt, _ callback: RDMARequest.Callback?, _ privateData: UnsafeMutableRawPointer?) {
    let takeRef = flags & CUnsignedInt(EVPL_RDMA_FLAG_TAKE_REF) != 0
    guard evpl != nil, let b = Unmanaged<Bind>.borrow(bind), b.state != .free, let iov, niov > 0 else {
        Log.misuse(function, "NULL loop, bind or iovecs, niov < 1, or a closed bind")
        if takeRef, let iov, niov > 0 { for i in 0..<Int(niov) { Iovec.release(iov + i) } }
        callback?(EINVAL, privateData)
        return
    }
    b.rdmaOneSided(write: write, remoteKey: key, remoteAddress: address, iov, Int(niov), takeRef: takeRef,
                   callback: callback, privateData: privateData)
}
