import Glibc
@testable import Evpl
import XCTest

/// Buffers by NUMA node.  This machine may have one node; nodes it lacks can
/// still be asked for: binding to them fails, which the allocator ignores.
final class NumaTests: XCTestCase {
    private let allocator = SlabAllocator.shared

    /// The highest online node, from sysfs (0 where the file is missing).
    private func highestOnlineNode() -> Int {
        guard let f = fopen("/sys/devices/system/node/online", "r") else { return 0 }
        defer { fclose(f) }
        var line = [CChar](repeating: 0, count: 256)
        guard fgets(&line, Int32(line.count), f) != nil else { return 0 }
        let text = String(cString: line)
        let numbers = text.split(whereSeparator: { !$0.isNumber }).compactMap { Int($0) }
        return numbers.last ?? 0
    }

    /// Gives a pool-less buffer back the way the engine does: its last reference drops.
    private func release(_ b: Buffer) {
        b.retain()
        b.release()
    }

    func testNodeCountAndCurrentNode() {
        let loop = EventLoop(config: nil)!
        defer { loop.destroy() }
        if highestOnlineNode() == 0 {
            XCTAssertEqual(allocator.nodes, 1)
            XCTAssertEqual(SlabAllocator.currentNode(), 0)
            XCTAssertEqual(loop.pool.node, 0)
        } else {
            XCTAssertLessThan(SlabAllocator.currentNode(), allocator.nodes)
            XCTAssertLessThan(loop.pool.node, allocator.nodes)
        }
    }

    func testBuffersComeFromTheirNodesSlabs() {
        for node in [0, 1, 2] {
            let taken = (0..<3).map { _ in allocator.take(forNode: node)! }
            for b in taken {
                XCTAssertEqual(b.slab.node, node)
                XCTAssertTrue(allocator.slabs[b.slab.index] === b.slab)
                XCTAssertNil(b.pool)
            }
            taken.forEach(release)
        }
    }

    func testReleasedBufferGoesBackToItsNodesList() {
        let b = allocator.take(forNode: 1)!
        release(b)
        // Node 0 is not served from node 1's list while it can map its own memory.
        let other = allocator.take(forNode: 0)!
        XCTAssertEqual(other.slab.node, 0)
        XCTAssertFalse(other === b)
        release(other)
        XCTAssertTrue(allocator.take(forNode: 1)! === b)
        release(b)
    }

    /// A node that does not exist: the slab is tagged with it, the kernel
    /// refuses the binding, and the buffer works anyway, with nothing printed.
    func testMissingNodeStillGivesUsableMemory() throws {
        let node = max(allocator.nodes, 1) + 3  // past the machine's nodes
        let (b, printed) = try capturingStderr { allocator.take(forNode: node) }
        let buffer = try XCTUnwrap(b)
        XCTAssertEqual(buffer.slab.node, node)
        XCTAssertEqual(printed, "")
        let bytes = buffer.data.bindMemory(to: UInt8.self, capacity: buffer.size)
        for i in stride(from: 0, to: buffer.size, by: 4096) { bytes[i] = UInt8(truncatingIfNeeded: i / 4096) }
        for i in stride(from: 0, to: buffer.size, by: 4096) {
            XCTAssertEqual(bytes[i], UInt8(truncatingIfNeeded: i / 4096))
        }
        release(buffer)
    }

    /// Runs `body` with fd 2 sent to a temporary file; returns what was written there.
    private func capturingStderr<T>(_ body: () -> T) throws -> (T, String) {
        var path = Array("/tmp/evpl-numa-XXXXXX".utf8CString)
        let fd = mkstemp(&path)
        XCTAssertGreaterThanOrEqual(fd, 0)
        unlink(path)
        defer { close(fd) }
        fflush(stderr)
        let saved = dup(2)
        dup2(fd, 2)
        let result = body()
        fflush(stderr)
        dup2(saved, 2)
        close(saved)
        var out = [UInt8](repeating: 0, count: 4096)
        let n = pread(fd, &out, out.count, 0)
        return (result, String(decoding: out.prefix(max(n, 0)), as: UTF8.self))
    }
}
