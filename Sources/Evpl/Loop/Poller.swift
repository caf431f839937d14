import CEvplLinux
import Glibc

/// What an epoll registration points at.  The 64-bit epoll data word holds an
/// object address with the kind in its low 3 bits (objects are at least
/// 8-byte aligned), so dispatch is a switch over concrete types, never an
/// existential.
enum EventSource: UInt64 {
    case bind = 0          // Unmanaged<Bind>
    case listenSocket = 1  // Unmanaged<ListenSocket>
    case wake = 2          // the loop's own eventfd (evpl_stop, hand-offs)
    case doorbell = 3      // UnsafeMutablePointer<evpl_doorbell>
    case uring = 4         // the loop's io_uring completion eventfd
    case rdmaEvents = 5    // Unmanaged<RDMALoop>: its rdma_cm event channel
    case rdmaCompletions = 6  // Unmanaged<RDMALoopDevice>: its completion channel
    case lingering = 7     // a closed TCP socket draining before close: the fd in the upper bits

    @inline(__always)
    static func token(_ kind: EventSource, _ p: UnsafeRawPointer?) -> UInt64 {
        UInt64(UInt(bitPattern: p)) | kind.rawValue
    }
}

/// The array epoll_wait fills: doubles (up to 4096) after a wait that filled it.
/// Shared by the kernel poller and XLIO's.
struct EventArray: ~Copyable {
    private var events: UnsafeMutableRawPointer
    private(set) var capacity: Int
    private let eventSize = Int(cevpl_epoll_event_size())

    init(capacity: Int) {
        self.capacity = max(capacity, 16)
        events = .allocate(byteCount: self.capacity * eventSize, alignment: 8)
    }

    deinit { events.deallocate() }

    /// Runs `body` with the array as `struct epoll_event *` and its capacity.
    @inline(__always)
    func withEvents(_ body: (UnsafeMutablePointer<epoll_event>, CInt) -> CInt) -> CInt {
        events.withMemoryRebound(to: epoll_event.self, capacity: capacity) { body($0, CInt(capacity)) }
    }

    @inline(__always)
    func event(_ i: Int) -> (token: UInt64, flags: UInt32) {
        events.withMemoryRebound(to: epoll_event.self, capacity: capacity) {
            (cevpl_epoll_event_data($0, CInt(i)), cevpl_epoll_event_events($0, CInt(i)))
        }
    }

    mutating func growIfFull(_ n: Int) {
        guard n == capacity, capacity < 4096 else { return }
        events.deallocate()
        capacity *= 2
        events = .allocate(byteCount: capacity * eventSize, alignment: 8)
    }
}

/// The loop's epoll instance and its event array.
struct Poller: ~Copyable {
    let epfd: CInt
    private var events: EventArray

    init(capacity: Int) throws(SysError) {
        let fd = cevpl_epoll_create()
        if fd < 0 { throw SysError(errno: errno, call: "epoll_create1") }
        epfd = fd
        events = EventArray(capacity: capacity)
    }

    deinit {
        Sys.close(epfd)
    }

    /// Registers `fd` once, edge-triggered or level-triggered as asked.
    func add(_ fd: CInt, _ events: UInt32, _ token: UInt64) throws(SysError) {
        if cevpl_epoll_ctl(epfd, EPOLL_CTL_ADD, fd, events, token) != 0 {
            throw SysError(errno: errno, call: "epoll_ctl")
        }
    }

    func remove(_ fd: CInt) {
        _ = cevpl_epoll_ctl(epfd, EPOLL_CTL_DEL, fd, 0, 0)
    }

    /// Changes what an registered `fd` reports, and its token.
    func modify(_ fd: CInt, _ events: UInt32, _ token: UInt64) -> Bool {
        cevpl_epoll_ctl(epfd, EPOLL_CTL_MOD, fd, events, token) == 0
    }

    /// epoll_pwait2 (Linux 5.11) gives timers microsecond precision; where it
    /// is missing (older kernels, seccomp filters, valgrind) we fall back to
    /// epoll_wait with the timeout rounded up to a millisecond.
    private var nanosecondWait = true

    /// Waits up to `timeoutNs` (< 0: forever); returns the number of events.
    mutating func wait(timeoutNs: Int64) -> Int {
        let fd = epfd
        var n: CInt
        if nanosecondWait {
            n = events.withEvents { cevpl_epoll_wait_ns(fd, $0, $1, timeoutNs) }
            if n < 0 && errno == ENOSYS {
                nanosecondWait = false
                return wait(timeoutNs: timeoutNs)
            }
        } else {
            let ms = timeoutNs < 0 ? -1 : CInt(clamping: (timeoutNs + 999_999) / 1_000_000)
            n = events.withEvents { cevpl_epoll_wait(fd, $0, $1, ms) }
        }
        return n < 0 ? 0 : Int(n)  // EINTR: an empty pass
    }

    @inline(__always)
    func event(_ i: Int) -> (token: UInt64, flags: UInt32) { events.event(i) }

    mutating func growIfFull(_ n: Int) { events.growIfFull(n) }
}
