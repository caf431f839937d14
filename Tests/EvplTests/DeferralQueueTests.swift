import CEvpl
@testable import Evpl
import XCTest

private var order: [Int] = []

final class DeferralQueueTests: XCTestCase {
    func testCoalescesRunsInArmingOrderAndDisarms() {
        order = []
        var q = DeferralQueue()
        let d = UnsafeMutablePointer<evpl_deferral>.allocate(capacity: 3)
        defer { d.deallocate() }
        let cb: deferral_callback_t = { _, p in order.append(Int(bitPattern: p)) }
        for i in 0..<3 { d[i] = evpl_deferral(callback: cb, private_data: UnsafeMutableRawPointer(bitPattern: i + 1), armed: 0) }
        q.arm(d + 1)
        q.arm(d + 0)
        q.arm(d + 1)  // coalesced
        q.arm(d + 2)
        q.disarm(d + 2)
        let loop = OpaquePointer(bitPattern: 0x10)!
        XCTAssertEqual(q.run(loop), 2)
        XCTAssertEqual(order, [2, 1])
        XCTAssertTrue(q.isEmpty)
    }
}
