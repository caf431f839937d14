import CEvpl
import Evpl

/// pingpong and rate, client side: keep `window` messages outstanding and
/// time each reply.
///
/// - pingpong over a stream: evpl_send, and evpl_recv(ALL_OR_NONE) of whole
///   messages on RECV_DATA (the server echoes bytes).
/// - rate over a stream: the same sends; a segment callback delivers whole
///   length-prefixed replies as RECV_MSG (the server echoes them zero-copy).
/// - either over a datagram protocol: evpl_bind, evpl_sendtoep, one RECV_MSG
///   per reply. A window with no reply for 100 ms is given up as lost.
///
/// A message is measured when it is sent during the measured time; its reply
/// counts in `received` and in the latency histogram.
final class EchoFlow: Flow {
    static let lossTimeout: UInt64 = 100_000_000

    private let datagram: Bool
    private let framed: Bool
    private let localAddress: String
    private var local: OpaquePointer?
    private var bind: OpaquePointer?
    private var active = false
    private let sendBuffer: UnsafeMutableRawPointer
    private let recvBuffer: UnsafeMutableRawPointer
    /// Send times, indexed by sequence number & mask.
    private let sentAt: UnsafeMutablePointer<UInt64>
    private let mask: UInt64
    private var seq: UInt64 = 0
    /// Replies to messages before this one were given up as lost.
    private var resetSeq: UInt64 = 0
    /// The first measured message (UInt64.max: not measuring yet).
    private var measureFrom = UInt64.max
    private var inflight = 0
    private var lastProgress: UInt64 = 0

    override init(worker: Worker, plan: Plan, port: Int) {
        datagram = !plan.isStream
        framed = plan.framed
        localAddress = plan.mode == .loopback ? "127.0.0.1" : (plan.address.contains(":") ? "::" : "0.0.0.0")
        sendBuffer = .allocate(byteCount: plan.size, alignment: 16)
        sendBuffer.initializeMemory(as: UInt8.self, repeating: 0x5a, count: plan.size)
        recvBuffer = .allocate(byteCount: max(plan.size, Message.headerSize), alignment: 16)
        var capacity = 2
        while capacity < 2 * plan.window { capacity *= 2 }
        sentAt = .allocate(capacity: capacity)
        sentAt.initialize(repeating: 0, count: capacity)
        mask = UInt64(capacity - 1)
        super.init(worker: worker, plan: plan, port: port)
    }

    deinit {
        evpl_endpoint_close(local)
        sendBuffer.deallocate()
        recvBuffer.deallocate()
        sentAt.deallocate()
    }

    override func start(on worker: Worker) -> String? {
        lastProgress = Clock.nanoseconds()
        if datagram {
            local = evpl_endpoint_create(localAddress, 0)
            bind = evpl_bind(loop, proto, local, EchoFlow.notify, opaque)
            guard bind != nil else { return "cannot bind a datagram socket on \(localAddress)" }
            active = true
            fill()
        } else {
            bind = evpl_connect(loop, proto, nil, remote, EchoFlow.notify, framed ? Message.segment : nil, opaque)
            guard bind != nil else { return "cannot connect to \(target)" }
        }
        return nil
    }

    override func tick(_ worker: Worker, now: UInt64) {
        guard active else { return }
        if datagram && inflight > 0 && now &- lastProgress > EchoFlow.lossTimeout {
            resetSeq = seq
            inflight = 0
            lastProgress = now
        }
        fill()
    }

    /// Sends until `window` messages are outstanding; after the measured
    /// time, sends nothing and reports when the last reply is in.
    private func fill() {
        guard active else { return }
        while inflight < window {
            switch worker.control.phase {
            case .warmup:
                break
            case .measuring:
                if measureFrom == .max { measureFrom = seq }
            case .draining:
                if inflight == 0 { markDrained() }
                return
            }
            sendOne()
        }
    }

    @inline(__always)
    private func sendOne() {
        let s = seq
        seq &+= 1
        Message.fill(sendBuffer, size: size, seq: s)
        sentAt[Int(s & mask)] = Clock.nanoseconds()
        if datagram {
            evpl_sendtoep(loop, bind, remote, sendBuffer, CUnsignedInt(size))
        } else {
            evpl_send(loop, bind, sendBuffer, CUnsignedInt(size))
        }
        inflight += 1
        if s >= measureFrom { worker.stats.sent.add() }
    }

    @inline(__always)
    private func complete(_ s: UInt64) {
        let now = Clock.nanoseconds()
        lastProgress = now
        guard s < seq else { return worker.stats.errors.add() }
        guard s >= resetSeq else { return }  // a reply we had given up on
        inflight -= 1
        worker.stats.ops.add()
        markReady()
        if s >= measureFrom {
            worker.stats.received.add()
            worker.latency.record(nanoseconds: now &- sentAt[Int(s & mask)])
        }
    }

    private func handle(_ evpl: OpaquePointer?, _ notify: UnsafeMutablePointer<evpl_notify>) {
        switch CInt(notify.pointee.notify_type) {
        case EVPL_NOTIFY_CONNECTED:
            active = true
            lastProgress = Clock.nanoseconds()
            fill()
        case EVPL_NOTIFY_RECV_DATA:
            while true {
                let got = evpl_recv(evpl, bind, recvBuffer, CInt(size), CUnsignedInt(EVPL_RECV_FLAG_ALL_OR_NONE))
                guard got == CInt(size) else {
                    if got < 0 { worker.stats.errors.add() }
                    break
                }
                if let s = Message.parse(recvBuffer, length: size) {
                    complete(s)
                } else {
                    worker.stats.errors.add()
                }
                fill()
            }
        case EVPL_NOTIFY_RECV_MSG:
            let message = notify.pointee.recv_msg
            if let iovecs = message.iovec {
                if let s = Message.parse(iovecs, count: Int(message.niov), length: Int(message.length),
                                         scratch: recvBuffer) {
                    complete(s)
                } else {
                    worker.stats.errors.add()
                }
                for i in 0..<Int(message.niov) { evpl_iovec_release(iovecs + i) }
            }
            fill()
        case EVPL_NOTIFY_DISCONNECTED:
            bind = nil
            active = false
            if worker.control.phase != .draining { lost(notify) }
            markDrained()
        default:
            break
        }
    }

    static let notify: evpl_notify_callback_t = { evpl, _, notify, data in
        Unmanaged<EchoFlow>.fromOpaque(data!).takeUnretainedValue().handle(evpl, notify!)
    }
}
