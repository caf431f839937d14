import CEvpl
import Glibc
import Synchronization

/// Log levels, most severe first; `EVPL_LOG_LEVEL` picks the least severe shown.
enum LogLevel: Int {
    case fatal = 0, error, warn, info, debug

    var name: StaticString {
        switch self {
        case .fatal: return "FATAL"
        case .error: return "ERROR"
        case .warn: return "WARN"
        case .info: return "INFO"
        case .debug: return "DEBUG"
        }
    }

    init?(environment value: String) {
        switch value.uppercased() {
        case "FATAL": self = .fatal
        case "ERROR": self = .error
        case "WARN", "WARNING": self = .warn
        case "INFO": self = .info
        case "DEBUG": self = .debug
        default: return nil
        }
    }
}

/// Logging: one logfmt line per message on stderr, or the user's log function
/// (`evpl_set_log_fn`).  Called from any loop thread; never on a hot path.
enum Log {
    private struct Sink {
        var logFn: evpl_log_fn?
        var flushFn: evpl_flush_fn?
    }

    private static let sink = Mutex(Sink())
    private static let threshold: LogLevel = {
        guard let raw = getenv("EVPL_LOG_LEVEL"), let level = LogLevel(environment: String(cString: raw)) else {
            return .info
        }
        return level
    }()

    static func setFunction(_ logFn: evpl_log_fn?, flush: evpl_flush_fn?) {
        sink.withLock { $0 = Sink(logFn: logFn, flushFn: flush) }
    }

    static func error(_ module: StaticString, _ message: @autoclosure () -> String,
                      file: StaticString = #fileID, line: Int = #line) {
        write(.error, module, message(), file: file, line: line)
    }

    static func warn(_ module: StaticString, _ message: @autoclosure () -> String,
                     file: StaticString = #fileID, line: Int = #line) {
        write(.warn, module, message(), file: file, line: line)
    }

    static func info(_ module: StaticString, _ message: @autoclosure () -> String,
                     file: StaticString = #fileID, line: Int = #line) {
        write(.info, module, message(), file: file, line: line)
    }

    static func debug(_ module: StaticString, _ message: @autoclosure () -> String,
                      file: StaticString = #fileID, line: Int = #line) {
        write(.debug, module, message(), file: file, line: line)
    }

    /// A caller broke an API rule (NULL handle, bad count): one ERROR line, and
    /// the call does nothing (BEHAVIOR.md §Logging and errors).
    static func misuse(_ function: StaticString, _ what: @autoclosure () -> String,
                       file: StaticString = #fileID, line: Int = #line) {
        write(.error, "core", "\(function): \(what())", file: file, line: line)
    }

    /// A broken internal invariant: log FATAL, flush, and stop the process.
    static func fatal(_ module: StaticString, _ message: String,
                      file: StaticString = #fileID, line: Int = #line) -> Never {
        write(.fatal, module, message, file: file, line: line)
        abort()
    }

    static func write(_ level: LogLevel, _ module: StaticString, _ message: String,
                      file: StaticString, line: Int) {
        guard level.rawValue <= threshold.rawValue else { return }
        let current = sink.withLock { $0 }
        if let logFn = current.logFn {
            level.name.withUTF8Buffer { levelName in
                module.withUTF8Buffer { moduleName in
                    file.withUTF8Buffer { fileName in
                        // StaticStrings are NUL-terminated in the binary.
                        let l = UnsafeRawPointer(levelName.baseAddress!).assumingMemoryBound(to: CChar.self)
                        let m = UnsafeRawPointer(moduleName.baseAddress!).assumingMemoryBound(to: CChar.self)
                        let f = UnsafeRawPointer(fileName.baseAddress!).assumingMemoryBound(to: CChar.self)
                        message.withCString { text in
                            withVaList([text]) { args in
                                logFn(l, m, f, CInt(line), "%s", args)
                            }
                        }
                    }
                }
            }
            if level == .fatal, let flush = current.flushFn { flush() }
            return
        }
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        var tm = tm()
        var seconds = ts.tv_sec
        gmtime_r(&seconds, &tm)
        let stamp = pad(Int(tm.tm_year) + 1900, 4) + "-" + pad(Int(tm.tm_mon) + 1, 2) + "-"
            + pad(Int(tm.tm_mday), 2) + "T" + pad(Int(tm.tm_hour), 2) + ":"
            + pad(Int(tm.tm_min), 2) + ":" + pad(Int(tm.tm_sec), 2) + "."
            + pad(Int(ts.tv_nsec / 1000), 6) + "Z"
        let escaped = message.replacingQuotes()
        let text = "time=\(stamp) message=\"\(escaped)\" level=\(level.name) module=\(module) file=\"\(file):\(line)\"\n"
        text.withCString { p in _ = fputs(p, stderr) }
        fflush(stderr)
    }
}

private func pad(_ v: Int, _ width: Int) -> String {
    let digits = "\(v)"
    return String(repeating: "0", count: max(0, width - digits.count)) + digits
}

private extension String {
    func replacingQuotes() -> String {
        var out = ""
        for ch in self {
            switch ch {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            default: out.append(ch)
            }
        }
        return out
    }
}
