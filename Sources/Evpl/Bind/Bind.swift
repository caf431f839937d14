import CEvpl
import CEvplLinux
import Glibc

/// A connection or datagram socket: `struct evpl_bind`.  Owned by one loop;
/// its pointer stays valid until its DISCONNECTED callback has returned, then
/// the object waits on the loop's free list for reuse (with its rings).
///
/// Life cycle (one `(state, event)` table, `transition`):
///   connecting --connected--> open --finish/peer EOF--> finishing
///   any live state --close--> closing --completeClose--> closed (free)
final class Bind {
    enum State {
        case free, connecting, open, finishing, closing
        /// Closed and DISCONNECTED delivered, but io_uring operations are
        /// still in flight: not reusable until they complete.
        case draining
    }

    enum Kind {
        case stream, datagram
    }

    /// How bytes move: readiness + system calls (kernel sockets, or XLIO's
    /// sockets through its own table and epoll), or completions (io_uring,
    /// RDMA queue pairs).  The state machine above is shared.
    enum Transport {
        case socket, uring, xlio, rdma
    }

    unowned(unsafe) let loop: EventLoop
    @exclusivity(unchecked) var state = State.free
    @exclusivity(unchecked) var kind = Kind.stream
    @exclusivity(unchecked) var proto = EVPL_STREAM_SOCKET_TCP
    @exclusivity(unchecked) var fd: CInt = -1
    @exclusivity(unchecked) var transport = Transport.socket
    /// The socket calls this bind's descriptor is driven through (libc's, or libxlio's).
    @exclusivity(unchecked) unowned(unsafe) var api: SocketAPI
    /// io_uring operations in flight for this bind (receive, send, connect).
    @exclusivity(unchecked) var uringInflight = 0
    @exclusivity(unchecked) var uringSending = false
    @exclusivity(unchecked) var uringReceiving = false
    /// The sendmsg arguments of the send in flight (io_uring reads them later).
    @exclusivity(unchecked) var uringMessage: UnsafeMutablePointer<msghdr>?
    @exclusivity(unchecked) var uringIov: UnsafeMutablePointer<iovec>?
    /// An XLIO bind registered with the loop's XLIO poller (unregistered before its close).
    @exclusivity(unchecked) var xlioWatched = false
    /// RDMA binds: the rdma_cm id, queue pair and flow control (Transports/RDMA).
    @exclusivity(unchecked) var rdma = RDMABindState()

    @exclusivity(unchecked) var notify: evpl_notify_callback_t?
    @exclusivity(unchecked) var segment: evpl_segment_callback_t?
    @exclusivity(unchecked) var privateData: UnsafeMutableRawPointer?

    /// Queued sends, each iovec holding one reference.
    @exclusivity(unchecked) var sendQueue: IovecRing
    /// Received stream bytes not yet taken by the application.
    @exclusivity(unchecked) var recvQueue: IovecRing
    /// For datagram binds: one entry per queued datagram (destination, iovec count).
    @exclusivity(unchecked) var datagrams: DatagramRing
    /// Cumulative bytes queued at the end of each stream send call, for SENT's msgs.
    @exclusivity(unchecked) var messageEnds: OffsetRing
    @exclusivity(unchecked) var queuedTotal: UInt64 = 0
    @exclusivity(unchecked) var writtenTotal: UInt64 = 0

    /// UDP: join queued datagrams of one size to one destination into one
    /// GSO send (off for the rest of the bind's life if the kernel refuses).
    @exclusivity(unchecked) var udpSegmentation = true
    @exclusivity(unchecked) var sendNotifications = false
    @exclusivity(unchecked) var sentBytes: UInt64 = 0
    @exclusivity(unchecked) var sentMsgs: UInt64 = 0

    @exclusivity(unchecked) var finishRequested = false
    @exclusivity(unchecked) var peerClosed = false
    @exclusivity(unchecked) var closeStatus: CInt = 0
    /// CONNECTED was delivered (server side: after attach).
    @exclusivity(unchecked) var announced = false

    let local = Address()
    let remote = Address()

    // Intrusive links (see EventLoop).
    @exclusivity(unchecked) var isDirty = false
    @exclusivity(unchecked) var nextDirty: Unmanaged<Bind>?
    @exclusivity(unchecked) var nextClosing: Unmanaged<Bind>?
    @exclusivity(unchecked) var prevBind: Unmanaged<Bind>?
    @exclusivity(unchecked) var nextBind: Unmanaged<Bind>?
    @exclusivity(unchecked) var nextFree: Unmanaged<Bind>?

    /// The loop and its pool as Unmanaged, for the per-message paths: calls
    /// through `_withUnsafeGuaranteedRef` cost no reference counting (the loop
    /// outlives its binds and owns its pool).
    let loopRef: Unmanaged<EventLoop>
    let poolRef: Unmanaged<BufferPool>
    let maxDatagramSize: Int

    init(loop: EventLoop) {
        self.loop = loop
        loopRef = Unmanaged.passUnretained(loop)
        poolRef = Unmanaged.passUnretained(loop.pool)
        maxDatagramSize = Int(loop.global.maxDatagramSize)
        api = SocketAPI.kernel
        let g = loop.global
        sendQueue = IovecRing(capacity: Int(g.iovecRingSize))
        recvQueue = IovecRing(capacity: Int(g.iovecRingSize))
        datagrams = DatagramRing(capacity: Int(g.dgramRingSize))
        messageEnds = OffsetRing(capacity: 64)
        rdma.requests = ValueRing(capacity: Int(g.rdmaRequestRingSize))
    }

    /// Runs when the loop is destroyed (binds are kept for reuse until then).
    deinit {
        uringIov?.deallocate()
        uringMessage?.deallocate()
    }

    @inline(__always)
    var handle: BindHandle { Unmanaged.passUnretained(self).handle }

    var isLive: Bool { state == .connecting || state == .open || state == .finishing }

    /// A bind from the loop's free list (or a new one), registered with the loop.
    static func make(loop: EventLoop, proto: evpl_protocol_id, kind: Kind, fd: CInt,
                     notify: evpl_notify_callback_t?, segment: evpl_segment_callback_t?,
                     privateData: UnsafeMutableRawPointer?, transport: Transport = .socket) -> Bind {
        let b: Bind
        if let reused = loop.freeBinds.pop() {
            b = reused.takeUnretainedValue()
        } else {
            b = Bind(loop: loop)
            _ = Unmanaged.passRetained(b)  // the loop holds every bind at +1 (released in BindFreeList.drain)
        }
        b.proto = proto
        b.kind = kind
        b.fd = fd
        b.transport = transport
        b.api = transport == .xlio ? SocketAPI.xlio : SocketAPI.kernel
        b.notify = notify
        b.segment = segment
        b.privateData = privateData
        b.queuedTotal = 0
        b.writtenTotal = 0
        b.sendNotifications = false
        b.udpSegmentation = true
        b.sentBytes = 0
        b.sentMsgs = 0
        b.finishRequested = false
        b.peerClosed = false
        b.closeStatus = 0
        b.announced = false
        b.local.length = 0
        b.remote.length = 0
        loop.register(b)
        return b
    }

    /// Starts watching the socket: epoll readiness (edge-triggered, both
    /// directions) for kernel sockets, the same in XLIO's epoll for XLIO
    /// sockets, a multishot receive for io_uring.
    func watch() throws(SysError) {
        let flags = CEVPL_EPOLLIN | CEVPL_EPOLLOUT | CEVPL_EPOLLET | CEVPL_EPOLLRDHUP
        let token = EventSource.token(.bind, Unmanaged.passUnretained(self).toOpaque())
        switch transport {
        case .uring:
            startUringReceive()
        case .rdma:
            return  // completions arrive through the loop's completion queues
        case .socket:
            try loop.poller.add(fd, flags, token)
        case .xlio:
            try loop.xlioWatch(fd, flags, token)
            xlioWatched = true
        }
    }

    /// Queue this bind's flush for the end of the iteration.
    @inline(__always)
    func markDirty() {
        loopRef._withUnsafeGuaranteedRef { $0.markDirty(self) }
    }

    // MARK: Notifications

    @inline(__always)
    func deliver(_ type: Int32, status: CInt = 0) {
        var n = evpl_notify()
        n.notify_type = UInt32(type)
        n.notify_status = status
        notify?(loop.handle, handle, &n, privateData)
    }

    func announceConnected() {
        announced = true
        deliver(EVPL_NOTIFY_CONNECTED)
    }

    // MARK: Events

    /// Readiness from epoll.  Calls user code only from a consistent state
    /// and re-checks the state after each call (a callback may close the bind).
    @inline(__always)
    func handleEvent(_ flags: UInt32) {
        switch state {
        case .connecting:
            guard flags & (CEVPL_EPOLLOUT | CEVPL_EPOLLERR | CEVPL_EPOLLHUP) != 0 else { return }
            guard connectCompleted(error: Sys.socketError(api, fd)) else { return }
            if flags & (CEVPL_EPOLLIN | CEVPL_EPOLLRDHUP | CEVPL_EPOLLHUP) != 0 { readReady(flags) }
        case .open, .finishing:
            if flags & (CEVPL_EPOLLIN | CEVPL_EPOLLRDHUP | CEVPL_EPOLLHUP | CEVPL_EPOLLERR) != 0 {
                readReady(flags)
            }
            if flags & CEVPL_EPOLLOUT != 0 && isLive && (!sendQueue.isEmpty || !datagrams.isEmpty) {
                markDirty()
            }
        case .closing, .free, .draining:
            return
        }
    }

    @inline(__always)
    private func readReady(_ flags: UInt32) {
        if kind == .stream {
            // With the peer's FIN (or an error) already reported in this edge,
            // read to the end: no later edge will announce it again.
            readStream(toEnd: flags & (CEVPL_EPOLLRDHUP | CEVPL_EPOLLHUP | CEVPL_EPOLLERR) != 0)
        } else {
            readDatagrams()
        }
    }

    /// The outcome of a non-blocking connect (any transport): DISCONNECTED
    /// with `error`, or CONNECTED and what was queued meanwhile marked for
    /// flushing.  Returns whether the bind is still open afterwards.
    func connectCompleted(error: CInt) -> Bool {
        if error != 0 {
            close(status: error)
            return false
        }
        state = .open
        Sys.localAddressInto(self)
        announceConnected()
        guard isLive else { return false }
        if !sendQueue.isEmpty || finishRequested { markDirty() }
        return true
    }

    // MARK: Closing

    /// Schedules the close; DISCONNECTED follows at the end of the iteration,
    /// exactly once, never from inside this call.  A second close is harmless.
    func close(status: CInt) {
        guard isLive else { return }
        state = .closing
        closeStatus = status
        loop.scheduleClose(self)
    }

    /// Graceful close: no new sends; what is queued is delivered, then the
    /// bind closes with status 0.
    func finish() {
        guard isLive else { return }
        finishRequested = true
        if state == .open { state = .finishing }
        markDirty()
    }

    /// End of the iteration: release everything, deliver DISCONNECTED, recycle.
    /// An io_uring bind with operations in flight is cancelled and drains
    /// first (its buffers may still be in the kernel's hands); it is recycled
    /// by `uringSettled` once the last completion came back.
    func completeClose() {
        // The notify callback may look at the bind (addresses, protocol) during DISCONNECTED.
        deliver(EVPL_NOTIFY_DISCONNECTED, status: closeStatus)
        loop.unregister(self)
        notify = nil
        segment = nil
        privateData = nil
        recvQueue.releaseAll()
        if transport == .rdma {
            rdmaTeardown()
            return
        }
        if transport == .uring && uringInflight > 0 {
            state = .draining
            cancelUring()
            return
        }
        recycle()
    }

    /// Closes the socket, drops what is queued, and puts the bind on the free list.
    func recycle() {
        if fd >= 0 {
            if transport == .xlio {
                if xlioWatched { loop.xlioUnwatch(fd) }
                xlioWatched = false
                Sys.close(api, fd)
            } else if transport != .rdma && kind == .stream && closeStatus == 0 && !peerClosed {
                // An orderly close that could still reset the peer (LingeringClose.swift).
                loop.lingering.close(fd, poller: loop.poller, now: loop.now)
            } else {
                Sys.close(fd)  // also removes it from epoll
            }
            fd = -1
        }
        sendQueue.releaseAll()
        recvQueue.releaseAll()
        datagrams.removeAll()
        messageEnds.removeAll()
        state = .free
        // If still linked in the dirty list (sent to, then closed, from a
        // DISCONNECTED callback), the next flush pass unlinks it; flushing a
        // free or reused bind is harmless.
        loop.freeBinds.push(Unmanaged.passUnretained(self))
    }
}

/// Closed binds waiting for reuse; the link lives in the bind, so push and pop never allocate.
struct BindFreeList {
    private var top: Unmanaged<Bind>?

    mutating func push(_ b: Unmanaged<Bind>) {
        b.takeUnretainedValue().nextFree = top
        top = b
    }

    mutating func pop() -> Unmanaged<Bind>? {
        guard let b = top else { return nil }
        top = b.takeUnretainedValue().nextFree
        b.takeUnretainedValue().nextFree = nil
        return b
    }

    /// Releases every bind (the loop is being destroyed).
    mutating func drain() {
        while let b = pop() { b.release() }
    }
}

extension Sys {
    static func localAddressInto(_ b: Bind) {
        b.local.length = withUnsafeMutablePointer(to: &b.local.storage) { localAddress(b.api, b.fd, $0) }
    }

    static func remoteAddressInto(_ b: Bind) {
        b.remote.length = withUnsafeMutablePointer(to: &b.remote.storage) { remoteAddress(b.api, b.fd, $0) }
    }
}
