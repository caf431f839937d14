import CEvpl

/// Bytes in the loop's pooled I/O buffers: a list of iovecs, each holding one
/// reference to the buffer it points into.
///
/// An `EvplBuffer` owns its references and releases each of them exactly
/// once, when it goes away (from any thread). Received data and messages
/// arrive as buffers without being copied, and a buffer can be sent as it is
/// with the `send` methods of ``EvplConnection`` and ``EvplDatagramSocket``:
/// the library then takes references of its own, so the buffer stays valid
/// and may be sent again.
///
/// ```swift
/// connection.onData = { connection, data in
///     connection.send(data)              // echo, zero-copy
///     print(String(decoding: data.bytes, as: UTF8.self))
/// }
/// ```
public final class EvplBuffer {
    /// The iovecs (owned array), each holding one reference.
    let iovecs: UnsafeMutablePointer<evpl_iovec>

    /// The number of iovecs (contiguous regions).
    public let iovecCount: Int

    /// The number of bytes.
    public let count: Int

    /// Takes over `iovecs` (allocated with `.allocate`) and the references its
    /// first `count` entries hold.
    init(adopting iovecs: UnsafeMutablePointer<evpl_iovec>, count: Int) {
        self.iovecs = iovecs
        iovecCount = count
        var total = 0
        for i in 0..<count { total += Int(iovecs[i].length) }
        self.count = total
    }

    /// Copies `count` iovec structs from memory the engine owns, taking over
    /// the references they hold.
    convenience init(taking source: UnsafePointer<evpl_iovec>, count: Int) {
        let own = UnsafeMutablePointer<evpl_iovec>.allocate(capacity: max(count, 1))
        own.initialize(from: source, count: count)
        self.init(adopting: own, count: count)
    }

    deinit {
        for i in 0..<iovecCount { evpl_iovec_release(iovecs + i) }
        iovecs.deallocate()
    }

    /// Whether the buffer holds no bytes.
    public var isEmpty: Bool { count == 0 }

    /// A copy of the bytes.
    public var bytes: [UInt8] {
        [UInt8](unsafeUninitializedCapacity: count) { out, initialized in
            initialized = copyBytes(to: UnsafeMutableRawBufferPointer(out))
        }
    }

    /// Copies bytes from the start of the buffer into `destination`.
    ///
    /// - Parameter destination: Where to copy to; at most its count bytes are copied.
    /// - Returns: The number of bytes copied.
    @discardableResult
    public func copyBytes(to destination: UnsafeMutableRawBufferPointer) -> Int {
        var copied = 0
        forEachRegion { region in
            let n = min(region.count, destination.count - copied)
            guard n > 0, let base = destination.baseAddress, let from = region.baseAddress else { return }
            (base + copied).copyMemory(from: from, byteCount: n)
            copied += n
        }
        return copied
    }

    /// Calls `body` with each contiguous region, in order. The pointers are
    /// valid only during the call.
    ///
    /// - Parameter body: Receives one region at a time.
    public func forEachRegion(_ body: (UnsafeRawBufferPointer) throws -> Void) rethrows {
        for i in 0..<iovecCount {
            try body(UnsafeRawBufferPointer(start: iovecs[i].data, count: Int(iovecs[i].length)))
        }
    }

    /// Calls `body` with each contiguous region, writable, in order: fill a
    /// buffer from ``EvplLoop/allocateBuffer(count:)`` this way. The pointers
    /// are valid only during the call.
    ///
    /// - Parameter body: Receives one region at a time.
    public func forEachMutableRegion(_ body: (UnsafeMutableRawBufferPointer) throws -> Void) rethrows {
        for i in 0..<iovecCount {
            try body(UnsafeMutableRawBufferPointer(start: iovecs[i].data, count: Int(iovecs[i].length)))
        }
    }
}

extension EvplLoop {
    /// Allocates `count` bytes from this loop's buffers (contents undefined).
    ///
    /// - Parameter count: The number of bytes.
    /// - Returns: A buffer to fill with ``EvplBuffer/forEachMutableRegion(_:)``.
    /// - Throws: ``EvplError/loopClosed``, or ``EvplError/allocationFailed(length:)``.
    public func allocateBuffer(count: Int) throws(EvplError) -> EvplBuffer {
        guard let handle else { throw .loopClosed }
        guard count >= 0, count <= Int(UInt32.max) else { throw .allocationFailed(length: count) }
        let bufferSize = max(Int(Library.config.bufferSize), 1)
        let capacity = count / bufferSize + 2
        let iovecs = UnsafeMutablePointer<evpl_iovec>.allocate(capacity: capacity)
        let n = evpl_iovec_alloc(handle, CUnsignedInt(count), 0, CUnsignedInt(capacity), iovecs)
        guard n >= 0 else {
            iovecs.deallocate()
            throw .allocationFailed(length: count)
        }
        return EvplBuffer(adopting: iovecs, count: Int(n))
    }

    /// Copies `bytes` into a new buffer from this loop's buffers.
    ///
    /// - Parameter bytes: The bytes to copy, for example an array or a
    ///   string's `utf8` view.
    /// - Returns: The filled buffer.
    /// - Throws: ``EvplError/loopClosed``, or ``EvplError/allocationFailed(length:)``.
    public func makeBuffer<Bytes: Collection<UInt8>>(copying bytes: Bytes) throws(EvplError) -> EvplBuffer {
        let buffer = try allocateBuffer(count: bytes.count)
        withContiguousBytes(of: bytes) { source in
            var offset = 0
            buffer.forEachMutableRegion { region in
                let n = min(region.count, source.count - offset)
                guard n > 0, let to = region.baseAddress, let from = source.baseAddress else { return }
                to.copyMemory(from: from + offset, byteCount: n)
                offset += n
            }
        }
        return buffer
    }
}
