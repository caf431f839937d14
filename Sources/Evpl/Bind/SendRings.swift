import CEvpl
import Glibc

/// A FIFO of cumulative byte offsets: where each stream send call ends, so
/// SENT can count whole calls completed (`sent.msgs`).
struct OffsetRing: ~Copyable {
    private var slots: UnsafeMutablePointer<UInt64>
    private var mask: Int
    private var head = 0, tail = 0

    private let initialCapacity: Int

    /// Storage is allocated on the first append.
    init(capacity: Int) {
        slots = OffsetRing.placeholder
        mask = -1
        initialCapacity = Int(GlobalConfig.powerOfTwo(UInt32(max(capacity, 2))))
    }

    private static let placeholder = UnsafeMutablePointer<UInt64>.allocate(capacity: 1)

    deinit { if mask >= 0 { slots.deallocate() } }

    var isEmpty: Bool { head == tail }

    @inline(__always)
    mutating func append(_ v: UInt64) {
        if tail &- head == mask + 1 { grow() }
        slots[tail & mask] = v
        tail &+= 1
    }

    /// Pops every offset <= `written`; returns how many.
    @inline(__always)
    mutating func popCompleted(_ written: UInt64) -> UInt64 {
        var n: UInt64 = 0
        while head != tail && slots[head & mask] <= written {
            head &+= 1
            n += 1
        }
        return n
    }

    mutating func removeAll() { head = tail }

    private mutating func grow() {
        let old = mask + 1
        let capacity = old == 0 ? initialCapacity : old * 2
        let fresh = UnsafeMutablePointer<UInt64>.allocate(capacity: capacity)
        for i in 0..<old { fresh[i] = slots[(head &+ i) & mask] }
        if old > 0 { slots.deallocate() }
        slots = fresh
        mask = capacity - 1
        head = 0
        tail = old
    }
}

/// One queued datagram: its destination and how many iovecs of the bind's
/// send queue it spans.
struct Datagram {
    var address: sockaddr_storage
    var addressLength: socklen_t
    var niov: Int
    var length: Int
}

/// A FIFO of queued datagrams (the iovecs themselves are in the send queue).
struct DatagramRing: ~Copyable {
    private var slots: UnsafeMutablePointer<Datagram>
    private var mask: Int
    private var head = 0, tail = 0

    private let initialCapacity: Int

    /// Storage is allocated on the first append (stream binds never need it).
    init(capacity: Int) {
        slots = DatagramRing.placeholder
        mask = -1
        initialCapacity = Int(GlobalConfig.powerOfTwo(UInt32(max(capacity, 2))))
    }

    private static let placeholder = UnsafeMutablePointer<Datagram>.allocate(capacity: 1)

    deinit { if mask >= 0 { slots.deallocate() } }

    var isEmpty: Bool { head == tail }
    var count: Int { tail &- head }

    @inline(__always)
    mutating func append(_ d: Datagram) {
        if count == mask + 1 { grow() }
        (slots + (tail & mask)).initialize(to: d)
        tail &+= 1
    }

    /// The i-th queued datagram (0 = oldest); valid until the ring changes.
    @inline(__always)
    func at(_ i: Int) -> UnsafeMutablePointer<Datagram> { slots + ((head &+ i) & mask) }

    @inline(__always)
    mutating func removeFirst() { head &+= 1 }

    mutating func removeAll() { head = tail }

    private mutating func grow() {
        let old = mask + 1
        let capacity = old == 0 ? initialCapacity : old * 2
        let fresh = UnsafeMutablePointer<Datagram>.allocate(capacity: capacity)
        for i in 0..<old { (fresh + i).initialize(to: slots[(head &+ i) & mask]) }
        if old > 0 { slots.deallocate() }
        slots = fresh
        mask = capacity - 1
        head = 0
        tail = old
    }
}
