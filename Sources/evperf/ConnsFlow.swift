import CEvpl
import Evpl

/// conns, client side: connect, send one message, wait for its echo, close,
/// and again. An operation is a connection that got its echo; its latency
/// runs from evpl_connect to the echo. A connection started during the
/// measured time is measured.
final class ConnsFlow: Flow {
    private var bind: OpaquePointer?
    private let sendBuffer: UnsafeMutableRawPointer
    private let recvBuffer: UnsafeMutableRawPointer
    private var seq: UInt64 = 0
    private var startedAt: UInt64 = 0
    private var measured = false
    private var gotEcho = false
    private var everConnected = false

    override init(worker: Worker, plan: Plan, port: Int) {
        sendBuffer = .allocate(byteCount: plan.size, alignment: 16)
        sendBuffer.initializeMemory(as: UInt8.self, repeating: 0x5a, count: plan.size)
        recvBuffer = .allocate(byteCount: plan.size, alignment: 16)
        super.init(worker: worker, plan: plan, port: port)
    }

    deinit {
        sendBuffer.deallocate()
        recvBuffer.deallocate()
    }

    override func start(on worker: Worker) -> String? {
        connect() ? nil : "cannot connect to \(target)"
    }

    private func connect() -> Bool {
        if worker.control.phase == .draining {
            markDrained()
            return true
        }
        measured = worker.control.phase == .measuring
        gotEcho = false
        startedAt = Clock.nanoseconds()
        bind = evpl_connect(loop, proto, nil, remote, ConnsFlow.notify, nil, opaque)
        if bind == nil {
            worker.stats.errors.add()
            markDrained()
            return false
        }
        return true
    }

    private func handle(_ evpl: OpaquePointer?, _ bind: OpaquePointer?, _ notify: UnsafeMutablePointer<evpl_notify>) {
        switch CInt(notify.pointee.notify_type) {
        case EVPL_NOTIFY_CONNECTED:
            everConnected = true
            Message.fill(sendBuffer, size: size, seq: seq)
            seq &+= 1
            evpl_send(evpl, bind, sendBuffer, CUnsignedInt(size))
            if measured { worker.stats.sent.add() }
        case EVPL_NOTIFY_RECV_DATA:
            let got = evpl_recv(evpl, bind, recvBuffer, CInt(size), CUnsignedInt(EVPL_RECV_FLAG_ALL_OR_NONE))
            if got == CInt(size) && !gotEcho {
                gotEcho = true
                if Message.parse(recvBuffer, length: size) == nil { worker.stats.errors.add() }
                if measured {
                    worker.stats.received.add()
                    worker.latency.record(nanoseconds: Clock.nanoseconds() &- startedAt)
                }
                evpl_close(evpl, bind)
            } else if got < 0 {
                worker.stats.errors.add()
            }
        case EVPL_NOTIFY_DISCONNECTED:
            self.bind = nil
            if gotEcho {
                worker.stats.ops.add()
                markReady()
            } else if worker.control.phase != .draining {
                lost(notify)
                // A server that never answered: stop rather than spin.
                if !everConnected { return markDrained() }
            }
            _ = connect()
        default:
            break
        }
    }

    static let notify: evpl_notify_callback_t = { evpl, bind, notify, data in
        Unmanaged<ConnsFlow>.fromOpaque(data!).takeUnretainedValue().handle(evpl, bind, notify!)
    }
}
