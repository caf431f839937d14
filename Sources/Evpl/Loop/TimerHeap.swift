import CEvpl
import Glibc

/// The loop's timers: a binary min-heap of the users' `evpl_timer` structs,
/// ordered by deadline, with an index so removal is O(log n) too.  The user's
/// 32-byte struct has no room for our bookkeeping, hence the side index.
struct TimerHeap {
    private struct Entry {
        var deadline: UInt64           // ns, monotonic
        var timer: UnsafeMutablePointer<evpl_timer>
    }

    private var heap: [Entry] = []
    private var index: [UnsafeMutablePointer<evpl_timer>: Int] = [:]

    var isEmpty: Bool { heap.isEmpty }
    var count: Int { heap.count }
    var nextDeadline: UInt64? { heap.first?.deadline }

    func contains(_ t: UnsafeMutablePointer<evpl_timer>) -> Bool { index[t] != nil }

    /// Arms `t` to expire at `deadline` (re-arms it if already armed).
    mutating func insert(_ t: UnsafeMutablePointer<evpl_timer>, deadline: UInt64) {
        if index[t] != nil { remove(t) }
        setDeadline(t, deadline)
        heap.append(Entry(deadline: deadline, timer: t))
        index[t] = heap.count - 1
        siftUp(heap.count - 1)
    }

    /// Disarms `t`; a no-op when it is not armed.
    mutating func remove(_ t: UnsafeMutablePointer<evpl_timer>) {
        guard let i = index.removeValue(forKey: t) else { return }
        let last = heap.count - 1
        if i != last {
            heap[i] = heap[last]
            index[heap[i].timer] = i
            heap.removeLast()
            siftDown(i)
            siftUp(i)
        } else {
            heap.removeLast()
        }
    }

    /// Takes the earliest timer if it is due at `now`, re-armed for its next
    /// period before the caller runs its callback, so the callback may remove
    /// it (the documented one-shot pattern) or any other timer safely.
    mutating func popDue(now: UInt64) -> UnsafeMutablePointer<evpl_timer>? {
        guard let top = heap.first, top.deadline <= now else { return nil }
        let t = top.timer
        let interval = max(UInt64(t.pointee.interval) &* 1000, 1)
        var next = top.deadline &+ interval
        if next <= now { next = now &+ interval }  // fell behind: no burst of catch-up calls
        heap[0].deadline = next
        setDeadline(t, next)
        siftDown(0)
        return t
    }

    private func setDeadline(_ t: UnsafeMutablePointer<evpl_timer>, _ ns: UInt64) {
        t.pointee.deadline.tv_sec = Int(ns / 1_000_000_000)
        t.pointee.deadline.tv_nsec = Int(ns % 1_000_000_000)
    }

    private mutating func siftUp(_ start: Int) {
        var i = start
        while i > 0 {
            let parent = (i - 1) / 2
            guard heap[i].deadline < heap[parent].deadline else { break }
            swapAt(i, parent)
            i = parent
        }
    }

    private mutating func siftDown(_ start: Int) {
        var i = start
        let n = heap.count
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < n && heap[l].deadline < heap[m].deadline { m = l }
            if r < n && heap[r].deadline < heap[m].deadline { m = r }
            if m == i { return }
            swapAt(i, m)
            i = m
        }
    }

    private mutating func swapAt(_ a: Int, _ b: Int) {
        heap.swapAt(a, b)
        index[heap[a].timer] = a
        index[heap[b].timer] = b
    }

    /// For tests: the heap property and the index agree.
    func checkInvariants() -> Bool {
        for i in 1..<max(heap.count, 1) where heap[(i - 1) / 2].deadline > heap[i].deadline { return false }
        for (i, e) in heap.enumerated() where index[e.timer] != i { return false }
        return index.count == heap.count
    }
}
