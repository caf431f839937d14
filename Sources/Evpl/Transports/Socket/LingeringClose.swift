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

    private var fds: [CInt] = []
    private var deadlines: [UInt64] = []

    var isEmpty: Bool { fds.isEmpty }
    var earliestDeadline: UInt64? { deadlines.min() }

    /// Closes `fd` (a kernel TCP socket registered in `poller`), lingering if needed.
    mutating func close(_ fd: CInt, poller: borrowing Poller, now: UInt64) {
        guard fds.count < LingeringCloses.limit, cevpl_unread_bytes(fd) > 0 else {
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
        fds.append(fd)
        deadlines.append(now &+ LingeringCloses.timeoutNs)
    }

    /// The descriptor's epoll event: drain; close it at its end.
    mutating func ready(_ fd: CInt) {
        guard LingeringCloses.drain(fd), let i = fds.firstIndex(of: fd) else { return }
        Sys.close(fd)
        fds.remove(at: i)
        deadlines.remove(at: i)
    }

    /// Closes those past their deadline (`now` = .max: all).
    mutating func expire(now: UInt64) {
        var i = 0
        while i < fds.count {
            if deadlines[i] <= now {
                Sys.close(fds[i])
                fds.remove(at: i)
                deadlines.remove(at: i)
            } else {
                i += 1
            }
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
