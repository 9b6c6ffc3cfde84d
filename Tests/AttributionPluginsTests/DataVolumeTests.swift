import Foundation
import ProvenanceTestSupport
import Testing

/// data-volume against `git blame --line-porcelain`, the oracle, to the byte.
@Suite struct DataVolumeTests {
    /// Five authors who overwrite each other's lines, a binary file, a merge, a `.mailmap`.
    static func makeSource() throws -> TemporaryDirectory {
        let source = try TemporaryDirectory("data-volume-source")
        let repo = source.url
        try git(["init", "-q"], in: repo)
        var time = 1_700_000_000
        func commit(_ author: String) throws {
            time += 60
            try gitCommit(repo, author: author, message: "edit by \(author)", date: time)
        }
        try source.write("poem.txt", "one\ntwo\nthree\nfour\nfive\n")
        try source.write("notes.md", "# Notes\nalpha\nbeta\n")
        try commit("Ann Author <ann@example.org>")
        try source.write("poem.txt", "one\nTWO by bo\nthree\nfour\nfive\nsix\n")
        try source.write("data.bin", Data([0, 1, 2, 3, 0, 255, 10, 10, 0]))
        try commit("Bo Writer <bo@old.example>")
        try git(["checkout", "-q", "-b", "side"], in: repo)
        try source.write("notes.md", "# Notes\nalpha (cy)\nbeta\ngamma\n")
        try source.write("tail.txt", "no newline at the end")
        try commit("Cy Editor <cy@example.org>")
        try source.write("data.bin", Data([9, 0, 9, 0, 9]))
        try commit("Di Binary <di@example.org>")
        try git(["checkout", "-q", "main"], in: repo)
        try source.write("poem.txt", "one\nTWO by bo\nthree (ed)\nfour\nfive\nsix\nseven\n")
        try commit("Ed Poet <ed@example.org>")
        time += 60
        try git(["merge", "-q", "--no-ff", "side", "-m", "merge side"], in: repo, environment: [
            "GIT_AUTHOR_NAME": "Ann Author", "GIT_AUTHOR_EMAIL": "ann@example.org", "GIT_AUTHOR_DATE": "\(time) +0000",
            "GIT_COMMITTER_DATE": "\(time) +0000",
        ])
        try source.write("poem.txt", "one\nTWO by bo\nthree (ed)\nfour (ann again)\nfive\nsix\nseven\n")
        try source.write(".mailmap", "Bo Writer <bo@example.org> <BO@old.example>\n")
        try commit("Ann Author <ANN@example.org>")
        return source
    }

    /// Bytes and lines per contributor id, from the git CLI alone.
    static func oracle(_ repo: URL) throws -> (bytes: [String: Int], lines: [String: Int]) {
        var bytes: [String: Int] = [:]
        var lines: [String: Int] = [:]
        let tree = try git(["ls-tree", "-r", "-z", "--format=%(objectmode) %(path)", "HEAD"], in: repo).stdout
        for entry in tree.split(separator: "\0") {
            let parts = entry.split(separator: " ", maxSplits: 1).map(String.init)
            let path = parts[1]
            let raw = try runProcess("/usr/bin/git", ["-C", repo.path, "cat-file", "blob", "HEAD:\(path)"])
            let data = Data(raw.stdout.utf8)
            if parts[0] == "120000" || data.prefix(8000).contains(0) {
                let size = Int(try git(["cat-file", "-s", "HEAD:\(path)"], in: repo).output)!
                let email = try git(["log", "-1", "--format=%aE", "HEAD", "--", path], in: repo).output.lowercased()
                bytes[email, default: 0] += size
                continue
            }
            let porcelain = try git(["blame", "--line-porcelain", "HEAD", "--", path], in: repo).stdout
            var lengths = data.split(separator: 0x0A, omittingEmptySubsequences: false).map { $0.count + 1 }
            if data.last == 0x0A { lengths.removeLast() } else if !lengths.isEmpty { lengths[lengths.count - 1] -= 1 }
            var email = ""
            var lineIndex = 0
            for line in porcelain.split(separator: "\n", omittingEmptySubsequences: false) {
                if line.hasPrefix("author-mail <") {
                    email = String(line.dropFirst("author-mail <".count).dropLast()).lowercased()
                } else if line.hasPrefix("\t") {
                    bytes[email, default: 0] += lengths[lineIndex]
                    lines[email, default: 0] += 1
                    lineIndex += 1
                }
            }
            #expect(lineIndex == lengths.count, "\(path): blame covered \(lineIndex) of \(lengths.count) lines")
        }
        return (bytes, lines)
    }

    struct Result: Decodable {
        var plugin: String
        var weights: [Weight]
        struct Weight: Decodable { var id: String; var ppb: UInt64; var raw: Double? }
    }

    @Test func bytesAndLinesMatchGitBlameToTheByte() throws {
        let source = try Self.makeSource()
        let cli = try CLIHarness()
        #expect(try cli.run("add", "poems", "--from", source.url.path).succeeded)
        #expect(try cli.run("model", "register", "m@1", "--developer", "Dev <dev@example.org>", "--dataset", "poems",
                            "--plugin", "data-volume").succeeded)
        let repo = cli.datasetRepository("poems")
        let oracle = try Self.oracle(repo)
        #expect(Set(oracle.bytes.keys) == ["ann@example.org", "bo@example.org", "cy@example.org", "di@example.org", "ed@example.org"])

        let bytes = try cli.json(Result.self, "attribute", "m@1")
        #expect(bytes.plugin == "data-volume")
        let byteRaw = Dictionary(uniqueKeysWithValues: bytes.weights.map { ($0.id, Int($0.raw ?? -1)) })
        #expect(byteRaw == oracle.bytes)
        #expect(bytes.weights.reduce(0) { $0 + $1.ppb } == 1_000_000_000)

        let lines = try cli.json(Result.self, "attribute", "m@1", "--unit", "lines")
        #expect(lines.plugin == "data-volume:unit=lines")
        let lineRaw = Dictionary(uniqueKeysWithValues: lines.weights.map { ($0.id, Int($0.raw ?? -1)) }).filter { $0.value > 0 }
        #expect(lineRaw == oracle.lines)

        // The result is cached by commit: a second run gives the same figures from the index.
        let cachedRows = try TestBackend.sql(store: cli.store, "SELECT count(*) FROM authorship_commits")
        #expect(cachedRows == "1")
        let again = try cli.json(Result.self, "attribute", "m@1")
        #expect(again.weights.map(\.ppb) == bytes.weights.map(\.ppb))
    }

    @Test func aLinearHistoryMatchesAndIsIncremental() throws {
        let cli = try CLIHarness()
        try cli.write("c/a.txt", "a1\na2\na3\n")
        try cli.write("c/b.txt", "b1\n")
        #expect(try cli.run("add", "set", "c", "--contributor", "A <a@example.org>").succeeded)
        #expect(try cli.run("model", "register", "m@1", "--developer", "D <d@example.org>", "--dataset", "set", "--plugin", "data-volume").succeeded)
        #expect(try cli.run("attribute", "m@1").succeeded)
        try cli.write("c/a.txt", "a1\nB2 changed\na3\nb4\n")
        #expect(try cli.run("add", "set", "c/a.txt", "--contributor", "B <b@example.org>").succeeded)
        #expect(try cli.run("model", "register", "m@2", "--developer", "D <d@example.org>", "--dataset", "set").succeeded)
        let second = try cli.json(Result.self, "attribute", "m@2")
        let oracle = try Self.oracle(cli.datasetRepository("set"))
        #expect(Dictionary(uniqueKeysWithValues: second.weights.map { ($0.id, Int($0.raw ?? -1)) }) == oracle.bytes)
        // The unchanged c/b.txt was taken from the parent's cached rows, not blamed again.
        let rows = try TestBackend.sql(store: cli.store, "SELECT count(DISTINCT commit_id) FROM file_authorship WHERE path = 'c/b.txt'")
        #expect(rows == "2")
    }
}
