import ArgumentParser

/// What evperf measures.
enum TestKind: String, CaseIterable, ExpressibleByArgument {
    case pingpong, stream, rate, conns
}

/// Where the server and the client run.
enum Mode: String, CaseIterable, ExpressibleByArgument {
    case loopback, server, client
}

/// A byte count with an optional k/m/g suffix (powers of 1024): 64, 4k, 1m.
struct ByteSize: ExpressibleByArgument {
    let bytes: Int

    init?(argument: String) {
        var digits = argument.lowercased()
        var shift = 0
        switch digits.last {
        case "k": shift = 10
        case "m": shift = 20
        case "g": shift = 30
        default: break
        }
        if shift > 0 { digits.removeLast() }
        guard let value = Int(digits), value >= 0, value <= (Int(Int32.max) >> shift) else { return nil }
        bytes = value << shift
    }
}

/// The command line. `validate` checks everything (also the protocol, with
/// the library) so that every mistake ends in one line and exit code 2.
struct Evperf: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evperf",
        abstract: "Measure evpl's throughput and latency: round trips, bulk streams, message rates, connections.",
        discussion: """
            Tests:
              pingpong  round trips, --queue-depth messages outstanding per
                        connection: evpl_send + evpl_recv on stream protocols,
                        one datagram per message on datagram protocols.
              stream    one-way bulk: evpl_iovec_alloc + zero-copy evpl_sendv,
                        --window messages in flight, paced by EVPL_NOTIFY_SENT;
                        the receiver takes the bytes with evpl_recvv.
              rate      small messages, --window outstanding: length-prefixed
                        messages delivered whole and echoed zero-copy on stream
                        protocols, datagrams on datagram protocols.
              conns     connect, one echo, close, again.

            Modes:
              loopback  server and client threads in this process, 127.0.0.1.
              server    serve --address:--port until interrupted (--duration).
              client    measure against an evperf server started with the same
                        test, protocol, size and connection count.

            Latency is the round-trip time (conns: connect to echo). GB/s
            counts one direction (stream: at the receiver; in client mode at
            the sender). sent and received count the messages (stream: bytes)
            of the measured time. While running, a live line on stderr (plain
            lines when stderr is not a terminal); then a table on stdout, or
            one JSON object with --json.

            Exit codes: 0 ok; 1 the run failed or had errors; 2 a bad command
            line or an unavailable protocol.
            """)

    @Argument(help: "The test: pingpong, stream, rate or conns.")
    var test: TestKind = .pingpong

    @Option(name: [.short, .long], help: "loopback, server or client.")
    var mode: Mode = .loopback

    @Option(name: [.customShort("r"), .customLong("protocol")],
            help: "A protocol name evpl_protocol_lookup knows: \(ProtocolInfo.names.joined(separator: ", ")).")
    var protocolName: String = "STREAM_SOCKET_TCP"

    @Option(name: [.customShort("P"), .long], help: "Event loop threads (each side, in loopback mode).")
    var threads: Int = 1

    @Option(name: [.customShort("n"), .long], help: "Connections (datagram protocols: flows, one server port each).")
    var connections: Int = 1

    @Option(name: [.short, .long], help: "Message size in bytes, k/m suffix allowed (default 64; stream 1m).")
    var size: ByteSize?

    @Option(name: [.short, .long], help: "Measured seconds (default 3; server: until interrupted).")
    var duration: Double?

    @Option(help: "Seconds of traffic before measuring.")
    var warmup: Double = 0.2

    @Option(help: "pingpong: messages outstanding per connection (default 1).")
    var queueDepth: Int?

    @Option(help: "rate and stream: messages outstanding per connection (default: rate 64, stream 4 MiB / size).")
    var window: Int?

    @Option(name: [.short, .long], help: "Server: the address to listen on (default 0.0.0.0); client: the server (default 127.0.0.1).")
    var address: String?

    @Option(name: [.short, .long], help: "The server's port; datagram flows use port, port+1, ... (default 18600; loopback: free ports).")
    var port: Int?

    @Flag(help: "Print one JSON object instead of the table.")
    var json = false

    mutating func validate() throws {
        _ = try Plan(self)
    }

    mutating func run() throws {
        let plan = try Plan(self)
        switch plan.mode {
        case .loopback, .client:
            let report = try Runner(plan).measure()
            print(plan.json ? report.json() : report.table())
            if report.status != "ok" { throw ExitCode(1) }
        case .server:
            let report = try Runner(plan).serve()
            print(plan.json ? report.json() : report.table())
        }
    }
}
