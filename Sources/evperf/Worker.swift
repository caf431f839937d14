import CEvpl
import Evpl
import Glibc

/// Something that runs on a worker's loop: the server side, or one client flow.
/// Every method runs on the loop thread.
protocol LoopWork: AnyObject {
    /// Once, before the loop runs; an error message stops the run.
    func start(on worker: Worker) -> String?
    /// Every `Worker.tickMicroseconds`.
    func tick(_ worker: Worker, now: UInt64)
    /// Once, after the loop stopped and its binds were closed.
    func stop(_ worker: Worker)
}

extension LoopWork {
    func tick(_ worker: Worker, now: UInt64) {}
    func stop(_ worker: Worker) {}
}

/// One thread with its own event loop (evpl_thread_create), the work it
/// runs, and its counters.
final class Worker {
    static let tickMicroseconds: UInt64 = 10_000

    let control: Control
    let stats = Stats()
    /// Written on the loop thread only; read after the thread is joined.
    var latency = Latency()
    private(set) var loop: OpaquePointer?
    private var thread: OpaquePointer?
    private var work: [LoopWork] = []
    private var startError: String?
    /// An evpl_timer followed by a pointer back to this worker (timer
    /// callbacks get only the timer).
    private let timer: UnsafeMutableRawPointer

    init(control: Control) {
        self.control = control
        timer = UnsafeMutableRawPointer.allocate(byteCount: MemoryLayout<evpl_timer>.stride + 8, alignment: 8)
        timer.initializeMemory(as: UInt8.self, repeating: 0, count: MemoryLayout<evpl_timer>.stride + 8)
    }

    deinit { timer.deallocate() }

    func add(_ item: LoopWork) { work.append(item) }

    /// Starts the thread; its loop starts every work item before this returns.
    func start() throws {
        thread = evpl_thread_create(nil, { evpl, data in
            let worker = Unmanaged<Worker>.fromOpaque(data!).takeUnretainedValue()
            worker.started(evpl!)
            return data
        }, { evpl, data in
            Unmanaged<Worker>.fromOpaque(data!).takeUnretainedValue().stopping(evpl!)
        }, Unmanaged.passUnretained(self).toOpaque())
        guard thread != nil else { throw EvperfError.failed("cannot start an event loop thread") }
        if let startError { throw EvperfError.failed(startError) }
    }

    /// Stops the loop: its binds close (DISCONNECTED runs), then `stop` of
    /// every work item, then the thread is joined.
    func stop() {
        guard let thread else { return }
        evpl_thread_destroy(thread)
        self.thread = nil
    }

    private func started(_ evpl: OpaquePointer) {
        loop = evpl
        for item in work {
            if let error = item.start(on: self) {
                startError = error
                return
            }
        }
        timer.storeBytes(of: Unmanaged.passUnretained(self).toOpaque(),
                         toByteOffset: MemoryLayout<evpl_timer>.stride, as: UnsafeMutableRawPointer.self)
        evpl_add_timer(evpl, timer.assumingMemoryBound(to: evpl_timer.self), { _, timer in
            let back = UnsafeMutableRawPointer(timer!).load(fromByteOffset: MemoryLayout<evpl_timer>.stride,
                                                            as: UnsafeMutableRawPointer.self)
            let worker = Unmanaged<Worker>.fromOpaque(back).takeUnretainedValue()
            let now = Clock.nanoseconds()
            for item in worker.work { item.tick(worker, now: now) }
        }, Worker.tickMicroseconds)
    }

    private func stopping(_ evpl: OpaquePointer) {
        evpl_remove_timer(evpl, timer.assumingMemoryBound(to: evpl_timer.self))
        for item in work { item.stop(self) }
    }
}

/// CLOCK_MONOTONIC in nanoseconds.
enum Clock {
    @inline(__always)
    static func nanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }
}
