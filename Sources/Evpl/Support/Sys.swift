import CEvplLinux
import Glibc

/// A failed system call: `errno` becomes a bind's `notify_status`.
struct SysError: Error {
    let errno: CInt
    let call: StaticString

    var description: String { "\(call): \(Sys.errnoText(errno))" }
}

/// The outcome of a non-blocking I/O call: EAGAIN is a result, not an error.
enum IOResult: Equatable {
    case done(Int)
    case wouldBlock
}

/// Every libc call of the engine, once each.  Engine code never reads errno:
/// each wrapper retries EINTR where that is right, classifies EAGAIN, and
/// throws the rest.  `@inline(never)` so errno is read before any other code
/// (ARC included) can change it.
enum Sys {
    @inline(never)
    static func readv(_ fd: CInt, _ iov: UnsafePointer<iovec>, _ n: Int) throws(SysError) -> IOResult {
        while true {
            let r = Glibc.readv(fd, iov, CInt(n))
            if r >= 0 { return .done(r) }
            switch errno {
            case EINTR: continue
            case EAGAIN: return .wouldBlock
            case let e: throw SysError(errno: e, call: "readv")
            }
        }
    }

    /// read(2) through a socket table's entry point (TCP: libc's or
    /// libxlio's); the caller passes `api.read`, a plain load (no reference count).
    @inline(never)
    static func read(_ read: SocketAPI.ReadFn, _ fd: CInt, _ buf: UnsafeMutableRawPointer, _ n: Int) throws(SysError) -> IOResult {
        while true {
            let r = read(fd, buf, n)
            if r >= 0 { return .done(r) }
            switch errno {
            case EINTR: continue
            case EAGAIN: return .wouldBlock
            case let e: throw SysError(errno: e, call: "read")
            }
        }
    }

    @inline(never)
    static func writev(_ writev: SocketAPI.WritevFn, _ fd: CInt, _ iov: UnsafePointer<iovec>,
                       _ n: Int) throws(SysError) -> IOResult {
        while true {
            let r = writev(fd, iov, CInt(n))
            if r >= 0 { return .done(r) }
            switch errno {
            case EINTR: continue
            case EAGAIN: return .wouldBlock
            case let e: throw SysError(errno: e, call: "writev")
            }
        }
    }

    /// write(2) of an 8-byte eventfd counter; EAGAIN (counter saturated) is fine.
    @inline(never)
    static func eventfdWrite(_ fd: CInt) {
        var one: UInt64 = 1
        while Glibc.write(fd, &one, 8) < 0 && errno == EINTR {}
    }

    /// Drains an eventfd; returns the count (0 when it was not signalled).
    @inline(never)
    static func eventfdRead(_ fd: CInt) -> UInt64 {
        var value: UInt64 = 0
        while Glibc.read(fd, &value, 8) < 0 {
            if errno != EINTR { return 0 }
        }
        return value
    }

    @inline(never)
    static func recvmmsg(_ fd: CInt, _ v: UnsafeMutablePointer<cevpl_mmsghdr>, _ n: Int) throws(SysError) -> IOResult {
        while true {
            let r = cevpl_recvmmsg(fd, v, CUnsignedInt(n), 0)
            if r >= 0 { return .done(Int(r)) }
            switch errno {
            case EINTR: continue
            case EAGAIN: return .wouldBlock
            case let e: throw SysError(errno: e, call: "recvmmsg")
            }
        }
    }

    /// sendmmsg(2).  For UDP, ENOBUFS means "try again" (libuv does the same).
    @inline(never)
    static func sendmmsg(_ fd: CInt, _ v: UnsafeMutablePointer<cevpl_mmsghdr>, _ n: Int) throws(SysError) -> IOResult {
        while true {
            let r = cevpl_sendmmsg(fd, v, CUnsignedInt(n), CInt(MSG_NOSIGNAL))
            if r >= 0 { return .done(Int(r)) }
            switch errno {
            case EINTR: continue
            case EAGAIN, ENOBUFS: return .wouldBlock
            case let e: throw SysError(errno: e, call: "sendmmsg")
            }
        }
    }

    @inline(never)
    static func socket(_ domain: CInt, _ type: CInt) throws(SysError) -> CInt {
        let fd = cevpl_socket(domain, type, 0)
        if fd < 0 { throw SysError(errno: errno, call: "socket") }
        return fd
    }

    /// A non-blocking, close-on-exec socket made through a socket table.
    @inline(never)
    static func socket(_ api: SocketAPI, _ domain: CInt, _ type: CInt) throws(SysError) -> CInt {
        let fd = api.table.pointee.socket!(domain, type | CEVPL_SOCK_NONBLOCK | CEVPL_SOCK_CLOEXEC, 0)
        if fd < 0 { throw SysError(errno: errno, call: "socket") }
        return fd
    }

    /// accept4 with SOCK_NONBLOCK|SOCK_CLOEXEC; nil when nothing is pending.
    @inline(never)
    static func accept(_ api: SocketAPI, _ fd: CInt, _ addr: UnsafeMutablePointer<sockaddr_storage>) throws(SysError) -> CInt? {
        let accept4 = api.table.pointee.accept4!
        while true {
            var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let r = addr.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                accept4(fd, $0, &len, CEVPL_SOCK_NONBLOCK | CEVPL_SOCK_CLOEXEC)
            }
            if r >= 0 { return r }
            switch errno {
            case EINTR, ECONNABORTED: continue
            case EAGAIN: return nil
            case let e: throw SysError(errno: e, call: "accept4")
            }
        }
    }

    /// connect(2) on a non-blocking socket: EINPROGRESS is the normal answer (false).
    @inline(never)
    static func connect(_ api: SocketAPI, _ fd: CInt, _ addr: UnsafePointer<sockaddr_storage>,
                        _ len: socklen_t) throws(SysError) -> Bool {
        let connect = api.table.pointee.connect!
        let r = addr.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, len) }
        if r == 0 { return true }
        switch errno {
        case EINPROGRESS, EINTR: return false
        case let e: throw SysError(errno: e, call: "connect")
        }
    }

    @inline(never)
    static func bind(_ api: SocketAPI, _ fd: CInt, _ addr: UnsafePointer<sockaddr_storage>,
                     _ len: socklen_t) throws(SysError) {
        let bind = api.table.pointee.bind!
        let r = addr.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) }
        if r != 0 { throw SysError(errno: errno, call: "bind") }
    }

    @inline(never)
    static func listen(_ api: SocketAPI, _ fd: CInt, _ backlog: CInt) throws(SysError) {
        if api.table.pointee.listen!(fd, backlog) != 0 { throw SysError(errno: errno, call: "listen") }
    }

    static func setOption(_ api: SocketAPI, _ fd: CInt, _ level: CInt, _ name: CInt, _ value: CInt) {
        var v = value
        _ = api.table.pointee.setsockopt!(fd, level, name, &v, socklen_t(MemoryLayout<CInt>.size))
    }

    /// The pending error of a socket (SO_ERROR): 0 once a connect succeeded.
    @inline(never)
    static func socketError(_ api: SocketAPI, _ fd: CInt) -> CInt {
        var err: CInt = 0
        var len = socklen_t(MemoryLayout<CInt>.size)
        if api.table.pointee.getsockopt!(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 { return errno }
        return err
    }

    static func localAddress(_ api: SocketAPI, _ fd: CInt, _ addr: UnsafeMutablePointer<sockaddr_storage>) -> socklen_t {
        let getsockname = api.table.pointee.getsockname!
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let r = addr.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        return r == 0 ? len : 0
    }

    static func remoteAddress(_ api: SocketAPI, _ fd: CInt, _ addr: UnsafeMutablePointer<sockaddr_storage>) -> socklen_t {
        let getpeername = api.table.pointee.getpeername!
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let r = addr.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &len) }
        return r == 0 ? len : 0
    }

    /// close(2), never retried: after EINTR the descriptor is already gone on Linux.
    static func close(_ fd: CInt) {
        _ = Glibc.close(fd)
    }

    /// close through a socket table (a socket made by that table).
    static func close(_ api: SocketAPI, _ fd: CInt) {
        _ = api.table.pointee.close!(fd)
    }

    static func shutdownWrite(_ fd: CInt) {
        _ = Glibc.shutdown(fd, CInt(SHUT_WR))
    }

    /// strerror's text for an errno value.
    static func errnoText(_ e: CInt) -> String { String(cString: strerror(e)) }

    /// The monotonic clock in nanoseconds (vDSO; no system call).
    @inline(__always)
    static func monotonicNanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }
}
