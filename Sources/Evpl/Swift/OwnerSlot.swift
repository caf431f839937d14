/// Caller-owned C structs whose callbacks get no private data (`evpl_timer`,
/// `evpl_doorbell`) are allocated with one extra word after them that points
/// back at their Swift owner, so a callback finds the owner from the
/// struct's address.
enum OwnerSlot {
    private static func offset<T>(_: T.Type) -> Int {
        let align = MemoryLayout<UnsafeRawPointer>.alignment
        return (MemoryLayout<T>.stride + align - 1) / align * align
    }

    /// Zeroed storage for one `T` followed by the owner word; set the owner
    /// with `setOwner` before the engine can call back.
    static func allocate<T>(_ type: T.Type) -> UnsafeMutablePointer<T> {
        let size = offset(type) + MemoryLayout<UnsafeRawPointer>.size
        let align = max(MemoryLayout<T>.alignment, MemoryLayout<UnsafeRawPointer>.alignment)
        let raw = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: align)
        raw.initializeMemory(as: UInt8.self, repeating: 0, count: size)
        return raw.bindMemory(to: type, capacity: 1)
    }

    /// Stores `owner` (unretained) after `p`.
    static func setOwner<T>(_ p: UnsafeMutablePointer<T>, _ owner: AnyObject) {
        UnsafeMutableRawPointer(p).storeBytes(of: Unmanaged.passUnretained(owner).toOpaque(),
                                              toByteOffset: offset(T.self), as: UnsafeMutableRawPointer.self)
    }

    /// The owner stored after `p` (not retained: the owner keeps itself alive
    /// while the engine can call back).
    static func owner<T, Owner: AnyObject>(of p: UnsafeMutablePointer<T>, as _: Owner.Type) -> Owner {
        let raw = UnsafeRawPointer(p).load(fromByteOffset: offset(T.self), as: UnsafeRawPointer.self)
        return Unmanaged<Owner>.fromOpaque(raw).takeUnretainedValue()
    }

    static func deallocate<T>(_ p: UnsafeMutablePointer<T>) {
        UnsafeMutableRawPointer(p).deallocate()
    }
}
