import Foundation
import Glibc

/// The live display on stderr while a run goes on: one line rewritten in
/// place on a terminal (four times a second), a plain line a second otherwise.
final class Progress {
    private let live = isatty(STDERR_FILENO) == 1
    private var interval: Double { live ? 0.25 : 1.0 }
    private var lastTime = 0.0
    private var lastOps = 0
    private var lastBytes = 0
    private var shown = false

    /// Starts the rate computation from these totals.
    func reset(time: Double, ops: Int, bytes: Int) {
        lastTime = time
        lastOps = ops
        lastBytes = bytes
    }

    /// Shows the rates since the previous line if one is due. `time` counts
    /// from the start of the run; `ops` and `bytes` are totals.
    func update(_ label: String, time: Double, ops: Int, bytes: Int) {
        let dt = time - lastTime
        guard dt >= interval else { return }
        let line = "evperf " + label + String(format: " %6.1f s  %12.0f ops/s  %8.3f GB/s", time,
                                              Double(ops - lastOps) / dt, Double(bytes - lastBytes) / dt / 1e9)
        if live {
            fputs("\r\u{1B}[K" + line, stderr)
            shown = true
        } else {
            fputs(line + "\n", stderr)
        }
        fflush(stderr)
        reset(time: time, ops: ops, bytes: bytes)
    }

    /// Clears the live line before the report.
    func finish() {
        if live && shown {
            fputs("\r\u{1B}[K", stderr)
            fflush(stderr)
        }
        shown = false
    }
}
