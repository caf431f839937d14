// A deterministic in-memory RDMA fabric behind the seam (CEvplRDMA.h): one
// device, "model0", on which every IP address is reachable.  The engine's
// RDMA transports run over it exactly as over rdma-core: the tests install
// the table with `VerbsModel.install()` before the first RDMA use.
//
// What it models:
// - rdma_cm: event channels (eventfd, readable while events are queued),
//   ids, bind/listen (EADDRINUSE per port space, a wildcard overlapping
//   everything, port 0 = ephemeral), address and route resolution (any
//   address resolves; a connecting id gets an ephemeral port on the source
//   address, 127.0.0.1 / ::1 when none is given), migrate_id, RC
//   connect/accept/reject/disconnect (the passive side's ESTABLISHED comes
//   once the active side has taken its own, as the RTU does), UD SIDR
//   (ESTABLISHED carries the target QP, the qkey rdma_cm uses for UD,
//   RDMA_UDP_QKEY, and address-handle attributes only this model reads),
//   destroy_id as an implicit disconnect, REJECTED status 8 (no listener) or
//   28 (rdma_reject), DISCONNECTED status 0 (ETIMEDOUT after killPeer).
// - verbs: PDs, MRs (keys unique and nonzero, lkeys and rkeys in disjoint
//   ranges), completion channels (eventfd; one event per arm, and, as with
//   ibv, arming does not report completions already queued), CQs (FIFO,
//   overflow counted), SRQs and own receive queues (full: ENOMEM), RC and UD
//   queue pairs (an active RC QP can send only after its ESTABLISHED was
//   taken), address handles.
// - data movement is memcpy between the real process addresses of the work
//   requests, when the send is processed (inline data: when posted), after
//   validating every sge against the MRs (lkey and PD: LOC_PROT_ERR) and
//   every remote range against the peer's MRs (rkey: REM_ACCESS_ERR).
// - send-queue slots as on hardware: a WR holds its slot until a signaled
//   completion at or after it is polled; posting past max_send_wr returns
//   ENOMEM (counted in sendQueueFull).  A refused chain posts nothing.
// - receiver not ready: RNR_RETRY_EXC_ERR and `rnrCount` (strictRNR), or the
//   send waits for a receive.  A receive too small: LOC_LEN_ERR there,
//   REM_INV_REQ_ERR (9) at the sender, both QPs in error.
// - a QP in error completes everything posted to it with WR_FLUSH_ERR and
//   flushes its own receive queue (an SRQ is not flushed).
// - error completions carry a meaningless opcode and byte_len (only wr_id,
//   status and qp_num are valid on hardware too).
// - destroy_qp discards that QP's unpolled completions from its CQs (as
//   mlx5 does), counted in `cqEntriesDiscarded`.
// - UD: payload after a zeroed 40-byte GRH, byte_len = 40 + payload, src_qp
//   = the sender; no receive posted: dropped (`udDrops`); wrong QP or qkey:
//   dropped (`udMisdirected`); payload > path MTU: LOC_LEN_ERR at the sender.
//
// Everything happens synchronously inside the call that causes it, unless
// `deferDelivery` is set: then sends wait in a FIFO until the test calls
// `deliverPending()`.  Misuse of the seam (unknown or destroyed handles,
// destroy order, posting to an unconnected QP, ...) is recorded in
// `violations`.  Everything runs under one lock, so loops on several
// threads may share the fabric.
import CEvpl
import CEvplLinux
import CEvplRDMA
@testable import Evpl
import Foundation
import Glibc

/// FIFO with amortised O(1) pops.
struct ModelFifo<T> {
    private var items: [T] = []
    private var head = 0

    var count: Int { items.count - head }
    var isEmpty: Bool { head == items.count }
    var first: T? { head < items.count ? items[head] : nil }
    var elements: ArraySlice<T> { items[head...] }

    mutating func append(_ x: T) { items.append(x) }

    mutating func popFirst() -> T? {
        guard head < items.count else { return nil }
        let x = items[head]
        head += 1
        if head == items.count {
            items.removeAll(keepingCapacity: true)
            head = 0
        } else if head > 4096 && head * 2 > items.count {
            items.removeFirst(head)
            head = 0
        }
        return x
    }

    mutating func removeAll() {
        items.removeAll()
        head = 0
    }

    mutating func removeAll(where predicate: (T) -> Bool) {
        var kept: [T] = []
        kept.reserveCapacity(count)
        for x in items[head...] where !predicate(x) { kept.append(x) }
        items = kept
        head = 0
    }
}

final class VerbsModel {
    static let shared = VerbsModel()

    // MARK: Options (set by tests; `reset()` restores the defaults)

    /// A send finding no posted receive fails with RNR_RETRY_EXC_ERR (and the
    /// sender's QP goes to error), counted in `rnrCount`.  false: the send
    /// waits until a receive is posted (infinite RNR retry).
    var strictRNR: Bool { get { locked { opts.strictRNR } } set { locked { opts.strictRNR = newValue } } }
    /// Sends wait in a FIFO until `deliverPending()`.
    var deferDelivery: Bool { get { locked { opts.deferDelivery } } set { locked { opts.deferDelivery = newValue } } }
    /// Posting past max_send_wr outstanding returns ENOMEM (as hardware does).
    var strictSendQueue: Bool { get { locked { opts.strictSendQueue } } set { locked { opts.strictSendQueue = newValue } } }
    /// Error completions get a meaningless opcode and byte_len.
    var scrambleErrorCompletions: Bool {
        get { locked { opts.scrambleErrorCompletions } } set { locked { opts.scrambleErrorCompletions = newValue } }
    }
    /// destroy_qp drops that QP's unpolled completions from its CQs.
    var cleanCQOnDestroyQP: Bool {
        get { locked { opts.cleanCQOnDestroyQP } } set { locked { opts.cleanCQOnDestroyQP = newValue } }
    }
    /// path_mtu of a resolved id, and the largest UD payload.
    var pathMTU: UInt32 { get { locked { opts.pathMTU } } set { locked { opts.pathMTU = newValue } } }
    /// get_devices reports this many devices (0 or 1).
    var deviceCount: Int { get { locked { opts.deviceCount } } set { locked { opts.deviceCount = newValue } } }

    struct Options {
        var strictRNR = true
        var deferDelivery = false
        var strictSendQueue = true
        var scrambleErrorCompletions = true
        var cleanCQOnDestroyQP = true
        var pathMTU: UInt32 = 4096
        var deviceCount = 1
    }

    // MARK: Counters

    struct Counters: Equatable {
        var rnrCount = 0            // sends that found no receive (strictRNR)
        var rnrWaits = 0            // sends that waited for a receive (!strictRNR)
        var udDrops = 0             // UD datagrams dropped: no receive posted
        var udMisdirected = 0       // UD datagrams to no such QP or a wrong qkey
        var cqOverflows = 0         // completions added to a full CQ
        var sendQueueFull = 0       // post_send refused: max_send_wr outstanding
        var srqFull = 0             // post_srq_recv/post_recv refused: queue full
        var lengthErrors = 0        // receive buffer too small (or UD payload > MTU)
        var protectionErrors = 0    // sge outside an MR of the QP's PD / wrong lkey
        var remoteAccessErrors = 0  // WRITE/READ outside the peer's MRs / wrong rkey
        var retryErrors = 0         // RETRY_EXC_ERR completions (peer gone)
        var flushErrors = 0         // FLUSH_ERR completions
        var cqEntriesDiscarded = 0  // unpolled completions dropped by destroy_qp
        var sendsPosted = 0
        var recvsPosted = 0
        var messagesDelivered = 0   // SEND/SEND_WITH_IMM that consumed a receive
        var bytesDelivered = 0      // payload bytes of those, plus WRITE bytes
        var cmEvents = 0
        var cqNotifications = 0
        var maxPostBatch = 0        // largest chain given to one post_send
    }

    var counters: Counters { locked { c } }
    var rnrCount: Int { counters.rnrCount }
    var udDrops: Int { counters.udDrops }
    var cqOverflows: Int { counters.cqOverflows }
    /// Misuse of the seam the model detected (each a sentence).
    var violations: [String] { locked { violationLog } }

    /// Live objects of each kind.
    struct Live: Equatable, CustomStringConvertible {
        var pds = 0, mrs = 0, comps = 0, cqs = 0, srqs = 0, qps = 0, ahs = 0
        var channels = 0, ids = 0, deviceLists = 0
        var description: String {
            "pds \(pds) mrs \(mrs) comps \(comps) cqs \(cqs) srqs \(srqs) qps \(qps) ahs \(ahs) "
                + "channels \(channels) ids \(ids) deviceLists \(deviceLists)"
        }
    }

    var live: Live {
        locked {
            Live(pds: pds.count, mrs: mrs.count, comps: comps.count, cqs: cqs.count, srqs: srqs.count,
                 qps: qps.count, ahs: ahs.count, channels: channels.count, ids: ids.count,
                 deviceLists: deviceLists.count)
        }
    }

    /// Receives waiting in each live SRQ (creation order).
    var srqOutstanding: [Int] { locked { srqs.values.sorted { $0.token < $1.token }.map { $0.queue.count } } }
    /// Whether `rkey` is the remote key of a registered MR (and the MR covers `address`).
    func isRemoteKey(_ rkey: UInt32, covering address: UInt64 = 0, length: Int = 0) -> Bool {
        locked {
            guard let mr = mrByRkey[rkey] else { return false }
            return length == 0 || mr.contains(address, UInt64(length))
        }
    }
    /// Sends waiting for `deliverPending()` (or for a receive, with !strictRNR).
    var pendingCount: Int { locked { pending.count } }
    /// Connected RC queue-pair pairs (active qpn, passive qpn), oldest first.
    var rcConnections: [(active: UInt32, passive: UInt32)] {
        locked {
            ids.values.filter { $0.isActive && $0.state == .connected && !$0.ud }
                .sorted { $0.token < $1.token }
                .compactMap { id -> (UInt32, UInt32)? in
                    guard let q = id.qp, let p = q.peerQPN else { return nil }
                    return (q.qpn, p)
                }
        }
    }
    /// Each live QP's number and kind, oldest first.
    var queuePairs: [(qpn: UInt32, ud: Bool, error: Bool)] {
        locked { qps.values.sorted { $0.qpn < $1.qpn }.map { ($0.qpn, $0.ud, $0.state == .error) } }
    }

    // MARK: Fault injection

    enum FailPoint: Hashable { case regMR, postSend, postRecv, createQP, createCQ, createID, connect, accept }

    /// The next call of `point` fails with `errno` (handle-returning calls: NULL with errno set).
    func failNext(_ point: FailPoint, errno e: Int32) { locked { failures[point] = e } }

    /// Takes an armed failure (called with the lock held).
    func takeFailure(_ point: FailPoint) -> Int32? {
        guard let e = failures[point] else { return nil }
        failures[point] = nil
        return e
    }

    // MARK: State

    let lock = NSLock()
    var opts = Options()
    var c = Counters()
    var violationLog: [String] = []
    var failures: [FailPoint: Int32] = [:]

    var nextToken: UInt = 0x7a00_0000_0000
    var nextQPN: UInt32 = 0x100
    var nextMR: UInt32 = 1
    var nextEphemeralPort: UInt16 = 40000

    let device: Token
    let deviceName: UnsafeMutablePointer<CChar>
    var deviceLists: Set<UInt> = []

    var pds: [Token: PD] = [:]
    var mrs: [Token: MR] = [:]
    var mrByLkey: [UInt32: MR] = [:]
    var mrByRkey: [UInt32: MR] = [:]
    var comps: [Token: Comp] = [:]
    var cqs: [Token: CQ] = [:]
    var srqs: [Token: SRQ] = [:]
    var qps: [Token: QP] = [:]
    var qpByNum: [UInt32: QP] = [:]
    var ahs: [Token: AH] = [:]
    var channels: [Token: Channel] = [:]
    var ids: [Token: CMID] = [:]
    /// Sends not yet processed, in posting order (deferDelivery, or waiting for a receive).
    var pending = ModelFifo<SendWR>()

    private init() {
        deviceName = strdup("model0")
        device = 0x7a00_0000_0000 - 0x40
    }

    @inline(__always)
    func locked<R>(_ body: () throws -> R) rethrows -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }

    func newToken() -> Token {
        nextToken += 0x40
        return nextToken
    }

    func violation(_ text: String) {
        violationLog.append(text)
    }

    // MARK: Installing

    private static let table: UnsafeMutablePointer<cevpl_rdma_ops> = {
        let t = UnsafeMutablePointer<cevpl_rdma_ops>.allocate(capacity: 1)
        t.initialize(to: VerbsModel.makeOps())
        return t
    }()
    private static var installed = false
    private static let installLock = NSLock()

    /// The model's table.
    static var ops: UnsafePointer<cevpl_rdma_ops> { UnsafePointer(table) }

    /// Builds the table once and makes the engine use it (RDMASupport.useForTesting).
    static func install() {
        installLock.lock()
        defer { installLock.unlock() }
        guard !installed else { return }
        installed = true
        RDMASupport.useForTesting(UnsafePointer(table))
    }

    /// Between tests: options, counters, violations, armed failures and
    /// pending sends.  Live objects are kept (the engine may hold the
    /// device, PDs and MRs process-wide); compare `live` before and after.
    func reset() {
        locked {
            opts = Options()
            c = Counters()
            violationLog = []
            failures = [:]
            pending.removeAll()
            for q in qps.values { q.queued = 0 }
        }
    }

    // MARK: Test-driven progress and faults

    /// Processes up to `limit` pending sends in posting order (a QP whose head
    /// is waiting for a receive keeps its later sends waiting too).  Returns
    /// the number processed.
    @discardableResult
    func deliverPending(limit: Int = Int.max) -> Int {
        locked { pump(limit: limit, force: true) }
    }

    /// The connection of queue pair `qpn` breaks as after a peer's death:
    /// each side's first pending send completes with RETRY_EXC_ERR, the rest
    /// and everything posted later with FLUSH_ERR; both ids get DISCONNECTED
    /// (with `status`, as rdma_cm reports a DREQ that timed out) unless
    /// `events` is false.  Returns false if `qpn` is not a connected RC QP.
    @discardableResult
    func killPeer(of qpn: UInt32, status: Int32 = ETIMEDOUT, events: Bool = true) -> Bool {
        locked {
            guard let q = qpByNum[qpn], !q.ud else { return false }
            var sides = [q]
            if let p = q.peerQPN, let peer = qpByNum[p] { sides.append(peer) }
            for side in sides {
                if let first = pending.elements.first(where: { $0.qpn == side.qpn }) {
                    pending.removeAll { $0.qpn == side.qpn && $0.seq == first.seq }
                    side.queued -= 1
                    completeSend(side, first, status: Int32(CEVPL_WC_RETRY_EXC_ERR.rawValue))
                }
                setError(side)
            }
            guard events else { return true }
            for side in sides {
                guard let id = ids[side.id] else { continue }
                if id.state == .connected {
                    id.state = .disconnected
                    queueDisconnected(id, status: status)
                }
            }
            return true
        }
    }

    /// The link under `qpn`'s connection fails silently (no rdma_cm event):
    /// nothing is reported until a side sends, whose send then completes with
    /// RETRY_EXC_ERR (and its QP is in error).
    @discardableResult
    func loseConnection(of qpn: UInt32) -> Bool {
        locked {
            guard let q = qpByNum[qpn], !q.ud else { return false }
            q.broken = true
            if let p = q.peerQPN, let peer = qpByNum[p] { peer.broken = true }
            return true
        }
    }
}

typealias Token = UInt

/// The qkey rdma_cm gives UD queue pairs of RDMA_PS_UDP ids (and answers
/// SIDR requests with, whatever the accept's qkey): librdmacm's RDMA_UDP_QKEY.
let RDMA_UDP_QKEY: UInt32 = 0x0123_4567

@inline(__always) func modelHandle(_ t: Token) -> UnsafeMutableRawPointer { UnsafeMutableRawPointer(bitPattern: t)! }
@inline(__always) func tok(_ p: UnsafeMutableRawPointer?) -> Token { p.map { UInt(bitPattern: $0) } ?? 0 }
@inline(__always) func tok(_ p: UnsafeRawPointer?) -> Token { p.map { UInt(bitPattern: $0) } ?? 0 }

// MARK: Objects

extension VerbsModel {
    final class PD {
        let token: Token
        init(_ t: Token) { token = t }
    }

    final class MR {
        let token: Token, pd: Token
        let addr: UInt64, length: UInt64
        let lkey: UInt32, rkey: UInt32
        init(token: Token, pd: Token, addr: UInt64, length: UInt64, lkey: UInt32, rkey: UInt32) {
            self.token = token; self.pd = pd; self.addr = addr; self.length = length; self.lkey = lkey; self.rkey = rkey
        }
        func contains(_ a: UInt64, _ n: UInt64) -> Bool {
            a >= addr && n <= length && a - addr <= length - n
        }
    }

    final class Comp {
        let token: Token, fd: Int32
        var pending = 0
        init(token: Token, fd: Int32) { self.token = token; self.fd = fd }
    }

    struct CQEntry {
        var wc: cevpl_rdma_wc
        var sendSeq: UInt64?    // send completions: the WR's slot number
    }

    final class CQ {
        let token: Token, cqe: Int, comp: Token?
        var entries = ModelFifo<CQEntry>()
        var armed = false
        var overflowed = false
        init(token: Token, cqe: Int, comp: Token?) { self.token = token; self.cqe = cqe; self.comp = comp }
    }

    struct RecvWR {
        var wrID: UInt64
        var sge: cevpl_rdma_sge
    }

    final class SRQ {
        let token: Token, pd: Token, maxWR: Int
        var queue = ModelFifo<RecvWR>()
        init(token: Token, pd: Token, maxWR: Int) { self.token = token; self.pd = pd; self.maxWR = maxWR }
    }

    enum QPState { case ready, error }

    final class QP {
        let token: Token, qpn: UInt32, id: Token, pd: Token, ud: Bool
        let sendCQ: Token, recvCQ: Token, srq: Token?
        let maxSendWR: Int, maxRecvWR: Int, maxSendSGE: Int, maxInline: Int
        let qkey: UInt32
        var rq = ModelFifo<RecvWR>()
        var state = QPState.ready
        /// Ready to send (RTS): UD and passive RC at creation/accept, active RC
        /// once get_event has returned its ESTABLISHED.
        var rts = false
        var broken = false
        var peerQPN: UInt32?
        /// Send-queue slots: (slot number, signaled), oldest first.
        var outstanding = ModelFifo<(UInt64, Bool)>()
        var nextSeq: UInt64 = 1
        /// Sends of this QP in `pending`.
        var queued = 0
        init(token: Token, qpn: UInt32, id: Token, pd: Token, attr: cevpl_rdma_qp_attr) {
            self.token = token; self.qpn = qpn; self.id = id; self.pd = pd
            ud = attr.ud != 0
            sendCQ = tok(attr.send_cq); recvCQ = tok(attr.recv_cq)
            srq = attr.srq.map { UInt(bitPattern: $0) }
            maxSendWR = Int(attr.max_send_wr); maxRecvWR = Int(attr.max_recv_wr)
            maxSendSGE = Int(attr.max_send_sge); maxInline = Int(attr.max_inline)
            qkey = ud ? RDMA_UDP_QKEY : 0
        }
    }

    final class AH {
        let token: Token, pd: Token, attr: [UInt64]
        init(token: Token, pd: Token, attr: [UInt64]) { self.token = token; self.pd = pd; self.attr = attr }
    }

    final class Channel {
        let token: Token, fd: Int32
        var events = ModelFifo<cevpl_rdma_cm_event>()
        init(token: Token, fd: Int32) { self.token = token; self.fd = fd }
    }

    enum IDState { case idle, bound, listening, addrResolved, routeResolved, connecting, requestPending,
                   connected, disconnected, rejected }

    final class CMID {
        let token: Token, ud: Bool
        var channel: Token
        var context: UnsafeMutableRawPointer?
        var state = IDState.idle
        var local: ModelAddress?
        var peer: ModelAddress?
        /// Holds its local port (explicit bind or ephemeral): conflicts with binds.
        var ownsPort = false
        var hasDevice = false
        var backlog = 0
        var qp: QP?
        /// Active side: the passive request id; passive: the active id.
        var other: Token?
        /// A request id: its listener.
        var listener: Token?
        var isActive = false
        var disconnectedQueued = false
        /// Active RC: ESTABLISHED queued, not yet taken by get_event.
        var establishedPending = false
        var tos: UInt8 = 0
        init(token: Token, channel: Token, context: UnsafeMutableRawPointer?, ud: Bool) {
            self.token = token; self.channel = channel; self.context = context; self.ud = ud
        }
    }

    struct SendWR {
        var qpn: UInt32
        var seq: UInt64
        var wrID: UInt64
        var opcode: Int32
        var signaled: Bool
        var imm: UInt32
        var sges: [cevpl_rdma_sge]
        var inlineData: [UInt8]?
        var total: Int
        var remoteAddr: UInt64
        var rkey: UInt32
        var ah: Token
        var remoteQPN: UInt32
        var remoteQkey: UInt32
        var waited = false
    }
}


/// An IP address and port, either family.
struct ModelAddress: Equatable {
    var family: Int32
    var bytes: [UInt8]      // 4 or 16
    var port: UInt16
    var scope: UInt32 = 0

    init(family: Int32, bytes: [UInt8], port: UInt16) {
        self.family = family; self.bytes = bytes; self.port = port
    }

    init?(_ sa: UnsafePointer<sockaddr>) {
        let raw = UnsafeRawPointer(sa)
        switch Int32(sa.pointee.sa_family) {
        case AF_INET:
            let sin = raw.load(as: sockaddr_in.self)
            family = AF_INET
            bytes = withUnsafeBytes(of: sin.sin_addr) { Array($0) }
            port = UInt16(bigEndian: sin.sin_port)
        case AF_INET6:
            let sin6 = raw.load(as: sockaddr_in6.self)
            family = AF_INET6
            bytes = withUnsafeBytes(of: sin6.sin6_addr) { Array($0) }
            port = UInt16(bigEndian: sin6.sin6_port)
            scope = sin6.sin6_scope_id
        default:
            return nil
        }
    }

    static func loopback(_ family: Int32, port: UInt16) -> ModelAddress {
        family == AF_INET6 ? ModelAddress(family: AF_INET6, bytes: [UInt8](repeating: 0, count: 15) + [1], port: port)
            : ModelAddress(family: AF_INET, bytes: [127, 0, 0, 1], port: port)
    }

    var isWildcard: Bool { bytes.allSatisfy { $0 == 0 } }

    /// Same port and overlapping addresses (a wildcard overlaps everything).
    func overlaps(_ o: ModelAddress) -> Bool {
        port == o.port && (isWildcard || o.isWildcard || (family == o.family && bytes == o.bytes))
    }

    /// A listener bound at `self` receives connections for `dst`.
    func accepts(_ dst: ModelAddress) -> Bool {
        port == dst.port && (isWildcard || (family == dst.family && bytes == dst.bytes))
    }

    func store(_ out: UnsafeMutablePointer<sockaddr_storage>, _ len: UnsafeMutablePointer<socklen_t>?) {
        out.pointee = sockaddr_storage()
        let raw = UnsafeMutableRawPointer(out)
        if family == AF_INET {
            var sin = sockaddr_in()
            sin.sin_family = sa_family_t(AF_INET)
            sin.sin_port = port.bigEndian
            withUnsafeMutableBytes(of: &sin.sin_addr) { $0.copyBytes(from: bytes) }
            raw.storeBytes(of: sin, as: sockaddr_in.self)
            len?.pointee = socklen_t(MemoryLayout<sockaddr_in>.size)
        } else {
            var sin6 = sockaddr_in6()
            sin6.sin6_family = sa_family_t(AF_INET6)
            sin6.sin6_port = port.bigEndian
            sin6.sin6_scope_id = scope
            withUnsafeMutableBytes(of: &sin6.sin6_addr) { $0.copyBytes(from: bytes) }
            raw.storeBytes(of: sin6, as: sockaddr_in6.self)
            len?.pointee = socklen_t(MemoryLayout<sockaddr_in6>.size)
        }
    }

    var text: String {
        family == AF_INET ? bytes.map(String.init).joined(separator: ".") + ":\(port)"
            : "[" + stride(from: 0, to: 16, by: 2).map { String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16) }
                .joined(separator: ":") + "]:\(port)"
    }
}

// MARK: eventfd helpers

func modelEventfd() -> Int32 { cevpl_eventfd() }

func modelSignal(_ fd: Int32) {
    var one: UInt64 = 1
    _ = withUnsafeBytes(of: &one) { write(fd, $0.baseAddress, 8) }
}

func modelDrain(_ fd: Int32) {
    var v: UInt64 = 0
    _ = withUnsafeMutableBytes(of: &v) { read(fd, $0.baseAddress, 8) }
}
