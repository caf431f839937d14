/// A failure evperf reports in one line. Usage problems found after parsing
/// (an unavailable protocol, a port in use) exit with 2, failed runs with 1.
struct EvperfError: Error {
    let message: String
    let exitCode: Int32

    static func usage(_ message: String) -> EvperfError { EvperfError(message: message, exitCode: 2) }
    static func failed(_ message: String) -> EvperfError { EvperfError(message: message, exitCode: 1) }
}
