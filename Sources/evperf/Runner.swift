import CEvpl
import Evpl
import Glibc
import Synchronization

/// The three modes. loopback: server and client workers in this process over
/// 127.0.0.1; server: server workers until interrupted; client: client
/// workers against a server elsewhere.
///
/// A measured run: start the workers, wait until every flow has made
/// progress, warm up, measure (`Phase.measuring`), then drain (every flow
/// waits for its outstanding replies), stop the loops and add up.
final class Runner {
    static let readyTimeout = 5.0
    static let drainTimeout = 2.0

    private let plan: Plan
    private let control = Control()
    private let progress = Progress()
    private var servers: [Worker] = []
    private var clients: [Worker] = []
    private var listener: OpaquePointer?
    private var listenEndpoint: OpaquePointer?
    private let startedAt = Clock.nanoseconds()

    init(_ plan: Plan) {
        self.plan = plan
        signal(SIGPIPE, SIG_IGN)
    }

    // MARK: Modes

    /// loopback and client modes.
    func measure() throws -> Report {
        defer { shutdown() }
        let ports = try serverPorts()
        if plan.mode == .loopback { try startServers(ports) }
        try startClients(ports)
        try waitReady()

        _ = run("warmup", seconds: plan.warmup)
        // stream: the bytes either side counted between these two samples.
        let t0 = Clock.nanoseconds()
        let (clientBytes0, serverBytes0) = (total { $0.bytes.value }, servers.map(\.stats).total { $0.bytes.value })
        control.enter(.measuring)
        let complete = run("measuring", seconds: plan.duration ?? 3)
        let (clientBytes1, serverBytes1) = (total { $0.bytes.value }, servers.map(\.stats).total { $0.bytes.value })
        control.enter(.draining)
        let t1 = Clock.nanoseconds()
        let drained = waitDrained()
        progress.finish()
        shutdown()

        let stats = clients.map(\.stats)
        var latency = Latency()
        for worker in clients { latency.add(worker.latency) }
        let sent = stats.total { $0.sent.value }
        let received = stats.total { $0.received.value }
        let errors = stats.total { $0.errors.value }
        var report = Report(
            mode: plan.mode, test: plan.test, protocolName: plan.protocolName, threads: plan.threads,
            connections: plan.connections, size: plan.size, window: plan.window,
            seconds: Double(t1 - t0) / 1e9, ops: received, bytes: received * plan.size,
            latency: latency.count > 0 ? latency : nil, sent: sent, received: received,
            lost: plan.isStream ? 0 : sent - received, errors: errors, accepted: nil, status: "ok")
        if plan.test == .stream {
            // Bytes: at the receiver when it is here, else what the kernel accepted.
            report.sent = clientBytes1 - clientBytes0
            report.bytes = plan.mode == .loopback ? serverBytes1 - serverBytes0 : clientBytes1 - clientBytes0
            report.received = plan.mode == .loopback ? report.bytes : nil
            report.ops = report.bytes / plan.size
            report.latency = nil
        }
        if !complete {
            report.status = "failed"
        } else if errors > 0 {
            report.status = "errors"
        } else if !drained || (plan.isStream && plan.test != .stream && sent != received) {
            report.status = "stalled"
        } else if report.ops == 0 {
            report.status = "no_progress"
        }
        return report
    }

    /// server mode: serve until SIGINT or SIGTERM (or for --duration).
    func serve() throws -> Report {
        defer { shutdown() }
        let ports = try serverPorts()
        try startServers(ports)
        let place = ports.count == 1 ? "\(plan.address):\(ports[0])" : "\(plan.address):\(ports[0])-\(ports.last!)"
        fputs("evperf server: listening on \(place) (\(plan.test) over \(plan.protocolName)); stop with Ctrl-C\n", stderr)
        Interrupt.install()
        let t0 = Clock.nanoseconds()
        _ = run("serving", seconds: plan.duration ?? .infinity)
        let t1 = Clock.nanoseconds()
        progress.finish()
        shutdown()

        let stats = servers.map(\.stats)
        let bytes = plan.test == .stream ? stats.total { $0.bytes.value } : stats.total { $0.ops.value } * plan.size
        return Report(
            mode: plan.mode, test: plan.test, protocolName: plan.protocolName, threads: plan.threads,
            connections: plan.connections, size: plan.size, window: plan.window,
            seconds: Double(t1 - t0) / 1e9, ops: bytes / plan.size, bytes: bytes, latency: nil,
            sent: nil, received: plan.test == .stream ? bytes : bytes / plan.size, lost: 0, errors: 0,
            accepted: plan.isStream ? stats.total { $0.accepted.value } : nil, status: "ok")
    }

    // MARK: Workers

    /// The server's ports: one for a stream protocol, one per flow for datagrams.
    private func serverPorts() throws -> [Int] {
        let count = plan.isStream ? 1 : plan.connections
        if let base = plan.port { return (0..<count).map { base + $0 } }
        return try Ports.free(count, datagram: !plan.isStream)
    }

    private func startServers(_ ports: [Int]) throws {
        if plan.isStream { listener = evpl_listener_create() }
        for t in 0..<plan.threads {
            let mine = plan.isStream ? [] : ports.indices.filter { $0 % plan.threads == t }.map { ports[$0] }
            if !plan.isStream && mine.isEmpty { break }
            let worker = Worker(control: control)
            worker.add(Server(plan: plan, listener: listener, ports: mine))
            servers.append(worker)
            try worker.start()
        }
        if plan.isStream {
            listenEndpoint = evpl_endpoint_create(plan.address, CInt(ports[0]))
            guard listenEndpoint != nil, evpl_listen(listener, plan.proto, listenEndpoint) == 0 else {
                throw EvperfError.failed("cannot listen on \(plan.address):\(ports[0]) with \(plan.protocolName)")
            }
        }
    }

    /// Flow i runs on client worker i % clientThreads.
    private func startClients(_ ports: [Int]) throws {
        let workers = (0..<plan.clientThreads).map { _ in Worker(control: control) }
        for i in 0..<plan.connections {
            let worker = workers[i % workers.count]
            let port = ports[plan.isStream ? 0 : i]
            switch plan.test {
            case .pingpong, .rate: worker.add(EchoFlow(worker: worker, plan: plan, port: port))
            case .stream: worker.add(StreamFlow(worker: worker, plan: plan, port: port))
            case .conns: worker.add(ConnsFlow(worker: worker, plan: plan, port: port))
            }
        }
        for worker in workers {
            clients.append(worker)
            try worker.start()
        }
    }

    /// Stops the clients, then the servers (their binds close, DISCONNECTED
    /// runs on each loop), then the listener. Safe to call again.
    private func shutdown() {
        control.enter(.draining)
        for worker in clients { worker.stop() }
        for worker in servers { worker.stop() }
        if let listener { evpl_listener_destroy(listener) }
        listener = nil
        if let listenEndpoint { evpl_endpoint_close(listenEndpoint) }
        listenEndpoint = nil
    }

    // MARK: Waiting

    private var seconds: Double { Double(Clock.nanoseconds() - startedAt) / 1e9 }

    private func total(_ counter: (Stats) -> Int) -> Int { clients.map(\.stats).total(counter) }

    /// Every flow has completed one operation; a clear error if none can.
    private func waitReady() throws {
        let deadline = seconds + Runner.readyTimeout
        while total({ $0.ready.value }) < plan.connections {
            if total({ $0.drained.value }) == plan.connections || seconds > deadline {
                let code = clients.map(\.stats).map { $0.lastErrno.value }.first { $0 != 0 } ?? 0
                let why = code != 0 ? ": " + String(cString: strerror(CInt(code))) : ""
                let target = plan.mode == .client ? " with \(plan.address):\(plan.port ?? Plan.defaultPort)" : ""
                throw EvperfError.failed("no traffic\(target) (\(total { $0.ready.value }) of \(plan.connections) "
                                         + "connections made progress)\(why)")
            }
            usleep(1000)
        }
    }

    /// Every flow's outstanding messages are back (or given up); false on timeout.
    private func waitDrained() -> Bool {
        let deadline = seconds + Runner.drainTimeout
        while total({ $0.drained.value }) < plan.connections {
            if seconds > deadline { return false }
            usleep(1000)
        }
        return true
    }

    /// Runs for `seconds` showing progress; false if every flow failed first
    /// (or, serving, when interrupted).
    private func run(_ label: String, seconds duration: Double) -> Bool {
        let end = seconds + duration
        var totals = progressTotals()
        progress.reset(time: seconds, ops: totals.ops, bytes: totals.bytes)
        while seconds < end {
            if plan.mode == .server {
                if Interrupt.requested { return false }
            } else if total({ $0.drained.value }) == plan.connections {
                return false
            }
            usleep(UInt32(min(50_000, Swift.max(1, (end - seconds) * 1e6))))
            totals = progressTotals()
            progress.update(label, time: seconds, ops: totals.ops, bytes: totals.bytes)
        }
        return true
    }

    /// Operations and bytes so far, for the live display.
    private func progressTotals() -> (ops: Int, bytes: Int) {
        if plan.test == .stream {
            let side = plan.mode == .client ? clients : servers
            let bytes = side.map(\.stats).total { $0.bytes.value }
            return (bytes / plan.size, bytes)
        }
        let ops = (plan.mode == .server ? servers : clients).map(\.stats).total { $0.ops.value }
        return (ops, ops * plan.size)
    }
}

/// SIGINT and SIGTERM end a server run.
enum Interrupt {
    private static let flag = Atomic<Bool>(false)

    static var requested: Bool { flag.load(ordering: .relaxed) }

    static func install() {
        signal(SIGINT) { _ in Interrupt.flag.store(true, ordering: .relaxed) }
        signal(SIGTERM) { _ in Interrupt.flag.store(true, ordering: .relaxed) }
    }
}
