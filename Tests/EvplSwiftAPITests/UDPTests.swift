import Evpl
import XCTest

final class UDPTests: XCTestCase {
    func testDatagramReplyToSender() throws {
        let loop = try EvplLoop()
        defer { loop.close() }
        let server = try loop.bind(to: EvplEndpoint.loopback(port: 0))
        var serverSaw: [String] = []
        server.onMessage = { socket, datagram, sender in
            serverSaw.append(sender.description)
            socket.send(datagram, to: sender)  // zero-copy reply to the sender
        }
        let serverPort = try XCTUnwrap(server.localPort)
        XCTAssertNotEqual(serverPort, 0)  // the kernel picked one

        let client = try loop.bind(to: EvplEndpoint.loopback(port: 0))
        var replies: [String] = []
        var replyPorts: [Int] = []
        client.onMessage = { _, datagram, sender in
            replies.append(String(decoding: datagram.bytes, as: UTF8.self))
            replyPorts.append(sender.port)
        }
        let to = try EvplEndpoint.loopback(port: serverPort)
        client.send("ping".utf8, to: to)
        client.send(try loop.makeBuffer(copying: "pong".utf8), to: to)

        XCTAssertTrue(loop.run(until: { replies.count == 2 }, timeout: patience))
        XCTAssertEqual(replies, ["ping", "pong"])
        XCTAssertEqual(replyPorts, [serverPort, serverPort])
        XCTAssertEqual(serverSaw, ["127.0.0.1:\(client.localPort!)", "127.0.0.1:\(client.localPort!)"])

        var closed = false
        client.onClosed = { _, error in
            XCTAssertNil(error)
            closed = true
        }
        client.close()
        XCTAssertTrue(loop.run(until: { closed }, timeout: patience))
        XCTAssertTrue(client.isClosed)
        XCTAssertNil(client.localPort)
    }

    func testSenderAddressOutlivesTheHandler() throws {
        let loop = try EvplLoop()
        defer { loop.close() }
        let server = try loop.bind(to: EvplEndpoint.loopback(port: 0))
        var saved: EvplAddress?
        server.onMessage = { _, _, sender in saved = sender }
        let client = try loop.bind(to: EvplEndpoint.loopback(port: 0))
        var reply: [UInt8] = []
        client.onMessage = { _, datagram, _ in reply = datagram.bytes }
        client.send([1, 2, 3], to: try EvplEndpoint.loopback(port: server.localPort!))
        XCTAssertTrue(loop.run(until: { saved != nil }, timeout: patience))
        server.send([4, 5], to: saved!)  // after the handler returned
        XCTAssertTrue(loop.run(until: { !reply.isEmpty }, timeout: patience))
        XCTAssertEqual(reply, [4, 5])
    }
}
