import ArgumentParser
import CEvpl

/// The command line checked and resolved: what one run does.
struct Plan {
    let test: TestKind
    let mode: Mode
    let protocolName: String
    let proto: evpl_protocol_id
    let isStream: Bool
    let threads: Int
    let connections: Int
    let size: Int
    /// Messages outstanding per connection: the queue depth (pingpong), the
    /// window (rate, stream), 1 (conns).
    let window: Int
    /// Measured seconds; nil for a server that runs until interrupted.
    let duration: Double?
    let warmup: Double
    let address: String
    /// nil in loopback mode without --port: free ports are picked.
    let port: Int?
    let json: Bool

    /// rate over a stream protocol: length-prefixed messages (segment callback).
    var framed: Bool { test == .rate && isStream }
    /// Client loops: no more than there are connections.
    var clientThreads: Int { min(threads, connections) }

    static let defaultPort = 18600

    init(_ c: Evperf) throws {
        test = c.test
        mode = c.mode
        json = c.json
        protocolName = c.protocolName
        (proto, isStream) = try ProtocolInfo.resolve(c.protocolName)
        if !isStream && (test == .stream || test == .conns) {
            throw ValidationError("\(test) needs a stream protocol; \(protocolName) is a datagram protocol")
        }

        guard (1...64).contains(c.threads) else { throw ValidationError("--threads must be in 1...64") }
        guard (1...10_000).contains(c.connections) else { throw ValidationError("--connections must be in 1...10000") }
        threads = c.threads
        connections = c.connections

        switch test {
        case .stream:
            size = c.size?.bytes ?? 1 << 20
            guard (8...(16 << 20)).contains(size) else { throw ValidationError("stream --size must be in 8...16m") }
        default:
            size = c.size?.bytes ?? 64
            let limit = isStream ? 1 << 20 : 65000
            guard (Message.headerSize...limit).contains(size) else {
                throw ValidationError("--size must be in \(Message.headerSize)...\(limit) for \(test) over \(protocolName)")
            }
        }

        if c.queueDepth != nil && test != .pingpong {
            throw ValidationError("--queue-depth applies to pingpong; use --window for rate and stream")
        }
        if c.window != nil && test != .rate && test != .stream {
            throw ValidationError("--window applies to rate and stream; use --queue-depth for pingpong")
        }
        switch test {
        case .pingpong: window = c.queueDepth ?? 1
        case .rate: window = c.window ?? 64
        case .stream: window = c.window ?? max(2, (4 << 20) / size)
        case .conns: window = 1
        }
        guard (1...65536).contains(window) else { throw ValidationError("--queue-depth and --window must be in 1...65536") }

        if let d = c.duration, !(d > 0 && d <= 3600) { throw ValidationError("--duration must be in (0, 3600] seconds") }
        guard c.warmup >= 0 && c.warmup <= 60 else { throw ValidationError("--warmup must be in [0, 60] seconds") }
        duration = c.duration ?? (mode == .server ? nil : 3)
        warmup = c.warmup

        if let p = c.port {
            let flows = isStream ? 1 : connections
            guard p >= 1 && p + flows - 1 <= 65535 else {
                throw ValidationError("--port must be in 1...65535 (datagram flows use port...port+connections-1)")
            }
        }
        port = c.port ?? (mode == .loopback ? nil : Plan.defaultPort)
        switch mode {
        case .loopback:
            if c.address != nil { throw ValidationError("--address applies to server and client modes") }
            address = "127.0.0.1"
        case .server: address = c.address ?? "0.0.0.0"
        case .client: address = c.address ?? "127.0.0.1"
        }
    }
}
