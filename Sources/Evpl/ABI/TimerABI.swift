import CEvpl

// ABI area: timers, deferrals and doorbells

/// Arm `timer` (caller-owned) to call `callback` every `interval_us`
/// microseconds until evpl_remove_timer; `timer->deadline` holds the next
/// expiry. Adding an armed timer re-arms it. Loop thread only.
@_cdecl("evpl_add_timer")
public func evpl_add_timer(_ evpl: LoopHandle?, _ timer: UnsafeMutablePointer<evpl_timer>?,
                           _ callback: evpl_timer_callback_t?, _ interval_us: UInt64) {
    guard let loop = Unmanaged<EventLoop>.borrow(evpl), let timer else {
        return Log.misuse("evpl_add_timer", "NULL loop or timer")
    }
    timer.pointee.callback = callback
    timer.pointee.interval = interval_us
    loop.timers.insert(timer, deadline: Sys.monotonicNanoseconds() &+ interval_us &* 1000)
}

/// Disarm `timer`; safe inside its own callback (the one-shot pattern) and a
/// no-op for a timer that is not armed.
@_cdecl("evpl_remove_timer")
public func evpl_remove_timer(_ evpl: LoopHandle?, _ timer: UnsafeMutablePointer<evpl_timer>?) {
    guard let loop = Unmanaged<EventLoop>.borrow(evpl), let timer else {
        return Log.misuse("evpl_remove_timer", "NULL loop or timer")
    }
    loop.timers.remove(timer)
}

/// Initialise a caller-owned deferral completely (also on uninitialised memory).
@_cdecl("evpl_deferral_init")
public func evpl_deferral_init(_ deferral: UnsafeMutablePointer<evpl_deferral>?, _ callback: deferral_callback_t?,
                               _ private_data: UnsafeMutableRawPointer?) {
    guard let deferral else { return Log.misuse("evpl_deferral_init", "NULL deferral") }
    deferral.pointee = evpl_deferral(callback: callback, private_data: private_data, armed: 0)
}

/// Arm a deferral: its callback runs once at the end of the current
/// iteration, in arming order, however often it was armed.
@_cdecl("evpl_defer")
public func evpl_defer(_ evpl: LoopHandle?, _ deferral: UnsafeMutablePointer<evpl_deferral>?) {
    guard let loop = Unmanaged<EventLoop>.borrow(evpl), let deferral else {
        return Log.misuse("evpl_defer", "NULL loop or deferral")
    }
    loop.deferrals.arm(deferral)
}

/// Disarm a deferral (no-op when not armed).
@_cdecl("evpl_remove_deferral")
public func evpl_remove_deferral(_ evpl: LoopHandle?, _ deferral: UnsafeMutablePointer<evpl_deferral>?) {
    guard let loop = Unmanaged<EventLoop>.borrow(evpl), let deferral else {
        return Log.misuse("evpl_remove_deferral", "NULL loop or deferral")
    }
    loop.deferrals.disarm(deferral)
}

/// Set up a caller-owned doorbell on this loop: evpl_ring_doorbell (any
/// thread) wakes the loop and `callback` runs on it; rings coalesce.
@_cdecl("evpl_add_doorbell")
public func evpl_add_doorbell(_ evpl: LoopHandle?, _ doorbell: UnsafeMutablePointer<evpl_doorbell>?,
                              _ callback: evpl_doorbell_callback_t?) {
    guard let loop = Unmanaged<EventLoop>.borrow(evpl), let doorbell else {
        return Log.misuse("evpl_add_doorbell", "NULL loop or doorbell")
    }
    _ = Doorbell.add(doorbell, callback, loop: loop)
}

/// Remove a doorbell and close its file descriptor.
@_cdecl("evpl_remove_doorbell")
public func evpl_remove_doorbell(_ evpl: LoopHandle?, _ doorbell: UnsafeMutablePointer<evpl_doorbell>?) {
    guard let loop = Unmanaged<EventLoop>.borrow(evpl), let doorbell, Doorbell.isAdded(doorbell) else {
        return Log.misuse("evpl_remove_doorbell", "NULL loop, or a doorbell that was not added")
    }
    loop.removeDoorbell(doorbell)
}

/// The doorbell's pollable file descriptor (readable after a ring), or -1.
@_cdecl("evpl_doorbell_fd")
public func evpl_doorbell_fd(_ doorbell: UnsafeMutablePointer<evpl_doorbell>?) -> CInt {
    guard let doorbell, Doorbell.isAdded(doorbell) else { return -1 }
    return Doorbell.fd(doorbell)
}

/// Ring a doorbell. Any thread.
@_cdecl("evpl_ring_doorbell")
public func evpl_ring_doorbell(_ doorbell: UnsafeMutablePointer<evpl_doorbell>?) {
    guard let doorbell, Doorbell.isAdded(doorbell) else {
        return Log.misuse("evpl_ring_doorbell", "NULL doorbell or one that was not added")
    }
    Doorbell.ring(doorbell)
}
