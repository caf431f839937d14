import CEvpl
import Glibc

/// The memory API's allocations from a loop's pool (BEHAVIOR.md §Memory).
extension BufferPool {
    /// 1...maxIovecs iovecs covering exactly `length` bytes, each aligned;
    /// −1 only when `maxIovecs` cannot cover `length` (or memory ran out).
    /// Any length up to bufferSize (with its alignment) fits in one iovec.
    func allocate(_ length: Int, alignment: Int, maxIovecs: Int,
                  into out: UnsafeMutablePointer<evpl_iovec>) -> Int {
        let align = max(alignment, 1)
        let perBuffer = capacity(alignment: align)
        if length <= perBuffer {
            guard let v = allocate(length, alignment: align) else { return -1 }
            out[0] = v
            return 1
        }
        // Several buffers, each chunk aligned at its start.
        let needed = (length + perBuffer - 1) / perBuffer
        guard needed <= maxIovecs else { return -1 }
        var left = length
        var n = 0
        while left > 0 {
            let chunk = min(left, perBuffer)
            guard let v = allocate(chunk, alignment: align) else {
                for i in 0..<n { Iovec.release(out[i]) }
                return -1
            }
            out[n] = v
            n += 1
            left -= chunk
        }
        return n
    }

    /// The most bytes one fresh buffer holds at `alignment`: buffers start
    /// page-aligned when buffer_size is a multiple of the page size.
    func capacity(alignment: Int) -> Int {
        let pageAligned = bufferSize % 4096 == 0
        return alignment <= 1 || (pageAligned && alignment <= 4096) ? bufferSize : bufferSize - (alignment - 1)
    }

    /// Like `allocate`, but takes no references: the caller writes, trims the
    /// lengths and calls `commitReserved`, which takes exactly what was used.
    /// Only the first iovec lies in the current buffer; longer reservations
    /// fall back to real allocations (committed lengths are then trimmed).
    func reserve(_ length: Int, alignment: Int, maxIovecs: Int,
                 into out: UnsafeMutablePointer<evpl_iovec>) -> Int {
        let align = max(alignment, 1)
        if length <= capacity(alignment: align), let (p, _) = reserve(minimum: length, alignment: align) {
            out[0] = evpl_iovec(data: p, length: UInt32(length), pad: 0, private_data: nil)
            return 1
        }
        let n = allocate(length, alignment: alignment, maxIovecs: maxIovecs, into: out)
        if n > 0 {
            for i in 0..<n { out[i].pad = 1 }  // marks "already holds a reference"
        }
        return n
    }

    func commitReserved(_ iovecs: UnsafeMutablePointer<evpl_iovec>, _ count: Int) {
        for i in 0..<count {
            let v = iovecs + i
            if v.pointee.pad == 1 {
                v.pointee.pad = 0
                continue
            }
            guard let data = v.pointee.data else { continue }
            v.pointee = commit(data, Int(v.pointee.length))
        }
    }
}
