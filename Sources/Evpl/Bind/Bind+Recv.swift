import CEvpl
import Glibc

/// Receiving on a stream bind: the received bytes wait in `recvQueue` until
/// the application takes them (RECV_DATA), or the segment callback cuts them
/// into messages (RECV_MSG).  BEHAVIOR.md §Receiving.
extension Bind {
    /// New bytes arrived (or the peer ended the stream): tell the application.
    func delivered(newBytes: Bool) {
        if newBytes {
            if segment != nil {
                deliverMessages()
            } else {
                deliver(EVPL_NOTIFY_RECV_DATA)
            }
        }
        if peerClosed && isLive {
            // A peer's orderly shutdown is handled like evpl_finish: replies
            // queued in the callbacks above are still written (BEHAVIOR.md (fix)).
            finish()
        }
    }

    /// The largest message the segment callback may ask for.
    var maxMessage: Int { Int(loop.global.maxNumIovec) * Int(loop.global.bufferSize) }

    /// Asks the segment callback for message lengths and delivers each whole
    /// message as RECV_MSG; the callback owns the iovec references.
    private func deliverMessages() {
        while isLive, let segment {
            let want = Int(segment(loop.handle, handle, privateData))
            if want == 0 { return }
            if want < 0 || want > maxMessage {
                if want > 0 { Log.error("bind", "segment length \(want) exceeds the largest message (\(maxMessage))") }
                close(status: EPROTO)
                return
            }
            guard want <= recvQueue.bytes else { return }
            let scratch = loop.scratch.messageIovecs
            guard let niov = takeMessage(want, into: scratch, capacity: loop.scratch.messageIovecCapacity) else {
                close(status: ENOMEM)
                return
            }
            var n = evpl_notify()
            n.notify_type = UInt32(EVPL_NOTIFY_RECV_MSG)
            n.recv_msg.iovec = scratch
            n.recv_msg.niov = UInt32(niov)
            n.recv_msg.length = UInt32(want)
            n.recv_msg.addr = nil
            notify?(loop.handle, handle, &n, privateData)
        }
    }

    /// Moves `length` bytes from the front of the receive queue into `out`
    /// as iovecs with references; copies into one fresh buffer if the message
    /// spans more iovecs than `capacity`.  nil only when memory is exhausted.
    private func takeMessage(_ length: Int, into out: UnsafeMutablePointer<evpl_iovec>, capacity: Int) -> Int? {
        if iovecCount(covering: length) > capacity {
            return copyMessage(length, into: out, capacity: capacity)
        }
        return take(length, into: out)
    }

    /// Moves exactly `length` (<= recvQueue.bytes) bytes into `out`; returns the iovec count.
    @inline(__always)
    func take(_ length: Int, into out: UnsafeMutablePointer<evpl_iovec>) -> Int {
        var left = length
        var niov = 0
        while left > 0 {
            let f = recvQueue.first
            let len = Int(f.pointee.length)
            if len <= left {
                out[niov] = recvQueue.popFirst()
                left -= len
            } else {
                out[niov] = f.pointee
                out[niov].length = UInt32(left)
                Iovec.addref(f)
                f.pointee.data += left
                f.pointee.length = UInt32(len - left)
                recvQueue.trimmedFront(by: left)
                left = 0
            }
            niov += 1
        }
        return niov
    }

    /// How many iovecs the first `length` buffered bytes span.
    @inline(__always)
    func iovecCount(covering length: Int) -> Int {
        var left = length
        var n = 0
        while left > 0 && n < recvQueue.count {
            left -= Int(recvQueue.at(n).pointee.length)
            n += 1
        }
        return n
    }

    private func copyMessage(_ length: Int, into out: UnsafeMutablePointer<evpl_iovec>, capacity: Int) -> Int? {
        let size = loop.pool.bufferSize
        var left = length
        var niov = 0
        while left > 0 {
            let chunk = min(left, size)
            guard niov < capacity, let v = loop.pool.allocate(chunk, alignment: 1) else {
                for i in 0..<niov { Iovec.release(out[i]) }
                return nil
            }
            _ = recvQueue.copy(into: v.data, length: chunk)
            recvQueue.consume(chunk)
            out[niov] = v
            niov += 1
            left -= chunk
        }
        return niov
    }

    // MARK: The application's receive calls

    func recv(_ buffer: UnsafeMutableRawPointer, _ maxLength: Int, allOrNone: Bool) -> Int {
        if allOrNone && recvQueue.bytes < maxLength { return 0 }
        let n = recvQueue.copy(into: buffer, length: maxLength)
        recvQueue.consume(n)
        return n
    }

    /// Zero-copy: the caller owns the returned references.  −1 (nothing
    /// taken) when `maxIovecs` cannot hold what would be returned.
    func recvv(_ out: UnsafeMutablePointer<evpl_iovec>, maxIovecs: Int, maxLength: Int,
               length: UnsafeMutablePointer<CInt>?) -> Int {
        let n = min(recvQueue.bytes, maxLength)
        if iovecCount(covering: n) > maxIovecs {
            length?.pointee = 0
            return -1
        }
        let niov = take(n, into: out)
        length?.pointee = CInt(n)
        return niov
    }

    func peek(_ buffer: UnsafeMutableRawPointer, _ length: Int) -> Int {
        recvQueue.copy(into: buffer, length: length)
    }

    /// Fills `out` with iovecs over the first `length` buffered bytes without
    /// consuming them or taking references.
    func peekv(_ out: UnsafeMutablePointer<evpl_iovec>, maxIovecs: Int, length: Int) -> Int {
        var left = min(length, recvQueue.bytes)
        var i = 0
        while left > 0 && i < maxIovecs {
            out[i] = recvQueue.at(i).pointee
            if Int(out[i].length) > left { out[i].length = UInt32(left) }
            left -= Int(out[i].length)
            i += 1
        }
        return i
    }

    func consume(_ length: Int) -> Int {
        guard length <= recvQueue.bytes else { return -1 }
        recvQueue.consume(length)
        return 0
    }
}
