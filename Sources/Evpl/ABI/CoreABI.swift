import CEvpl
import Glibc

// ABI area: core (event loop life cycle, clock, protocol queries).

/// Initialise the library with `global_config` (NULL: defaults) and take
/// ownership of it. Optional: the first library call initialises with
/// defaults. A second call logs an error and releases the config.
@_cdecl("evpl_init")
public func evpl_init(_ global_config: GlobalConfigHandle?) {
    Library.initialize(config: global_config.map { GlobalConfig.take($0) })
}

/// Create an event loop owned by the calling thread. `config` is copied (the
/// caller keeps it and may release or reuse it); NULL means defaults.
/// Returns NULL, with a logged reason, if the loop cannot be created.
@_cdecl("evpl_create")
public func evpl_create(_ config: ThreadConfigHandle?) -> LoopHandle? {
    let c = Unmanaged<ThreadConfig>.borrow(config)
    guard let loop = EventLoop(config: c) else { return nil }
    return Unmanaged.passRetained(loop).handle
}

/// Destroy a loop: every bind it owns is closed and gets its DISCONNECTED
/// callback, then everything is released. NULL is ignored.
@_cdecl("evpl_destroy")
public func evpl_destroy(_ evpl: LoopHandle?) {
    guard let evpl, let loop = Unmanaged<EventLoop>.borrow(evpl) else {
        return Log.misuse("evpl_destroy", "NULL loop")
    }
    loop.destroy()
    Unmanaged<EventLoop>.fromOpaque(UnsafeRawPointer(evpl)).release()
}

/// Run one iteration: due timers, ready I/O, then armed deferrals and send
/// flushes. With nothing to do, waits up to the loop's wait_ms.
@_cdecl("evpl_continue")
public func evpl_continue(_ evpl: LoopHandle?) {
    guard let loop = Unmanaged<EventLoop>.borrow(evpl) else { return Log.misuse("evpl_continue", "NULL loop") }
    loop.iterate()
}

/// Run iterations until evpl_stop is called (from a callback on this loop or
/// from another thread).
@_cdecl("evpl_run")
public func evpl_run(_ evpl: LoopHandle?) {
    guard let loop = Unmanaged<EventLoop>.borrow(evpl) else { return Log.misuse("evpl_run", "NULL loop") }
    loop.run()
}

/// Make evpl_run return. Any thread; wakes a sleeping loop promptly.
@_cdecl("evpl_stop")
public func evpl_stop(_ evpl: LoopHandle?) {
    guard let loop = Unmanaged<EventLoop>.borrow(evpl) else { return Log.misuse("evpl_stop", "NULL loop") }
    loop.stop()
}

/// The monotonic clock (CLOCK_MONOTONIC) as the loop's timers see it.
@_cdecl("evpl_get_hf_monotonic_time")
public func evpl_get_hf_monotonic_time(_ evpl: LoopHandle?, _ ts: UnsafeMutablePointer<timespec>?) {
    guard let ts else { return Log.misuse("evpl_get_hf_monotonic_time", "NULL timespec") }
    _ = evpl
    clock_gettime(CLOCK_MONOTONIC, ts)
}

/// Look up a protocol id by its exact name ("STREAM_SOCKET_TCP", ...).
/// Returns 0 and sets *id, or -1 for an unknown or NULL name.
@_cdecl("evpl_protocol_lookup")
public func evpl_protocol_lookup(_ id: UnsafeMutablePointer<evpl_protocol_id>?, _ name: UnsafePointer<CChar>?) -> CInt {
    guard let id, let name else { return -1 }
    let text = String(cString: name)
    guard let match = Protocols.names.first(where: { $0.0 == text }) else { return -1 }
    id.pointee = match.1
    return 0
}

/// 1 for stream protocols (TCP, XLIO TCP, io_uring TCP, RDMACM RC stream,
/// TLS), 0 for datagram protocols and unknown ids.
@_cdecl("evpl_protocol_is_stream")
public func evpl_protocol_is_stream(_ protocol: evpl_protocol_id) -> CInt {
    Protocols.isStream(`protocol`) ? 1 : 0
}

/// 1 if the protocol can be used on this machine now (built in, enabled in
/// the config, its library loadable, its device present); 0 otherwise.
@_cdecl("evpl_protocol_available")
public func evpl_protocol_available(_ protocol: evpl_protocol_id) -> CInt {
    Protocols.unavailableReason(`protocol`) == nil ? 1 : 0
}
