// swift-tools-version:6.0
//
// evpl: an event-loop network I/O library with a C face and a Swift engine.
// The release libevpl.so is linked by the Makefile (`make`), which adds the
// flags that must stay out of this manifest: -static-stdlib, the SONAME and
// the version script that exports evpl_* only.
import PackageDescription

let package = Package(
    name: "evpl",
    products: [
        // The C library: libevpl.so (the Makefile links it for release).
        .library(name: "evpl", type: .dynamic, targets: ["Evpl"]),
        // Swift consumers: `import Evpl`.
        .library(name: "Evpl", targets: ["Evpl"]),
        .executable(name: "evpl-header", targets: ["evpl-header"]),
        // The benchmark tool and demo (make evperf).
        .executable(name: "evperf", targets: ["evperf"]),
    ],
    dependencies: [
        // `swift package generate-documentation` (make docs); no code depends on it.
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
        // evperf's command line and latency histograms (the engine uses neither).
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.1.0"),
    ],
    targets: [
        // The ABI's C types only: structs, enums, callback typedefs, constants.
        .target(name: "CEvpl"),
        // One-line forwarders for Linux APIs Glibc's module hides (_GNU_SOURCE).
        .target(name: "CEvplLinux", cSettings: [.define("_GNU_SOURCE")]),
        // Forwarders for liburing's static inline helpers; liburing.a is
        // linked in, so libevpl.so needs no liburing.so at run time.
        .target(name: "CEvplUring", linkerSettings: [.linkedLibrary(":liburing.a")]),
        // NUMA nodes for the slab allocator: sysfs, getcpu and mbind (no libnuma linked).
        .target(name: "CEvplNuma"),
        // The RDMA seam: a table over rdma_cm and verbs, filled from
        // librdmacm.so.1/libibverbs.so.1 opened at run time (never linked).
        .target(name: "CEvplRDMA"),
        // The engine and its @_cdecl ABI layer.
        .target(name: "Evpl", dependencies: ["CEvpl", "CEvplLinux", "CEvplUring", "CEvplRDMA", "CEvplNuma"]),
        // Writes include/evpl/evpl.h from the @_cdecl declarations.
        .executableTarget(name: "evpl-header"),
        // evperf: benchmarks the engine through its public API (Foundation allowed here).
        .executableTarget(name: "evperf", dependencies: [
            "Evpl",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Histogram", package: "hdrhistogram-swift"),
        ]),
        // The generated header as a C module, for tests that call the ABI as C does.
        .target(name: "CEvplHeader", path: "Tests/CEvplHeader"),
        .testTarget(name: "EvplTests", dependencies: ["Evpl", "CEvplRDMA"]),
        .testTarget(name: "EvplABITests", dependencies: ["Evpl", "CEvplHeader"]),
        // Runs the built evperf binary (build it first: swift build --product evperf).
        .testTarget(name: "EvperfTests"),
        .testTarget(name: "EvplSwiftAPITests", dependencies: ["Evpl"]),
    ],
    // The engine uses no Swift concurrency; its threading rules are the C API's
    // (BEHAVIOR.md §Threading model), so the Swift 5 language mode fits.
    swiftLanguageModes: [.v5]
)
