import CEvpl
import Evpl

/// The server side on one worker's loop.
///
/// - stream protocols: the worker is attached to the shared listener, which
///   hands it connections round-robin. pingpong and conns: whole messages are
///   read with evpl_recv(ALL_OR_NONE) and echoed with evpl_send. rate: a
///   segment callback delivers whole messages, echoed zero-copy (evpl_sendv
///   with the received references, TAKE_REF). stream: evpl_recvv, count,
///   evpl_iovec_release.
/// - datagram protocols: one evpl_bind per flow port this worker serves;
///   each datagram is echoed with evpl_sendto(recv_msg.addr).
///
/// Server connections hold no state of their own, so their private_data is
/// this object.
final class Server: LoopWork {
    static let maxIovecs = 64

    private let test: TestKind
    private let proto: evpl_protocol_id
    private let isStream: Bool
    private let framed: Bool
    private let size: Int
    private let address: String
    private let listener: OpaquePointer?
    private let ports: [Int]
    private var binding: OpaquePointer?
    private var endpoints: [OpaquePointer] = []
    private unowned(unsafe) var worker: Worker!
    private let buffer: UnsafeMutableRawPointer
    private let bufferSize: Int
    private let iovecs: UnsafeMutablePointer<evpl_iovec>

    /// `listener` for stream protocols; `ports` (the datagram ports this
    /// worker serves) for datagram protocols.
    init(plan: Plan, listener: OpaquePointer?, ports: [Int]) {
        test = plan.test
        proto = plan.proto
        isStream = plan.isStream
        framed = plan.framed
        size = plan.size
        address = plan.address
        self.listener = listener
        self.ports = ports
        bufferSize = max(plan.size, 65536)
        buffer = .allocate(byteCount: bufferSize, alignment: 16)
        iovecs = .allocate(capacity: Server.maxIovecs)
    }

    deinit {
        buffer.deallocate()
        iovecs.deallocate()
    }

    private var opaque: UnsafeMutableRawPointer { Unmanaged.passUnretained(self).toOpaque() }

    func start(on worker: Worker) -> String? {
        self.worker = worker
        if isStream {
            binding = evpl_listener_attach(worker.loop, listener, Server.attach, opaque)
            return binding == nil ? "cannot attach a loop to the listener" : nil
        }
        for port in ports {
            guard let endpoint = evpl_endpoint_create(address, CInt(port)) else {
                return "bad address \(address):\(port)"
            }
            endpoints.append(endpoint)
            if evpl_bind(worker.loop, proto, endpoint, Server.datagramEcho, opaque) == nil {
                return "cannot bind \(address):\(port) (in use?)"
            }
        }
        return nil
    }

    func stop(_ worker: Worker) {
        if let binding { evpl_listener_detach(worker.loop, binding) }
        binding = nil
        for endpoint in endpoints { evpl_endpoint_close(endpoint) }
        endpoints = []
    }

    // MARK: Callbacks

    static let attach: evpl_attach_callback_t = { _, _, notify, segment, connectionData, data in
        let server = Unmanaged<Server>.fromOpaque(data!).takeUnretainedValue()
        server.worker.stats.accepted.add()
        switch server.test {
        case .stream: notify?.pointee = Server.sink
        case .rate: notify?.pointee = Server.messageEcho
        case .pingpong, .conns: notify?.pointee = Server.byteEcho
        }
        segment?.pointee = server.framed ? Message.segment : nil
        connectionData?.pointee = data
    }

    /// pingpong, conns: echo whole messages (copying).
    static let byteEcho: evpl_notify_callback_t = { evpl, bind, notify, data in
        guard CInt(notify!.pointee.notify_type) == EVPL_NOTIFY_RECV_DATA else { return }
        let server = Unmanaged<Server>.fromOpaque(data!).takeUnretainedValue()
        let size = CInt(server.size)
        while evpl_recv(evpl, bind, server.buffer, size, CUnsignedInt(EVPL_RECV_FLAG_ALL_OR_NONE)) == size {
            evpl_send(evpl, bind, server.buffer, CUnsignedInt(size))
            server.worker.stats.ops.add()
        }
    }

    /// rate over a stream: echo each whole message with its own references.
    static let messageEcho: evpl_notify_callback_t = { evpl, bind, notify, data in
        guard CInt(notify!.pointee.notify_type) == EVPL_NOTIFY_RECV_MSG else { return }
        let server = Unmanaged<Server>.fromOpaque(data!).takeUnretainedValue()
        let message = notify!.pointee.recv_msg
        evpl_sendv(evpl, bind, message.iovec, CInt(message.niov), CInt(message.length),
                   CUnsignedInt(EVPL_SEND_FLAG_TAKE_REF))
        server.worker.stats.ops.add()
    }

    /// stream: take everything buffered without copying, count it, release it.
    static let sink: evpl_notify_callback_t = { evpl, bind, notify, data in
        guard CInt(notify!.pointee.notify_type) == EVPL_NOTIFY_RECV_DATA else { return }
        let server = Unmanaged<Server>.fromOpaque(data!).takeUnretainedValue()
        let iovecs = server.iovecs
        let most = CInt(Server.maxIovecs)
        while true {
            var length: CInt = 0
            var n = evpl_recvv(evpl, bind, iovecs, most, CInt.max / 2, &length)
            if n < 0 {
                // More buffers than iovecs: take what the first `most` cover.
                let k = evpl_peekv(evpl, bind, iovecs, most, CInt.max / 2)
                var cover: CInt = 0
                for i in 0..<Int(max(k, 0)) { cover += CInt(iovecs[i].length) }
                n = evpl_recvv(evpl, bind, iovecs, most, cover, &length)
            }
            guard n > 0 else { break }
            for i in 0..<Int(n) { evpl_iovec_release(iovecs + i) }
            server.worker.stats.bytes.add(Int(length))
        }
    }

    /// Datagrams: reply to the sender with a copy (gathered if the datagram
    /// came in several iovecs).
    static let datagramEcho: evpl_notify_callback_t = { evpl, bind, notify, data in
        guard CInt(notify!.pointee.notify_type) == EVPL_NOTIFY_RECV_MSG else { return }
        let server = Unmanaged<Server>.fromOpaque(data!).takeUnretainedValue()
        let message = notify!.pointee.recv_msg
        guard let iovecs = message.iovec else { return }
        let count = Int(message.niov)
        var reply = UnsafeRawPointer(iovecs[0].data)
        if count != 1 {
            var offset = 0
            for i in 0..<count {
                let n = min(Int(iovecs[i].length), server.bufferSize - offset)
                if n > 0, let d = iovecs[i].data { (server.buffer + offset).copyMemory(from: d, byteCount: n) }
                offset += n
            }
            reply = UnsafeRawPointer(server.buffer)
        }
        evpl_sendto(evpl, bind, message.addr, reply, min(message.length, CUnsignedInt(server.bufferSize)))
        for i in 0..<count { evpl_iovec_release(iovecs + i) }
        server.worker.stats.ops.add()
    }
}
