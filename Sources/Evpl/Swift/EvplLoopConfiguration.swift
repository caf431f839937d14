import CEvpl

extension EvplLoop {
    /// The settings of one event loop (the C `struct evpl_thread_config`).
    public struct Configuration: Sendable {
        /// Whether the loop may busy-poll while work keeps arriving (default
        /// `true`) instead of sleeping at once.
        public var pollMode: Bool

        /// Polling passes between two checks of the event mechanism (default
        /// 1000; at least 1).
        public var pollIterations: Int

        /// The longest an idle loop sleeps; `nil` (the default) sleeps until
        /// an event, a timer or a doorbell.
        public var maximumWait: Duration?

        /// Creates loop settings.
        ///
        /// - Parameters:
        ///   - pollMode: Whether the loop may busy-poll while work keeps arriving.
        ///   - pollIterations: Polling passes between two checks of the event mechanism.
        ///   - maximumWait: The longest an idle loop sleeps; `nil` means until
        ///     something happens.
        public init(pollMode: Bool = true, pollIterations: Int = 1000, maximumWait: Duration? = nil) {
            self.pollMode = pollMode
            self.pollIterations = pollIterations
            self.maximumWait = maximumWait
        }

        /// A C config with these settings; the caller releases it.
        func makeThreadConfig() -> ThreadConfigHandle {
            let config = evpl_thread_config_init()!
            evpl_thread_config_set_poll_mode(config, pollMode ? 1 : 0)
            evpl_thread_config_set_poll_iterations(config, CInt(clamping: pollIterations))
            let waitMs = maximumWait.map { CInt(clamping: $0.nanoseconds / 1_000_000) } ?? -1
            evpl_thread_config_set_wait_ms(config, waitMs)
            return config
        }
    }
}
