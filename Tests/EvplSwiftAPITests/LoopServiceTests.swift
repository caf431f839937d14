import Evpl
import Foundation
import XCTest

final class LoopServiceTests: XCTestCase {
    func testRepeatingTimerCancelledInItsHandler() throws {
        let loop = try EvplLoop()
        defer { loop.close() }
        var fired = 0
        let timer = loop.addTimer(every: .milliseconds(1)) { timer in
            fired += 1
            if fired == 3 { timer.cancel() }
        }
        XCTAssertTrue(timer.isActive)
        XCTAssertTrue(loop.run(until: { !timer.isActive }, timeout: patience))
        XCTAssertEqual(fired, 3)
    }

    func testOneShotTimerFiresOnceAndCancelledTimerNever() throws {
        let loop = try EvplLoop()
        defer { loop.close() }
        var once = 0
        var never = 0
        var later = 0
        loop.addTimer(after: .milliseconds(1)) { _ in once += 1 }
        let cancelled = loop.addTimer(after: .milliseconds(1)) { _ in never += 1 }
        cancelled.cancel()
        XCTAssertFalse(cancelled.isActive)
        loop.addTimer(after: .milliseconds(20)) { _ in later += 1 }
        XCTAssertTrue(loop.run(until: { later == 1 }, timeout: patience))
        XCTAssertEqual(once, 1)
        XCTAssertEqual(never, 0)
    }

    func testDeferralsRunOnceAtTheEndOfTheIteration() throws {
        let loop = try EvplLoop()
        defer { loop.close() }
        var order: [String] = []
        let deferral = loop.makeDeferral { order.append("deferral") }
        loop.addTimer(after: .microseconds(1)) { _ in
            deferral.arm()
            deferral.arm()  // coalesces
            loop.atEndOfIteration { order.append("closure") }
            order.append("timer")
        }
        XCTAssertTrue(loop.run(until: { order.count >= 3 }, timeout: patience))
        XCTAssertEqual(order, ["timer", "deferral", "closure"])
        XCTAssertFalse(deferral.isArmed)

        deferral.arm()
        deferral.disarm()
        var ticks = 0
        loop.addTimer(after: .microseconds(1)) { _ in ticks += 1 }
        XCTAssertTrue(loop.run(until: { ticks == 1 }, timeout: patience))
        loop.runOnce()
        XCTAssertEqual(order.count, 3)  // the disarmed deferral did not run
    }

    func testDoorbellRungFromAnotherThread() throws {
        let loop = try EvplLoop()
        defer { loop.close() }
        let loopThread = pthread_self()
        var rang = 0
        var ranOnLoopThread = false
        let doorbell = try loop.addDoorbell {
            rang += 1
            ranOnLoopThread = pthread_equal(pthread_self(), loopThread) != 0
        }
        let ringer = Thread { doorbell.ring() }
        ringer.start()
        XCTAssertTrue(loop.run(until: { rang >= 1 }, timeout: patience))
        XCTAssertTrue(ranOnLoopThread)

        doorbell.remove()
        doorbell.ring()  // harmless once removed
        loop.addTimer(after: .microseconds(1)) { _ in }
        loop.runOnce()
        XCTAssertEqual(rang, 1)
    }

    func testStopFromAnotherThreadEndsRun() throws {
        let loop = try EvplLoop()
        defer { loop.close() }
        var gaveUp = false
        let safety = loop.addTimer(after: patience) { _ in
            gaveUp = true
            loop.stop()
        }
        let helper = Thread { loop.stop() }
        helper.start()
        loop.run()  // returns because of the helper's stop()
        XCTAssertFalse(gaveUp)
        safety.cancel()
    }

    func testRunUntilGivesUpAtTheTimeout() throws {
        let loop = try EvplLoop()
        defer { loop.close() }
        XCTAssertFalse(loop.run(until: { false }, timeout: .milliseconds(20)))
    }

    func testClosedLoopRefusesNewWork() throws {
        let loop = try EvplLoop()
        loop.close()
        loop.close()  // harmless
        XCTAssertTrue(loop.isClosed)
        XCTAssertEqual(thrownError { try loop.addDoorbell {} }, .loopClosed)
        XCTAssertEqual(thrownError { try loop.connect(to: EvplEndpoint.loopback(port: 1)) }, .loopClosed)
        XCTAssertFalse(loop.addTimer(after: .seconds(1)) { _ in }.isActive)
        loop.runOnce()  // does nothing
    }
}
