import Foundation
import ProvenanceTestSupport
import Testing

/// The benchmark scripts that take settings refuse a mistyped one with one line and exit 2,
/// before they look for a tool, build a binary or make a scratch folder: on any machine,
/// wrk or not.
@Suite struct BenchmarkScriptTests {
    static let benchmarks = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Benchmarks")

    @Test(arguments: [
        ("http-ab.sh", ["MODE": "fast"], "http-ab.sh: MODE must be deferred or realtime, not 'fast'"),
        ("http-ab.sh", ["KEYS": "bogus"], "http-ab.sh: KEYS must be sequential, uuid or uuid7, not 'bogus'"),
        ("http-ab.sh", ["KEYS": "uuid7", "KEYS_B": "v4"], "http-ab.sh: KEYS_B must be sequential, uuid or uuid7, not 'v4'"),
        ("wal-frames.sh", ["MODE": "slow"], "wal-frames.sh: MODE must be deferred or realtime, not 'slow'"),
        ("wal-frames.sh", ["KEYS": "UUID7"], "wal-frames.sh: KEYS must be sequential, uuid or uuid7, not 'UUID7'"),
        ("metrics-scrape.sh", ["PENDING": "lots"], "metrics-scrape.sh: PENDING must be a positive number, not 'lots'"),
        ("metrics-scrape.sh", ["SCRAPES": "0"], "metrics-scrape.sh: SCRAPES must be a positive number, not '0'"),
    ])
    func mistypedSettingsAreRefused(script: String, settings: [String: String], message: String) throws {
        let scratch = try TemporaryDirectory("benchmark-refusal")
        // http-ab.sh and metrics-scrape.sh take two executables; /bin/true stands for both and is never run.
        let twoBuilds = script == "http-ab.sh" || script == "metrics-scrape.sh"
        let arguments = [Self.benchmarks.appendingPathComponent(script).path] + (twoBuilds ? ["/bin/true", "/bin/true"] : [])
        let result = try runProcess("/bin/bash", arguments, in: scratch.url,
                                    environment: settings.merging(["TMPDIR": scratch.url.path, "PROVENANCE_BIN": "/bin/true"]) { $1 })
        #expect(result.status == 2, "\(result)")
        #expect(result.errorLines == [message])
        #expect(result.stdout.isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch.url.path).isEmpty)
    }

    @Test(arguments: ["http-ab.sh", "metrics-scrape.sh"])
    func aScriptOfTwoBuildsWithoutTwoExecutablesPrintsItsUsage(script: String) throws {
        let scratch = try TemporaryDirectory("benchmark-refusal")
        let result = try runProcess("/bin/bash", [Self.benchmarks.appendingPathComponent(script).path, "/bin/true", scratch.url.path + "/missing"],
                                    in: scratch.url, environment: ["TMPDIR": scratch.url.path])
        #expect(result.status == 2)
        #expect(result.errorLines == ["usage: Benchmarks/\(script) BINARY_A BINARY_B (two executable files)"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch.url.path).isEmpty)
    }

    /// A wrk run whose threads sent every record before its end reports the whole duration, so
    /// its rate is the records' count over it: the scripts mark such a run (`calls.lua` counts
    /// the threads that ran out), and print nothing extra for a run that did not run out.
    @Test func aRunThatRanOutOfRecordsIsMarked() throws {
        let common = Self.benchmarks.appendingPathComponent("common.sh").path
        let result = try runProcess("/bin/bash", ["-c", "source \"$0\"; printf '[%s]\\n' \"$(ran_out_note 2 PER_ROUND)\" \"$(ran_out_note 0 PER_ROUND)\"", common])
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout == "[  RAN OUT of records: the server did at least this rate; raise PER_ROUND]\n[]\n")
    }
}
