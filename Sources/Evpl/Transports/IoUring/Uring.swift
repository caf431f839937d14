import CEvpl
import CEvplLinux
import CEvplUring
import Glibc

/// A loop's io_uring instance, made on first use by an io_uring bind or
/// block queue: the rings, a provided-buffer ring fed from the loop's
/// buffer pool (multishot receives land in it without a copy), and an
/// eventfd in the loop's epoll so an idle loop sleeps.
///
/// Submissions are queued during the iteration and submitted once at its
/// end; completions are reaped every iteration straight from the shared
/// completion ring (no system call).
final class Uring {
    /// What a completion's user data points at; the kind sits in the low 3 bits.
    enum Op: UInt64 {
        case recv = 0      // Unmanaged<Bind>
        case send = 1      // Unmanaged<Bind>
        case connect = 2   // Unmanaged<Bind>, poll for writability
        case ignore = 3    // cancellations: nothing to do
        case block = 4     // Unmanaged<BlockRequest>
        case accept = 5    // Unmanaged<ListenSocket>, retained while the multishot accept lives
    }

    static let bufferGroup: UInt16 = 0
    static let chunkCount = 128           // provided buffers posted at a time
    static let chunkSize = 32 * 1024

    let ring: OpaquePointer  // struct io_uring (opaque to Swift; see CEvplUring.h)
    let eventFd: CInt
    unowned(unsafe) let loop: EventLoop
    private let bufRing: UnsafeMutableRawPointer
    private let bufRingBytes: Int
    /// The iovec (holding one buffer reference) behind each provided buffer id.
    private let chunks: UnsafeMutablePointer<evpl_iovec>
    private var replenished: Int32 = 0
    private let completions = UnsafeMutablePointer<cevpl_cqe>.allocate(capacity: 32)

    private init(loop: EventLoop, ring: OpaquePointer, eventFd: CInt,
                 bufRing: UnsafeMutableRawPointer, bufRingBytes: Int) {
        self.loop = loop
        self.ring = ring
        self.eventFd = eventFd
        self.bufRing = bufRing
        self.bufRingBytes = bufRingBytes
        chunks = .allocate(capacity: Uring.chunkCount)
    }

    /// A ready ring for `loop`, or nil with a log line.
    static func make(loop: EventLoop) -> Uring? {
        guard let ring = IoUringSupport.makeRing(entries: 256) else {
            Log.error("io_uring", "cannot set up a ring for this loop")
            return nil
        }
        let efd = cevpl_eventfd()
        let bytes = cevpl_buf_ring_size(UInt32(Uring.chunkCount))
        let mem = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        guard efd >= 0, let mem, mem != MAP_FAILED, cevpl_uring_register_eventfd(ring, efd) == 0 else {
            if efd >= 0 { Sys.close(efd) }
            IoUringSupport.freeRing(ring)
            Log.error("io_uring", "cannot set up the ring's eventfd or buffer ring")
            return nil
        }
        let br = OpaquePointer(mem)
        cevpl_buf_ring_init(br)
        let rc = cevpl_buf_ring_register(ring, br, UInt32(Uring.chunkCount), Uring.bufferGroup)
        guard rc == 0 else {
            Log.error("io_uring", "cannot register a provided-buffer ring: \(String(cString: strerror(-rc)))")
            munmap(mem, bytes)
            Sys.close(efd)
            IoUringSupport.freeRing(ring)
            return nil
        }
        let u = Uring(loop: loop, ring: ring, eventFd: efd, bufRing: mem, bufRingBytes: bytes)
        for bid in 0..<Uring.chunkCount {
            guard u.post(UInt16(bid)) else { break }
        }
        u.advance()
        do {
            try loop.poller.add(efd, CEVPL_EPOLLIN | CEVPL_EPOLLET, EventSource.token(.uring, nil))
        } catch {
            Log.error("io_uring", error.description)
        }
        return u
    }

    deinit {
        for bid in 0..<Uring.chunkCount where chunks[bid].private_data != nil {
            Iovec.release(chunks[bid])
        }
        chunks.deallocate()
        completions.deallocate()
        IoUringSupport.freeRing(ring)
        munmap(bufRing, bufRingBytes)
        Sys.close(eventFd)
    }

    // MARK: Submissions

    @inline(__always)
    static func token(_ op: Op, _ object: UnsafeMutableRawPointer) -> UInt64 {
        UInt64(UInt(bitPattern: object)) | op.rawValue
    }

    /// A submission entry, submitting what is queued first if the ring is full.
    @inline(__always)
    func sqe() -> OpaquePointer {
        if let s = cevpl_uring_get_sqe(ring) { return s }
        for _ in 0..<1000 {
            _ = cevpl_uring_submit(ring)  // the SQ is full: hand it to the kernel to make room
            if let s = cevpl_uring_get_sqe(ring) { return s }
        }
        Log.fatal("io_uring", "the submission queue does not drain")
    }

    /// End of the iteration: re-arm receives that ran out of provided
    /// buffers (there are fresh ones now), then one io_uring_enter for
    /// everything queued.
    @inline(__always)
    func submit() {
        if replenished > 0 { advance() }
        if !starved.isEmpty { rearmStarved() }
        if cevpl_uring_sq_ready(ring) > 0 { _ = cevpl_uring_submit(ring) }
    }

    /// Binds whose multishot receive ended with ENOBUFS: re-armed at submit
    /// time, not at once (an immediate re-arm would fail the same way).
    private var starved: [Unmanaged<Bind>] = []

    func starve(_ b: Bind) {
        starved.append(Unmanaged.passUnretained(b))
    }

    private func rearmStarved() {
        for b in starved {
            b._withUnsafeGuaranteedRef { $0.rearmUringReceive() }
        }
        starved.removeAll(keepingCapacity: true)
    }

    // MARK: Provided buffers

    /// Posts a fresh chunk from the pool under buffer id `bid`.
    @discardableResult
    private func post(_ bid: UInt16) -> Bool {
        guard let v = loop.pool.allocate(Uring.chunkSize, alignment: 64) else {
            chunks[Int(bid)].private_data = nil
            return false
        }
        chunks[Int(bid)] = v
        cevpl_buf_ring_add(OpaquePointer(bufRing), v.data, UInt32(Uring.chunkSize),
                           bid, UInt32(Uring.chunkCount), replenished)
        replenished += 1
        return true
    }

    private func advance() {
        cevpl_buf_ring_advance(OpaquePointer(bufRing), replenished)
        replenished = 0
    }

    /// The received bytes of provided buffer `bid` as an iovec holding the
    /// chunk's reference; the id is re-posted with a fresh chunk.
    @inline(__always)
    func takeChunk(_ bid: Int, length: Int) -> evpl_iovec {
        var v = chunks[bid]
        v.length = UInt32(length)
        post(UInt16(bid))
        return v
    }

    // MARK: Completions

    /// Handles the completions that are ready (a bounded number, so one
    /// busy ring cannot starve the rest of the loop); returns how many.
    func reap() -> Int {
        var handled = 0
        while handled < 1024 {
            let n = Int(cevpl_uring_reap(ring, completions, 32))
            if n == 0 { break }
            for i in 0..<n {
                let c = completions[i]
                complete(c.user_data, c.res, c.flags)
            }
            handled += n
        }
        return handled
    }

    @inline(__always)
    private func complete(_ data: UInt64, _ res: Int32, _ flags: UInt32) {
        guard let op = Op(rawValue: data & 7), let object = UnsafeMutableRawPointer(bitPattern: UInt(data & ~7)) else {
            return
        }
        switch op {
        case .recv:
            Unmanaged<Bind>.fromOpaque(object)._withUnsafeGuaranteedRef { $0.uringReceived(res, flags) }
        case .send:
            Unmanaged<Bind>.fromOpaque(object)._withUnsafeGuaranteedRef { $0.uringSent(res) }
        case .connect:
            Unmanaged<Bind>.fromOpaque(object)._withUnsafeGuaranteedRef { $0.uringConnected(res) }
        case .block:
            BlockRequest.complete(object, res)
        case .accept:
            ListenSocket.uringAccepted(object, res, more: flags & CEVPL_CQE_F_MORE != 0, on: loop)
        case .ignore:
            return
        }
    }
}
