import CEvpl

/// Armed deferrals, in arming order.  `evpl_deferral.armed` marks membership,
/// so arming twice before the run queues once (coalescing).  Disarming clears
/// the entry too, so the user may free the struct right after
/// `evpl_remove_deferral`.
struct DeferralQueue {
    private var queue: [UnsafeMutablePointer<evpl_deferral>?] = []

    var isEmpty: Bool { queue.isEmpty }

    mutating func arm(_ d: UnsafeMutablePointer<evpl_deferral>) {
        guard d.pointee.armed == 0 else { return }
        d.pointee.armed = 1
        queue.append(d)
    }

    mutating func disarm(_ d: UnsafeMutablePointer<evpl_deferral>) {
        guard d.pointee.armed != 0 else { return }
        d.pointee.armed = 0
        if let i = queue.firstIndex(where: { $0 == d }) { queue[i] = nil }
    }

    /// Runs every armed deferral, including ones armed while running;
    /// returns how many ran.
    mutating func run(_ loop: LoopHandle) -> Int {
        var ran = 0
        var i = 0
        while i < queue.count {
            let entry = queue[i]
            queue[i] = nil
            i += 1
            guard let d = entry, d.pointee.armed != 0 else { continue }
            d.pointee.armed = 0
            ran += 1
            d.pointee.callback?(loop, d.pointee.private_data)
        }
        queue.removeAll(keepingCapacity: true)
        return ran
    }
}
