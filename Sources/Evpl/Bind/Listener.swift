import CEvpl
import CEvplLinux
import CEvplUring
import Glibc
import Synchronization

/// A server (`struct evpl_listener`): listening sockets on any number of
/// endpoints and protocols, and the loops attached to it.  Process-wide and
/// thread-safe.
///
/// Accepting costs no thread hop: every listening socket is registered in
/// every attached loop's epoll with EPOLLEXCLUSIVE, so the kernel wakes one
/// loop, which accepts.  The connection then goes to the next attached loop
/// in round-robin order: directly when that is the accepting loop, otherwise
/// through the target loop's hand-off queue.  io_uring listening sockets get
/// a multishot accept per loop, and XLIO ones are watched (level-triggered)
/// by each loop's XLIO poller; both are registered by the loop's own thread.
final class Listener {
    private struct State {
        var sockets: [ListenSocket] = []
        var bindings: [ListenerBinding] = []
        var next = 0
    }

    private let state = Mutex(State())

    var attachedCount: Int { state.withLock { $0.bindings.count } }

    /// evpl_listen: 0, or −1 with a log line (port in use, bad endpoint, ...).
    func listen(proto: evpl_protocol_id, endpoint: Endpoint) -> Int {
        var addr = sockaddr_storage()
        guard let len = endpoint.resolve(into: &addr) else { return -1 }
        if ListenSocket.isRDMA(proto) {
            guard let socket = ListenSocket.rdma(proto: proto, address: &addr, listener: self) else { return -1 }
            add(socket)
            return 0
        }
        let api = SocketAPI.forProtocol(proto)
        let fd: CInt
        do {
            fd = try Sys.socket(api, CInt(addr.ss_family), CEVPL_SOCK_STREAM)
        } catch {
            Log.error("listener", "evpl_listen: \(error.description)")
            return -1
        }
        // A port can be listened on again right after its listener is gone.
        Sys.setOption(api, fd, SOL_SOCKET, SO_REUSEADDR, 1)
        if CInt(addr.ss_family) == AF_INET6 {
            Sys.setOption(api, fd, CInt(IPPROTO_IPV6), IPV6_V6ONLY, 1)
        }
        do {
            try Sys.bind(api, fd, &addr, len)
            try Sys.listen(api, fd, CInt(clamping: Library.config.maxPending))
        } catch {
            Log.error("listener", "evpl_listen on \(Address.format(&addr)): \(error.description)")
            Sys.close(api, fd)
            return -1
        }
        add(ListenSocket(fd: fd, proto: proto, listener: self))
        return 0
    }

    private func add(_ socket: ListenSocket) {
        state.withLock { s in
            s.sockets.append(socket)
            for b in s.bindings { b.loop.registerListenSocket(socket) }
        }
    }


    func attach(_ binding: ListenerBinding) {
        state.withLock { s in
            s.bindings.append(binding)
            for socket in s.sockets { binding.loop.registerListenSocket(socket) }
        }
    }

    /// Removes `binding` (on its loop's thread); connections already handed
    /// to that loop stay there.
    func detach(_ binding: ListenerBinding) {
        state.withLock { s in
            guard let i = s.bindings.firstIndex(where: { $0 === binding }) else { return }
            s.bindings.remove(at: i)
            binding.attached = false
            for socket in s.sockets { binding.loop.unregisterListenSocket(socket) }
        }
    }

    /// Gives an incoming connection to the next attached loop, round-robin,
    /// and sets it up there: directly when that loop is `loop` itself;
    /// otherwise queued on the target loop under the lock, so a loop cannot
    /// detach and go away in between (its destroy drains the queue after
    /// detaching).  With no loop attached the connection is closed (an RDMA
    /// request rejected).
    func handOut(_ connection: EventLoop.Connection, proto: evpl_protocol_id, from loop: EventLoop) {
        let mine = state.withLock { s -> ListenerBinding? in
            guard !s.bindings.isEmpty else {
                connection.discard(proto)
                return nil
            }
            let b = s.bindings[s.next % s.bindings.count]
            s.next &+= 1
            if b.loop === loop { return b }
            b.loop.handOff(EventLoop.HandOff(connection: connection, binding: b, proto: proto))
            return nil
        }
        if let mine { loop.accept(connection, binding: mine, proto: proto) }
    }

    /// evpl_listener_destroy: closes the listening sockets.  With loops still
    /// attached (a caller error) the sockets are closed but the objects are
    /// kept, as a loop may still hold an event naming them.
    func destroy() -> Bool {
        state.withLock { s in
            for socket in s.sockets { socket.close() }
            if !s.bindings.isEmpty {
                for socket in s.sockets { _ = Unmanaged.passRetained(socket) }
                s.sockets.removeAll()
                return false
            }
            s.sockets.removeAll()
            return true
        }
    }
}

/// One listening socket of a listener.
final class ListenSocket {
    let fd: CInt
    let proto: evpl_protocol_id
    unowned(unsafe) let listener: Listener
    /// The socket calls it was made with (libc's, or libxlio's).
    unowned(unsafe) let api: SocketAPI
    /// An accept error was logged and no accept has succeeded since.
    private let acceptFailing = Atomic<Bool>(false)
    /// RDMA listeners: the rdma_cm channel (`fd` is its descriptor) and listening id.
    var rdmaChannel: UnsafeMutableRawPointer?
    var rdmaId: UnsafeMutableRawPointer?

    init(fd: CInt, proto: evpl_protocol_id, listener: Listener) {
        self.fd = fd
        self.proto = proto
        self.listener = listener
        api = SocketAPI.forProtocol(proto)
    }

    /// Readable in `loop`: accept what is pending (bounded, so one busy
    /// listener cannot starve the loop) and hand each connection out.
    func accept(on loop: EventLoop) {
        if rdmaChannel != nil { return RDMAConnection.listenEvents(self, on: loop) }
        var peer = sockaddr_storage()
        for _ in 0..<64 {
            let fd: CInt?
            do {
                fd = try Sys.accept(api, self.fd, &peer)
            } catch {
                // EMFILE and friends: stop for this pass (level-triggered, so
                // the next pass retries) and log once until an accept succeeds.
                if !acceptFailing.exchange(true, ordering: .relaxed) {
                    Log.error("listener", "accept: \(error.description)")
                }
                return
            }
            acceptFailing.store(false, ordering: .relaxed)
            guard let fd else { return }
            listener.handOut(.socket(fd), proto: proto, from: loop)
        }
    }
}

/// A listener attached to one loop (`struct evpl_listener_binding`).
final class ListenerBinding {
    let listener: Listener
    unowned(unsafe) let loop: EventLoop
    let attach: evpl_attach_callback_t?
    let privateData: UnsafeMutableRawPointer?
    /// Cleared on detach (under the listener's lock); read by hand-offs.
    var attached = true

    init(listener: Listener, loop: EventLoop, attach: evpl_attach_callback_t?, privateData: UnsafeMutableRawPointer?) {
        self.listener = listener
        self.loop = loop
        self.attach = attach
        self.privateData = privateData
    }

    /// The application's attach callback for a new connection: it sets the
    /// bind's notify and segment callbacks and its private data.
    func runAttach(_ b: Bind) {
        var notify: evpl_notify_callback_t?
        var segment: evpl_segment_callback_t?
        var conn: UnsafeMutableRawPointer?
        attach?(loop.handle, b.handle, &notify, &segment, &conn, privateData)
        b.notify = notify
        b.segment = segment
        b.privateData = conn
    }
}

extension ListenSocket {
    var usesUring: Bool { proto == EVPL_STREAM_IO_URING_TCP }
    var usesXlio: Bool { proto == EVPL_STREAM_XLIO_TCP }

    /// A multishot accept completion on `loop`'s ring: a new connection, or
    /// the end of the multishot (re-posted while the loop is still attached).
    static func uringAccepted(_ object: UnsafeMutableRawPointer, _ res: Int32, more: Bool, on loop: EventLoop) {
        let socket = Unmanaged<ListenSocket>.fromOpaque(object).takeUnretainedValue()
        if res >= 0 {
            socket.listener.handOut(.socket(res), proto: socket.proto, from: loop)
        } else if res != -ECANCELED {
            Log.debug("listener", "multishot accept: \(String(cString: strerror(-res)))")
        }
        guard !more else { return }
        let stillWatched = loop.uringListenSockets.contains { $0 === socket }
        Unmanaged<ListenSocket>.fromOpaque(object).release()  // the accept's +1
        loop.uringAccepts -= 1
        if stillWatched && res != -ECANCELED { loop.postUringAccept(socket) }
    }
}

extension EventLoop {
    /// Any thread: watch a listening socket.  Kernel-socket listeners go into
    /// epoll at once (epoll_ctl is thread-safe, and EPOLLEXCLUSIVE wakes one
    /// loop per connection).  io_uring listeners get a multishot accept on
    /// this loop's ring, which only this loop's thread may touch: queued here,
    /// posted by the loop.  XLIO listeners likewise go into the loop's XLIO
    /// poller from the loop's thread.
    func registerListenSocket(_ socket: ListenSocket) {
        if socket.usesUring || socket.usesXlio {
            pendingListenSockets.withLock { $0.append(socket) }
            handOffCount.wrappingAdd(1, ordering: .releasing)
            wake()
            return
        }
        do {
            try poller.add(socket.fd, CEVPL_EPOLLIN | CEVPL_EPOLLEXCLUSIVE,
                           EventSource.token(.listenSocket, Unmanaged.passUnretained(socket).toOpaque()))
        } catch {
            Log.error("listener", "cannot watch a listening socket: \(error.description)")
        }
    }

    /// Loop thread (detach): stop watching a listening socket.
    func unregisterListenSocket(_ socket: ListenSocket) {
        guard socket.usesUring || socket.usesXlio else {
            poller.remove(socket.fd)
            return
        }
        pendingListenSockets.withLock { $0.removeAll { $0 === socket } }
        if socket.usesXlio {
            guard let i = xlioListenSockets.firstIndex(where: { $0 === socket }) else { return }
            xlioListenSockets.remove(at: i)
            xlioUnwatch(socket.fd)
            return
        }
        guard let i = uringListenSockets.firstIndex(where: { $0 === socket }) else { return }
        uringListenSockets.remove(at: i)
        if let u = uring {
            let token = Uring.token(.accept, Unmanaged.passUnretained(socket).toOpaque())
            cevpl_uring_prep_cancel_data(u.sqe(), token, Uring.token(.ignore, Unmanaged.passUnretained(socket).toOpaque()))
        }
    }

    /// Loop thread: post the multishot accepts queued by `registerListenSocket`.
    func postPendingListenSockets() {
        let pending = pendingListenSockets.withLock { l -> [ListenSocket] in
            let all = l
            l.removeAll()
            return all
        }
        for socket in pending {
            if socket.usesXlio {
                do {
                    try xlioWatch(socket.fd, CEVPL_EPOLLIN,
                                  EventSource.token(.listenSocket, Unmanaged.passUnretained(socket).toOpaque()))
                    xlioListenSockets.append(socket)
                } catch {
                    Log.error("listener", "STREAM_XLIO_TCP: cannot watch a listening socket: \(error.description)")
                }
                continue
            }
            guard IoUringTCP.ring(self) != nil else {
                Log.error("listener", "STREAM_IO_URING_TCP: this loop has no io_uring; not accepting here")
                continue
            }
            uringListenSockets.append(socket)
            postUringAccept(socket)
        }
    }

    func postUringAccept(_ socket: ListenSocket) {
        guard let u = uring else { return }
        let token = Uring.token(.accept, Unmanaged.passRetained(socket).toOpaque())
        cevpl_uring_prep_accept_multishot(u.sqe(), socket.fd, token)
        uringAccepts += 1
    }
}
