import Foundation

/// The result of a run, as a table for people or one JSON object.
struct Report {
    var mode: Mode
    var test: TestKind
    var protocolName: String
    var threads: Int
    var connections: Int
    var size: Int
    var window: Int
    /// Measured seconds (server: seconds served).
    var seconds: Double
    var ops: Int
    var bytes: Int
    var latency: Latency?
    /// Measured messages (stream: bytes) sent, and replies (bytes) received;
    /// nil where this side cannot know.
    var sent: Int?
    var received: Int?
    var lost: Int
    var errors: Int
    /// Server: connections accepted.
    var accepted: Int?
    var status: String

    var opsPerSecond: Double { seconds > 0 ? Double(ops) / seconds : 0 }
    var gigabytesPerSecond: Double { seconds > 0 ? Double(bytes) / seconds / 1e9 : 0 }
    var p50: Double? { latency?.microseconds(atPercentile: 50) }
    var p99: Double? { latency?.microseconds(atPercentile: 99) }
    var p999: Double? { latency?.microseconds(atPercentile: 99.9) }
    var max: Double? { latency?.maxMicroseconds }

    private var windowName: String {
        switch test {
        case .pingpong: return "queue depth"
        case .rate, .stream: return "window"
        case .conns: return "outstanding"
        }
    }

    private var sizeName: String {
        if size >= 1 << 20 && size % (1 << 20) == 0 { return "\(size >> 20) MiB" }
        if size >= 1 << 10 && size % (1 << 10) == 0 { return "\(size >> 10) KiB" }
        return "\(size) B"
    }

    func table() -> String {
        func number(_ v: Double?, _ format: String) -> String { v.map { String(format: format, $0) } ?? "-" }
        func column(_ text: String, _ width: Int) -> String {
            String(repeating: " ", count: Swift.max(0, width - text.count)) + text
        }
        let plural = { (n: Int, word: String) in "\(n) \(word)\(n == 1 ? "" : "s")" }
        var out = "evperf \(mode) \(test) over \(protocolName): \(plural(threads, "thread")), "
            + "\(plural(connections, "connection")), \(sizeName), \(windowName) \(window), "
            + String(format: "%.2f s", seconds) + "\n\n"
        let heads = ["ops/s", "GB/s", "p50 us", "p99 us", "p99.9 us", "max us"]
        let cells = [number(opsPerSecond, "%.0f"), number(gigabytesPerSecond, "%.4f"),
                     number(p50, "%.2f"), number(p99, "%.2f"), number(p999, "%.2f"), number(max, "%.1f")]
        out += heads.map { column($0, 12) }.joined() + "\n"
        out += cells.map { column($0, 12) }.joined() + "\n\n"
        var tail = "ops \(ops)"
        if let sent { tail += "  sent \(sent)" }
        if let received { tail += "  received \(received)" }
        if let accepted { tail += "  accepted \(accepted)" }
        tail += "  lost \(lost)  errors \(errors)  status \(status)"
        return out + tail
    }

    func json() -> String {
        func string(_ s: String) -> String {
            var out = "\""
            for scalar in s.unicodeScalars {
                switch scalar {
                case "\"": out += "\\\""
                case "\\": out += "\\\\"
                case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
                default: out.unicodeScalars.append(scalar)
                }
            }
            return out + "\""
        }
        func real(_ v: Double?, _ digits: Int) -> String {
            guard let v, v.isFinite else { return "null" }
            return String(format: "%.\(digits)f", v)
        }
        func int(_ v: Int?) -> String { v.map(String.init) ?? "null" }
        let fields: [(String, String)] = [
            ("mode", string(mode.rawValue)),
            ("test", string(test.rawValue)),
            ("protocol", string(protocolName)),
            ("threads", int(threads)),
            ("connections", int(connections)),
            ("size", int(size)),
            ("window", int(window)),
            ("duration", real(seconds, 6)),
            ("ops", int(ops)),
            ("ops_per_sec", real(opsPerSecond, 1)),
            ("gbytes_per_sec", real(gigabytesPerSecond, 6)),
            ("p50_us", real(p50, 3)),
            ("p99_us", real(p99, 3)),
            ("p999_us", real(p999, 3)),
            ("max_us", real(max, 3)),
            ("sent", int(sent)),
            ("received", int(received)),
            ("lost", int(lost)),
            ("errors", int(errors)),
            ("accepted", int(accepted)),
            ("status", string(status)),
        ]
        return "{" + fields.map { "\(string($0.0)): \($0.1)" }.joined(separator: ", ") + "}"
    }
}
