// The rdma_cm half of the model: event channels, ids, addresses, RC
// connection establishment and teardown, UD SIDR.  Every method runs with
// the model's lock held.
import CEvplRDMA
import Glibc

/// REJECTED status when nothing listens at the destination (IB_CM_REJ_INVALID_SERVICE_ID).
let REJECT_NO_LISTENER: Int32 = 8
/// REJECTED status after rdma_reject or a vanished peer (IB_CM_REJ_CONSUMER_DEFINED).
let REJECT_CONSUMER: Int32 = 28

extension VerbsModel {
    // MARK: Events

    func makeEvent(_ type: cevpl_rdma_cm_event_type, _ id: Token, status: Int32 = 0, listen: Token = 0,
                   priv: UnsafeRawBufferPointer? = nil) -> cevpl_rdma_cm_event {
        var e = cevpl_rdma_cm_event()
        e.type = Int32(type.rawValue)
        e.status = status
        e.id = modelHandle(id)
        e.listen_id = listen == 0 ? nil : modelHandle(listen)
        if let priv, priv.count > 0 {
            let n = min(priv.count, Int(CEVPL_RDMA_PRIVATE_DATA_MAX))
            e.private_data_len = UInt8(n)
            withUnsafeMutableBytes(of: &e.private_data) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: priv[0..<n])) }
        }
        return e
    }

    func queue(_ id: CMID, _ e: cevpl_rdma_cm_event) {
        guard let ch = channels[id.channel] else { return }  // channel gone: the event is lost
        ch.events.append(e)
        c.cmEvents += 1
        modelSignal(ch.fd)
    }

    func queueDisconnected(_ id: CMID, status: Int32) {
        guard !id.disconnectedQueued else { return }
        id.disconnectedQueued = true
        queue(id, makeEvent(CEVPL_CM_DISCONNECTED, id.token, status: status))
    }

    private func privateData(_ param: cevpl_rdma_conn_param) -> UnsafeRawBufferPointer? {
        guard let p = param.private_data, param.private_data_len > 0 else { return nil }
        return UnsafeRawBufferPointer(start: p, count: Int(param.private_data_len))
    }

    // MARK: Channels

    func createEventChannel(_ fd: UnsafeMutablePointer<Int32>?) -> UnsafeMutableRawPointer? {
        let f = modelEventfd()
        guard f >= 0 else { return nil }
        let ch = Channel(token: newToken(), fd: f)
        channels[ch.token] = ch
        fd?.pointee = f
        return modelHandle(ch.token)
    }

    func destroyEventChannel(_ p: UnsafeMutableRawPointer?) {
        let t = tok(p)
        guard let ch = channels[t] else { return violation("destroy_event_channel: unknown or destroyed channel") }
        let users = ids.values.filter { $0.channel == t }.count
        if users > 0 { violation("destroy_event_channel: \(users) ids still use it") }
        close(ch.fd)
        channels[t] = nil
    }

    func getEvent(_ p: UnsafeMutableRawPointer?, _ out: UnsafeMutablePointer<cevpl_rdma_cm_event>?) -> Int32 {
        guard let ch = channels[tok(p)] else {
            violation("get_event: unknown or destroyed channel")
            return EINVAL
        }
        guard let out else {
            violation("get_event: NULL event")
            return EINVAL
        }
        guard let e = ch.events.popFirst() else {
            modelDrain(ch.fd)
            return EAGAIN
        }
        if ch.events.isEmpty { modelDrain(ch.fd) }
        out.pointee = e
        // The active side processes the REP here (librdmacm moves its QP to
        // RTR/RTS and sends the RTU); only then is the passive side established.
        if e.type == Int32(CEVPL_CM_ESTABLISHED.rawValue), let id = ids[tok(e.id)], !id.ud, id.isActive,
           id.establishedPending {
            id.establishedPending = false
            if let q = id.qp, q.state != .error { q.rts = true }
            if id.state == .connected, let o = id.other.flatMap({ ids[$0] }), o.state == .connected {
                queue(o, makeEvent(CEVPL_CM_ESTABLISHED, o.token))
            }
        }
        return 0
    }

    // MARK: Ids

    func createID(_ ch: UnsafeMutableRawPointer?, _ context: UnsafeMutableRawPointer?, _ ud: Int32) -> UnsafeMutableRawPointer? {
        guard channels[tok(ch)] != nil else {
            violation("create_id: unknown or destroyed channel")
            errno = EINVAL
            return nil
        }
        if let e = takeFailure(.createID) { errno = e; return nil }
        let id = CMID(token: newToken(), channel: tok(ch), context: context, ud: ud != 0)
        ids[id.token] = id
        return modelHandle(id.token)
    }

    func lookupID(_ p: UnsafeMutableRawPointer?, _ op: String) -> CMID? {
        guard let id = ids[tok(p)] else {
            violation("\(op): unknown or destroyed id")
            return nil
        }
        return id
    }

    func destroyID(_ p: UnsafeMutableRawPointer?) -> Int32 {
        guard let id = lookupID(p, "destroy_id") else { return EINVAL }
        if id.qp != nil {
            violation("destroy_id: the id still has a QP (destroy_qp first)")
            destroyQP(of: id)
        }
        let other = id.other.flatMap { ids[$0] }
        switch id.state {
        case .connected where !id.ud:
            if let o = other, o.state == .connected {
                if id.isActive && id.establishedPending {
                    // The RTU never went out: the passive side times out.
                    o.state = .rejected
                    setError(o.qp)
                    queue(o, makeEvent(CEVPL_CM_CONNECT_ERROR, o.token, status: ETIMEDOUT))
                } else {
                    o.state = .disconnected
                    setError(o.qp)
                    queueDisconnected(o, status: 0)
                }
            }
        case .connecting:
            if let o = other, o.state == .requestPending { withdrawRequest(o) }
        case .requestPending:
            if let a = other, a.state == .connecting { rejectActive(a, status: REJECT_CONSUMER) }
        case .listening:
            // Requests the engine has not fetched yet die with the listener.
            let unseen = ids.values.filter { r in
                r.listener == id.token && r.state == .requestPending && isUnfetchedRequest(r)
            }.sorted { $0.token < $1.token }
            for r in unseen {
                purgeEvents(of: r)
                ids[r.token] = nil
                if let a = r.other.flatMap({ ids[$0] }), a.state == .connecting { rejectActive(a, status: REJECT_NO_LISTENER) }
            }
        default:
            break
        }
        purgeEvents(of: id)
        ids[id.token] = nil
        return 0
    }

    private func isUnfetchedRequest(_ r: CMID) -> Bool {
        guard let ch = channels[r.channel] else { return false }
        return ch.events.elements.contains {
            $0.type == Int32(CEVPL_CM_CONNECT_REQUEST.rawValue) && tok($0.id) == r.token
        }
    }

    private func purgeEvents(of id: CMID) {
        guard let ch = channels[id.channel] else { return }
        ch.events.removeAll { tok($0.id) == id.token }
        if ch.events.isEmpty { modelDrain(ch.fd) }
    }

    /// The active side gave up while its request was pending.
    private func withdrawRequest(_ r: CMID) {
        if isUnfetchedRequest(r) {
            purgeEvents(of: r)
            ids[r.token] = nil
            return
        }
        r.state = .rejected
        if !r.ud { queue(r, makeEvent(CEVPL_CM_REJECTED, r.token, status: REJECT_CONSUMER)) }
    }

    private func rejectActive(_ a: CMID, status: Int32) {
        a.state = .rejected
        if a.ud {
            queue(a, makeEvent(CEVPL_CM_CONNECT_ERROR, a.token, status: ECONNREFUSED))
        } else {
            queue(a, makeEvent(CEVPL_CM_REJECTED, a.token, status: status))
        }
    }

    func idContext(_ p: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? {
        lookupID(p, "id_context")?.context
    }

    func setIDContext(_ p: UnsafeMutableRawPointer?, _ context: UnsafeMutableRawPointer?) {
        lookupID(p, "set_id_context")?.context = context
    }

    func idDevice(_ p: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? {
        guard let id = lookupID(p, "id_device") else { return nil }
        return id.hasDevice ? modelHandle(device) : nil
    }

    // MARK: Addresses

    private func portInUse(_ a: ModelAddress, ud: Bool) -> Bool {
        ids.values.contains { $0.ownsPort && $0.ud == ud && $0.local.map { $0.overlaps(a) } == true }
    }

    private func ephemeralPort(ud: Bool) -> UInt16 {
        while true {
            let p = nextEphemeralPort
            nextEphemeralPort = nextEphemeralPort >= 60999 ? 40000 : nextEphemeralPort + 1
            if !ids.values.contains(where: { $0.ownsPort && $0.ud == ud && $0.local?.port == p }) { return p }
        }
    }

    func bindAddr(_ p: UnsafeMutableRawPointer?, _ sa: UnsafePointer<sockaddr>?) -> Int32 {
        guard let id = lookupID(p, "bind_addr") else { return EINVAL }
        guard let sa, var a = ModelAddress(sa) else { return EAFNOSUPPORT }
        guard id.state == .idle else {
            violation("bind_addr: the id is not idle")
            return EINVAL
        }
        if a.port == 0 {
            a.port = ephemeralPort(ud: id.ud)
        } else if portInUse(a, ud: id.ud) {
            return EADDRINUSE
        }
        id.local = a
        id.ownsPort = true
        id.state = .bound
        id.hasDevice = !a.isWildcard
        return 0
    }

    func listen(_ p: UnsafeMutableRawPointer?, _ backlog: Int32) -> Int32 {
        guard let id = lookupID(p, "listen") else { return EINVAL }
        switch id.state {
        case .idle:
            // The kernel binds an unbound listener to the wildcard, any port.
            id.local = ModelAddress(family: AF_INET, bytes: [0, 0, 0, 0], port: ephemeralPort(ud: id.ud))
            id.ownsPort = true
        case .bound, .listening:
            break
        default:
            violation("listen: the id is connecting or connected")
            return EINVAL
        }
        id.state = .listening
        id.backlog = Int(backlog)
        return 0
    }

    func resolveAddr(_ p: UnsafeMutableRawPointer?, _ src: UnsafePointer<sockaddr>?, _ dst: UnsafePointer<sockaddr>?,
                     _ timeout: Int32) -> Int32 {
        guard let id = lookupID(p, "resolve_addr") else { return EINVAL }
        guard id.state == .idle || id.state == .bound else {
            violation("resolve_addr: the id is not idle or bound")
            return EINVAL
        }
        guard let dst, let d = ModelAddress(dst) else { return EAFNOSUPPORT }
        if id.state == .idle {
            if let src, var s = ModelAddress(src) {
                if s.port == 0 {
                    s.port = ephemeralPort(ud: id.ud)
                } else if portInUse(s, ud: id.ud) {
                    return EADDRINUSE
                }
                id.local = s
            } else {
                id.local = ModelAddress.loopback(d.family, port: ephemeralPort(ud: id.ud))
            }
            id.ownsPort = true
        }
        if let l = id.local, l.isWildcard { id.local = ModelAddress.loopback(l.family, port: l.port) }
        id.peer = d
        id.hasDevice = true
        id.state = .addrResolved
        queue(id, makeEvent(CEVPL_CM_ADDR_RESOLVED, id.token))
        return 0
    }

    func resolveRoute(_ p: UnsafeMutableRawPointer?, _ timeout: Int32) -> Int32 {
        guard let id = lookupID(p, "resolve_route") else { return EINVAL }
        guard id.state == .addrResolved else {
            violation("resolve_route: the address is not resolved")
            return EINVAL
        }
        id.state = .routeResolved
        queue(id, makeEvent(CEVPL_CM_ROUTE_RESOLVED, id.token))
        return 0
    }

    func localAddr(_ p: UnsafeMutableRawPointer?, _ out: UnsafeMutablePointer<sockaddr_storage>?,
                   _ len: UnsafeMutablePointer<socklen_t>?) -> Int32 {
        guard let id = lookupID(p, "local_addr"), let out else { return EINVAL }
        guard let a = id.local else {
            // Never set: like getsockname on an unbound socket (rdma.c does the same).
            out.pointee = sockaddr_storage()
            len?.pointee = 0
            return 0
        }
        a.store(out, len)
        return 0
    }

    func peerAddr(_ p: UnsafeMutableRawPointer?, _ out: UnsafeMutablePointer<sockaddr_storage>?,
                  _ len: UnsafeMutablePointer<socklen_t>?) -> Int32 {
        guard let id = lookupID(p, "peer_addr"), let out else { return EINVAL }
        guard let a = id.peer else { return ENOTCONN }
        a.store(out, len)
        return 0
    }

    func pathMTU(_ p: UnsafeMutableRawPointer?) -> UInt32 {
        guard let id = lookupID(p, "path_mtu") else { return 0 }
        return id.hasDevice ? opts.pathMTU : 0
    }

    /// rdma_migrate_id: the id's later events, and those still queued for it, go to `ch`.
    func migrateID(_ p: UnsafeMutableRawPointer?, _ ch: UnsafeMutableRawPointer?) -> Int32 {
        guard let id = lookupID(p, "migrate_id") else { return EINVAL }
        guard let to = channels[tok(ch)] else {
            violation("migrate_id: unknown or destroyed channel")
            return EINVAL
        }
        if let from = channels[id.channel], from !== to {
            let moving = from.events.elements.filter { tok($0.id) == id.token }
            if !moving.isEmpty {
                from.events.removeAll { tok($0.id) == id.token }
                if from.events.isEmpty { modelDrain(from.fd) }
                for e in moving {
                    to.events.append(e)
                    modelSignal(to.fd)
                }
            }
        }
        id.channel = to.token
        return 0
    }

    func setTOS(_ p: UnsafeMutableRawPointer?, _ tos: UInt8) -> Int32 {
        guard let id = lookupID(p, "set_tos") else { return EINVAL }
        id.tos = tos
        return 0
    }

    // MARK: Connections

    func connect(_ p: UnsafeMutableRawPointer?, _ param: UnsafePointer<cevpl_rdma_conn_param>?) -> Int32 {
        guard let id = lookupID(p, "connect") else { return EINVAL }
        if let e = takeFailure(.connect) { return e }
        guard id.state == .routeResolved, let dst = id.peer else {
            violation("connect: the route is not resolved")
            return EINVAL
        }
        guard let param = param?.pointee else {
            violation("connect: NULL parameters")
            return EINVAL
        }
        guard Int(param.private_data_len) <= Int(CEVPL_RDMA_PRIVATE_DATA_MAX) else {
            violation("connect: \(param.private_data_len) bytes of private data")
            return EINVAL
        }
        guard id.ud || id.qp != nil else {
            violation("connect: an RC id without a QP")
            return EINVAL
        }
        id.isActive = true
        let listener = ids.values.filter { l in
            l.state == .listening && l.ud == id.ud && l.local.map { $0.accepts(dst) } == true && channels[l.channel] != nil
        }.min { $0.token < $1.token }
        guard let l = listener else {
            rejectActive(id, status: REJECT_NO_LISTENER)
            return 0
        }
        let waiting = ids.values.filter { $0.listener == l.token && $0.state == .requestPending }.count
        if l.backlog > 0 && waiting >= l.backlog {
            rejectActive(id, status: REJECT_CONSUMER)
            return 0
        }
        let r = CMID(token: newToken(), channel: l.channel, context: l.context, ud: id.ud)
        var here = dst
        if here.isWildcard { here = ModelAddress.loopback(here.family, port: here.port) }
        r.local = here
        r.peer = id.local
        r.hasDevice = true
        r.state = .requestPending
        r.other = id.token
        r.listener = l.token
        ids[r.token] = r
        id.state = .connecting
        id.other = r.token
        queue(l, makeEvent(CEVPL_CM_CONNECT_REQUEST, r.token, listen: l.token, priv: privateData(param)))
        return 0
    }

    func accept(_ p: UnsafeMutableRawPointer?, _ param: UnsafePointer<cevpl_rdma_conn_param>?) -> Int32 {
        guard let r = lookupID(p, "accept") else { return EINVAL }
        if let e = takeFailure(.accept) { return e }
        guard r.state == .requestPending else {
            if r.state != .rejected { violation("accept: not a pending connection request") }
            return EINVAL
        }
        let param = param?.pointee ?? cevpl_rdma_conn_param()
        guard Int(param.private_data_len) <= Int(CEVPL_RDMA_PRIVATE_DATA_MAX) else {
            violation("accept: \(param.private_data_len) bytes of private data")
            return EINVAL
        }
        let a = r.other.flatMap { ids[$0] }
        if r.ud {
            r.state = .connected
            guard let a, a.state == .connecting else { return 0 }
            // The kernel answers with the id's qkey (RDMA_UDP_QKEY); the accept's qkey is not passed on.
            var qkey = RDMA_UDP_QKEY
            if let q = qpByNum[param.qp_num], q.ud {
                qkey = q.qkey
            } else {
                violation("accept (UD): qp_num \(param.qp_num) is no live UD QP")
            }
            a.state = .connected
            var e = makeEvent(CEVPL_CM_ESTABLISHED, a.token, priv: privateData(param))
            e.ud_qp_num = param.qp_num
            e.ud_qkey = qkey
            e.ud_ah_attr.0 = MODEL_AH_MAGIC
            e.ud_ah_attr.1 = 1
            e.ud_ah_attr.2 = UInt64(param.qp_num)
            e.ud_ah_attr.3 = UInt64(r.local?.port ?? 0)
            queue(a, e)
            return 0
        }
        guard let q = r.qp else {
            violation("accept: an RC id without a QP")
            return EINVAL
        }
        guard let a, a.state == .connecting, let aq = a.qp else {
            r.state = .rejected
            queue(r, makeEvent(CEVPL_CM_CONNECT_ERROR, r.token, status: ETIMEDOUT))
            return 0
        }
        q.peerQPN = aq.qpn
        aq.peerQPN = q.qpn
        if q.state != .error { q.rts = true }
        r.state = .connected
        a.state = .connected
        a.establishedPending = true
        queue(a, makeEvent(CEVPL_CM_ESTABLISHED, a.token, priv: privateData(param)))
        return 0
    }

    func reject(_ p: UnsafeMutableRawPointer?) -> Int32 {
        guard let r = lookupID(p, "reject") else { return EINVAL }
        guard r.state == .requestPending else {
            if r.state != .rejected { violation("reject: not a pending connection request") }
            return EINVAL
        }
        r.state = .rejected
        if let a = r.other.flatMap({ ids[$0] }), a.state == .connecting { rejectActive(a, status: REJECT_CONSUMER) }
        return 0
    }

    func disconnect(_ p: UnsafeMutableRawPointer?) -> Int32 {
        guard let id = lookupID(p, "disconnect") else { return EINVAL }
        switch id.state {
        case .connected where id.ud:
            return 0
        case .connected:
            var sides = [id]
            if let o = id.other.flatMap({ ids[$0] }), o.state == .connected { sides.append(o) }
            for s in sides {
                s.state = .disconnected
                setError(s.qp)
                queueDisconnected(s, status: 0)
            }
            return 0
        case .disconnected:
            return 0
        default:
            return EINVAL
        }
    }
}
