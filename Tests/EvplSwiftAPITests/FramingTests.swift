import Evpl
import Glibc
import XCTest

final class FramingTests: XCTestCase {
    func testLengthPrefixedMessagesEcho() throws {
        let loop = try EvplLoop()
        defer { loop.close() }
        let listener = EvplListener()
        var serverMessages = 0
        try loop.attach(listener, framing: .lengthPrefixed()) { connection in
            connection.onMessage = { connection, message in
                serverMessages += 1
                connection.send(message)
            }
        }
        let endpoint = try EvplEndpoint.loopback(port: freePort())
        try listener.listen(on: endpoint)

        let client = try loop.connect(to: endpoint, framing: .lengthPrefixed())
        let payloads: [[UInt8]] = [
            Array("one".utf8), [], Array("three".utf8),
            (0..<200_000).map { UInt8(truncatingIfNeeded: $0) },  // spans several reads
        ]
        var echoed: [[UInt8]] = []
        client.onMessage = { _, message in echoed.append(message.bytes) }
        var all: [UInt8] = []
        for p in payloads { all += lengthPrefixed(p) }
        client.send(all)  // one write; the framing cuts it apart again

        XCTAssertTrue(loop.run(until: { echoed.count == payloads.count }, timeout: patience))
        XCTAssertEqual(serverMessages, payloads.count)
        XCTAssertEqual(echoed, payloads.map(lengthPrefixed))
    }

    func testInvalidFrameEndsTheConnection() throws {
        let loop = try EvplLoop()
        defer { loop.close() }
        let listener = EvplListener()
        var serverError: EvplError?
        var serverEnded = false
        let framing = EvplFraming { connection in
            guard let first = connection.peek(1).first else { return .needMoreData }
            return first == 0xff ? .invalid : .message(length: 1)
        }
        try loop.attach(listener, framing: framing) { connection in
            connection.onDisconnected = { _, error in
                serverError = error
                serverEnded = true
            }
        }
        let endpoint = try EvplEndpoint.loopback(port: freePort())
        try listener.listen(on: endpoint)
        let client = try loop.connect(to: endpoint)
        var clientEnded = false
        client.onDisconnected = { _, _ in clientEnded = true }
        client.send([0xff, 0x00])
        XCTAssertTrue(loop.run(until: { serverEnded && clientEnded }, timeout: patience))
        XCTAssertEqual(serverError, .invalidFrame)
        XCTAssertEqual(serverError?.errno, EPROTO)
    }
}
