import CEvpl
import CEvplLinux
import Glibc

/// DATAGRAM_SOCKET_UDP: datagrams received in recvmmsg batches straight into
/// pool buffers (one slot of max_datagram_size each) and sent in sendmmsg
/// batches from the send queue.
enum UDP {
    /// UDP GSO limits: segments per send, payload bytes per send, and the
    /// largest datagram joined (a segment must fit the path's MTU, or the
    /// kernel refuses the whole send; 1200 fits any IPv6 path).
    static let maxSegments = 64
    static let maxSegmentedBytes = 65000
    static let maxSegmentSize = 1200

    /// evpl_bind: a UDP socket bound to `endpoint`; nil (with a log line) on failure.
    static func bind(loop: EventLoop, endpoint: Endpoint, notify: evpl_notify_callback_t?,
                     privateData: UnsafeMutableRawPointer?) -> Bind? {
        var mine = sockaddr_storage()
        guard let mineLength = endpoint.resolve(into: &mine) else { return nil }
        let fd: CInt
        do {
            fd = try Sys.socket(CInt(mine.ss_family), CEVPL_SOCK_DGRAM)
            try Sys.bind(.kernel, fd, &mine, mineLength)
        } catch {
            Log.error("udp", "evpl_bind \(Address.format(&mine)): \(error.description)")
            return nil
        }
        let b = Bind.make(loop: loop, proto: EVPL_DATAGRAM_SOCKET_UDP, kind: .datagram, fd: fd,
                          notify: notify, segment: nil, privateData: privateData)
        b.state = .open
        Sys.localAddressInto(b)
        do {
            try b.watch()
        } catch {
            Log.error("udp", "evpl_bind: \(error.description)")
            b.close(status: error.errno)
        }
        return b
    }
}

extension Bind {
    /// Receives batches until one comes back short; one RECV_MSG per datagram.
    /// Each datagram lands in a compact slot of pool memory (2 KiB: a buffer
    /// holds a thousand small datagrams, and a batch is never cut short by a
    /// nearly full buffer); one longer than that continues in the loop's
    /// overflow area and is copied into a buffer of its own.
    func readDatagrams() {
        // Loaded once per call (the loop owns them), not per datagram.
        let s = loop.scratch
        let pool = loop.pool
        let from = loop.recvAddress
        let loopHandle = loop.handle
        let largest = Int(loop.global.maxDatagramSize)
        let batch = s.batch
        let split = s.recvOverflow != nil
        // One slot per datagram (+1 byte when unsplit, so an oversize one shows up as MSG_TRUNC).
        let stride = split ? s.recvSlot : largest + 1
        while isLive {
            guard let (base, room) = pool.reserve(minimum: stride, alignment: 16) else {
                Log.error("udp", "out of buffer memory; datagrams left in the socket")
                return
            }
            let k = min(batch, room / stride)
            let nameLength = socklen_t(MemoryLayout<sockaddr_storage>.size)
            for i in 0..<k {
                s.recvIov[2 * i].iov_base = base + i * stride
                s.recvMsgs[i].msg_hdr.msg_namelen = nameLength
            }
            let r: IOResult
            do {
                r = try Sys.recvmmsg(fd, s.recvMsgs, k)
            } catch {
                // ICMP errors for an earlier send are reported here once; the socket lives on.
                switch error.errno {
                case ECONNREFUSED, EHOSTUNREACH, ENETUNREACH:
                    Log.debug("udp", "recvmmsg: \(error.description)")
                    continue
                default:
                    Log.error("udp", "recvmmsg: \(error.description)")
                    return
                }
            }
            guard case .done(let got) = r, got > 0 else { return }
            // The datagrams sit in slots [0, got) of the reserved run: take the
            // whole run at once, then hand each datagram its own reference.
            let lastLength = min(Int(s.recvMsgs[got - 1].msg_len), stride)
            let span = pool.commit(base, (got - 1) * stride + lastLength)
            let buffer = Unmanaged<Buffer>.fromOpaque(span.private_data!)
            buffer._withUnsafeGuaranteedRef { $0.retain(got) }
            Iovec.release(span)
            for i in 0..<got {
                let len = Int(s.recvMsgs[i].msg_len)
                var v = evpl_iovec(data: base + i * stride, length: UInt32(truncatingIfNeeded: min(len, stride)),
                                   pad: 0, private_data: span.private_data)
                if len > largest || s.recvMsgs[i].msg_hdr.msg_flags & CEVPL_MSG_TRUNC != 0 {
                    Log.error("udp", "dropped a datagram larger than max_datagram_size (\(largest))")
                    Iovec.release(v)
                    continue
                }
                guard isLive else {
                    Iovec.release(v)
                    continue
                }
                if len > stride {
                    guard let whole = joinOverflow(v, len, s.recvOverflow! + i * s.recvOverflowSize, pool) else {
                        Log.error("udp", "out of buffer memory; a \(len)-byte datagram dropped")
                        continue
                    }
                    v = whole
                }
                from.storage = s.addrs[i]
                from.length = s.recvMsgs[i].msg_hdr.msg_namelen
                var n = evpl_notify()
                n.notify_type = UInt32(EVPL_NOTIFY_RECV_MSG)
                n.recv_msg.iovec = withUnsafeMutablePointer(to: &v) { p in
                    s.messageIovecs.initialize(to: p.pointee)
                    return s.messageIovecs
                }
                n.recv_msg.niov = 1
                n.recv_msg.length = UInt32(len)
                n.recv_msg.addr = Unmanaged.passUnretained(from).handle
                notify?(loopHandle, handle, &n, privateData)
            }
            if got < k { return }
        }
    }

    /// A datagram longer than its slot: slot + overflow copied into one
    /// buffer of its own (the slot's reference is released).
    @inline(never)
    private func joinOverflow(_ slot: evpl_iovec, _ length: Int, _ overflow: UnsafeMutableRawPointer,
                              _ pool: BufferPool) -> evpl_iovec? {
        defer { Iovec.release(slot) }
        guard let v = pool.allocate(length, alignment: 16) else { return nil }
        let head = Int(slot.length)
        memcpy(v.data, slot.data, head)
        memcpy(v.data! + head, overflow, length - head)
        return v
    }

    /// Queues one datagram to `address` (copying `length` bytes).
    func sendTo(_ address: UnsafePointer<sockaddr_storage>, _ addressLength: socklen_t,
                _ data: UnsafeRawPointer, _ length: Int) {
        guard isLive && !finishRequested else { return }
        guard checkDatagramSize(length) else { return }
        let before = sendQueue.count
        guard copyIn(data, length) else {
            Log.error("udp", "out of buffer memory; datagram dropped")
            return
        }
        queueDatagram(address, addressLength, niov: sendQueue.count - before, length: length)
    }

    /// Queues one datagram made of the first `length` bytes of `iovecs`.
    func sendTov(_ address: UnsafePointer<sockaddr_storage>, _ addressLength: socklen_t,
                 _ iovecs: UnsafeMutablePointer<evpl_iovec>, _ count: Int, _ length: Int, takeRef: Bool) {
        guard isLive && !finishRequested, checkDatagramSize(length) else {
            if takeRef { for i in 0..<count { Iovec.release(iovecs + i) } }
            return
        }
        let niov = queueIovecs(iovecs, count, length, takeRef: takeRef)
        queueDatagram(address, addressLength, niov: niov, length: length)
    }

    private func checkDatagramSize(_ length: Int) -> Bool {
        let limit = transport == .rdma ? rdma.datagramSize : maxDatagramSize
        if length > limit {
            Log.error(transport == .rdma ? "rdma" : "udp", "datagram of \(length) bytes exceeds max_datagram_size (\(limit)); not sent")
            return false
        }
        return true
    }

    @inline(__always)
    private func queueDatagram(_ address: UnsafePointer<sockaddr_storage>, _ addressLength: socklen_t,
                               niov: Int, length: Int) {
        datagrams.append(Datagram(address: address.pointee, addressLength: addressLength, niov: niov, length: length))
        markDirty()
    }

    /// sendmmsg batches until the queue is empty or the kernel pushes back.
    /// Consecutive datagrams of one size to one destination go out as one
    /// entry with UDP GSO (UDP_SEGMENT): the kernel routes and builds them
    /// once and cuts them apart, instead of once per datagram.
    /// A datagram the kernel refuses (EMSGSIZE, unreachable, refused) is
    /// dropped and the batch goes on; UDP errors never close the bind.
    func flushDatagrams() {
        let s = loop.scratch
        let nameOffset = MemoryLayout<Datagram>.offset(of: \Datagram.address)!
        while !datagrams.isEmpty {
            var entries = 0
            var index = 0
            var iovIndex = 0
            while entries < s.batch && index < datagrams.count {
                // Entry `entries` uses its own iovCapacity-sized run of msgIov; a
                // datagram has at most max_num_iovec (<= iovCapacity) iovecs.
                let d = datagrams.at(index)
                let iovBase = s.msgIov + entries * s.iovCapacity
                var used = 0
                var run = 0
                repeat {
                    let e = datagrams.at(index + run)
                    for j in 0..<e.pointee.niov {
                        let v = sendQueue.at(iovIndex + j)
                        iovBase[used + j] = iovec(iov_base: v.pointee.data, iov_len: Int(v.pointee.length))
                    }
                    used += e.pointee.niov
                    iovIndex += e.pointee.niov
                    run += 1
                } while udpSegmentation && joins(d, index + run, run: run, iovecs: used, capacity: s.iovCapacity)
                var control: UnsafeMutableRawPointer?
                if run > 1 {
                    control = s.udpControl + entries * s.udpControlSpace
                    cevpl_udp_segment_cmsg(control, UInt16(d.pointee.length))
                }
                s.msgs[entries].msg_hdr = msghdr(msg_name: UnsafeMutableRawPointer(d) + nameOffset,
                                                 msg_namelen: d.pointee.addressLength,
                                                 msg_iov: iovBase, msg_iovlen: used,
                                                 msg_control: control, msg_controllen: run > 1 ? s.udpControlSpace : 0,
                                                 msg_flags: 0)
                s.runs[entries] = run
                entries += 1
                index += run
            }
            let r: IOResult
            do {
                r = try Sys.sendmmsg(fd, s.msgs, entries)
            } catch {
                // sendmmsg reports an error only for the first entry of the batch.
                if s.runs[0] > 1 && udpSegmentationRefused(error.errno) {
                    Log.debug("udp", "UDP GSO refused (\(error.description)); sending datagrams one by one")
                    udpSegmentation = false
                    continue
                }
                Log.debug("udp", "datagram dropped: \(error.description)")
                completeDatagrams(s.runs[0])
                continue
            }
            guard case .done(let sent) = r else { break }
            var done = 0
            for i in 0..<sent { done += s.runs[i] }
            completeDatagrams(done)
            if sent == 0 { break }
        }
        notifySent()
    }

    /// Whether datagram `next` can join the GSO run that `first` starts.
    @inline(__always)
    private func joins(_ first: UnsafeMutablePointer<Datagram>, _ next: Int, run: Int, iovecs: Int,
                       capacity: Int) -> Bool {
        guard next < datagrams.count, run < UDP.maxSegments else { return false }
        let e = datagrams.at(next)
        let length = first.pointee.length
        guard length > 0, length <= UDP.maxSegmentSize, e.pointee.length == length, (run + 1) * length <= UDP.maxSegmentedBytes,
              iovecs + e.pointee.niov <= capacity, e.pointee.addressLength == first.pointee.addressLength else {
            return false
        }
        let nameOffset = MemoryLayout<Datagram>.offset(of: \Datagram.address)!
        return memcmp(UnsafeRawPointer(first) + nameOffset, UnsafeRawPointer(e) + nameOffset,
                      Int(first.pointee.addressLength)) == 0
    }

    /// Errors that mean "no GSO here" rather than "this datagram failed".
    private func udpSegmentationRefused(_ e: CInt) -> Bool {
        e == EINVAL || e == EIO || e == EOPNOTSUPP || e == ENOPROTOOPT
    }

    private func completeDatagrams(_ n: Int) {
        for _ in 0..<n {
            let d = datagrams.at(0).pointee
            sendQueue.consume(d.length)
            sentBytes &+= UInt64(d.length)
            sentMsgs &+= 1
            datagrams.removeFirst()
        }
    }
}
