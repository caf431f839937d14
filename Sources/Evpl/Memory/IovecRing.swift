import CEvpl
import Glibc

/// A FIFO of iovecs, each holding one buffer reference owned by the ring:
/// a bind's send queue and its receive queue.  Indices only grow and are
/// masked on access; `count` is `tail &- head`; full is `count == capacity`.
/// `bytes` is the total length of the iovecs in the ring.
struct IovecRing: ~Copyable {
    private var slots: UnsafeMutablePointer<evpl_iovec>
    private var mask: Int
    private(set) var head = 0
    private(set) var tail = 0
    private(set) var bytes = 0
    private let initialCapacity: Int

    /// Storage is allocated on the first append (an idle bind costs no ring
    /// memory); until then `slots` is a shared placeholder and capacity is 0.
    init(capacity: Int) {
        slots = IovecRing.placeholder
        mask = -1
        initialCapacity = max(2, Int(GlobalConfig.powerOfTwo(UInt32(capacity))))
    }

    private static let placeholder = UnsafeMutablePointer<evpl_iovec>.allocate(capacity: 1)

    deinit {
        var i = head
        while i != tail {
            Iovec.release(slots[i & mask])
            i &+= 1
        }
        if mask >= 0 { slots.deallocate() }
    }

    var count: Int { tail &- head }
    var isEmpty: Bool { tail == head }

    /// Appends an iovec whose reference the ring now owns.
    @inline(__always)
    mutating func append(_ v: evpl_iovec) {
        if count == mask + 1 { grow() }
        (slots + (tail & mask)).initialize(to: v)
        tail &+= 1
        bytes &+= Int(v.length)
    }

    /// Appends, merging with the last iovec when `v` continues it in the same
    /// buffer (successive reads into one buffer become one iovec).
    @inline(__always)
    mutating func appendMerging(_ v: evpl_iovec) {
        if tail != head {
            let l = slots + ((tail &- 1) & mask)
            if l.pointee.private_data == v.private_data && l.pointee.data! + Int(l.pointee.length) == v.data! {
                l.pointee.length &+= v.length
                bytes &+= Int(v.length)
                Iovec.release(v)  // the merged iovec's reference covers both
                return
            }
        }
        append(v)
    }

    /// The i-th iovec from the front (0 = oldest).  Valid because i < count.
    @inline(__always)
    func at(_ i: Int) -> UnsafeMutablePointer<evpl_iovec> {
        slots + ((head &+ i) & mask)
    }

    @inline(__always)
    var first: UnsafeMutablePointer<evpl_iovec> { slots + (head & mask) }

    /// Removes the front iovec, handing its reference to the caller.
    @inline(__always)
    mutating func popFirst() -> evpl_iovec {
        let v = (slots + (head & mask)).move()
        head &+= 1
        bytes &-= Int(v.length)
        return v
    }

    /// Drops `n` bytes from the front: whole iovecs are released, a partly
    /// consumed one is trimmed.  `n` <= bytes.
    mutating func consume(_ n: Int) {
        var left = n
        while left > 0 {
            let f = first
            let len = Int(f.pointee.length)
            if len <= left {
                left -= len
                Iovec.release(popFirst())
            } else {
                f.pointee.data += left
                f.pointee.length = UInt32(len - left)
                bytes &-= left
                left = 0
            }
        }
        if isEmpty { shrinkIfIdle() }
    }

    /// Releases every reference and empties the ring.
    mutating func releaseAll() {
        while !isEmpty { Iovec.release(popFirst()) }
    }

    /// Copies up to `length` bytes from the front into `dst` without consuming.
    func copy(into dst: UnsafeMutableRawPointer, length: Int) -> Int {
        var copied = 0
        var i = 0
        while copied < length && i < count {
            let v = at(i).pointee
            let n = min(Int(v.length), length - copied)
            memcpy(dst + copied, v.data, n)
            copied += n
            i += 1
        }
        return copied
    }

    /// Adjusts the byte total after an in-place trim of the front iovec.
    @inline(__always)
    mutating func trimmedFront(by n: Int) {
        bytes &-= n
    }

    private mutating func grow() {
        let old = mask + 1
        let capacity = old == 0 ? initialCapacity : old * 2
        let fresh = UnsafeMutablePointer<evpl_iovec>.allocate(capacity: capacity)
        for i in 0..<old {
            (fresh + i).initialize(to: (slots + ((head &+ i) & mask)).move())
        }
        if old > 0 { slots.deallocate() }
        slots = fresh
        mask = capacity - 1
        tail = old
        head = 0
    }

    /// Rings grow under bursts and shrink back once drained, so idle binds
    /// stay small.
    private mutating func shrinkIfIdle() {
        guard mask + 1 > initialCapacity * 4 else { return }
        // Valid: the ring is empty, so nothing is moved.
        slots.deallocate()
        slots = .allocate(capacity: initialCapacity)
        mask = initialCapacity - 1
        head = 0
        tail = 0
    }

    /// For tests: the invariants the ring keeps.
    func checkInvariants() -> Bool {
        guard count >= 0 && count <= mask + 1 else { return false }
        var total = 0
        for i in 0..<count { total += Int(at(i).pointee.length) }
        return total == bytes
    }
}
