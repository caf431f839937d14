import CEvplNuma
import Glibc
import Synchronization

/// A large region requested from the OS, cut into buffers.  Reserved lazily
/// (MAP_NORESERVE; untouched pages are not resident) and never returned.
/// Transports that must register memory (RDMA memory regions, io_uring
/// provided buffers) register whole slabs once: `SlabAllocator.slabs`.
final class Slab {
    let base: UnsafeMutableRawPointer
    let size: Int
    /// The NUMA node the slab's pages are asked of (0 on a one-node machine).
    let node: Int
    /// Bytes already cut into buffers (under the allocator's lock).
    var carved = 0
    /// Position in `SlabAllocator.slabs` (RDMA keeps its memory keys by it).
    var index = 0

    init(base: UnsafeMutableRawPointer, size: Int, node: Int) {
        self.base = base
        self.size = size
        self.node = node
    }
}

/// The process-wide source of buffers: slabs, and buffers that no loop owns.
/// Loops take buffers in batches and keep them in their own pools, so this
/// lock is off the per-message path.
///
/// NUMA: every slab belongs to a node (its pages are bound there before they
/// are touched), free buffers wait on their node's list, and a pool is served
/// from its loop's node first.  On a one-node machine everything is node 0.
final class SlabAllocator {
    static let shared = SlabAllocator()

    private struct State {
        var slabs: [Slab] = []
        var buffers: [Buffer] = []          // every buffer ever made (keeps them alive)
        var free: [Unmanaged<Buffer>?]      // free-list heads, by node
        var carving: [Slab?]                // the slab each node cuts buffers from

        init(nodes: Int) {
            free = Array(repeating: nil, count: nodes)
            carving = Array(repeating: nil, count: nodes)
        }

        /// Grows the per-node lists to hold `node` (a test asks for nodes the machine lacks).
        mutating func reach(_ node: Int) {
            while free.count <= node {
                free.append(nil)
                carving.append(nil)
            }
        }
    }

    /// NUMA nodes in the machine (1 where there is no NUMA).
    let nodes: Int
    private let state: Mutex<State>
    nonisolated(unsafe) private(set) var bufferSize = 2 * 1024 * 1024
    nonisolated(unsafe) private var slabSize = 1024 * 1024 * 1024
    nonisolated(unsafe) private var hugePages = false
    private let hugePageWarning = Atomic<Bool>(false)

    private init() {
        nodes = max(1, Int(cevpl_numa_nodes()))
        state = Mutex(State(nodes: nodes))
        if nodes > 1 {
            Log.debug("memory", "NUMA: \(nodes) nodes; loop buffers come from the loop's node")
        }
    }

    /// The node of the CPU the calling thread runs on (0 on one node).
    static func currentNode() -> Int { Int(cevpl_numa_current_node()) }

    func configure(_ c: GlobalConfig) {
        bufferSize = Int(c.bufferSize)
        slabSize = Int(c.slabSize)
        hugePages = c.hugePages != 0
    }

    /// A buffer with no references and `used` 0, owned by `pool`.
    func take(for pool: BufferPool) -> Buffer? {
        let buffer = take(forNode: pool.node)
        buffer?.pool = Unmanaged.passUnretained(pool)
        return buffer
    }

    /// A buffer from `node`: a free one, else a new one cut from the node's
    /// slab; another node's free buffer only when no memory can be mapped.
    /// The buffer has no pool (tests call this directly).
    func take(forNode node: Int) -> Buffer? {
        let node = max(0, node)
        return state.withLock { s in
            s.reach(node)
            if let b = pop(&s, node) ?? carve(&s, node) { return b }
            for other in s.free.indices where other != node {
                if let b = pop(&s, other) { return b }
            }
            return nil
        }
    }

    /// A buffer whose pool is gone comes back here, to its slab's node.
    func giveBack(_ b: Buffer) {
        b.pool = nil
        state.withLock { s in
            b.nextFree = s.free[b.slab.node]
            s.free[b.slab.node] = Unmanaged.passUnretained(b)
        }
    }

    /// A whole new slab for the caller (`evpl_slab_alloc`), from the calling thread's node.
    func allocateSlab() -> UnsafeMutableRawPointer? {
        let node = SlabAllocator.currentNode()
        return state.withLock { s in
            guard let slab = mapSlab(node: node) else { return nil }
            slab.carved = slab.size  // not cut into buffers: it is the caller's
            record(slab, &s)
            return slab.base
        }
    }

    var slabs: [Slab] { state.withLock { $0.slabs } }

    /// Adds a new slab to the list; its index is its position there.
    private func record(_ slab: Slab, _ s: inout State) {
        slab.index = s.slabs.count
        s.slabs.append(slab)
    }

    private func pop(_ s: inout State, _ node: Int) -> Buffer? {
        guard let top = s.free[node] else { return nil }
        let b = top.takeUnretainedValue()
        s.free[node] = b.nextFree
        b.nextFree = nil
        return b
    }

    private func carve(_ s: inout State, _ node: Int) -> Buffer? {
        var slab = s.carving[node]
        if slab == nil || slab!.carved + bufferSize > slab!.size {
            guard let fresh = mapSlab(node: node) else { return nil }
            record(fresh, &s)
            s.carving[node] = fresh
            slab = fresh
        }
        let sl = slab!
        let b = Buffer(data: sl.base + sl.carved, size: bufferSize, slab: sl)
        sl.carved += bufferSize
        s.buffers.append(b)
        return b
    }

    private func mapSlab(node: Int) -> Slab? {
        let size = max(slabSize, bufferSize)
        let flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE
        if hugePages {
            let p = mmap(nil, size, PROT_READ | PROT_WRITE, flags | MAP_HUGETLB, -1, 0)
            if let p, p != MAP_FAILED { return bound(p, size, node) }
            if !hugePageWarning.exchange(true, ordering: .relaxed) {
                Log.warn("memory", "huge_pages: no huge pages available, using normal pages")
            }
        }
        let p = mmap(nil, size, PROT_READ | PROT_WRITE, flags, -1, 0)
        guard let p, p != MAP_FAILED else {
            Log.error("memory", "mmap of a \(size)-byte slab failed: \(String(cString: strerror(errno)))")
            return nil
        }
        return bound(p, size, node)
    }

    /// Prefers `node` for a fresh, untouched mapping.  A refusal is ignored:
    /// the pages then come from wherever the kernel puts them.  One node: no
    /// policy is set, as before NUMA support.
    private func bound(_ p: UnsafeMutableRawPointer, _ size: Int, _ node: Int) -> Slab {
        if nodes > 1 || node > 0 {
            _ = cevpl_numa_bind(p, size, Int32(node))
        }
        return Slab(base: p, size: size, node: node)
    }
}
