import CEvpl
import Synchronization

/// An event loop running on a thread of its own.
///
/// The `setup` closure runs on the new thread, with the thread's loop, before
/// the initializer returns: make listeners' attachments, connections and
/// timers there. Afterwards, ``perform(_:)`` runs more work on the loop from
/// any thread. ``stop()`` (or the last reference going away) stops the loop,
/// closes its connections (their disconnection handlers run on the loop's
/// thread) and joins the thread.
///
/// ```swift
/// let listener = EvplListener()
/// let server = try EvplLoopThread { loop in
///     try? loop.attach(listener) { connection in
///         connection.onData = { connection, data in connection.send(data) }
///     }
/// }
/// try listener.listen(on: EvplEndpoint(host: "127.0.0.1", port: 8000))
/// // ...
/// server.stop()
/// ```
public final class EvplLoopThread: @unchecked Sendable {
    private let context: Context
    private var thread: ThreadHandle?

    /// Starts the thread and its loop, and runs `setup` there.
    ///
    /// - Parameters:
    ///   - configuration: The loop's settings.
    ///   - setup: Runs on the new thread with its loop before this returns.
    /// - Throws: ``EvplError/threadCreationFailed`` if the thread or its loop
    ///   could not be created.
    public init(configuration: EvplLoop.Configuration = EvplLoop.Configuration(),
                setup: @escaping (EvplLoop) -> Void) throws(EvplError) {
        context = Context(setup: setup)
        let config = configuration.makeThreadConfig()
        defer { evpl_thread_config_release(config) }
        let retained = Unmanaged.passRetained(context).toOpaque()  // the thread's, released at shutdown
        guard let made = evpl_thread_create(config, Context.initCallback, Context.shutdownCallback, retained) else {
            Unmanaged<Context>.fromOpaque(retained).release()
            throw .threadCreationFailed
        }
        thread = made
    }

    deinit {
        stop()
    }

    /// Runs `work` on the loop's thread, soon. Any thread may call it; work
    /// submitted after the loop stopped is dropped.
    ///
    /// - Parameter work: Runs on the loop's thread with its loop.
    public func perform(_ work: @escaping @Sendable (EvplLoop) -> Void) {
        context.submit(work)
    }

    /// Stops the loop, closes its connections, and joins the thread. Call it
    /// from another thread than the loop's; calling it again does nothing.
    public func stop() {
        guard let thread else { return }
        self.thread = nil
        evpl_thread_destroy(thread)
    }

    /// What the loop thread shares with the others: the setup closure, the
    /// loop wrapper, and work submitted through a doorbell.
    private final class Context {
        struct Inbox {
            var work: [@Sendable (EvplLoop) -> Void] = []
            var doorbell: EvplDoorbell?
        }

        let setup: (EvplLoop) -> Void
        /// Touched only on the loop's thread.
        var loop: EvplLoop?
        let inbox = Mutex(Inbox())

        init(setup: @escaping (EvplLoop) -> Void) {
            self.setup = setup
        }

        /// Any thread: queue work and ring the loop (nothing once it is gone).
        func submit(_ work: @escaping @Sendable (EvplLoop) -> Void) {
            inbox.withLock { inbox in
                guard let doorbell = inbox.doorbell else { return }
                inbox.work.append(work)
                doorbell.ring()
            }
        }

        /// Loop thread: run the submitted work.
        func drain() {
            let work = inbox.withLock { inbox in
                defer { inbox.work.removeAll() }
                return inbox.work
            }
            guard let loop else { return }
            for item in work { item(loop) }
        }

        func start(_ handle: LoopHandle) {
            let loop = EvplLoop(borrowing: handle)
            self.loop = loop
            let doorbell = try? loop.addDoorbell { [weak self] in self?.drain() }
            inbox.withLock { $0.doorbell = doorbell }
            setup(loop)
        }

        func shutDown() {
            inbox.withLock { inbox in
                inbox.doorbell = nil
                inbox.work.removeAll()
            }
            loop?.close()
            loop = nil
        }

        static let initCallback: evpl_thread_init_callback_t = { loop, context in
            Unmanaged<Context>.fromOpaque(context!).takeUnretainedValue().start(loop!)
            return context
        }

        static let shutdownCallback: evpl_thread_shutdown_callback_t = { _, context in
            Unmanaged<Context>.fromOpaque(context!).takeRetainedValue().shutDown()
        }
    }
}
