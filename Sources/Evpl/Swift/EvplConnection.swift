import CEvpl

/// A stream connection (TCP): the Swift face of a stream `struct evpl_bind`.
///
/// A client connection comes from ``EvplLoop/connect(to:using:from:framing:)``;
/// a server connection is handed to the `onConnection` closure of
/// ``EvplLoop/attach(_:framing:onConnection:)``. Set the handlers right
/// away: events are delivered from the loop, never from inside the call that
/// made the connection. Every handler runs on the loop's thread.
///
/// - ``onConnected`` runs once the connection is up.
/// - ``onData`` receives the bytes that arrived (a connection without framing).
/// - ``onMessage`` receives one whole message at a time (a connection with an
///   ``EvplFraming``).
/// - ``onDisconnected`` runs exactly once at the end, with `nil` for an
///   orderly close or the ``EvplError`` that ended it (a refused connect
///   reports ``EvplError/connectionRefused`` and no ``onConnected``).
///
/// The loop keeps the connection alive until its disconnection handler has
/// run; after that sends are ignored and ``isClosed`` is true. The handlers
/// are dropped then, so closures that capture the connection do not leak it.
public final class EvplConnection {
    /// The C bind; nil once disconnected.
    fileprivate(set) var bind: BindHandle?
    let loopHandle: LoopHandle
    let framing: EvplFraming?

    /// Runs when the connection is established.
    public var onConnected: ((EvplConnection) -> Void)?

    /// Receives the bytes that arrived, when the connection has no framing.
    /// Without this handler the bytes stay buffered for ``receive(maximumCount:)``.
    public var onData: ((EvplConnection, EvplBuffer) -> Void)?

    /// Receives each whole message, when the connection has a framing.
    public var onMessage: ((EvplConnection, EvplBuffer) -> Void)?

    /// Runs exactly once when the connection ends: the error is `nil` for an
    /// orderly end (either side closed or finished) and says what went wrong
    /// otherwise.
    public var onDisconnected: ((EvplConnection, EvplError?) -> Void)?

    /// Whether the connection is established (after ``onConnected``, before
    /// ``onDisconnected``).
    public private(set) var isConnected = false

    init(bind: BindHandle?, loop: LoopHandle, framing: EvplFraming?) {
        self.bind = bind
        loopHandle = loop
        self.framing = framing
    }

    /// Whether the connection has ended (its disconnection handler has run).
    public var isClosed: Bool { bind == nil }

    /// The transport protocol.
    public var transport: EvplProtocol? {
        bind.flatMap { EvplProtocol(id: evpl_bind_get_protocol($0)) }
    }

    /// The local address, `a.b.c.d:port` or `[v6]:port` (`""` once closed).
    public var localAddress: String { BindAddress.local(bind) }

    /// The peer's address, `a.b.c.d:port` or `[v6]:port` (`""` once closed).
    public var remoteAddress: String { BindAddress.remote(bind) }

    // MARK: Sending

    /// Queues a copy of `bytes`; sends are written at the end of the loop
    /// iteration, in order. Ignored once the connection is closing.
    ///
    /// - Parameter bytes: The bytes, for example an array or `"text".utf8`.
    public func send<Bytes: Collection<UInt8>>(_ bytes: Bytes) {
        guard let bind, !bytes.isEmpty else { return }
        withContiguousBytes(of: bytes) { raw in
            evpl_send(loopHandle, bind, raw.baseAddress, CUnsignedInt(clamping: raw.count))
        }
    }

    /// Queues the bytes of `buffer` without copying them; the library takes
    /// its own references, so `buffer` stays valid.
    ///
    /// - Parameter buffer: The bytes to send.
    public func send(_ buffer: EvplBuffer) {
        guard let bind, !buffer.isEmpty else { return }
        evpl_sendv(loopHandle, bind, buffer.iovecs, CInt(buffer.iovecCount), CInt(clamping: buffer.count), 0)
    }

    // MARK: Receiving

    /// Takes up to `maximumCount` buffered bytes without copying them.
    ///
    /// - Parameter maximumCount: The most bytes to take.
    /// - Returns: The bytes, or `nil` when none are buffered.
    public func receive(maximumCount: Int = Int(Int32.max)) -> EvplBuffer? {
        guard let bind else { return nil }
        let limit = CInt(clamping: maximumCount)
        var capacity = 16
        while true {
            let iovecs = UnsafeMutablePointer<evpl_iovec>.allocate(capacity: capacity)
            var length: CInt = 0
            let n = evpl_recvv(loopHandle, bind, iovecs, CInt(capacity), limit, &length)
            if n > 0 { return EvplBuffer(adopting: iovecs, count: Int(n)) }
            iovecs.deallocate()
            // -1: the bytes span more iovecs than `capacity`.
            guard n < 0, capacity < 1 << 20 else { return nil }
            capacity *= 8
        }
    }

    /// Copies the first buffered bytes into `destination` without consuming them.
    ///
    /// - Parameter destination: Where to copy to.
    /// - Returns: The number of bytes copied (fewer when fewer are buffered).
    public func peek(into destination: UnsafeMutableRawBufferPointer) -> Int {
        guard let bind, let base = destination.baseAddress else { return 0 }
        return Int(max(evpl_peek(loopHandle, bind, base, CInt(clamping: destination.count)), 0))
    }

    /// A copy of up to `count` of the first buffered bytes, not consumed.
    ///
    /// - Parameter count: The most bytes to copy.
    /// - Returns: The bytes (fewer when fewer are buffered).
    public func peek(_ count: Int) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: max(count, 0)) { out, initialized in
            initialized = peek(into: UnsafeMutableRawBufferPointer(out))
        }
    }

    /// Discards `count` buffered bytes.
    ///
    /// - Parameter count: The number of bytes to discard.
    /// - Returns: `false` (discarding nothing) when fewer bytes are buffered.
    @discardableResult
    public func consume(_ count: Int) -> Bool {
        guard let bind, count >= 0 else { return false }
        return evpl_consume(loopHandle, bind, CInt(clamping: count)) == 0
    }

    // MARK: Ending

    /// Closes gracefully: no new sends; what is queued is still written, then
    /// the connection closes and ``onDisconnected`` runs.
    public func finish() {
        guard let bind else { return }
        evpl_finish(loopHandle, bind)
    }

    /// Closes now: queued data may be dropped; ``onDisconnected`` follows from
    /// the loop. Closing twice is harmless.
    public func close() {
        guard let bind else { return }
        evpl_close(loopHandle, bind)
    }

    // MARK: Notifications

    private func deliver(_ notify: UnsafeMutablePointer<evpl_notify>) {
        switch Int32(notify.pointee.notify_type) {
        case EVPL_NOTIFY_CONNECTED:
            isConnected = true
            onConnected?(self)
        case EVPL_NOTIFY_RECV_DATA:
            guard let onData else { return }
            while let data = receive() { onData(self, data) }
        case EVPL_NOTIFY_RECV_MSG:
            let message = EvplBuffer(taking: notify.pointee.recv_msg.iovec, count: Int(notify.pointee.recv_msg.niov))
            onMessage?(self, message)
        case EVPL_NOTIFY_DISCONNECTED:
            let status = notify.pointee.notify_status
            isConnected = false
            onDisconnected?(self, status == 0 ? nil : EvplError(errno: status))
            bind = nil
            onConnected = nil
            onData = nil
            onMessage = nil
            onDisconnected = nil
            Unmanaged.passUnretained(self).release()  // the loop's reference
        default:
            break
        }
    }

    /// Gives the C callbacks a reference to `self` (+1 until DISCONNECTED).
    func retainedContext() -> UnsafeMutableRawPointer {
        Unmanaged.passRetained(self).toOpaque()
    }

    static let notifyCallback: evpl_notify_callback_t = { _, _, notify, context in
        let connection = Unmanaged<EvplConnection>.fromOpaque(context!).takeUnretainedValue()
        connection.deliver(notify!)
    }

    static let segmentCallback: evpl_segment_callback_t = { _, _, context in
        let connection = Unmanaged<EvplConnection>.fromOpaque(context!).takeUnretainedValue()
        return connection.framing?.segmentLength(for: connection) ?? 0
    }
}

extension EvplLoop {
    /// Starts connecting to `remote`. Never blocks: ``EvplConnection/onConnected``
    /// or ``EvplConnection/onDisconnected`` (with the error, such as
    /// ``EvplError/connectionRefused``) follows from the loop.
    ///
    /// - Parameters:
    ///   - remote: Where to connect to.
    ///   - transport: A stream protocol (default TCP).
    ///   - local: The local address and port to bind to first, or `nil`.
    ///   - framing: Cuts the stream into messages for
    ///     ``EvplConnection/onMessage``; `nil` delivers raw bytes to
    ///     ``EvplConnection/onData``.
    /// - Returns: The connection; set its handlers before running the loop.
    /// - Throws: ``EvplError/protocolUnavailable(_:reason:)``,
    ///   ``EvplError/notAStreamProtocol(_:)``, ``EvplError/loopClosed``, or
    ///   ``EvplError/connectFailed(endpoint:)`` (for example a host name
    ///   that does not resolve).
    public func connect(to remote: EvplEndpoint, using transport: EvplProtocol = .tcp,
                        from local: EvplEndpoint? = nil,
                        framing: EvplFraming? = nil) throws(EvplError) -> EvplConnection {
        guard let handle else { throw .loopClosed }
        try transport.check(stream: true)
        // The bind is set below; no callback runs before the loop does.
        let connection = EvplConnection(bind: nil, loop: handle, framing: framing)
        let context = connection.retainedContext()
        guard let bind = evpl_connect(handle, transport.id, local?.handle, remote.handle,
                                      EvplConnection.notifyCallback,
                                      framing == nil ? nil : EvplConnection.segmentCallback, context) else {
            Unmanaged<EvplConnection>.fromOpaque(context).release()
            throw .connectFailed(endpoint: remote.description)
        }
        connection.bind = bind
        return connection
    }
}
