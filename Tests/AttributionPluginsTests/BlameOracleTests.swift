import Foundation
import ProvenanceTestSupport
import Testing

/// data-volume against `git blame --line-porcelain` (mailmap on) over every file at HEAD, on
/// histories built to cross the cases git blame handles by default: renames, moves with edits,
/// renames on one side of a merge, deletions and re-additions, lines both parents of a merge
/// have, a changing `.mailmap`, a missing final newline, a renamed binary file; and on a larger
/// random history. Each is checked cold (empty cache), warm (the commit cached) and
/// incrementally (an ancestor cached first).
@Suite struct BlameOracleTests {
    struct Amount: Equatable, CustomStringConvertible {
        var bytes = 0
        var lines = 0
        var description: String { "\(bytes) B/\(lines) L" }
    }

    /// Runs git in `repo` and returns its stdout as bytes (blame output may hold any byte).
    static func gitData(_ arguments: [String], in repo: URL) throws -> Data {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/git")
        process.arguments = ["-C", repo.path, "-c", "blame.useMailmap=true"] + arguments
        process.environment = ["GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null", "HOME": repo.path,
                               "PATH": "/usr/bin:/bin"]
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw FixtureError("git \(arguments.joined(separator: " ")) failed") }
        return data
    }

    /// Bytes and lines per contributor id at `revision`, from the git CLI alone: every line goes
    /// to the lowercased author-mail git blame gives it (each line with its newline). A binary
    /// file or a link goes whole to the single commit git blame names for it, and counts no
    /// lines; the fixtures give binary files no newline byte, so blame sees one line.
    static func oracle(_ repo: URL) throws -> [String: Amount] {
        let revision = "HEAD"
        var amounts: [String: Amount] = [:]
        let tree = try gitData(["ls-tree", "-r", "-z", revision], in: repo)
        for entry in tree.split(separator: 0) {
            let text = String(decoding: entry, as: UTF8.self)
            let tab = text.firstIndex(of: "\t")!
            let fields = text[..<tab].split(separator: " ")
            let path = String(text[text.index(after: tab)...])
            if fields[0] == "160000" { continue }
            let content = try gitData(["cat-file", "blob", "\(revision):\(path)"], in: repo)
            let whole = fields[0] == "120000" || content.prefix(8000).contains(0)
            let porcelain = try gitData(["blame", "--line-porcelain", revision, "--", path], in: repo)
            var authors: [String] = []
            for row in porcelain.split(separator: 0x0A, omittingEmptySubsequences: false)
            where row.starts(with: Data("author-mail <".utf8)) {
                authors.append(String(decoding: row.dropFirst("author-mail <".count).dropLast(), as: UTF8.self).lowercased())
            }
            if whole {
                #expect(Set(authors).count <= 1, "\(path): the fixture's binary file should be one line to git blame")
                if let author = authors.first { amounts[author, default: Amount()].bytes += content.count }
                continue
            }
            var lengths = content.split(separator: 0x0A, omittingEmptySubsequences: false).map { $0.count + 1 }
            if content.last == 0x0A || content.isEmpty { lengths.removeLast() } else { lengths[lengths.count - 1] -= 1 }
            #expect(authors.count == lengths.count, "\(path): git blame covered \(authors.count) of \(lengths.count) lines")
            for (author, length) in zip(authors, lengths) {
                amounts[author, default: Amount()].bytes += length
                amounts[author, default: Amount()].lines += 1
            }
        }
        return amounts.filter { $0.value.bytes > 0 }
    }

    struct Result: Decodable {
        var weights: [Weight]
        struct Weight: Decodable { var id: String; var raw: Double? }
    }

    /// What provenance says, in both units.
    static func provenance(_ cli: CLIHarness, _ model: String) throws -> [String: Amount] {
        let bytes = try cli.json(Result.self, "attribute", model)
        let lines = try cli.json(Result.self, "attribute", model, "--unit", "lines")
        var amounts: [String: Amount] = [:]
        for weight in bytes.weights where (weight.raw ?? 0) > 0 { amounts[weight.id, default: Amount()].bytes = Int(weight.raw!) }
        for weight in lines.weights where (weight.raw ?? 0) > 0 { amounts[weight.id, default: Amount()].lines = Int(weight.raw!) }
        return amounts
    }

    static func clearCache(_ cli: CLIHarness) throws {
        try TestBackend.sql(store: cli.store, "DELETE FROM file_authorship; DELETE FROM authorship_commits;")
    }

    static func cachedCommits(_ cli: CLIHarness) throws -> Int {
        Int(try TestBackend.sql(store: cli.store, "SELECT count(*) FROM authorship_commits")) ?? -1
    }

    /// Imports `source` into a new store and checks provenance against the oracle: cold, warm,
    /// and (when `midway` names an earlier revision) after caching that ancestor first.
    static func check(_ source: URL, midway: String? = nil, sourceLocation: SourceLocation = #_sourceLocation,
                      fixture: ([String: Amount]) -> Bool) throws {
        let expected = try oracle(source)
        #expect(!expected.isEmpty, sourceLocation: sourceLocation)
        // The fixture really crosses its case: git blame's answer shows it.
        #expect(fixture(expected), "the fixture does not exercise its case: \(expected)", sourceLocation: sourceLocation)
        let cli = try CLIHarness()
        if let midway {
            let commit = try git(["rev-parse", midway], in: source).output
            try cli.must("add", "ds", "--from", source.path, "--rev", commit)
            try cli.must("model", "register", "early@1", "--developer", "Dev <dev@example.org>", "--dataset", "ds",
                         "--plugin", "data-volume")
            // The dataset's bare repository has HEAD at the midway commit, so git blame there
            // reads that commit's .mailmap, as provenance does.
            #expect(try provenance(cli, "early@1") == oracle(cli.datasetRepository("ds")), "midway", sourceLocation: sourceLocation)
        }
        try cli.must("add", "ds", "--from", source.path)
        try cli.must("model", "register", "m@1", "--developer", "Dev <dev@example.org>", "--dataset", "ds", "--plugin", "data-volume")
        // Incremental: the ancestor's cached files are reused where they arrive unchanged.
        #expect(try provenance(cli, "m@1") == expected, "incremental/cold", sourceLocation: sourceLocation)
        // Warm: straight from the cache.
        #expect(try provenance(cli, "m@1") == expected, "warm", sourceLocation: sourceLocation)
        // Cold: nothing cached at all.
        try clearCache(cli)
        #expect(try provenance(cli, "m@1") == expected, "cold", sourceLocation: sourceLocation)
        #expect(try cachedCommits(cli) == 1, sourceLocation: sourceLocation)
    }

    // MARK: The cases

    /// A scratch repository with a clock, committing as given authors.
    final class Fixture {
        let directory: TemporaryDirectory
        var url: URL { directory.url }
        var time = 1_700_000_000

        init() throws {
            directory = try TemporaryDirectory("blame-oracle")
            try ProvenanceTestSupport.git(["init", "-q"], in: url)
        }

        func write(_ path: String, _ text: String) throws { try directory.write(path, text) }
        func write(_ path: String, _ data: Data) throws { try directory.write(path, data) }

        func commit(_ author: String, _ message: String = "change") throws {
            time += 60
            try gitCommit(url, author: author, message: message, date: time)
        }

        func git(_ arguments: String...) throws {
            if arguments.first == "mv", let destination = arguments.last {
                // git mv wants the destination's folder to exist.
                try FileManager.default.createDirectory(at: url.appendingPathComponent(destination).deletingLastPathComponent(),
                                                        withIntermediateDirectories: true)
            }
            try ProvenanceTestSupport.git(arguments, in: url)
        }

        /// Starts merging `branch` without committing (conflicts are left for the caller to
        /// resolve); `commit` then records the merge.
        func startMerge(_ branch: String) throws {
            try ProvenanceTestSupport.git(["merge", "-q", "--no-ff", "--no-commit", branch], in: url, allowFailure: true)
        }
    }

    static let ann = "Ann <ann@example.org>"
    static let bo = "Bo <bo@example.org>"
    static let cy = "Cy <cy@example.org>"
    static let di = "Di <di@example.org>"

    static func numbered(_ prefix: String, _ range: ClosedRange<Int>) -> String {
        range.map { "\(prefix) line \($0) with some words to weigh\n" }.joined()
    }

    @Test func aFileRenamedAndThenEdited() throws {
        let f = try Fixture()
        try f.write("poem.txt", Self.numbered("ann", 1...12))
        try f.write("other.txt", "unrelated\n")
        try f.commit(Self.ann)
        try f.git("mv", "poem.txt", "verse.txt")
        try f.commit(Self.bo, "rename")
        var lines = Self.numbered("ann", 1...12).split(separator: "\n").map(String.init)
        lines[3] = "cy rewrote line four"
        lines.append("cy added a line")
        try f.write("verse.txt", lines.joined(separator: "\n") + "\n")
        try f.commit(Self.cy)
        // Ann's lines survive the rename; Bo, who only renamed, wrote nothing.
        try Self.check(f.url, midway: "HEAD~1") { $0["ann@example.org"]?.lines == 12 && $0["bo@example.org"] == nil }
    }

    @Test func aFileMovedToAnotherFolderWithEditsInTheSameCommit() throws {
        let f = try Fixture()
        try f.write("drafts/notes.txt", Self.numbered("ann", 1...10))
        try f.write("drafts/keep.txt", Self.numbered("keep", 1...3))
        try f.write("drafts/other.txt", Self.numbered("other", 1...8))
        try f.commit(Self.ann)
        try f.git("mv", "drafts/notes.txt", "final/notes.txt")
        var lines = Self.numbered("ann", 1...10).split(separator: "\n").map(String.init)
        lines[0] = "bo changed the first line"
        lines.insert("bo inserted this", at: 5)
        try f.write("final/notes.txt", lines.joined(separator: "\n") + "\n")
        // A move that also changes the basename: found by content similarity alone.
        try f.git("mv", "drafts/other.txt", "final/renamed.txt")
        try f.write("final/renamed.txt", Self.numbered("other", 1...7) + "bo's new ending\n")
        try f.commit(Self.bo, "move and edit")
        try f.write("final/notes.txt", lines.joined(separator: "\n") + "\ncy at the end\n")
        try f.commit(Self.cy)
        // 9 of notes, 3 kept, 7 of the renamed file stay Ann's; Bo wrote 2 + 1 lines.
        try Self.check(f.url, midway: "HEAD~1") { $0["ann@example.org"]?.lines == 19 && $0["bo@example.org"]?.lines == 3 }
    }

    @Test func aRenameOnOneSideOfAMerge() throws {
        let f = try Fixture()
        try f.write("story.txt", Self.numbered("ann", 1...20))
        try f.commit(Self.ann)
        try f.git("checkout", "-q", "-b", "side")
        try f.git("mv", "story.txt", "book/story.md")
        var side = Self.numbered("ann", 1...20).split(separator: "\n").map(String.init)
        side[15] = "bo edited line sixteen on the side"
        try f.write("book/story.md", side.joined(separator: "\n") + "\n")
        try f.commit(Self.bo, "rename on the side")
        try f.git("checkout", "-q", "main")
        var main = Self.numbered("ann", 1...20).split(separator: "\n").map(String.init)
        main[2] = "cy edited line three on main"
        try f.write("story.txt", main.joined(separator: "\n") + "\n")
        try f.commit(Self.cy, "edit on main")
        try f.startMerge("side")
        try f.commit(Self.di, "merge the rename")
        #expect(try f.url.appendingPathComponent("book/story.md").contentsOfFile().contains("cy edited line three on main"))
        try Self.check(f.url, midway: "HEAD^2") {
            $0["ann@example.org"]?.lines == 18 && $0["bo@example.org"]?.lines == 1 && $0["cy@example.org"]?.lines == 1 && $0["di@example.org"] == nil
        }
    }

    @Test func aFileDeletedAndAddedAgain() throws {
        let f = try Fixture()
        try f.write("list.txt", Self.numbered("ann", 1...6))
        try f.write("stay.txt", "stays\n")
        try f.commit(Self.ann)
        try f.git("rm", "-q", "list.txt")
        try f.commit(Self.bo, "delete")
        try f.write("list.txt", Self.numbered("ann", 1...6) + "cy's own line\n")
        try f.commit(Self.cy, "add again")
        // A file added again starts afresh: every line is Cy's.
        try Self.check(f.url, midway: "HEAD~1") { $0["cy@example.org"]?.lines == 7 && $0["ann@example.org"]?.lines == 1 }
    }

    @Test func identicalLinesInBothParentsOfAMerge() throws {
        let f = try Fixture()
        try f.write("shared.txt", Self.numbered("ann", 1...5))
        try f.commit(Self.ann)
        try f.git("checkout", "-q", "-b", "side")
        try f.write("shared.txt", Self.numbered("ann", 1...5) + "the same new line\nbo only on the side\n")
        try f.commit(Self.bo, "side")
        try f.git("checkout", "-q", "main")
        try f.write("shared.txt", "cy at the top\n" + Self.numbered("ann", 1...5) + "the same new line\n")
        try f.commit(Self.cy, "main")
        try f.startMerge("side")
        // The conflict, resolved by hand: both sides' lines plus one of Di's.
        try f.write("shared.txt", "cy at the top\n" + Self.numbered("ann", 1...5) + "the same new line\nbo only on the side\ndi resolved\n")
        try f.commit(Self.di, "merge side")
        let parents = try git(["rev-list", "--parents", "-1", "HEAD"], in: f.url).output.split(separator: " ")
        #expect(parents.count == 3, "the resolution must be a merge commit")
        // The line both parents added goes to the first parent's author.
        try Self.check(f.url, midway: "HEAD^1") {
            $0["cy@example.org"]?.lines == 2 && $0["bo@example.org"]?.lines == 1 && $0["di@example.org"]?.lines == 1
        }
    }

    @Test func aMailmapThatChangesBetweenCommits() throws {
        let f = try Fixture()
        try f.write("a.txt", Self.numbered("old", 1...4))
        try f.write(".mailmap", "Bo Writer <bo@example.org> <BO@old.example>\n")
        try f.commit("Bo Old <bo@old.example>")
        try f.write("b.txt", Self.numbered("cy", 1...3))
        try f.commit("Cy Alias <cy@alias.example>")
        // The map changes: Cy's alias now maps, Bo's old address maps elsewhere.
        try f.write(".mailmap", "Cy <cy@example.org> <cy@alias.example>\nBo Writer <bo@new.example> <bo@old.example>\n")
        try f.write("c.txt", "ann\n")
        try f.commit(Self.ann)
        try Self.check(f.url, midway: "HEAD~1") { $0["bo@new.example"]?.lines == 4 && $0["cy@example.org"]?.lines == 3 }
    }

    @Test func aFileWithoutAFinalNewline() throws {
        let f = try Fixture()
        try f.write("tail.txt", "first\nsecond\nno newline here")
        try f.commit(Self.ann)
        try f.write("tail.txt", "first\nsecond\nno newline here, extended by bo")
        try f.commit(Self.bo)
        try f.write("tail.txt", "first\nsecond\nno newline here, extended by bo\ncy's last line, still without one")
        try f.commit(Self.cy)
        // A last line that gains text, or a newline, is a changed line: Bo's is now Cy's.
        try Self.check(f.url, midway: "HEAD~1") { $0["ann@example.org"]?.lines == 2 && $0["bo@example.org"] == nil && $0["cy@example.org"]?.lines == 2 }
    }

    @Test func aBinaryFileRenamed() throws {
        let f = try Fixture()
        let image = Data((0..<3000).map { UInt8(truncatingIfNeeded: $0 * 7 % 251 == 10 ? 11 : $0 * 7 % 251) }) + Data([0])
        try f.write("img/logo.bin", image)
        try f.write("img/other.bin", Data([1, 0, 2, 0, 3]))
        try f.write("img/README", "two images\n")
        try f.commit(Self.ann)
        try f.git("mv", "img/logo.bin", "assets/logo.bin")
        try f.commit(Self.bo, "rename the binary")
        try f.git("mv", "img/other.bin", "assets/changed.bin")
        try f.write("assets/changed.bin", Data([1, 0, 2, 0, 3, 4]))
        try f.commit(Self.cy, "rename and change a binary")
        // The renamed binary stays Ann's; the one renamed and changed is Cy's.
        try Self.check(f.url, midway: "HEAD~1") { $0["ann@example.org"]?.bytes == image.count + 11 && $0["cy@example.org"]?.bytes == 6 && $0["bo@example.org"] == nil }
    }

    @Test func aMergeThatKeepsOneParentsFile() throws {
        let f = try Fixture()
        try f.write("x.txt", Self.numbered("ann", 1...4))
        try f.commit(Self.ann)
        try f.git("checkout", "-q", "-b", "side")
        try f.write("x.txt", Self.numbered("ann", 1...4) + "bo's line\n")
        try f.write("y.txt", "bo's new file\n")
        try f.commit(Self.bo, "side")
        try f.git("checkout", "-q", "main")
        try f.write("x.txt", "cy first\n" + Self.numbered("ann", 1...4))
        try f.commit(Self.cy, "main")
        try f.startMerge("side")
        try f.write("x.txt", Self.numbered("ann", 1...4) + "bo's line\n")
        try f.commit(Self.di, "merge, keeping the side's x.txt")
        try Self.check(f.url, midway: "HEAD^1") { $0["bo@example.org"]?.lines == 2 && $0["cy@example.org"] == nil }
    }

    @Test func aLargerRandomHistory() throws {
        let source = try TemporaryDirectory("blame-oracle-random")
        try RandomHistory(seed: 12, commits: 240).write(to: source.url)
        let merges = Int(try git(["rev-list", "--merges", "--count", "HEAD"], in: source.url).output) ?? 0
        let renames = try git(["log", "-M", "--diff-filter=R", "--format=%H", "HEAD"], in: source.url).lines.count
        #expect(merges >= 5 && renames >= 20, "merges \(merges), commits with renames \(renames)")
        try Self.check(source.url, midway: "HEAD~60") {
            // Author 3 is mapped onto Author 2 by the final .mailmap, the old address onto Author 1.
            $0.count >= 4 && $0["a3@example.org"] == nil && $0["a1@old.example"] == nil
        }
    }
}

extension URL {
    func contentsOfFile() throws -> String { String(decoding: try Data(contentsOf: self), as: UTF8.self) }
}
