import CEvpl
import CEvplRDMA
import Glibc
import Synchronization

/// Process-wide RDMA state: the seam's table (rdma-core opened at run time,
/// or a test's in-memory fabric), the devices, and each device's protection
/// domain with the memory region of every slab.  Loops keep their own
/// completion queues and shared receive queues (`RDMALoop`).
enum RDMASupport {
    private struct State {
        var reason: String? = "not loaded"
        var loaded = false
    }

    private static let state = Mutex(State())
    /// Set under `state`'s lock before any reader can use them (readers only
    /// come after `unavailableReason` said yes); read without it afterwards.
    nonisolated(unsafe) private static var table: UnsafeMutablePointer<cevpl_rdma_ops>?
    nonisolated(unsafe) private static var deviceList: [RDMADevice] = []

    /// The seam; only after `unavailableReason` returned nil.
    @inline(__always)
    static var ops: UnsafeMutablePointer<cevpl_rdma_ops> { table.unsafelyUnwrapped }

    static var devices: [RDMADevice] { deviceList }

    /// nil when the RDMA protocols can be used now; otherwise why not.
    static var unavailableReason: String? {
        if Library.config.rdmacmEnabled == 0 { return "disabled by rdmacm_enabled" }
        return state.withLock { s in
            if !s.loaded { load(&s) }
            return s.reason
        }
    }

    /// Tests: drive the engine through `ops` (an in-memory fabric) instead of
    /// rdma-core.  Takes effect unless a device was found already (nothing
    /// can hold RDMA objects then); later calls are ignored.
    static func useForTesting(_ ops: UnsafePointer<cevpl_rdma_ops>) {
        state.withLock { s in
            guard deviceList.isEmpty else { return }
            let t = UnsafeMutablePointer<cevpl_rdma_ops>.allocate(capacity: 1)
            t.initialize(to: ops.pointee)
            open(t, &s)
        }
    }

    private static func load(_ s: inout State) {
        let t = UnsafeMutablePointer<cevpl_rdma_ops>.allocate(capacity: 1)
        t.initialize(to: cevpl_rdma_ops())
        var error: UnsafePointer<CChar>?
        if cevpl_rdma_ops_open(t, &error) != 0 {
            t.deallocate()
            s.loaded = true
            s.reason = error.map { String(cString: $0) } ?? "rdma-core did not load"
            Log.debug("rdma", "RDMA protocols unavailable: \(s.reason!)")
            return
        }
        open(t, &s)
    }

    /// Opens every device: a protection domain each.
    private static func open(_ t: UnsafeMutablePointer<cevpl_rdma_ops>, _ s: inout State) {
        s.loaded = true
        var list: UnsafeMutablePointer<UnsafeMutableRawPointer?>?
        let n = t.pointee.get_devices(&list)
        var devices: [RDMADevice] = []
        if n > 0, let list {
            var i = 0
            while let ctx = list[i] {
                if let pd = t.pointee.alloc_pd(ctx) {
                    let name = t.pointee.device_name(ctx).map { String(cString: $0) } ?? "device \(i)"
                    devices.append(RDMADevice(index: devices.count, context: ctx, pd: pd, name: name, ops: t))
                } else {
                    Log.error("rdma", "cannot allocate a protection domain on device \(i): \(Sys.errnoText(errno))")
                }
                i += 1
            }
        }
        // The list stays allocated: the contexts in it live as long as the process.
        table = t
        deviceList = devices
        s.reason = devices.isEmpty ? "no RDMA device" : nil
        if devices.isEmpty {
            Log.debug("rdma", "RDMA protocols unavailable: no RDMA device")
        } else {
            Log.info("rdma", "RDMA devices: \(devices.map(\.name).joined(separator: ", "))")
        }
    }

    /// The device of a verbs context (an id's, after resolution), or the
    /// first one when the id is not bound to a device yet.
    static func device(for context: UnsafeMutableRawPointer?) -> RDMADevice? {
        if let context, let d = deviceList.first(where: { $0.context == context }) { return d }
        return deviceList.first
    }
}

/// One RDMA device: its verbs context and protection domain, and the memory
/// region of each slab, registered once on first use (every iovec the pools
/// hand out can then be sent or received without a copy).
final class RDMADevice {
    let index: Int
    let context: UnsafeMutableRawPointer
    let pd: UnsafeMutableRawPointer
    let name: String
    let ops: UnsafeMutablePointer<cevpl_rdma_ops>

    /// Per slab index: rkey << 32 | lkey, valid once `registered` is 1.
    /// Written under `lock` (keys, a fence, then the flag), read without it
    /// (a stale 0 flag only takes the lock).
    private let keys: UnsafeMutablePointer<UInt64>
    private let registered: UnsafeMutablePointer<UInt8>
    static let maxSlabs = 65536
    private let lock = Mutex(())

    init(index: Int, context: UnsafeMutableRawPointer, pd: UnsafeMutableRawPointer, name: String,
         ops: UnsafeMutablePointer<cevpl_rdma_ops>) {
        self.index = index
        self.context = context
        self.pd = pd
        self.name = name
        self.ops = ops
        keys = .allocate(capacity: RDMADevice.maxSlabs)
        keys.initialize(repeating: 0, count: RDMADevice.maxSlabs)
        registered = .allocate(capacity: RDMADevice.maxSlabs)
        registered.initialize(repeating: 0, count: RDMADevice.maxSlabs)
    }

    /// The local key of the memory under `iovec`; nil (logged) if it cannot be registered.
    @inline(__always)
    func lkey(_ iovec: UnsafePointer<evpl_iovec>) -> UInt32? {
        keys(iovec).map { UInt32(truncatingIfNeeded: $0) }
    }

    /// The remote key of the memory under `iovec`.
    func rkey(_ iovec: UnsafePointer<evpl_iovec>) -> UInt32? {
        keys(iovec).map { UInt32(truncatingIfNeeded: $0 >> 32) }
    }

    @inline(__always)
    private func keys(_ iovec: UnsafePointer<evpl_iovec>) -> UInt64? {
        guard let buffer = Buffer.of(iovec) else { return nil }
        let slab = buffer._withUnsafeGuaranteedRef { $0.slab }
        let i = slab.index
        guard i < RDMADevice.maxSlabs else { return nil }
        if registered[i] != 0 {
            atomicMemoryFence(ordering: .acquiring)
            return keys[i]
        }
        return register(slab)
    }

    @inline(never)
    private func register(_ slab: Slab) -> UInt64? {
        lock.withLock { _ in
            let i = slab.index
            if registered[i] != 0 { return keys[i] }
            var lkey: UInt32 = 0
            var rkey: UInt32 = 0
            guard ops.pointee.reg_mr(pd, slab.base, slab.size, &lkey, &rkey) != nil else {
                Log.error("rdma", "\(name): cannot register a \(slab.size)-byte slab: \(Sys.errnoText(errno))")
                return nil
            }
            let k = (UInt64(rkey) << 32) | UInt64(lkey)
            keys[i] = k
            atomicMemoryFence(ordering: .releasing)
            registered[i] = 1
            return k
        }
    }
}
