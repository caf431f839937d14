import CEvpl
import Glibc

/// A thread running its own loop (`struct evpl_thread`).  Creation returns
/// once the init callback has run on the new thread; destruction stops the
/// loop, closes its binds (their DISCONNECTED run), runs the shutdown
/// callback with init's return value, and joins.  BEHAVIOR.md §Threads.
final class LoopThread {
    private let config: ThreadConfig?
    private let initCallback: evpl_thread_init_callback_t?
    private let shutdownCallback: evpl_thread_shutdown_callback_t?
    private let privateData: UnsafeMutableRawPointer?
    private var thread = pthread_t()
    private var mutex = pthread_mutex_t()
    private var cond = pthread_cond_t()
    private var started = false
    /// Set on the new thread before `started`; read by the creator after.
    private(set) var loop: EventLoop?
    private var initResult: UnsafeMutableRawPointer?

    init(config: ThreadConfig?, initCallback: evpl_thread_init_callback_t?,
         shutdownCallback: evpl_thread_shutdown_callback_t?, privateData: UnsafeMutableRawPointer?) {
        self.config = config?.copy()
        self.initCallback = initCallback
        self.shutdownCallback = shutdownCallback
        self.privateData = privateData
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&cond, nil)
    }

    deinit {
        pthread_mutex_destroy(&mutex)
        pthread_cond_destroy(&cond)
    }

    /// Starts the thread and waits for its init; false if either failed.
    func start() -> Bool {
        let me = Unmanaged.passRetained(self)
        let rc = pthread_create(&thread, nil, { arg in
            let t = Unmanaged<LoopThread>.fromOpaque(arg!).takeRetainedValue()
            t.main()
            return nil
        }, me.toOpaque())
        if rc != 0 {
            me.release()
            Log.error("thread", "pthread_create: \(String(cString: strerror(rc)))")
            return false
        }
        pthread_mutex_lock(&mutex)
        while !started { pthread_cond_wait(&cond, &mutex) }
        pthread_mutex_unlock(&mutex)
        if loop == nil {
            pthread_join(thread, nil)
            return false
        }
        return true
    }

    private func main() {
        let l = EventLoop(config: config)
        if let l {
            initResult = initCallback?(l.handle, privateData)
        }
        pthread_mutex_lock(&mutex)
        loop = l
        started = true
        pthread_cond_signal(&cond)
        pthread_mutex_unlock(&mutex)
        guard let l else { return }
        l.run()
        l.closeAllBinds()
        shutdownCallback?(l.handle, initResult)
        l.destroy()
    }

    func stopAndJoin() {
        loop?.stop()
        pthread_join(thread, nil)
    }
}
