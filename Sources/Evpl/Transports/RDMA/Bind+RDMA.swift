import CEvpl
import CEvplRDMA
import Glibc

/// What an RDMA bind adds to a bind: its rdma_cm id and queue pair, and the
/// credit-based flow control of a reliable connection.
///
/// Credits: each side may have at most `window` sends outstanding at its
/// peer's receive queue.  Every send is SEND_WITH_IMM; the immediate value
/// returns the receives consumed since the last grant (`owed`, low 16 bits)
/// and bit 31 marks the sender's orderly end (FIN).  Data needs two credits
/// (the last is kept for a credit-only message, so two peers that both ran
/// out can always tell each other), and a credit-only message goes out when
/// half a window is owed or the peer is down to its last credit.
struct RDMABindState: ~Copyable {
    var id: UnsafeMutableRawPointer?
    var qp: UnsafeMutableRawPointer?
    var qpNum: UInt32 = 0
    var device: Unmanaged<RDMALoopDevice>?
    /// DATAGRAM_RDMACM_RC: every send call is one message (RECV_MSG at the peer).
    var messages = false
    /// Accepted rather than connected.
    var passive = false
    var established = false
    /// The bind's window counts in its device's receive target.
    var holdsWindow = false
    var sendCredits = 0
    var peerCredits = 0
    var owed = 0
    /// Signaled work requests not completed yet (sends and one-sided requests).
    var outstanding = 0
    /// Bytes of each posted send, oldest first (0 for credit and FIN messages).
    var inflight = ValueRing<UInt32>(capacity: 64)
    /// Send-queue bytes posted and not completed; the next byte to post is at
    /// iovec `cursor` (from the front of the send queue), `cursorOffset` bytes in.
    var postedBytes = 0
    var cursor = 0
    var cursorOffset = 0
    /// Message ends (entries of messageEnds) already posted.
    var postedMessages = 0
    var finSent = false
    var peerFin = false
    /// rdma_disconnect called, or DISCONNECTED seen.
    var disconnected = false
    /// One-sided requests waiting for a connection or room in the send queue
    /// (initial size rdma_request_ring_size; grows on demand).
    var requests = ValueRing<Unmanaged<RDMARequest>>(capacity: 8)
    /// UD: peers this bind sends to, and senders it has heard from.
    var peers: [RDMAPeer] = []
    /// UD: the largest datagram (path MTU or rdmacm_datagram_size_override).
    var datagramSize = 0
    var senders: [UInt32: Address] = [:]

    static let finFlag: UInt32 = 1 << 31
    static let creditMask: UInt32 = 0xffff
}

extension Bind {
    var rdmaLoop: RDMALoop { loop.rdma.unsafelyUnwrapped }

    // MARK: Sending (end of the iteration)

    /// Posts what credits and send-queue room allow, as one chain.
    func flushRDMA() {
        if kind == .datagram {
            flushRDMADatagrams()
            return
        }
        guard rdma.established, let qp = rdma.qp else { return }
        let r = rdmaLoop
        let device = rdma.device.unsafelyUnwrapped.takeUnretainedValue().device
        let wrs = r.sendWRs
        var n = 0
        var sgeBase = 0
        var failed: CInt = 0
        while n < r.sendBatch && rdma.outstanding < r.sqSize {
            if !rdma.requests.isEmpty {
                let q = rdma.requests.at(0).pointee
                rdma.requests.removeFirst()
                q._withUnsafeGuaranteedRef { $0.fill(wrs + n, sges: r.sges + sgeBase) }
                sgeBase += r.maxSge
                rdma.outstanding += 1
                n += 1
                continue
            }
            let unposted = sendQueue.bytes - rdma.postedBytes
            let wr = wrs + n
            if unposted > 0 && rdma.sendCredits >= 2 {
                var length = unposted
                if rdma.messages {
                    length = Int(messageEnds.at(rdma.postedMessages).pointee - (writtenTotal &+ UInt64(rdma.postedBytes)))
                }
                let sges = r.sges + sgeBase
                let (nsge, taken) = gather(length, into: sges, max: r.maxSge, limit: r.slotSize, device: device)
                if nsge < 0 || (rdma.messages && taken < length) {
                    Log.error("rdma", nsge < 0 ? "send memory is not registered" :
                              "a \(length)-byte message spans more than \(r.maxSge) iovecs or exceeds \(r.slotSize) bytes")
                    failed = nsge < 0 ? ENOMEM : EMSGSIZE
                    break
                }
                if rdma.messages { rdma.postedMessages += 1 }
                sgeBase += r.maxSge
                prepareSend(wr, bytes: taken, sges: sges, nsge: nsge, fin: false, inline: taken <= r.maxInline)
            } else if unposted == 0 && finishRequested && !rdma.finSent && rdma.sendCredits >= 1 {
                rdma.finSent = true
                prepareSend(wr, bytes: 0, sges: nil, nsge: 0, fin: true, inline: false)
            } else if rdma.owed > 0 && rdma.sendCredits >= 1
                        && (rdma.owed >= r.window / 2 || rdma.peerCredits <= 1) {
                prepareSend(wr, bytes: 0, sges: nil, nsge: 0, fin: false, inline: false)
            } else {
                break
            }
            n += 1
        }
        if n > 0 {
            let rc = r.ops.pointee.post_send(qp, wrs, CInt(n))
            if rc != 0 {
                Log.error("rdma", "posting sends: \(Sys.errnoText(rc))")
                rdma.outstanding -= n  // none of the chain is known to be posted: nothing will complete
                close(status: rc)
                return
            }
        }
        if failed != 0 { close(status: failed) }
        notifySent()
    }

    /// Fills one SEND_WITH_IMM carrying the credits owed.
    @inline(__always)
    private func prepareSend(_ wr: UnsafeMutablePointer<cevpl_rdma_send_wr>, bytes: Int,
                             sges: UnsafeMutablePointer<cevpl_rdma_sge>?, nsge: Int, fin: Bool, inline: Bool) {
        let grant = min(rdma.owed, Int(RDMABindState.creditMask))
        rdma.owed -= grant
        rdma.peerCredits += grant
        rdma.sendCredits -= 1
        rdma.outstanding += 1
        rdma.postedBytes += bytes
        rdma.inflight.append(UInt32(bytes))
        var flags = CEVPL_RDMA_SEND_SIGNALED
        if inline && bytes > 0 { flags |= CEVPL_RDMA_SEND_INLINE }
        wr.initialize(to: cevpl_rdma_send_wr(
            wr_id: UInt64(UInt(bitPattern: Unmanaged.passUnretained(self).toOpaque())) | RDMALoop.Tag.send.rawValue,
            opcode: CInt(CEVPL_RDMA_SEND_WITH_IMM.rawValue), flags: flags,
            imm: UInt32(grant) | (fin ? RDMABindState.finFlag : 0),
            nsge: CInt(nsge), sge: sges.map { UnsafePointer($0) }, remote_addr: 0, rkey: 0, ah: nil,
            remote_qpn: 0, remote_qkey: 0))
    }

    /// Scatter-gather entries for up to `length` (and `limit`) unposted bytes
    /// from the cursor, at most `max` entries; advances the cursor.  Returns
    /// (entries, bytes), or entries -1 when memory is not registered.
    @inline(__always)
    func gather(_ length: Int, into sges: UnsafeMutablePointer<cevpl_rdma_sge>, max: Int, limit: Int,
                device: RDMADevice) -> (Int, Int) {
        var need = min(length, limit)
        var k = 0
        var taken = 0
        var index = rdma.cursor
        var offset = rdma.cursorOffset
        while need > 0 && k < max && index < sendQueue.count {
            let v = sendQueue.at(index)
            let avail = Int(v.pointee.length) - offset
            let take = min(avail, need)
            guard let lkey = device.lkey(v) else { return (-1, 0) }
            sges[k] = cevpl_rdma_sge(addr: UInt64(UInt(bitPattern: v.pointee.data! + offset)), length: UInt32(take), lkey: lkey)
            k += 1
            need -= take
            taken += take
            if take == avail {
                index += 1
                offset = 0
            } else {
                offset += take
            }
        }
        rdma.cursor = index
        rdma.cursorOffset = offset
        return (k, taken)
    }

    // MARK: Completions

    /// A send (data, credit or FIN message) of this bind completed.
    @inline(__always)
    func rdmaSendCompleted(_ wc: UnsafeMutablePointer<cevpl_rdma_wc>) {
        rdma.outstanding -= 1
        var bytes = 0
        if !rdma.inflight.isEmpty {
            bytes = Int(rdma.inflight.at(0).pointee)
            rdma.inflight.removeFirst()
        }
        if state == .draining {
            if rdma.outstanding == 0 { rdmaDrained() }
            return
        }
        guard UInt32(bitPattern: wc.pointee.status) == CEVPL_WC_SUCCESS.rawValue else {
            close(status: RDMAConnection.status(forCompletion: wc.pointee.status))
            return
        }
        if kind == .datagram {
            completeRDMADatagram(bytes)
            markDirty()
            return
        }
        if bytes > 0 { completeSendBytes(bytes) }
        if rdma.finSent && rdma.outstanding == 0 && sendQueue.isEmpty {
            close(status: 0)  // our FIN reached the peer
            return
        }
        markDirty()  // more may go out now (and SENT is delivered there)
    }

    @inline(__always)
    func completeSendBytes(_ bytes: Int) {
        let before = sendQueue.count
        sendQueue.consume(bytes)
        rdma.postedBytes -= bytes
        rdma.cursor -= before - sendQueue.count
        if rdma.cursor == 0 { rdma.cursorOffset = rdma.postedBytes }
        writtenTotal &+= UInt64(bytes)
        sentBytes &+= UInt64(bytes)
        if kind == .stream {
            let done = messageEnds.popCompleted(writtenTotal)
            sentMsgs &+= done
            if rdma.messages { rdma.postedMessages -= Int(done) }
        } else {
            sentMsgs &+= 1
        }
    }

    /// A receive of this bind's queue pair completed: credits, data, FIN.
    @inline(__always)
    func rdmaReceived(_ slot: evpl_iovec, _ wc: UnsafeMutablePointer<cevpl_rdma_wc>) {
        if kind == .datagram {
            rdmaDatagramReceived(slot, wc)
            return
        }
        if state == .connecting && rdma.passive && rdma.qp != nil {
            RDMAConnection.established(self)  // data can overtake the ESTABLISHED event
        }
        guard isLive else {
            Iovec.release(slot)
            return
        }
        let imm = wc.pointee.imm
        let credits = Int(imm & RDMABindState.creditMask)
        rdma.sendCredits += credits
        rdma.peerCredits -= 1
        rdma.owed += 1
        let length = Int(wc.pointee.byte_len)
        if length == 0 {
            Iovec.release(slot)
        } else {
            var v = slot
            v.length = UInt32(length)
            if rdma.messages {
                deliverRDMAMessage(v, length)
            } else {
                recvQueue.append(v)
                delivered(newBytes: true)
            }
        }
        if imm & RDMABindState.finFlag != 0 && isLive {
            rdma.peerFin = true
            peerClosed = true
            delivered(newBytes: false)
        }
        guard isLive else { return }
        if rdma.owed >= rdmaLoop.window / 2 || rdma.peerCredits <= 1
            || (credits > 0 && sendQueue.bytes > rdma.postedBytes) || !rdma.requests.isEmpty {
            markDirty()
        }
    }

    /// One RECV_MSG; the application owns the iovec's reference.
    @inline(__always)
    func deliverRDMAMessage(_ v: evpl_iovec, _ length: Int, from address: Address? = nil) {
        let scratch = loop.scratch.messageIovecs
        scratch.initialize(to: v)
        var n = evpl_notify()
        n.notify_type = UInt32(EVPL_NOTIFY_RECV_MSG)
        n.recv_msg.iovec = scratch
        n.recv_msg.niov = 1
        n.recv_msg.length = UInt32(length)
        n.recv_msg.addr = Unmanaged.passUnretained(address ?? remote).handle
        guard let notify else {
            Iovec.release(v)
            return
        }
        notify(loop.handle, handle, &n, privateData)
    }
}
