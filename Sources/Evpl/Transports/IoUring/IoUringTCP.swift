import CEvpl
import CEvplUring
import Glibc

/// STREAM_IO_URING_TCP: Bind's stream state machine over io_uring.  A
/// multishot receive per connection fills the loop's provided buffers (the
/// chunks become the bind's received iovecs without a copy); sends are one
/// sendmsg in flight per bind, built from the send queue at the end of the
/// iteration; connects complete through a poll.  Completions arrive in
/// `Uring.reap`.
extension Bind {
    private var uring: Uring { loop.uring.unsafelyUnwrapped }

    @inline(__always)
    private var opaqueSelf: UnsafeMutableRawPointer { Unmanaged.passUnretained(self).toOpaque() }

    // MARK: Receiving

    func startUringReceive() {
        guard !uringReceiving else { return }
        let sqe = uring.sqe()
        cevpl_uring_prep_recv_multishot(sqe, fd, Uring.bufferGroup, Uring.token(.recv, opaqueSelf))
        uringReceiving = true
        uringInflight += 1
    }

    /// One receive completion: bytes in a provided buffer, EOF, or an error.
    func uringReceived(_ res: Int32, _ flags: UInt32) {
        let more = flags & CEVPL_CQE_F_MORE != 0
        if !more {
            uringReceiving = false
            uringInflight -= 1
        }
        if res > 0 && flags & CEVPL_CQE_F_BUFFER != 0 {
            let v = uring.takeChunk(Int(flags >> CEVPL_CQE_BUFFER_SHIFT), length: Int(res))
            if state == .open || state == .finishing {
                recvQueue.appendMerging(v)
                delivered(newBytes: true)
            } else {
                Iovec.release(v)  // closing or draining: nobody wants it
            }
        } else if res == 0 {
            if isLive && state != .connecting {
                peerClosed = true
                delivered(newBytes: false)
            }
        } else if res < 0 {
            switch -res {
            case ENOBUFS:
                // Every provided buffer was taken: re-armed at submit time,
                // after the fresh ones are posted.
                if state == .draining {
                    settleIfDone()
                } else if isLive {
                    uringInflight += 1  // the pending re-arm keeps the bind from being recycled
                    uring.starve(self)
                }
                return
            case ECANCELED:
                break
            default:
                close(status: -res)
            }
        }
        if state == .draining {
            settleIfDone()
        } else if !uringReceiving && isLive && !peerClosed && res != 0 {
            startUringReceive()
        }
    }

    /// Submit time, for a bind whose receive ran out of buffers.
    func rearmUringReceive() {
        uringInflight -= 1
        if state == .draining {
            settleIfDone()
        } else if isLive && !peerClosed {
            startUringReceive()
        }
    }

    // MARK: Sending

    /// Called for a dirty bind at the end of the iteration: one sendmsg over
    /// the queued iovecs, unless one is already in flight.
    func flushUring() {
        guard !uringSending else { return }
        if sendQueue.isEmpty {
            if finishRequested && isLive { close(status: 0) }
            return
        }
        let cap = loop.scratch.iovCapacity
        if uringIov == nil {
            uringIov = .allocate(capacity: cap)
            uringMessage = .allocate(capacity: 1)
        }
        let iov = uringIov.unsafelyUnwrapped
        let n = min(sendQueue.count, cap)
        for i in 0..<n {
            let v = sendQueue.at(i)
            iov[i] = iovec(iov_base: v.pointee.data, iov_len: Int(v.pointee.length))
        }
        let msg = uringMessage.unsafelyUnwrapped
        msg.initialize(to: msghdr(msg_name: nil, msg_namelen: 0, msg_iov: iov, msg_iovlen: n,
                                  msg_control: nil, msg_controllen: 0, msg_flags: 0))
        cevpl_uring_prep_sendmsg(uring.sqe(), fd, msg, Uring.token(.send, opaqueSelf))
        uringSending = true
        uringInflight += 1
    }

    /// The send in flight completed with `res` bytes written (or an error).
    func uringSent(_ res: Int32) {
        uringSending = false
        uringInflight -= 1
        if state == .draining {
            settleIfDone()
            return
        }
        guard isLive else { return }
        if res < 0 {
            close(status: -res == ECANCELED ? 0 : -res)
            return
        }
        let written = Int(res)
        sendQueue.consume(written)
        writtenTotal &+= UInt64(written)
        sentBytes &+= UInt64(written)
        sentMsgs &+= messageEnds.popCompleted(writtenTotal)
        notifySent()
        guard isLive else { return }
        if !sendQueue.isEmpty || finishRequested { markDirty() }
    }

    // MARK: Connecting

    /// After a non-blocking connect: a one-shot poll reports writability.
    func startUringConnect() {
        cevpl_uring_prep_poll_out(uring.sqe(), fd, Uring.token(.connect, opaqueSelf))
        uringInflight += 1
    }

    func uringConnected(_ res: Int32) {
        uringInflight -= 1
        if state == .draining {
            settleIfDone()
            return
        }
        guard state == .connecting else { return }
        guard connectCompleted(error: res < 0 ? -res : Sys.socketError(api, fd)) else { return }
        startUringReceive()
    }

    // MARK: Closing

    /// Cancels whatever is in flight; completions come back with ECANCELED
    /// (or their result) and `settleIfDone` recycles the bind after the last.
    func cancelUring() {
        loop.drainingBinds += 1
        Glibc.shutdown(fd, CInt(SHUT_RDWR))
        cevpl_uring_prep_cancel_fd(uring.sqe(), fd, Uring.token(.ignore, opaqueSelf))
    }

    private func settleIfDone() {
        guard uringInflight == 0 else { return }
        loop.drainingBinds -= 1
        recycle()
    }
}

enum IoUringTCP {
    /// The loop's ring, made on first use; nil (logged) when io_uring cannot be used.
    static func ring(_ loop: EventLoop) -> Uring? {
        if let u = loop.uring { return u }
        guard IoUringSupport.unavailableReason == nil, let u = Uring.make(loop: loop) else { return nil }
        loop.uring = u
        return u
    }
}
