import CEvpl

// ABI area: threads

/// Start a thread with its own loop (config copied; NULL = defaults). `init`
/// runs on the new thread before this returns; its return value is passed
/// to `shutdown`. Returns NULL if the thread or its loop cannot be created.
@_cdecl("evpl_thread_create")
public func evpl_thread_create(_ config: ThreadConfigHandle?, _ init_callback: evpl_thread_init_callback_t?,
                               _ shutdown_callback: evpl_thread_shutdown_callback_t?,
                               _ private_data: UnsafeMutableRawPointer?) -> ThreadHandle? {
    _ = Library.config
    let t = LoopThread(config: Unmanaged<ThreadConfig>.borrow(config), initCallback: init_callback,
                       shutdownCallback: shutdown_callback, privateData: private_data)
    guard t.start() else { return nil }
    return Unmanaged.passRetained(t).handle
}

/// Stop the thread's loop, close its binds (their DISCONNECTED callbacks
/// run), run the shutdown callback, and join. NULL is ignored.
@_cdecl("evpl_thread_destroy")
public func evpl_thread_destroy(_ thread: ThreadHandle?) {
    guard let thread else { return Log.misuse("evpl_thread_destroy", "NULL thread") }
    let t = Unmanaged<LoopThread>.fromOpaque(UnsafeRawPointer(thread))
    t.takeUnretainedValue().stopAndJoin()
    t.release()
}

/// `nthreads` threads as evpl_thread_create makes them, each calling `init`
/// with `private_data`. Returns NULL if nthreads < 1 or a thread fails.
@_cdecl("evpl_threadpool_create")
public func evpl_threadpool_create(_ config: ThreadConfigHandle?, _ nthreads: CInt,
                                   _ init_callback: evpl_thread_init_callback_t?,
                                   _ shutdown_callback: evpl_thread_shutdown_callback_t?,
                                   _ private_data: UnsafeMutableRawPointer?) -> ThreadPoolHandle? {
    guard nthreads > 0 else {
        Log.misuse("evpl_threadpool_create", "nthreads \(nthreads) < 1")
        return nil
    }
    _ = Library.config
    let pool = ThreadPool()
    for _ in 0..<nthreads {
        let t = LoopThread(config: Unmanaged<ThreadConfig>.borrow(config), initCallback: init_callback,
                           shutdownCallback: shutdown_callback, privateData: private_data)
        guard t.start() else {
            pool.destroy()
            return nil
        }
        pool.threads.append(t)
    }
    return Unmanaged.passRetained(pool).handle
}

/// Destroy every thread of the pool (as evpl_thread_destroy). NULL is ignored.
@_cdecl("evpl_threadpool_destroy")
public func evpl_threadpool_destroy(_ threadpool: ThreadPoolHandle?) {
    guard let threadpool else { return Log.misuse("evpl_threadpool_destroy", "NULL pool") }
    let p = Unmanaged<ThreadPool>.fromOpaque(UnsafeRawPointer(threadpool))
    p.takeUnretainedValue().destroy()
    p.release()
}
