import Evpl
import XCTest

final class LifetimeTests: XCTestCase {
    func testConnectionIsReleasedAfterItsDisconnection() throws {
        let loop = try EvplLoop()
        defer { loop.close() }
        weak var weakClient: EvplConnection?
        var ended = false
        do {
            let client = try loop.connect(to: EvplEndpoint.loopback(port: freePort()))  // refused
            client.onData = { _, _ in _ = client }  // a cycle, broken at the disconnection
            client.onDisconnected = { _, _ in ended = true }
            weakClient = client
        }
        XCTAssertNotNil(weakClient)  // the loop keeps it until its disconnection
        XCTAssertTrue(loop.run(until: { ended }, timeout: patience))
        XCTAssertNil(weakClient)
    }

    func testDroppingTheLoopClosesEverything() throws {
        weak var weakLoop: EvplLoop?
        var clientEnded = false
        var serverEnded = false
        var socketClosed = false
        var connected = false
        do {
            let loop = try EvplLoop()
            weakLoop = loop
            let listener = EvplListener()
            try loop.attach(listener) { connection in
                connection.onConnected = { _ in connected = true }
                connection.onDisconnected = { _, _ in serverEnded = true }
            }
            let endpoint = try EvplEndpoint.loopback(port: freePort())
            try listener.listen(on: endpoint)
            let client = try loop.connect(to: endpoint)
            client.onDisconnected = { _, error in
                XCTAssertNil(error)
                clientEnded = true
            }
            let socket = try loop.bind(to: EvplEndpoint.loopback(port: 0))
            socket.onClosed = { _, _ in socketClosed = true }
            loop.addTimer(every: .seconds(60)) { _ in }
            _ = try loop.addDoorbell {}
            XCTAssertTrue(loop.run(until: { connected }, timeout: patience))
        }
        XCTAssertNil(weakLoop)  // its deinit closed it
        XCTAssertTrue(clientEnded)
        XCTAssertTrue(serverEnded)
        XCTAssertTrue(socketClosed)
    }

    func testListenerPortIsFreeAgainWhenTheListenerGoesAway() throws {
        let endpoint = try EvplEndpoint.loopback(port: freePort())
        do {
            let loop = try EvplLoop()
            defer { loop.close() }
            let listener = EvplListener()
            let attachment = try loop.attach(listener) { _ in }
            try listener.listen(on: endpoint)
            XCTAssertTrue(attachment.isAttached)
            attachment.detach()
            XCTAssertFalse(attachment.isAttached)
        }
        let again = EvplListener()
        try again.listen(on: endpoint)  // the first listener was destroyed
    }
}
