import Foundation
import ProvenanceTestSupport
import Testing

/// `provenance add DATASET --from`, with the git CLI building the source and judging the result.
@Suite struct ImportTests {
    struct ImportJSON: Decodable {
        var commit: String
        var previous_head: String?
        var new_commits: Int
        var forced: Bool
        var changed: Bool
    }

    struct ContributorJSON: Decodable, Equatable {
        var contributor: String
        var id: String
        var commits: Int
    }

    /// Five authors (one under two spellings joined by `.mailmap`), a branch and a merge.
    static func makeSource() throws -> TemporaryDirectory {
        let source = try TemporaryDirectory("import-source")
        let repo = source.url
        try git(["init", "-q"], in: repo)
        var time = 1_700_000_000
        func commit(_ author: String, _ file: String, _ text: String) throws {
            try source.write(file, text)
            time += 60
            try gitCommit(repo, author: author, message: "\(author.split(separator: " ")[0]) edits \(file)", date: time)
        }
        try commit("Alice Smith <alice@example.org>", "corpus/a.txt", "a1\na2\n")
        try commit("Bob Jones <bob@old.example>", "corpus/b.txt", "b1\n")
        try git(["checkout", "-q", "-b", "feature"], in: repo)
        try commit("Carol White <carol@example.org>", "corpus/c.txt", "c1\n")
        try commit("Dave Brown <DAVE@example.org>", "corpus/a.txt", "a1\nd2\n")
        try git(["checkout", "-q", "main"], in: repo)
        try commit("Bob J. <bob@example.org>", "corpus/b.txt", "b1\nb2\n")
        time += 60
        try git(["merge", "-q", "--no-ff", "feature", "-m", "Merge feature"], in: repo, environment: [
            "GIT_AUTHOR_NAME": "Erin Green", "GIT_AUTHOR_EMAIL": "erin@example.org", "GIT_AUTHOR_DATE": "\(time) +0000",
            "GIT_COMMITTER_DATE": "\(time) +0000",
        ])
        try commit("Alice Smith <alice@example.org>", ".mailmap", "# one person, three spellings\nBob Jones <bob@example.org>\nBob Jones <bob@example.org> <BOB@old.example>\n")
        try git(["tag", "v1", "HEAD~1"], in: repo)
        return source
    }

    /// `git log --format='%aN <%aE>'` on the dataset repository, grouped by lowercased email
    /// into (newest name, commits) — what `contributors` must report.
    static func oracleContributors(_ repo: URL, revision: String = "HEAD") throws -> [ContributorJSON] {
        let lines = try git(["-c", "mailmap.blob=\(revision):.mailmap", "log", "--format=%aN <%aE>", revision], in: repo).lines
        var order: [String] = []
        var byID: [String: ContributorJSON] = [:]
        for line in lines {
            let email = String(line[line.index(after: line.lastIndex(of: "<")!)...].dropLast())
            let id = email.lowercased()
            if byID[id] == nil {
                byID[id] = ContributorJSON(contributor: line, id: id, commits: 0)
                order.append(id)
            }
            byID[id]!.commits += 1
        }
        return order.compactMap { byID[$0] }.sorted { ($0.commits, $1.id) > ($1.commits, $0.id) }
    }

    @Test func importKeepsEveryAuthorOfAHistoryWithMerges() throws {
        let source = try Self.makeSource()
        let cli = try CLIHarness()
        let result = try cli.json(ImportJSON.self, "add", "shared", "--from", source.url.path)
        let sourceHead = try git(["rev-parse", "HEAD"], in: source.url).output
        #expect(result.commit == sourceHead)
        #expect(result.new_commits == 7)
        #expect(result.previous_head == nil)

        let repo = cli.datasetRepository("shared")
        try git(["fsck", "--strict"], in: repo)
        #expect(try git(["rev-parse", "HEAD"], in: repo).output == sourceHead)
        let contributors = try cli.json([ContributorJSON].self, "contributors", "shared")
        let oracle = try Self.oracleContributors(repo)
        #expect(contributors == oracle)
        #expect(contributors.map(\.id) == ["alice@example.org", "bob@example.org", "carol@example.org", "dave@example.org", "erin@example.org"])
        #expect(contributors.first { $0.id == "bob@example.org" }?.contributor == "Bob Jones <bob@example.org>")
        #expect(contributors.first { $0.id == "bob@example.org" }?.commits == 2)

        // Every commit of the history, authors after mailmap, agrees with git log.
        struct LogJSON: Decodable { var commit: String; var author: String }
        let log = try cli.json([LogJSON].self, "log", "shared")
        let gitLog = try git(["log", "--format=%H %aN <%aE>"], in: repo).lines
        #expect(log.map { "\($0.commit) \($0.author)" } == gitLog)

        // A revision inside the history resolves (the tag was fetched as a commit in history).
        let atTag = try cli.json([ContributorJSON].self, "contributors", "shared@\(try git(["rev-parse", "v1"], in: source.url).output.prefix(10))")
        #expect(atTag == (try Self.oracleContributors(repo, revision: String(try git(["rev-parse", "v1"], in: source.url).output))))
    }

    @Test func importOnTopOfHeadAndForcedReplacement() throws {
        let source = try Self.makeSource()
        let cli = try CLIHarness()
        let first = try cli.json(ImportJSON.self, "add", "shared", "--from", "file://" + source.url.path, "--rev", "v1")
        #expect(first.commit == (try git(["rev-parse", "v1^{commit}"], in: source.url).output))
        // Importing the same commit again changes nothing.
        let again = try cli.json(ImportJSON.self, "add", "shared", "--from", source.url.path, "--rev", "v1")
        #expect(!again.changed)
        // The source's main descends from v1: a fast-forward.
        let second = try cli.json(ImportJSON.self, "add", "shared", "--from", source.url.path, "--rev", "main")
        #expect(second.previous_head == first.commit)
        #expect(second.new_commits == 1)
        #expect(!second.forced)

        // Contributions added on top, then an unrelated history forced over them.
        try cli.write("local.txt", "local\n")
        let local = try cli.run("add", "shared", "local.txt", "--contributor", "Fay <fay@example.org>")
        #expect(local.succeeded)
        let other = try TemporaryDirectory()
        try git(["init", "-q"], in: other.url)
        try other.write("z.txt", "z\n")
        try gitCommit(other.url, author: "Zed <zed@example.org>", message: "unrelated", date: 1_700_100_000)
        let forced = try cli.json(ImportJSON.self, "add", "shared", "--from", other.url.path, "--force")
        #expect(forced.forced)
        let repo = cli.datasetRepository("shared")
        try git(["fsck", "--strict"], in: repo)
        // Every registered commit stays pinned, so the replaced head is never pruned.
        let pinned = try git(["for-each-ref", "--format=%(objectname)", "refs/provenance/registered/"], in: repo).lines
        #expect(Set(pinned) == [first.commit, second.commit, local.output, forced.commit])
        #expect(try cli.json([ContributorJSON].self, "contributors", "shared").map(\.id) == ["zed@example.org"])
        // The earlier registered commit is still resolvable by id.
        #expect(try cli.run("contributors", "shared@\(local.output)").succeeded)
    }
}
