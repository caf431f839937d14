/// How a stream is cut into messages: a closure that looks at the received
/// bytes and says how long the next message is.
///
/// A connection made with a framing delivers whole messages to
/// ``EvplConnection/onMessage`` instead of raw bytes to
/// ``EvplConnection/onData``. After new data arrives the framing is asked
/// about the next message; it peeks at the buffered bytes
/// (``EvplConnection/peek(_:)``) and answers with a ``Decision``. A message
/// may be announced before all its bytes have arrived; it is delivered once
/// they have.
///
/// ```swift
/// // Each message: a 4-byte big-endian payload length, then the payload.
/// let connection = try loop.connect(to: server, framing: .lengthPrefixed())
/// connection.onMessage = { connection, message in ... }  // header included
/// ```
public struct EvplFraming {
    /// The framing closure's answer about the next message.
    public enum Decision: Equatable, Sendable {
        /// The next message is `length` bytes long (at least 1), header included.
        case message(length: Int)
        /// Not enough bytes have arrived to tell; ask again after more data.
        case needMoreData
        /// The bytes are not valid: the connection is closed and its
        /// disconnection reports ``EvplError/invalidFrame``.
        case invalid
    }

    let decide: (EvplConnection) -> Decision

    /// Creates a framing from a closure.
    ///
    /// - Parameter decide: Called on the loop's thread with the connection;
    ///   it peeks at the buffered bytes and returns the next message's length.
    public init(_ decide: @escaping (EvplConnection) -> Decision) {
        self.decide = decide
    }

    /// Messages that start with their payload length as a big-endian
    /// unsigned integer of `headerSize` bytes. The delivered message
    /// includes the header.
    ///
    /// - Parameter headerSize: The size of the length field, 1 to 8 bytes
    ///   (default 4).
    /// - Returns: The framing.
    public static func lengthPrefixed(headerSize: Int = 4) -> EvplFraming {
        let size = min(max(headerSize, 1), 8)
        return EvplFraming { connection in
            withUnsafeTemporaryAllocation(byteCount: size, alignment: 1) { header in
                guard connection.peek(into: header) == size else { return .needMoreData }
                let length = header.reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
                guard length <= UInt64(Int32.max) - UInt64(size) else { return .invalid }
                return .message(length: size + Int(length))
            }
        }
    }

    /// The C segment callback's answer: the length, 0 for more data, -1 to close.
    func segmentLength(for connection: EvplConnection) -> CInt {
        switch decide(connection) {
        case .message(let length): return length > 0 ? CInt(clamping: length) : -1
        case .needMoreData: return 0
        case .invalid: return -1
        }
    }
}
