import CEvplUring
import Glibc
import Synchronization

/// Whether io_uring can carry STREAM_IO_URING_TCP and block I/O here, probed
/// once per process: the io_uring_enabled setting, the kernel.io_uring_disabled
/// sysctl, a ring that can be created (seccomp filters and old kernels refuse),
/// provided-buffer rings (Linux 5.19) and multishot receive (Linux 6.0).
enum IoUringSupport {
    private static let probed = Mutex<String??>(nil)

    /// nil when usable; otherwise why not (logged once, at the first probe).
    static var unavailableReason: String? {
        if Library.config.ioUringEnabled == 0 { return "disabled by io_uring_enabled" }
        return probed.withLock { cached -> String? in
            if let c = cached { return c }
            let reason = probe()
            if let reason { Log.warn("io_uring", "io_uring is unavailable: \(reason)") }
            cached = .some(reason)
            return reason
        }
    }

    /// A set-up ring (struct io_uring in memory we own), or nil.  Tries the
    /// flags that help a single-threaded owner first, then none (older kernels).
    static func makeRing(entries: UInt32) -> OpaquePointer? {
        let mem = UnsafeMutableRawPointer.allocate(byteCount: cevpl_uring_size(), alignment: 64)
        let ring = OpaquePointer(mem)
        if cevpl_uring_init(ring, entries, 1) == 0 || cevpl_uring_init(ring, entries, 0) == 0 { return ring }
        mem.deallocate()
        return nil
    }

    static func freeRing(_ ring: OpaquePointer) {
        cevpl_uring_exit(ring)
        UnsafeMutableRawPointer(ring).deallocate()
    }

    private static func probe() -> String? {
        if let f = fopen("/proc/sys/kernel/io_uring_disabled", "r") {
            var buf = [CChar](repeating: 0, count: 16)
            let line = fgets(&buf, 16, f) != nil ? String(cString: buf) : ""
            fclose(f)
            if line.hasPrefix("2") { return "disabled by the kernel.io_uring_disabled sysctl" }
        }
        if !kernelAtLeast(6, 0) { return "the kernel is older than 6.0 (multishot receive)" }
        let mem = UnsafeMutableRawPointer.allocate(byteCount: cevpl_uring_size(), alignment: 64)
        defer { mem.deallocate() }
        let ring = OpaquePointer(mem)
        var rc = cevpl_uring_init(ring, 8, 1)
        if rc != 0 { rc = cevpl_uring_init(ring, 8, 0) }
        if rc != 0 {
            return "io_uring_setup failed: \(String(cString: strerror(-rc))) (seccomp, sysctl or an old kernel)"
        }
        defer { cevpl_uring_exit(ring) }
        let bytes = 4096
        guard let page = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
              page != MAP_FAILED else { return "cannot map a buffer ring" }
        defer { munmap(page, bytes) }
        let br = OpaquePointer(page)
        cevpl_buf_ring_init(br)
        let reg = cevpl_buf_ring_register(ring, br, 8, 7)
        if reg != 0 { return "provided-buffer rings are not supported: \(String(cString: strerror(-reg)))" }
        _ = cevpl_buf_ring_unregister(ring, 7)
        return nil
    }

    private static func kernelAtLeast(_ major: Int, _ minor: Int) -> Bool {
        var u = utsname()
        guard uname(&u) == 0 else { return false }
        let release = withUnsafeBytes(of: u.release) { raw in
            String(cString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))
        }
        let parts = release.split(whereSeparator: { !$0.isNumber }).prefix(2).compactMap { Int($0) }
        guard parts.count == 2 else { return false }
        return parts[0] > major || (parts[0] == major && parts[1] >= minor)
    }
}
