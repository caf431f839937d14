import Glibc
import Synchronization

/// A large region requested from the OS, cut into buffers.  Reserved lazily
/// (MAP_NORESERVE; untouched pages are not resident) and never returned.
/// Transports that must register memory (RDMA memory regions, io_uring
/// provided buffers) register whole slabs once: `SlabAllocator.slabs`.
final class Slab {
    let base: UnsafeMutableRawPointer
    let size: Int
    /// Bytes already cut into buffers (under the allocator's lock).
    var carved = 0
    /// Position in `SlabAllocator.slabs` (RDMA keeps its memory keys by it).
    var index = 0

    init(base: UnsafeMutableRawPointer, size: Int) {
        self.base = base
        self.size = size
    }
}

/// The process-wide source of buffers: slabs, and buffers that no loop owns.
/// Loops take buffers in batches and keep them in their own pools, so this
/// lock is off the per-message path.
final class SlabAllocator {
    static let shared = SlabAllocator()

    private struct State {
        var slabs: [Slab] = []
        var buffers: [Buffer] = []          // every buffer ever made (keeps them alive)
        var free: Unmanaged<Buffer>?
        var freeCount = 0
    }

    private let state = Mutex(State())
    nonisolated(unsafe) private(set) var bufferSize = 2 * 1024 * 1024
    nonisolated(unsafe) private var slabSize = 1024 * 1024 * 1024
    nonisolated(unsafe) private var hugePages = false
    private let hugePageWarning = Atomic<Bool>(false)

    func configure(_ c: GlobalConfig) {
        bufferSize = Int(c.bufferSize)
        slabSize = Int(c.slabSize)
        hugePages = c.hugePages != 0
    }

    /// A buffer with no references and `used` 0, owned by `pool`.
    func take(for pool: BufferPool) -> Buffer? {
        let buffer: Buffer? = state.withLock { s in
            if let top = s.free {
                let b = top.takeUnretainedValue()
                s.free = b.nextFree
                b.nextFree = nil
                s.freeCount -= 1
                return b
            }
            return carve(&s)
        }
        buffer?.pool = Unmanaged.passUnretained(pool)
        return buffer
    }

    /// A buffer whose pool is gone comes back here.
    func giveBack(_ b: Buffer) {
        b.pool = nil
        state.withLock { s in
            b.nextFree = s.free
            s.free = Unmanaged.passUnretained(b)
            s.freeCount += 1
        }
    }

    /// A whole new slab for the caller (`evpl_slab_alloc`).
    func allocateSlab() -> UnsafeMutableRawPointer? {
        state.withLock { s in
            guard let slab = mapSlab() else { return nil }
            slab.carved = slab.size  // not cut into buffers: it is the caller's
            slab.index = s.slabs.count
            s.slabs.append(slab)
            return slab.base
        }
    }

    var slabs: [Slab] { state.withLock { $0.slabs } }

    private func carve(_ s: inout State) -> Buffer? {
        var slab = s.slabs.last
        if slab == nil || slab!.carved + bufferSize > slab!.size {
            guard let fresh = mapSlab() else { return nil }
            fresh.index = s.slabs.count
            s.slabs.append(fresh)
            slab = fresh
        }
        let sl = slab!
        let b = Buffer(data: sl.base + sl.carved, size: bufferSize, slab: sl)
        sl.carved += bufferSize
        s.buffers.append(b)
        return b
    }

    private func mapSlab() -> Slab? {
        let size = max(slabSize, bufferSize)
        let flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE
        if hugePages {
            let p = mmap(nil, size, PROT_READ | PROT_WRITE, flags | MAP_HUGETLB, -1, 0)
            if let p, p != MAP_FAILED { return Slab(base: p, size: size) }
            if !hugePageWarning.exchange(true, ordering: .relaxed) {
                Log.warn("memory", "huge_pages: no huge pages available, using normal pages")
            }
        }
        let p = mmap(nil, size, PROT_READ | PROT_WRITE, flags, -1, 0)
        guard let p, p != MAP_FAILED else {
            Log.error("memory", "mmap of a \(size)-byte slab failed: \(String(cString: strerror(errno)))")
            return nil
        }
        return Slab(base: p, size: size)
    }
}
