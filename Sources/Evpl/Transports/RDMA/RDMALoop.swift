import CEvpl
import CEvplLinux
import CEvplRDMA
import Glibc

/// A loop's RDMA machinery, made on the loop's first RDMA bind: its rdma_cm
/// event channel (fd in epoll), and per device a completion channel (fd in
/// epoll), one completion queue and one shared receive queue (`RDMALoopDevice`).
/// Completion queues are polled on every iteration while the loop has RDMA
/// binds; when one comes back empty it is armed, so an idle loop sleeps in
/// epoll until the completion channel fires.
///
/// Work request ids carry what completed in their low two bits:
/// `send` (a bind's send or credit message; the rest is the bind),
/// `request` (a one-sided read or write; the rest is the RDMARequest),
/// `receive` (a receive slot; the rest is its index << 2).
final class RDMALoop {
    enum Tag: UInt64 {
        case send = 0, request = 1, receive = 2
    }

    unowned(unsafe) let loop: EventLoop
    let ops: UnsafeMutablePointer<cevpl_rdma_ops>
    let channel: UnsafeMutableRawPointer
    let channelFd: CInt
    /// By RDMADevice.index; made when a bind first lands on that device.
    private(set) var devices: [RDMALoopDevice?]
    @exclusivity(unchecked) private(set) var active: [RDMALoopDevice] = []
    /// Queue pair number -> bind, for receive completions.
    @exclusivity(unchecked) var queuePairs = QueuePairTable()
    /// Scratch for building work requests and reading completions.
    let completions: UnsafeMutablePointer<cevpl_rdma_wc>
    let completionBatch = 64
    let sendWRs: UnsafeMutablePointer<cevpl_rdma_send_wr>
    let sendBatch = 32
    let sges: UnsafeMutablePointer<cevpl_rdma_sge>
    let maxSge: Int
    /// Receive credits each connection starts with (and the shared receive
    /// queue grows by per connection).
    let window: Int
    let sqSize: Int
    let maxInline: Int
    /// Largest message or stream segment one receive slot holds.
    let slotSize: Int
    /// One-sided requests, recycled.
    @exclusivity(unchecked) var freeRequests: [RDMARequest] = []

    private init(loop: EventLoop, ops: UnsafeMutablePointer<cevpl_rdma_ops>, channel: UnsafeMutableRawPointer, fd: CInt) {
        self.loop = loop
        self.ops = ops
        self.channel = channel
        channelFd = fd
        let g = loop.global
        devices = Array(repeating: nil, count: RDMASupport.devices.count)
        maxSge = Int(min(max(g.rdmacmMaxSge, 1), 64))
        sqSize = Int(max(g.rdmacmSqSize, 4))
        window = min(32, max(2, sqSize / 2))
        maxInline = Int(g.rdmacmMaxInline)
        slotSize = Int(min(max(g.maxDatagramSize, 4096), UInt32(g.bufferSize)))
        completions = .allocate(capacity: completionBatch)
        sendWRs = .allocate(capacity: sendBatch)
        sges = .allocate(capacity: sendBatch * maxSge)
    }

    /// The loop's RDMA machinery, made on first use; nil (logged) if the
    /// event channel cannot be made.
    static func of(_ loop: EventLoop) -> RDMALoop? {
        if let r = loop.rdma { return r }
        let ops = RDMASupport.ops
        var fd: CInt = -1
        guard let ch = ops.pointee.create_event_channel(&fd) else {
            Log.error("rdma", "cannot create an rdma_cm event channel: \(Sys.errnoText(errno))")
            return nil
        }
        let r = RDMALoop(loop: loop, ops: ops, channel: ch, fd: fd)
        do {
            try loop.poller.add(fd, CEVPL_EPOLLIN, EventSource.token(.rdmaEvents, Unmanaged.passUnretained(r).toOpaque()))
        } catch {
            Log.error("rdma", "cannot watch the rdma_cm event channel: \(error.description)")
            ops.pointee.destroy_event_channel(ch)
            return nil
        }
        loop.rdma = r
        return r
    }

    /// This loop's queues on `device`, made on first use.
    func device(_ device: RDMADevice) -> RDMALoopDevice? {
        if let d = devices[device.index] { return d }
        guard let d = RDMALoopDevice(rdma: self, device: device) else { return nil }
        devices[device.index] = d
        active.append(d)
        return d
    }

    // MARK: Polling

    /// Every iteration: completions of every device, then receive refills.
    @inline(__always)
    func poll() -> Int {
        var work = 0
        for d in active { work += d.poll() }
        return work
    }

    /// Completions waiting in a stash: the loop must not sleep.
    var hasStash: Bool { active.contains { $0.hasStash } }

    // MARK: rdma_cm events

    /// The event channel is readable: handle everything pending.
    func eventsReady() {
        var event = cevpl_rdma_cm_event()
        while ops.pointee.get_event(channel, &event) == 0 {
            RDMAConnection.handle(&event, on: self)
        }
    }

    // MARK: Requests

    func takeRequest() -> RDMARequest {
        freeRequests.popLast() ?? RDMARequest()
    }

    func recycle(_ r: RDMARequest) {
        r.reset()
        freeRequests.append(r)
    }

    // MARK: Teardown

    /// evpl_destroy, after every bind is closed: waits (bounded) for the
    /// flushes of closed binds, then destroys the queues and the channel.
    func destroy() {
        let deadline = Sys.monotonicNanoseconds() &+ 2_000_000_000
        while loop.drainingBinds > 0 && Sys.monotonicNanoseconds() < deadline {
            _ = poll()
            eventsReady()
        }
        if loop.drainingBinds > 0 {
            Log.error("rdma", "\(loop.drainingBinds) closed RDMA binds still have work in flight at evpl_destroy")
        }
        for d in active { d.destroy() }
        active.removeAll()
        loop.poller.remove(channelFd)
        ops.pointee.destroy_event_channel(channel)
        completions.deallocate()
        sendWRs.deallocate()
        sges.deallocate()
    }
}

/// A loop's queues on one device.
final class RDMALoopDevice {
    unowned(unsafe) let rdma: RDMALoop
    let device: RDMADevice
    let ops: UnsafeMutablePointer<cevpl_rdma_ops>
    let comp: UnsafeMutableRawPointer
    let compFd: CInt
    let cq: UnsafeMutableRawPointer
    let srq: UnsafeMutableRawPointer
    @exclusivity(unchecked) private var armed = false

    /// Receive slots: the iovec posted under each index (one reference each).
    private let slots: UnsafeMutablePointer<evpl_iovec>
    private let freeSlots: UnsafeMutablePointer<Int32>
    @exclusivity(unchecked) private var freeCount: Int
    private let capacity: Int
    @exclusivity(unchecked) private(set) var posted = 0
    /// Receives to keep posted: srq_min plus a window per connection.
    @exclusivity(unchecked) var target: Int
    private let batch: Int
    private let recvWRs: UnsafeMutablePointer<cevpl_rdma_recv_wr>
    private let recvBatch = 64
    /// Completions taken off the queue before a queue pair is destroyed (the
    /// driver would drop that pair's unpolled ones, receive slots included),
    /// dispatched in order by the next poll.
    @exclusivity(unchecked) private var stash = ValueRing<cevpl_rdma_wc>(capacity: 64)
    private let stashScratch: UnsafeMutablePointer<cevpl_rdma_wc>

    init?(rdma: RDMALoop, device: RDMADevice) {
        let g = rdma.loop.global
        self.rdma = rdma
        self.device = device
        ops = rdma.ops
        var fd: CInt = -1
        guard let comp = ops.pointee.create_comp_channel(device.context, &fd) else {
            Log.error("rdma", "\(device.name): cannot create a completion channel: \(Sys.errnoText(errno))")
            return nil
        }
        guard let cq = ops.pointee.create_cq(device.context, CInt(clamping: g.rdmacmCqSize), comp) else {
            Log.error("rdma", "\(device.name): cannot create a completion queue: \(Sys.errnoText(errno))")
            _ = ops.pointee.destroy_comp_channel(comp)
            return nil
        }
        capacity = Int(max(g.rdmacmSrqSize, 16))
        guard let srq = ops.pointee.create_srq(device.pd, UInt32(capacity), 1) else {
            Log.error("rdma", "\(device.name): cannot create a shared receive queue: \(Sys.errnoText(errno))")
            _ = ops.pointee.destroy_cq(cq)
            _ = ops.pointee.destroy_comp_channel(comp)
            return nil
        }
        self.comp = comp
        compFd = fd
        self.cq = cq
        self.srq = srq
        slots = .allocate(capacity: capacity)
        freeSlots = .allocate(capacity: capacity)
        for i in 0..<capacity { freeSlots[i] = Int32(capacity - 1 - i) }
        freeCount = capacity
        target = g.rdmacmSrqPrefill != 0 ? capacity : min(capacity, Int(g.rdmacmSrqMin))
        batch = max(1, min(Int(g.rdmacmSrqBatch), max(Int(g.rdmacmSrqMin), 1)))
        recvWRs = .allocate(capacity: recvBatch)
        stashScratch = .allocate(capacity: 64)
        do {
            try rdma.loop.poller.add(fd, CEVPL_EPOLLIN,
                                     EventSource.token(.rdmaCompletions, Unmanaged.passUnretained(self).toOpaque()))
        } catch {
            Log.error("rdma", "cannot watch a completion channel: \(error.description)")
        }
        refill()
        arm()
    }

    /// A queue pair on `id`, its sends and receives completing here (receives
    /// from this device's shared receive queue); nil with errno set.
    func makeQueuePair(_ id: UnsafeMutableRawPointer, ud: Bool, number: inout UInt32) -> UnsafeMutableRawPointer? {
        var attr = cevpl_rdma_qp_attr(ud: ud ? 1 : 0, send_cq: cq, recv_cq: cq, srq: srq,
                                      max_send_wr: UInt32(rdma.sqSize), max_recv_wr: 0,
                                      max_send_sge: UInt32(rdma.maxSge), max_recv_sge: 1,
                                      max_inline: UInt32(rdma.maxInline))
        return ops.pointee.create_qp(id, device.pd, &attr, &number)
    }

    // MARK: Receive slots

    /// Grows or shrinks the posted receives this device keeps (connections come and go).
    func adjustTarget(by delta: Int) {
        let g = rdma.loop.global
        let floor = g.rdmacmSrqPrefill != 0 ? capacity : Int(g.rdmacmSrqMin)
        target = min(capacity, max(floor, target + delta))
        if posted < target { refill() }
    }

    /// Posts receives until `target` are posted.
    func refill() {
        let pool = rdma.loop.pool
        let size = rdma.slotSize
        while posted < target && freeCount > 0 {
            var n = 0
            while n < recvBatch && posted + n < target && freeCount > 0 {
                guard var v = pool.allocate(size, alignment: 64) else {
                    Log.error("rdma", "out of buffer memory for receives")
                    break
                }
                guard let lkey = withUnsafePointer(to: &v, { device.lkey($0) }) else {
                    Iovec.release(v)
                    break
                }
                freeCount -= 1
                let index = Int(freeSlots[freeCount])
                slots[index] = v
                recvWRs[n] = cevpl_rdma_recv_wr(
                    wr_id: UInt64(index) << 2 | RDMALoop.Tag.receive.rawValue,
                    sge: cevpl_rdma_sge(addr: UInt64(UInt(bitPattern: v.data)), length: UInt32(size), lkey: lkey))
                n += 1
            }
            if n == 0 { return }
            let rc = ops.pointee.post_srq_recv(srq, recvWRs, CInt(n))
            if rc != 0 {
                Log.error("rdma", "\(device.name): posting receives: \(Sys.errnoText(rc))")
                for i in 0..<n { takeSlot(Int(recvWRs[i].wr_id >> 2)).map { Iovec.release($0) } }
                return
            }
            posted += n
        }
    }

    /// The iovec of a completed receive slot (its reference now the caller's).
    @inline(__always)
    private func takeSlot(_ index: Int) -> evpl_iovec? {
        guard index < capacity else { return nil }
        let v = slots[index]
        freeSlots[freeCount] = Int32(index)
        freeCount += 1
        return v
    }

    // MARK: Completions

    /// Drains the completion queue; arms it when empty (and polls once more,
    /// closing the race with a completion that arrived before arming).
    @inline(__always)
    func poll() -> Int {
        var total = 0
        if !stash.isEmpty { total += dispatchStash() }
        while true {
            let n = Int(ops.pointee.poll_cq(cq, CInt(rdma.completionBatch), rdma.completions))
            if n <= 0 {
                if n < 0 { Log.error("rdma", "\(device.name): polling the completion queue failed") }
                if armed { break }
                arm()
                continue
            }
            armed = false
            for i in 0..<n { dispatch(rdma.completions + i) }
            total += n
            if n < rdma.completionBatch { break }
        }
        if target - posted >= batch || (posted < target && total == 0) { refill() }
        return total
    }

    var hasStash: Bool { !stash.isEmpty }

    /// Before a queue pair is destroyed: everything the queue holds moves to
    /// the stash (safe during a dispatch: a separate array).
    func stashCompletions() {
        while true {
            let n = Int(ops.pointee.poll_cq(cq, 64, stashScratch))
            if n <= 0 { return }
            for i in 0..<n { stash.append(stashScratch[i]) }
        }
    }

    @inline(never)
    private func dispatchStash() -> Int {
        var n = 0
        while !stash.isEmpty {
            var wc = stash.at(0).pointee
            stash.removeFirst()
            dispatch(&wc)
            n += 1
        }
        return n
    }

    private func arm() {
        if ops.pointee.req_notify_cq(cq) == 0 { armed = true }
    }

    /// The completion channel fired: take its events (the queue is polled next).
    func notified() {
        while ops.pointee.get_cq_event(comp) == 0 {}
        armed = false
    }

    @inline(__always)
    private func dispatch(_ wc: UnsafeMutablePointer<cevpl_rdma_wc>) {
        let id = wc.pointee.wr_id
        let address = UnsafeMutableRawPointer(bitPattern: UInt(id & ~3))
        switch RDMALoop.Tag(rawValue: id & 3) {
        case .send:
            Unmanaged<Bind>.fromOpaque(address!)._withUnsafeGuaranteedRef { $0.rdmaSendCompleted(wc) }
        case .request:
            Unmanaged<RDMARequest>.fromOpaque(address!)._withUnsafeGuaranteedRef { $0.completed(wc, on: rdma) }
        case .receive:
            posted -= 1
            guard let v = takeSlot(Int(id >> 2)) else { return }
            guard UInt32(bitPattern: wc.pointee.status) == CEVPL_WC_SUCCESS.rawValue,
                  let b = rdma.queuePairs.lookup(wc.pointee.qp_num) else {
                Iovec.release(v)
                return
            }
            b._withUnsafeGuaranteedRef { $0.rdmaReceived(v, wc) }
        case nil:
            return
        }
    }

    func destroy() {
        rdma.loop.poller.remove(compFd)
        _ = ops.pointee.destroy_srq(srq)
        // Whatever the queue still reports belongs to destroyed queue pairs.
        while ops.pointee.poll_cq(cq, CInt(rdma.completionBatch), rdma.completions) > 0 {}
        _ = ops.pointee.destroy_cq(cq)
        _ = ops.pointee.destroy_comp_channel(comp)
        var taken = Set<Int32>()
        for i in 0..<freeCount { taken.insert(freeSlots[i]) }
        for i in 0..<capacity where !taken.contains(Int32(i)) { Iovec.release(slots[i]) }
        slots.deallocate()
        freeSlots.deallocate()
        recvWRs.deallocate()
        stashScratch.deallocate()
    }
}

/// Queue pair numbers to binds: open addressing over a power-of-two array,
/// so a receive completion finds its bind without hashing through a Dictionary.
struct QueuePairTable: ~Copyable {
    private var keys: UnsafeMutablePointer<UInt32>
    private var values: UnsafeMutablePointer<Unmanaged<Bind>?>
    private var mask: Int
    private var count = 0

    init() {
        mask = 63
        keys = .allocate(capacity: 64)
        keys.initialize(repeating: 0, count: 64)
        values = .allocate(capacity: 64)
        values.initialize(repeating: nil, count: 64)
    }

    deinit {
        keys.deallocate()
        values.deallocate()
    }

    @inline(__always)
    private static func slot(_ qpn: UInt32, _ mask: Int) -> Int { Int(truncatingIfNeeded: qpn &* 2654435761) & mask }

    @inline(__always)
    func lookup(_ qpn: UInt32) -> Unmanaged<Bind>? {
        var i = QueuePairTable.slot(qpn, mask)
        while let v = values[i] {
            if keys[i] == qpn { return v }
            i = (i + 1) & mask
        }
        return nil
    }

    mutating func insert(_ qpn: UInt32, _ b: Bind) {
        if (count + 1) * 2 > mask + 1 { grow() }
        var i = QueuePairTable.slot(qpn, mask)
        while values[i] != nil && keys[i] != qpn { i = (i + 1) & mask }
        if values[i] == nil { count += 1 }
        keys[i] = qpn
        values[i] = Unmanaged.passUnretained(b)
    }

    /// Removes with backward-shift deletion (no tombstones).
    mutating func remove(_ qpn: UInt32) {
        var i = QueuePairTable.slot(qpn, mask)
        while values[i] != nil && keys[i] != qpn { i = (i + 1) & mask }
        guard values[i] != nil else { return }
        values[i] = nil
        count -= 1
        var j = (i + 1) & mask
        while let v = values[j] {
            let k = keys[j]
            values[j] = nil
            count -= 1
            insert(k, v.takeUnretainedValue())
            j = (j + 1) & mask
        }
    }

    private mutating func grow() {
        let oldKeys = keys, oldValues = values, oldCapacity = mask + 1
        mask = oldCapacity * 2 - 1
        keys = .allocate(capacity: mask + 1)
        keys.initialize(repeating: 0, count: mask + 1)
        values = .allocate(capacity: mask + 1)
        values.initialize(repeating: nil, count: mask + 1)
        count = 0
        for i in 0..<oldCapacity {
            if let v = oldValues[i] { insert(oldKeys[i], v.takeUnretainedValue()) }
        }
        oldKeys.deallocate()
        oldValues.deallocate()
    }
}
