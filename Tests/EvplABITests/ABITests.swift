// These tests call the exported evpl_* functions through the generated C
// header (module CEvplHeader), exactly as a C program does; the Evpl module
// is linked but not imported.
import CEvplHeader
import Glibc
import XCTest

/// Test state shared with @convention(c) callbacks through private_data.
final class Box {
    var connected = 0
    var disconnected = 0
    var status: Int32 = -1
    var received: [UInt8] = []
    var messages: [[UInt8]] = []
    var server: OpaquePointer?
    var fired = 0
    var thread: pthread_t?
}

@inline(__always) func box(_ p: UnsafeMutableRawPointer?) -> Box {
    Unmanaged<Box>.fromOpaque(p!).takeUnretainedValue()
}

func makeLoop() -> OpaquePointer {
    let cfg = evpl_thread_config_init()
    evpl_thread_config_set_wait_ms(cfg, 10)
    let loop = evpl_create(cfg)!
    evpl_thread_config_release(cfg)
    return loop
}

func drive(_ loop: OpaquePointer, seconds: Double = 5, until done: () -> Bool) -> Bool {
    let end = Date().addingTimeInterval(seconds)
    while !done() && Date() < end { evpl_continue(loop) }
    return done()
}

func localPort(_ bind: OpaquePointer?) -> Int32 {
    var buf = [CChar](repeating: 0, count: 64)
    evpl_bind_get_local_address(bind, &buf, 64)
    let s = String(cString: buf)
    return Int32(s.split(separator: ":").last!)!
}

func freePort() -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
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
    close(fd)
    return Int32(UInt16(bigEndian: sin.sin_port))
}

final class ABITests: XCTestCase {
    func testProtocolQueries() {
        var id = EVPL_DATAGRAM_SOCKET_UDP
        XCTAssertEqual(evpl_protocol_lookup(&id, "STREAM_SOCKET_TCP"), 0)
        XCTAssertEqual(id, EVPL_STREAM_SOCKET_TCP)
        XCTAssertEqual(evpl_protocol_lookup(&id, "NOPE"), -1)
        XCTAssertEqual(evpl_protocol_is_stream(EVPL_STREAM_SOCKET_TCP), 1)
        XCTAssertEqual(evpl_protocol_is_stream(EVPL_DATAGRAM_SOCKET_UDP), 0)
        XCTAssertEqual(evpl_protocol_available(EVPL_STREAM_SOCKET_TCP), 1)
        XCTAssertEqual(evpl_protocol_available(evpl_protocol_id(rawValue: 99)), 0)
    }

    func testTCPEchoThroughListener() {
        let loop = makeLoop()
        let server = Box(), client = Box()
        let listener = evpl_listener_create()
        let binding = evpl_listener_attach(loop, listener, { _, _, notify, segment, conn, priv in
            notify!.pointee = { evpl, bind, n, p in
                let b = box(p)
                switch Int32(n!.pointee.notify_type) {
                case EVPL_NOTIFY_CONNECTED: b.connected += 1
                case EVPL_NOTIFY_RECV_DATA:
                    var buf = [UInt8](repeating: 0, count: 4096)
                    let got = evpl_recv(evpl, bind, &buf, 4096, 0)
                    evpl_send(evpl, bind, buf, UInt32(got))
                case EVPL_NOTIFY_DISCONNECTED: b.disconnected += 1
                default: break
                }
            }
            segment!.pointee = nil
            conn!.pointee = priv
        }, Unmanaged.passUnretained(server).toOpaque())
        let port = freePort()
        let ep = evpl_endpoint_create("127.0.0.1", port)
        XCTAssertEqual(evpl_listen(listener, EVPL_STREAM_SOCKET_TCP, ep), 0)
        let bind = evpl_connect(loop, EVPL_STREAM_SOCKET_TCP, nil, ep, { evpl, bind, n, p in
            let b = box(p)
            switch Int32(n!.pointee.notify_type) {
            case EVPL_NOTIFY_CONNECTED: b.connected += 1
            case EVPL_NOTIFY_RECV_DATA:
                var buf = [UInt8](repeating: 0, count: 4096)
                let got = evpl_recv(evpl, bind, &buf, 4096, 0)
                b.received += buf[0..<Int(got)]
            case EVPL_NOTIFY_DISCONNECTED:
                b.disconnected += 1
                b.status = n!.pointee.notify_status
            default: break
            }
        }, nil, Unmanaged.passUnretained(client).toOpaque())
        XCTAssertNotNil(bind)
        let message = Array("hello, evpl".utf8)
        evpl_send(loop, bind, message, UInt32(message.count))
        XCTAssertTrue(drive(loop) { client.received.count == message.count })
        XCTAssertEqual(client.received, message)
        XCTAssertEqual(client.connected, 1)
        XCTAssertEqual(server.connected, 1)
        evpl_close(loop, bind)
        XCTAssertEqual(client.disconnected, 0)  // never from inside evpl_close
        XCTAssertTrue(drive(loop) { client.disconnected == 1 && server.disconnected == 1 })
        XCTAssertEqual(client.status, 0)
        evpl_listener_detach(loop, binding)
        evpl_listener_destroy(listener)
        evpl_endpoint_close(ep)
        evpl_destroy(loop)
    }

    func testRefusedConnectIsDisconnectedWithErrno() {
        let loop = makeLoop()
        let client = Box()
        let ep = evpl_endpoint_create("127.0.0.1", freePort())
        _ = evpl_connect(loop, EVPL_STREAM_SOCKET_TCP, nil, ep, { _, _, n, p in
            let b = box(p)
            if Int32(n!.pointee.notify_type) == EVPL_NOTIFY_CONNECTED { b.connected += 1 }
            if Int32(n!.pointee.notify_type) == EVPL_NOTIFY_DISCONNECTED {
                b.disconnected += 1
                b.status = n!.pointee.notify_status
            }
        }, nil, Unmanaged.passUnretained(client).toOpaque())
        XCTAssertTrue(drive(loop) { client.disconnected == 1 })
        XCTAssertEqual(client.status, ECONNREFUSED)
        XCTAssertEqual(client.connected, 0)
        evpl_endpoint_close(ep)
        evpl_destroy(loop)
    }

    func testUDPReplyToSender() {
        let loop = makeLoop()
        let a = Box(), b = Box()
        let any = evpl_endpoint_create("127.0.0.1", 0)
        let notify: evpl_notify_callback_t = { evpl, bind, n, p in
            let x = box(p)
            guard Int32(n!.pointee.notify_type) == EVPL_NOTIFY_RECV_MSG else { return }
            let v = n!.pointee.recv_msg.iovec!
            let bytes = Array(UnsafeRawBufferPointer(start: v.pointee.data, count: Int(v.pointee.length)))
            x.messages.append(bytes)
            evpl_iovec_release(v)
            if x.server != nil {  // the server replies to recv_msg.addr inside the callback
                evpl_sendto(evpl, bind, n!.pointee.recv_msg.addr, bytes.reversed(), UInt32(bytes.count))
            }
        }
        let ba = evpl_bind(loop, EVPL_DATAGRAM_SOCKET_UDP, any, notify, Unmanaged.passUnretained(a).toOpaque())
        let bb = evpl_bind(loop, EVPL_DATAGRAM_SOCKET_UDP, any, notify, Unmanaged.passUnretained(b).toOpaque())
        b.server = bb
        let to = evpl_endpoint_create("127.0.0.1", localPort(bb))
        evpl_sendtoep(loop, ba, to, [1, 2, 3] as [UInt8], 3)
        XCTAssertTrue(drive(loop) { a.messages.count == 1 })
        XCTAssertEqual(b.messages, [[1, 2, 3]])
        XCTAssertEqual(a.messages, [[3, 2, 1]])
        evpl_endpoint_close(to)
        evpl_endpoint_close(any)
        evpl_destroy(loop)
    }

    func testTimerAndDeferral() {
        let loop = makeLoop()
        let state = Box()
        let timer = UnsafeMutablePointer<evpl_timer>.allocate(capacity: 1)
        defer { timer.deallocate() }
        // The one-shot pattern: the timer removes itself in its callback.
        struct Holder { static var box: Box? }
        Holder.box = state
        evpl_add_timer(loop, timer, { evpl, t in
            Holder.box!.fired += 1
            evpl_remove_timer(evpl, t)
        }, 1000)
        XCTAssertTrue(drive(loop) { state.fired == 1 })
        for _ in 0..<20 { evpl_continue(loop) }
        XCTAssertEqual(state.fired, 1)
        let d = UnsafeMutablePointer<evpl_deferral>.allocate(capacity: 1)
        defer { d.deallocate() }
        evpl_deferral_init(d, { _, p in box(p).connected += 1 }, Unmanaged.passUnretained(state).toOpaque())
        for _ in 0..<5 { evpl_defer(loop, d) }
        evpl_continue(loop)
        XCTAssertEqual(state.connected, 1)
        evpl_destroy(loop)
    }

    func testDoorbellFromAnotherThread() {
        let cfg = evpl_thread_config_init()  // default wait_ms -1: only the doorbell wakes it
        let loop = evpl_create(cfg)!
        evpl_thread_config_release(cfg)
        let state = Box()
        state.thread = pthread_self()
        let bell = UnsafeMutablePointer<evpl_doorbell>.allocate(capacity: 1)
        defer { bell.deallocate() }
        struct Holder { static var box: Box? }
        Holder.box = state
        evpl_add_doorbell(loop, bell, { evpl, _ in
            let b = Holder.box!
            b.fired += 1
            if pthread_equal(b.thread!, pthread_self()) == 0 { b.status = 1 }
            evpl_stop(evpl)
        })
        var t = pthread_t()
        pthread_create(&t, nil, { p in
            usleep(50_000)
            evpl_ring_doorbell(p!.assumingMemoryBound(to: evpl_doorbell.self))
            return nil
        }, bell)
        evpl_run(loop)
        pthread_join(t, nil)
        XCTAssertEqual(state.fired, 1)
        XCTAssertEqual(state.status, -1)  // ran on the loop's thread
        evpl_remove_doorbell(loop, bell)
        evpl_destroy(loop)
    }
}
