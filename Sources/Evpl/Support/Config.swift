import Glibc

/// The global settings (CONFIG.md §Global settings).  Written before the
/// library is initialised (and, for loops, before they start), then only
/// read: hence `@exclusivity(unchecked)`, which keeps reads on the hot path
/// free of dynamic exclusivity checks.  A `struct evpl_global_config *`
/// is a GlobalConfig held at +1 until `evpl_init` takes it or it is released.
final class GlobalConfig {
    @exclusivity(unchecked) var bufferSize: UInt64 = 2 * 1024 * 1024
    @exclusivity(unchecked) var slabSize: UInt64 = 1024 * 1024 * 1024
    @exclusivity(unchecked) var spinNs: UInt64 = 1_000_000
    @exclusivity(unchecked) var maxDatagramSize: UInt32 = 65536
    @exclusivity(unchecked) var maxDatagramBatch: UInt32 = 16
    @exclusivity(unchecked) var maxNumIovec: UInt32 = 128
    @exclusivity(unchecked) var iovecRingSize: UInt32 = 1024
    @exclusivity(unchecked) var dgramRingSize: UInt32 = 256
    @exclusivity(unchecked) var rdmaRequestRingSize: UInt32 = 64
    @exclusivity(unchecked) var resolveTimeoutMs: UInt32 = 5000
    @exclusivity(unchecked) var hfTimeMode: UInt32 = 2
    @exclusivity(unchecked) var maxPending: UInt32 = 16
    @exclusivity(unchecked) var maxPollFd: UInt32 = 16
    @exclusivity(unchecked) var hugePages: Int32 = 0
    @exclusivity(unchecked) var ioUringEnabled: Int32 = 1
    @exclusivity(unchecked) var rdmacmEnabled: Int32 = 1
    @exclusivity(unchecked) var xlioEnabled: Int32 = 1
    @exclusivity(unchecked) var vfioEnabled: Int32 = 1
    @exclusivity(unchecked) var rdmacmTos: UInt8 = 0
    @exclusivity(unchecked) var rdmacmDatagramSizeOverride: UInt32 = 0
    @exclusivity(unchecked) var rdmacmSrqPrefill: Int32 = 0
    @exclusivity(unchecked) var rdmacmMaxSge: UInt32 = 31
    @exclusivity(unchecked) var rdmacmCqSize: UInt32 = 8192
    @exclusivity(unchecked) var rdmacmSqSize: UInt32 = 256
    @exclusivity(unchecked) var rdmacmSrqSize: UInt32 = 8192
    @exclusivity(unchecked) var rdmacmSrqMin: UInt32 = 256
    @exclusivity(unchecked) var rdmacmMaxInline: UInt32 = 250
    @exclusivity(unchecked) var rdmacmSrqBatch: UInt32 = 16
    @exclusivity(unchecked) var rdmacmRetryCount: UInt32 = 4
    @exclusivity(unchecked) var rdmacmRnrRetryCount: UInt32 = 4
    @exclusivity(unchecked) var tlsCert: String?
    @exclusivity(unchecked) var tlsKey: String?
    @exclusivity(unchecked) var tlsCa: String?
    @exclusivity(unchecked) var tlsCipherList: String?
    @exclusivity(unchecked) var tlsVerifyPeer: Int32 = 1
    @exclusivity(unchecked) var tlsKtlsEnabled: Int32 = 1

    /// Takes over the +1 reference that `evpl_global_config_init` gave C.
    static func take(_ handle: GlobalConfigHandle) -> GlobalConfig {
        Unmanaged<GlobalConfig>.fromOpaque(UnsafeRawPointer(handle)).takeRetainedValue()
    }

    /// Settings the engine cannot run with are clamped here, with one log line each.
    func validate() {
        if bufferSize < 4096 || bufferSize > UInt64(UInt32.max) {
            Log.error("config", "buffer_size \(bufferSize) out of range [4096, 4 GiB); using 2 MiB")
            bufferSize = 2 * 1024 * 1024
        }
        if slabSize < bufferSize {
            Log.error("config", "slab_size \(slabSize) is smaller than buffer_size; using buffer_size")
            slabSize = bufferSize
        }
        if maxNumIovec < 1 { maxNumIovec = 1 }
        if maxNumIovec > 1024 { maxNumIovec = 1024 }  // IOV_MAX
        if maxDatagramBatch < 1 { maxDatagramBatch = 1 }
        if maxDatagramBatch > 1024 { maxDatagramBatch = 1024 }
        if maxDatagramSize < 1 || UInt64(maxDatagramSize) > bufferSize {
            Log.error("config", "max_datagram_size \(maxDatagramSize) out of range [1, buffer_size]; clamped")
            maxDatagramSize = UInt32(min(max(UInt64(maxDatagramSize), 1), bufferSize))
        }
        if maxPollFd < 1 { maxPollFd = 1 }
        if maxPending < 1 { maxPending = 1 }
        iovecRingSize = Self.powerOfTwo(iovecRingSize)
        dgramRingSize = Self.powerOfTwo(dgramRingSize)
    }

    static func powerOfTwo(_ v: UInt32) -> UInt32 {
        var p: UInt32 = 1
        while p < v && p < (1 << 30) { p <<= 1 }
        return p
    }
}

/// The per-loop settings (CONFIG.md §Thread settings).  Loops copy it.
final class ThreadConfig {
    @exclusivity(unchecked) var pollMode: Int32 = 1
    @exclusivity(unchecked) var pollIterations: Int32 = 1000
    @exclusivity(unchecked) var waitMs: Int32 = -1

    func copy() -> ThreadConfig {
        let c = ThreadConfig()
        c.pollMode = pollMode
        c.pollIterations = pollIterations
        c.waitMs = waitMs
        return c
    }
}
