import Evpl
import Glibc
import XCTest

/// How long any one exchange in these tests may take before it counts as a failure.
let patience: Duration = .seconds(10)

/// A loopback TCP/UDP port that was free a moment ago.
func freePort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var sin = sockaddr_in()
    sin.sin_family = sa_family_t(AF_INET)
    sin.sin_addr.s_addr = inet_addr("127.0.0.1")
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &sin) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { p -> Int32 in
            _ = bind(fd, p, len)
            return getsockname(fd, p, &len)
        }
    }
    return Int(UInt16(bigEndian: sin.sin_port))
}

/// The EvplError `body` throws, or nil (and a test failure) if it throws none.
func thrownError<T>(_ body: () throws -> T, file: StaticString = #filePath,
                    line: UInt = #line) -> EvplError? {
    do {
        _ = try body()
    } catch let error as EvplError {
        return error
    } catch {
        XCTFail("expected an EvplError, got \(error)", file: file, line: line)
        return nil
    }
    XCTFail("expected an EvplError", file: file, line: line)
    return nil
}

/// A 4-byte big-endian length header, then `payload`.
func lengthPrefixed(_ payload: [UInt8]) -> [UInt8] {
    let n = UInt32(payload.count)
    return [UInt8(n >> 24), UInt8(n >> 16 & 0xff), UInt8(n >> 8 & 0xff), UInt8(n & 0xff)] + payload
}
