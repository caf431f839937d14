import CEvpl

/// A datagram socket (UDP): the Swift face of a datagram `struct evpl_bind`.
///
/// Make one with ``EvplLoop/bind(to:using:)``. Each datagram that arrives is
/// handed to ``onMessage`` with its sender, which can be replied to. Handlers
/// run on the loop's thread. The loop keeps the socket alive until
/// ``onClosed`` has run.
///
/// ```swift
/// let socket = try loop.bind(to: EvplEndpoint(host: "127.0.0.1", port: 0))
/// socket.onMessage = { socket, datagram, sender in
///     socket.send(datagram, to: sender)   // echo
/// }
/// ```
public final class EvplDatagramSocket {
    /// The C bind; nil once closed.
    fileprivate(set) var bind: BindHandle?
    private let loopHandle: LoopHandle

    /// Receives each datagram and its sender.
    public var onMessage: ((EvplDatagramSocket, EvplBuffer, EvplAddress) -> Void)?

    /// Runs exactly once when the socket is closed: `nil` after ``close()``
    /// or the loop's close, or the error that ended it.
    public var onClosed: ((EvplDatagramSocket, EvplError?) -> Void)?

    fileprivate init(loop: LoopHandle) {
        loopHandle = loop
    }

    /// Whether the socket has been closed (its ``onClosed`` has run).
    public var isClosed: Bool { bind == nil }

    /// The local address, `a.b.c.d:port` or `[v6]:port` (`""` once closed).
    public var localAddress: String { BindAddress.local(bind) }

    /// The local port (the kernel's choice when bound to port 0), or `nil`
    /// once closed.
    public var localPort: Int? { BindAddress.port(of: localAddress) }

    // MARK: Sending

    /// Sends a copy of `bytes` as one datagram to `endpoint`.
    ///
    /// - Parameters:
    ///   - bytes: The datagram, for example an array or `"text".utf8`.
    ///   - endpoint: The destination.
    public func send<Bytes: Collection<UInt8>>(_ bytes: Bytes, to endpoint: EvplEndpoint) {
        guard let bind else { return }
        withContiguousBytes(of: bytes) { raw in
            evpl_sendtoep(loopHandle, bind, endpoint.handle, raw.baseAddress, CUnsignedInt(clamping: raw.count))
        }
    }

    /// Sends a copy of `bytes` as one datagram to `address` (such as a sender).
    ///
    /// - Parameters:
    ///   - bytes: The datagram, for example an array or `"text".utf8`.
    ///   - address: The destination.
    public func send<Bytes: Collection<UInt8>>(_ bytes: Bytes, to address: EvplAddress) {
        guard let bind else { return }
        withContiguousBytes(of: bytes) { raw in
            evpl_sendto(loopHandle, bind, address.handle, raw.baseAddress, CUnsignedInt(clamping: raw.count))
        }
    }

    /// Sends the bytes of `buffer` as one datagram to `endpoint`, without
    /// copying; `buffer` stays valid.
    ///
    /// - Parameters:
    ///   - buffer: The datagram.
    ///   - endpoint: The destination.
    public func send(_ buffer: EvplBuffer, to endpoint: EvplEndpoint) {
        guard let bind, !buffer.isEmpty else { return }
        evpl_sendtoepv(loopHandle, bind, endpoint.handle, buffer.iovecs, CInt(buffer.iovecCount),
                       CInt(clamping: buffer.count), 0)
    }

    /// Sends the bytes of `buffer` as one datagram to `address`, without
    /// copying; `buffer` stays valid.
    ///
    /// - Parameters:
    ///   - buffer: The datagram.
    ///   - address: The destination (such as a sender).
    public func send(_ buffer: EvplBuffer, to address: EvplAddress) {
        guard let bind, !buffer.isEmpty else { return }
        evpl_sendtov(loopHandle, bind, address.handle, buffer.iovecs, CInt(buffer.iovecCount),
                     CInt(clamping: buffer.count), 0)
    }

    /// Closes the socket; ``onClosed`` follows from the loop. Closing twice
    /// is harmless.
    public func close() {
        guard let bind else { return }
        evpl_close(loopHandle, bind)
    }

    // MARK: Notifications

    private func deliver(_ notify: UnsafeMutablePointer<evpl_notify>) {
        switch Int32(notify.pointee.notify_type) {
        case EVPL_NOTIFY_RECV_MSG:
            let message = notify.pointee.recv_msg
            let datagram = EvplBuffer(taking: message.iovec, count: Int(message.niov))
            let sender = EvplAddress(copying: Unmanaged<Address>.borrow(message.addr) ?? Address())
            onMessage?(self, datagram, sender)
        case EVPL_NOTIFY_DISCONNECTED:
            let status = notify.pointee.notify_status
            onClosed?(self, status == 0 ? nil : EvplError(errno: status))
            bind = nil
            onMessage = nil
            onClosed = nil
            Unmanaged.passUnretained(self).release()  // the loop's reference
        default:
            break
        }
    }

    fileprivate static let notifyCallback: evpl_notify_callback_t = { _, _, notify, context in
        let socket = Unmanaged<EvplDatagramSocket>.fromOpaque(context!).takeUnretainedValue()
        socket.deliver(notify!)
    }
}

extension EvplLoop {
    /// Opens a datagram socket bound to `endpoint`.
    ///
    /// - Parameters:
    ///   - endpoint: The local address and port; port 0 lets the kernel pick
    ///     (see ``EvplDatagramSocket/localPort``).
    ///   - transport: A datagram protocol (default UDP).
    /// - Returns: The socket; set its handlers before running the loop.
    /// - Throws: ``EvplError/protocolUnavailable(_:reason:)``,
    ///   ``EvplError/notADatagramProtocol(_:)``, ``EvplError/loopClosed``, or
    ///   ``EvplError/bindFailed(endpoint:)``.
    public func bind(to endpoint: EvplEndpoint,
                     using transport: EvplProtocol = .udp) throws(EvplError) -> EvplDatagramSocket {
        guard let handle else { throw .loopClosed }
        try transport.check(stream: false)
        let socket = EvplDatagramSocket(loop: handle)
        let context = Unmanaged.passRetained(socket).toOpaque()  // released at DISCONNECTED
        guard let bind = evpl_bind(handle, transport.id, endpoint.handle, EvplDatagramSocket.notifyCallback,
                                   context) else {
            Unmanaged<EvplDatagramSocket>.fromOpaque(context).release()
            throw .bindFailed(endpoint: endpoint.description)
        }
        socket.bind = bind
        return socket
    }
}
