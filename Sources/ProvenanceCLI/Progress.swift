import ArgumentParser
import Foundation
import ProvenanceCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `--quiet`, for commands that may show a progress line.
struct ProgressOptions: ParsableArguments {
    @Flag(name: .long, help: "Show no progress line on stderr.")
    var quiet = false

    /// Runs `body` with a progress line on stderr when stderr is a terminal and not `--quiet`.
    func run<T>(_ body: () throws -> T) rethrows -> T {
        guard let line = ProgressLine.forStandardError(quiet: quiet) else { return try body() }
        defer { line.finish() }
        return try ProgressReport.withSink({ line.show($0) }, body)
    }

    func run<T>(_ body: () async throws -> T) async rethrows -> T {
        guard let line = ProgressLine.forStandardError(quiet: quiet) else { return try await body() }
        defer { line.finish() }
        return try await ProgressReport.withSink({ line.show($0) }, body)
    }
}

/// One line on stderr that says what long work is doing, how far it is and how fast it goes,
/// redrawn in place at most ten times a second and erased when the work ends, so what the
/// command prints afterwards (on stdout or stderr) is not mixed with it.
///
/// Any command can use it: install `show` as `ProgressReport.sink` (as `ProgressOptions.run`
/// does), or call `show` directly with its own events.
final class ProgressLine: @unchecked Sendable {
    private let lock = NSLock()
    private let write: (String) -> Void
    private let interval: Double
    private let now: () -> Double
    private var task: String?
    private var taskStart = 0.0
    private var lastDraw = -Double.infinity
    private var drawn = false

    /// - Parameters:
    ///   - write: where the text goes (stderr in the CLI).
    ///   - interval: the least time between two redraws, in seconds.
    init(interval: Double = 0.1, now: @escaping () -> Double = { ProcessInfo.processInfo.systemUptime },
         write: @escaping (String) -> Void) {
        self.interval = interval
        self.now = now
        self.write = write
    }

    /// A line on stderr, or nil when stderr is not a terminal or the user asked for quiet.
    static func forStandardError(quiet: Bool) -> ProgressLine? {
        guard !quiet, isatty(STDERR_FILENO) == 1 else { return nil }
        return ProgressLine { FileHandle.standardError.write(Data($0.utf8)) }
    }

    /// Shows `event`, unless the last redraw was too recent (a finished total always shows).
    func show(_ event: ProgressEvent) {
        lock.lock()
        defer { lock.unlock() }
        let time = now()
        if task != event.task {
            task = event.task
            taskStart = time
            lastDraw = -Double.infinity
        }
        let complete = event.total.map { event.done >= $0 } ?? false
        guard complete || time - lastDraw >= interval else { return }
        lastDraw = time
        drawn = true
        write("\r\u{1B}[K" + Self.text(event, elapsed: time - taskStart))
    }

    /// Erases the line.
    func finish() {
        lock.lock()
        defer { lock.unlock() }
        if drawn { write("\r\u{1B}[K") }
        drawn = false
    }

    /// "Blaming corpus: 1,200/5,000 commits (24%), 812 commits/s".
    static func text(_ event: ProgressEvent, elapsed: Double) -> String {
        var text = "\(event.task): \(grouped(event.done))"
        if let total = event.total {
            text += "/\(grouped(total)) \(event.unit)"
            if total > 0 { text += " (\(min(100, event.done * 100 / total))%)" }
        } else {
            text += " \(event.unit)"
        }
        if elapsed >= 0.5 {
            text += ", \(grouped(Int((Double(event.done) / elapsed).rounded()))) \(event.unit)/s"
        }
        return text
    }

    static func grouped(_ value: Int) -> String {
        let digits = String(value.magnitude)
        var out = ""
        for (index, character) in digits.enumerated() {
            if index > 0 && (digits.count - index) % 3 == 0 { out.append(",") }
            out.append(character)
        }
        return value < 0 ? "-" + out : out
    }
}
