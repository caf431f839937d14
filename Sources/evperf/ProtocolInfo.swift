import ArgumentParser
import CEvpl
import Evpl
import Glibc

/// Protocol names, ids and availability, through the public API only.
enum ProtocolInfo {
    /// The names of evpl's protocol ids (enum evpl_protocol_id), for messages.
    static let names = [
        "STREAM_SOCKET_TCP", "DATAGRAM_SOCKET_UDP", "STREAM_IO_URING_TCP", "STREAM_XLIO_TCP",
        "STREAM_SOCKET_TLS", "STREAM_RDMACM_RC", "DATAGRAM_RDMACM_RC", "DATAGRAM_RDMACM_UD",
    ]

    /// The id of `name` and whether it is a stream protocol; a ValidationError
    /// if the library does not know it or it cannot be used here.
    static func resolve(_ name: String) throws -> (evpl_protocol_id, Bool) {
        var id = EVPL_STREAM_SOCKET_TCP
        guard evpl_protocol_lookup(&id, name) == 0 else {
            throw ValidationError("unknown protocol '\(name)'; known: \(names.joined(separator: ", "))")
        }
        guard evpl_protocol_available(id) != 0 else {
            throw ValidationError("protocol \(name) is not available: \(unavailableReason(id))")
        }
        return (id, evpl_protocol_is_stream(id) != 0)
    }

    /// Why `id` is unavailable. The API has no call for the reason, but the
    /// library logs it when asked to listen: capture that line.
    static func unavailableReason(_ id: evpl_protocol_id) -> String {
        capturedLine = nil
        let capture: evpl_log_fn = { _, _, _, _, format, args in
            guard let format, let args else { return }
            var text = [CChar](repeating: 0, count: 512)
            _ = vsnprintf(&text, text.count, format, args)
            if ProtocolInfo.capturedLine == nil { ProtocolInfo.capturedLine = String(cString: text) }
        }
        evpl_set_log_fn(unsafeBitCast(capture, to: UnsafeRawPointer.self), nil)
        let listener = evpl_listener_create()
        let endpoint = evpl_endpoint_create("127.0.0.1", 0)
        _ = evpl_listen(listener, id, endpoint)
        evpl_endpoint_close(endpoint)
        evpl_listener_destroy(listener)
        evpl_set_log_fn(nil, nil)
        let marker = "unavailable: "
        if let line = capturedLine, let range = line.range(of: marker) {
            return String(line[range.upperBound...])
        }
        return "not available on this machine"
    }

    /// Written by the log function above, on this thread, during evpl_listen.
    private static var capturedLine: String?
}
