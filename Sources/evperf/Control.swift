import Synchronization

/// The phases of a run, in order. The main thread moves the phase on; loop
/// threads read it when they send, so traffic needs no other signal.
enum Phase: Int {
    /// Connections come up and traffic runs; nothing is counted as measured.
    case warmup
    /// Messages sent now are measured, and so are their replies.
    case measuring
    /// No new messages; outstanding ones complete (or time out).
    case draining
}

/// What the main thread and every loop thread share.
final class Control {
    private let value = Atomic<Int>(Phase.warmup.rawValue)

    var phase: Phase { Phase(rawValue: value.load(ordering: .relaxed)) ?? .draining }

    func enter(_ phase: Phase) { value.store(phase.rawValue, ordering: .relaxed) }
}
