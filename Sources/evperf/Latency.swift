import Histogram

/// Latencies of one loop thread in nanoseconds, in an HdrHistogram (three
/// significant digits, up to a minute). Recording never allocates.
struct Latency {
    static let highest: UInt64 = 60_000_000_000

    private var histogram = Histogram<UInt64>(highestTrackableValue: Latency.highest,
                                              numberOfSignificantValueDigits: .three)

    @inline(__always)
    mutating func record(nanoseconds: UInt64) {
        _ = histogram.record(min(nanoseconds, Latency.highest))
    }

    mutating func add(_ other: Latency) { histogram.add(other.histogram) }

    var count: Int { Int(histogram.totalCount) }

    /// The value at `percentile` (0...100) in microseconds; nil when empty.
    func microseconds(atPercentile percentile: Double) -> Double? {
        count > 0 ? Double(histogram.valueAtPercentile(percentile)) / 1000 : nil
    }

    var maxMicroseconds: Double? { count > 0 ? Double(histogram.max) / 1000 : nil }
}
