import CEvpl

/// A timer on an event loop: its handler runs on the loop's thread, once
/// after a delay or repeatedly at an interval, until cancelled.
///
/// Make one with ``EvplLoop/addTimer(every:_:)`` or
/// ``EvplLoop/addTimer(after:_:)``. The loop keeps an active timer alive, so
/// the result may be ignored. Cancelling inside the handler is safe.
public final class EvplTimer {
    /// The C timer, followed by a pointer back to this object.
    private let storage: UnsafeMutablePointer<evpl_timer>
    private weak var loop: EvplLoop?
    private let intervalMicroseconds: UInt64
    private let repeats: Bool
    private let handler: (EvplTimer) -> Void

    /// Whether the timer is armed (not yet fired, for a one-shot timer, and
    /// not cancelled).
    public private(set) var isActive = false

    init(loop: EvplLoop, interval: Duration, repeats: Bool, handler: @escaping (EvplTimer) -> Void) {
        self.loop = loop
        intervalMicroseconds = interval.nanoseconds / 1000
        self.repeats = repeats
        self.handler = handler
        storage = OwnerSlot.allocate(evpl_timer.self)
        OwnerSlot.setOwner(storage, self)
    }

    deinit {
        OwnerSlot.deallocate(storage)
    }

    /// Arms the timer on `loop` (which keeps it alive while armed).
    func start(on loop: EvplLoop) {
        guard let handle = loop.handle else { return }
        isActive = true
        loop.timers[ObjectIdentifier(self)] = self
        evpl_add_timer(handle, storage, EvplTimer.callback, intervalMicroseconds)
    }

    /// Stops the timer; its handler does not run again. Harmless on a timer
    /// that is no longer active.
    public func cancel() {
        guard isActive, let loop, let handle = loop.handle else { return }
        end(on: handle)
        loop.timers[ObjectIdentifier(self)] = nil
    }

    /// Disarms the C timer (the loop drops its reference separately).
    func end(on handle: LoopHandle) {
        guard isActive else { return }
        isActive = false
        evpl_remove_timer(handle, storage)
    }

    private func fire() {
        if !repeats { cancel() }
        handler(self)
    }

    private static let callback: evpl_timer_callback_t = { _, timer in
        let owner = OwnerSlot.owner(of: timer!, as: EvplTimer.self)
        owner.fire()
    }
}

extension EvplLoop {
    /// Runs `handler` on this loop every `interval` until the timer is cancelled.
    ///
    /// - Parameters:
    ///   - interval: The time between two runs (microsecond resolution).
    ///   - handler: Runs on the loop's thread; it receives the timer, so it
    ///     can cancel it.
    /// - Returns: The timer, already armed (inactive if the loop is closed).
    @discardableResult
    public func addTimer(every interval: Duration, _ handler: @escaping (EvplTimer) -> Void) -> EvplTimer {
        let timer = EvplTimer(loop: self, interval: interval, repeats: true, handler: handler)
        timer.start(on: self)
        return timer
    }

    /// Runs `handler` on this loop once, after `delay`, unless the timer is
    /// cancelled first.
    ///
    /// - Parameters:
    ///   - delay: The time until the run (microsecond resolution).
    ///   - handler: Runs on the loop's thread; the timer is no longer active
    ///     by then.
    /// - Returns: The timer, already armed (inactive if the loop is closed).
    @discardableResult
    public func addTimer(after delay: Duration, _ handler: @escaping (EvplTimer) -> Void) -> EvplTimer {
        let timer = EvplTimer(loop: self, interval: delay, repeats: false, handler: handler)
        timer.start(on: self)
        return timer
    }
}
