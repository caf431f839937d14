import ArgumentParser
import Glibc

// evperf's entry point. ArgumentParser would exit with 64 for a bad command
// line; evperf exits with 2 (like evpl_bench and most Unix tools), after one
// line on stderr. --help and --version still print and exit 0.

do {
    var command = try Evperf.parseAsRoot()
    try command.run()
} catch let error as EvperfError {
    fputs("evperf: \(error.message)\n", stderr)
    exit(error.exitCode)
} catch {
    let code = Evperf.exitCode(for: error)
    if code == .validationFailure {
        fputs("evperf: \(Evperf.message(for: error)) (see 'evperf --help')\n", stderr)
        exit(2)
    }
    Evperf.exit(withError: error)
}
