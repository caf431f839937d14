import CEvpl
import Evpl

/// What every client flow (one connection, or one datagram socket) shares:
/// its worker, the server's endpoint, and the two one-time counters the main
/// thread waits on. Subclasses hold the per-connection state of one test and
/// are passed to the library as private_data (Unmanaged, not retained: the
/// worker keeps them alive until its thread is joined).
class Flow: LoopWork {
    unowned(unsafe) let worker: Worker
    let proto: evpl_protocol_id
    let size: Int
    let window: Int
    /// The server address as given, for messages.
    let target: String
    /// The server's endpoint, created here and closed when the flow goes.
    let remote: OpaquePointer?
    private var isReady = false
    private(set) var isDrained = false

    init(worker: Worker, plan: Plan, port: Int) {
        self.worker = worker
        proto = plan.proto
        size = plan.size
        window = plan.window
        target = "\(plan.address):\(port)"
        remote = evpl_endpoint_create(plan.address, CInt(port))
    }

    deinit { evpl_endpoint_close(remote) }

    var loop: OpaquePointer? { worker.loop }
    var opaque: UnsafeMutableRawPointer { Unmanaged.passUnretained(self).toOpaque() }

    func start(on worker: Worker) -> String? { nil }
    func tick(_ worker: Worker, now: UInt64) {}
    func stop(_ worker: Worker) {}

    /// The first completed operation: the main thread waits for every flow's.
    @inline(__always)
    func markReady() {
        if !isReady {
            isReady = true
            worker.stats.ready.add()
        }
    }

    /// Nothing is outstanding any more (or the flow failed): the main thread
    /// waits for every flow's before it stops the loops.
    func markDrained() {
        if !isDrained {
            isDrained = true
            worker.stats.drained.add()
        }
    }

    /// A connection ended while traffic was still wanted.
    func lost(_ notify: UnsafeMutablePointer<evpl_notify>) {
        worker.stats.errors.add()
        worker.stats.lastErrno.store(Int(notify.pointee.notify_status), ordering: .relaxed)
    }
}
