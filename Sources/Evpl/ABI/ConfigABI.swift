import CEvpl
import Glibc

// ABI area: configuration

/// A new global config with CONFIG.md's defaults. Give it to evpl_init
/// (which takes ownership) or release it with evpl_global_config_release.
@_cdecl("evpl_global_config_init")
public func evpl_global_config_init() -> GlobalConfigHandle? {
    Unmanaged.passRetained(GlobalConfig()).handle
}

/// Release a global config that was never given to evpl_init. NULL is ignored.
@_cdecl("evpl_global_config_release")
public func evpl_global_config_release(_ config: GlobalConfigHandle?) {
    guard let config else { return }
    Unmanaged<GlobalConfig>.fromOpaque(UnsafeRawPointer(config)).release()
}

/// A new thread (loop) config with defaults: poll_mode 1,
/// poll_iterations 1000, wait_ms -1. Loops copy it.
@_cdecl("evpl_thread_config_init")
public func evpl_thread_config_init() -> ThreadConfigHandle? {
    Unmanaged.passRetained(ThreadConfig()).handle
}

/// Release a thread config (loops made from it keep their copies). NULL is ignored.
@_cdecl("evpl_thread_config_release")
public func evpl_thread_config_release(_ config: ThreadConfigHandle?) {
    guard let config else { return }
    Unmanaged<ThreadConfig>.fromOpaque(UnsafeRawPointer(config)).release()
}

/// Allow busy polling while work keeps arriving (1, default) or never (0).
@_cdecl("evpl_thread_config_set_poll_mode")
public func evpl_thread_config_set_poll_mode(_ config: ThreadConfigHandle?, _ poll_mode: CInt) {
    guard let c = Unmanaged<ThreadConfig>.borrow(config) else { return Log.misuse("evpl_thread_config_set_poll_mode", "NULL config") }
    c.pollMode = poll_mode
}

/// Polling passes between two checks of the event mechanism (default 1000; at least 1).
@_cdecl("evpl_thread_config_set_poll_iterations")
public func evpl_thread_config_set_poll_iterations(_ config: ThreadConfigHandle?, _ iterations: CInt) {
    guard let c = Unmanaged<ThreadConfig>.borrow(config) else { return Log.misuse("evpl_thread_config_set_poll_iterations", "NULL config") }
    if iterations < 1 { Log.error("config", "poll_iterations \(iterations) < 1; using 1") }
    c.pollIterations = max(iterations, 1)
}

/// Longest sleep of an idle loop in milliseconds; -1 (default) waits until
/// an event, a timer or a doorbell. Values below -1 are treated as -1.
@_cdecl("evpl_thread_config_set_wait_ms")
public func evpl_thread_config_set_wait_ms(_ config: ThreadConfigHandle?, _ wait_ms: CInt) {
    guard let c = Unmanaged<ThreadConfig>.borrow(config) else { return Log.misuse("evpl_thread_config_set_wait_ms", "NULL config") }
    c.waitMs = max(wait_ms, -1)
}

/// Size of one I/O buffer, also the largest single iovec (default 2 MiB; 4 KiB to 4 GiB).
@_cdecl("evpl_global_config_set_buffer_size")
public func evpl_global_config_set_buffer_size(_ config: GlobalConfigHandle?, _ value: UInt64) {
    guard let c = Unmanaged<GlobalConfig>.borrow(config) else { return Log.misuse("evpl_global_config_set_buffer_size", "NULL config") }
    c.bufferSize = value
}

/// Size of one slab requested from the OS, reserved lazily (default 1 GiB).
@_cdecl("evpl_global_config_set_slab_size")
public func evpl_global_config_set_slab_size(_ config: GlobalConfigHandle?, _ value: UInt64) {
    guard let c = Unmanaged<GlobalConfig>.borrow(config) else { return Log.misuse("evpl_global_config_set_slab_size", "NULL config") }
    c.slabSize = value
}

/// After work, keep polling this long before sleeping; 0 sleeps at once (default 1 ms).
@_cdecl("evpl_global_config_set_spin_ns")
public func evpl_global_config_set_spin_ns(_ config: GlobalConfigHandle?, _ value: UInt64) {
    guard let c = Unmanaged<GlobalConfig>.borrow(config) else { return Log.misuse("evpl_global_config_set_spin_ns", "NULL config") }
    c.spinNs = value
}

/// Largest datagram sent or received (default 65536).
@_cdecl("evpl_global_config_set_max_datagram_size")
public func evpl_global_config_set_max_datagram_size(_ config: GlobalConfigHandle?, _ value: CUnsignedInt) {
    guard let c = Unmanaged<GlobalConfig>.borrow(config) else { return Log.misuse("evpl_global_config_set_max_datagram_size", "NULL config") }
    c.maxDatagramSize = value
}

/// Datagrams per recvmmsg/sendmmsg batch (default 16).
@_cdecl("evpl_global_config_set_max_datagram_batch")
public func evpl_global_config_set_max_datagram_batch(_ config: GlobalConfigHandle?, _ value: CUnsignedInt) {
    guard let c = Unmanaged<GlobalConfig>.borrow(config) else { return Log.misuse("evpl_global_config_set_max_datagram_batch", "NULL config") }
    c.maxDatagramBatch = value
}

/// Most iovecs one operation or message may carry (default 128).
@_cdecl("evpl_global_config_set_max_num_iovec")
public func evpl_global_config_set_max_num_iovec(_ config: GlobalConfigHandle?, _ value: CUnsignedInt) {
    guard let c = Unmanaged<GlobalConfig>.borrow(config) else { return Log.misuse("evpl_global_config_set_max_num_iovec", "NULL config") }
    c.maxNumIovec = value
}

/// Initial size (power of two) of a bind's iovec rings (default 1024); they grow on demand.
@_cdecl("evpl_global_config_set_iovec_ring_size")
public func evpl_global_config_set_iovec_ring_size(_ config: GlobalConfigHandle?, _ value: CUnsignedInt) {
    guard let c = Unmanaged<GlobalConfig>.borrow(config) else { return Log.misuse("evpl_global_config_set_iovec_ring_size", "NULL config") }
    c.iovecRingSize = value
}

/// Initial size (power of two) of a bind's datagram rings (default 256).
@_cdecl("evpl_global_config_set_dgram_ring_size")
public func evpl_global_config_set_dgram_ring_size(_ config: GlobalConfigHandle?, _ value: CUnsignedInt) {
    guard let c = Unmanaged<GlobalConfig>.borrow(config) else { return Log.misuse("evpl_global_config_set_dgram_ring_size", "NULL config") }
    c.dgramRingSize = value
}

/// Initial size of a bind's RDMA request ring (default 64).
@_cdecl("evpl_global_config_set_rdma_request_ring_size")
public func evpl_global_config_set_rdma_request_ring_size(_ config: GlobalConfigHandle?, _ value: CUnsignedInt) {
    guard let c = Unmanaged<GlobalConfig>.borrow(config) else { return Log.misuse("evpl_global_config_set_rdma_request_ring_size", "NULL config") }
    c.rdmaRequestRingSize = value
}

/// How long a resolved host name is cached (default 5000 ms).
@_cdecl("evpl_global_config_set_resolve_timeout_ms")
public func evpl_global_config_set_resolve_timeout_ms(_ config: GlobalConfigHandle?, _ value: CUnsignedInt) {
    guard let c = Unmanaged<GlobalConfig>.borrow(config) else { return Log.misuse("evpl_global_config_set_resolve_timeout_ms", "NULL config") }
    c.resolveTimeoutMs = value
}

/// Clock source for evpl_get_hf_monotonic_time and timers: 0 clock_gettime, 1 TSC, 2 TSC if nonstop (default 2). This build reads CLOCK_MONOTONIC through the vDSO in every mode.
@_cdecl("evpl_global_config_set_hf_time_mode")
public func evpl_global_config_set_hf_time_mode(_ config: GlobalConfigHandle?, _ value: CUnsignedInt) {
    guard let c = Unmanaged<GlobalConfig>.borrow(config) else { return Log.misuse("evpl_global_config_set_hf_time_mode", "NULL config") }
    c.hfTimeMode = value
}

/// Listen backlog (default 16).
@_cdecl("evpl_global_config_set_max_pending")
public func evpl_global_config_set_max_pending(_ config: GlobalConfigHandle?, _ value: CUnsignedInt) {
    guard let c = Unmanaged<GlobalConfig>.borrow(config) else { return Log.misuse("evpl_global_config_set_max_pending", "NULL config") }
    c.maxPending = value
}

/// Most events taken from one epoll_wait (default 16; grows internally when a wait fills it).
@_cdecl("evpl_global_config_set_max_poll_fd")
public func evpl_global_config_set_max_poll_fd(_ config: GlobalConfigHandle?, _ value: CUnsignedInt) {
    guard let c = Unmanaged<GlobalConfig>.borrow(config) else { return Log.misuse("evpl_global_config_set_max_poll_fd", "NULL config") }
    c.maxPollFd = value
}

/// Back slabs with huge pages; falls back with one warning when none are available (default 0).
@_cdecl("evpl_global_config_set_huge_pages")
public func evpl_global_config_set_huge_pages(_ config: GlobalConfigHandle?, _ value: CInt) {
    guard let c = Unmanaged<GlobalConfig>.borrow(config) else { return Log.misuse("evpl_global_config_set_huge_pages", "NULL config") }
    c.hugePages = value
}

/// 0 makes the io_uring transports unavailable (default 1).
@_cdecl("evpl_global_config_set_io_uring_enabled")
public func evpl_global_config_set_io_uring_enabled(_ config: GlobalConfigHandle?, _ value: CInt) {
    guard let c = Unmanaged<GlobalConfig>.borrow(config) else { return Log.misuse("evpl_global_config_set_io_uring_enabled", "NULL config") }
    c.ioUringEnabled = value
}

/// 0 makes the RDMA transports unavailable (default 1).
@_cdecl("evpl_global_config_set_rdmacm_enabled")
public func evpl_global_config_set_rdmacm_enabled(_ config: GlobalConfigHandle?, _ value: CInt) {
    guard let c = Unmanaged<GlobalConfig>.borrow(config) else { return Log.misuse("evpl_global_config_set_rdmacm_enabled", "NULL config") }
    c.rdmacmEnabled = value
}

/// 0 makes the XLIO transport unavailable (default 1).
@_cdecl("evpl_global_config_set_xlio_enabled")
public func evpl_global_config_set_xlio_enabled(_ config: GlobalConfigHandle?, _ value: CInt) {
    guard let c = Unmanaged<GlobalConfig>.borrow(config) else { return Log.misuse("evpl_global_config_set_xlio_enabled", "NULL config") }
    c.xlioEnabled = value
}

/// 0 makes VFIO block devices unavailable (default 1).
@_cdecl("evpl_global_config_set_vfio_enabled")
public func evpl_global_config_set_vfio_enabled(_ config: GlobalConfigHandle?, _ value: CInt) {
    guard let c = Unmanaged<GlobalConfig>.borrow(config) else { return Log.misuse("evpl_global_config_set_vfio_enabled", "NULL config") }
    c.vfioEnabled = value
}

/// IP type of service for RDMA connections; 0 = kernel default.
@_cdecl("evpl_global_config_set_rdmacm_tos")
public func evpl_global_config_set_rdmacm_tos(_ config: GlobalConfigHandle?, _ value: UInt8) {
    guard let c = Unmanaged<GlobalConfig>.borrow(config) else { return Log.misuse("evpl_global_config_set_rdmacm_tos", "NULL config") }
    c.rdmacmTos = value
}

/// RDMA UD datagram size instead of the path MTU's (default 0 = derive).
@_cdecl("evpl_global_config_set_rdmacm_datagram_size_override")
public func evpl_global_config_set_rdmacm_datagram_size_override(_ config: GlobalConfigHandle?, _ value: CUnsignedInt) {
    guard let c = Unmanaged<GlobalConfig>.borrow(config) else { return Log.misuse("evpl_global_config_set_rdmacm_datagram_size_override", "NULL config") }
    c.rdmacmDatagramSizeOverride = value
}

/// Fill the shared receive queue completely when a loop starts (default 0).
@_cdecl("evpl_global_config_set_rdmacm_srq_prefill")
public func evpl_global_config_set_rdmacm_srq_prefill(_ config: GlobalConfigHandle?, _ value: CInt) {
    guard let c = Unmanaged<GlobalConfig>.borrow(config) else { return Log.misuse("evpl_global_config_set_rdmacm_srq_prefill", "NULL config") }
    c.rdmacmSrqPrefill = value
}

/// Scatter-gather entries per RDMA work request (default 31).
@_cdecl("evpl_global_config_set_rdmacm_max_sge")
public func evpl_global_config_set_rdmacm_max_sge(_ config: GlobalConfigHandle?, _ value: CUnsignedInt) {
    guard let c = Unmanaged<GlobalConfig>.borrow(config) else { return Log.misuse("evpl_global_config_set_rdmacm_max_sge", "NULL config") }
    c.rdmacmMaxSge = value
}

/// RDMA completion queue depth (default 8192).
@_cdecl("evpl_global_config_set_rdmacm_cq_size")
public func evpl_global_config_set_rdmacm_cq_size(_ config: GlobalConfigHandle?, _ value: CUnsignedInt) {
    guard let c = Unmanaged<GlobalConfig>.borrow(config) else { return Log.misuse("evpl_global_config_set_rdmacm_cq_size", "NULL config") }
    c.rdmacmCqSize = value
}

/// RDMA send queue depth (default 256).
@_cdecl("evpl_global_config_set_rdmacm_sq_size")
public func evpl_global_config_set_rdmacm_sq_size(_ config: GlobalConfigHandle?, _ value: CUnsignedInt) {
    guard let c = Unmanaged<GlobalConfig>.borrow(config) else { return Log.misuse("evpl_global_config_set_rdmacm_sq_size", "NULL config") }
    c.rdmacmSqSize = value
}

/// RDMA shared receive queue depth (default 8192).
@_cdecl("evpl_global_config_set_rdmacm_srq_size")
public func evpl_global_config_set_rdmacm_srq_size(_ config: GlobalConfigHandle?, _ value: CUnsignedInt) {
    guard let c = Unmanaged<GlobalConfig>.borrow(config) else { return Log.misuse("evpl_global_config_set_rdmacm_srq_size", "NULL config") }
    c.rdmacmSrqSize = value
}

/// Refill the shared receive queue when below this (default 256).
@_cdecl("evpl_global_config_set_rdmacm_srq_min")
public func evpl_global_config_set_rdmacm_srq_min(_ config: GlobalConfigHandle?, _ value: CUnsignedInt) {
    guard let c = Unmanaged<GlobalConfig>.borrow(config) else { return Log.misuse("evpl_global_config_set_rdmacm_srq_min", "NULL config") }
    c.rdmacmSrqMin = value
}

/// Send RDMA payloads up to this size inline (default 250).
@_cdecl("evpl_global_config_set_rdmacm_max_inline")
public func evpl_global_config_set_rdmacm_max_inline(_ config: GlobalConfigHandle?, _ value: CUnsignedInt) {
    guard let c = Unmanaged<GlobalConfig>.borrow(config) else { return Log.misuse("evpl_global_config_set_rdmacm_max_inline", "NULL config") }
    c.rdmacmMaxInline = value
}

/// Shared receive queue refill batch (default 16).
@_cdecl("evpl_global_config_set_rdmacm_srq_batch")
public func evpl_global_config_set_rdmacm_srq_batch(_ config: GlobalConfigHandle?, _ value: CUnsignedInt) {
    guard let c = Unmanaged<GlobalConfig>.borrow(config) else { return Log.misuse("evpl_global_config_set_rdmacm_srq_batch", "NULL config") }
    c.rdmacmSrqBatch = value
}

/// RDMA transport retries (default 4).
@_cdecl("evpl_global_config_set_rdmacm_retry_count")
public func evpl_global_config_set_rdmacm_retry_count(_ config: GlobalConfigHandle?, _ value: CUnsignedInt) {
    guard let c = Unmanaged<GlobalConfig>.borrow(config) else { return Log.misuse("evpl_global_config_set_rdmacm_retry_count", "NULL config") }
    c.rdmacmRetryCount = value
}

/// RDMA receiver-not-ready retries (default 4).
@_cdecl("evpl_global_config_set_rdmacm_rnr_retry_count")
public func evpl_global_config_set_rdmacm_rnr_retry_count(_ config: GlobalConfigHandle?, _ value: CUnsignedInt) {
    guard let c = Unmanaged<GlobalConfig>.borrow(config) else { return Log.misuse("evpl_global_config_set_rdmacm_rnr_retry_count", "NULL config") }
    c.rdmacmRnrRetryCount = value
}

/// PEM certificate path for STREAM_SOCKET_TLS (copied).
@_cdecl("evpl_global_config_set_tls_cert")
public func evpl_global_config_set_tls_cert(_ config: GlobalConfigHandle?, _ value: UnsafePointer<CChar>?) {
    guard let c = Unmanaged<GlobalConfig>.borrow(config) else { return Log.misuse("evpl_global_config_set_tls_cert", "NULL config") }
    c.tlsCert = value.map { String(cString: $0) }
}

/// PEM private key path for STREAM_SOCKET_TLS (copied).
@_cdecl("evpl_global_config_set_tls_key")
public func evpl_global_config_set_tls_key(_ config: GlobalConfigHandle?, _ value: UnsafePointer<CChar>?) {
    guard let c = Unmanaged<GlobalConfig>.borrow(config) else { return Log.misuse("evpl_global_config_set_tls_key", "NULL config") }
    c.tlsKey = value.map { String(cString: $0) }
}

/// PEM CA path for STREAM_SOCKET_TLS (copied).
@_cdecl("evpl_global_config_set_tls_ca")
public func evpl_global_config_set_tls_ca(_ config: GlobalConfigHandle?, _ value: UnsafePointer<CChar>?) {
    guard let c = Unmanaged<GlobalConfig>.borrow(config) else { return Log.misuse("evpl_global_config_set_tls_ca", "NULL config") }
    c.tlsCa = value.map { String(cString: $0) }
}

/// OpenSSL cipher string for STREAM_SOCKET_TLS (copied).
@_cdecl("evpl_global_config_set_tls_cipher_list")
public func evpl_global_config_set_tls_cipher_list(_ config: GlobalConfigHandle?, _ value: UnsafePointer<CChar>?) {
    guard let c = Unmanaged<GlobalConfig>.borrow(config) else { return Log.misuse("evpl_global_config_set_tls_cipher_list", "NULL config") }
    c.tlsCipherList = value.map { String(cString: $0) }
}

/// Verify the TLS peer's certificate (default 1).
@_cdecl("evpl_global_config_set_tls_verify_peer")
public func evpl_global_config_set_tls_verify_peer(_ config: GlobalConfigHandle?, _ value: CInt) {
    guard let c = Unmanaged<GlobalConfig>.borrow(config) else { return Log.misuse("evpl_global_config_set_tls_verify_peer", "NULL config") }
    c.tlsVerifyPeer = value
}

/// Use kernel TLS offload when available (default 1).
@_cdecl("evpl_global_config_set_tls_ktls_enabled")
public func evpl_global_config_set_tls_ktls_enabled(_ config: GlobalConfigHandle?, _ value: CInt) {
    guard let c = Unmanaged<GlobalConfig>.borrow(config) else { return Log.misuse("evpl_global_config_set_tls_ktls_enabled", "NULL config") }
    c.tlsKtlsEnabled = value
}
