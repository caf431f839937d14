import CEvpl
@testable import Evpl
import XCTest

final class BufferTests: XCTestCase {
    /// The engine's reference count of the pooled buffer behind an iovec.
    private func references(_ iovec: evpl_iovec) -> Int {
        Unmanaged<Buffer>.fromOpaque(iovec.private_data!).takeUnretainedValue().refs.load(ordering: .relaxed)
    }

    func testBufferReleasesItsReferencesExactlyOnce() throws {
        let loop = try EvplLoop()
        defer { loop.close() }
        var buffer: EvplBuffer? = try loop.makeBuffer(copying: [1, 2, 3, 4])
        let iovec = buffer!.iovecs[0]
        let held = references(iovec)
        XCTAssertEqual(buffer!.bytes, [1, 2, 3, 4])
        XCTAssertEqual(references(iovec), held)  // reading takes none
        buffer = nil
        XCTAssertEqual(references(iovec), held - 1)  // exactly one released
    }

    func testSendingABufferBalancesTheLibrarysReferences() throws {
        let loop = try EvplLoop()
        defer { loop.close() }
        let listener = EvplListener()
        var got = 0
        try loop.attach(listener) { connection in connection.onData = { _, data in got += data.count } }
        let endpoint = try EvplEndpoint.loopback(port: freePort())
        try listener.listen(on: endpoint)
        let client = try loop.connect(to: endpoint)
        var buffer: EvplBuffer? = try loop.allocateBuffer(count: 1000)
        buffer!.forEachMutableRegion { region in
            for i in 0..<region.count { region[i] = 7 }
        }
        let iovec = buffer!.iovecs[0]
        let held = references(iovec)
        client.send(buffer!)
        XCTAssertEqual(references(iovec), held + 1)  // the library's own reference
        XCTAssertTrue(loop.run(until: { got == 1000 }, timeout: patience))
        XCTAssertEqual(references(iovec), held)  // written: the library released its one
        buffer = nil
        XCTAssertEqual(references(iovec), held - 1)
    }

    func testLargeBufferSpansSeveralIovecs() throws {
        let loop = try EvplLoop()
        defer { loop.close() }
        let bytes = (0..<(5 * 1024 * 1024)).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let buffer = try loop.makeBuffer(copying: bytes)
        XCTAssertEqual(buffer.count, bytes.count)
        XCTAssertGreaterThan(buffer.iovecCount, 1)
        XCTAssertEqual(buffer.bytes, bytes)
    }
}
