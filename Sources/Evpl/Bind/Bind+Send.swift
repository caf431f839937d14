import CEvpl
import Glibc

/// Sending: every send call queues iovecs (holding references) on the bind
/// and marks it dirty; the loop flushes each dirty bind once at the end of
/// the iteration (one writev or sendmmsg batch).  BEHAVIOR.md §Sending.
extension Bind {
    /// Whether new sends are accepted (not after finish or close).
    @inline(__always)
    var acceptsSends: Bool { (state == .open || state == .connecting) && !finishRequested }

    /// Copies `length` bytes into pool buffers and queues them (stream).
    func send(_ data: UnsafeRawPointer, _ length: Int) {
        guard acceptsSends, messageFits(length) else { return }
        guard copyIn(data, length) else {
            Log.error("bind", "evpl_send: out of buffer memory; \(length) bytes dropped")
            return
        }
        endMessage(length)
    }

    /// Queues the first `length` bytes of `iovecs` without copying (stream).
    func sendv(_ iovecs: UnsafeMutablePointer<evpl_iovec>, _ count: Int, _ length: Int, takeRef: Bool) {
        guard acceptsSends, messageFits(length) else {
            if takeRef { for i in 0..<count { Iovec.release(iovecs + i) } }
            return
        }
        queueIovecs(iovecs, count, length, takeRef: takeRef)
        endMessage(length)
    }

    /// DATAGRAM_RDMACM_RC sends one message per call, at most one receive slot.
    @inline(__always)
    private func messageFits(_ length: Int) -> Bool {
        guard rdma.messages else { return true }
        let limit = rdmaLoop.slotSize
        if length > limit {
            Log.error("rdma", "a \(length)-byte message exceeds the \(limit)-byte limit of DATAGRAM_RDMACM_RC; not sent")
            return false
        }
        return true
    }

    @inline(__always)
    private func endMessage(_ length: Int) {
        queuedTotal &+= UInt64(length)
        messageEnds.append(queuedTotal)
        markDirty()
    }

    /// Appends copies of `data` to the send queue; false when memory ran out.
    @inline(__always)
    func copyIn(_ data: UnsafeRawPointer, _ length: Int) -> Bool {
        poolRef._withUnsafeGuaranteedRef { pool in
            let size = pool.bufferSize
            var done = 0
            while done < length {
                let chunk = min(length - done, size)
                guard let v = pool.allocate(chunk, alignment: 1) else { return false }
                memcpy(v.data, data + done, chunk)
                sendQueue.append(v)
                done += chunk
            }
            return true
        }
    }

    /// Appends the first `length` bytes of `iovecs`; with `takeRef` the
    /// caller's references move to the queue (those past `length` are
    /// released), otherwise the queue takes its own.  Returns the iovec count queued.
    @inline(__always)
    @discardableResult
    func queueIovecs(_ iovecs: UnsafeMutablePointer<evpl_iovec>, _ count: Int, _ length: Int, takeRef: Bool) -> Int {
        var left = length
        var queued = 0
        for i in 0..<count {
            let v = iovecs + i
            if left == 0 {
                if takeRef { Iovec.release(v) }
                continue
            }
            var copy = v.pointee
            if Int(copy.length) > left { copy.length = UInt32(left) }
            left -= Int(copy.length)
            if copy.length == 0 {
                if takeRef { Iovec.release(v) }
                continue
            }
            if !takeRef { Iovec.addref(v) }
            sendQueue.append(copy)
            queued += 1
        }
        return queued
    }

    func requestSendNotifications() {
        sendNotifications = true
    }

    /// Called for each dirty bind at the end of the iteration.
    func flush() {
        switch state {
        case .open, .finishing:
            if transport == .rdma {
                flushRDMA()
            } else if kind == .datagram {
                flushDatagrams()
            } else if transport == .uring {
                flushUring()
            } else {
                flushStream()
            }
        case .connecting, .closing, .free, .draining:
            return
        }
    }

    /// Delivers SENT with what completed since the previous SENT.
    @inline(__always)
    func notifySent() {
        guard sendNotifications, sentBytes > 0 || sentMsgs > 0, isLive else { return }
        var n = evpl_notify()
        n.notify_type = UInt32(EVPL_NOTIFY_SENT)
        n.sent.bytes = UInt(sentBytes)
        n.sent.msgs = UInt(sentMsgs)
        sentBytes = 0
        sentMsgs = 0
        notify?(loop.handle, handle, &n, privateData)
    }
}
