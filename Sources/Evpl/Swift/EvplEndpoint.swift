import CEvpl

/// An address and port to connect to, listen on or send to: the Swift face
/// of `struct evpl_endpoint`.
///
/// The host is an IPv4 or IPv6 literal, a host name (resolved lazily and
/// cached), or `nil` for the wildcard address. Port 0 on a listening or
/// bound endpoint lets the kernel pick one. Endpoints are immutable and may
/// be shared between threads.
public final class EvplEndpoint: @unchecked Sendable, CustomStringConvertible {
    let handle: EndpointHandle

    /// The host the endpoint was created with (`"0.0.0.0"` for the wildcard).
    public let host: String

    /// The port.
    public let port: Int

    /// Creates an endpoint.
    ///
    /// - Parameters:
    ///   - host: An IPv4 or IPv6 literal, a host name, or `nil` for the
    ///     wildcard address.
    ///   - port: A port in `0...65535`.
    /// - Throws: ``EvplError/invalidEndpoint(host:port:)`` for a malformed
    ///   host or a port out of range.
    public init(host: String?, port: Int) throws(EvplError) {
        guard (0...65535).contains(port) else { throw .invalidEndpoint(host: host, port: port) }
        let made: EndpointHandle?
        if let host {
            made = host.withCString { evpl_endpoint_create($0, CInt(port)) }
        } else {
            made = evpl_endpoint_create(nil, CInt(port))
        }
        guard let made else { throw .invalidEndpoint(host: host, port: port) }
        handle = made
        self.host = String(cString: evpl_endpoint_address(made)!)
        self.port = port
    }

    /// The IPv4 loopback address `127.0.0.1` with `port`.
    ///
    /// - Parameter port: A port in `0...65535`.
    /// - Throws: ``EvplError/invalidEndpoint(host:port:)`` for a port out of range.
    public static func loopback(port: Int) throws(EvplError) -> EvplEndpoint {
        try EvplEndpoint(host: "127.0.0.1", port: port)
    }

    deinit {
        evpl_endpoint_close(handle)
    }

    /// `host:port`, or `[host]:port` for an IPv6 host.
    public var description: String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }
}
