import Foundation
@testable import ProvenanceCLI
import ProvenanceCore
import ProvenanceTestSupport
import Testing

/// The progress line: drawn on a terminal's stderr for long commands, never with `--quiet`,
/// never when stderr is a pipe (so `--json` output and scripts see nothing new).
@Suite struct ProgressTests {
    final class Captured: @unchecked Sendable {
        var text = ""
        var clock = 0.0
    }

    @Test func theLineSaysWhatHowFarAndHowFast() {
        let captured = Captured()
        let line = ProgressLine(interval: 0.1, now: { captured.clock }) { captured.text += $0 }
        line.show(ProgressEvent(task: "Adding to poems", done: 0, total: 10_000, unit: "files"))
        #expect(captured.text == "\r\u{1B}[KAdding to poems: 0/10,000 files (0%)")
        captured.clock = 0.05
        line.show(ProgressEvent(task: "Adding to poems", done: 100, total: 10_000, unit: "files"))
        #expect(!captured.text.contains("100/"), "a redraw within 0.1 s is skipped")
        captured.clock = 2
        line.show(ProgressEvent(task: "Adding to poems", done: 2_500, total: 10_000, unit: "files"))
        #expect(captured.text.hasSuffix("\r\u{1B}[KAdding to poems: 2,500/10,000 files (25%), 1,250 files/s"))
        captured.clock = 2.01
        line.show(ProgressEvent(task: "Adding to poems", done: 10_000, total: 10_000, unit: "files"))
        #expect(captured.text.hasSuffix("10,000/10,000 files (100%), 4,975 files/s"), "the last step always shows")
        captured.clock = 3
        line.show(ProgressEvent(task: "Blaming poems", done: 1_234, total: nil, unit: "commits"))
        #expect(captured.text.hasSuffix("\r\u{1B}[KBlaming poems: 1,234 commits"), "a new task restarts the clock")
        line.finish()
        #expect(captured.text.hasSuffix("commits\r\u{1B}[K"), "finishing erases the line")
    }

    @Test func nothingIsDrawnWhenNothingWasShown() {
        let captured = Captured()
        let line = ProgressLine { captured.text += $0 }
        line.finish()
        #expect(captured.text.isEmpty)
    }

    /// Runs provenance under a pseudo-terminal (`script`), as a person at a terminal would.
    static func onTerminal(_ cli: CLIHarness, _ arguments: [String]) throws -> ProcessResult {
        let command = ([CLIHarness.binary] + arguments).map { "'\($0)'" }.joined(separator: " ")
        return try runProcess("/usr/bin/script", ["-qec", command, "/dev/null"], in: cli.work)
    }

    @Test func aTerminalSeesProgressAndQuietOrAPipeDoesNot() throws {
        let cli = try CLIHarness()
        for index in 0..<40 { try cli.write("data/f\(index).txt", "line \(index)\n") }
        let shown = try Self.onTerminal(cli, ["add", "set", "data", "--contributor", "A <a@example.org>"])
        #expect(shown.succeeded, "\(shown)")
        #expect(shown.stdout.contains("Adding to set: 40/40 files (100%)"), "\(shown.stdout)")
        #expect(shown.stdout.contains("\r\u{1B}[K"))

        try cli.write("data/more.txt", "more\n")
        let quiet = try Self.onTerminal(cli, ["add", "set", "data/more.txt", "--contributor", "A <a@example.org>", "--quiet"])
        #expect(quiet.succeeded)
        #expect(!quiet.stdout.contains("Adding to"), "\(quiet.stdout)")

        // Through pipes (not a terminal): stderr stays empty and stdout is only the JSON.
        try cli.must("model", "register", "m@1", "--developer", "D <d@example.org>", "--dataset", "set", "--plugin", "data-volume")
        let piped = try cli.run("attribute", "m@1", "--json")
        #expect(piped.succeeded)
        #expect(piped.stderr.isEmpty)
        #expect(piped.stdout.hasPrefix("{"))

        // A cold attribution on a terminal reports the blame walk; the result is unchanged.
        let attributed = try Self.onTerminal(cli, ["attribute", "m@1", "--plugin", "data-volume:unit=lines"])
        #expect(attributed.succeeded)
        #expect(attributed.stdout.contains("a@example.org"))
    }
}
