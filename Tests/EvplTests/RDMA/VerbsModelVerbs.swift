// The verbs half of the model: devices, PDs, MRs, completion channels, CQs,
// SRQs, QPs, address handles, and the data path (post_send).  Every method
// here runs with the model's lock held (the table in VerbsModelOps takes it).
import CEvplRDMA
import Glibc

let WC_SUCCESS = Int32(CEVPL_WC_SUCCESS.rawValue)
let WC_LOC_LEN_ERR = Int32(CEVPL_WC_LOC_LEN_ERR.rawValue)
let WC_LOC_PROT_ERR = Int32(CEVPL_WC_LOC_PROT_ERR.rawValue)
let WC_WR_FLUSH_ERR = Int32(CEVPL_WC_WR_FLUSH_ERR.rawValue)
let WC_REM_ACCESS_ERR = Int32(CEVPL_WC_REM_ACCESS_ERR.rawValue)
let WC_RETRY_EXC_ERR = Int32(CEVPL_WC_RETRY_EXC_ERR.rawValue)
let WC_RNR_RETRY_EXC_ERR = Int32(CEVPL_WC_RNR_RETRY_EXC_ERR.rawValue)
/// ibv_wc_status values the seam's enum does not name (any nonzero is an error).
let WC_REM_INV_REQ_ERR: Int32 = 9
let WC_REM_OP_ERR: Int32 = 11

let OP_SEND = Int32(CEVPL_RDMA_SEND.rawValue)
let OP_SEND_WITH_IMM = Int32(CEVPL_RDMA_SEND_WITH_IMM.rawValue)
let OP_WRITE = Int32(CEVPL_RDMA_WRITE.rawValue)
let OP_WRITE_WITH_IMM = Int32(CEVPL_RDMA_WRITE_WITH_IMM.rawValue)
let OP_READ = Int32(CEVPL_RDMA_READ.rawValue)
let OP_RECV = Int32(CEVPL_RDMA_RECV.rawValue)
let OP_RECV_WITH_IMM = Int32(CEVPL_RDMA_RECV_WITH_IMM.rawValue)

/// What an error completion's opcode reads as (meaningless, as on hardware).
let SCRAMBLED_OPCODE: Int32 = 0x5a
/// ud_ah_attr[0] of the model's address handles.
let MODEL_AH_MAGIC: UInt64 = 0x4d4f_4445_4c30  // "MODEL0"

@inline(__always) private func ptr(_ a: UInt64) -> UnsafeMutableRawPointer {
    UnsafeMutableRawPointer(bitPattern: UInt(a))!
}

extension VerbsModel {
    // MARK: Devices

    func getDevices(_ list: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutableRawPointer?>?>?) -> Int32 {
        guard let list else {
            violation("get_devices: NULL list")
            return 0
        }
        let n = opts.deviceCount > 0 ? 1 : 0
        let array = UnsafeMutablePointer<UnsafeMutableRawPointer?>.allocate(capacity: 2)
        array[0] = n > 0 ? modelHandle(device) : nil
        array[1] = nil
        deviceLists.insert(UInt(bitPattern: array))
        list.pointee = array
        return Int32(n)
    }

    func freeDevices(_ list: UnsafeMutablePointer<UnsafeMutableRawPointer?>?) {
        guard let list, deviceLists.remove(UInt(bitPattern: list)) != nil else {
            return violation("free_devices: not a list from get_devices (or freed twice)")
        }
        list.deallocate()
    }

    func deviceName(_ d: UnsafeMutableRawPointer?) -> UnsafePointer<CChar>? {
        guard tok(d) == device else {
            violation("device_name: unknown device handle")
            return nil
        }
        return UnsafePointer(deviceName)
    }

    private func checkDevice(_ d: UnsafeMutableRawPointer?, _ op: String) -> Bool {
        guard tok(d) == device else {
            violation("\(op): unknown device handle")
            return false
        }
        return true
    }

    // MARK: PDs and MRs

    func allocPD(_ d: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? {
        guard checkDevice(d, "alloc_pd") else { errno = EINVAL; return nil }
        let pd = PD(newToken())
        pds[pd.token] = pd
        return modelHandle(pd.token)
    }

    func deallocPD(_ p: UnsafeMutableRawPointer?) -> Int32 {
        let t = tok(p)
        guard pds[t] != nil else {
            violation("dealloc_pd: unknown or destroyed PD")
            return EINVAL
        }
        let users = mrs.values.filter { $0.pd == t }.count + qps.values.filter { $0.pd == t }.count
            + srqs.values.filter { $0.pd == t }.count + ahs.values.filter { $0.pd == t }.count
        guard users == 0 else {
            violation("dealloc_pd: \(users) MRs/QPs/SRQs/AHs still use it (EBUSY)")
            return EBUSY
        }
        pds[t] = nil
        return 0
    }

    func regMR(_ p: UnsafeMutableRawPointer?, _ addr: UnsafeMutableRawPointer?, _ length: Int,
               _ lkey: UnsafeMutablePointer<UInt32>?, _ rkey: UnsafeMutablePointer<UInt32>?) -> UnsafeMutableRawPointer? {
        if let e = takeFailure(.regMR) { errno = e; return nil }
        guard pds[tok(p)] != nil else {
            violation("reg_mr: unknown or destroyed PD")
            errno = EINVAL
            return nil
        }
        guard let addr, length > 0 else {
            violation("reg_mr: NULL address or zero length")
            errno = EINVAL
            return nil
        }
        let n = nextMR
        nextMR += 1
        // Different ranges, so that an lkey used as an rkey (or the reverse) fails.
        let mr = MR(token: newToken(), pd: tok(p), addr: UInt64(UInt(bitPattern: addr)), length: UInt64(length),
                    lkey: 0x100 + n, rkey: 0x5a00_0000 + n)
        mrs[mr.token] = mr
        mrByLkey[mr.lkey] = mr
        mrByRkey[mr.rkey] = mr
        lkey?.pointee = mr.lkey
        rkey?.pointee = mr.rkey
        return modelHandle(mr.token)
    }

    func deregMR(_ m: UnsafeMutableRawPointer?) -> Int32 {
        guard let mr = mrs.removeValue(forKey: tok(m)) else {
            violation("dereg_mr: unknown or destroyed MR")
            return EINVAL
        }
        mrByLkey[mr.lkey] = nil
        mrByRkey[mr.rkey] = nil
        return 0
    }

    // MARK: Completion channels and CQs

    func createCompChannel(_ d: UnsafeMutableRawPointer?, _ fd: UnsafeMutablePointer<Int32>?) -> UnsafeMutableRawPointer? {
        guard checkDevice(d, "create_comp_channel") else { errno = EINVAL; return nil }
        let f = modelEventfd()
        guard f >= 0 else { return nil }
        let comp = Comp(token: newToken(), fd: f)
        comps[comp.token] = comp
        fd?.pointee = f
        return modelHandle(comp.token)
    }

    func destroyCompChannel(_ p: UnsafeMutableRawPointer?) -> Int32 {
        let t = tok(p)
        guard let comp = comps[t] else {
            violation("destroy_comp_channel: unknown or destroyed channel")
            return EINVAL
        }
        let users = cqs.values.filter { $0.comp == t }.count
        guard users == 0 else {
            violation("destroy_comp_channel: \(users) CQs still use it (EBUSY)")
            return EBUSY
        }
        close(comp.fd)
        comps[t] = nil
        return 0
    }

    func createCQ(_ d: UnsafeMutableRawPointer?, _ cqe: Int32, _ comp: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? {
        guard checkDevice(d, "create_cq") else { errno = EINVAL; return nil }
        if let e = takeFailure(.createCQ) { errno = e; return nil }
        guard cqe > 0 else {
            violation("create_cq: cqe \(cqe)")
            errno = EINVAL
            return nil
        }
        if comp != nil && comps[tok(comp)] == nil {
            violation("create_cq: unknown completion channel")
            errno = EINVAL
            return nil
        }
        let cq = CQ(token: newToken(), cqe: Int(cqe), comp: comp == nil ? nil : tok(comp))
        cqs[cq.token] = cq
        return modelHandle(cq.token)
    }

    func destroyCQ(_ p: UnsafeMutableRawPointer?) -> Int32 {
        let t = tok(p)
        guard cqs[t] != nil else {
            violation("destroy_cq: unknown or destroyed CQ")
            return EINVAL
        }
        let users = qps.values.filter { $0.sendCQ == t || $0.recvCQ == t }.count
        guard users == 0 else {
            violation("destroy_cq: \(users) QPs still use it (EBUSY)")
            return EBUSY
        }
        cqs[t] = nil
        return 0
    }

    func reqNotifyCQ(_ p: UnsafeMutableRawPointer?) -> Int32 {
        guard let cq = cqs[tok(p)] else {
            violation("req_notify_cq: unknown or destroyed CQ")
            return EINVAL
        }
        cq.armed = true
        return 0
    }

    func getCQEvent(_ p: UnsafeMutableRawPointer?) -> Int32 {
        guard let comp = comps[tok(p)] else {
            violation("get_cq_event: unknown or destroyed completion channel")
            return EINVAL
        }
        guard comp.pending > 0 else {
            modelDrain(comp.fd)
            return EAGAIN
        }
        comp.pending -= 1
        if comp.pending == 0 { modelDrain(comp.fd) }
        return 0
    }

    func pollCQ(_ p: UnsafeMutableRawPointer?, _ n: Int32, _ out: UnsafeMutablePointer<cevpl_rdma_wc>?) -> Int32 {
        guard let cq = cqs[tok(p)] else {
            violation("poll_cq: unknown or destroyed CQ")
            return -1
        }
        guard n >= 0, n == 0 || out != nil else {
            violation("poll_cq: bad arguments")
            return -1
        }
        var k = 0
        while k < Int(n), let e = cq.entries.popFirst() {
            out![k] = e.wc
            k += 1
            // A polled send completion frees its slot and those of the
            // unsignaled WRs before it.
            if let s = e.sendSeq, let q = qpByNum[e.wc.qp_num] {
                while let f = q.outstanding.first, f.0 <= s { _ = q.outstanding.popFirst() }
            }
        }
        return Int32(k)
    }

    func push(_ cqToken: Token, _ e: CQEntry) {
        guard let cq = cqs[cqToken] else {
            return violation("a completion for a destroyed CQ (qp \(e.wc.qp_num))")
        }
        if cq.entries.count >= cq.cqe {
            c.cqOverflows += 1
            if !cq.overflowed {
                cq.overflowed = true
                violation("CQ overflow: more than cqe \(cq.cqe) completions unpolled")
            }
        }
        cq.entries.append(e)
        if cq.armed {
            cq.armed = false
            if let ct = cq.comp, let comp = comps[ct] {
                comp.pending += 1
                c.cqNotifications += 1
                modelSignal(comp.fd)
            }
        }
    }

    // MARK: SRQs

    func createSRQ(_ p: UnsafeMutableRawPointer?, _ maxWR: UInt32, _ maxSGE: UInt32) -> UnsafeMutableRawPointer? {
        guard pds[tok(p)] != nil else {
            violation("create_srq: unknown or destroyed PD")
            errno = EINVAL
            return nil
        }
        guard maxWR > 0, maxSGE > 0 else {
            violation("create_srq: max_wr \(maxWR), max_sge \(maxSGE)")
            errno = EINVAL
            return nil
        }
        let srq = SRQ(token: newToken(), pd: tok(p), maxWR: Int(maxWR))
        srqs[srq.token] = srq
        return modelHandle(srq.token)
    }

    func destroySRQ(_ p: UnsafeMutableRawPointer?) -> Int32 {
        let t = tok(p)
        guard srqs[t] != nil else {
            violation("destroy_srq: unknown or destroyed SRQ")
            return EINVAL
        }
        let users = qps.values.filter { $0.srq == t }.count
        guard users == 0 else {
            violation("destroy_srq: \(users) QPs still use it (EBUSY)")
            return EBUSY
        }
        srqs[t] = nil
        return 0
    }

    func postSRQRecv(_ p: UnsafeMutableRawPointer?, _ wr: UnsafePointer<cevpl_rdma_recv_wr>?, _ n: Int32) -> Int32 {
        guard let srq = srqs[tok(p)] else {
            violation("post_srq_recv: unknown or destroyed SRQ")
            return EINVAL
        }
        if let e = takeFailure(.postRecv) { return e }
        guard n >= 0, n == 0 || wr != nil else {
            violation("post_srq_recv: bad arguments")
            return EINVAL
        }
        guard srq.queue.count + Int(n) <= srq.maxWR else {
            c.srqFull += 1
            return ENOMEM
        }
        for i in 0..<Int(n) { srq.queue.append(RecvWR(wrID: wr![i].wr_id, sge: wr![i].sge)) }
        c.recvsPosted += Int(n)
        if !opts.deferDelivery && !pending.isEmpty { _ = pump(limit: Int.max, force: false) }
        return 0
    }

    // MARK: QPs

    func createQP(_ i: UnsafeMutableRawPointer?, _ p: UnsafeMutableRawPointer?, _ attr: UnsafePointer<cevpl_rdma_qp_attr>?,
                  _ qpnOut: UnsafeMutablePointer<UInt32>?) -> UnsafeMutableRawPointer? {
        func fail(_ why: String) -> UnsafeMutableRawPointer? {
            violation("create_qp: " + why)
            errno = EINVAL
            return nil
        }
        guard let id = ids[tok(i)] else { return fail("unknown or destroyed id") }
        if let e = takeFailure(.createQP) { errno = e; return nil }
        guard pds[tok(p)] != nil else { return fail("unknown or destroyed PD") }
        guard let a = attr?.pointee else { return fail("NULL attributes") }
        guard id.qp == nil else { return fail("the id already has a QP") }
        guard id.hasDevice else { return fail("the id has no device yet (resolve or bind to an address first)") }
        guard (a.ud != 0) == id.ud else { return fail("QP type (ud \(a.ud)) does not match the id's port space") }
        guard cqs[tok(a.send_cq)] != nil, cqs[tok(a.recv_cq)] != nil else { return fail("unknown send or receive CQ") }
        if let s = a.srq {
            guard let srq = srqs[tok(s)] else { return fail("unknown SRQ") }
            guard srq.pd == tok(p) else { return fail("SRQ of another PD") }
        }
        guard a.max_send_wr > 0, a.max_send_sge > 0 else { return fail("max_send_wr/max_send_sge 0") }
        if a.srq == nil && a.max_recv_wr == 0 { return fail("no SRQ and max_recv_wr 0: the QP could never receive") }
        let q = QP(token: newToken(), qpn: nextQPN, id: id.token, pd: tok(p), attr: a)
        nextQPN += 1
        q.rts = q.ud
        qps[q.token] = q
        qpByNum[q.qpn] = q
        id.qp = q
        qpnOut?.pointee = q.qpn
        return modelHandle(q.token)
    }

    func destroyQP(_ i: UnsafeMutableRawPointer?) {
        guard let id = ids[tok(i)] else { return violation("destroy_qp: unknown or destroyed id") }
        guard id.qp != nil else { return violation("destroy_qp: the id has no QP") }
        destroyQP(of: id)
    }

    func destroyQP(of id: CMID) {
        guard let q = id.qp else { return }
        id.qp = nil
        qps[q.token] = nil
        qpByNum[q.qpn] = nil
        if q.queued > 0 { pending.removeAll { $0.qpn == q.qpn } }
        q.queued = 0
        if opts.cleanCQOnDestroyQP {
            for t in Set([q.sendCQ, q.recvCQ]) {
                guard let cq = cqs[t] else { continue }
                let before = cq.entries.count
                cq.entries.removeAll { $0.wc.qp_num == q.qpn }
                c.cqEntriesDiscarded += before - cq.entries.count
            }
        }
    }

    func postRecv(_ p: UnsafeMutableRawPointer?, _ wr: UnsafePointer<cevpl_rdma_recv_wr>?, _ n: Int32) -> Int32 {
        guard let q = qps[tok(p)] else {
            violation("post_recv: unknown or destroyed QP")
            return EINVAL
        }
        if let e = takeFailure(.postRecv) { return e }
        guard q.srq == nil else {
            violation("post_recv: the QP receives from an SRQ")
            return EINVAL
        }
        guard n >= 0, n == 0 || wr != nil else {
            violation("post_recv: bad arguments")
            return EINVAL
        }
        guard q.rq.count + Int(n) <= q.maxRecvWR else {
            c.srqFull += 1
            return ENOMEM
        }
        for i in 0..<Int(n) {
            let r = RecvWR(wrID: wr![i].wr_id, sge: wr![i].sge)
            if q.state == .error {
                completeRecv(q, r, status: WC_WR_FLUSH_ERR, opcode: OP_RECV, byteLen: 0, imm: 0, srcQP: 0)
            } else {
                q.rq.append(r)
            }
        }
        c.recvsPosted += Int(n)
        if !opts.deferDelivery && !pending.isEmpty { _ = pump(limit: Int.max, force: false) }
        return 0
    }

    // MARK: Address handles

    func createAH(_ p: UnsafeMutableRawPointer?, _ attr: UnsafePointer<UInt64>?) -> UnsafeMutableRawPointer? {
        guard pds[tok(p)] != nil else {
            violation("create_ah: unknown or destroyed PD")
            errno = EINVAL
            return nil
        }
        guard let attr, attr[0] == MODEL_AH_MAGIC, attr[1] == 1 else {
            violation("create_ah: attributes not from a UD ESTABLISHED event")
            errno = EINVAL
            return nil
        }
        let ah = AH(token: newToken(), pd: tok(p), attr: (0..<8).map { attr[$0] })
        ahs[ah.token] = ah
        return modelHandle(ah.token)
    }

    func destroyAH(_ p: UnsafeMutableRawPointer?) -> Int32 {
        guard ahs.removeValue(forKey: tok(p)) != nil else {
            violation("destroy_ah: unknown or destroyed AH")
            return EINVAL
        }
        return 0
    }

    // MARK: Posting sends

    func postSend(_ p: UnsafeMutableRawPointer?, _ wrs: UnsafePointer<cevpl_rdma_send_wr>?, _ n: Int32) -> Int32 {
        guard let q = qps[tok(p)] else {
            violation("post_send: unknown or destroyed QP")
            return EINVAL
        }
        if let e = takeFailure(.postSend) { return e }
        guard n >= 0, n == 0 || wrs != nil else {
            violation("post_send: bad arguments")
            return EINVAL
        }
        c.maxPostBatch = max(c.maxPostBatch, Int(n))
        // All or nothing: the seam reports no bad_wr, so a refused chain posts nothing.
        var totals: [Int] = []
        totals.reserveCapacity(Int(n))
        for i in 0..<Int(n) {
            let wr = wrs![i]
            func refuse(_ why: String) -> Int32 {
                violation("post_send (qp \(q.qpn), wr \(i) of \(n)): " + why)
                return EINVAL
            }
            guard (OP_SEND...OP_READ).contains(wr.opcode) else { return refuse("opcode \(wr.opcode)") }
            guard wr.nsge >= 0, Int(wr.nsge) <= q.maxSendSGE, wr.nsge == 0 || wr.sge != nil else {
                return refuse("nsge \(wr.nsge) (max_send_sge \(q.maxSendSGE))")
            }
            var total = 0
            for k in 0..<Int(wr.nsge) { total += Int(wr.sge![k].length) }
            if wr.flags & CEVPL_RDMA_SEND_INLINE != 0 {
                guard total <= q.maxInline else { return refuse("INLINE with \(total) bytes > max_inline \(q.maxInline)") }
                guard wr.opcode != OP_READ else { return refuse("INLINE READ") }
            }
            if q.ud {
                guard wr.opcode == OP_SEND || wr.opcode == OP_SEND_WITH_IMM else { return refuse("UD opcode \(wr.opcode)") }
                guard ahs[tok(wr.ah)] != nil else { return refuse("UD send without a live address handle") }
            } else if q.state != .error && !q.rts {
                return refuse("RC QP not connected yet (not RTS: active side before its ESTABLISHED event)")
            }
            totals.append(total)
        }
        if opts.strictSendQueue && q.outstanding.count + Int(n) > q.maxSendWR {
            c.sendQueueFull += 1
            return ENOMEM
        }
        for i in 0..<Int(n) {
            let wr = wrs![i]
            let signaled = wr.flags & CEVPL_RDMA_SEND_SIGNALED != 0
            let seq = q.nextSeq
            q.nextSeq += 1
            q.outstanding.append((seq, signaled))
            let sges = (0..<Int(wr.nsge)).map { wr.sge![$0] }
            var inlineData: [UInt8]?
            if wr.flags & CEVPL_RDMA_SEND_INLINE != 0 {
                // Inline data is copied into the WQE at post time: the buffer
                // may be reused at once and need not be registered.
                var d = [UInt8](repeating: 0, count: totals[i])
                d.withUnsafeMutableBytes { b in
                    var off = 0
                    for s in sges where s.length > 0 {
                        memcpy(b.baseAddress! + off, ptr(s.addr), Int(s.length))
                        off += Int(s.length)
                    }
                }
                inlineData = d
            }
            var w = SendWR(qpn: q.qpn, seq: seq, wrID: wr.wr_id, opcode: wr.opcode, signaled: signaled, imm: wr.imm,
                           sges: sges, inlineData: inlineData, total: totals[i], remoteAddr: wr.remote_addr,
                           rkey: wr.rkey, ah: tok(wr.ah), remoteQPN: wr.remote_qpn, remoteQkey: wr.remote_qkey)
            c.sendsPosted += 1
            if q.state == .error && q.queued == 0 {
                completeSend(q, w, status: WC_WR_FLUSH_ERR)
            } else if opts.deferDelivery || q.queued > 0 || !execute(q, &w) {
                pending.append(w)
                q.queued += 1
            }
        }
        return 0
    }

    // MARK: The data path

    /// Processes pending sends in order.  `force`: also when deferDelivery is set.
    func pump(limit: Int, force: Bool) -> Int {
        guard !pending.isEmpty, force || !opts.deferDelivery else { return 0 }
        let items = Array(pending.elements)
        pending.removeAll()
        var remaining: [SendWR] = []
        var blocked = Set<UInt32>()
        var done = 0
        for var w in items {
            guard let q = qpByNum[w.qpn] else { continue }  // QP destroyed: its sends vanish
            if done >= limit || blocked.contains(w.qpn) {
                remaining.append(w)
                continue
            }
            if execute(q, &w) {
                done += 1
            } else {
                blocked.insert(w.qpn)
                remaining.append(w)
            }
        }
        for w in remaining { pending.append(w) }
        for q in qps.values { q.queued = 0 }
        for w in pending.elements { qpByNum[w.qpn]?.queued += 1 }
        // Waiting sends of a QP that went to error meanwhile are flushed, in order.
        let dead = pending.elements.filter { qpByNum[$0.qpn]?.state == .error }
        if !dead.isEmpty {
            pending.removeAll { qpByNum[$0.qpn]?.state == .error }
            for w in dead {
                guard let q = qpByNum[w.qpn] else { continue }
                q.queued -= 1
                completeSend(q, w, status: WC_WR_FLUSH_ERR)
            }
        }
        return done
    }

    /// One send; false when it must wait for a receive (!strictRNR).
    func execute(_ q: QP, _ w: inout SendWR) -> Bool {
        if q.state == .error {
            completeSend(q, w, status: WC_WR_FLUSH_ERR)
            return true
        }
        if q.broken {
            completeSend(q, w, status: WC_RETRY_EXC_ERR)
            setError(q)
            return true
        }
        if w.inlineData == nil && !checkLocal(q, w.sges) {
            c.protectionErrors += 1
            completeSend(q, w, status: WC_LOC_PROT_ERR)
            if !q.ud { setError(q) }
            return true
        }
        if q.ud {
            deliverUD(q, w)
            return true
        }
        guard let pn = q.peerQPN, let p = qpByNum[pn], p.state != .error, !p.broken else {
            // Nobody answers: the transport retries run out.
            completeSend(q, w, status: WC_RETRY_EXC_ERR)
            setError(q)
            return true
        }
        switch w.opcode {
        case OP_SEND, OP_SEND_WITH_IMM:
            guard let r = frontRecv(p) else { return rnr(q, &w) }
            _ = takeRecv(p)
            guard checkRecv(p, r.sge) else {
                c.protectionErrors += 1
                completeRecv(p, r, status: WC_LOC_PROT_ERR, opcode: OP_RECV, byteLen: 0, imm: 0, srcQP: 0)
                completeSend(q, w, status: WC_REM_OP_ERR)
                setError(p)
                setError(q)
                return true
            }
            guard Int(r.sge.length) >= w.total else {
                c.lengthErrors += 1
                completeRecv(p, r, status: WC_LOC_LEN_ERR, opcode: OP_RECV, byteLen: 0, imm: 0, srcQP: 0)
                completeSend(q, w, status: WC_REM_INV_REQ_ERR)
                setError(p)
                setError(q)
                return true
            }
            gather(w, into: ptr(r.sge.addr))
            c.messagesDelivered += 1
            c.bytesDelivered += w.total
            let imm = w.opcode == OP_SEND_WITH_IMM
            completeRecv(p, r, status: WC_SUCCESS, opcode: imm ? OP_RECV_WITH_IMM : OP_RECV, byteLen: UInt32(w.total),
                         imm: imm ? w.imm : 0, srcQP: 0)
            if w.signaled { completeSend(q, w, status: WC_SUCCESS) }
            return true
        case OP_WRITE, OP_WRITE_WITH_IMM:
            guard let mr = remoteMR(p, w.rkey, w.remoteAddr, w.total) else {
                c.remoteAccessErrors += 1
                completeSend(q, w, status: WC_REM_ACCESS_ERR)
                setError(q)
                setError(p)
                return true
            }
            _ = mr
            if w.opcode == OP_WRITE_WITH_IMM {
                guard let r = frontRecv(p) else { return rnr(q, &w) }
                _ = takeRecv(p)
                gather(w, into: ptr(w.remoteAddr))
                // byte_len of an RDMA write with immediate: the bytes written (mlx5).
                completeRecv(p, r, status: WC_SUCCESS, opcode: OP_RECV_WITH_IMM, byteLen: UInt32(w.total), imm: w.imm,
                             srcQP: 0)
            } else {
                gather(w, into: ptr(w.remoteAddr))
            }
            c.bytesDelivered += w.total
            if w.signaled { completeSend(q, w, status: WC_SUCCESS) }
            return true
        case OP_READ:
            guard remoteMR(p, w.rkey, w.remoteAddr, w.total) != nil else {
                c.remoteAccessErrors += 1
                completeSend(q, w, status: WC_REM_ACCESS_ERR)
                setError(q)
                setError(p)
                return true
            }
            var off = 0
            for s in w.sges where s.length > 0 {
                memmove(ptr(s.addr), ptr(w.remoteAddr + UInt64(off)), Int(s.length))
                off += Int(s.length)
            }
            if w.signaled { completeSend(q, w, status: WC_SUCCESS) }
            return true
        default:
            completeSend(q, w, status: WC_LOC_PROT_ERR)
            setError(q)
            return true
        }
    }

    private func rnr(_ q: QP, _ w: inout SendWR) -> Bool {
        if opts.strictRNR {
            c.rnrCount += 1
            completeSend(q, w, status: WC_RNR_RETRY_EXC_ERR)
            setError(q)
            return true
        }
        if !w.waited {
            w.waited = true
            c.rnrWaits += 1
        }
        return false
    }

    private func deliverUD(_ q: QP, _ w: SendWR) {
        guard w.total <= Int(opts.pathMTU) else {
            c.lengthErrors += 1
            completeSend(q, w, status: WC_LOC_LEN_ERR)
            return
        }
        defer { if w.signaled { completeSend(q, w, status: WC_SUCCESS) } }
        guard let dst = qpByNum[w.remoteQPN], dst.ud, dst.qkey == w.remoteQkey, dst.state != .error else {
            c.udMisdirected += 1
            return
        }
        guard let r = takeRecv(dst) else {
            c.udDrops += 1
            return
        }
        guard checkRecv(dst, r.sge) else {
            c.protectionErrors += 1
            completeRecv(dst, r, status: WC_LOC_PROT_ERR, opcode: OP_RECV, byteLen: 0, imm: 0, srcQP: q.qpn)
            return
        }
        let grh = Int(CEVPL_RDMA_GRH_SIZE)
        guard Int(r.sge.length) >= grh + w.total else {
            c.lengthErrors += 1
            completeRecv(dst, r, status: WC_LOC_LEN_ERR, opcode: OP_RECV, byteLen: 0, imm: 0, srcQP: q.qpn)
            return
        }
        memset(ptr(r.sge.addr), 0, grh)
        gather(w, into: ptr(r.sge.addr) + grh)
        c.messagesDelivered += 1
        c.bytesDelivered += w.total
        let imm = w.opcode == OP_SEND_WITH_IMM
        completeRecv(dst, r, status: WC_SUCCESS, opcode: imm ? OP_RECV_WITH_IMM : OP_RECV,
                     byteLen: UInt32(grh + w.total), imm: imm ? w.imm : 0, srcQP: q.qpn)
    }

    private func frontRecv(_ p: QP) -> RecvWR? {
        if let s = p.srq {
            guard let srq = srqs[s] else { return nil }
            return srq.queue.first
        }
        return p.rq.first
    }

    private func takeRecv(_ p: QP) -> RecvWR? {
        if let s = p.srq { return srqs[s]?.queue.popFirst() }
        return p.rq.popFirst()
    }

    /// Every sge inside an MR of the QP's PD with that lkey.
    private func checkLocal(_ q: QP, _ sges: [cevpl_rdma_sge]) -> Bool {
        for s in sges where s.length > 0 {
            guard let mr = mrByLkey[s.lkey], mr.pd == q.pd, mr.contains(s.addr, UInt64(s.length)) else { return false }
        }
        return true
    }

    private func checkRecv(_ p: QP, _ s: cevpl_rdma_sge) -> Bool {
        guard s.length > 0 else { return true }
        guard let mr = mrByLkey[s.lkey], mr.pd == p.pd, mr.contains(s.addr, UInt64(s.length)) else { return false }
        return true
    }

    private func remoteMR(_ p: QP, _ rkey: UInt32, _ addr: UInt64, _ length: Int) -> MR? {
        guard let mr = mrByRkey[rkey], mr.pd == p.pd, mr.contains(addr, UInt64(length)) else { return nil }
        return mr
    }

    private func gather(_ w: SendWR, into dst: UnsafeMutableRawPointer) {
        if let d = w.inlineData {
            if !d.isEmpty { d.withUnsafeBytes { _ = memmove(dst, $0.baseAddress!, d.count) } }
            return
        }
        var off = 0
        for s in w.sges where s.length > 0 {
            memmove(dst + off, ptr(s.addr), Int(s.length))
            off += Int(s.length)
        }
    }

    func completeSend(_ q: QP, _ w: SendWR, status: Int32) {
        var wc = cevpl_rdma_wc()
        wc.wr_id = w.wrID
        wc.status = status
        wc.qp_num = q.qpn
        if status == WC_SUCCESS {
            switch w.opcode {
            case OP_SEND, OP_SEND_WITH_IMM: wc.opcode = OP_SEND
            case OP_WRITE, OP_WRITE_WITH_IMM: wc.opcode = OP_WRITE
            default:
                wc.opcode = OP_READ
                wc.byte_len = UInt32(w.total)
            }
        } else {
            if status == WC_RETRY_EXC_ERR { c.retryErrors += 1 }
            if status == WC_WR_FLUSH_ERR { c.flushErrors += 1 }
            wc.opcode = opts.scrambleErrorCompletions ? SCRAMBLED_OPCODE : w.opcode
            wc.byte_len = opts.scrambleErrorCompletions ? 0xdead : 0
        }
        push(q.sendCQ, CQEntry(wc: wc, sendSeq: w.seq))
    }

    func completeRecv(_ p: QP, _ r: RecvWR, status: Int32, opcode: Int32, byteLen: UInt32, imm: UInt32, srcQP: UInt32) {
        var wc = cevpl_rdma_wc()
        wc.wr_id = r.wrID
        wc.status = status
        wc.qp_num = p.qpn
        if status == WC_SUCCESS {
            wc.opcode = opcode
            wc.byte_len = byteLen
            wc.imm = imm
            wc.src_qp = srcQP
        } else {
            if status == WC_WR_FLUSH_ERR { c.flushErrors += 1 }
            wc.opcode = opts.scrambleErrorCompletions ? SCRAMBLED_OPCODE : opcode
            wc.byte_len = opts.scrambleErrorCompletions ? 0xdead : 0
        }
        push(p.recvCQ, CQEntry(wc: wc, sendSeq: nil))
    }

    /// The QP enters the error state: its waiting sends and its own
    /// receive queue are flushed (an SRQ is not).
    func setError(_ q: QP?) {
        guard let q, q.state != .error else { return }
        q.state = .error
        if q.queued > 0 {
            let mine = pending.elements.filter { $0.qpn == q.qpn }
            pending.removeAll { $0.qpn == q.qpn }
            q.queued = 0
            for w in mine { completeSend(q, w, status: WC_WR_FLUSH_ERR) }
        }
        while let r = q.rq.popFirst() {
            completeRecv(q, r, status: WC_WR_FLUSH_ERR, opcode: OP_RECV, byteLen: 0, imm: 0, srcQP: 0)
        }
    }
}
