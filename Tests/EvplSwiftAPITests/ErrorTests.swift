import Evpl
import XCTest

final class ErrorTests: XCTestCase {
    func testRefusedConnectIsATypedError() throws {
        let loop = try EvplLoop()
        defer { loop.close() }
        let client = try loop.connect(to: EvplEndpoint.loopback(port: freePort()))  // nobody listens
        var connected = false
        var ended: [EvplError?] = []
        client.onConnected = { _ in connected = true }
        client.onDisconnected = { _, error in ended.append(error) }
        XCTAssertTrue(loop.run(until: { !ended.isEmpty }, timeout: patience))
        XCTAssertFalse(connected)
        XCTAssertEqual(ended.count, 1)
        XCTAssertEqual(ended[0], .connectionRefused)
        XCTAssertEqual(ended[0]?.errno, ECONNREFUSED)
        XCTAssertTrue(client.isClosed)
    }

    func testUnavailableProtocolThrows() throws {
        let loop = try EvplLoop()
        defer { loop.close() }
        // STREAM_SOCKET_TLS is never built; the RDMA protocols may be available
        // in this process (the RDMA tests install an in-memory fabric).
        let tls = try XCTUnwrap(EvplProtocol(name: "STREAM_SOCKET_TLS"))
        XCTAssertEqual(tls, .streamSocketTLS)
        XCTAssertFalse(tls.isAvailable)
        XCTAssertNotNil(tls.unavailableReason)
        let endpoint = try EvplEndpoint.loopback(port: freePort())

        let connectError = thrownError { try loop.connect(to: endpoint, using: .streamSocketTLS) }
        guard case .protocolUnavailable(let name, let reason)? = connectError else {
            return XCTFail("expected protocolUnavailable, got \(String(describing: connectError))")
        }
        XCTAssertEqual(name, "STREAM_SOCKET_TLS")
        XCTAssertEqual(reason, tls.unavailableReason)

        let listener = EvplListener()
        guard case .protocolUnavailable("STREAM_SOCKET_TLS", _)? = thrownError({
            try listener.listen(on: endpoint, using: .streamSocketTLS)
        }) else { return XCTFail("listen on TLS did not throw protocolUnavailable") }
        if !EvplProtocol.datagramRdmacmUD.isAvailable {
            guard case .protocolUnavailable("DATAGRAM_RDMACM_UD", _)? = thrownError({
                try loop.bind(to: endpoint, using: .datagramRdmacmUD)
            }) else { return XCTFail("bind on RDMA did not throw protocolUnavailable") }
        }
    }

    func testWrongKindOfProtocolThrows() throws {
        let loop = try EvplLoop()
        defer { loop.close() }
        let endpoint = try EvplEndpoint.loopback(port: freePort())
        XCTAssertEqual(thrownError { try loop.connect(to: endpoint, using: .udp) },
                       .notAStreamProtocol("DATAGRAM_SOCKET_UDP"))
        XCTAssertEqual(thrownError { try loop.bind(to: endpoint, using: .tcp) },
                       .notADatagramProtocol("STREAM_SOCKET_TCP"))
    }

    func testBadEndpointsAndBusyPortsThrow() throws {
        XCTAssertEqual(thrownError { try EvplEndpoint(host: "127.0.0.1", port: 70000) },
                       .invalidEndpoint(host: "127.0.0.1", port: 70000))
        XCTAssertEqual(thrownError { try EvplEndpoint(host: "not a host!", port: 80) },
                       .invalidEndpoint(host: "not a host!", port: 80))
        let wildcard = try EvplEndpoint(host: nil, port: 0)
        XCTAssertEqual(wildcard.host, "0.0.0.0")
        XCTAssertEqual(try EvplEndpoint(host: "::1", port: 9).description, "[::1]:9")

        let endpoint = try EvplEndpoint.loopback(port: freePort())
        let first = EvplListener()
        try first.listen(on: endpoint)
        let second = EvplListener()
        XCTAssertEqual(thrownError { try second.listen(on: endpoint) },
                       .listenFailed(endpoint: endpoint.description))
    }

    func testErrnoMapping() {
        XCTAssertEqual(EvplError(errno: ECONNRESET), .connectionReset)
        XCTAssertEqual(EvplError(errno: ETIMEDOUT), .timedOut)
        XCTAssertEqual(EvplError(errno: EPROTO), .invalidFrame)
        XCTAssertEqual(EvplError(errno: EACCES), .system(errno: EACCES))
        XCTAssertEqual(EvplError(errno: EACCES).errno, EACCES)
        XCTAssertNil(EvplError.loopClosed.errno)
        XCTAssertEqual(EvplError.connectionRefused.description, String(cString: strerror(ECONNREFUSED)))
    }
}
