import Glibc

/// An error from the Swift API: a call the engine refused, or the reason a
/// connection or socket ended.
///
/// Calls that the C API answers with `NULL` or `-1` throw one of these instead;
/// a connection that ends with an error reports it to
/// ``EvplConnection/onDisconnected``. Errors that carry an `errno` map the
/// common ones to their own cases (``connectionRefused``, ``connectionReset``,
/// ...) and the rest to ``system(errno:)``.
public enum EvplError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The protocol cannot be used on this machine now; `reason` says why
    /// (for example "no RDMA device").
    case protocolUnavailable(String, reason: String)
    /// A datagram protocol was given where a stream protocol is needed.
    case notAStreamProtocol(String)
    /// A stream protocol was given where a datagram protocol is needed.
    case notADatagramProtocol(String)
    /// The host is not an address or a plausible host name, or the port is
    /// outside `0...65535`.
    case invalidEndpoint(host: String?, port: Int)
    /// The event loop could not be created (see the log for the reason).
    case loopCreationFailed
    /// The loop thread could not be started (see the log for the reason).
    case threadCreationFailed
    /// The loop has been closed.
    case loopClosed
    /// The connection could not be started, for example because the host
    /// name does not resolve (see the log for the reason).
    case connectFailed(endpoint: String)
    /// Listening failed, for example because the port is in use (see the log).
    case listenFailed(endpoint: String)
    /// The datagram socket could not be bound (see the log for the reason).
    case bindFailed(endpoint: String)
    /// The doorbell's file descriptor could not be created.
    case doorbellCreationFailed
    /// No buffer memory for `length` bytes.
    case allocationFailed(length: Int)
    /// The peer refused the connection (`ECONNREFUSED`).
    case connectionRefused
    /// The peer reset the connection (`ECONNRESET`).
    case connectionReset
    /// The connection timed out (`ETIMEDOUT`).
    case timedOut
    /// The host or network is unreachable (`EHOSTUNREACH`, `ENETUNREACH`).
    case unreachable
    /// The framing closure judged the received bytes invalid, or asked for a
    /// message larger than the largest allowed (`EPROTO`).
    case invalidFrame
    /// Any other system error.
    case system(errno: Int32)

    /// The error for a positive `errno` value, as a disconnection reports it.
    ///
    /// - Parameter errno: A positive `errno` value such as `ECONNREFUSED`.
    public init(errno: Int32) {
        switch errno {
        case ECONNREFUSED: self = .connectionRefused
        case ECONNRESET: self = .connectionReset
        case ETIMEDOUT: self = .timedOut
        case EHOSTUNREACH, ENETUNREACH: self = .unreachable
        case EPROTO: self = .invalidFrame
        default: self = .system(errno: errno)
        }
    }

    /// The `errno` value behind this error, or `nil` for errors that are not
    /// system errors.
    public var errno: Int32? {
        switch self {
        case .connectionRefused: return ECONNREFUSED
        case .connectionReset: return ECONNRESET
        case .timedOut: return ETIMEDOUT
        case .unreachable: return EHOSTUNREACH
        case .invalidFrame: return EPROTO
        case .system(let code): return code
        default: return nil
        }
    }

    /// A one-line description of the error.
    public var description: String {
        switch self {
        case .protocolUnavailable(let name, let reason): return "\(name) is unavailable: \(reason)"
        case .notAStreamProtocol(let name): return "\(name) is not a stream protocol"
        case .notADatagramProtocol(let name): return "\(name) is not a datagram protocol"
        case .invalidEndpoint(let host, let port): return "invalid endpoint \(host ?? "(wildcard)") port \(port)"
        case .loopCreationFailed: return "the event loop could not be created"
        case .threadCreationFailed: return "the loop thread could not be started"
        case .loopClosed: return "the event loop is closed"
        case .connectFailed(let endpoint): return "cannot connect to \(endpoint)"
        case .listenFailed(let endpoint): return "cannot listen on \(endpoint)"
        case .bindFailed(let endpoint): return "cannot bind to \(endpoint)"
        case .doorbellCreationFailed: return "the doorbell could not be created"
        case .allocationFailed(let length): return "no buffer memory for \(length) bytes"
        case .invalidFrame: return "invalid frame"
        default: return String(cString: strerror(errno ?? 0))
        }
    }
}
