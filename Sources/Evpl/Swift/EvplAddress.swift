/// A socket address: the sender of a datagram, which can be replied to.
///
/// It is a copy, so it stays valid after the message handler returns; pass it
/// to the `send(_:to:)` methods of ``EvplDatagramSocket`` to reply.
public final class EvplAddress: @unchecked Sendable, CustomStringConvertible {
    /// The engine's address object (a private copy, never changed).
    let address: Address

    init(copying other: Address) {
        address = withUnsafePointer(to: other.storage) { Address($0, other.length) }
    }

    /// `a.b.c.d:port` for IPv4, `[v6]:port` for IPv6, `""` when unset.
    public var description: String {
        guard address.length > 0 else { return "" }
        return withUnsafePointer(to: address.storage) { Address.format($0) }
    }

    /// The port.
    public var port: Int { address.port }

    /// The C handle, valid while this object lives.
    var handle: AddressHandle { Unmanaged.passUnretained(address).handle }
}
