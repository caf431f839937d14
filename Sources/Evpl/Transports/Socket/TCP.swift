import CEvpl
import CEvplLinux
import Glibc

/// STREAM_SOCKET_TCP: the stream state machine of Bind over a kernel socket.
/// Reads go into the loop's pool buffers until a short read (edge-triggered:
/// new data raises a new edge); writes are one writev per flush.
/// STREAM_XLIO_TCP is the same code driven through libxlio's socket table
/// (`Bind.api`) and polled through XLIO's epoll; STREAM_IO_URING_TCP shares
/// the setup here and moves bytes by completions (IoUringTCP).
enum TCP {
    /// Reads of less than this start a fresh buffer rather than a sliver.
    static let minimumRead = 16 * 1024

    /// evpl_connect: a non-blocking connect; CONNECTED or DISCONNECTED follows
    /// from the loop.  nil (with a log line) when the socket cannot be made.
    static func connect(loop: EventLoop, proto: evpl_protocol_id, local: Endpoint?, remote: Endpoint,
                        notify: evpl_notify_callback_t?, segment: evpl_segment_callback_t?,
                        privateData: UnsafeMutableRawPointer?) -> Bind? {
        let transport = Bind.Transport(proto)
        if transport == .uring && IoUringTCP.ring(loop) == nil { return nil }
        let api = SocketAPI.forProtocol(proto)
        var peer = sockaddr_storage()
        guard let peerLength = remote.resolve(into: &peer) else { return nil }
        let fd: CInt
        do {
            fd = try Sys.socket(api, CInt(peer.ss_family), CEVPL_SOCK_STREAM)
        } catch {
            Log.error("tcp", "evpl_connect: \(error.description)")
            return nil
        }
        Sys.setOption(api, fd, CInt(IPPROTO_TCP), TCP_NODELAY, 1)
        if let local {
            var mine = sockaddr_storage()
            guard let mineLength = local.resolve(into: &mine) else {
                Sys.close(api, fd)
                return nil
            }
            Sys.setOption(api, fd, SOL_SOCKET, SO_REUSEADDR, 1)
            do {
                try Sys.bind(api, fd, &mine, mineLength)
            } catch {
                Log.error("tcp", "evpl_connect: local endpoint \(Address.format(&mine)): \(error.description)")
                Sys.close(api, fd)
                return nil
            }
        }
        let b = Bind.make(loop: loop, proto: proto, kind: .stream, fd: fd, notify: notify,
                          segment: segment, privateData: privateData, transport: transport)
        b.state = .connecting
        b.remote.storage = peer
        b.remote.length = peerLength
        do {
            if transport == .uring {
                _ = try Sys.connect(api, fd, &peer, peerLength)
                b.startUringConnect()
            } else {
                // Registered before connect: the first writable edge reports the outcome.
                try b.watch()
                _ = try Sys.connect(api, fd, &peer, peerLength)
            }
        } catch {
            b.close(status: error.errno)  // DISCONNECTED from the loop, never from here
        }
        return b
    }

    /// A connection accepted for `loop`: the attach callback sets it up, then CONNECTED.
    static func accepted(fd: CInt, loop: EventLoop, binding: ListenerBinding, proto: evpl_protocol_id) {
        let transport = Bind.Transport(proto)
        let api = SocketAPI.forProtocol(proto)
        if transport == .uring && IoUringTCP.ring(loop) == nil {
            Sys.close(api, fd)
            return
        }
        Sys.setOption(api, fd, CInt(IPPROTO_TCP), TCP_NODELAY, 1)
        let b = Bind.make(loop: loop, proto: proto, kind: .stream, fd: fd, notify: nil, segment: nil,
                          privateData: nil, transport: transport)
        b.state = .open
        Sys.localAddressInto(b)
        Sys.remoteAddressInto(b)
        do {
            try b.watch()
        } catch {
            Log.error("tcp", "accepted connection: \(error.description)")
            b.close(status: error.errno)
            return
        }
        binding.runAttach(b)
        guard b.isLive else { return }
        b.announceConnected()
    }
}

extension Bind {
    /// Reads until the socket is drained, then tells the application once.
    func readStream(toEnd: Bool) {
        let pool = loop.pool  // loaded once per call, not per read
        var got = false
        while true {
            guard let (p, room) = pool.reserve(minimum: TCP.minimumRead) else {
                Log.error("tcp", "out of buffer memory; closing the connection")
                close(status: ENOMEM)
                return
            }
            let r: IOResult
            do {
                r = try Sys.read(api.read, fd, p, room)
            } catch {
                if got { delivered(newBytes: true) }
                close(status: error.errno)
                return
            }
            switch r {
            case .wouldBlock:
                delivered(newBytes: got)
                return
            case .done(0):
                peerClosed = true
                delivered(newBytes: got)
                return
            case .done(let n):
                recvQueue.appendMerging(pool.commit(p, n))
                got = true
                if n < room && !toEnd {  // short read: drained (a later arrival raises a new edge)
                    delivered(newBytes: true)
                    return
                }
            }
        }
    }

    /// One writev per pass over the queued iovecs, until the queue is empty
    /// or the kernel pushes back (then the writable edge marks us dirty again).
    func flushStream() {
        let iov = loop.scratch.iov
        let cap = loop.scratch.iovCapacity
        while !sendQueue.isEmpty {
            let n = min(sendQueue.count, cap)
            var offered = 0
            for i in 0..<n {
                let v = sendQueue.at(i)
                iov[i] = iovec(iov_base: v.pointee.data, iov_len: Int(v.pointee.length))
                offered += Int(v.pointee.length)
            }
            let r: IOResult
            do {
                r = try Sys.writev(api.writev, fd, iov, n)
            } catch {
                close(status: error.errno)
                return
            }
            guard case .done(let written) = r else { break }
            sendQueue.consume(written)
            writtenTotal &+= UInt64(written)
            sentBytes &+= UInt64(written)
            sentMsgs &+= messageEnds.popCompleted(writtenTotal)
            if written < offered { break }
        }
        notifySent()
        if finishRequested && sendQueue.isEmpty && isLive {
            close(status: 0)
        }
    }
}

extension Bind.Transport {
    /// The transport of a stream protocol.
    init(_ proto: evpl_protocol_id) {
        switch proto {
        case EVPL_STREAM_IO_URING_TCP: self = .uring
        case EVPL_STREAM_XLIO_TCP: self = .xlio
        default: self = .socket
        }
    }
}
