import CEvpl
@testable import Evpl
import XCTest

final class IovecRingTests: XCTestCase {
    private var loop: EventLoop!

    override func setUp() {
        loop = EventLoop(config: nil)
    }

    override func tearDown() {
        loop.destroy()
        loop = nil
    }

    private func iovec(_ bytes: [UInt8]) -> evpl_iovec {
        let v = loop.pool.allocate(bytes.count, alignment: 1)!
        bytes.withUnsafeBytes { v.data.copyMemory(from: $0.baseAddress!, byteCount: bytes.count) }
        return v
    }

    func testAppendConsumeKeepsBytesAndOrder() {
        var ring = IovecRing(capacity: 2)
        for i in 0..<100 { ring.append(iovec([UInt8(i), UInt8(i)])) }
        XCTAssertEqual(ring.count, 100)
        XCTAssertEqual(ring.bytes, 200)
        XCTAssertTrue(ring.checkInvariants())
        ring.consume(3)  // one whole iovec and half of the next
        XCTAssertEqual(ring.bytes, 197)
        XCTAssertEqual(ring.count, 99)
        XCTAssertEqual(ring.first.pointee.length, 1)
        XCTAssertEqual(ring.first.pointee.data!.load(as: UInt8.self), 1)
        var out = [UInt8](repeating: 0, count: 5)
        XCTAssertEqual(out.withUnsafeMutableBytes { ring.copy(into: $0.baseAddress!, length: 5) }, 5)
        XCTAssertEqual(out, [1, 2, 2, 3, 3])
        XCTAssertTrue(ring.checkInvariants())
        ring.releaseAll()
        XCTAssertTrue(ring.isEmpty)
        XCTAssertEqual(ring.bytes, 0)
    }

    func testAppendMergingJoinsContiguousRuns() {
        var ring = IovecRing(capacity: 4)
        let a = loop.pool.allocate(10, alignment: 1)!
        let b = loop.pool.allocate(10, alignment: 1)!  // right after a in the same buffer
        XCTAssertEqual(a.data + 10, b.data)
        ring.appendMerging(a)
        ring.appendMerging(b)
        XCTAssertEqual(ring.count, 1)
        XCTAssertEqual(ring.bytes, 20)
        ring.releaseAll()
    }

    func testWrapAroundGrowKeepsOrder() {
        var ring = IovecRing(capacity: 4)
        var next: UInt8 = 0
        var expect: UInt8 = 0
        for round in 0..<50 {
            for _ in 0..<(round % 7 + 1) {
                ring.append(iovec([next]))
                next &+= 1
            }
            while ring.count > 2 {
                XCTAssertEqual(ring.first.pointee.data!.load(as: UInt8.self), expect)
                Iovec.release(ring.popFirst())
                expect &+= 1
            }
            XCTAssertTrue(ring.checkInvariants())
        }
        ring.releaseAll()
    }
}
