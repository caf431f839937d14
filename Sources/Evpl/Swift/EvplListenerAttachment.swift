import CEvpl

extension EvplListener {
    /// One loop's attachment to a listener: while attached, the loop takes
    /// its share of the listener's new connections.
    ///
    /// The loop keeps the attachment until ``detach()`` or until the loop is
    /// closed; the attachment keeps its listener alive.
    public final class Attachment {
        private let listener: EvplListener
        private let framing: EvplFraming?
        private let onConnection: (EvplConnection) -> Void
        private weak var loop: EvplLoop?
        private var binding: ListenerBindingHandle?

        init(listener: EvplListener, loop: EvplLoop, framing: EvplFraming?,
             onConnection: @escaping (EvplConnection) -> Void) {
            self.listener = listener
            self.loop = loop
            self.framing = framing
            self.onConnection = onConnection
        }

        /// Whether the loop still takes connections from the listener.
        public var isAttached: Bool { binding != nil }

        /// Attaches the C listener to the loop.
        func start(on handle: LoopHandle) {
            binding = evpl_listener_attach(handle, listener.handle, Attachment.attachCallback,
                                           Unmanaged.passUnretained(self).toOpaque())
        }

        /// Stops handing new connections to this loop; its existing
        /// connections stay. Call it on the loop's thread.
        public func detach() {
            guard let loop, let handle = loop.handle else { return }
            end(on: handle)
            loop.attachments[ObjectIdentifier(self)] = nil
        }

        /// Detaches the C listener (the loop drops its reference separately).
        func end(on handle: LoopHandle) {
            guard let binding else { return }
            self.binding = nil
            evpl_listener_detach(handle, binding)
        }

        /// A new connection for this loop: the engine gets the callbacks and a
        /// reference, then the application sets the connection up.
        private static let attachCallback: evpl_attach_callback_t = { loop, bind, notify, segment, context, attachment in
            let owner = Unmanaged<Attachment>.fromOpaque(attachment!).takeUnretainedValue()
            let connection = EvplConnection(bind: bind, loop: loop!, framing: owner.framing)
            notify!.pointee = EvplConnection.notifyCallback
            segment!.pointee = owner.framing == nil ? nil : EvplConnection.segmentCallback
            context!.pointee = connection.retainedContext()
            owner.onConnection(connection)
        }
    }
}

extension EvplLoop {
    /// Attaches this loop to `listener`: the loop takes its share of the new
    /// connections and `onConnection` runs on this loop for each, before the
    /// connection's ``EvplConnection/onConnected``. Set the connection's
    /// handlers there.
    ///
    /// - Parameters:
    ///   - listener: The listener.
    ///   - framing: Cuts each connection's stream into messages for
    ///     ``EvplConnection/onMessage``; `nil` delivers raw bytes to
    ///     ``EvplConnection/onData``.
    ///   - onConnection: Runs on this loop for each new connection.
    /// - Returns: The attachment, for ``EvplListener/Attachment/detach()``.
    /// - Throws: ``EvplError/loopClosed``.
    @discardableResult
    public func attach(_ listener: EvplListener, framing: EvplFraming? = nil,
                       onConnection: @escaping (EvplConnection) -> Void) throws(EvplError) -> EvplListener.Attachment {
        guard let handle else { throw .loopClosed }
        let attachment = EvplListener.Attachment(listener: listener, loop: self, framing: framing,
                                                 onConnection: onConnection)
        attachment.start(on: handle)
        attachments[ObjectIdentifier(attachment)] = attachment
        return attachment
    }
}
