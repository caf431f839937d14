/// Calls `body` with the bytes of `bytes` in contiguous memory (copying them
/// into an array only when the collection has no contiguous storage).
func withContiguousBytes<Bytes: Collection<UInt8>, R>(of bytes: Bytes,
                                                     _ body: (UnsafeRawBufferPointer) -> R) -> R {
    if let result = bytes.withContiguousStorageIfAvailable({ body(UnsafeRawBufferPointer($0)) }) {
        return result
    }
    return Array(bytes).withUnsafeBytes(body)
}
