import CEvpl

// ABI area: logging

/// Send log messages to `log_fn` instead of stderr (NULL restores the
/// default logfmt lines on stderr). `flush_fn` (may be NULL) is called after
/// a fatal message. Set it before evpl_init to see every message. The log
/// function may be called from any loop thread.
@_cdecl("evpl_set_log_fn")
public func evpl_set_log_fn(_ log_fn: LogFunctionPointer?, _ flush_fn: evpl_flush_fn?) {
    // Valid because C passes an evpl_log_fn here (see LogFunctionPointer).
    Log.setFunction(unsafeBitCast(log_fn, to: evpl_log_fn?.self), flush: flush_fn)
}
