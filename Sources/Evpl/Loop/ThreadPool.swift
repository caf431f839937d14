import CEvpl

/// A thread pool: N loop threads (`struct evpl_threadpool`).
final class ThreadPool {
    var threads: [LoopThread] = []

    func destroy() {
        for t in threads { t.stopAndJoin() }
        threads.removeAll()
    }
}
