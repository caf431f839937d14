import Evpl
import XCTest

final class TCPEchoTests: XCTestCase {
    func testEchoThroughListener() throws {
        let loop = try EvplLoop()
        defer { loop.close() }
        let listener = EvplListener()
        var serverConnected = 0
        var serverEnded: [EvplError?] = []
        try loop.attach(listener) { connection in
            connection.onConnected = { _ in serverConnected += 1 }
            connection.onData = { connection, data in connection.send(data) }  // zero-copy echo
            connection.onDisconnected = { _, error in serverEnded.append(error) }
        }
        let endpoint = try EvplEndpoint.loopback(port: freePort())
        try listener.listen(on: endpoint)

        let client = try loop.connect(to: endpoint)
        let message = Array("hello, evpl".utf8)
        var received: [UInt8] = []
        var clientEnded: [EvplError?] = []
        client.onConnected = { connection in connection.send(message) }
        client.onData = { _, data in received += data.bytes }
        client.onDisconnected = { _, error in clientEnded.append(error) }

        XCTAssertFalse(client.isConnected)  // nothing happens before the loop runs
        XCTAssertTrue(loop.run(until: { received.count >= message.count }, timeout: patience))
        XCTAssertEqual(received, message)
        XCTAssertTrue(client.isConnected)
        XCTAssertEqual(serverConnected, 1)
        XCTAssertEqual(client.transport, .streamSocketTCP)
        XCTAssertEqual(client.remoteAddress, "127.0.0.1:\(endpoint.port)")
        XCTAssertTrue(client.localAddress.hasPrefix("127.0.0.1:"))

        client.close()
        XCTAssertTrue(clientEnded.isEmpty)  // never from inside close()
        XCTAssertTrue(loop.run(until: { clientEnded.count == 1 && serverEnded.count == 1 }, timeout: patience))
        XCTAssertNil(clientEnded[0] ?? nil)
        XCTAssertNil(serverEnded[0] ?? nil)
        XCTAssertTrue(client.isClosed)
        XCTAssertFalse(client.isConnected)
    }

    func testLargeTransferAndFinish() throws {
        let loop = try EvplLoop()
        defer { loop.close() }
        let listener = EvplListener()
        var serverGot = 0
        var serverEnded = false
        try loop.attach(listener) { connection in
            connection.onData = { _, data in serverGot += data.count }
            connection.onDisconnected = { _, _ in serverEnded = true }
        }
        let endpoint = try EvplEndpoint.loopback(port: freePort())
        try listener.listen(on: endpoint)
        let client = try loop.connect(to: endpoint)
        let payload = [UInt8](repeating: 0x5a, count: 3 * 1024 * 1024 + 17)
        var clientError: EvplError?? = .none
        client.onDisconnected = { _, error in clientError = .some(error) }
        client.send(payload)
        client.finish()  // everything queued is still written
        XCTAssertTrue(loop.run(until: { serverEnded && clientError != nil }, timeout: patience))
        XCTAssertEqual(serverGot, payload.count)
        XCTAssertNil(clientError ?? nil)
    }

    func testSendingABufferKeepsItValid() throws {
        let loop = try EvplLoop()
        defer { loop.close() }
        let listener = EvplListener()
        var serverGot: [UInt8] = []
        try loop.attach(listener) { connection in
            connection.onData = { _, data in serverGot += data.bytes }
        }
        let endpoint = try EvplEndpoint.loopback(port: freePort())
        try listener.listen(on: endpoint)
        let client = try loop.connect(to: endpoint)
        let buffer = try loop.makeBuffer(copying: "abc".utf8)
        client.send(buffer)
        client.send(buffer)  // the library took its own references
        XCTAssertTrue(loop.run(until: { serverGot.count >= 6 }, timeout: patience))
        XCTAssertEqual(String(decoding: serverGot, as: UTF8.self), "abcabc")
        XCTAssertEqual(buffer.bytes, Array("abc".utf8))
    }

    func testDataStaysBufferedWithoutHandler() throws {
        let loop = try EvplLoop()
        defer { loop.close() }
        let listener = EvplListener()
        var server: EvplConnection?
        try loop.attach(listener) { connection in server = connection }
        let endpoint = try EvplEndpoint.loopback(port: freePort())
        try listener.listen(on: endpoint)
        let client = try loop.connect(to: endpoint)
        client.send("0123456789".utf8)
        XCTAssertTrue(loop.run(until: { server?.peek(10).count == 10 }, timeout: patience))
        let connection = try XCTUnwrap(server)
        XCTAssertEqual(connection.peek(4), Array("0123".utf8))
        XCTAssertTrue(connection.consume(4))
        XCTAssertFalse(connection.consume(100))
        XCTAssertEqual(connection.receive(maximumCount: 3)?.bytes, Array("456".utf8))
        XCTAssertEqual(connection.receive()?.bytes, Array("789".utf8))
        XCTAssertNil(connection.receive())
    }
}
