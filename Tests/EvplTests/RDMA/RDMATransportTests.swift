// The RDMA transports end to end over the in-memory fabric (VerbsModel):
// two loops on this thread, driven with evpl_continue alternately, every
// wait bounded by an iteration count (the model is synchronous, so nothing
// here waits on a clock).  The C ABI is called from Swift as a C program
// would; the engine runs exactly as over rdma-core.
import CEvpl
import CEvplRDMA
@testable import Evpl
import Glibc
import XCTest

private let model = VerbsModel.shared

// MARK: Test state reached from the C callbacks

/// What one side saw.  Passed as private_data (unretained; the test keeps it alive).
final class RPeer {
    var connected = 0
    var disconnected = 0
    var status: Int32 = -1
    /// Stream bytes (RECV_DATA, drained with evpl_recv).
    var data: [UInt8] = []
    /// Messages (RECV_MSG), each the concatenation of its iovecs.
    var messages: [[UInt8]] = []
    var niovs: [Int] = []
    /// recv_msg.addr of each message, formatted.
    var senders: [String] = []
    var sentBytes = 0
    var sentMsgs = 0
    /// Echo what arrives (stream bytes with evpl_send, messages with evpl_send,
    /// or, on a UD bind, with evpl_sendto to recv_msg.addr).
    var echo = false
    /// Accepted connections get the 4-byte length framing.
    var segments = false
    var bind: OpaquePointer?
    /// Notification types in order.
    var log: [UInt32] = []
    var events: [String] = []
    /// Events after DISCONNECTED (must stay empty).
    var afterDisconnect = 0

    var handle: UnsafeMutableRawPointer { Unmanaged.passUnretained(self).toOpaque() }
    static func of(_ p: UnsafeMutableRawPointer?) -> RPeer { Unmanaged<RPeer>.fromOpaque(p!).takeUnretainedValue() }
}

/// The notify callback of every RDMA bind in these tests.
let rdmaNotify: evpl_notify_callback_t = { evpl, bind, n, p in
    let peer = RPeer.of(p)
    let type = n!.pointee.notify_type
    if peer.disconnected > 0 { peer.afterDisconnect += 1 }
    peer.log.append(type)
    switch Int32(type) {
    case EVPL_NOTIFY_CONNECTED:
        peer.connected += 1
        peer.bind = bind
    case EVPL_NOTIFY_RECV_DATA:
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let got = Int(evpl_recv(evpl, bind, &buf, Int32(buf.count), 0))
            if got <= 0 { break }
            peer.data += buf[0..<got]
            if peer.echo { evpl_send(evpl, bind, buf, UInt32(got)) }
        }
    case EVPL_NOTIFY_RECV_MSG:
        let m = n!.pointee.recv_msg
        var bytes: [UInt8] = []
        bytes.reserveCapacity(Int(m.length))
        for i in 0..<Int(m.niov) {
            let v = m.iovec! + i
            bytes += UnsafeRawBufferPointer(start: v.pointee.data, count: Int(v.pointee.length))
            evpl_iovec_release(v)
        }
        XCTAssertEqual(bytes.count, Int(m.length))
        peer.messages.append(bytes)
        peer.niovs.append(Int(m.niov))
        if let a = m.addr {
            let address = Unmanaged<Address>.fromOpaque(UnsafeRawPointer(a)).takeUnretainedValue()
            peer.senders.append(Address.format(&address.storage))
        }
        if peer.echo {
            if evpl_bind_get_protocol(bind) == EVPL_DATAGRAM_RDMACM_UD {
                evpl_sendto(evpl, bind, m.addr, bytes, UInt32(bytes.count))
            } else {
                evpl_send(evpl, bind, bytes, UInt32(bytes.count))
            }
        }
    case EVPL_NOTIFY_SENT:
        peer.sentBytes += Int(n!.pointee.sent.bytes)
        peer.sentMsgs += Int(n!.pointee.sent.msgs)
    case EVPL_NOTIFY_DISCONNECTED:
        peer.disconnected += 1
        peer.status = n!.pointee.notify_status
    default:
        break
    }
}

/// "Stream used as datagram": a 4-byte big-endian length, then that many bytes.
let lengthFraming: evpl_segment_callback_t = { evpl, bind, _ in
    var h = [UInt8](repeating: 0, count: 4)
    guard evpl_peek(evpl, bind, &h, 4) == 4 else { return 0 }
    return 4 + (Int32(h[0]) << 24 | Int32(h[1]) << 16 | Int32(h[2]) << 8 | Int32(h[3]))
}

let rdmaAttach: evpl_attach_callback_t = { _, bind, notify, segment, conn, p in
    let server = RPeer.of(p)
    notify!.pointee = rdmaNotify
    segment!.pointee = server.segments ? lengthFraming : nil
    conn!.pointee = p
    server.bind = bind
}

private func framed(_ payload: [UInt8]) -> [UInt8] {
    let n = UInt32(payload.count)
    return [UInt8(n >> 24), UInt8(n >> 16 & 0xff), UInt8(n >> 8 & 0xff), UInt8(n & 0xff)] + payload
}

/// Deterministic bytes (xorshift).
private func pattern(_ count: Int, seed: UInt64) -> [UInt8] {
    var x = seed | 1
    return (0..<count).map { _ in
        x ^= x << 13
        x ^= x >> 7
        x ^= x << 17
        return UInt8(truncatingIfNeeded: x >> 24)
    }
}

/// Deterministic sizes in 1...max.
private struct Sizes {
    var x: UInt64
    mutating func next(_ max: Int) -> Int {
        x = x &* 6364136223846793005 &+ 1442695040888963407
        return 1 + Int((x >> 33) % UInt64(max))
    }
}

/// A TCP port on 127.0.0.1 that the kernel picked for a socket closed right after.
private func kernelChosenPort() -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var sin = sockaddr_in()
    sin.sin_family = sa_family_t(AF_INET)
    sin.sin_addr.s_addr = inet_addr("127.0.0.1")
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &sin) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { p -> Int32 in
            _ = bind(fd, p, len)
            return getsockname(fd, p, &len)
        }
    }
    return Int32(UInt16(bigEndian: sin.sin_port))
}

private func rdmaLoop() -> OpaquePointer {
    let cfg = evpl_thread_config_init()
    evpl_thread_config_set_wait_ms(cfg, 0)  // never sleeps: progress is counted in iterations
    let loop = evpl_create(cfg)!
    evpl_thread_config_release(cfg)
    return loop
}

/// A client loop and a server loop, a listener on the server loop, and
/// everything torn down (and checked) at the end.
private final class Pair {
    let client = rdmaLoop()
    let server = rdmaLoop()
    let clientPeer = RPeer()
    let serverPeer = RPeer()
    var listener: OpaquePointer?
    var binding: OpaquePointer?
    var endpoint: OpaquePointer?
    var bind: OpaquePointer?
    var iterations = 0

    func listen(_ proto: evpl_protocol_id, port: Int32, host: String = "127.0.0.1", file: StaticString = #filePath,
                line: UInt = #line) {
        listener = evpl_listener_create()
        binding = evpl_listener_attach(server, listener, rdmaAttach, serverPeer.handle)
        endpoint = evpl_endpoint_create(host, port)
        XCTAssertEqual(evpl_listen(listener, proto, endpoint), 0, file: file, line: line)
    }

    /// Connects and waits for CONNECTED on both sides.
    @discardableResult
    func connect(_ proto: evpl_protocol_id, segment: evpl_segment_callback_t? = nil, file: StaticString = #filePath,
                 line: UInt = #line) -> Bool {
        bind = evpl_connect(client, proto, nil, endpoint, rdmaNotify, segment, clientPeer.handle)
        XCTAssertNotNil(bind, file: file, line: line)
        let ok = spin(max: 1000) { self.clientPeer.connected == 1 && self.serverPeer.connected == 1 }
        XCTAssertTrue(ok, "CONNECTED on both sides", file: file, line: line)
        return ok
    }

    /// Iterates both loops (the server only if `server`), delivering up to
    /// `deliver` pending sends after each round when the model defers them.
    @discardableResult
    func spin(max: Int, server runServer: Bool = true, deliver: Int = Int.max, until done: () -> Bool) -> Bool {
        var i = 0
        while !done() && i < max {
            evpl_continue(client)
            if runServer { evpl_continue(server) }
            if deliver > 0 && model.deferDelivery { model.deliverPending(limit: deliver) }
            i += 1
        }
        iterations += i
        return done()
    }

    func teardown(settle: Bool = true) {
        if model.deferDelivery {
            model.deferDelivery = false
            model.deliverPending()
        }
        if settle { spin(max: 10) { false } }  // the loops take what the fabric just delivered
        if let binding { evpl_listener_detach(server, binding) }
        if let listener { evpl_listener_destroy(listener) }
        evpl_destroy(client)
        evpl_destroy(server)
        if let endpoint { evpl_endpoint_close(endpoint) }
    }
}

final class RDMATransportTests: XCTestCase {
    private var baseline = VerbsModel.Live()

    override func setUpWithError() throws {
        VerbsModel.install()
        model.reset()
        guard evpl_protocol_available(EVPL_STREAM_RDMACM_RC) == 1,
              evpl_protocol_available(EVPL_DATAGRAM_RDMACM_RC) == 1,
              evpl_protocol_available(EVPL_DATAGRAM_RDMACM_UD) == 1 else {
            // RDMASupport loaded (without rdma-core) before the model could be
            // installed: another test in this process asked about RDMA first.
            XCTFail("the RDMA protocols are unavailable although VerbsModel is installed: "
                    + "RDMASupport was loaded before VerbsModel.install() and ignored RDMASupport.useForTesting")
            throw XCTSkip("VerbsModel not in use")
        }
        baseline = model.live
    }

    /// The fabric saw no misuse and no overrun, and every queue pair, id,
    /// channel and queue the engine made is gone (PDs and MRs are process-wide).
    private func assertClean(file: StaticString = #filePath, line: UInt = #line, expectErrors: Bool = false) {
        let c = model.counters
        XCTAssertEqual(model.violations, [], "seam misuse", file: file, line: line)
        XCTAssertEqual(c.rnrCount, 0, "a send found no receive posted (credit overrun)", file: file, line: line)
        XCTAssertEqual(c.cqOverflows, 0, file: file, line: line)
        XCTAssertEqual(c.sendQueueFull, 0, "post_send past max_send_wr", file: file, line: line)
        XCTAssertEqual(c.srqFull, 0, "post_srq_recv past max_wr", file: file, line: line)
        XCTAssertEqual(c.cqEntriesDiscarded, 0, "a QP destroyed with completions still unpolled", file: file, line: line)
        if !expectErrors {
            XCTAssertEqual(c.lengthErrors, 0, file: file, line: line)
            XCTAssertEqual(c.protectionErrors, 0, file: file, line: line)
            XCTAssertEqual(c.remoteAccessErrors, 0, file: file, line: line)
        }
        var now = model.live, before = baseline
        now.pds = 0; now.mrs = 0; now.deviceLists = 0
        before.pds = 0; before.mrs = 0; before.deviceLists = 0
        XCTAssertEqual(now, before, "RDMA objects left after the loops were destroyed", file: file, line: line)
    }

    // MARK: 1. STREAM_RDMACM_RC

    func testStreamEchoesOneMebibyteInOrder() {
        let p = Pair()
        p.serverPeer.echo = true
        p.listen(EVPL_STREAM_RDMACM_RC, port: 7101)
        let data = pattern(1 << 20, seed: 1)
        // The first bytes are queued before the connection is up.
        p.bind = evpl_connect(p.client, EVPL_STREAM_RDMACM_RC, nil, p.endpoint, rdmaNotify, nil, p.clientPeer.handle)
        XCTAssertNotNil(p.bind)
        evpl_bind_request_send_notifications(p.client, p.bind)
        var sizes = Sizes(x: 7)
        var offset = 0, calls = 0
        func sendSome(_ limit: Int) {
            let n = min(sizes.next(limit), data.count - offset)
            data.withUnsafeBytes { evpl_send(p.client, p.bind, $0.baseAddress! + offset, UInt32(n)) }
            offset += n
            calls += 1
        }
        sendSome(1000)
        XCTAssertTrue(p.spin(max: 1000) { p.clientPeer.connected == 1 && p.serverPeer.connected == 1 })
        // Half in one go (the send queue grows), the rest while the loops run.
        while offset < data.count / 2 { sendSome(20000) }
        while offset < data.count {
            sendSome(70000)
            p.spin(max: 3) { false }
        }
        XCTAssertTrue(p.spin(max: 200_000) { p.clientPeer.data.count >= data.count })
        XCTAssertEqual(p.serverPeer.data.count, data.count)
        XCTAssertTrue(p.serverPeer.data == data, "server received the pattern in order")
        XCTAssertTrue(p.clientPeer.data == data, "the echo came back intact and in order")
        XCTAssertTrue(p.spin(max: 1000) { p.clientPeer.sentBytes >= data.count })
        XCTAssertEqual(p.clientPeer.sentBytes, data.count, "SENT adds up to the bytes sent")
        XCTAssertEqual(p.clientPeer.sentMsgs, calls, "SENT counts every evpl_send")
        XCTAssertEqual(p.clientPeer.log.first, UInt32(EVPL_NOTIFY_CONNECTED))
        XCTAssertEqual(p.clientPeer.disconnected, 0)
        XCTAssertEqual(p.serverPeer.disconnected, 0)
        // The addresses: the server's peer is the client's local end.
        var local = [CChar](repeating: 0, count: 64), remote = [CChar](repeating: 0, count: 64)
        evpl_bind_get_local_address(p.bind, &local, 64)
        evpl_bind_get_remote_address(p.serverPeer.bind, &remote, 64)
        XCTAssertEqual(String(cString: local), String(cString: remote))
        evpl_bind_get_remote_address(p.bind, &remote, 64)
        XCTAssertEqual(String(cString: remote), "127.0.0.1:7101")
        XCTAssertGreaterThan(model.counters.messagesDelivered, 0)
        p.teardown()
        XCTAssertEqual(p.clientPeer.disconnected, 1)
        XCTAssertEqual(p.serverPeer.disconnected, 1)
        XCTAssertEqual(p.clientPeer.afterDisconnect + p.serverPeer.afterDisconnect, 0)
        assertClean()
    }

    func testStreamSegmentsTenThousandMessagesInOrder() {
        let p = Pair()
        p.serverPeer.echo = true
        p.serverPeer.segments = true
        p.listen(EVPL_STREAM_RDMACM_RC, port: 7102)
        guard p.connect(EVPL_STREAM_RDMACM_RC, segment: lengthFraming) else { return p.teardown() }
        var sizes = Sizes(x: 11)
        var expected: [[UInt8]] = []
        for i in 0..<10_000 {
            let len = i % 1000 == 999 ? 16000 + sizes.next(16000) : sizes.next(3000) - 1
            let m = framed(pattern(len, seed: UInt64(i + 1)))
            expected.append(m)
            evpl_send(p.client, p.bind, m, UInt32(m.count))
            if i % 50 == 49 { p.spin(max: 2) { false } }
        }
        XCTAssertTrue(p.spin(max: 200_000) { p.clientPeer.messages.count >= expected.count })
        XCTAssertEqual(p.serverPeer.messages.count, expected.count)
        XCTAssertTrue(p.serverPeer.messages == expected, "every message whole and in order at the server")
        XCTAssertTrue(p.clientPeer.messages == expected, "and back at the client")
        XCTAssertTrue(p.serverPeer.log.allSatisfy { $0 != UInt32(EVPL_NOTIFY_RECV_DATA) }, "framed: RECV_MSG only")
        p.teardown()
        assertClean()
    }

    func testStreamOverIPv6() {
        let p = Pair()
        p.serverPeer.echo = true
        p.listen(EVPL_STREAM_RDMACM_RC, port: 7103, host: "::1")
        guard p.connect(EVPL_STREAM_RDMACM_RC) else { return p.teardown() }
        let data = pattern(100_000, seed: 6)
        evpl_send(p.client, p.bind, data, UInt32(data.count))
        XCTAssertTrue(p.spin(max: 10_000) { p.clientPeer.data.count >= data.count })
        XCTAssertTrue(p.clientPeer.data == data)
        var remote = [CChar](repeating: 0, count: 64)
        evpl_bind_get_remote_address(p.bind, &remote, 64)
        XCTAssertEqual(String(cString: remote), "[::1]:7103")
        p.teardown()
        assertClean()
    }

    // MARK: 2. DATAGRAM_RDMACM_RC

    func testReliableDatagramsKeepMessageBoundariesAndOrder() {
        let p = Pair()
        p.listen(EVPL_DATAGRAM_RDMACM_RC, port: 7201)
        guard p.connect(EVPL_DATAGRAM_RDMACM_RC) else { return p.teardown() }
        evpl_bind_request_send_notifications(p.client, p.bind)
        var sizes = Sizes(x: 5)
        var expected: [[UInt8]] = []
        var iov = [evpl_iovec](repeating: evpl_iovec(), count: 4)
        for i in 0..<10_000 {
            let len = i % 997 == 0 ? 60000 + sizes.next(5536) : sizes.next(8192)
            let m = pattern(len, seed: UInt64(i) &* 31 &+ 3)
            expected.append(m)
            if i % 3 == 0 {
                // Zero-copy: the library takes over the references.
                let n = Int(evpl_iovec_alloc(p.client, UInt32(len), 0, 4, &iov))
                XCTAssertGreaterThan(n, 0)
                var off = 0
                for k in 0..<n {
                    let l = Int(iov[k].length)
                    m.withUnsafeBytes { iov[k].data.copyMemory(from: $0.baseAddress! + off, byteCount: l) }
                    off += l
                }
                evpl_sendv(p.client, p.bind, &iov, Int32(n), Int32(len), UInt32(EVPL_SEND_FLAG_TAKE_REF))
            } else {
                evpl_send(p.client, p.bind, m, UInt32(len))
            }
            if i % 64 == 63 { p.spin(max: 2) { false } }
        }
        XCTAssertTrue(p.spin(max: 200_000) { p.serverPeer.messages.count >= expected.count })
        XCTAssertEqual(p.serverPeer.messages.count, expected.count, "one RECV_MSG per send")
        XCTAssertTrue(p.serverPeer.messages == expected, "same bytes, same order")
        XCTAssertTrue(p.serverPeer.niovs.allSatisfy { $0 == 1 })
        XCTAssertTrue(p.spin(max: 1000) { p.clientPeer.sentMsgs >= expected.count })
        XCTAssertEqual(p.clientPeer.sentMsgs, expected.count)
        XCTAssertEqual(p.clientPeer.sentBytes, expected.reduce(0) { $0 + $1.count })
        // Replies the other way, message by message.
        for m in expected.prefix(100) { evpl_send(p.server, p.serverPeer.bind, m, UInt32(m.count)) }
        XCTAssertTrue(p.spin(max: 10_000) { p.clientPeer.messages.count >= 100 })
        XCTAssertTrue(p.clientPeer.messages == Array(expected.prefix(100)))
        p.teardown()
        assertClean()
    }

    // MARK: 3. DATAGRAM_RDMACM_UD

    func testUnreliableDatagramsCarryTheSenderAndAllowReplies() {
        let a = rdmaLoop(), b = rdmaLoop()
        let pa = RPeer(), pb = RPeer()
        pb.echo = true  // replies to recv_msg.addr with evpl_sendto
        let epA = evpl_endpoint_create("127.0.0.1", 7301), epB = evpl_endpoint_create("127.0.0.1", 7302)
        let ba = evpl_bind(a, EVPL_DATAGRAM_RDMACM_UD, epA, rdmaNotify, pa.handle)
        let bb = evpl_bind(b, EVPL_DATAGRAM_RDMACM_UD, epB, rdmaNotify, pb.handle)
        XCTAssertNotNil(ba)
        XCTAssertNotNil(bb)
        var local = [CChar](repeating: 0, count: 64)
        evpl_bind_get_local_address(ba, &local, 64)
        XCTAssertEqual(String(cString: local), "127.0.0.1:7301")
        func spin(_ max: Int, _ done: () -> Bool) -> Bool {
            var i = 0
            while !done() && i < max {
                evpl_continue(a)
                evpl_continue(b)
                i += 1
            }
            return done()
        }
        var expected: [[UInt8]] = []
        for i in 0..<100 {
            let m = pattern(1 + (i * 37) % 4096, seed: UInt64(i + 100))
            expected.append(m)
            evpl_sendtoep(a, ba, epB, m, UInt32(m.count))
        }
        XCTAssertTrue(spin(10_000) { pa.messages.count >= expected.count })
        XCTAssertTrue(pb.messages == expected, "each datagram whole, in order")
        XCTAssertEqual(Set(pb.senders), ["127.0.0.1:7301"], "recv_msg.addr is the sender's bind")
        XCTAssertTrue(pa.messages == expected, "replies to recv_msg.addr arrive")
        XCTAssertEqual(Set(pa.senders), ["127.0.0.1:7302"])
        // Larger than the UD datagram size (the 4096-byte path MTU): refused, nothing sent.
        let delivered = model.counters.messagesDelivered
        let big = pattern(5000, seed: 9)
        evpl_sendtoep(a, ba, epB, big, UInt32(big.count))
        let small: [UInt8] = [1, 2, 3]
        evpl_sendtoep(a, ba, epB, small, 3)
        XCTAssertTrue(spin(1000) { pa.messages.count >= expected.count + 1 })
        XCTAssertTrue(pb.messages.last == small)
        XCTAssertEqual(pb.messages.count, expected.count + 1, "the oversized datagram was not delivered")
        XCTAssertEqual(model.counters.messagesDelivered, delivered + 2)
        XCTAssertEqual(model.counters.lengthErrors, 0)
        XCTAssertEqual(model.udDrops, 0)
        XCTAssertEqual(pa.disconnected + pb.disconnected, 0)
        evpl_destroy(a)
        evpl_destroy(b)
        XCTAssertEqual(pa.disconnected, 1)
        XCTAssertEqual(pb.disconnected, 1)
        evpl_endpoint_close(epA)
        evpl_endpoint_close(epB)
        assertClean()
    }

    // MARK: 4. One-sided operations

    func testOneSidedWriteAndReadThroughAnAdvertisedBuffer() {
        let p = Pair()
        p.listen(EVPL_STREAM_RDMACM_RC, port: 7401)
        guard p.connect(EVPL_STREAM_RDMACM_RC) else { return p.teardown() }
        // The server exposes 4 KiB and tells the client where (rkey, address).
        var target = evpl_iovec()
        XCTAssertEqual(evpl_iovec_alloc(p.server, 4096, 0, 1, &target), 1)
        let original = pattern(4096, seed: 42)
        original.withUnsafeBytes { target.data.copyMemory(from: $0.baseAddress!, byteCount: 4096) }
        var rkey: UInt32 = 0, raddr: UInt64 = 0
        evpl_rdma_get_address(p.server, p.serverPeer.bind, &target, &rkey, &raddr)
        XCTAssertNotEqual(rkey, 0)
        XCTAssertEqual(raddr, UInt64(UInt(bitPattern: target.data)))
        XCTAssertTrue(model.isRemoteKey(rkey, covering: raddr, length: 4096),
                      "evpl_rdma_get_address gave rkey \(String(rkey, radix: 16)), which no registered MR has")
        var ad = [UInt8](repeating: 0, count: 12)
        withUnsafeBytes(of: rkey.bigEndian) { ad.replaceSubrange(0..<4, with: $0) }
        withUnsafeBytes(of: raddr.bigEndian) { ad.replaceSubrange(4..<12, with: $0) }
        evpl_send(p.server, p.serverPeer.bind, ad, 12)
        XCTAssertTrue(p.spin(max: 1000) { p.clientPeer.data.count >= 12 })
        let got = p.clientPeer.data
        let key = got[0..<4].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        let address = got[4..<12].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        XCTAssertEqual(key, rkey)
        XCTAssertEqual(address, raddr)

        final class Results { var statuses: [Int32] = [] }
        let results = Results()
        let done: RdmaCallback = { status, p in
            Unmanaged<Results>.fromOpaque(p!).takeUnretainedValue().statuses.append(status)
        }
        let ctx = Unmanaged.passUnretained(results).toOpaque()
        // Write a new pattern over the server's buffer (the library holds its own reference).
        var source = evpl_iovec()
        XCTAssertEqual(evpl_iovec_alloc(p.client, 4096, 0, 1, &source), 1)
        let written = pattern(4096, seed: 43)
        written.withUnsafeBytes { source.data.copyMemory(from: $0.baseAddress!, byteCount: 4096) }
        evpl_rdma_write(p.client, p.bind, key, address, &source, 1, 0, done, ctx)
        XCTAssertEqual(results.statuses, [], "the callback follows from the loop")
        XCTAssertTrue(p.spin(max: 1000) { results.statuses.count == 1 })
        XCTAssertEqual(results.statuses, [0])
        guard results.statuses == [0] else {
            evpl_iovec_release(&source)
            evpl_iovec_release(&target)
            return p.teardown()  // the rest would only repeat this failure
        }
        XCTAssertTrue(Array(UnsafeRawBufferPointer(start: target.data, count: 4096)) == written, "written")
        // Read it back into two iovecs (a scatter list).
        var back = [evpl_iovec](repeating: evpl_iovec(), count: 2)
        XCTAssertEqual(evpl_iovec_alloc(p.client, 1000, 0, 1, &back[0]), 1)
        XCTAssertEqual(evpl_iovec_alloc(p.client, 3096, 0, 1, &back[1]), 1)
        evpl_rdma_read(p.client, p.bind, key, address, &back, 2, done, ctx)
        XCTAssertTrue(p.spin(max: 1000) { results.statuses.count == 2 })
        XCTAssertEqual(results.statuses, [0, 0])
        let read = Array(UnsafeRawBufferPointer(start: back[0].data, count: 1000))
            + Array(UnsafeRawBufferPointer(start: back[1].data, count: 3096))
        XCTAssertTrue(read == written, "read back")
        // A partial write at an offset, with TAKE_REF.
        var part = evpl_iovec()
        XCTAssertEqual(evpl_iovec_alloc(p.client, 100, 0, 1, &part), 1)
        part.data.initializeMemory(as: UInt8.self, repeating: 0xEE, count: 100)
        evpl_rdma_write(p.client, p.bind, key, address + 1000, &part, 1, UInt32(EVPL_RDMA_FLAG_TAKE_REF), done, ctx)
        XCTAssertTrue(p.spin(max: 1000) { results.statuses.count == 3 })
        XCTAssertEqual(results.statuses[2], 0)
        XCTAssertTrue(Array(UnsafeRawBufferPointer(start: target.data + 1000, count: 100))
                      == [UInt8](repeating: 0xEE, count: 100), "partial write")
        XCTAssertTrue(Array(UnsafeRawBufferPointer(start: target.data + 1100, count: 100)) == Array(written[1100..<1200]),
                      "bytes after the partial write untouched")
        XCTAssertEqual(p.clientPeer.disconnected + p.serverPeer.disconnected, 0)
        XCTAssertEqual(model.counters.remoteAccessErrors, 0)

        // A wrong key: the callback fails, then the connection ends with an error on both sides.
        evpl_rdma_read(p.client, p.bind, key ^ 0x00ff_0000, address, &back, 1, done, ctx)
        XCTAssertTrue(p.spin(max: 1000) { results.statuses.count == 4 })
        XCTAssertNotEqual(results.statuses[3], 0)
        XCTAssertTrue(p.spin(max: 1000) { p.clientPeer.disconnected == 1 && p.serverPeer.disconnected == 1 })
        XCTAssertNotEqual(p.clientPeer.status, 0)
        XCTAssertNotEqual(p.serverPeer.status, 0)
        XCTAssertEqual(model.counters.remoteAccessErrors, 1)
        evpl_iovec_release(&source)
        evpl_iovec_release(&back[0])
        evpl_iovec_release(&back[1])
        evpl_iovec_release(&target)
        p.teardown()
        XCTAssertEqual(p.clientPeer.disconnected, 1, "DISCONNECTED exactly once")
        XCTAssertEqual(p.serverPeer.disconnected, 1, "DISCONNECTED exactly once")
        assertClean(expectErrors: true)
    }

    func testOneSidedOnTCPIsNotSupported() {
        let loop = rdmaLoop()
        let listener = evpl_listener_create()
        let peer = RPeer(), server = RPeer()
        let binding = evpl_listener_attach(loop, listener, rdmaAttach, server.handle)
        // A port the kernel just handed out (another process may still take it: retried).
        var ep: OpaquePointer?
        for _ in 0..<5 {
            let candidate = evpl_endpoint_create("127.0.0.1", kernelChosenPort())
            if evpl_listen(listener, EVPL_STREAM_SOCKET_TCP, candidate) == 0 {
                ep = candidate
                break
            }
            evpl_endpoint_close(candidate)
        }
        guard let ep else {
            evpl_listener_detach(loop, binding)
            evpl_listener_destroy(listener)
            evpl_destroy(loop)
            return XCTFail("no free TCP port to listen on")
        }
        let bind = evpl_connect(loop, EVPL_STREAM_SOCKET_TCP, nil, ep, rdmaNotify, nil, peer.handle)
        final class Results { var statuses: [Int32] = [] }
        let results = Results()
        var v = evpl_iovec()
        XCTAssertEqual(evpl_iovec_alloc(loop, 64, 0, 1, &v), 1)
        evpl_rdma_read(loop, bind, 1, 0x1000, &v, 1, { status, p in
            Unmanaged<Results>.fromOpaque(p!).takeUnretainedValue().statuses.append(status)
        }, Unmanaged.passUnretained(results).toOpaque())
        evpl_rdma_write(loop, bind, 1, 0x1000, &v, 1, 0, { status, p in
            Unmanaged<Results>.fromOpaque(p!).takeUnretainedValue().statuses.append(status)
        }, Unmanaged.passUnretained(results).toOpaque())
        for _ in 0..<100 { evpl_continue(loop) }
        XCTAssertEqual(results.statuses, [ENOTSUP, ENOTSUP])
        var key: UInt32 = 7, address: UInt64 = 7
        evpl_rdma_get_address(loop, bind, &v, &key, &address)
        XCTAssertEqual(key, 0)
        XCTAssertEqual(address, 0)
        evpl_iovec_release(&v)
        evpl_listener_detach(loop, binding)
        evpl_listener_destroy(listener)
        evpl_destroy(loop)
        evpl_endpoint_close(ep)
        XCTAssertEqual(model.violations, [])
    }

    // MARK: 5. Credits: a slow receiver

    func testCreditsHoldBackASenderWhoseReceiverDoesNotRun() {
        let p = Pair()
        p.listen(EVPL_DATAGRAM_RDMACM_RC, port: 7501)
        guard p.connect(EVPL_DATAGRAM_RDMACM_RC) else { return p.teardown() }
        var sizes = Sizes(x: 3)
        var expected: [[UInt8]] = []
        expected.reserveCapacity(100_000)
        for i in 0..<100_000 {
            var m = [UInt8](repeating: 0, count: 4 + sizes.next(60))
            withUnsafeBytes(of: UInt32(i).bigEndian) { m.replaceSubrange(0..<4, with: $0) }
            expected.append(m)
            evpl_send(p.client, p.bind, m, UInt32(m.count))
        }
        // Only the client runs: it may use its credits and no more.
        p.spin(max: 500, server: false) { false }
        let delivered = model.counters.messagesDelivered
        XCTAssertGreaterThan(delivered, 0)
        XCTAssertLessThanOrEqual(delivered, 64, "no more sends than the receiver granted")
        XCTAssertEqual(model.rnrCount, 0)
        XCTAssertEqual(p.clientPeer.disconnected, 0, "the sender waits; nothing fails")
        XCTAssertEqual(p.serverPeer.messages.count, 0)
        XCTAssertTrue(p.spin(max: 500_000) { p.serverPeer.messages.count >= expected.count })
        XCTAssertEqual(p.serverPeer.messages.count, expected.count)
        XCTAssertTrue(p.serverPeer.messages == expected, "every message, in order")
        XCTAssertEqual(model.rnrCount, 0)
        p.teardown()
        assertClean()
    }

    func testSlowDeliveryOfAFewMebibytesNeverOverrunsTheReceiver() {
        let p = Pair()
        p.listen(EVPL_STREAM_RDMACM_RC, port: 7502)
        guard p.connect(EVPL_STREAM_RDMACM_RC) else { return p.teardown() }
        model.deferDelivery = true  // the fabric delivers a few sends per round: a slow receiver
        let data = pattern(4 << 20, seed: 77)
        var offset = 0
        var sizes = Sizes(x: 13)
        while offset < data.count {
            let n = min(sizes.next(100_000), data.count - offset)
            data.withUnsafeBytes { evpl_send(p.client, p.bind, $0.baseAddress! + offset, UInt32(n)) }
            offset += n
        }
        // Nothing is delivered: the sender fills its credits and send queue, then waits.
        p.spin(max: 200, deliver: 0) { false }
        XCTAssertEqual(p.serverPeer.data.count, 0)
        XCTAssertGreaterThan(model.pendingCount, 0)
        XCTAssertLessThanOrEqual(model.pendingCount, 64, "bounded by the credit window, not by the data queued")
        XCTAssertTrue(p.spin(max: 500_000, deliver: 3) { p.serverPeer.data.count >= data.count })
        XCTAssertTrue(p.serverPeer.data == data, "every byte, in order")
        XCTAssertEqual(model.rnrCount, 0)
        XCTAssertEqual(p.clientPeer.disconnected + p.serverPeer.disconnected, 0)
        p.teardown()
        assertClean()
    }

    func testManyConnectionsShareTheReceiveQueueWithoutOverrun() {
        let client = rdmaLoop(), server = rdmaLoop()
        let serverPeer = RPeer()
        let listener = evpl_listener_create()
        let binding = evpl_listener_attach(server, listener, rdmaAttach, serverPeer.handle)
        let ep = evpl_endpoint_create("127.0.0.1", 7503)
        XCTAssertEqual(evpl_listen(listener, EVPL_DATAGRAM_RDMACM_RC, ep), 0)
        let peers = (0..<4).map { _ in RPeer() }
        let binds = peers.map { evpl_connect(client, EVPL_DATAGRAM_RDMACM_RC, nil, ep, rdmaNotify, nil, $0.handle) }
        XCTAssertFalse(binds.contains(nil))
        var round = 0
        func spin(_ max: Int, _ done: () -> Bool) -> Bool {
            var i = 0
            while !done() && i < max {
                evpl_continue(client)
                if round % 5 == 0 { evpl_continue(server) }  // the server runs one round in five
                round += 1
                i += 1
            }
            return done()
        }
        XCTAssertTrue(spin(5000) { peers.allSatisfy { $0.connected == 1 } && serverPeer.connected == 4 })
        let perConnection = 5000
        var sizes = Sizes(x: 21)
        for seq in 0..<perConnection {
            for (c, b) in binds.enumerated() {
                var m = [UInt8](repeating: UInt8(c), count: 5 + sizes.next(200))
                withUnsafeBytes(of: UInt32(seq).bigEndian) { m.replaceSubrange(1..<5, with: $0) }
                evpl_send(client, b, m, UInt32(m.count))
            }
        }
        XCTAssertTrue(spin(1_000_000) { serverPeer.messages.count >= 4 * perConnection })
        XCTAssertEqual(serverPeer.messages.count, 4 * perConnection)
        for c in 0..<4 {
            let seqs = serverPeer.messages.filter { $0.first == UInt8(c) }
                .map { $0[1..<5].reduce(UInt32(0)) { $0 << 8 | UInt32($1) } }
            XCTAssertEqual(seqs, (0..<UInt32(perConnection)).map { $0 }, "connection \(c): all, in order")
        }
        XCTAssertEqual(model.rnrCount, 0, "the shared receive queue never ran dry under the credit windows")
        XCTAssertEqual(peers.map(\.disconnected), [0, 0, 0, 0])
        evpl_listener_detach(server, binding)
        evpl_listener_destroy(listener)
        evpl_destroy(client)
        evpl_destroy(server)
        evpl_endpoint_close(ep)
        XCTAssertEqual(peers.map(\.disconnected), [1, 1, 1, 1])
        XCTAssertEqual(serverPeer.disconnected, 4)
        assertClean()
    }

    // MARK: 6. Peer loss mid-transfer

    func testPeerLossMidTransferDisconnectsBothSidesOnce() {
        let p = Pair()
        p.listen(EVPL_STREAM_RDMACM_RC, port: 7601)
        guard p.connect(EVPL_STREAM_RDMACM_RC) else { return p.teardown() }
        model.deferDelivery = true
        let data = pattern(8 << 20, seed: 5)
        var offset = 0
        while offset < data.count {
            let n = min(65536, data.count - offset)
            data.withUnsafeBytes { evpl_send(p.client, p.bind, $0.baseAddress! + offset, UInt32(n)) }
            offset += n
        }
        XCTAssertTrue(p.spin(max: 100_000, deliver: 2) { p.serverPeer.data.count >= 1 << 20 })
        XCTAssertLessThan(p.serverPeer.data.count, data.count)
        XCTAssertTrue(p.serverPeer.data == Array(data.prefix(p.serverPeer.data.count)))
        guard let qpn = model.rcConnections.last?.active else { return XCTFail("no connection in the fabric") }
        XCTAssertGreaterThan(model.pendingCount, 0, "sends in flight when the peer dies")
        XCTAssertTrue(model.killPeer(of: qpn))
        XCTAssertTrue(p.spin(max: 10_000, deliver: Int.max) {
            p.clientPeer.disconnected == 1 && p.serverPeer.disconnected == 1
        })
        XCTAssertNotEqual(p.clientPeer.status, 0)
        XCTAssertNotEqual(p.serverPeer.status, 0)
        p.spin(max: 100) { false }
        XCTAssertEqual(p.clientPeer.disconnected, 1)
        XCTAssertEqual(p.serverPeer.disconnected, 1)
        XCTAssertEqual(p.clientPeer.afterDisconnect + p.serverPeer.afterDisconnect, 0)
        XCTAssertGreaterThan(model.counters.retryErrors + model.counters.flushErrors, 0)
        p.teardown()
        XCTAssertEqual(p.clientPeer.disconnected, 1)
        XCTAssertEqual(p.serverPeer.disconnected, 1)
        assertClean(expectErrors: true)
    }

    func testSilentLinkLossIsNoticedBySendingAndEndsBothSides() {
        let p = Pair()
        p.listen(EVPL_STREAM_RDMACM_RC, port: 7602)
        guard p.connect(EVPL_STREAM_RDMACM_RC) else { return p.teardown() }
        guard let qpn = model.rcConnections.last?.active else { return XCTFail("no connection in the fabric") }
        XCTAssertTrue(model.loseConnection(of: qpn))
        p.spin(max: 100) { false }
        XCTAssertEqual(p.clientPeer.disconnected + p.serverPeer.disconnected, 0, "an idle dead link goes unnoticed")
        evpl_send(p.client, p.bind, [1, 2, 3] as [UInt8], 3)
        XCTAssertTrue(p.spin(max: 1000) { p.clientPeer.disconnected == 1 && p.serverPeer.disconnected == 1 })
        XCTAssertNotEqual(p.clientPeer.status, 0, "the sender's transport retries ran out")
        XCTAssertNotEqual(p.serverPeer.status, 0)
        XCTAssertEqual(model.counters.retryErrors, 1)
        p.teardown()
        XCTAssertEqual(p.clientPeer.disconnected, 1)
        XCTAssertEqual(p.serverPeer.disconnected, 1)
        assertClean(expectErrors: true)
    }

    // MARK: 7. Finish and close

    func testFinishDeliversEverythingThenDisconnectsCleanly() {
        let p = Pair()
        p.listen(EVPL_STREAM_RDMACM_RC, port: 7701)
        guard p.connect(EVPL_STREAM_RDMACM_RC) else { return p.teardown() }
        let data = pattern(2 << 20, seed: 8)
        var offset = 0
        while offset < data.count {
            let n = min(300_000, data.count - offset)
            data.withUnsafeBytes { evpl_send(p.client, p.bind, $0.baseAddress! + offset, UInt32(n)) }
            offset += n
        }
        evpl_finish(p.client, p.bind)
        XCTAssertEqual(p.clientPeer.disconnected, 0, "never from inside evpl_finish")
        XCTAssertTrue(p.spin(max: 100_000) { p.clientPeer.disconnected == 1 && p.serverPeer.disconnected == 1 })
        XCTAssertTrue(p.serverPeer.data == data, "everything queued before evpl_finish arrived")
        XCTAssertEqual(p.clientPeer.status, 0)
        XCTAssertEqual(p.serverPeer.status, 0)
        XCTAssertEqual(p.serverPeer.log.last, UInt32(EVPL_NOTIFY_DISCONNECTED))
        p.spin(max: 100) { false }
        XCTAssertEqual(p.clientPeer.disconnected, 1)
        XCTAssertEqual(p.serverPeer.disconnected, 1)
        p.teardown()
        assertClean()
    }

    func testCloseMidStreamDisconnectsEachSideOnce() {
        let p = Pair()
        p.listen(EVPL_STREAM_RDMACM_RC, port: 7702)
        guard p.connect(EVPL_STREAM_RDMACM_RC) else { return p.teardown() }
        let data = pattern(4 << 20, seed: 9)
        data.withUnsafeBytes { evpl_send(p.client, p.bind, $0.baseAddress!, UInt32(data.count)) }
        XCTAssertTrue(p.spin(max: 100_000) { p.serverPeer.data.count > 0 })
        evpl_close(p.client, p.bind)
        XCTAssertEqual(p.clientPeer.disconnected, 0, "never from inside evpl_close")
        XCTAssertTrue(p.spin(max: 10_000) { p.clientPeer.disconnected == 1 && p.serverPeer.disconnected == 1 })
        XCTAssertEqual(p.clientPeer.status, 0, "a local close is an orderly end")
        XCTAssertTrue(p.serverPeer.data == Array(data.prefix(p.serverPeer.data.count)), "what arrived is a prefix")
        p.spin(max: 100) { false }
        XCTAssertEqual(p.clientPeer.disconnected, 1)
        XCTAssertEqual(p.serverPeer.disconnected, 1)
        XCTAssertEqual(p.clientPeer.afterDisconnect + p.serverPeer.afterDisconnect, 0)
        p.teardown()
        assertClean()
    }

    // MARK: Connection failures

    /// A queue pair destroyed while its receive completions are still in the
    /// completion queue: the engine takes them first (the driver would drop
    /// them, and their receive slots with them).
    func testDestroyWithReceivesStillQueuedLosesNoCompletion() {
        let p = Pair()
        p.listen(EVPL_DATAGRAM_RDMACM_RC, port: 7801)
        guard p.connect(EVPL_DATAGRAM_RDMACM_RC) else { return p.teardown() }
        for i in 0..<20 { evpl_send(p.client, p.bind, [UInt8(i)], 1) }
        p.spin(max: 5, server: false) { false }  // the client posts; the server's queue fills
        XCTAssertEqual(p.serverPeer.messages.count, 0)
        XCTAssertGreaterThanOrEqual(model.counters.messagesDelivered, 20)
        p.teardown(settle: false)
        XCTAssertEqual(p.clientPeer.disconnected, 1)
        XCTAssertEqual(p.serverPeer.disconnected, 1)
        XCTAssertEqual(p.serverPeer.messages.count, 0, "nothing is delivered to a bind being destroyed")
        assertClean()
    }

    /// A listener attached to two loops hands RDMA connections out
    /// round-robin, as it does TCP ones; each accepted connection works on
    /// the loop it was given.
    func testConnectionsGoRoundRobinToTheAttachedLoops() {
        let client = rdmaLoop(), first = rdmaLoop(), second = rdmaLoop()
        let onFirst = RPeer(), onSecond = RPeer()
        onFirst.echo = true
        onSecond.echo = true
        let listener = evpl_listener_create()
        let b1 = evpl_listener_attach(first, listener, rdmaAttach, onFirst.handle)
        let b2 = evpl_listener_attach(second, listener, rdmaAttach, onSecond.handle)
        let ep = evpl_endpoint_create("127.0.0.1", 7901)
        XCTAssertEqual(evpl_listen(listener, EVPL_DATAGRAM_RDMACM_RC, ep), 0)
        let peers = (0..<4).map { _ in RPeer() }
        var binds: [OpaquePointer?] = []
        for p in peers {
            binds.append(evpl_connect(client, EVPL_DATAGRAM_RDMACM_RC, nil, ep, rdmaNotify, nil, p.handle))
        }
        func spin(_ max: Int, _ done: () -> Bool) {
            var i = 0
            while !done() && i < max {
                evpl_continue(client)
                evpl_continue(first)
                evpl_continue(second)
                i += 1
            }
        }
        spin(2000) { peers.allSatisfy { $0.connected == 1 } }
        XCTAssertEqual(peers.map(\.connected), [1, 1, 1, 1])
        XCTAssertEqual(onFirst.connected, 2, "two connections on the first loop")
        XCTAssertEqual(onSecond.connected, 2, "two connections on the second loop")
        for (i, b) in binds.enumerated() { evpl_send(client, b, [UInt8(i), 1, 2, 3], 4) }
        spin(2000) { peers.allSatisfy { $0.messages.count == 1 } }
        for (i, p) in peers.enumerated() { XCTAssertEqual(p.messages, [[UInt8(i), 1, 2, 3]]) }
        XCTAssertEqual(onFirst.messages.count, 2)
        XCTAssertEqual(onSecond.messages.count, 2)
        evpl_listener_detach(first, b1)
        evpl_listener_detach(second, b2)
        evpl_listener_destroy(listener)
        evpl_destroy(client)
        evpl_destroy(first)
        evpl_destroy(second)
        evpl_endpoint_close(ep)
        XCTAssertEqual(peers.map(\.disconnected), [1, 1, 1, 1])
        assertClean()
    }

    func testConnectWithoutListenerIsRefused() {
        let p = Pair()
        p.endpoint = evpl_endpoint_create("127.0.0.1", 7801)
        p.bind = evpl_connect(p.client, EVPL_STREAM_RDMACM_RC, nil, p.endpoint, rdmaNotify, nil, p.clientPeer.handle)
        XCTAssertNotNil(p.bind)
        XCTAssertTrue(p.spin(max: 1000) { p.clientPeer.disconnected == 1 })
        XCTAssertEqual(p.clientPeer.connected, 0)
        XCTAssertEqual(p.clientPeer.status, ECONNREFUSED)
        p.teardown()
        assertClean()
    }

    func testListenTwiceOnOnePortFails() {
        let p = Pair()
        p.listen(EVPL_STREAM_RDMACM_RC, port: 7802)
        let other = evpl_listener_create()
        XCTAssertEqual(evpl_listen(other, EVPL_STREAM_RDMACM_RC, p.endpoint), -1, "port in use")
        evpl_listener_destroy(other)
        p.teardown()
        assertClean()
    }
}
