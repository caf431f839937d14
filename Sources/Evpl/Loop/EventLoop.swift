import CEvpl
import CEvplLinux
import Glibc
import Synchronization

/// One event loop: `struct evpl`.  Owned by the thread that created it; every
/// method runs on that thread except `stop` and `handOff`, which any thread
/// may call (BEHAVIOR.md §Threading model).
///
/// One iteration: wait (epoll, timeout from timers, `wait_ms`, pending work
/// or zero while busy-polling) → due timers → ready I/O → deferrals → each
/// dirty bind's send flush → closes and their DISCONNECTED notifications.
final class EventLoop {
    var poller: Poller
    let config: ThreadConfig
    let global: GlobalConfig
    let pool: BufferPool
    private let wakeFd: CInt
    private let stopRequested = Atomic<Bool>(false)
    private let wakePending = Atomic<Bool>(false)

    @exclusivity(unchecked) var timers = TimerHeap()
    @exclusivity(unchecked) var deferrals = DeferralQueue()
    @exclusivity(unchecked) private(set) var now: UInt64 = Sys.monotonicNanoseconds()
    @exclusivity(unchecked) private var lastWork: UInt64 = 0
    /// Busy-poll passes in a row that found nothing (bounded by poll_iterations).
    @exclusivity(unchecked) private var emptyPolls: Int32 = 0
    @exclusivity(unchecked) private var dispatching = false
    @exclusivity(unchecked) private var removedDoorbells: [UInt64] = []

    /// Binds with queued sends (or a pending finish), flushed at the end of the iteration.
    @exclusivity(unchecked) var dirtyHead: Unmanaged<Bind>?
    /// Binds waiting for their close to complete.
    @exclusivity(unchecked) var closingHead: Unmanaged<Bind>?
    /// Every open bind of this loop (for evpl_destroy), doubly linked.
    @exclusivity(unchecked) var bindsHead: Unmanaged<Bind>?
    /// Closed binds ready for reuse.
    @exclusivity(unchecked) var freeBinds = BindFreeList()
    /// The loop's io_uring, made on first use (io_uring binds, block queues).
    @exclusivity(unchecked) var uring: Uring?
    /// Closed io_uring binds still waiting for their operations to complete.
    @exclusivity(unchecked) var drainingBinds = 0
    /// Block requests submitted and not yet completed.
    @exclusivity(unchecked) var blockInflight = 0
    /// Closed block queues (their handles stay valid until the loop is destroyed).
    @exclusivity(unchecked) var closedBlockQueues: [Unmanaged<BlockQueue>] = []
    /// io_uring listening sockets with a multishot accept on this loop's ring.
    @exclusivity(unchecked) var uringListenSockets: [ListenSocket] = []
    /// Multishot accepts posted and not yet finished.
    @exclusivity(unchecked) var uringAccepts = 0
    /// The loop's XLIO poller (XLIO's epoll), made on the first XLIO socket.
    @exclusivity(unchecked) var xlio: XLIOPoller?
    /// Closed TCP sockets draining their receive queue before close (LingeringClose.swift).
    @exclusivity(unchecked) var lingering = LingeringCloses()
    /// The loop's RDMA queues and rdma_cm channel, made by its first RDMA bind.
    @exclusivity(unchecked) var rdma: RDMALoop?
    /// Sockets registered with `xlio`: while > 0 the loop polls it every
    /// iteration and never sleeps longer than `xlioMaxSleepNs`.
    @exclusivity(unchecked) var xlioRegistrations = 0
    /// XLIO listening sockets watched by this loop's XLIO poller.
    @exclusivity(unchecked) var xlioListenSockets: [ListenSocket] = []
    /// XLIO is a busy-polling stack: its traffic is only seen by polling it.
    static let xlioMaxSleepNs: Int64 = 1_000_000
    /// Flush passes per iteration (flushDirty).
    static let flushPasses = 4
    /// io_uring and XLIO listening sockets registered from another thread, posted by this loop.
    let pendingListenSockets = Mutex<[ListenSocket]>([])
    /// Per-loop scratch for building writev/sendmmsg/recvmmsg arguments.
    let scratch: Scratch
    /// recv_msg.addr for datagrams, valid during one RECV_MSG callback.
    let recvAddress = Address()

    /// Accepted connections handed to this loop by another loop.
    private let handOffs = Mutex<[HandOff]>([])
    /// Work queued by other threads (hand-offs, listener registrations).
    let handOffCount = Atomic<Int>(0)
    @exclusivity(unchecked) var listenerBindings: [ListenerBinding] = []

    init?(config: ThreadConfig?) {
        global = Library.config
        self.config = config?.copy() ?? ThreadConfig()
        do {
            poller = try Poller(capacity: Int(global.maxPollFd))
        } catch {
            Log.error("core", "cannot create a loop: \(error.description)")
            return nil
        }
        wakeFd = cevpl_eventfd()
        if wakeFd < 0 {
            Log.error("core", "cannot create a loop: eventfd: \(String(cString: strerror(errno)))")
            return nil
        }
        pool = BufferPool.acquire()
        scratch = Scratch(global)
        do {
            try poller.add(wakeFd, CEVPL_EPOLLIN | CEVPL_EPOLLET, EventSource.token(.wake, nil))
        } catch {
            Log.error("core", "cannot create a loop: \(error.description)")
            Sys.close(wakeFd)
            pool.retire()
            return nil
        }
    }

    var handle: LoopHandle { Unmanaged.passUnretained(self).handle }

    // MARK: Running

    /// One iteration (evpl_continue).
    func iterate() {
        var timeout = nextTimeout()
        if xlioRegistrations > 0 && (timeout < 0 || timeout > EventLoop.xlioMaxSleepNs) {
            timeout = EventLoop.xlioMaxSleepNs
        }
        let n = poller.wait(timeoutNs: timeout)
        now = Sys.monotonicNanoseconds()
        var work = n
        work += runDueTimers()
        if n > 0 {
            dispatch(n)
            poller.growIfFull(n)
        }
        if xlioRegistrations > 0 { work += pollXLIO() }
        if let u = uring { work += u.reap() }
        if let r = rdma { work += r.poll() }
        if handOffCount.load(ordering: .relaxed) > 0 { work += adoptHandOffs() }
        if !deferrals.isEmpty { work += deferrals.run(handle) }
        if dirtyHead != nil { work += flushDirty() }
        if closingHead != nil { work += finishCloses() }
        if !lingering.isEmpty { lingering.expire(now: now) }
        if let u = uring { u.submit() }
        if work > 0 {
            lastWork = now
            emptyPolls = 0
        } else if timeout == 0 {
            emptyPolls &+= 1
        }
    }

    /// evpl_run: iterate until evpl_stop.
    func run() {
        while !stopRequested.load(ordering: .relaxed) {
            iterate()
        }
        stopRequested.store(false, ordering: .relaxed)
    }

    /// Any thread: make `run` return, waking the loop if it sleeps.
    func stop() {
        stopRequested.store(true, ordering: .relaxed)
        wake()
    }

    /// Any thread: interrupt the current or next wait.
    func wake() {
        if !wakePending.exchange(true, ordering: .acquiringAndReleasing) {
            Sys.eventfdWrite(wakeFd)
        }
    }

    /// The epoll timeout: zero with work pending or while busy-polling,
    /// otherwise until the next timer, bounded by wait_ms.
    private func nextTimeout() -> Int64 {
        if !deferrals.isEmpty || dirtyHead != nil || closingHead != nil
            || handOffCount.load(ordering: .relaxed) > 0 || stopRequested.load(ordering: .relaxed)
            || rdma?.hasStash == true {
            return 0
        }
        let clock = Sys.monotonicNanoseconds()
        // Hybrid polling: right after work, keep polling (zero timeout) for
        // up to spin_ns and poll_iterations empty passes, then sleep.
        if config.pollMode != 0 && global.spinNs > 0 && clock &- lastWork < global.spinNs
            && emptyPolls < config.pollIterations {
            return 0
        }
        var timeout: Int64 = config.waitMs < 0 ? -1 : Int64(config.waitMs) * 1_000_000
        if let deadline = timers.nextDeadline {
            let untilTimer = deadline > clock ? Int64(deadline - clock) : 0
            if timeout < 0 || untilTimer < timeout { timeout = untilTimer }
        }
        if let deadline = lingering.earliestDeadline {
            let until = deadline > clock ? Int64(deadline - clock) : 0
            if timeout < 0 || until < timeout { timeout = until }
        }
        return timeout
    }

    private func runDueTimers() -> Int {
        var ran = 0
        while let t = timers.popDue(now: now) {
            ran += 1
            t.pointee.callback?(handle, t)
        }
        return ran
    }

    private func dispatch(_ n: Int) {
        beginDispatch()
        for i in 0..<n {
            let (token, flags) = poller.event(i)
            dispatchOne(token, flags)
        }
        endDispatch()
    }

    @inline(__always)
    func beginDispatch() {
        dispatching = true
    }

    @inline(__always)
    func endDispatch() {
        dispatching = false
        if !removedDoorbells.isEmpty { removedDoorbells.removeAll(keepingCapacity: true) }
    }

    /// One event of either poller (kernel epoll, or XLIO's), by its token.
    @inline(__always)
    func dispatchOne(_ token: UInt64, _ flags: UInt32) {
        let kind = EventSource(rawValue: token & 7) ?? .wake
        let address = UnsafeMutableRawPointer(bitPattern: UInt(token & ~7))
        switch kind {
        case .bind:
            Unmanaged<Bind>.fromOpaque(address!)._withUnsafeGuaranteedRef { $0.handleEvent(flags) }
        case .listenSocket:
            Unmanaged<ListenSocket>.fromOpaque(address!)._withUnsafeGuaranteedRef { $0.accept(on: self) }
        case .wake:
            wakePending.store(false, ordering: .sequentiallyConsistent)
            _ = Sys.eventfdRead(wakeFd)
        case .uring:
            if let u = uring { _ = Sys.eventfdRead(u.eventFd) }  // completions are reaped below
        case .rdmaEvents:
            Unmanaged<RDMALoop>.fromOpaque(address!)._withUnsafeGuaranteedRef { $0.eventsReady() }
        case .lingering:
            lingering.ready(CInt(truncatingIfNeeded: token >> 3))
        case .rdmaCompletions:
            Unmanaged<RDMALoopDevice>.fromOpaque(address!)._withUnsafeGuaranteedRef { $0.notified() }  // polled below
        case .doorbell:
            if !removedDoorbells.isEmpty && removedDoorbells.contains(token) { return }
            let d = address!.assumingMemoryBound(to: evpl_doorbell.self)
            if Sys.eventfdRead(Doorbell.fd(d)) > 0 {
                Doorbell.callback(d)?(handle, d)
            }
        }
    }

    func removeDoorbell(_ d: UnsafeMutablePointer<evpl_doorbell>) {
        if dispatching { removedDoorbells.append(EventSource.token(.doorbell, d)) }
        Doorbell.remove(d, loop: self)
    }

    // MARK: Dirty binds and closes

    @inline(__always)
    func markDirty(_ b: Bind) {
        guard !b.isDirty else { return }
        b.isDirty = true
        b.nextDirty = dirtyHead
        dirtyHead = Unmanaged.passUnretained(b)
    }

    /// Flushes the dirty binds; a bind dirtied again by a callback during the
    /// flush (a SENT handler queueing more) gets a few more passes, then waits
    /// for the next iteration, so that one busy connection cannot keep
    /// evpl_continue from returning (timers, other binds, evpl_stop).
    private func flushDirty() -> Int {
        var flushed = 0
        var passes = 0
        while let head = dirtyHead, passes < EventLoop.flushPasses {
            passes += 1
            dirtyHead = nil
            var cursor: Unmanaged<Bind>? = head
            while let c = cursor {
                let b = c.takeUnretainedValue()
                cursor = b.nextDirty
                b.nextDirty = nil
                b.isDirty = false
                b.flush()
                flushed += 1
            }
        }
        return flushed
    }

    func scheduleClose(_ b: Bind) {
        b.nextClosing = closingHead
        closingHead = Unmanaged.passUnretained(b)
    }

    private func finishCloses() -> Int {
        var closed = 0
        while let head = closingHead {
            closingHead = nil
            var cursor: Unmanaged<Bind>? = head
            while let c = cursor {
                let b = c.takeUnretainedValue()
                cursor = b.nextClosing
                b.nextClosing = nil
                b.completeClose()
                closed += 1
            }
        }
        return closed
    }

    // MARK: Bind registry

    func register(_ b: Bind) {
        b.prevBind = nil
        b.nextBind = bindsHead
        if let h = bindsHead { h.takeUnretainedValue().prevBind = Unmanaged.passUnretained(b) }
        bindsHead = Unmanaged.passUnretained(b)
    }

    func unregister(_ b: Bind) {
        if let p = b.prevBind { p.takeUnretainedValue().nextBind = b.nextBind } else { bindsHead = b.nextBind }
        if let n = b.nextBind { n.takeUnretainedValue().prevBind = b.prevBind }
        b.prevBind = nil
        b.nextBind = nil
    }

    // MARK: Hand-offs from listeners

    struct HandOff {
        let connection: Connection
        let binding: ListenerBinding
        let proto: evpl_protocol_id
    }

    /// An incoming connection before a loop takes it: an accepted socket, or
    /// an RDMA connection request (its rdma_cm id).
    enum Connection {
        case socket(CInt)
        case rdma(UnsafeMutableRawPointer)

        /// Nobody takes it: close the socket, or reject the request.
        func discard(_ proto: evpl_protocol_id) {
            switch self {
            case .socket(let fd): Sys.close(SocketAPI.forProtocol(proto), fd)
            case .rdma(let id): RDMAConnection.refuse(id)
            }
        }
    }

    /// Any thread: queue an accepted connection for this loop and wake it.
    func handOff(_ h: HandOff) {
        handOffs.withLock { $0.append(h) }
        handOffCount.wrappingAdd(1, ordering: .releasing)
        wake()
    }

    private func adoptHandOffs() -> Int {
        handOffCount.store(0, ordering: .relaxed)
        postPendingListenSockets()
        let list = handOffs.withLock { l -> [HandOff] in
            let all = l
            l.removeAll()
            return all
        }
        for h in list {
            guard h.binding.attached else {
                h.connection.discard(h.proto)  // detached meanwhile: never leak the connection
                continue
            }
            accept(h.connection, binding: h.binding, proto: h.proto)
        }
        return list.count
    }

    /// Sets up a connection handed to this loop (by a listener, on its thread).
    func accept(_ connection: Connection, binding: ListenerBinding, proto: evpl_protocol_id) {
        switch connection {
        case .socket(let fd): TCP.accepted(fd: fd, loop: self, binding: binding, proto: proto)
        case .rdma(let id): RDMAConnection.accept(id, binding: binding, proto: proto, on: self)
        }
    }

    // MARK: Teardown

    /// evpl_destroy: closes every bind (each gets its DISCONNECTED), detaches
    /// from listeners, and releases everything.
    func destroy() {
        closeAllBinds()
        while !deferrals.isEmpty { _ = deferrals.run(handle) }
        drainUring()
        rdma?.destroy()
        rdma = nil
        lingering.expire(now: .max)
        for q in closedBlockQueues { q.release() }
        closedBlockQueues.removeAll()
        freeBinds.drain()
        xlio = nil  // closes XLIO's epoll (every XLIO socket of this loop is closed by now)
        Sys.close(wakeFd)
        pool.retire()
    }

    /// Waits (bounded) until io_uring has given back every closed bind and
    /// block request, then tears the ring down.
    private func drainUring() {
        guard let u = uring else { return }
        let deadline = Sys.monotonicNanoseconds() &+ 2_000_000_000
        while (drainingBinds > 0 || blockInflight > 0 || uringAccepts > 0) && Sys.monotonicNanoseconds() < deadline {
            u.submit()
            _ = poller.wait(timeoutNs: 1_000_000)
            _ = u.reap()
        }
        if drainingBinds > 0 || blockInflight > 0 || uringAccepts > 0 {
            Log.error("io_uring", "operations still in the kernel at evpl_destroy; leaking the ring")
            return  // the ring must outlive operations still in the kernel
        }
        uring = nil
    }

    /// Detaches from listeners and closes every bind, delivering each DISCONNECTED.
    func closeAllBinds() {
        for binding in listenerBindings { binding.listener.detach(binding) }
        listenerBindings.removeAll()
        _ = adoptHandOffs()
        var rounds = 0
        while bindsHead != nil || closingHead != nil || dirtyHead != nil {
            var cursor = bindsHead
            while let c = cursor {
                let b = c.takeUnretainedValue()
                cursor = b.nextBind
                b.close(status: 0)
            }
            if dirtyHead != nil { _ = flushDirty() }
            if closingHead != nil { _ = finishCloses() }
            rounds += 1
            if rounds > 1000 { break }  // callbacks that keep creating binds
        }
    }
}

/// Per-loop scratch arrays for system call arguments, allocated once.
final class Scratch {
    /// Datagram bytes received straight into pool memory (UDP.swift).
    static let compactSlot = 2048

    let iov: UnsafeMutablePointer<iovec>
    let iovCapacity: Int
    let msgs: UnsafeMutablePointer<cevpl_mmsghdr>
    let addrs: UnsafeMutablePointer<sockaddr_storage>
    let msgIov: UnsafeMutablePointer<iovec>
    let batch: Int
    /// Per sendmmsg entry: how many queued datagrams it carries (more than
    /// one when UDP GSO joins them), and room for its UDP_SEGMENT message.
    let runs: UnsafeMutablePointer<Int>
    let udpControl: UnsafeMutableRawPointer
    let udpControlSpace = Int(cevpl_udp_segment_space())
    let messageIovecs: UnsafeMutablePointer<evpl_iovec>
    let messageIovecCapacity: Int
    /// recvmmsg's arguments, wired once (slot i: name addrs[i], one iovec
    /// recvIov[2i] and recvIov[2i+1]); each call sets only the name lengths
    /// and the first iovec's address (UDP.swift: a compact slot, then this
    /// loop's overflow area for the rare longer datagram).
    let recvMsgs: UnsafeMutablePointer<cevpl_mmsghdr>
    let recvIov: UnsafeMutablePointer<iovec>
    /// Bytes of a datagram that land in the pool buffer; longer ones continue
    /// in `recvOverflow` and are copied out.
    let recvSlot: Int
    /// batch runs of (max_datagram_size - recvSlot + 1) bytes; untouched (so
    /// not resident) until a datagram is longer than recvSlot.
    let recvOverflow: UnsafeMutableRawPointer?
    let recvOverflowSize: Int

    init(_ g: GlobalConfig) {
        iovCapacity = Int(min(max(g.maxNumIovec, 64), 1024))
        iov = .allocate(capacity: iovCapacity)
        batch = Int(max(g.maxDatagramBatch, 1))
        msgs = .allocate(capacity: batch)
        addrs = .allocate(capacity: batch)
        msgIov = .allocate(capacity: batch * iovCapacity)
        runs = .allocate(capacity: batch)
        udpControl = .allocate(byteCount: batch * udpControlSpace, alignment: 8)
        messageIovecCapacity = Int(max(g.maxNumIovec, 1))
        messageIovecs = .allocate(capacity: messageIovecCapacity)
        recvMsgs = .allocate(capacity: batch)
        recvIov = .allocate(capacity: 2 * batch)
        let largest = Int(g.maxDatagramSize)
        recvSlot = min(largest + 1, Scratch.compactSlot)
        let overflow = largest + 1 - recvSlot
        if overflow > 0 {
            recvOverflowSize = overflow
            let p = mmap(nil, batch * overflow, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
            recvOverflow = p == MAP_FAILED ? nil : p
        } else {
            recvOverflowSize = 0
            recvOverflow = nil
        }
        let parts = recvOverflow == nil ? 1 : 2
        for i in 0..<batch {
            recvIov[2 * i] = iovec(iov_base: nil, iov_len: parts == 2 ? recvSlot : largest + 1)
            recvIov[2 * i + 1] = iovec(iov_base: recvOverflow.map { $0 + i * overflow }, iov_len: overflow)
            recvMsgs[i] = cevpl_mmsghdr(
                msg_hdr: msghdr(msg_name: UnsafeMutableRawPointer(addrs + i), msg_namelen: 0,
                                msg_iov: recvIov + 2 * i, msg_iovlen: parts, msg_control: nil, msg_controllen: 0,
                                msg_flags: 0),
                msg_len: 0)
        }
    }

    deinit {
        iov.deallocate()
        msgs.deallocate()
        addrs.deallocate()
        msgIov.deallocate()
        runs.deallocate()
        udpControl.deallocate()
        messageIovecs.deallocate()
        recvMsgs.deallocate()
        recvIov.deallocate()
        if let recvOverflow { munmap(recvOverflow, batch * recvOverflowSize) }
    }
}
