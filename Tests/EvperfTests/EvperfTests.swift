import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// Runs the built evperf binary (swift build --product evperf; `make test`
/// builds it first) for one second per mode/protocol pair and checks its JSON.
final class EvperfTests: XCTestCase {
    // MARK: Loopback

    func testLoopbackTCP() throws {
        for test in ["pingpong", "stream", "rate", "conns"] {
            let r = try measure([test, "-r", "STREAM_SOCKET_TCP"])
            XCTAssertEqual(r["mode"] as? String, "loopback")
            XCTAssertEqual(r["test"] as? String, test)
        }
    }

    func testLoopbackUDP() throws {
        for test in ["pingpong", "rate"] {
            let r = try measure([test, "-r", "DATAGRAM_SOCKET_UDP"])
            XCTAssertEqual(r["protocol"] as? String, "DATAGRAM_SOCKET_UDP")
        }
    }

    func testLoopbackThreadsAndQueueDepth() throws {
        let r = try measure(["pingpong", "-P", "2", "-n", "4", "--queue-depth", "4"])
        XCTAssertEqual(r["threads"] as? Int, 2)
        XCTAssertEqual(r["connections"] as? Int, 4)
        XCTAssertEqual(r["window"] as? Int, 4)
    }

    // MARK: Server and client

    func testServerAndClientTCP() throws {
        let port = try freePort()
        let server = try Run(evperf(), ["pingpong", "-m", "server", "-p", "\(port)", "-d", "20", "--json"])
        defer { server.stop() }
        try server.waitForStderr(containing: "listening", timeout: 10)

        let client = try measure(["pingpong", "-m", "client", "-p", "\(port)"])
        XCTAssertEqual(client["mode"] as? String, "client")

        server.interrupt()
        let (code, out, err) = server.wait(timeout: 10)
        XCTAssertEqual(code, 0, err)
        let served = try json(out)
        XCTAssertEqual(served["mode"] as? String, "server")
        XCTAssertEqual(served["accepted"] as? Int, 1)
        // The server also saw the warm-up and drain traffic.
        XCTAssertGreaterThanOrEqual(served["received"] as? Int ?? 0, client["received"] as? Int ?? .max)
    }

    // MARK: Errors

    func testUnavailableProtocol() throws {
        let (code, out, err) = try Run(evperf(), ["-r", "STREAM_RDMACM_RC", "-d", "1"]).wait(timeout: 20)
        XCTAssertEqual(code, 2)
        XCTAssertEqual(out, "")
        XCTAssertEqual(lines(err).count, 1, err)
        XCTAssertTrue(err.contains("STREAM_RDMACM_RC is not available: "), err)
    }

    func testBadOptions() throws {
        let cases: [([String], String)] = [
            (["--bogus"], "--bogus"),
            (["--threads", "0"], "--threads"),
            (["--size", "huge"], "--size"),
            (["nosuchtest"], "nosuchtest"),
            (["-r", "NO_SUCH_PROTOCOL"], "NO_SUCH_PROTOCOL"),
            (["stream", "-r", "DATAGRAM_SOCKET_UDP"], "stream protocol"),
            (["rate", "--queue-depth", "4"], "--queue-depth"),
        ]
        for (arguments, mention) in cases {
            let (code, out, err) = try Run(evperf(), arguments).wait(timeout: 20)
            XCTAssertEqual(code, 2, "\(arguments): \(err)")
            XCTAssertEqual(out, "", "\(arguments)")
            XCTAssertEqual(lines(err).count, 1, "\(arguments): \(err)")
            XCTAssertTrue(err.hasPrefix("evperf: ") && err.contains(mention), "\(arguments): \(err)")
        }
    }

    func testHelpDocumentsEveryOption() throws {
        let (code, out, _) = try Run(evperf(), ["--help"]).wait(timeout: 20)
        XCTAssertEqual(code, 0)
        for option in ["-P, --threads", "-n, --connections", "-s, --size", "-d, --duration", "--warmup",
                       "-r, --protocol", "--json", "--queue-depth", "--window", "-m, --mode", "--address",
                       "--port", "pingpong", "stream", "rate", "conns", "loopback", "server", "client"] {
            XCTAssertTrue(out.contains(option), "--help does not mention \(option)")
        }
    }

    // MARK: Helpers

    /// Runs evperf for one measured second and checks the figures every run must satisfy.
    private func measure(_ arguments: [String], file: StaticString = #filePath, line: UInt = #line) throws
        -> [String: Any] {
        let (code, out, err) = try Run(evperf(), arguments + ["-d", "1", "--warmup", "0.1", "--json"]).wait(timeout: 30)
        XCTAssertEqual(code, 0, "\(arguments): \(err)", file: file, line: line)
        let r = try json(out)
        let name = arguments.joined(separator: " ")
        let test = r["test"] as? String
        let stream = r["protocol"] as? String == "STREAM_SOCKET_TCP"
        XCTAssertEqual(r["status"] as? String, "ok", name, file: file, line: line)
        XCTAssertEqual(r["errors"] as? Int, 0, name, file: file, line: line)

        let duration = try XCTUnwrap(r["duration"] as? Double, name)
        let ops = try XCTUnwrap(r["ops"] as? Int, name)
        let opsPerSec = try XCTUnwrap(r["ops_per_sec"] as? Double, name)
        let gbps = try XCTUnwrap(r["gbytes_per_sec"] as? Double, name)
        let size = try XCTUnwrap(r["size"] as? Int, name)
        let sent = try XCTUnwrap(r["sent"] as? Int, name)
        XCTAssertTrue(duration > 0.9 && duration < 2.0, "\(name): duration \(duration)", file: file, line: line)
        XCTAssertGreaterThan(ops, 0, name, file: file, line: line)
        XCTAssertGreaterThan(sent, 0, name, file: file, line: line)
        XCTAssertEqual(opsPerSec, Double(ops) / duration, accuracy: opsPerSec * 0.01 + 1, name, file: file, line: line)
        XCTAssertEqual(gbps, Double(ops * size) / duration / 1e9, accuracy: gbps * 0.01 + 1e-6, name,
                       file: file, line: line)

        if test == "stream" {
            // Bytes accepted by the sender's kernel and taken by the receiver, sampled
            // together: they differ by what is in flight (more on a busy machine).
            let received = try XCTUnwrap(r["received"] as? Int, name)
            XCTAssertLessThan(abs(sent - received), max(sent / 5, 64 << 20), name, file: file, line: line)
            XCTAssertTrue(r["p50_us"] is NSNull, name, file: file, line: line)
        } else {
            let received = try XCTUnwrap(r["received"] as? Int, name)
            XCTAssertEqual(received, ops, name, file: file, line: line)
            if stream {
                XCTAssertEqual(sent, received, "\(name): every measured message gets its reply", file: file, line: line)
            } else {
                XCTAssertLessThanOrEqual(received, sent, name, file: file, line: line)
                XCTAssertEqual(r["lost"] as? Int, sent - received, name, file: file, line: line)
            }
            let p50 = try XCTUnwrap(r["p50_us"] as? Double, name)
            let p99 = try XCTUnwrap(r["p99_us"] as? Double, name)
            let p999 = try XCTUnwrap(r["p999_us"] as? Double, name)
            let maxUs = try XCTUnwrap(r["max_us"] as? Double, name)
            XCTAssertTrue(p50 > 0 && p50 <= p99 && p99 <= p999 && p999 <= maxUs, "\(name): \(p50) \(p99) \(p999) \(maxUs)",
                          file: file, line: line)
        }
        return r
    }

    private func json(_ text: String) throws -> [String: Any] {
        let object = try JSONSerialization.jsonObject(with: Data(text.utf8))
        return try XCTUnwrap(object as? [String: Any], "not a JSON object: \(text)")
    }

    private func lines(_ text: String) -> [Substring] { text.split(separator: "\n") }

    /// The evperf next to this test bundle (the same build directory).
    private func evperf() throws -> URL {
        if let path = ProcessInfo.processInfo.environment["EVPERF"] { return URL(fileURLWithPath: path) }
        let candidates = [
            Bundle.main.bundleURL,
            Bundle.main.bundleURL.deletingLastPathComponent(),
            URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent(),
        ] + Bundle.allBundles.map { $0.bundleURL.deletingLastPathComponent() }
        for directory in candidates {
            let url = directory.appendingPathComponent("evperf")
            if FileManager.default.isExecutableFile(atPath: url.path) { return url }
        }
        throw Failure("evperf is not built next to the tests; run `swift build --product evperf` first")
    }

    private func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        guard ok else { throw Failure("no free port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

private struct Failure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// One evperf process, its stdout and stderr going to temporary files.
private final class Run {
    let process = Process()
    let outURL: URL
    let errURL: URL

    init(_ executable: URL, _ arguments: [String]) throws {
        let dir = FileManager.default.temporaryDirectory
        let id = UUID().uuidString
        outURL = dir.appendingPathComponent("evperf-\(id).out")
        errURL = dir.appendingPathComponent("evperf-\(id).err")
        FileManager.default.createFile(atPath: outURL.path, contents: nil)
        FileManager.default.createFile(atPath: errURL.path, contents: nil)
        process.executableURL = executable
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = try FileHandle(forWritingTo: outURL)
        process.standardError = try FileHandle(forWritingTo: errURL)
        try process.run()
    }

    deinit {
        try? FileManager.default.removeItem(at: outURL)
        try? FileManager.default.removeItem(at: errURL)
    }

    var stderrText: String { (try? String(contentsOf: errURL, encoding: .utf8)) ?? "" }

    func waitForStderr(containing text: String, timeout: Double) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while !stderrText.contains(text) {
            guard process.isRunning, Date() < deadline else {
                throw Failure("the evperf server did not start: \(stderrText)")
            }
            usleep(10_000)
        }
    }

    func interrupt() { if process.isRunning { kill(process.processIdentifier, SIGINT) } }

    func stop() {
        if process.isRunning { process.terminate() }
    }

    /// Waits (killing the process after `timeout` seconds) and returns the
    /// exit code, stdout and stderr.
    func wait(timeout: Double) -> (Int32, String, String) {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
        }
        process.waitUntilExit()
        let out = (try? String(contentsOf: outURL, encoding: .utf8)) ?? ""
        return (process.terminationStatus, out, stderrText)
    }
}
