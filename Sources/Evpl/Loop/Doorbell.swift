import CEvpl
import CEvplLinux
import Glibc

/// A doorbell lives in the user's 48-byte `struct evpl_doorbell`:
/// word 0 the eventfd, 1 the callback, 2 a magic marking it added, 3 the loop.
/// Any thread may ring it (an eventfd write); the owning loop sees the fd
/// readable, drains it (so rings coalesce) and runs the callback.
enum Doorbell {
    static let magic: UInt64 = 0x6576_706c_6462_6c6c  // "evpldbll"

    static func isAdded(_ d: UnsafeMutablePointer<evpl_doorbell>) -> Bool {
        d.pointee.opaque.2 == magic
    }

    static func fd(_ d: UnsafeMutablePointer<evpl_doorbell>) -> CInt {
        CInt(truncatingIfNeeded: Int64(bitPattern: d.pointee.opaque.0))
    }

    static func callback(_ d: UnsafeMutablePointer<evpl_doorbell>) -> evpl_doorbell_callback_t? {
        unsafeBitCast(UInt(d.pointee.opaque.1), to: evpl_doorbell_callback_t?.self)
    }

    /// Fills the user's struct and registers its eventfd with `loop`.
    static func add(_ d: UnsafeMutablePointer<evpl_doorbell>, _ callback: evpl_doorbell_callback_t?,
                    loop: EventLoop) -> Bool {
        let fd = cevpl_eventfd()
        guard fd >= 0 else {
            Log.error("doorbell", "eventfd: \(String(cString: strerror(errno)))")
            return false
        }
        d.pointee.opaque = (UInt64(bitPattern: Int64(fd)),
                            UInt64(UInt(bitPattern: unsafeBitCast(callback, to: UnsafeRawPointer?.self))),
                            magic, UInt64(UInt(bitPattern: Unmanaged.passUnretained(loop).toOpaque())), 0, 0)
        do {
            try loop.poller.add(fd, CEVPL_EPOLLIN | CEVPL_EPOLLET, EventSource.token(.doorbell, d))
        } catch {
            Log.error("doorbell", error.description)
            Sys.close(fd)
            d.pointee.opaque.2 = 0
            return false
        }
        return true
    }

    static func remove(_ d: UnsafeMutablePointer<evpl_doorbell>, loop: EventLoop) {
        let fd = fd(d)
        loop.poller.remove(fd)
        Sys.close(fd)
        d.pointee.opaque.2 = 0
        d.pointee.opaque.0 = UInt64(bitPattern: -1)
    }

    /// Any thread.
    static func ring(_ d: UnsafeMutablePointer<evpl_doorbell>) {
        Sys.eventfdWrite(fd(d))
    }
}
