import CEvpl

/// An event loop: the Swift face of `struct evpl`.
///
/// A loop belongs to the thread that created it: create it, run it, and use
/// everything made from it (connections, sockets, timers, buffers) on that
/// thread. Every handler runs on that thread, from inside ``runOnce()``,
/// ``run()`` or ``run(until:timeout:)``, never from inside the call that
/// caused it. Only ``stop()`` and ``EvplDoorbell/ring()`` may be called from
/// other threads. To run a loop on a thread of its own, use
/// ``EvplLoopThread``.
///
/// ```swift
/// let loop = try EvplLoop()
/// let connection = try loop.connect(to: EvplEndpoint(host: "127.0.0.1", port: 8000))
/// connection.onConnected = { $0.send("hello".utf8) }
/// connection.onData = { connection, data in print(data.bytes); connection.close() }
/// loop.run(until: { connection.isClosed }, timeout: .seconds(5))
/// ```
///
/// Closing the loop (``close()``, or when the last reference goes away) closes
/// every connection and socket it owns, delivering each one's disconnection.
/// Handlers that capture the loop strongly keep it alive: call ``close()``
/// when done.
public final class EvplLoop {
    /// The C loop; nil once closed.
    private(set) var handle: LoopHandle?
    /// Whether this object created the C loop (and so destroys it).
    private let owned: Bool

    var timers: [ObjectIdentifier: EvplTimer] = [:]
    var doorbells: [ObjectIdentifier: EvplDoorbell] = [:]
    var attachments: [ObjectIdentifier: EvplListener.Attachment] = [:]

    /// Creates a loop owned by the calling thread.
    ///
    /// - Parameter configuration: The loop's settings.
    /// - Throws: ``EvplError/loopCreationFailed`` if the loop cannot be created.
    public init(configuration: Configuration = Configuration()) throws(EvplError) {
        let config = configuration.makeThreadConfig()
        defer { evpl_thread_config_release(config) }
        guard let made = evpl_create(config) else { throw .loopCreationFailed }
        handle = made
        owned = true
    }

    /// Wraps a loop that something else (a loop thread) owns and destroys.
    init(borrowing handle: LoopHandle) {
        self.handle = handle
        owned = false
    }

    deinit {
        close()
    }

    /// Whether the loop has been closed.
    public var isClosed: Bool { handle == nil }

    /// Runs one iteration: due timers, ready I/O, then deferred work. With
    /// nothing to do it sleeps until an event, a timer or a doorbell (or
    /// ``Configuration/maximumWait``).
    public func runOnce() {
        guard let handle else { return }
        evpl_continue(handle)
    }

    /// Runs iterations until ``stop()`` is called, from a handler on this loop
    /// or from another thread.
    public func run() {
        guard let handle else { return }
        evpl_run(handle)
    }

    /// Makes ``run()`` return. Any thread may call it; a sleeping loop wakes
    /// promptly.
    public func stop() {
        guard let handle else { return }
        evpl_stop(handle)
    }

    /// Runs iterations until `condition` is true or `timeout` has passed.
    ///
    /// - Parameters:
    ///   - condition: Checked before each iteration, on this thread.
    ///   - timeout: The longest time to run; `nil` runs until `condition`
    ///     holds.
    /// - Returns: Whether `condition` held at the end.
    @discardableResult
    public func run(until condition: () -> Bool, timeout: Duration? = nil) -> Bool {
        guard let timeout else {
            while !condition() && !isClosed { runOnce() }
            return condition()
        }
        let deadline = Sys.monotonicNanoseconds() &+ timeout.nanoseconds
        // Wakes a sleeping loop at the deadline.
        let alarm = addTimer(after: timeout) { _ in }
        defer { alarm.cancel() }
        while !condition() && !isClosed && Sys.monotonicNanoseconds() < deadline {
            runOnce()
        }
        return condition()
    }

    /// Closes the loop: detaches it from its listeners, cancels its timers,
    /// removes its doorbells, then closes every connection and socket (each
    /// gets its disconnection handler) and releases the loop. Closing twice
    /// is harmless; afterwards the loop does nothing. Call it on the loop's
    /// thread. A loop run by an ``EvplLoopThread`` is closed by that thread.
    public func close() {
        guard let handle else { return }
        for attachment in attachments.values { attachment.end(on: handle) }
        for timer in timers.values { timer.end(on: handle) }
        for doorbell in doorbells.values { doorbell.end(on: handle) }
        if owned { evpl_destroy(handle) }
        self.handle = nil
        timers.removeAll()
        doorbells.removeAll()
        attachments.removeAll()
    }
}

extension Duration {
    /// The duration in whole nanoseconds, clamped to `0...UInt64.max`.
    var nanoseconds: UInt64 {
        let (seconds, attoseconds) = components
        guard seconds >= 0 else { return 0 }
        let (whole, overflow) = UInt64(seconds).multipliedReportingOverflow(by: 1_000_000_000)
        return overflow ? .max : whole &+ UInt64(attoseconds / 1_000_000_000)
    }
}
