import CEvpl
import Glibc
import Synchronization

/// One I/O buffer cut from a slab.  Iovecs point into it and each holds one
/// reference; the pool that hands out space from it holds one more while it
/// is the pool's current buffer.  At zero the buffer goes back to its pool,
/// from whichever thread dropped the last reference.
///
/// `evpl_iovec.private_data` is `Unmanaged<Buffer>.toOpaque()`; buffers live
/// as long as the process (the slab allocator keeps them), so that pointer is
/// always valid.
final class Buffer {
    let data: UnsafeMutableRawPointer
    let size: Int
    /// Bump cursor: bytes handed out so far.  Owner thread only.
    @exclusivity(unchecked) var used = 0
    let refs = Atomic<Int>(0)
    /// The pool this buffer returns to; nil while it sits in the global free list.
    @exclusivity(unchecked) var pool: Unmanaged<BufferPool>?
    /// Intrusive link while on a free list.
    @exclusivity(unchecked) var nextFree: Unmanaged<Buffer>?
    unowned(unsafe) let slab: Slab

    init(data: UnsafeMutableRawPointer, size: Int, slab: Slab) {
        self.data = data
        self.size = size
        self.slab = slab
    }

    @inline(__always)
    var opaque: UnsafeMutableRawPointer { Unmanaged.passUnretained(self).toOpaque() }

    /// The buffer an iovec points into.  Valid because private_data is only
    /// ever set by the engine, to a Buffer that lives forever.
    @inline(__always)
    static func of(_ iovec: UnsafePointer<evpl_iovec>) -> Unmanaged<Buffer>? {
        guard let p = iovec.pointee.private_data else { return nil }
        return Unmanaged<Buffer>.fromOpaque(p)
    }

    @inline(__always)
    func retain(_ n: Int = 1) {
        refs.wrappingAdd(n, ordering: .relaxed)
    }

    /// Drops one reference; at zero the buffer is recycled.
    @inline(__always)
    func release() {
        let old = refs.wrappingSubtract(1, ordering: .releasing).oldValue
        if old == 1 {
            atomicMemoryFence(ordering: .acquiring)
            recycle()
        } else if old <= 0 {
            Log.fatal("memory", "buffer reference count went below zero (an iovec released twice?)")
        }
    }

    @inline(never)
    private func recycle() {
        used = 0
        if let pool {
            pool._withUnsafeGuaranteedRef { $0.giveBack(self) }
        } else {
            SlabAllocator.shared.giveBack(self)
        }
    }
}

extension evpl_iovec {
    @inline(__always)
    init(data: UnsafeMutableRawPointer, length: Int, buffer: Buffer) {
        self.init(data: data, length: UInt32(truncatingIfNeeded: length), pad: 0, private_data: buffer.opaque)
    }
}

/// Reference helpers for iovecs, used by the memory API and the send/receive rings.
enum Iovec {
    @inline(__always)
    static func addref(_ v: UnsafePointer<evpl_iovec>) {
        guard let b = Buffer.of(v) else { return }
        b._withUnsafeGuaranteedRef { $0.retain() }
    }

    @inline(__always)
    static func release(_ v: UnsafePointer<evpl_iovec>) {
        guard let b = Buffer.of(v) else { return }
        b._withUnsafeGuaranteedRef { $0.release() }
    }

    @inline(__always)
    static func release(_ v: evpl_iovec) {
        guard let p = v.private_data else { return }
        Unmanaged<Buffer>.fromOpaque(p)._withUnsafeGuaranteedRef { $0.release() }
    }

    @inline(__always)
    static func addref(_ v: evpl_iovec) {
        guard let p = v.private_data else { return }
        Unmanaged<Buffer>.fromOpaque(p)._withUnsafeGuaranteedRef { $0.retain() }
    }
}
