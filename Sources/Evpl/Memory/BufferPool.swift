import CEvpl
import Glibc
import Synchronization

/// A loop's buffers.  Space is handed out from the current buffer by bumping
/// its cursor; a buffer whose references all come home is reused, and the
/// current one is rewound when nothing else points into it (so a loop that
/// releases what it receives keeps touching the same, cache-warm memory).
///
/// Threads: everything but `giveBack` runs on the owning loop's thread.
/// A buffer whose last reference drops on another thread comes back through
/// `remote`, a locked list the owner drains when its own list is empty.
/// Pools outlive loops: a destroyed loop's pool waits in `idle` for the next
/// loop, so buffers can always find their way home.
final class BufferPool {
    @exclusivity(unchecked) private var current: Buffer?
    @exclusivity(unchecked) private var freeTop: Unmanaged<Buffer>?
    private let remote = Mutex<Unmanaged<Buffer>?>(nil)
    private let remoteCount = Atomic<Int>(0)
    @exclusivity(unchecked) private var owner: pthread_t = 0
    /// The NUMA node of the owning loop's thread: new buffers come from there.
    @exclusivity(unchecked) var node = 0
    let bufferSize: Int

    private static let idle = Mutex<[BufferPool]>([])

    private init(bufferSize: Int) {
        self.bufferSize = bufferSize
    }

    /// A pool for the calling thread's new loop, preferably one that last
    /// served the thread's NUMA node (one node: the last pool retired).
    static func acquire() -> BufferPool {
        let size = SlabAllocator.shared.bufferSize
        let node = SlabAllocator.currentNode()
        let pool = idle.withLock { pools -> BufferPool? in
            guard let i = pools.lastIndex(where: { $0.node == node }) else { return pools.popLast() }
            return pools.remove(at: i)
        } ?? BufferPool(bufferSize: size)
        pool.owner = pthread_self()
        if pool.node != node {
            pool.returnFreeBuffers()  // another node's memory: back to the allocator
            pool.node = node
        }
        return pool
    }

    private func returnFreeBuffers() {
        while let top = freeTop {
            let b = top.takeUnretainedValue()
            freeTop = b.nextFree
            b.nextFree = nil
            SlabAllocator.shared.giveBack(b)
        }
    }

    /// The loop is going away: keep the free buffers for the next loop.
    func retire() {
        if let c = current {
            current = nil
            c.release()
        }
        owner = 0
        BufferPool.idle.withLock { $0.append(self) }
    }

    // MARK: Taking space

    /// One contiguous, aligned run of `length` (<= bufferSize) bytes with one
    /// reference taken; nil only when memory is exhausted.
    @inline(__always)
    func allocate(_ length: Int, alignment: Int) -> evpl_iovec? {
        if let c = current, let v = carve(c, length, alignment) { return v }
        return allocateSlow(length, alignment: alignment)
    }

    @inline(__always)
    private func carve(_ c: Buffer, _ length: Int, _ alignment: Int) -> evpl_iovec? {
        if c.refs.load(ordering: .relaxed) == 1 { c.used = 0 }  // only our hold: rewind
        let start = alignUp(c, c.used, alignment)
        guard start + length <= c.size else { return nil }
        c.used = start + length
        c.retain()
        return evpl_iovec(data: c.data + start, length: length, buffer: c)
    }

    @inline(never)
    private func allocateSlow(_ length: Int, alignment: Int) -> evpl_iovec? {
        guard let fresh = takeBuffer() else { return nil }
        replaceCurrent(fresh)
        return carve(fresh, length, alignment)
    }

    /// The free space of the current buffer (at least `minimum` bytes, taking a
    /// fresh buffer if needed), without taking it: for reads, which commit
    /// afterwards only what arrived.
    @inline(__always)
    func reserve(minimum: Int, alignment: Int = 1) -> (UnsafeMutableRawPointer, Int)? {
        if let c = current {
            if c.refs.load(ordering: .relaxed) == 1 { c.used = 0 }
            let start = alignUp(c, c.used, alignment)
            if start + minimum <= c.size { return (c.data + start, c.size - start) }
        }
        guard let fresh = takeBuffer() else { return nil }
        replaceCurrent(fresh)
        let start = alignUp(fresh, 0, alignment)
        return (fresh.data + start, fresh.size - start)
    }

    /// Takes `length` bytes at `data` (from `reserve`) as an iovec with one reference.
    @inline(__always)
    func commit(_ data: UnsafeMutableRawPointer, _ length: Int) -> evpl_iovec {
        let c = current.unsafelyUnwrapped
        c.used = data - c.data + length
        c.retain()
        return evpl_iovec(data: data, length: length, buffer: c)
    }

    @inline(__always)
    private func alignUp(_ b: Buffer, _ offset: Int, _ alignment: Int) -> Int {
        guard alignment > 1 else { return offset }
        let addr = Int(bitPattern: b.data) + offset
        let aligned = (addr + alignment - 1) / alignment * alignment
        return aligned - Int(bitPattern: b.data)
    }

    private func replaceCurrent(_ fresh: Buffer) {
        fresh.retain()  // the pool's hold
        if let old = current {
            current = fresh
            old.release()
        } else {
            current = fresh
        }
    }

    private func takeBuffer() -> Buffer? {
        if let top = freeTop {
            let b = top.takeUnretainedValue()
            freeTop = b.nextFree
            b.nextFree = nil
            return b
        }
        if remoteCount.load(ordering: .relaxed) > 0 {
            var list = remote.withLock { l -> Unmanaged<Buffer>? in
                let all = l
                l = nil
                return all
            }
            remoteCount.store(0, ordering: .relaxed)
            while let top = list {
                let b = top.takeUnretainedValue()
                list = b.nextFree
                b.nextFree = freeTop
                freeTop = top
            }
            if let top = freeTop {
                let b = top.takeUnretainedValue()
                freeTop = b.nextFree
                b.nextFree = nil
                return b
            }
        }
        return SlabAllocator.shared.take(for: self)
    }

    // MARK: Buffers coming home

    /// Called by `Buffer.release` when the count reached zero, on any thread.
    func giveBack(_ b: Buffer) {
        if pthread_equal(owner, pthread_self()) != 0 {
            b.nextFree = freeTop
            freeTop = Unmanaged.passUnretained(b)
        } else {
            remote.withLock { l in
                b.nextFree = l
                l = Unmanaged.passUnretained(b)
            }
            remoteCount.wrappingAdd(1, ordering: .relaxed)
        }
    }
}
