import CEvplLinux
import Glibc
import Synchronization

/// An address and port to connect to, listen on or send to
/// (`struct evpl_endpoint`).  Process-wide and thread-safe.  Literals are
/// parsed at creation; host names are resolved lazily and the result is
/// cached for `resolve_timeout_ms` (BEHAVIOR.md §Endpoints and addresses).
final class Endpoint {
    let host: String?
    let port: Int
    /// `evpl_endpoint_address`'s answer; owned here, freed with the endpoint.
    let cAddress: UnsafeMutablePointer<CChar>
    /// A literal address never changes: read without the lock (every
    /// evpl_sendtoep resolves its endpoint).
    private let literal: sockaddr_storage?
    private let literalLength: socklen_t

    private struct Cache {
        var storage = sockaddr_storage()
        var length: socklen_t = 0
        var resolvedAt: UInt64 = 0
    }
    private let cache = Mutex(Cache())

    /// nil for a malformed address or a port outside 0...65535.
    init?(address: String?, port: Int) {
        guard (0...65535).contains(port) else {
            Log.error("endpoint", "port \(port) out of range 0...65535")
            return nil
        }
        var host = address
        if host == nil || host == "" || host == "0.0.0.0" { host = nil }
        self.port = port
        var c = Cache()
        var isLiteral = false
        if let h = host {
            if Endpoint.parseLiteral(h, port: port, into: &c.storage, &c.length) {
                isLiteral = true
            } else if !Endpoint.isPlausibleHostName(h) {
                Log.error("endpoint", "malformed address \"\(h)\"")
                return nil
            }
        } else {
            _ = Endpoint.parseLiteral("0.0.0.0", port: port, into: &c.storage, &c.length)
            isLiteral = true
        }
        self.host = host
        literal = isLiteral ? c.storage : nil
        literalLength = isLiteral ? c.length : 0
        cAddress = strdup(host ?? "0.0.0.0")
    }

    deinit { free(cAddress) }

    /// The socket address, resolving (or re-resolving a stale cache entry) if
    /// needed; nil with a log line when the name does not resolve.
    func resolve(into out: UnsafeMutablePointer<sockaddr_storage>) -> socklen_t? {
        if let literal {
            out.pointee = literal
            return literalLength
        }
        let timeout = UInt64(Library.config.resolveTimeoutMs) * 1_000_000
        let clock = Sys.monotonicNanoseconds()
        let hit: socklen_t? = cache.withLock { c in
            guard c.length > 0, clock &- c.resolvedAt < timeout else { return nil }
            out.pointee = c.storage
            return c.length
        }
        if let hit { return hit }
        guard let host else { return nil }
        var hints = addrinfo()
        hints.ai_socktype = CEVPL_SOCK_STREAM
        hints.ai_family = AF_UNSPEC
        var result: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &result)
        guard rc == 0, let first = result else {
            Log.error("endpoint", "cannot resolve \"\(host)\": \(String(cString: gai_strerror(rc)))")
            return nil
        }
        defer { freeaddrinfo(result) }
        let len = first.pointee.ai_addrlen
        var storage = sockaddr_storage()
        withUnsafeMutableBytes(of: &storage) { dst in
            dst.copyMemory(from: UnsafeRawBufferPointer(start: first.pointee.ai_addr, count: Int(len)))
        }
        cache.withLock { c in
            c.storage = storage
            c.length = len
            c.resolvedAt = clock
        }
        out.pointee = storage
        return len
    }

    static func parseLiteral(_ text: String, port: Int, into s: inout sockaddr_storage,
                             _ len: inout socklen_t) -> Bool {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            var sin = sockaddr_in()
            sin.sin_family = sa_family_t(AF_INET)
            sin.sin_port = UInt16(port).bigEndian
            sin.sin_addr = v4
            withUnsafeMutableBytes(of: &s) { $0.storeBytes(of: sin, as: sockaddr_in.self) }
            len = socklen_t(MemoryLayout<sockaddr_in>.size)
            return true
        }
        var v6 = in6_addr()
        var t = text
        if t.hasPrefix("[") && t.hasSuffix("]") { t = String(t.dropFirst().dropLast()) }
        if inet_pton(AF_INET6, t, &v6) == 1 {
            var sin6 = sockaddr_in6()
            sin6.sin6_family = sa_family_t(AF_INET6)
            sin6.sin6_port = UInt16(port).bigEndian
            sin6.sin6_addr = v6
            withUnsafeMutableBytes(of: &s) { $0.storeBytes(of: sin6, as: sockaddr_in6.self) }
            len = socklen_t(MemoryLayout<sockaddr_in6>.size)
            return true
        }
        return false
    }

    /// Host names: letters, digits, '-', '.', '_' (RFC 1123 and then some),
    /// not all digits and dots (that would be a malformed IPv4 literal).
    static func isPlausibleHostName(_ h: String) -> Bool {
        guard !h.isEmpty, h.utf8.count <= 253 else { return false }
        var allNumeric = true
        for c in h.utf8 {
            let isDigit = c >= 48 && c <= 57
            let isAlpha = (c >= 65 && c <= 90) || (c >= 97 && c <= 122)
            if !(isDigit || isAlpha || c == 45 || c == 46 || c == 95) { return false }
            if !(isDigit || c == 46) { allNumeric = false }
        }
        return !allNumeric
    }
}
