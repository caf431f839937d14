import Synchronization

/// One loop thread's counters. The loop thread adds; the main thread reads
/// them while the run goes on (progress, the measured window), so they are
/// atomics: one uncontended relaxed add per event.
final class Stats {
    /// Completed operations, every phase (progress).
    let ops = Atomic<Int>(0)
    /// Bytes moved, every phase (stream: sent by a client, received by a server).
    let bytes = Atomic<Int>(0)
    /// Measured messages sent (not used by stream, whose bytes are sampled).
    let sent = Atomic<Int>(0)
    /// Replies to measured messages.
    let received = Atomic<Int>(0)
    /// Unexpected events: a bad reply, a lost connection, a failed connect.
    let errors = Atomic<Int>(0)
    /// The errno of the last failed connection (0: none).
    let lastErrno = Atomic<Int>(0)
    /// Flows that have made progress at least once.
    let ready = Atomic<Int>(0)
    /// Flows that have nothing outstanding after the measured time (or failed).
    let drained = Atomic<Int>(0)
    /// Server: connections accepted.
    let accepted = Atomic<Int>(0)
}

extension Atomic where Value == Int {
    @inline(__always) func add(_ n: Int = 1) { wrappingAdd(n, ordering: .relaxed) }
    var value: Int { load(ordering: .relaxed) }
}

extension Array where Element == Stats {
    /// The sum of one counter over every thread.
    func total(_ counter: (Stats) -> Int) -> Int { reduce(0) { $0 + counter($1) } }
}
