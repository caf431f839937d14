import CEvpl
import Glibc
@testable import Evpl
import XCTest

final class BufferPoolTests: XCTestCase {
    func testAllocationSplitsOnlyWhenAllowed() {
        let loop = EventLoop(config: nil)!
        defer { loop.destroy() }
        let size = loop.pool.bufferSize
        let out = UnsafeMutablePointer<evpl_iovec>.allocate(capacity: 4)
        defer { out.deallocate() }
        XCTAssertEqual(loop.pool.allocate(size + size / 2, alignment: 0, maxIovecs: 1, into: out), -1)
        XCTAssertEqual(loop.pool.allocate(size + size / 2, alignment: 0, maxIovecs: 2, into: out), 2)
        XCTAssertEqual(Int(out[0].length) + Int(out[1].length), size + size / 2)
        Iovec.release(out[0])
        Iovec.release(out[1])
        XCTAssertEqual(loop.pool.allocate(size, alignment: 4096, maxIovecs: 1, into: out), 1)
        XCTAssertEqual(Int(bitPattern: out[0].data) % 4096, 0)
        Iovec.release(out[0])
    }

    func testBufferIsReusedWhenReferencesComeHome() {
        let loop = EventLoop(config: nil)!
        defer { loop.destroy() }
        let a = loop.pool.allocate(100, alignment: 1)!
        Iovec.release(a)
        let b = loop.pool.allocate(100, alignment: 1)!
        XCTAssertEqual(a.data, b.data)  // rewound: nothing else pointed into the buffer
        Iovec.release(b)
    }

    func testReleaseOnAnotherThreadReturnsTheBuffer() {
        let loop = EventLoop(config: nil)!
        defer { loop.destroy() }
        let size = loop.pool.bufferSize
        var first: UnsafeMutableRawPointer?
        for _ in 0..<4 {
            let v = loop.pool.allocate(size, alignment: 1)!  // a whole buffer each
            first = first ?? v.data
            let box = UnsafeMutablePointer<evpl_iovec>.allocate(capacity: 1)
            box.initialize(to: v)
            var t = pthread_t()
            pthread_create(&t, nil, { p in
                let iov = p!.assumingMemoryBound(to: evpl_iovec.self)
                Iovec.release(iov)
                iov.deallocate()
                return nil
            }, box)
            pthread_join(t, nil)
        }
        // Four whole-buffer allocations released remotely: the pool reuses them
        // rather than carving new buffers forever.
        var seen = Set<UnsafeMutableRawPointer>()
        for _ in 0..<8 {
            let v = loop.pool.allocate(size, alignment: 1)!
            seen.insert(v.data)
            Iovec.release(v)
        }
        XCTAssertLessThanOrEqual(seen.count, 2)
    }
}
