import CEvpl
import Evpl

/// stream, client side: one-way bulk. Each message is evpl_iovec_alloc'd and
/// sent zero-copy (evpl_sendv with TAKE_REF); at most `window` messages are
/// in flight, paced by EVPL_NOTIFY_SENT. Counted: the bytes the kernel
/// accepted (the receiver counts its own); the main thread samples both
/// counters at the start and the end of the measured time.
final class StreamFlow: Flow {
    static let maxIovecs = 32

    private var bind: OpaquePointer?
    private var connected = false
    private let iovecs: UnsafeMutablePointer<evpl_iovec>
    private let windowBytes: Int
    private var inflightBytes = 0
    private var seq: UInt64 = 0

    override init(worker: Worker, plan: Plan, port: Int) {
        iovecs = .allocate(capacity: StreamFlow.maxIovecs)
        windowBytes = plan.window * plan.size
        super.init(worker: worker, plan: plan, port: port)
    }

    deinit { iovecs.deallocate() }

    override func start(on worker: Worker) -> String? {
        bind = evpl_connect(loop, proto, nil, remote, StreamFlow.notify, nil, opaque)
        guard bind != nil else { return "cannot connect to \(target)" }
        evpl_bind_request_send_notifications(loop, bind)
        return nil
    }

    override func tick(_ worker: Worker, now: UInt64) {
        if worker.control.phase == .draining { markDrained() }
    }

    private func fill() {
        guard connected else { return }
        if worker.control.phase == .draining { return markDrained() }
        while inflightBytes + size <= windowBytes {
            let n = evpl_iovec_alloc(loop, CUnsignedInt(size), 0, CUnsignedInt(StreamFlow.maxIovecs), iovecs)
            guard n > 0 else {
                worker.stats.errors.add()
                return
            }
            // A sequence number in front; the rest of the payload is left as allocated.
            if iovecs[0].length >= 8, let data = iovecs[0].data {
                data.storeBytes(of: seq.littleEndian, as: UInt64.self)
            }
            seq &+= 1
            evpl_sendv(loop, bind, iovecs, n, CInt(size), CUnsignedInt(EVPL_SEND_FLAG_TAKE_REF))
            inflightBytes += size
        }
    }

    private func handle(_ evpl: OpaquePointer?, _ notify: UnsafeMutablePointer<evpl_notify>) {
        switch CInt(notify.pointee.notify_type) {
        case EVPL_NOTIFY_CONNECTED:
            connected = true
            fill()
        case EVPL_NOTIFY_SENT:
            let bytes = Int(notify.pointee.sent.bytes)
            inflightBytes = max(0, inflightBytes - bytes)
            worker.stats.bytes.add(bytes)
            markReady()
            fill()
        case EVPL_NOTIFY_DISCONNECTED:
            bind = nil
            connected = false
            if worker.control.phase != .draining { lost(notify) }
            markDrained()
        default:
            break  // the server sends nothing back
        }
    }

    static let notify: evpl_notify_callback_t = { evpl, _, notify, data in
        Unmanaged<StreamFlow>.fromOpaque(data!).takeUnretainedValue().handle(evpl, notify!)
    }
}
