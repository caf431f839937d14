import CEvpl

/// A server: listening sockets on any number of endpoints, and the loops
/// that take the connections.
///
/// Attach one or more loops with ``EvplLoop/attach(_:framing:onConnection:)``
/// (each on its own thread), then ``listen(on:using:)``. Each new connection
/// is handed to one attached loop, round-robin, and its `onConnection`
/// closure runs there before the connection's ``EvplConnection/onConnected``.
/// A listener may be shared between threads. It stops listening when the
/// last reference to it goes away (attachments hold one).
///
/// ```swift
/// let listener = EvplListener()
/// try loop.attach(listener) { connection in
///     connection.onData = { connection, data in connection.send(data) }  // echo
/// }
/// try listener.listen(on: EvplEndpoint(host: "127.0.0.1", port: 8000))
/// ```
public final class EvplListener: @unchecked Sendable {
    let handle: ListenerHandle

    /// Creates a listener that is not listening yet.
    public init() {
        handle = evpl_listener_create()!
    }

    deinit {
        evpl_listener_destroy(handle)
    }

    /// Listens on `endpoint`.
    ///
    /// - Parameters:
    ///   - endpoint: The local address and port.
    ///   - transport: A stream protocol (default TCP).
    /// - Throws: ``EvplError/protocolUnavailable(_:reason:)``,
    ///   ``EvplError/notAStreamProtocol(_:)``, or
    ///   ``EvplError/listenFailed(endpoint:)`` (for example when the port is
    ///   in use).
    public func listen(on endpoint: EvplEndpoint, using transport: EvplProtocol = .tcp) throws(EvplError) {
        try transport.check(stream: true)
        guard evpl_listen(handle, transport.id, endpoint.handle) == 0 else {
            throw .listenFailed(endpoint: endpoint.description)
        }
    }
}
