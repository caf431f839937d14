import CEvpl
import Synchronization

/// A cross-thread wake-up: any thread rings it, and its handler runs on the
/// loop's thread.
///
/// Rings that arrive before the loop gets to them coalesce into one run of
/// the handler. Make one with ``EvplLoop/addDoorbell(_:)``; the loop keeps
/// it until ``remove()`` or until the loop is closed. Ringing a removed
/// doorbell does nothing.
public final class EvplDoorbell: @unchecked Sendable {
    /// The C doorbell, followed by a pointer back to this object.
    private let storage: UnsafeMutablePointer<evpl_doorbell>
    /// Whether the C doorbell is added; guards `ring` against removal.
    private let added = Mutex(false)
    private weak var loop: EvplLoop?
    private let handler: () -> Void

    init(loop: EvplLoop, handler: @escaping () -> Void) {
        self.loop = loop
        self.handler = handler
        storage = OwnerSlot.allocate(evpl_doorbell.self)
        OwnerSlot.setOwner(storage, self)
    }

    deinit {
        OwnerSlot.deallocate(storage)
    }

    /// Adds the C doorbell to `loop`; false if its file descriptor could not be made.
    func add(to handle: LoopHandle) -> Bool {
        evpl_add_doorbell(handle, storage, EvplDoorbell.callback)
        let ok = evpl_doorbell_fd(storage) >= 0
        added.withLock { $0 = ok }
        return ok
    }

    /// Rings the doorbell: the loop wakes and runs the handler. Any thread.
    public func ring() {
        added.withLock { isAdded in
            if isAdded { evpl_ring_doorbell(storage) }
        }
    }

    /// Removes the doorbell from its loop. Call it on the loop's thread.
    public func remove() {
        guard let loop, let handle = loop.handle else { return }
        end(on: handle)
        loop.doorbells[ObjectIdentifier(self)] = nil
    }

    /// Removes the C doorbell (the loop drops its reference separately).
    func end(on handle: LoopHandle) {
        let wasAdded = added.withLock { isAdded in
            defer { isAdded = false }
            return isAdded
        }
        if wasAdded { evpl_remove_doorbell(handle, storage) }
    }

    private static let callback: evpl_doorbell_callback_t = { _, doorbell in
        let owner = OwnerSlot.owner(of: doorbell!, as: EvplDoorbell.self)
        owner.handler()
    }
}

extension EvplLoop {
    /// Adds a doorbell whose handler runs on this loop whenever it is rung.
    ///
    /// - Parameter handler: Runs on the loop's thread after one or more rings.
    /// - Returns: The doorbell; ring it from any thread.
    /// - Throws: ``EvplError/loopClosed``, or
    ///   ``EvplError/doorbellCreationFailed`` if its file descriptor could not
    ///   be made.
    public func addDoorbell(_ handler: @escaping () -> Void) throws(EvplError) -> EvplDoorbell {
        guard let handle else { throw .loopClosed }
        let doorbell = EvplDoorbell(loop: self, handler: handler)
        guard doorbell.add(to: handle) else { throw .doorbellCreationFailed }
        doorbells[ObjectIdentifier(doorbell)] = doorbell
        return doorbell
    }
}
