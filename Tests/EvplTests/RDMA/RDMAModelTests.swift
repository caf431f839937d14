// Tests of the in-memory RDMA fabric itself, driving its cevpl_rdma_ops
// table directly as the engine does (no engine involved).
import CEvplRDMA
import Glibc
import XCTest

private let ops = VerbsModel.ops.pointee
private let model = VerbsModel.shared

private func address(_ ip: String, _ port: UInt16) -> sockaddr_storage {
    var s = sockaddr_storage()
    withUnsafeMutableBytes(of: &s) { raw in
        if ip.contains(":") {
            var sin6 = sockaddr_in6()
            sin6.sin6_family = sa_family_t(AF_INET6)
            sin6.sin6_port = port.bigEndian
            inet_pton(AF_INET6, ip, &sin6.sin6_addr)
            raw.storeBytes(of: sin6, as: sockaddr_in6.self)
        } else {
            var sin = sockaddr_in()
            sin.sin_family = sa_family_t(AF_INET)
            sin.sin_port = port.bigEndian
            inet_pton(AF_INET, ip, &sin.sin_addr)
            raw.storeBytes(of: sin, as: sockaddr_in.self)
        }
    }
    return s
}

private func withSockaddr<R>(_ s: sockaddr_storage, _ body: (UnsafePointer<sockaddr>) -> R) -> R {
    var s = s
    return withUnsafePointer(to: &s) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1, body) }
}

private func portOf(_ s: sockaddr_storage) -> UInt16 {
    var s = s
    return withUnsafeBytes(of: &s) { UInt16(bigEndian: $0.load(fromByteOffset: 2, as: UInt16.self)) }
}

private func readable(_ fd: Int32) -> Bool {
    var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
    return poll(&p, 1, 0) == 1
}

private func nextEvent(_ ch: UnsafeMutableRawPointer?) -> cevpl_rdma_cm_event? {
    var e = cevpl_rdma_cm_event()
    let rc = ops.get_event!(ch, &e)
    return rc == 0 ? e : nil
}

private func privateBytes(_ e: cevpl_rdma_cm_event) -> [UInt8] {
    var e = e
    return withUnsafeBytes(of: &e.private_data) { Array($0.prefix(Int(e.private_data_len))) }
}

private func poll(_ cq: UnsafeMutableRawPointer?, max: Int = 64) -> [cevpl_rdma_wc] {
    var wc = [cevpl_rdma_wc](repeating: cevpl_rdma_wc(), count: max)
    let n = ops.poll_cq!(cq, Int32(max), &wc)
    return Array(wc.prefix(Int(n)))
}

private let evEstablished = Int32(CEVPL_CM_ESTABLISHED.rawValue)

/// One endpoint of a test connection: verbs resources, an event channel,
/// an id and a registered 64 KiB buffer.
private final class Side {
    let device: UnsafeMutableRawPointer?
    let pd: UnsafeMutableRawPointer?
    var chFD: Int32 = -1
    let ch: UnsafeMutableRawPointer?
    var compFD: Int32 = -1
    let comp: UnsafeMutableRawPointer?
    let cq: UnsafeMutableRawPointer?
    var srq: UnsafeMutableRawPointer?
    var id: UnsafeMutableRawPointer?
    /// Where the id's events arrive (a request id: its listener's channel).
    lazy var events: UnsafeMutableRawPointer? = ch
    var qp: UnsafeMutableRawPointer?
    var qpn: UInt32 = 0
    let buf: UnsafeMutableRawPointer
    let mr: UnsafeMutableRawPointer?
    var lkey: UInt32 = 0, rkey: UInt32 = 0
    static let size = 65536

    init(ud: Bool = false, srq useSRQ: Bool = true, cqe: Int32 = 256) {
        var list: UnsafeMutablePointer<UnsafeMutableRawPointer?>?
        XCTAssertEqual(ops.get_devices!(&list), 1)
        device = list![0]
        ops.free_devices!(list)
        pd = ops.alloc_pd!(device)
        ch = ops.create_event_channel!(&chFD)
        comp = ops.create_comp_channel!(device, &compFD)
        cq = ops.create_cq!(device, cqe, comp)
        if useSRQ { srq = ops.create_srq!(pd, 64, 1) }
        buf = UnsafeMutableRawPointer.allocate(byteCount: Side.size, alignment: 4096)
        buf.initializeMemory(as: UInt8.self, repeating: 0, count: Side.size)
        mr = ops.reg_mr!(pd, buf, Side.size, &lkey, &rkey)
        id = ops.create_id!(ch, Unmanaged.passUnretained(self).toOpaque(), ud ? 1 : 0)
    }

    func createQP(ud: Bool = false, maxSendWR: UInt32 = 64, maxInline: UInt32 = 64) {
        var attr = cevpl_rdma_qp_attr()
        attr.ud = ud ? 1 : 0
        attr.send_cq = cq
        attr.recv_cq = cq
        attr.srq = srq
        attr.max_send_wr = maxSendWR
        attr.max_recv_wr = 64
        attr.max_send_sge = 4
        attr.max_recv_sge = 1
        attr.max_inline = maxInline
        qp = ops.create_qp!(id, pd, &attr, &qpn)
        XCTAssertNotNil(qp)
    }

    /// Posts `n` receives of `size` bytes each from the buffer's second half.
    func postRecvs(_ n: Int, size: UInt32 = 4096, firstID: UInt64 = 1) {
        var wrs = (0..<n).map { i in
            cevpl_rdma_recv_wr(wr_id: firstID + UInt64(i),
                               sge: cevpl_rdma_sge(addr: UInt64(UInt(bitPattern: buf)) + 32768 + UInt64(i % 8) * UInt64(size),
                                                   length: size, lkey: lkey))
        }
        let rc = srq != nil ? ops.post_srq_recv!(srq, &wrs, Int32(n)) : ops.post_recv!(qp, &wrs, Int32(n))
        XCTAssertEqual(rc, 0)
    }

    func sge(_ offset: Int, _ length: Int) -> cevpl_rdma_sge {
        cevpl_rdma_sge(addr: UInt64(UInt(bitPattern: buf + offset)), length: UInt32(length), lkey: lkey)
    }

    var address: UInt64 { UInt64(UInt(bitPattern: buf)) }

    func destroy() {
        if qp != nil { ops.destroy_qp!(id) }
        if let id { XCTAssertEqual(ops.destroy_id!(id), 0) }
        if let srq { XCTAssertEqual(ops.destroy_srq!(srq), 0) }
        XCTAssertEqual(ops.destroy_cq!(cq), 0)
        XCTAssertEqual(ops.destroy_comp_channel!(comp), 0)
        XCTAssertEqual(ops.dereg_mr!(mr), 0)
        XCTAssertEqual(ops.dealloc_pd!(pd), 0)
        ops.destroy_event_channel!(ch)
        buf.deallocate()
    }
}

private func send(_ from: Side, _ opcode: cevpl_rdma_opcode, _ sges: [cevpl_rdma_sge], wrID: UInt64 = 7,
                  signaled: Bool = true, inline: Bool = false, imm: UInt32 = 0, remote: UInt64 = 0, rkey: UInt32 = 0,
                  ah: UnsafeMutableRawPointer? = nil, remoteQPN: UInt32 = 0, qkey: UInt32 = 0) -> Int32 {
    var s = sges
    return s.withUnsafeMutableBufferPointer { b in
        var wr = cevpl_rdma_send_wr()
        wr.wr_id = wrID
        wr.opcode = Int32(opcode.rawValue)
        wr.flags = (signaled ? CEVPL_RDMA_SEND_SIGNALED : 0) | (inline ? CEVPL_RDMA_SEND_INLINE : 0)
        wr.imm = imm
        wr.nsge = Int32(b.count)
        wr.sge = UnsafePointer(b.baseAddress)
        wr.remote_addr = remote
        wr.rkey = rkey
        wr.ah = ah
        wr.remote_qpn = remoteQPN
        wr.remote_qkey = qkey
        return ops.post_send!(from.qp, &wr, 1)
    }
}

final class RDMAModelTests: XCTestCase {
    private var baseline = VerbsModel.Live()

    override func setUp() {
        model.reset()
        baseline = model.live
    }

    override func tearDown() {
        XCTAssertEqual(model.live, baseline, "objects leaked by the test")
        model.reset()
    }

    /// Listener on 127.0.0.1:`port` (server) and a connected client, RC, both with SRQs.
    private func connectedPair(port: UInt16, privateData: [UInt8] = [1, 2, 3],
                               clientCQE: Int32 = 256) -> (client: Side, server: Side, conn: Side) {
        let server = Side(), client = Side(cqe: clientCQE)
        XCTAssertEqual(withSockaddr(address("127.0.0.1", port)) { ops.bind_addr!(server.id, $0) }, 0)
        XCTAssertEqual(ops.listen!(server.id, 16), 0)
        XCTAssertEqual(withSockaddr(address("127.0.0.1", port)) { ops.resolve_addr!(client.id, nil, $0, 1000) }, 0)
        XCTAssertEqual(nextEvent(client.ch)?.type, Int32(CEVPL_CM_ADDR_RESOLVED.rawValue))
        XCTAssertEqual(ops.resolve_route!(client.id, 1000), 0)
        XCTAssertEqual(nextEvent(client.ch)?.type, Int32(CEVPL_CM_ROUTE_RESOLVED.rawValue))
        client.createQP()
        var param = cevpl_rdma_conn_param()
        var pdata = privateData
        let rc = pdata.withUnsafeMutableBytes { b -> Int32 in
            param.private_data = UnsafeRawPointer(b.baseAddress)
            param.private_data_len = UInt8(b.count)
            return ops.connect!(client.id, &param)
        }
        XCTAssertEqual(rc, 0)
        let req = nextEvent(server.ch)
        XCTAssertEqual(req?.type, Int32(CEVPL_CM_CONNECT_REQUEST.rawValue))
        XCTAssertEqual(req?.listen_id, server.id)
        XCTAssertEqual(req.map(privateBytes), privateData)
        // The request's id shares the listener's context and gets its own QP.
        let conn = Side(srq: true)
        XCTAssertEqual(ops.destroy_id!(conn.id), 0)
        conn.id = req?.id
        // As the engine does: the request's id moves to the accepting side's channel.
        XCTAssertEqual(ops.migrate_id!(conn.id, conn.ch), 0)
        XCTAssertEqual(ops.id_context!(conn.id), Unmanaged.passUnretained(server).toOpaque())
        XCTAssertNotNil(ops.id_device!(conn.id))
        conn.createQP()
        XCTAssertEqual(ops.accept!(conn.id, nil), 0)
        // Active side first; the passive side is established once the active one took its event.
        XCTAssertNil(nextEvent(conn.events))
        XCTAssertEqual(nextEvent(client.ch)?.type, evEstablished)
        XCTAssertEqual(nextEvent(conn.events)?.type, evEstablished)
        return (client, server, conn)
    }

    func testDevicesAndRegistration() {
        var list: UnsafeMutablePointer<UnsafeMutableRawPointer?>?
        XCTAssertEqual(ops.get_devices!(&list), 1)
        let dev = list![0]
        XCTAssertNil(list![1])
        var list2: UnsafeMutablePointer<UnsafeMutableRawPointer?>?
        XCTAssertEqual(ops.get_devices!(&list2), 1)
        XCTAssertEqual(list2![0], dev, "a stable device handle")
        ops.free_devices!(list)
        ops.free_devices!(list2)
        XCTAssertEqual(String(cString: ops.device_name!(dev)!), "model0")
        let pd = ops.alloc_pd!(dev)
        let buf = UnsafeMutableRawPointer.allocate(byteCount: 8192, alignment: 64)
        defer { buf.deallocate() }
        var keys: [UInt32] = []
        var mrs: [UnsafeMutableRawPointer?] = []
        for i in 0..<4 {
            var l: UInt32 = 0, r: UInt32 = 0
            mrs.append(ops.reg_mr!(pd, buf + i * 1024, 1024, &l, &r))
            keys += [l, r]
        }
        XCTAssertFalse(keys.contains(0))
        XCTAssertEqual(Set(keys).count, keys.count)
        model.failNext(.regMR, errno: ENOMEM)
        var l: UInt32 = 0, r: UInt32 = 0
        XCTAssertNil(ops.reg_mr!(pd, buf, 8, &l, &r))
        XCTAssertEqual(errno, ENOMEM)
        XCTAssertEqual(ops.dealloc_pd!(pd), EBUSY)  // MRs still registered
        XCTAssertEqual(model.violations.count, 1)
        for m in mrs { XCTAssertEqual(ops.dereg_mr!(m), 0) }
        XCTAssertEqual(ops.dealloc_pd!(pd), 0)
        model.reset()
    }

    func testAddressesPortsAndRejects() {
        let a = Side(), b = Side(), c = Side()
        defer { a.destroy(); b.destroy(); c.destroy() }
        XCTAssertEqual(withSockaddr(address("127.0.0.1", 9100)) { ops.bind_addr!(a.id, $0) }, 0)
        XCTAssertNotNil(ops.id_device!(a.id), "bound to a specific address: device known")
        XCTAssertEqual(ops.listen!(a.id, 4), 0)
        XCTAssertEqual(withSockaddr(address("0.0.0.0", 9100)) { ops.bind_addr!(b.id, $0) }, EADDRINUSE)
        XCTAssertEqual(withSockaddr(address("127.0.0.1", 9100)) { ops.bind_addr!(b.id, $0) }, EADDRINUSE)
        // UD is another port space.
        let u = Side(ud: true)
        XCTAssertEqual(withSockaddr(address("127.0.0.1", 9100)) { ops.bind_addr!(u.id, $0) }, 0)
        u.destroy()
        XCTAssertEqual(withSockaddr(address("::", 0)) { ops.bind_addr!(b.id, $0) }, 0)
        XCTAssertNil(ops.id_device!(b.id), "wildcard: no device")
        var s = sockaddr_storage(), len = socklen_t(0)
        XCTAssertEqual(ops.local_addr!(b.id, &s, &len), 0)
        XCTAssertEqual(Int32(s.ss_family), AF_INET6)
        XCTAssertEqual(Int(len), MemoryLayout<sockaddr_in6>.size)
        XCTAssertNotEqual(portOf(s), 0, "port 0 picks an ephemeral port")
        XCTAssertEqual(ops.path_mtu!(b.id), 0)
        // Nobody listens on 9101: REJECTED with a nonzero status.
        XCTAssertNil(nextEvent(c.ch))
        XCTAssertEqual(withSockaddr(address("10.1.2.3", 9101)) { ops.resolve_addr!(c.id, nil, $0, 1000) }, 0)
        XCTAssertEqual(ops.path_mtu!(c.id), 4096)
        XCTAssertTrue(readable(c.chFD))
        _ = nextEvent(c.ch)
        XCTAssertFalse(readable(c.chFD))
        XCTAssertEqual(ops.resolve_route!(c.id, 1000), 0)
        _ = nextEvent(c.ch)
        c.createQP()
        var param = cevpl_rdma_conn_param()
        XCTAssertEqual(ops.connect!(c.id, &param), 0)
        let e = nextEvent(c.ch)
        XCTAssertEqual(e?.type, Int32(CEVPL_CM_REJECTED.rawValue))
        XCTAssertNotEqual(e?.status, 0)
        var ea = cevpl_rdma_cm_event()
        XCTAssertEqual(ops.get_event!(c.ch, &ea), EAGAIN)
        XCTAssertEqual(model.violations, [])
    }

    func testRejectByListener() {
        let server = Side(), client = Side()
        defer { client.destroy(); server.destroy() }
        XCTAssertEqual(withSockaddr(address("127.0.0.1", 9110)) { ops.bind_addr!(server.id, $0) }, 0)
        XCTAssertEqual(ops.listen!(server.id, 4), 0)
        XCTAssertEqual(withSockaddr(address("127.0.0.1", 9110)) { ops.resolve_addr!(client.id, nil, $0, 1000) }, 0)
        _ = nextEvent(client.ch)
        XCTAssertEqual(ops.resolve_route!(client.id, 1000), 0)
        _ = nextEvent(client.ch)
        client.createQP()
        var param = cevpl_rdma_conn_param()
        XCTAssertEqual(ops.connect!(client.id, &param), 0)
        let req = nextEvent(server.ch)!
        // The request's peer is the client's (ephemeral) source address.
        var peer = sockaddr_storage(), local = sockaddr_storage(), len = socklen_t(0)
        XCTAssertEqual(ops.peer_addr!(req.id, &peer, &len), 0)
        XCTAssertEqual(ops.local_addr!(client.id, &local, &len), 0)
        XCTAssertEqual(portOf(peer), portOf(local))
        XCTAssertEqual(ops.reject!(req.id), 0)
        XCTAssertEqual(ops.destroy_id!(req.id), 0)
        let e = nextEvent(client.ch)
        XCTAssertEqual(e?.type, Int32(CEVPL_CM_REJECTED.rawValue))
        XCTAssertEqual(e?.status, 28)
        XCTAssertEqual(model.violations, [])
    }

    func testRCSendWriteReadAndNotifications() {
        let (client, server, conn) = connectedPair(port: 9120, privateData: Array("hello".utf8))
        defer { client.destroy(); conn.destroy(); server.destroy() }
        conn.postRecvs(4)
        XCTAssertEqual(model.srqOutstanding.suffix(3), [0, 0, 4], "the connection's SRQ holds the receives")
        // Arm, then a two-sge SEND: one notification on the server's channel.
        XCTAssertEqual(ops.req_notify_cq!(conn.cq), 0)
        XCTAssertFalse(readable(conn.compFD))
        for i in 0..<100 { client.buf.storeBytes(of: UInt8(i), toByteOffset: i, as: UInt8.self) }
        XCTAssertEqual(send(client, CEVPL_RDMA_SEND, [client.sge(0, 60), client.sge(60, 40)], wrID: 11), 0)
        XCTAssertTrue(readable(conn.compFD))
        XCTAssertEqual(ops.get_cq_event!(conn.comp), 0)
        XCTAssertEqual(ops.get_cq_event!(conn.comp), EAGAIN)
        XCTAssertFalse(readable(conn.compFD))
        let rwc = poll(conn.cq)
        XCTAssertEqual(rwc.count, 1)
        XCTAssertEqual(rwc.first?.status, 0)
        XCTAssertEqual(rwc.first?.opcode, Int32(CEVPL_RDMA_RECV.rawValue))
        XCTAssertEqual(rwc.first?.byte_len, 100)
        XCTAssertEqual(rwc.first?.wr_id, 1)
        XCTAssertEqual(rwc.first?.qp_num, conn.qpn)
        let got = Array(UnsafeRawBufferPointer(start: conn.buf + 32768, count: 100))
        XCTAssertEqual(got, (0..<100).map { UInt8($0) })
        let swc = poll(client.cq)
        XCTAssertEqual(swc.map(\.wr_id), [11])
        XCTAssertEqual(swc.first?.opcode, Int32(CEVPL_RDMA_SEND.rawValue))
        // Not armed: no notification for the next completion.
        XCTAssertEqual(send(client, CEVPL_RDMA_SEND_WITH_IMM, [client.sge(0, 5)], imm: 0xabcd), 0)
        XCTAssertFalse(readable(conn.compFD))
        let imm = poll(conn.cq)
        XCTAssertEqual(imm.first?.opcode, Int32(CEVPL_RDMA_RECV_WITH_IMM.rawValue))
        XCTAssertEqual(imm.first?.imm, 0xabcd)
        _ = poll(client.cq)
        // WRITE into the server's buffer, READ it back elsewhere.
        for i in 0..<256 { client.buf.storeBytes(of: UInt8(255 - i), toByteOffset: 1000 + i, as: UInt8.self) }
        XCTAssertEqual(send(client, CEVPL_RDMA_WRITE, [client.sge(1000, 256)], wrID: 21, remote: conn.address + 100,
                            rkey: conn.rkey), 0)
        XCTAssertEqual(Array(UnsafeRawBufferPointer(start: conn.buf + 100, count: 256)), (0..<256).map { UInt8(255 - $0) })
        XCTAssertEqual(send(client, CEVPL_RDMA_READ, [client.sge(5000, 128), client.sge(6000, 128)], wrID: 22,
                            remote: conn.address + 100, rkey: conn.rkey), 0)
        XCTAssertEqual(Array(UnsafeRawBufferPointer(start: client.buf + 5000, count: 128)), (0..<128).map { UInt8(255 - $0) })
        XCTAssertEqual(Array(UnsafeRawBufferPointer(start: client.buf + 6000, count: 128)),
                       (128..<256).map { UInt8(255 - $0) })
        let ops2 = poll(client.cq)
        XCTAssertEqual(ops2.map(\.wr_id), [21, 22])
        XCTAssertEqual(ops2.map(\.opcode), [Int32(CEVPL_RDMA_WRITE.rawValue), Int32(CEVPL_RDMA_READ.rawValue)])
        XCTAssertEqual(ops2.last?.byte_len, 256)
        XCTAssertEqual(poll(conn.cq).count, 0, "a plain WRITE consumes no receive")
        // The lkey is no rkey: remote access error, then the QP is in error and flushes.
        XCTAssertEqual(send(client, CEVPL_RDMA_WRITE, [client.sge(0, 8)], wrID: 31, remote: conn.address, rkey: conn.lkey), 0)
        XCTAssertEqual(send(client, CEVPL_RDMA_SEND, [client.sge(0, 8)], wrID: 32, signaled: false), 0)
        let errs = poll(client.cq)
        XCTAssertEqual(errs.map(\.wr_id), [31, 32])
        XCTAssertEqual(errs.map(\.status), [WC_REM_ACCESS_ERR, WC_WR_FLUSH_ERR])
        XCTAssertEqual(model.counters.remoteAccessErrors, 1)
        XCTAssertEqual(model.violations, [])
        XCTAssertEqual(model.rnrCount, 0)
    }

    func testProtectionAndInline() {
        let (client, server, conn) = connectedPair(port: 9130)
        defer { client.destroy(); conn.destroy(); server.destroy() }
        conn.postRecvs(8)
        // Unregistered memory, INLINE: fine (copied at post time, no lkey needed).
        var scratch = [UInt8](repeating: 0x42, count: 32)
        let rc = scratch.withUnsafeMutableBytes { b in
            send(client, CEVPL_RDMA_SEND, [cevpl_rdma_sge(addr: UInt64(UInt(bitPattern: b.baseAddress!)), length: 32, lkey: 0)],
                 inline: true)
        }
        XCTAssertEqual(rc, 0)
        XCTAssertEqual(poll(conn.cq).first?.byte_len, 32)
        XCTAssertEqual(Array(UnsafeRawBufferPointer(start: conn.buf + 32768, count: 32)), scratch)
        // INLINE beyond max_inline: EINVAL, nothing posted (and a recorded misuse).
        XCTAssertEqual(send(client, CEVPL_RDMA_SEND, [client.sge(0, 65)], inline: true), EINVAL)
        XCTAssertEqual(model.violations.count, 1)
        model.reset()
        // An sge beyond its MR: LOC_PROT_ERR.
        XCTAssertEqual(send(client, CEVPL_RDMA_SEND, [client.sge(Side.size - 8, 16)], wrID: 41), 0)
        XCTAssertEqual(poll(client.cq).map(\.status), [WC_SUCCESS, WC_LOC_PROT_ERR])
        XCTAssertEqual(model.counters.protectionErrors, 1)
    }

    func testReceiverNotReadyAndLengthErrors() {
        let (client, server, conn) = connectedPair(port: 9140)
        defer { client.destroy(); conn.destroy(); server.destroy() }
        XCTAssertEqual(send(client, CEVPL_RDMA_SEND, [client.sge(0, 8)], wrID: 1), 0)
        let wc = poll(client.cq)
        XCTAssertEqual(wc.map(\.status), [WC_RNR_RETRY_EXC_ERR])
        XCTAssertNotEqual(wc.first?.opcode, Int32(CEVPL_RDMA_SEND.rawValue), "error completions carry no opcode")
        XCTAssertEqual(model.rnrCount, 1)
        XCTAssertTrue(model.queuePairs.contains { $0.qpn == client.qpn && $0.error })

        // Waiting mode, on a fresh pair: the send completes once a receive is posted.
        let (c2, s2, n2) = connectedPair(port: 9141)
        defer { c2.destroy(); n2.destroy(); s2.destroy() }
        model.strictRNR = false
        XCTAssertEqual(send(c2, CEVPL_RDMA_SEND, [c2.sge(0, 8)], wrID: 1), 0)
        XCTAssertEqual(send(c2, CEVPL_RDMA_SEND, [c2.sge(0, 8)], wrID: 2), 0)
        XCTAssertEqual(poll(c2.cq).count, 0)
        XCTAssertEqual(model.pendingCount, 2)
        n2.postRecvs(1)
        XCTAssertEqual(poll(c2.cq).map(\.wr_id), [1])
        n2.postRecvs(1, firstID: 9)
        XCTAssertEqual(poll(c2.cq).map(\.wr_id), [2])
        XCTAssertEqual(poll(n2.cq).map(\.wr_id), [1, 9])
        XCTAssertEqual(model.counters.rnrWaits, 2)
        // A message larger than the receive buffer breaks the connection.
        n2.postRecvs(1, size: 16)
        XCTAssertEqual(send(c2, CEVPL_RDMA_SEND, [c2.sge(0, 17)], wrID: 3), 0)
        XCTAssertEqual(poll(n2.cq).map(\.status), [WC_LOC_LEN_ERR])
        XCTAssertEqual(poll(c2.cq).map(\.status), [WC_REM_INV_REQ_ERR])
        XCTAssertEqual(model.counters.lengthErrors, 1)
    }

    func testSendQueueSlotsFreeOnPolledSignaledCompletions() {
        let server = Side(), client = Side()
        XCTAssertEqual(withSockaddr(address("127.0.0.1", 9150)) { ops.bind_addr!(server.id, $0) }, 0)
        XCTAssertEqual(ops.listen!(server.id, 4), 0)
        XCTAssertEqual(withSockaddr(address("127.0.0.1", 9150)) { ops.resolve_addr!(client.id, nil, $0, 1000) }, 0)
        _ = nextEvent(client.ch)
        XCTAssertEqual(ops.resolve_route!(client.id, 1000), 0)
        _ = nextEvent(client.ch)
        client.createQP(maxSendWR: 4)
        var param = cevpl_rdma_conn_param()
        XCTAssertEqual(ops.connect!(client.id, &param), 0)
        let conn = Side()
        XCTAssertEqual(ops.destroy_id!(conn.id), 0)
        conn.id = nextEvent(server.ch)!.id
        conn.events = server.ch
        conn.createQP()
        // Before the active side took its ESTABLISHED, its QP cannot send.
        XCTAssertEqual(ops.accept!(conn.id, &param), 0)
        XCTAssertEqual(send(client, CEVPL_RDMA_WRITE, [client.sge(0, 8)], remote: conn.address, rkey: conn.rkey), EINVAL)
        XCTAssertEqual(model.violations.count, 1)
        model.reset()
        _ = nextEvent(client.ch)
        for i in 0..<3 {
            XCTAssertEqual(send(client, CEVPL_RDMA_WRITE, [client.sge(0, 8)], wrID: UInt64(i), signaled: false,
                                remote: conn.address, rkey: conn.rkey), 0)
        }
        XCTAssertEqual(send(client, CEVPL_RDMA_WRITE, [client.sge(0, 8)], wrID: 3, remote: conn.address, rkey: conn.rkey), 0)
        XCTAssertEqual(send(client, CEVPL_RDMA_WRITE, [client.sge(0, 8)], wrID: 4, remote: conn.address, rkey: conn.rkey),
                       ENOMEM)
        XCTAssertEqual(model.counters.sendQueueFull, 1)
        XCTAssertEqual(poll(client.cq).map(\.wr_id), [3])
        XCTAssertEqual(send(client, CEVPL_RDMA_WRITE, [client.sge(0, 8)], wrID: 4, remote: conn.address, rkey: conn.rkey), 0)
        _ = poll(client.cq)
        client.destroy()
        conn.destroy()
        server.destroy()
    }

    func testDisconnectAndDestroyID() {
        let (client, server, conn) = connectedPair(port: 9160)
        XCTAssertEqual(ops.disconnect!(client.id), 0)
        XCTAssertEqual(ops.disconnect!(conn.id), 0)
        let a = nextEvent(client.ch), b = nextEvent(conn.events)
        XCTAssertEqual(a?.type, Int32(CEVPL_CM_DISCONNECTED.rawValue))
        XCTAssertEqual(b?.type, Int32(CEVPL_CM_DISCONNECTED.rawValue))
        XCTAssertEqual(a?.status, 0)
        XCTAssertNil(nextEvent(client.ch), "exactly once")
        XCTAssertNil(nextEvent(conn.events), "exactly once")
        XCTAssertEqual(send(client, CEVPL_RDMA_SEND, [client.sge(0, 8)], wrID: 5, signaled: false), 0)
        XCTAssertEqual(poll(client.cq).map(\.status), [WC_WR_FLUSH_ERR])
        client.destroy()
        conn.destroy()
        server.destroy()

        // Destroying a connected id disconnects the peer.
        let (c2, s2, n2) = connectedPair(port: 9161)
        ops.destroy_qp!(c2.id)
        c2.qp = nil
        XCTAssertEqual(ops.destroy_id!(c2.id), 0)
        c2.id = nil
        XCTAssertEqual(nextEvent(n2.events)?.type, Int32(CEVPL_CM_DISCONNECTED.rawValue))
        n2.postRecvs(1)
        XCTAssertEqual(send(n2, CEVPL_RDMA_SEND, [n2.sge(0, 8)], wrID: 6), 0)
        XCTAssertEqual(poll(n2.cq).map(\.status), [WC_WR_FLUSH_ERR])
        c2.destroy()
        n2.destroy()
        // A listener destroyed with an unfetched request: the connector is rejected.
        let c3 = Side()
        XCTAssertEqual(withSockaddr(address("127.0.0.1", 9161)) { ops.resolve_addr!(c3.id, nil, $0, 1000) }, 0)
        _ = nextEvent(c3.ch)
        XCTAssertEqual(ops.resolve_route!(c3.id, 1000), 0)
        _ = nextEvent(c3.ch)
        c3.createQP()
        var param = cevpl_rdma_conn_param()
        XCTAssertEqual(ops.connect!(c3.id, &param), 0)
        s2.destroy()
        XCTAssertEqual(nextEvent(c3.ch)?.type, Int32(CEVPL_CM_REJECTED.rawValue))
        c3.destroy()
        XCTAssertEqual(model.violations, [])
    }

    func testDeferredDeliveryAndKillPeer() {
        let (client, server, conn) = connectedPair(port: 9170)
        defer { client.destroy(); conn.destroy(); server.destroy() }
        model.deferDelivery = true
        conn.postRecvs(2)
        client.buf.storeBytes(of: 0xAA, as: UInt8.self)
        XCTAssertEqual(send(client, CEVPL_RDMA_SEND, [client.sge(0, 1)], wrID: 1), 0)
        // The data is read when delivered, not when posted.
        client.buf.storeBytes(of: 0xBB, as: UInt8.self)
        for i in 2...4 { XCTAssertEqual(send(client, CEVPL_RDMA_SEND, [client.sge(0, 1)], wrID: UInt64(i)), 0) }
        XCTAssertEqual(model.pendingCount, 4)
        XCTAssertEqual(poll(client.cq).count, 0)
        XCTAssertEqual(model.deliverPending(limit: 1), 1)
        XCTAssertEqual(poll(conn.cq).map(\.byte_len), [1])
        XCTAssertEqual((conn.buf + 32768).load(as: UInt8.self), 0xBB)
        XCTAssertEqual(poll(client.cq).map(\.wr_id), [1])
        XCTAssertTrue(model.killPeer(of: conn.qpn))
        let wc = poll(client.cq)
        XCTAssertEqual(wc.map(\.wr_id), [2, 3, 4])
        XCTAssertEqual(wc.map(\.status), [WC_RETRY_EXC_ERR, WC_WR_FLUSH_ERR, WC_WR_FLUSH_ERR])
        let a = nextEvent(client.ch), b = nextEvent(conn.events)
        XCTAssertEqual(a?.type, Int32(CEVPL_CM_DISCONNECTED.rawValue))
        XCTAssertEqual(b?.type, Int32(CEVPL_CM_DISCONNECTED.rawValue))
        XCTAssertEqual(a?.status, ETIMEDOUT)
        XCTAssertEqual(ops.disconnect!(client.id), 0)
        XCTAssertNil(nextEvent(client.ch), "DISCONNECTED once")
        XCTAssertEqual(send(conn, CEVPL_RDMA_SEND, [conn.sge(0, 1)], wrID: 9, signaled: false), 0)
        XCTAssertEqual(poll(conn.cq).map(\.status), [WC_WR_FLUSH_ERR])
        XCTAssertEqual(model.violations, [])
    }

    func testSilentlyLostConnectionFailsTheNextSend() {
        let (client, server, conn) = connectedPair(port: 9175)
        defer { client.destroy(); conn.destroy(); server.destroy() }
        conn.postRecvs(4)
        XCTAssertTrue(model.loseConnection(of: client.qpn))
        XCTAssertNil(nextEvent(client.ch), "nothing reported by itself")
        XCTAssertNil(nextEvent(conn.events))
        XCTAssertEqual(send(client, CEVPL_RDMA_SEND, [client.sge(0, 8)], wrID: 1), 0)
        XCTAssertEqual(send(client, CEVPL_RDMA_SEND, [client.sge(0, 8)], wrID: 2), 0)
        XCTAssertEqual(poll(client.cq).map(\.status), [WC_RETRY_EXC_ERR, WC_WR_FLUSH_ERR])
        XCTAssertEqual(poll(conn.cq).count, 0)
        // The side that noticed disconnects: both hear of it.
        XCTAssertEqual(ops.disconnect!(client.id), 0)
        XCTAssertEqual(nextEvent(client.ch)?.type, Int32(CEVPL_CM_DISCONNECTED.rawValue))
        XCTAssertEqual(nextEvent(conn.events)?.type, Int32(CEVPL_CM_DISCONNECTED.rawValue))
        XCTAssertEqual(model.violations, [])
    }

    func testCQOverflowIsCounted() {
        let (client, server, conn) = connectedPair(port: 9180, clientCQE: 8)
        defer { client.destroy(); conn.destroy(); server.destroy() }
        for i in 0..<9 {
            XCTAssertEqual(send(client, CEVPL_RDMA_WRITE, [client.sge(0, 1)], wrID: UInt64(i), remote: conn.address,
                                rkey: conn.rkey), 0)
        }
        XCTAssertEqual(model.cqOverflows, 1)
        XCTAssertEqual(model.violations.count, 1)
        XCTAssertEqual(poll(client.cq).count, 9)
        model.reset()
    }

    func testUnreliableDatagrams() {
        let a = Side(ud: true, srq: false), b = Side(ud: true, srq: true)
        defer { a.destroy(); b.destroy() }
        XCTAssertEqual(withSockaddr(address("127.0.0.1", 9200)) { ops.bind_addr!(a.id, $0) }, 0)
        XCTAssertEqual(withSockaddr(address("127.0.0.1", 9201)) { ops.bind_addr!(b.id, $0) }, 0)
        XCTAssertEqual(ops.listen!(b.id, 16), 0)
        a.createQP(ud: true)
        b.createQP(ud: true)
        // SIDR: a resolves b's address through a separate UD id.
        var fd: Int32 = -1
        let ch = ops.create_event_channel!(&fd)
        let rid = ops.create_id!(ch, nil, 1)
        XCTAssertEqual(withSockaddr(address("127.0.0.1", 9201)) { ops.resolve_addr!(rid, nil, $0, 1000) }, 0)
        _ = nextEvent(ch)
        XCTAssertEqual(ops.resolve_route!(rid, 1000), 0)
        _ = nextEvent(ch)
        var param = cevpl_rdma_conn_param()
        var mine: [UInt8] = [0x23, 0xf0]  // e.g. a's port, for the receiver's address map
        XCTAssertEqual(mine.withUnsafeMutableBytes { p -> Int32 in
            param.private_data = UnsafeRawPointer(p.baseAddress)
            param.private_data_len = 2
            return ops.connect!(rid, &param)
        }, 0)
        let req = nextEvent(b.ch)
        XCTAssertEqual(req?.type, Int32(CEVPL_CM_CONNECT_REQUEST.rawValue))
        XCTAssertEqual(req.map(privateBytes), [0x23, 0xf0])
        var acc = cevpl_rdma_conn_param()
        acc.qp_num = b.qpn
        acc.qkey = 0  // as the engine does: rdma_cm answers with the id's own qkey
        XCTAssertEqual(ops.accept!(req?.id, &acc), 0)
        XCTAssertEqual(ops.destroy_id!(req?.id), 0)
        XCTAssertNil(nextEvent(b.ch), "SIDR: nothing more for the responder")
        var est = nextEvent(ch)!
        XCTAssertEqual(est.type, evEstablished)
        XCTAssertEqual(est.ud_qp_num, b.qpn)
        XCTAssertEqual(est.ud_qkey, RDMA_UDP_QKEY)
        let ah = withUnsafePointer(to: &est.ud_ah_attr) {
            $0.withMemoryRebound(to: UInt64.self, capacity: 8) { ops.create_ah!(a.pd, $0) }
        }
        XCTAssertNotNil(ah)
        XCTAssertEqual(ops.destroy_id!(rid), 0)
        ops.destroy_event_channel!(ch)

        // No receive posted: dropped silently, the sender still succeeds.
        XCTAssertEqual(send(a, CEVPL_RDMA_SEND, [a.sge(0, 10)], wrID: 1, ah: ah, remoteQPN: b.qpn,
                            qkey: est.ud_qkey), 0)
        XCTAssertEqual(poll(a.cq).map(\.status), [WC_SUCCESS])
        XCTAssertEqual(model.udDrops, 1)
        b.postRecvs(2)
        for i in 0..<10 { a.buf.storeBytes(of: UInt8(i + 1), toByteOffset: i, as: UInt8.self) }
        (b.buf + 32768).initializeMemory(as: UInt8.self, repeating: 0xff, count: 40)
        XCTAssertEqual(send(a, CEVPL_RDMA_SEND_WITH_IMM, [a.sge(0, 10)], wrID: 2, imm: 5, ah: ah, remoteQPN: b.qpn,
                            qkey: est.ud_qkey), 0)
        let r = poll(b.cq)
        XCTAssertEqual(r.first?.byte_len, 50)
        XCTAssertEqual(r.first?.src_qp, a.qpn)
        XCTAssertEqual(r.first?.imm, 5)
        XCTAssertEqual(Array(UnsafeRawBufferPointer(start: b.buf + 32768, count: 50)),
                       [UInt8](repeating: 0, count: 40) + (1...10).map { UInt8($0) })
        // Larger than the path MTU: a local length error on the sender.
        XCTAssertEqual(send(a, CEVPL_RDMA_SEND, [a.sge(0, 4097)], wrID: 3, ah: ah, remoteQPN: b.qpn,
                            qkey: est.ud_qkey), 0)
        XCTAssertEqual(poll(a.cq).map(\.status), [WC_SUCCESS, WC_LOC_LEN_ERR])
        // A wrong qkey never arrives.
        XCTAssertEqual(send(a, CEVPL_RDMA_SEND, [a.sge(0, 4)], wrID: 4, signaled: false, ah: ah, remoteQPN: b.qpn,
                            qkey: 1), 0)
        XCTAssertEqual(model.counters.udMisdirected, 1)
        XCTAssertEqual(model.srqOutstanding.last, 1)
        XCTAssertEqual(ops.destroy_ah!(ah), 0)
        XCTAssertEqual(model.violations, [])
    }
}
