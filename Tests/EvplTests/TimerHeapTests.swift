import CEvpl
@testable import Evpl
import XCTest

final class TimerHeapTests: XCTestCase {
    func testPopsInDeadlineOrderAndReArms() {
        var heap = TimerHeap()
        let timers = UnsafeMutablePointer<evpl_timer>.allocate(capacity: 3)
        defer { timers.deallocate() }
        for (i, interval) in [30, 10, 20].enumerated() {
            timers[i] = evpl_timer(callback: nil, interval: UInt64(interval), deadline: timespec())
            heap.insert(timers + i, deadline: UInt64(interval) * 1000)
        }
        XCTAssertTrue(heap.checkInvariants())
        // At t = 25 µs the 10 µs and 20 µs timers are due.  The 10 µs one fell
        // behind (its next period, 20 µs, has passed too): it fires once and
        // is re-armed a full interval from now, with no catch-up burst.
        var fired: [UInt64] = []
        while let t = heap.popDue(now: 25_000) { fired.append(t.pointee.interval) }
        XCTAssertEqual(fired, [10, 20])
        XCTAssertTrue(heap.checkInvariants())
        XCTAssertEqual(heap.count, 3)
        // The user's deadline field holds the next expiry.
        XCTAssertEqual(timers[1].deadline.tv_nsec, 35_000)
        XCTAssertEqual(timers[2].deadline.tv_nsec, 40_000)
    }

    func testRemoveAnyAndRemoveTwice() {
        var heap = TimerHeap()
        let n = 1000
        let timers = UnsafeMutablePointer<evpl_timer>.allocate(capacity: n)
        defer { timers.deallocate() }
        var rng = SystemRandomNumberGenerator()
        for i in 0..<n {
            timers[i] = evpl_timer(callback: nil, interval: 1, deadline: timespec())
            heap.insert(timers + i, deadline: UInt64.random(in: 1...1_000_000, using: &rng))
        }
        for i in Array(0..<n).shuffled().prefix(600) {
            heap.remove(timers + i)
            heap.remove(timers + i)  // removing an inactive timer is a no-op
            XCTAssertFalse(heap.contains(timers + i))
        }
        XCTAssertTrue(heap.checkInvariants())
        XCTAssertEqual(heap.count, 400)
    }
}
