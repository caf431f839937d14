import CEvpl
import CEvplLinux
import Glibc

/// The socket entry points the TCP transport calls, as a table: libc's
/// (`kernel`), or those of libxlio.so opened at run time (`xlio`), so that
/// STREAM_XLIO_TCP is the socket TCP code driven through another table, not a
/// copy of it.  Both instances live for the life of the process; binds and
/// listening sockets hold them `unowned(unsafe)`.
///
/// `read` and `writev` (the per-pass calls) are hoisted out of the C table
/// into non-optional stored properties: one load and an indirect call, as a
/// PLT call is.
final class SocketAPI {
    let name: StaticString
    /// The C table (stable address: the epoll helpers take a pointer to it).
    let table: UnsafeMutablePointer<cevpl_socket_api>
    typealias ReadFn = @convention(c) (CInt, UnsafeMutableRawPointer?, Int) -> Int
    typealias WritevFn = @convention(c) (CInt, UnsafePointer<iovec>?, CInt) -> Int
    let read: ReadFn
    let writev: WritevFn

    private init(name: StaticString, table: UnsafeMutablePointer<cevpl_socket_api>) {
        self.name = name
        self.table = table
        read = table.pointee.read!
        writev = table.pointee.writev!
    }

    /// libc's socket calls (what an LD_PRELOADed library would interpose, as before).
    static let kernel: SocketAPI = {
        let t = UnsafeMutablePointer<cevpl_socket_api>.allocate(capacity: 1)
        t.initialize(to: cevpl_socket_api())
        cevpl_socket_api_kernel(t)
        return SocketAPI(name: "kernel", table: t)
    }()

    /// libxlio's, loaded on first use (never linked): from `EVPL_XLIO_LIBRARY`,
    /// or `libxlio.so` on the loader's search path.  `api` is nil, with the
    /// reason (logged once), when the library does not load or lacks an entry point.
    private static let xlioLoad: (api: SocketAPI?, reason: String?) = {
        let path: String
        if let env = getenv("EVPL_XLIO_LIBRARY"), env.pointee != 0 {
            path = String(cString: env)
        } else {
            path = "libxlio.so"
        }
        let t = UnsafeMutablePointer<cevpl_socket_api>.allocate(capacity: 1)
        t.initialize(to: cevpl_socket_api())
        var error: UnsafePointer<CChar>?
        if cevpl_socket_api_open(path, t, &error) != 0 {
            t.deallocate()
            let reason = "cannot load \(path): \(error.map { String(cString: $0) } ?? "unknown error")"
            Log.warn("xlio", "STREAM_XLIO_TCP is unavailable: \(reason)")
            return (nil, reason)
        }
        Log.info("xlio", "STREAM_XLIO_TCP uses \(path)")
        return (SocketAPI(name: "xlio", table: t), nil)
    }()

    /// nil when libxlio is usable (the xlio_enabled setting is checked by the caller).
    static var xlioUnavailableReason: String? { xlioLoad.reason }

    /// The XLIO table; only after `Protocols.unavailableReason` said yes.
    static var xlio: SocketAPI { xlioLoad.api! }

    /// The table a stream protocol's sockets are driven through.
    @inline(__always)
    static func forProtocol(_ proto: evpl_protocol_id) -> SocketAPI {
        proto == EVPL_STREAM_XLIO_TCP ? xlio : kernel
    }
}

/// The loop's second poller, for XLIO sockets: XLIO's own epoll (offloaded
/// traffic never shows in the kernel's), created on the first XLIO socket and
/// polled with a zero timeout on every iteration while it has registrations.
/// Events carry the same EventSource tokens as the kernel poller's.
final class XLIOPoller {
    unowned(unsafe) let api: SocketAPI
    let epfd: CInt
    private var events: EventArray

    init(api: SocketAPI, capacity: Int) throws(SysError) {
        self.api = api
        let fd = cevpl_api_epoll_create(api.table)
        if fd < 0 { throw SysError(errno: errno, call: "epoll_create1 (xlio)") }
        epfd = fd
        events = EventArray(capacity: capacity)
    }

    deinit {
        Sys.close(api, epfd)
    }

    func add(_ fd: CInt, _ flags: UInt32, _ token: UInt64) throws(SysError) {
        if cevpl_api_epoll_ctl(api.table, epfd, EPOLL_CTL_ADD, fd, flags, token) != 0 {
            throw SysError(errno: errno, call: "epoll_ctl (xlio)")
        }
    }

    func remove(_ fd: CInt) {
        _ = cevpl_api_epoll_ctl(api.table, epfd, EPOLL_CTL_DEL, fd, 0, 0)
    }

    /// A non-blocking poll; the number of events (EINTR: none).
    func poll() -> Int {
        let table = api.table
        let fd = epfd
        let n = events.withEvents { cevpl_api_epoll_wait(table, fd, $0, $1, 0) }
        return n < 0 ? 0 : Int(n)
    }

    @inline(__always)
    func event(_ i: Int) -> (token: UInt64, flags: UInt32) { events.event(i) }

    func growIfFull(_ n: Int) { events.growIfFull(n) }
}

extension EventLoop {
    /// The XLIO poller, made on first use; nil (logged) when XLIO's epoll cannot be created.
    func xlioPoller() throws(SysError) -> XLIOPoller {
        if let x = xlio { return x }
        let x = try XLIOPoller(api: SocketAPI.xlio, capacity: Int(global.maxPollFd))
        xlio = x
        return x
    }

    /// Registers an XLIO socket with XLIO's epoll (the loop polls it from now on).
    func xlioWatch(_ fd: CInt, _ flags: UInt32, _ token: UInt64) throws(SysError) {
        try xlioPoller().add(fd, flags, token)
        xlioRegistrations += 1
    }

    /// Unregisters an XLIO socket (before its close).
    func xlioUnwatch(_ fd: CInt) {
        guard let x = xlio else { return }
        x.remove(fd)
        xlioRegistrations -= 1
    }

    /// Called from `iterate` while XLIO sockets are registered: poll XLIO's
    /// epoll without waiting and dispatch what it reports.
    @inline(never)
    func pollXLIO() -> Int {
        guard let x = xlio else { return 0 }
        let n = x.poll()
        guard n > 0 else { return 0 }
        beginDispatch()
        for i in 0..<n {
            let (token, flags) = x.event(i)
            dispatchOne(token, flags)
        }
        endDispatch()
        x.growIfFull(n)
        return n
    }
}
