import CEvpl
import CEvplLinux
import Glibc

/// Closing a TCP socket that still has unread bytes in its receive queue
/// makes Linux send a reset instead of a FIN and discard what it has not
/// sent yet, so the peer can lose the end of a reply that evpl_finish
/// promised to deliver (and sees ECONNRESET instead of an orderly end).
/// Such sockets linger instead: the write side is shut down (FIN after the
/// data already written), incoming bytes are read and discarded until the
/// peer's FIN, an error, or `timeoutNs`; then the descriptor is closed.
/// The bind itself is gone already (its DISCONNECTED was delivered); only
/// the descriptor lingers, watched by the loop's epoll under a `.lingering`
/// token that carries it.  Sockets with nothing unread close at once.
struct LingeringCloses: ~Copyable {
    static let timeoutNs: UInt64 = 2_000_000_000
    /// More than this many at once and the next ones close immediately.
    static let limit = 4096

    /// Oldest first: every deadline is `timeoutNs` after its close, so the
    /// first entry always expires first.
    private var sockets: [(fd: CInt, deadline: UInt64)] = []

    var isEmpty: Bool { sockets.isEmpty }
    var earliestDeadline: UInt64? { sockets.first?.deadline }

    /// Closes `fd` (a kernel TCP socket registered in `poller`), lingering if needed.
    mutating func close(_ fd: CInt, poller: borrowing Poller, now: UInt64) {
        guard sockets.count < LingeringCloses.limit, cevpl_unread_bytes(fd) > 0 else {
            Sys.close(fd)  // also removes it from epoll
            return
        }
        Sys.shutdownWrite(fd)
        // Kernel-socket binds are registered already; io_uring ones are not.
        let events = CEVPL_EPOLLIN | CEVPL_EPOLLRDHUP | CEVPL_EPOLLET
        let token = UInt64(UInt32(bitPattern: fd)) << 3 | EventSource.lingering.rawValue
        let watched = poller.modify(fd, events, token) || (try? poller.add(fd, events, token)) != nil
        guard watched, !LingeringCloses.drain(fd) else {
            Sys.close(fd)
            return
        }
        sockets.append((fd, now &+ LingeringCloses.timeoutNs))
    }

    /// The descriptor's epoll event: drain; close it at its end.
    mutating func ready(_ fd: CInt) {
        guard LingeringCloses.drain(fd), let i = sockets.firstIndex(where: { $0.fd == fd }) else { return }
        Sys.close(fd)
        sockets.remove(at: i)
    }

    /// Closes those past their deadline (`now` = .max: all).
    mutating func expire(now: UInt64) {
        while let first = sockets.first, first.deadline <= now {
            Sys.close(first.fd)
            sockets.removeFirst()
        }
    }

    /// Reads and discards until EAGAIN; true at the peer's end or an error.
    private static func drain(_ fd: CInt) -> Bool {
        // TCP with MSG_TRUNC discards in the kernel without copying (tcp(7));
        // the buffer is real anyway (sanitizers, and any kernel that copies).
        for _ in 0..<64 {
            let n = recv(fd, sink, sinkSize, CEVPL_MSG_TRUNC)
            if n > 0 { continue }
            return n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        }
        return false  // still streaming: the next edge or the deadline
    }

    /// Where discarded bytes would go (shared: nobody reads it).
    private static let sinkSize = 64 * 1024
    nonisolated(unsafe) private static let sink = UnsafeMutableRawPointer.allocate(byteCount: sinkSize, alignment: 16)
}
