// swift-tools-version:6.0
//
// A downstream package: it depends on evpl by path, exactly as an application
// would depend on a published version, and uses the Swift API (`import Evpl`).
import PackageDescription

let package = Package(
    name: "SwiftEcho",
    dependencies: [
        // A path dependency's identity is its folder's name; `name:` keeps it
        // "evpl" whatever the checkout is called. An application would name a
        // published version instead: .package(url: ..., from: "0.1.0").
        .package(name: "evpl", path: "../.."),
    ],
    targets: [
        .executableTarget(
            name: "SwiftEcho",
            dependencies: [.product(name: "Evpl", package: "evpl")]
        ),
    ]
)
