import CEvpl
import Evpl

/// The message format, the same as ../shared/bench's so the numbers compare:
/// u32 payload length (not counting itself), u32 magic, u64 sequence number,
/// then padding up to the message size. Little-endian.
enum Message {
    static let headerSize = 16
    static let magic: UInt32 = 0x4556_4231  // "EVB1"

    static func fill(_ buffer: UnsafeMutableRawPointer, size: Int, seq: UInt64) {
        buffer.storeBytes(of: UInt32(size - 4).littleEndian, toByteOffset: 0, as: UInt32.self)
        buffer.storeBytes(of: magic.littleEndian, toByteOffset: 4, as: UInt32.self)
        buffer.storeBytes(of: seq.littleEndian, toByteOffset: 8, as: UInt64.self)
    }

    /// The sequence number of a `length`-byte message starting at `header`, or nil.
    static func parse(_ header: UnsafeRawPointer, length: Int) -> UInt64? {
        let payload = UInt32(littleEndian: header.loadUnaligned(fromByteOffset: 0, as: UInt32.self))
        let m = UInt32(littleEndian: header.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
        guard length >= headerSize, m == magic, Int(payload) + 4 == length else { return nil }
        return UInt64(littleEndian: header.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
    }

    /// As parse, for a message received as iovecs; `scratch` (headerSize
    /// bytes) gathers a header split across iovecs.
    static func parse(_ iovecs: UnsafeMutablePointer<evpl_iovec>, count: Int, length: Int,
                      scratch: UnsafeMutableRawPointer) -> UInt64? {
        guard count > 0 else { return nil }
        if Int(iovecs[0].length) >= headerSize, let data = iovecs[0].data {
            return parse(data, length: length)
        }
        var got = 0
        for i in 0..<count where got < headerSize {
            let chunk = min(Int(iovecs[i].length), headerSize - got)
            if let data = iovecs[i].data { (scratch + got).copyMemory(from: data, byteCount: chunk) }
            got += chunk
        }
        return got == headerSize ? parse(scratch, length: length) : nil
    }

    /// Segment callback for framed streams: the next message's length, 0 to
    /// wait for more bytes, -1 for garbage (the library then disconnects).
    static let segment: evpl_segment_callback_t = { evpl, bind, _ in
        var payload: UInt32 = 0
        guard evpl_peek(evpl, bind, &payload, 4) == 4 else { return 0 }
        let length = Int(UInt32(littleEndian: payload)) + 4
        return length >= Message.headerSize && length <= 64 << 20 ? CInt(length) : -1
    }
}
