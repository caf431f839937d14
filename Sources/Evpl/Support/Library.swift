import Glibc
import Synchronization

/// Process-wide state: the global config, fixed at initialisation.
/// `evpl_init` is optional; the first library call initialises with defaults
/// (BEHAVIOR.md §Initialisation and config).
enum Library {
    private static let state = Mutex<GlobalConfig?>(nil)
    /// Set once, before any reader can see it (under `state`'s lock); read
    /// without locking afterwards.
    nonisolated(unsafe) private static var current: GlobalConfig?

    /// The global config, initialising the library with defaults if needed.
    @inline(__always)
    static var config: GlobalConfig {
        if let c = current { return c }
        return initializeDefaults()
    }

    static func initialize(config: GlobalConfig?) {
        let accepted = state.withLock { (s: inout GlobalConfig?) -> Bool in
            if s != nil { return false }
            let c = config ?? GlobalConfig()
            c.validate()
            s = c
            setUp(c)
            return true
        }
        if !accepted {
            // The reference aborted here; we log and drop the config (BEHAVIOR.md).
            Log.error("core", "evpl_init called after the library was initialised; config released")
        }
    }

    private static func initializeDefaults() -> GlobalConfig {
        state.withLock { (s: inout GlobalConfig?) -> GlobalConfig in
            if let c = s { return c }
            let c = GlobalConfig()
            s = c
            setUp(c)
            return c
        }
    }

    private static func setUp(_ c: GlobalConfig) {
        // Sends never kill the process (BEHAVIOR.md §Initialisation and config).
        signal(SIGPIPE, SIG_IGN)
        current = c
        SlabAllocator.shared.configure(c)
    }
}
