import CEvpl

/// What the library knows about each protocol id.
enum Protocols {
    static let names: [(String, evpl_protocol_id)] = [
        ("DATAGRAM_SOCKET_UDP", EVPL_DATAGRAM_SOCKET_UDP),
        ("DATAGRAM_RDMACM_RC", EVPL_DATAGRAM_RDMACM_RC),
        ("DATAGRAM_RDMACM_UD", EVPL_DATAGRAM_RDMACM_UD),
        ("STREAM_SOCKET_TCP", EVPL_STREAM_SOCKET_TCP),
        ("STREAM_XLIO_TCP", EVPL_STREAM_XLIO_TCP),
        ("STREAM_IO_URING_TCP", EVPL_STREAM_IO_URING_TCP),
        ("STREAM_RDMACM_RC", EVPL_STREAM_RDMACM_RC),
        ("STREAM_SOCKET_TLS", EVPL_STREAM_SOCKET_TLS),
    ]

    static func isValid(_ id: evpl_protocol_id) -> Bool {
        id.rawValue < EVPL_NUM_PROTO.rawValue
    }

    static func name(_ id: evpl_protocol_id) -> String {
        names.first { $0.1 == id }?.0 ?? "protocol \(id.rawValue)"
    }

    static func isStream(_ id: evpl_protocol_id) -> Bool {
        switch id {
        case EVPL_STREAM_SOCKET_TCP, EVPL_STREAM_XLIO_TCP, EVPL_STREAM_IO_URING_TCP,
             EVPL_STREAM_RDMACM_RC, EVPL_STREAM_SOCKET_TLS:
            return true
        default:
            return false
        }
    }

    /// Made with evpl_connect/evpl_listen (streams and RDMA RC datagrams)
    /// rather than evpl_bind (UDP, RDMA UD).
    static func isConnected(_ id: evpl_protocol_id) -> Bool {
        isStream(id) || id == EVPL_DATAGRAM_RDMACM_RC
    }

    /// nil when usable now; otherwise why not (for the one log line).
    static func unavailableReason(_ id: evpl_protocol_id) -> String? {
        let g = Library.config
        switch id {
        case EVPL_STREAM_SOCKET_TCP, EVPL_DATAGRAM_SOCKET_UDP:
            return nil
        case EVPL_STREAM_IO_URING_TCP:
            return IoUringSupport.unavailableReason
        case EVPL_DATAGRAM_RDMACM_RC, EVPL_DATAGRAM_RDMACM_UD, EVPL_STREAM_RDMACM_RC:
            return RDMASupport.unavailableReason
        case EVPL_STREAM_XLIO_TCP:
            return g.xlioEnabled == 0 ? "disabled by xlio_enabled" : SocketAPI.xlioUnavailableReason
        case EVPL_STREAM_SOCKET_TLS:
            return "the TLS transport is not built"
        default:
            return "unknown protocol id \(id.rawValue)"
        }
    }
}
