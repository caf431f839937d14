import CEvpl
import CEvplRDMA
import Glibc

/// One one-sided operation (evpl_rdma_read / evpl_rdma_write) on an RC bind:
/// its local iovecs (with references, released at completion), the remote
/// key and address, and the callback.  Recycled through the loop's free list.
final class RDMARequest {
    typealias Callback = RdmaCallback

    var write = false
    var remoteKey: UInt32 = 0
    var remoteAddress: UInt64 = 0
    var callback: Callback?
    var privateData: UnsafeMutableRawPointer?
    /// The bind it runs on (for the send-queue room it takes).
    var bind: Unmanaged<Bind>?
    var iovecs: [evpl_iovec] = []
    var lkeys: [UInt32] = []

    func reset() {
        callback = nil
        privateData = nil
        bind = nil
        iovecs.removeAll(keepingCapacity: true)
        lkeys.removeAll(keepingCapacity: true)
    }

    /// The work request (iovecs.count <= max_sge, checked when queued).
    func fill(_ wr: UnsafeMutablePointer<cevpl_rdma_send_wr>, sges: UnsafeMutablePointer<cevpl_rdma_sge>) {
        for i in 0..<iovecs.count {
            sges[i] = cevpl_rdma_sge(addr: UInt64(UInt(bitPattern: iovecs[i].data)), length: iovecs[i].length,
                                     lkey: lkeys[i])
        }
        wr.initialize(to: cevpl_rdma_send_wr(
            wr_id: UInt64(UInt(bitPattern: Unmanaged.passUnretained(self).toOpaque())) | RDMALoop.Tag.request.rawValue,
            opcode: CInt(write ? CEVPL_RDMA_WRITE.rawValue : CEVPL_RDMA_READ.rawValue),
            flags: CEVPL_RDMA_SEND_SIGNALED, imm: 0, nsge: CInt(iovecs.count), sge: UnsafePointer(sges),
            remote_addr: remoteAddress, rkey: remoteKey, ah: nil, remote_qpn: 0, remote_qkey: 0))
    }

    /// Its completion: the callback, then the bind's bookkeeping.  A failed
    /// one-sided operation leaves the queue pair in error, so the bind closes.
    func completed(_ wc: UnsafeMutablePointer<cevpl_rdma_wc>, on r: RDMALoop) {
        let status = UInt32(bitPattern: wc.pointee.status) == CEVPL_WC_SUCCESS.rawValue
            ? 0 : RDMAConnection.status(forCompletion: wc.pointee.status)
        let b = bind
        finish(status, on: r)
        guard let b else { return }
        b._withUnsafeGuaranteedRef { bind in
            bind.rdma.outstanding -= 1
            if bind.state == .draining {
                if bind.rdma.outstanding == 0 { bind.rdmaDrained() }
                return
            }
            if status != 0 {
                bind.close(status: status)
            } else if bind.rdma.finSent && bind.rdma.outstanding == 0 && bind.sendQueue.isEmpty {
                bind.close(status: 0)
            } else if !bind.rdma.requests.isEmpty || bind.sendQueue.bytes > bind.rdma.postedBytes {
                bind.markDirty()
            }
        }
    }

    /// Never posted: the callback gets `status`.
    func fail(_ status: CInt, on r: RDMALoop) {
        finish(status, on: r)
    }

    private func finish(_ status: CInt, on r: RDMALoop) {
        let cb = callback, data = privateData
        for v in iovecs { Iovec.release(v) }
        r.recycle(self)  // the free list holds it now
        Unmanaged.passUnretained(self).release()  // the +1 taken when queued
        cb?(status, data)
    }
}

extension Bind {
    /// Whether one-sided operations can run here (an RC bind, either protocol).
    var supportsOneSided: Bool {
        transport == .rdma && kind == .stream
    }

    /// Queues a one-sided read or write; the callback follows from the loop.
    /// With `takeRef` the caller's references move to the request.
    func rdmaOneSided(write: Bool, remoteKey: UInt32, remoteAddress: UInt64,
                      _ iovecs: UnsafeMutablePointer<evpl_iovec>, _ count: Int, takeRef: Bool,
                      callback: RDMARequest.Callback?, privateData: UnsafeMutableRawPointer?) {
        func refuse(_ status: CInt, _ why: String) {
            Log.error("rdma", "evpl_rdma_\(write ? "write" : "read"): \(why)")
            if takeRef { for i in 0..<count { Iovec.release(iovecs + i) } }
            callback?(status, privateData)
        }
        guard supportsOneSided, let r = loop.rdma else { return refuse(ENOTSUP, "not an RDMA RC bind") }
        guard isLive else { return refuse(ENOTCONN, "the bind is closing") }
        guard count <= r.maxSge else { return refuse(EINVAL, "\(count) iovecs exceed rdmacm_max_sge (\(r.maxSge))") }
        guard let device = RDMASupport.device(for: rdma.id.flatMap { r.ops.pointee.id_device($0) }) else {
            return refuse(ENODEV, "no device")
        }
        let q = r.takeRequest()
        for i in 0..<count {
            guard let lkey = device.lkey(iovecs + i) else {
                for v in q.iovecs { Iovec.release(v) }
                r.recycle(q)
                return refuse(EFAULT, "memory not from evpl_iovec_alloc")
            }
            if !takeRef { Iovec.addref(iovecs + i) }
            q.iovecs.append(iovecs[i])
            q.lkeys.append(lkey)
        }
        q.write = write
        q.remoteKey = remoteKey
        q.remoteAddress = remoteAddress
        q.callback = callback
        q.privateData = privateData
        q.bind = Unmanaged.passUnretained(self)
        rdma.requests.append(Unmanaged.passRetained(q))  // released by finish
        markDirty()
    }

    /// evpl_rdma_get_address: the remote key and address of `iovec` on this bind's device.
    func rdmaAddress(_ iovec: UnsafePointer<evpl_iovec>) -> (UInt32, UInt64)? {
        guard supportsOneSided, let r = loop.rdma,
              let device = RDMASupport.device(for: rdma.id.flatMap { r.ops.pointee.id_device($0) }),
              let rkey = device.rkey(iovec) else { return nil }
        return (rkey, UInt64(UInt(bitPattern: iovec.pointee.data)))
    }
}
