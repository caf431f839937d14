import CEvpl
import Glibc

/// A FIFO of plain values (no references to release): indices only grow and
/// are masked on access; storage is allocated on the first append and
/// doubles when full.  The bind's message-end offsets and queued datagrams.
struct ValueRing<Element>: ~Copyable {
    private var slots: UnsafeMutablePointer<Element>?
    private var mask = -1
    private var head = 0, tail = 0
    private let initialCapacity: Int

    init(capacity: Int) {
        initialCapacity = Int(GlobalConfig.powerOfTwo(UInt32(max(capacity, 2))))
    }

    deinit {
        guard let slots else { return }
        var i = head
        while i != tail {
            (slots + (i & mask)).deinitialize(count: 1)
            i &+= 1
        }
        slots.deallocate()
    }

    var isEmpty: Bool { head == tail }
    var count: Int { tail &- head }

    @inline(__always)
    mutating func append(_ v: Element) {
        if count == mask + 1 { grow() }
        (slots.unsafelyUnwrapped + (tail & mask)).initialize(to: v)
        tail &+= 1
    }

    /// The i-th element from the front (0 = oldest); valid until the ring
    /// changes, and only for i < count.
    @inline(__always)
    func at(_ i: Int) -> UnsafeMutablePointer<Element> { slots.unsafelyUnwrapped + ((head &+ i) & mask) }

    @inline(__always)
    mutating func removeFirst() {
        (slots.unsafelyUnwrapped + (head & mask)).deinitialize(count: 1)
        head &+= 1
    }

    mutating func removeAll() {
        while !isEmpty { removeFirst() }
    }

    private mutating func grow() {
        let old = mask + 1
        let capacity = old == 0 ? initialCapacity : old * 2
        let fresh = UnsafeMutablePointer<Element>.allocate(capacity: capacity)
        if let slots {
            for i in 0..<old { (fresh + i).moveInitialize(from: slots + ((head &+ i) & mask), count: 1) }
            slots.deallocate()
        }
        slots = fresh
        mask = capacity - 1
        head = 0
        tail = old
    }
}

/// Cumulative byte offsets where each stream send call ends, so SENT can
/// count whole calls completed (`sent.msgs`).
typealias OffsetRing = ValueRing<UInt64>

extension ValueRing where Element == UInt64 {
    /// Pops every offset <= `written`; returns how many.
    @inline(__always)
    mutating func popCompleted(_ written: UInt64) -> UInt64 {
        var n: UInt64 = 0
        while !isEmpty && at(0).pointee <= written {
            removeFirst()
            n += 1
        }
        return n
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

/// Queued datagrams (the iovecs themselves are in the send queue).
typealias DatagramRing = ValueRing<Datagram>
