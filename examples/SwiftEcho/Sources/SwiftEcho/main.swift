// A TCP echo server and client in one process, on one event loop, over
// loopback. Prints one line and exits 0 when the echo came back intact.
import Evpl
import Glibc

/// Listens on the first free loopback port from a random start.
func listenOnFreePort(_ listener: EvplListener) throws -> EvplEndpoint {
    let first = Int.random(in: 20_000...50_000)
    for port in first..<first + 100 {
        let endpoint = try EvplEndpoint(host: "127.0.0.1", port: port)
        do {
            try listener.listen(on: endpoint)
            return endpoint
        } catch .listenFailed {
            continue  // in use: try the next one
        }
    }
    throw EvplError.listenFailed(endpoint: "127.0.0.1:\(first)...")
}

/// Sends `message` to an echo server on the same loop and returns the reply.
func echoOverLoopback(_ message: String) throws -> (reply: String, server: EvplEndpoint) {
    let loop = try EvplLoop()
    defer { loop.close() }

    // The server: every connection sends back what it receives.
    let listener = EvplListener()
    try loop.attach(listener) { connection in
        connection.onData = { connection, data in connection.send(data) }
    }
    let server = try listenOnFreePort(listener)

    // The client: send once connected, collect the echo, then finish.
    let expected = message.utf8.count
    var echoed: [UInt8] = []
    var failure: EvplError?
    let client = try loop.connect(to: server)
    client.onConnected = { connection in connection.send(message.utf8) }
    client.onData = { connection, data in
        echoed += data.bytes
        if echoed.count >= expected { connection.finish() }
    }
    client.onDisconnected = { _, error in failure = error }

    loop.run(until: { client.isClosed }, timeout: .seconds(10))
    if let failure { throw failure }
    return (String(decoding: echoed, as: UTF8.self), server)
}

let message = "hello from Swift"
do {
    let (reply, server) = try echoOverLoopback(message)
    guard reply == message else {
        print("SwiftEcho: FAILED: sent \"\(message)\", got \"\(reply)\"")
        exit(1)
    }
    print("SwiftEcho: echoed \"\(reply)\" through \(server)")
} catch {
    print("SwiftEcho: FAILED: \(error)")
    exit(1)
}
