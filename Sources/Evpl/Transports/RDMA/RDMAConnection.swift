import CEvpl
import CEvplLinux
import CEvplRDMA
import Glibc

/// STREAM_RDMACM_RC and DATAGRAM_RDMACM_RC: reliable connections made with
/// rdma_cm and mapped onto the bind state machine.
///
///   connect: create_id -> resolve_addr -> ADDR_RESOLVED -> resolve_route ->
///            ROUTE_RESOLVED -> queue pair -> connect -> ESTABLISHED (CONNECTED)
///   accept:  CONNECT_REQUEST on a listener's channel -> the next attached
///            loop (round-robin) -> migrated to its channel -> queue pair ->
///            attach callback -> accept -> ESTABLISHED (CONNECTED)
///   end:     evpl_finish sends a FIN after the queued data; the peer's
///            DISCONNECTED is status 0 after a FIN and ECONNRESET without one.
enum RDMAConnection {
    static let resolveTimeoutMs: CInt = 2000

    /// Context words of rdma_cm ids: a Bind (low bit clear) or an RDMAPeer (low bit set).
    @inline(__always)
    static func context(_ b: Bind) -> UnsafeMutableRawPointer { Unmanaged.passUnretained(b).toOpaque() }

    /// evpl_connect on an RC protocol.
    static func connect(loop: EventLoop, proto: evpl_protocol_id, local: Endpoint?, remote: Endpoint,
                        notify: evpl_notify_callback_t?, segment: evpl_segment_callback_t?,
                        privateData: UnsafeMutableRawPointer?) -> Bind? {
        guard let r = RDMALoop.of(loop) else { return nil }
        var peer = sockaddr_storage()
        guard let peerLength = remote.resolve(into: &peer) else { return nil }
        var mine = sockaddr_storage()
        if let local, local.resolve(into: &mine) == nil { return nil }
        let messages = proto == EVPL_DATAGRAM_RDMACM_RC
        let b = Bind.make(loop: loop, proto: proto, kind: .stream, fd: -1, notify: notify,
                          segment: messages ? nil : segment, privateData: privateData, transport: .rdma)
        b.rdma.messages = messages
        b.state = .connecting
        b.remote.storage = peer
        b.remote.length = peerLength
        guard let id = r.ops.pointee.create_id(r.channel, context(b), 0) else {
            let e = errno
            Log.error("rdma", "evpl_connect: cannot create an rdma_cm id: \(Sys.errnoText(e))")
            b.close(status: e)
            return b
        }
        b.rdma.id = id
        let rc = withUnsafePointer(to: &peer) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { dst in
                withUnsafePointer(to: &mine) { m in
                    m.withMemoryRebound(to: sockaddr.self, capacity: 1) { src in
                        r.ops.pointee.resolve_addr(id, local == nil ? nil : src, dst, resolveTimeoutMs)
                    }
                }
            }
        }
        if rc != 0 {
            Log.error("rdma", "evpl_connect to \(Address.format(&peer)): \(Sys.errnoText(rc))")
            b.close(status: rc)
        }
        return b
    }

    // MARK: Events on a loop's channel

    static func handle(_ e: inout cevpl_rdma_cm_event, on r: RDMALoop) {
        let ops = r.ops
        let owner = UInt32(bitPattern: e.type) == CEVPL_CM_CONNECT_REQUEST.rawValue ? e.listen_id : e.id
        guard let owner, let ctx = ops.pointee.id_context(owner) else {
            if UInt32(bitPattern: e.type) == CEVPL_CM_CONNECT_REQUEST.rawValue, let id = e.id {
                _ = ops.pointee.reject(id)
                _ = ops.pointee.destroy_id(id)
            }
            return
        }
        if UInt(bitPattern: ctx) & 1 != 0 {
            let peer = Unmanaged<RDMAPeer>.fromOpaque(UnsafeRawPointer(bitPattern: UInt(bitPattern: ctx) & ~1)!)
            peer._withUnsafeGuaranteedRef { $0.event(&e, on: r) }
            return
        }
        let b = Unmanaged<Bind>.fromOpaque(ctx).takeUnretainedValue()
        if UInt32(bitPattern: e.type) == CEVPL_CM_CONNECT_REQUEST.rawValue {
            RDMADatagram.request(b, &e, on: r)  // a UD bind's address resolution request
            return
        }
        guard b.transport == .rdma, b.rdma.id == e.id, b.isLive || b.state == .closing else { return }
        switch UInt32(bitPattern: e.type) {
        case CEVPL_CM_ADDR_RESOLVED.rawValue:
            if r.loop.global.rdmacmTos != 0 { _ = ops.pointee.set_tos(e.id, r.loop.global.rdmacmTos) }
            let rc = ops.pointee.resolve_route(e.id, resolveTimeoutMs)
            if rc != 0 { b.close(status: rc) }
        case CEVPL_CM_ROUTE_RESOLVED.rawValue:
            guard b.state == .connecting else { return }
            if let failure = queuePair(b, on: r) {
                b.close(status: failure)
                return
            }
            var param = connParam(r)
            let rc = ops.pointee.connect(e.id, &param)
            if rc != 0 { b.close(status: rc) }
        case CEVPL_CM_ESTABLISHED.rawValue:
            if b.state == .connecting { established(b) }
        case CEVPL_CM_ADDR_ERROR.rawValue, CEVPL_CM_ROUTE_ERROR.rawValue:
            b.close(status: EHOSTUNREACH)
        case CEVPL_CM_CONNECT_ERROR.rawValue:
            b.close(status: ETIMEDOUT)
        case CEVPL_CM_REJECTED.rawValue:
            b.close(status: ECONNREFUSED)
        case CEVPL_CM_DISCONNECTED.rawValue:
            b.rdma.disconnected = true
            b.close(status: b.rdma.peerFin ? 0 : ECONNRESET)
        case CEVPL_CM_DEVICE_REMOVAL.rawValue:
            b.close(status: ENODEV)
        default:
            return
        }
    }

    static func connParam(_ r: RDMALoop) -> cevpl_rdma_conn_param {
        let g = r.loop.global
        return cevpl_rdma_conn_param(private_data: nil, private_data_len: 0, responder_resources: 16,
                                     initiator_depth: 16, retry_count: UInt8(clamping: min(g.rdmacmRetryCount, 7)),
                                     rnr_retry_count: UInt8(clamping: min(g.rdmacmRnrRetryCount, 7)),
                                     qp_num: 0, qkey: 0)
    }

    /// Makes the RC queue pair of `b` on its id's device; nil, or the errno.
    static func queuePair(_ b: Bind, on r: RDMALoop) -> CInt? {
        let ops = r.ops
        guard let id = b.rdma.id, let device = RDMASupport.device(for: ops.pointee.id_device(id)),
              let ld = r.device(device) else { return ENODEV }
        ld.adjustTarget(by: r.window)  // receives for the peer's first window, before it may send
        b.rdma.holdsWindow = true
        b.rdma.device = Unmanaged.passUnretained(ld)
        var qpn: UInt32 = 0
        guard let qp = ld.makeQueuePair(id, ud: false, number: &qpn) else {
            let e = errno
            Log.error("rdma", "\(device.name): cannot create a queue pair: \(Sys.errnoText(e))")
            return e == 0 ? EIO : e
        }
        b.rdma.qp = qp
        b.rdma.qpNum = qpn
        r.queuePairs.insert(qpn, b)
        return nil
    }

    /// The connection is up: credits, addresses, CONNECTED.
    static func established(_ b: Bind) {
        let r = b.rdmaLoop
        b.state = .open
        b.rdma.established = true
        b.rdma.sendCredits = r.window
        b.rdma.peerCredits = r.window
        if let id = b.rdma.id {
            b.local.set(from: id, peer: false, r.ops)
            b.remote.set(from: id, peer: true, r.ops)
        }
        b.announceConnected()
        guard b.isLive else { return }
        if !b.sendQueue.isEmpty || b.finishRequested || !b.rdma.requests.isEmpty { b.markDirty() }
    }

    // MARK: Accepting

    /// A listener's channel is readable in `loop`: each request goes to the
    /// next attached loop, round-robin (Listener.handOut).
    static func listenEvents(_ socket: ListenSocket, on loop: EventLoop) {
        guard let channel = socket.rdmaChannel else { return }
        let ops = RDMASupport.ops
        var e = cevpl_rdma_cm_event()
        while ops.pointee.get_event(channel, &e) == 0 {
            guard UInt32(bitPattern: e.type) == CEVPL_CM_CONNECT_REQUEST.rawValue, let id = e.id else { continue }
            socket.listener.handOut(.rdma(id), proto: socket.proto, from: loop)
        }
    }

    /// Rejects and destroys a connection request nobody takes.
    static func refuse(_ id: UnsafeMutableRawPointer) {
        let ops = RDMASupport.ops
        _ = ops.pointee.reject(id)
        _ = ops.pointee.destroy_id(id)
    }

    /// Accepts a request on `loop` (its thread): the id moves to the loop's
    /// channel, gets a queue pair, the attach callback runs, then rdma_accept.
    static func accept(_ id: UnsafeMutableRawPointer, binding: ListenerBinding, proto: evpl_protocol_id,
                       on loop: EventLoop) {
        let ops = RDMASupport.ops
        guard let r = RDMALoop.of(loop), ops.pointee.migrate_id(id, r.channel) == 0 else {
            Log.error("rdma", "cannot accept a connection on this loop; rejected")
            refuse(id)
            return
        }
        let b = Bind.make(loop: loop, proto: proto, kind: .stream, fd: -1, notify: nil, segment: nil,
                          privateData: nil, transport: .rdma)
        b.rdma.messages = proto == EVPL_DATAGRAM_RDMACM_RC
        b.rdma.passive = true
        b.rdma.id = id
        b.state = .connecting
        ops.pointee.set_id_context(id, context(b))
        if let failure = queuePair(b, on: r) {
            _ = ops.pointee.reject(id)
            b.rdma.disconnected = true
            b.close(status: failure)
            return
        }
        binding.runAttach(b)
        if b.rdma.messages { b.segment = nil }
        guard b.isLive else {
            _ = ops.pointee.reject(id)
            b.rdma.disconnected = true
            return
        }
        var param = connParam(r)
        let rc = ops.pointee.accept(id, &param)
        if rc != 0 {
            Log.error("rdma", "rdma_accept: \(Sys.errnoText(rc))")
            b.rdma.disconnected = true
            b.close(status: rc)
        }
    }

    // MARK: Errors

    /// The errno a failed work completion closes its bind with.
    static func status(forCompletion status: CInt) -> CInt {
        switch UInt32(bitPattern: status) {
        case CEVPL_WC_WR_FLUSH_ERR.rawValue: return ECONNRESET
        case CEVPL_WC_RETRY_EXC_ERR.rawValue, CEVPL_WC_RNR_RETRY_EXC_ERR.rawValue: return ETIMEDOUT
        case CEVPL_WC_REM_ACCESS_ERR.rawValue: return EACCES
        case CEVPL_WC_LOC_LEN_ERR.rawValue: return EMSGSIZE
        case CEVPL_WC_LOC_PROT_ERR.rawValue: return EFAULT
        default: return EIO
        }
    }
}

extension Bind {
    /// End of a closed RDMA bind (after DISCONNECTED was delivered): one-sided
    /// requests still waiting fail, the queue pair is disconnected (flushing
    /// what is posted), and the bind is recycled once nothing is in flight.
    func rdmaTeardown() {
        let r = loop.rdma
        while !rdma.requests.isEmpty {
            let q = rdma.requests.at(0).pointee
            rdma.requests.removeFirst()
            if let r { q._withUnsafeGuaranteedRef { $0.fail(ECONNRESET, on: r) } }
        }
        if let r, let id = rdma.id, kind == .stream, !rdma.disconnected, rdma.qp != nil {
            _ = r.ops.pointee.disconnect(id)
            rdma.disconnected = true
        }
        if rdma.outstanding > 0 && rdma.qp != nil {
            state = .draining
            loop.drainingBinds += 1
            return
        }
        rdmaRelease()
    }

    /// The last flushed work request of a closed bind came back.
    func rdmaDrained() {
        loop.drainingBinds -= 1
        rdmaRelease()
    }

    /// Destroys the queue pair and id, gives the window back, recycles.
    private func rdmaRelease() {
        if let r = loop.rdma {
            let ops = r.ops
            if rdma.qp != nil {
                // Its receive completions still queued: take them (the slots come back) first.
                rdma.device?._withUnsafeGuaranteedRef { $0.stashCompletions() }
                r.queuePairs.remove(rdma.qpNum)
                if let id = rdma.id { ops.pointee.destroy_qp(id) }
            }
            if let id = rdma.id { _ = ops.pointee.destroy_id(id) }
            if rdma.holdsWindow, let d = rdma.device {
                d._withUnsafeGuaranteedRef { $0.adjustTarget(by: -r.window) }
            }
            for p in rdma.peers { p.release(ops) }
        }
        rdma.id = nil
        rdma.qp = nil
        rdma.qpNum = 0
        rdma.device = nil
        rdma.messages = false
        rdma.passive = false
        rdma.established = false
        rdma.holdsWindow = false
        rdma.sendCredits = 0
        rdma.peerCredits = 0
        rdma.owed = 0
        rdma.outstanding = 0
        rdma.inflight.removeAll()
        rdma.postedBytes = 0
        rdma.cursor = 0
        rdma.cursorOffset = 0
        rdma.postedMessages = 0
        rdma.finSent = false
        rdma.peerFin = false
        rdma.disconnected = false
        rdma.peers.removeAll()
        rdma.senders.removeAll()
        recycle()
    }
}

extension Address {
    /// An rdma_cm id's local (or peer) address; unset when it has none.
    func set(from id: UnsafeMutableRawPointer, peer: Bool, _ ops: UnsafeMutablePointer<cevpl_rdma_ops>) {
        length = withUnsafeMutablePointer(to: &storage) { p in
            var len: socklen_t = 0
            let rc = peer ? ops.pointee.peer_addr(id, p, &len) : ops.pointee.local_addr(id, p, &len)
            return rc == 0 ? len : 0
        }
    }
}
