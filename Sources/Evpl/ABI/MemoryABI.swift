import CEvpl

// ABI area: memory

/// Allocate `length` bytes from the loop's buffers as 1..`max_iovecs` iovecs
/// (each aligned to `alignment`; 0 = none), written to `r_iovec`. Each
/// iovec holds one reference; release it with evpl_iovec_release. Returns
/// the number of iovecs, or -1 when `max_iovecs` cannot cover `length`.
/// Any length up to buffer_size fits in one iovec. Loop thread only.
@_cdecl("evpl_iovec_alloc")
public func evpl_iovec_alloc(_ evpl: LoopHandle?, _ length: CUnsignedInt, _ alignment: CUnsignedInt,
                             _ max_iovecs: CUnsignedInt, _ r_iovec: UnsafeMutablePointer<evpl_iovec>?) -> CInt {
    guard let loop = Unmanaged<EventLoop>.borrow(evpl), let r_iovec, max_iovecs > 0 else {
        Log.misuse("evpl_iovec_alloc", "NULL loop or iovec array, or max_iovecs 0")
        return -1
    }
    return CInt(loop.pool.allocate(Int(length), alignment: Int(alignment), maxIovecs: Int(max_iovecs), into: r_iovec))
}

/// Reserve `length` bytes like evpl_iovec_alloc without taking them: write
/// into the iovecs, trim their lengths to what was written, then call
/// evpl_iovec_commit, which takes exactly that much. Returns the number of
/// iovecs or -1. No other allocation on this loop may come in between.
@_cdecl("evpl_iovec_reserve")
public func evpl_iovec_reserve(_ evpl: LoopHandle?, _ length: CUnsignedInt, _ alignment: CUnsignedInt,
                               _ max_vec: CUnsignedInt, _ r_iovec: UnsafeMutablePointer<evpl_iovec>?) -> CInt {
    guard let loop = Unmanaged<EventLoop>.borrow(evpl), let r_iovec, max_vec > 0 else {
        Log.misuse("evpl_iovec_reserve", "NULL loop or iovec array, or max_vec 0")
        return -1
    }
    return CInt(loop.pool.reserve(Int(length), alignment: Int(alignment), maxIovecs: Int(max_vec), into: r_iovec))
}

/// Take the reserved iovecs (lengths trimmed to what was used); each then
/// holds one reference like an evpl_iovec_alloc result.
@_cdecl("evpl_iovec_commit")
public func evpl_iovec_commit(_ evpl: LoopHandle?, _ alignment: CUnsignedInt,
                              _ iovecs: UnsafeMutablePointer<evpl_iovec>?, _ niovs: CInt) {
    guard let loop = Unmanaged<EventLoop>.borrow(evpl), let iovecs, niovs >= 0 else {
        return Log.misuse("evpl_iovec_commit", "NULL loop or iovecs, or negative count")
    }
    _ = alignment
    loop.pool.commitReserved(iovecs, Int(niovs))
}

/// Drop one reference to the iovec's buffer; at zero the buffer returns to
/// its loop's pool (any thread may release).
@_cdecl("evpl_iovec_release")
public func evpl_iovec_release(_ iovec: UnsafeMutablePointer<evpl_iovec>?) {
    guard let iovec else { return Log.misuse("evpl_iovec_release", "NULL iovec") }
    Iovec.release(iovec)
}

/// Add one reference to the iovec's buffer.
@_cdecl("evpl_iovec_addref")
public func evpl_iovec_addref(_ iovec: UnsafeMutablePointer<evpl_iovec>?) {
    guard let iovec else { return Log.misuse("evpl_iovec_addref", "NULL iovec") }
    Iovec.addref(iovec)
}

/// A new slab of slab_size bytes (reserved lazily), owned by the caller and
/// never freed; NULL if the OS refuses.
@_cdecl("evpl_slab_alloc")
public func evpl_slab_alloc() -> UnsafeMutableRawPointer? {
    _ = Library.config
    return SlabAllocator.shared.allocateSlab()
}
