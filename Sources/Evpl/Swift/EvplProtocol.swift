import CEvpl

/// A transport protocol: the Swift face of `enum evpl_protocol_id`.
///
/// Stream protocols carry ``EvplConnection``s; datagram protocols carry
/// ``EvplDatagramSocket``s. Whether a protocol can be used on this machine is
/// ``isAvailable``; using one that is not throws
/// ``EvplError/protocolUnavailable(_:reason:)``.
public enum EvplProtocol: CaseIterable, Sendable, CustomStringConvertible {
    /// UDP over kernel sockets (`DATAGRAM_SOCKET_UDP`).
    case datagramSocketUDP
    /// RDMA reliable-connected datagrams (`DATAGRAM_RDMACM_RC`).
    case datagramRdmacmRC
    /// RDMA unreliable datagrams (`DATAGRAM_RDMACM_UD`).
    case datagramRdmacmUD
    /// TCP over kernel sockets (`STREAM_SOCKET_TCP`).
    case streamSocketTCP
    /// TCP through libxlio (`STREAM_XLIO_TCP`).
    case streamXlioTCP
    /// TCP through io_uring (`STREAM_IO_URING_TCP`).
    case streamIoUringTCP
    /// An RDMA reliable-connected stream (`STREAM_RDMACM_RC`).
    case streamRdmacmRC
    /// TLS over TCP (`STREAM_SOCKET_TLS`).
    case streamSocketTLS

    /// TCP over kernel sockets: ``streamSocketTCP``.
    public static var tcp: EvplProtocol { .streamSocketTCP }

    /// UDP over kernel sockets: ``datagramSocketUDP``.
    public static var udp: EvplProtocol { .datagramSocketUDP }

    /// The protocol with the C name `name` (such as `"STREAM_SOCKET_TCP"`), or
    /// `nil` for an unknown name.
    ///
    /// - Parameter name: The exact C name of the protocol.
    public init?(name: String) {
        guard let match = EvplProtocol.allCases.first(where: { $0.name == name }) else { return nil }
        self = match
    }

    /// The C name of the protocol, such as `"STREAM_SOCKET_TCP"`.
    public var name: String { Protocols.name(id) }

    /// The C name of the protocol.
    public var description: String { name }

    /// Whether this is a stream protocol (connections) rather than a datagram
    /// protocol (datagram sockets).
    public var isStream: Bool { evpl_protocol_is_stream(id) != 0 }

    /// Whether the protocol can be used on this machine now.
    public var isAvailable: Bool { evpl_protocol_available(id) != 0 }

    /// Why the protocol cannot be used now, or `nil` when it can.
    public var unavailableReason: String? { Protocols.unavailableReason(id) }

    /// The C protocol id.
    var id: evpl_protocol_id {
        switch self {
        case .datagramSocketUDP: return EVPL_DATAGRAM_SOCKET_UDP
        case .datagramRdmacmRC: return EVPL_DATAGRAM_RDMACM_RC
        case .datagramRdmacmUD: return EVPL_DATAGRAM_RDMACM_UD
        case .streamSocketTCP: return EVPL_STREAM_SOCKET_TCP
        case .streamXlioTCP: return EVPL_STREAM_XLIO_TCP
        case .streamIoUringTCP: return EVPL_STREAM_IO_URING_TCP
        case .streamRdmacmRC: return EVPL_STREAM_RDMACM_RC
        case .streamSocketTLS: return EVPL_STREAM_SOCKET_TLS
        }
    }

    /// The case for a C protocol id (nil for an unknown id).
    init?(id: evpl_protocol_id) {
        guard let match = EvplProtocol.allCases.first(where: { $0.id == id }) else { return nil }
        self = match
    }

    /// Throws unless the protocol is usable now and of the wanted kind.
    func check(stream: Bool) throws(EvplError) {
        if let reason = unavailableReason { throw .protocolUnavailable(name, reason: reason) }
        if isStream != stream { throw stream ? .notAStreamProtocol(name) : .notADatagramProtocol(name) }
    }
}
