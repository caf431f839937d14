import Glibc
@testable import Evpl
import XCTest

final class EndpointTests: XCTestCase {
    func testLiteralsFormatBack() {
        var s = sockaddr_storage()
        for (text, expect) in [("127.0.0.1", "127.0.0.1:80"), ("::1", "[::1]:80"), ("[::1]", "[::1]:80")] {
            let ep = Endpoint(address: text, port: 80)!
            XCTAssertNotNil(ep.resolve(into: &s))
            XCTAssertEqual(Address.format(&s), expect)
        }
    }

    func testWildcardAndBadInput() {
        XCTAssertEqual(Endpoint(address: nil, port: 0).map { String(cString: $0.cAddress) }, "0.0.0.0")
        XCTAssertNil(Endpoint(address: "127.0.0.1", port: 65536))
        XCTAssertNil(Endpoint(address: "127.0.0.1", port: -1))
        XCTAssertNil(Endpoint(address: "1.2.3.4.5", port: 1))
        XCTAssertNil(Endpoint(address: "[::1", port: 1))
        XCTAssertNil(Endpoint(address: "a b", port: 1))
        XCTAssertNotNil(Endpoint(address: "localhost", port: 1))
    }

    func testAddressCopyTruncatesAndTerminates() {
        var buf = [CChar](repeating: 0x7f, count: 6)
        Address.copy("127.0.0.1:80", to: &buf, len: 6)
        XCTAssertEqual(String(cString: buf), "127.0")
    }
}
