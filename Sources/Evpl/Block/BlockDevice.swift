import CEvpl
import CEvplLinux
import Glibc

/// A file or block device opened for asynchronous I/O (`struct evpl_block_device`).
/// Two descriptors: a buffered one, and an O_DIRECT one used when a request's
/// memory, length and offset are all aligned (O_DIRECT demands it).
/// Process-wide; queues (one per loop) do the I/O.
final class BlockDevice {
    /// O_DIRECT alignment required of addresses, lengths and offsets.
    static let directAlignment = 4096

    let fd: CInt
    let directFd: CInt
    let size: UInt64
    let maxRequestSize: UInt64
    let path: String
    private var openQueues = 0
    private var closeRequested = false

    private init(path: String, fd: CInt, directFd: CInt, size: UInt64) {
        self.path = path
        self.fd = fd
        self.directFd = directFd
        self.size = size
        let g = Library.config
        maxRequestSize = min(UInt64(g.maxNumIovec) * g.bufferSize, 64 * 1024 * 1024)
    }

    /// nil, with a log line, when the protocol is unavailable or the file cannot be opened.
    static func open(_ proto: evpl_block_protocol_id, uri: String) -> BlockDevice? {
        switch proto {
        case EVPL_BLOCK_PROTOCOL_IO_URING:
            if let reason = IoUringSupport.unavailableReason {
                Log.error("block", "EVPL_BLOCK_PROTOCOL_IO_URING is unavailable: \(reason)")
                return nil
            }
        case EVPL_BLOCK_PROTOCOL_VFIO:
            let why = Library.config.vfioEnabled == 0 ? "disabled by vfio_enabled" : "VFIO (user-space NVMe) is not built"
            Log.error("block", "EVPL_BLOCK_PROTOCOL_VFIO is unavailable: \(why)")
            return nil
        default:
            Log.error("block", "unknown block protocol id \(proto.rawValue)")
            return nil
        }
        let path = uri.hasPrefix("file://") ? String(uri.dropFirst(7)) : uri
        let fd = Glibc.open(path, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else {
            Log.error("block", "cannot open \(path): \(String(cString: strerror(errno)))")
            return nil
        }
        let end = lseek(fd, 0, SEEK_END)
        let directFd = Glibc.open(path, O_RDWR | O_CLOEXEC | cevpl_o_direct())  // -1 where unsupported (tmpfs)
        return BlockDevice(path: path, fd: fd, directFd: directFd, size: end > 0 ? UInt64(end) : 0)
    }

    func queueOpened() { openQueues += 1 }

    func queueClosed() {
        openQueues -= 1
        closeIfDone()
    }

    /// evpl_block_close_device: the descriptors close once no queue uses them.
    func close() {
        closeRequested = true
        closeIfDone()
    }

    private func closeIfDone() {
        guard closeRequested && openQueues == 0 else { return }
        Sys.close(fd)
        if directFd >= 0 { Sys.close(directFd) }
        closeRequested = false
        openQueues = -1  // closed for good
    }

    var isClosed: Bool { openQueues < 0 }
}
