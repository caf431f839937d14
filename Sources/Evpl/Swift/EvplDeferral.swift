import CEvpl

/// Work deferred to the end of the current loop iteration.
///
/// Arming a deferral makes its handler run once at the end of the current
/// iteration, after timers and I/O, however often it was armed in between;
/// deferrals run in arming order. Make one with
/// ``EvplLoop/makeDeferral(_:)``, or defer a closure once with
/// ``EvplLoop/atEndOfIteration(_:)``. An armed deferral is kept alive by the
/// loop.
public final class EvplDeferral {
    private let storage: UnsafeMutablePointer<evpl_deferral>
    private weak var loop: EvplLoop?
    private let handler: () -> Void

    /// Whether the deferral is armed and has not run yet.
    public private(set) var isArmed = false

    init(loop: EvplLoop, handler: @escaping () -> Void) {
        self.loop = loop
        self.handler = handler
        storage = .allocate(capacity: 1)
        evpl_deferral_init(storage, EvplDeferral.callback, Unmanaged.passUnretained(self).toOpaque())
    }

    deinit {
        storage.deallocate()
    }

    /// Arms the deferral: its handler runs at the end of the current
    /// iteration. Arming an armed deferral does nothing.
    public func arm() {
        guard !isArmed, let handle = loop?.handle else { return }
        isArmed = true
        _ = Unmanaged.passRetained(self)  // released when it runs or is disarmed
        evpl_defer(handle, storage)
    }

    /// Disarms the deferral; its handler does not run (until armed again).
    public func disarm() {
        guard isArmed, let handle = loop?.handle else { return }
        isArmed = false
        evpl_remove_deferral(handle, storage)
        Unmanaged.passUnretained(self).release()
    }

    private static let callback: deferral_callback_t = { _, context in
        let deferral = Unmanaged<EvplDeferral>.fromOpaque(context!).takeRetainedValue()
        deferral.isArmed = false
        deferral.handler()
    }
}

extension EvplLoop {
    /// Makes a deferral whose handler runs on this loop each time it is armed.
    ///
    /// - Parameter handler: Runs on the loop's thread at the end of an
    ///   iteration in which the deferral was armed.
    /// - Returns: The deferral, not armed yet.
    public func makeDeferral(_ handler: @escaping () -> Void) -> EvplDeferral {
        EvplDeferral(loop: self, handler: handler)
    }

    /// Runs `work` once, on this loop, at the end of the current iteration.
    ///
    /// - Parameter work: Runs on the loop's thread.
    public func atEndOfIteration(_ work: @escaping () -> Void) {
        makeDeferral(work).arm()
    }
}
