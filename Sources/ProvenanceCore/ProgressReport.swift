import Foundation

/// How far a long piece of work has come: what it is, how many units are done, of how many.
public struct ProgressEvent: Sendable, Equatable {
    /// What is being done, e.g. "Blaming corpus".
    public var task: String
    public var done: Int
    /// nil when the total is not known in advance.
    public var total: Int?
    /// What is counted, plural: "commits", "files", "objects".
    public var unit: String

    public init(task: String, done: Int, total: Int?, unit: String) {
        self.task = task
        self.done = done
        self.total = total
        self.unit = unit
    }
}

/// Where the core reports progress on long work (adding files, importing, blaming a history,
/// tracing a lineage). Nothing is reported unless a front end installs a sink for the duration
/// of a command, so library callers and tests pay nothing:
///
/// ```swift
/// try ProgressReport.withSink({ event in line.show(event) }) { try store.add(...) }
/// ```
///
/// The sink is process-wide (one command runs per CLI process), behind a lock, so work on any
/// thread can report. It is not a task-local value: those are invisible on the worker threads
/// the blame walks and blob writers use, and an async `TaskLocal.withValue` crashed in release
/// builds of the CLI.
public enum ProgressReport {
    private static let installed = SinkBox()

    /// The installed sink, if any.
    public static var sink: (@Sendable (ProgressEvent) -> Void)? { installed.value }

    /// Runs `body` with `sink` installed, then puts back what was there.
    public static func withSink<T>(_ sink: @escaping @Sendable (ProgressEvent) -> Void, _ body: () throws -> T) rethrows -> T {
        let previous = installed.swap(sink)
        defer { installed.swap(previous) }
        return try body()
    }

    public static func withSink<T>(_ sink: @escaping @Sendable (ProgressEvent) -> Void, _ body: () async throws -> T) async rethrows -> T {
        let previous = installed.swap(sink)
        defer { installed.swap(previous) }
        return try await body()
    }

    /// Reports `done` of `total` units of `task` to the installed sink, if any.
    public static func report(_ task: @autoclosure () -> String, done: Int, total: Int? = nil, unit: String) {
        guard let sink else { return }
        sink(ProgressEvent(task: task(), done: done, total: total, unit: unit))
    }

    /// True when someone listens (to skip preparing figures nobody will see).
    public static var isActive: Bool { sink != nil }
}

private final class SinkBox: @unchecked Sendable {
    private let lock = NSLock()
    private var sink: (@Sendable (ProgressEvent) -> Void)?

    var value: (@Sendable (ProgressEvent) -> Void)? {
        lock.lock()
        defer { lock.unlock() }
        return sink
    }

    @discardableResult
    func swap(_ new: (@Sendable (ProgressEvent) -> Void)?) -> (@Sendable (ProgressEvent) -> Void)? {
        lock.lock()
        defer { lock.unlock() }
        let old = sink
        sink = new
        return old
    }
}
