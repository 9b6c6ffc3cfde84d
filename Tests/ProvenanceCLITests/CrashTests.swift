import Foundation
import ProvenanceTestSupport
import Testing

/// A process killed with SIGKILL in the middle of `add` leaves no registered commit that the
/// repository lacks and no half-registered state; the next write repairs the branch.
@Suite struct CrashTests {
    static let points = ["after-repository-created", "after-objects-written", "after-reference-updated", "after-index-committed"]

    struct Summary: Decodable { var name: String; var head: String? }

    /// Registered commits per the index, read with the database's own CLI (sqlite3 or psql).
    static func registeredCommits(_ cli: CLIHarness) throws -> [String] {
        try TestBackend.sql(store: cli.store, "SELECT commit_id FROM dataset_commits ORDER BY commit_id").split(separator: "\n").map(String.init)
    }

    /// Checks the invariants that must hold whatever point the crash hit.
    static func expectConsistent(_ cli: CLIHarness, dataset: String) throws {
        let repo = cli.datasetRepository(dataset)
        for commit in try registeredCommits(cli) {
            #expect(try runProcess("/usr/bin/git", ["-C", repo.path, "cat-file", "-e", "\(commit)^{commit}"]).succeeded,
                    "registered commit \(commit) missing from the repository")
        }
        try git(["fsck", "--strict"], in: repo)
        let head = try cli.json([Summary].self, "datasets").first { $0.name == dataset }?.head
        #expect(try git(["rev-parse", "refs/heads/main"], in: repo).output == head)
    }

    @Test(arguments: points)
    func crashDuringFirstAdd(at point: String) throws {
        let cli = try CLIHarness()
        try cli.write("a.txt", "alpha\n")
        let crashed = try cli.run(["add", "fresh", "a.txt", "--contributor", "A <a@example.org>"], environment: ["PROVENANCE_CRASH_AT": point])
        #expect(crashed.signalled && crashed.status == SIGKILL, "\(crashed)")
        let listed = try cli.json([Summary].self, "datasets")
        if point == "after-index-committed" {
            #expect(listed.count == 1)
        } else {
            #expect(listed.isEmpty, "a crashed first add registered the dataset: \(listed)")
        }
        // The next add succeeds and leaves everything consistent.
        try cli.write("b.txt", "beta\n")
        let next = try cli.run("add", "fresh", "b.txt", "--contributor", "B <b@example.org>")
        #expect(next.succeeded, "\(next)")
        try Self.expectConsistent(cli, dataset: "fresh")
        let authors = try git(["log", "--format=%ae"], in: cli.datasetRepository("fresh")).lines
        #expect(authors == (point == "after-index-committed" ? ["b@example.org", "a@example.org"] : ["b@example.org"]))
    }

    @Test(arguments: points.dropFirst())
    func crashDuringLaterAdd(at point: String) throws {
        let cli = try CLIHarness()
        try cli.write("a.txt", "alpha\n")
        let first = try cli.run("add", "corpus", "a.txt", "--contributor", "A <a@example.org>")
        #expect(first.succeeded)
        try cli.write("b.txt", "beta\n")
        let crashed = try cli.run(["add", "corpus", "b.txt", "--contributor", "B <b@example.org>"], environment: ["PROVENANCE_CRASH_AT": point])
        #expect(crashed.signalled, "\(crashed)")
        let head = try cli.json([Summary].self, "datasets").first?.head
        let committed = point == "after-index-committed"
        if !committed { #expect(head == first.output) }
        // Reads never show the unregistered commit, even before a write repairs the branch.
        let log = try cli.run("log", "corpus")
        #expect(log.lines.count == (committed ? 2 : 1))

        try cli.write("c.txt", "gamma\n")
        #expect(try cli.run("add", "corpus", "c.txt", "--contributor", "C <c@example.org>").succeeded)
        try Self.expectConsistent(cli, dataset: "corpus")
        let authors = try git(["log", "--format=%ae"], in: cli.datasetRepository("corpus")).lines
        #expect(authors == (committed ? ["c@example.org", "b@example.org", "a@example.org"] : ["c@example.org", "a@example.org"]))
    }

    /// An add of many files writes a pack; killed at any point, the store stays consistent and
    /// the next add of the same files succeeds (or finds them already there).
    @Test(arguments: points)
    func crashDuringPackedAdd(at point: String) throws {
        let cli = try CLIHarness()
        for index in 0..<100 { try cli.write("many/d\(index % 4)/f\(index).txt", "file \(index)\n") }
        let crashed = try cli.run(["add", "packed", "many", "--contributor", "A <a@example.org>"], environment: ["PROVENANCE_CRASH_AT": point])
        #expect(crashed.signalled && crashed.status == SIGKILL, "\(crashed)")
        let packs = cli.datasetRepository("packed").appendingPathComponent("objects/pack")
        if point != "after-repository-created" {
            #expect(try FileManager.default.contentsOfDirectory(atPath: packs.path).filter { $0.hasSuffix(".idx") }.count == 1)
        }
        let next = try cli.run("add", "packed", "many", "--contributor", "A <a@example.org>")
        if point == "after-index-committed" {
            #expect(!next.succeeded && next.stderr.contains("nothing to add"), "\(next)")
        } else {
            #expect(next.succeeded, "\(next)")
        }
        try Self.expectConsistent(cli, dataset: "packed")
        #expect(try git(["ls-tree", "-r", "--name-only", "HEAD"], in: cli.datasetRepository("packed")).lines.count == 100)
    }

    @Test(arguments: ["after-objects-written", "after-reference-updated", "after-index-committed"])
    func crashDuringImport(at point: String) throws {
        let source = try TemporaryDirectory()
        try git(["init", "-q"], in: source.url)
        try source.write("x.txt", "x\n")
        try gitCommit(source.url, author: "Zed <zed@example.org>", message: "x", date: 1_700_000_000)
        let cli = try CLIHarness()
        try cli.write("a.txt", "alpha\n")
        #expect(try cli.run("add", "corpus", "a.txt", "--contributor", "A <a@example.org>").succeeded)
        let crashed = try cli.run(["add", "corpus", "--from", source.url.path, "--force"], environment: ["PROVENANCE_CRASH_AT": point])
        #expect(crashed.signalled, "\(crashed)")
        try cli.write("b.txt", "beta\n")
        #expect(try cli.run("add", "corpus", "b.txt", "--contributor", "B <b@example.org>").succeeded)
        try Self.expectConsistent(cli, dataset: "corpus")
        // A retried import after a crash completes.
        let retried = try cli.run("add", "corpus", "--from", source.url.path, "--force")
        #expect(retried.succeeded, "\(retried)")
        try Self.expectConsistent(cli, dataset: "corpus")
    }
}
