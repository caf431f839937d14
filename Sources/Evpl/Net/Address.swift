import Glibc

/// A socket address (`struct evpl_address`): a datagram's sender, a bind's
/// local or remote end.  Formats as `a.b.c.d:port` or `[v6]:port`.
final class Address {
    // Written and read on one loop's thread (recv_msg.addr, a bind's ends).
    @exclusivity(unchecked) var storage = sockaddr_storage()
    @exclusivity(unchecked) var length: socklen_t = 0

    init() {}

    init(_ s: UnsafePointer<sockaddr_storage>, _ len: socklen_t) {
        storage = s.pointee
        length = len
    }

    var family: CInt { CInt(storage.ss_family) }

    var port: Int {
        withUnsafePointer(to: storage) { Address.port(of: $0) }
    }

    static func port(of s: UnsafePointer<sockaddr_storage>) -> Int {
        let raw = UnsafeRawPointer(s)
        switch CInt(s.pointee.ss_family) {
        case AF_INET: return Int(UInt16(bigEndian: raw.assumingMemoryBound(to: sockaddr_in.self).pointee.sin_port))
        case AF_INET6: return Int(UInt16(bigEndian: raw.assumingMemoryBound(to: sockaddr_in6.self).pointee.sin6_port))
        default: return 0
        }
    }

    /// Sets the port (host order) of an IPv4 or IPv6 address.
    static func setPort(_ s: UnsafeMutablePointer<sockaddr_storage>, _ port: UInt16) {
        let raw = UnsafeMutableRawPointer(s)
        switch CInt(s.pointee.ss_family) {
        case AF_INET: raw.assumingMemoryBound(to: sockaddr_in.self).pointee.sin_port = port.bigEndian
        case AF_INET6: raw.assumingMemoryBound(to: sockaddr_in6.self).pointee.sin6_port = port.bigEndian
        default: return
        }
    }

    /// `a.b.c.d:port` or `[v6]:port`; "" for an unset address.
    static func format(_ s: UnsafePointer<sockaddr_storage>) -> String {
        var buf = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        let raw = UnsafeRawPointer(s)
        switch CInt(s.pointee.ss_family) {
        case AF_INET:
            var a = raw.assumingMemoryBound(to: sockaddr_in.self).pointee.sin_addr
            inet_ntop(AF_INET, &a, &buf, socklen_t(buf.count))
            return String(cString: buf) + ":\(port(of: s))"
        case AF_INET6:
            var a = raw.assumingMemoryBound(to: sockaddr_in6.self).pointee.sin6_addr
            inet_ntop(AF_INET6, &a, &buf, socklen_t(buf.count))
            return "[" + String(cString: buf) + "]:\(port(of: s))"
        default:
            return ""
        }
    }

    /// Writes `text` into a C buffer of `len` bytes, truncated and always NUL-terminated.
    static func copy(_ text: String, to str: UnsafeMutablePointer<CChar>, len: Int) {
        guard len > 0 else { return }
        var utf8 = Array(text.utf8)
        if utf8.count > len - 1 { utf8.removeLast(utf8.count - (len - 1)) }
        for (i, c) in utf8.enumerated() { str[i] = CChar(bitPattern: c) }
        str[utf8.count] = 0
    }
}
