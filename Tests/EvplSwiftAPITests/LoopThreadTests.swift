import Evpl
import Foundation
import XCTest

final class LoopThreadTests: XCTestCase {
    func testEchoServerOnItsOwnThread() throws {
        let listener = EvplListener()
        let mainThread = pthread_self()
        // Written on the server thread, read here after stop() joined it.
        final class ServerLog: @unchecked Sendable {
            var handlersOnMainThread = 0
            var disconnected = 0
        }
        let log = ServerLog()
        let server = try EvplLoopThread { loop in
            do {
                try loop.attach(listener) { connection in
                    connection.onData = { connection, data in
                        if pthread_equal(pthread_self(), mainThread) != 0 { log.handlersOnMainThread += 1 }
                        connection.send(data)
                    }
                    connection.onDisconnected = { _, _ in log.disconnected += 1 }
                }
            } catch {
                XCTFail("attach: \(error)")
            }
        }
        let endpoint = try EvplEndpoint.loopback(port: freePort())
        try listener.listen(on: endpoint)

        let loop = try EvplLoop()
        defer { loop.close() }
        let client = try loop.connect(to: endpoint)
        var echoed: [UInt8] = []
        client.onData = { _, data in echoed += data.bytes }
        client.send("across threads".utf8)
        XCTAssertTrue(loop.run(until: { echoed.count >= 14 }, timeout: patience))
        XCTAssertEqual(String(decoding: echoed, as: UTF8.self), "across threads")

        // Work handed to the server thread, answering through a doorbell here.
        var answered = false
        let answer = try loop.addDoorbell { answered = true }
        server.perform { _ in answer.ring() }
        XCTAssertTrue(loop.run(until: { answered }, timeout: patience))

        server.stop()  // closes the server's connection, joins
        server.stop()  // harmless
        XCTAssertEqual(log.handlersOnMainThread, 0)
        XCTAssertEqual(log.disconnected, 1)
        var clientEnded = false
        client.onDisconnected = { _, _ in clientEnded = true }
        XCTAssertTrue(loop.run(until: { clientEnded }, timeout: patience))
        server.perform { _ in XCTFail("work after stop must be dropped") }
    }
}
