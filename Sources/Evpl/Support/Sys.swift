import CEvplLinux
import Glibc

/// A failed system call: `errno` becomes a bind's `notify_status`.
struct SysError: Error {
    let errno: CInt
    let call: StaticString

    var description: String { "\(call): \(String(cString: strerror(errno)))" }
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

    @inline(never)
    static func read(_ fd: CInt, _ buf: UnsafeMutableRawPointer, _ n: Int) throws(SysError) -> IOResult {
        while true {
            let r = Glibc.read(fd, buf, n)
            if r >= 0 { return .done(r) }
            switch errno {
            case EINTR: continue
            case EAGAIN: return .wouldBlock
            case let e: throw SysError(errno: e, call: "read")
            }
        }
    }

    @inline(never)
    static func writev(_ fd: CInt, _ iov: UnsafePointer<iovec>, _ n: Int) throws(SysError) -> IOResult {
        while true {
            let r = Glibc.writev(fd, iov, CInt(n))
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

    /// accept4 with SOCK_NONBLOCK|SOCK_CLOEXEC; nil when nothing is pending.
    @inline(never)
    static func accept(_ fd: CInt, _ addr: UnsafeMutablePointer<sockaddr_storage>) throws(SysError) -> CInt? {
        while true {
            var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let r = addr.withMemoryRebound(to: sockaddr.self, capacity: 1) { cevpl_accept4(fd, $0, &len) }
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
    static func connect(_ fd: CInt, _ addr: UnsafePointer<sockaddr_storage>, _ len: socklen_t) throws(SysError) -> Bool {
        let r = addr.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, len) }
        if r == 0 { return true }
        switch errno {
        case EINPROGRESS, EINTR: return false
        case let e: throw SysError(errno: e, call: "connect")
        }
    }

    @inline(never)
    static func bind(_ fd: CInt, _ addr: UnsafePointer<sockaddr_storage>, _ len: socklen_t) throws(SysError) {
        let r = addr.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, len) }
        if r != 0 { throw SysError(errno: errno, call: "bind") }
    }

    @inline(never)
    static func listen(_ fd: CInt, _ backlog: CInt) throws(SysError) {
        if Glibc.listen(fd, backlog) != 0 { throw SysError(errno: errno, call: "listen") }
    }

    static func setOption(_ fd: CInt, _ level: CInt, _ name: CInt, _ value: CInt) {
        var v = value
        _ = setsockopt(fd, level, name, &v, socklen_t(MemoryLayout<CInt>.size))
    }

    /// The pending error of a socket (SO_ERROR): 0 once a connect succeeded.
    @inline(never)
    static func socketError(_ fd: CInt) -> CInt {
        var err: CInt = 0
        var len = socklen_t(MemoryLayout<CInt>.size)
        if getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 { return errno }
        return err
    }

    static func localAddress(_ fd: CInt, _ addr: UnsafeMutablePointer<sockaddr_storage>) -> socklen_t {
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let r = addr.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        return r == 0 ? len : 0
    }

    static func remoteAddress(_ fd: CInt, _ addr: UnsafeMutablePointer<sockaddr_storage>) -> socklen_t {
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let r = addr.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &len) }
        return r == 0 ? len : 0
    }

    /// close(2), never retried: after EINTR the descriptor is already gone on Linux.
    static func close(_ fd: CInt) {
        _ = Glibc.close(fd)
    }

    static func shutdownWrite(_ fd: CInt) {
        _ = Glibc.shutdown(fd, CInt(SHUT_WR))
    }

    /// The monotonic clock in nanoseconds (vDSO; no system call).
    @inline(__always)
    static func monotonicNanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }
}
