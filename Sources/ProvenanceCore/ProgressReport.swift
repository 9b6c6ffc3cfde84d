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
/// try ProgressReport.$sink.withValue({ event in line.show(event) }) { try store.add(...) }
/// ```
public enum ProgressReport {
    @TaskLocal public static var sink: (@Sendable (ProgressEvent) -> Void)?

    /// Reports `done` of `total` units of `task` to the installed sink, if any.
    @inlinable
    public static func report(_ task: @autoclosure () -> String, done: Int, total: Int? = nil, unit: String) {
        guard let sink else { return }
        sink(ProgressEvent(task: task(), done: done, total: total, unit: unit))
    }

    /// True when someone listens (to skip preparing figures nobody will see).
    public static var isActive: Bool { sink != nil }
}
