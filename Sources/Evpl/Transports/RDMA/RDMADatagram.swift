import CEvpl
import CEvplRDMA
import Glibc

/// DATAGRAM_RDMACM_UD: a UD queue pair on an rdma_cm id bound to the bind's
/// address.  The id also listens, so peers can resolve it: the first
/// datagram to a new address resolves it (address, route, then rdma_cm's
/// service-id resolution, whose request carries our queue pair and port and
/// whose answer carries theirs); the address handle is cached per peer.
/// Receives come from the loop's shared receive queue like RC ones, after
/// the 40-byte GRH; the sender's address is the one its resolution request
/// announced.  Datagrams are at most the path MTU (or
/// rdmacm_datagram_size_override), and never more than a receive slot.
enum RDMADatagram {
    /// Private data of a resolution request: magic, queue pair, port.
    static let magic: UInt32 = 0x4556_5544  // "EVUD"

    static func bind(loop: EventLoop, endpoint: Endpoint, notify: evpl_notify_callback_t?,
                     privateData: UnsafeMutableRawPointer?) -> Bind? {
        guard let r = RDMALoop.of(loop) else { return nil }
        let ops = r.ops
        var mine = sockaddr_storage()
        guard endpoint.resolve(into: &mine) != nil else { return nil }
        guard let id = ops.pointee.create_id(r.channel, nil, 1) else {
            Log.error("rdma", "evpl_bind: cannot create an rdma_cm id: \(Sys.errnoText(errno))")
            return nil
        }
        func fail(_ what: String, _ rc: CInt) -> Bind? {
            Log.error("rdma", "evpl_bind \(Address.format(&mine)): \(what): \(Sys.errnoText(rc))")
            _ = ops.pointee.destroy_id(id)
            return nil
        }
        var rc = withUnsafePointer(to: &mine) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { ops.pointee.bind_addr(id, $0) }
        }
        if rc != 0 { return fail("bind", rc) }
        rc = ops.pointee.listen(id, CInt(clamping: Library.config.maxPending))
        if rc != 0 { return fail("listen", rc) }
        guard let device = RDMASupport.device(for: ops.pointee.id_device(id)), let ld = r.device(device) else {
            return fail("no RDMA device", ENODEV)
        }
        var qpn: UInt32 = 0
        guard let qp = ld.makeQueuePair(id, ud: true, number: &qpn) else {
            let e = errno
            return fail("queue pair", e == 0 ? EIO : e)
        }
        ld.adjustTarget(by: r.window)
        let b = Bind.make(loop: loop, proto: EVPL_DATAGRAM_RDMACM_UD, kind: .datagram, fd: -1, notify: notify,
                          segment: nil, privateData: privateData, transport: .rdma)
        ops.pointee.set_id_context(id, RDMAConnection.context(b))
        b.rdma.id = id
        b.rdma.qp = qp
        b.rdma.qpNum = qpn
        b.rdma.device = Unmanaged.passUnretained(ld)
        b.rdma.holdsWindow = true
        b.rdma.established = true
        b.rdma.disconnected = true  // nothing to disconnect
        let g = loop.global
        let mtu = g.rdmacmDatagramSizeOverride != 0 ? Int(g.rdmacmDatagramSizeOverride) : Int(ops.pointee.path_mtu(id))
        b.rdma.datagramSize = min(mtu > 0 ? mtu : 1024, r.slotSize - Int(CEVPL_RDMA_GRH_SIZE))
        r.queuePairs.insert(qpn, b)
        b.state = .open
        b.local.set(from: id, peer: false, ops)
        return b
    }

    /// A peer resolving this UD bind: remember its address by queue pair, answer.
    static func request(_ b: Bind, _ e: inout cevpl_rdma_cm_event, on r: RDMALoop) {
        let ops = r.ops
        guard let id = e.id else { return }
        defer { _ = ops.pointee.destroy_id(id) }
        guard b.kind == .datagram, b.transport == .rdma, b.isLive, e.private_data_len >= 10 else {
            _ = ops.pointee.reject(id)
            return
        }
        let (magic, qpn, port) = withUnsafeBytes(of: &e.private_data) { p in
            (p.loadUnaligned(fromByteOffset: 0, as: UInt32.self), p.loadUnaligned(fromByteOffset: 4, as: UInt32.self),
             p.loadUnaligned(fromByteOffset: 8, as: UInt16.self))
        }
        guard magic == RDMADatagram.magic else {
            _ = ops.pointee.reject(id)
            return
        }
        let from = Address()
        from.set(from: id, peer: true, ops)
        Address.setPort(&from.storage, port)
        b.rdma.senders[qpn] = from
        var param = RDMAConnection.connParam(r)
        param.qp_num = b.rdma.qpNum
        param.qkey = 0  // the queue pair's own
        let rc = ops.pointee.accept(id, &param)
        if rc != 0 { Log.error("rdma", "answering a UD resolution: \(Sys.errnoText(rc))") }
    }
}

/// A destination of a UD bind: resolving, ready (address handle, queue
/// pair, qkey), or failed (its queued datagrams are dropped).
final class RDMAPeer {
    enum State { case resolving, ready, failed }

    var state = State.resolving
    var address: sockaddr_storage
    let addressLength: socklen_t
    var id: UnsafeMutableRawPointer?
    var ah: UnsafeMutableRawPointer?
    var qpn: UInt32 = 0
    var qkey: UInt32 = 0
    unowned(unsafe) let bind: Bind

    init(bind: Bind, address: UnsafePointer<sockaddr_storage>, length: socklen_t) {
        self.bind = bind
        self.address = address.pointee
        addressLength = length
    }

    @inline(__always)
    func matches(_ a: UnsafePointer<sockaddr_storage>, _ length: socklen_t) -> Bool {
        length == addressLength && withUnsafePointer(to: &address) { memcmp($0, a, Int(length)) == 0 }
    }

    var context: UnsafeMutableRawPointer { Unmanaged.passUnretained(self).toOpaque() + 1 }

    /// Starts resolution; false (state failed) when it cannot even start.
    func resolve(on r: RDMALoop) -> Bool {
        let ops = r.ops
        guard let id = ops.pointee.create_id(r.channel, context, 1) else {
            state = .failed
            return false
        }
        self.id = id
        var src = bind.local.storage
        let rc = withUnsafePointer(to: &address) { d in
            d.withMemoryRebound(to: sockaddr.self, capacity: 1) { dst in
                withUnsafeMutablePointer(to: &src) { s in
                    Address.setPort(s, 0)
                    return s.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        ops.pointee.resolve_addr(id, bind.local.length > 0 ? $0 : nil, dst, RDMAConnection.resolveTimeoutMs)
                    }
                }
            }
        }
        if rc != 0 {
            failed(rc, on: r)
            return false
        }
        return true
    }

    func event(_ e: inout cevpl_rdma_cm_event, on r: RDMALoop) {
        let ops = r.ops
        guard state == .resolving, let id, e.id == id else { return }
        switch UInt32(bitPattern: e.type) {
        case CEVPL_CM_ADDR_RESOLVED.rawValue:
            let rc = ops.pointee.resolve_route(id, RDMAConnection.resolveTimeoutMs)
            if rc != 0 { failed(rc, on: r) }
        case CEVPL_CM_ROUTE_RESOLVED.rawValue:
            var data = (UInt32(0), UInt32(0), UInt16(0))
            data.0 = RDMADatagram.magic
            data.1 = bind.rdma.qpNum
            data.2 = UInt16(Address.port(of: &bind.local.storage))
            let rc = withUnsafeBytes(of: &data) { p in
                var param = RDMAConnection.connParam(r)
                param.private_data = p.baseAddress
                param.private_data_len = 10
                return ops.pointee.connect(id, &param)
            }
            if rc != 0 { failed(rc, on: r) }
        case CEVPL_CM_ESTABLISHED.rawValue:
            guard let d = bind.rdma.device,
                  let ah = withUnsafePointer(to: &e.ud_ah_attr, { p in
                      p.withMemoryRebound(to: UInt64.self, capacity: 8) {
                          ops.pointee.create_ah(d._withUnsafeGuaranteedRef { $0.device.pd }, $0)
                      }
                  }) else {
                failed(errno == 0 ? EIO : errno, on: r)
                return
            }
            self.ah = ah
            qpn = e.ud_qp_num
            qkey = e.ud_qkey
            state = .ready
            _ = ops.pointee.destroy_id(id)
            self.id = nil
            bind.markDirty()
        case CEVPL_CM_ADDR_ERROR.rawValue, CEVPL_CM_ROUTE_ERROR.rawValue:
            failed(EHOSTUNREACH, on: r)
        case CEVPL_CM_CONNECT_ERROR.rawValue, CEVPL_CM_REJECTED.rawValue:
            failed(ECONNREFUSED, on: r)
        default:
            return
        }
    }

    private func failed(_ rc: CInt, on r: RDMALoop) {
        Log.error("rdma", "cannot resolve \(Address.format(&address)) for UD datagrams: \(Sys.errnoText(rc)); its datagrams are dropped")
        state = .failed
        if let id { _ = r.ops.pointee.destroy_id(id) }
        id = nil
        bind.markDirty()
    }

    func release(_ ops: UnsafeMutablePointer<cevpl_rdma_ops>) {
        if let ah { _ = ops.pointee.destroy_ah(ah) }
        if let id { _ = ops.pointee.destroy_id(id) }
        ah = nil
        id = nil
    }
}

extension Bind {
    /// Posts queued UD datagrams whose peers are resolved, in order.
    func flushRDMADatagrams() {
        guard let qp = rdma.qp, let d = rdma.device else { return }
        let r = rdmaLoop
        let device = d._withUnsafeGuaranteedRef { $0.device }
        let wrs = r.sendWRs
        var n = 0
        while n < r.sendBatch && rdma.outstanding < r.sqSize && rdma.postedMessages < datagrams.count {
            let dg = datagrams.at(rdma.postedMessages)
            let length = dg.pointee.length
            let peer: RDMAPeer
            if let p = rdma.peers.first(where: { $0.matches(&dg.pointee.address, dg.pointee.addressLength) }) {
                peer = p
            } else {
                peer = RDMAPeer(bind: self, address: &dg.pointee.address, length: dg.pointee.addressLength)
                rdma.peers.append(peer)
                _ = peer.resolve(on: r)
            }
            if peer.state == .resolving { break }
            if peer.state == .failed {
                guard rdma.postedMessages == 0 && n == 0 else { break }
                dropFrontDatagram()
                if datagrams.isEmpty || !peer.matches(&datagrams.at(0).pointee.address, datagrams.at(0).pointee.addressLength) {
                    peer.release(r.ops)
                    rdma.peers.removeAll { $0 === peer }
                }
                continue
            }
            let sges = r.sges + n * r.maxSge
            let (nsge, taken) = gather(length, into: sges, max: r.maxSge, limit: length, device: device)
            guard nsge >= 0 && taken == length else {
                Log.error("rdma", "a UD datagram spans more than \(r.maxSge) iovecs or unregistered memory; closing")
                close(status: nsge < 0 ? ENOMEM : EMSGSIZE)
                return
            }
            rdma.postedMessages += 1
            rdma.postedBytes += length
            rdma.inflight.append(UInt32(length))
            rdma.outstanding += 1
            var flags = CEVPL_RDMA_SEND_SIGNALED
            if length <= r.maxInline && length > 0 { flags |= CEVPL_RDMA_SEND_INLINE }
            (wrs + n).initialize(to: cevpl_rdma_send_wr(
                wr_id: UInt64(UInt(bitPattern: Unmanaged.passUnretained(self).toOpaque())) | RDMALoop.Tag.send.rawValue,
                opcode: CInt(CEVPL_RDMA_SEND.rawValue), flags: flags, imm: 0, nsge: CInt(nsge),
                sge: UnsafePointer(sges), remote_addr: 0, rkey: 0, ah: peer.ah, remote_qpn: peer.qpn,
                remote_qkey: peer.qkey))
            n += 1
        }
        if n > 0 {
            let rc = r.ops.pointee.post_send(qp, wrs, CInt(n))
            if rc != 0 {
                Log.error("rdma", "posting UD sends: \(Sys.errnoText(rc))")
                rdma.outstanding -= n
                close(status: rc)
                return
            }
        }
        notifySent()
    }

    /// Drops the front datagram, never posted (its peer could not be resolved).
    private func dropFrontDatagram() {
        let d = datagrams.at(0).pointee
        sendQueue.consume(d.length)
        datagrams.removeFirst()
        rdma.cursor = 0
        rdma.cursorOffset = 0
    }

    /// A UD datagram of ours left: its iovecs go.
    func completeRDMADatagram(_ bytes: Int) {
        completeSendBytes(bytes)
        datagrams.removeFirst()
        rdma.postedMessages -= 1
    }

    /// One received UD datagram: the payload after the GRH, from the sender its request named.
    @inline(__always)
    func rdmaDatagramReceived(_ slot: evpl_iovec, _ wc: UnsafeMutablePointer<cevpl_rdma_wc>) {
        let grh = Int(CEVPL_RDMA_GRH_SIZE)
        let length = Int(wc.pointee.byte_len) - grh
        guard isLive, length >= 0, let from = rdma.senders[wc.pointee.src_qp] else {
            if isLive && length >= 0 { Log.debug("rdma", "UD datagram from an unknown queue pair dropped") }
            Iovec.release(slot)
            return
        }
        var v = slot
        v.data += grh
        v.length = UInt32(length)
        deliverRDMAMessage(v, length, from: from)
    }
}
