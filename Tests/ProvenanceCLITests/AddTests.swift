import Foundation
import ProvenanceTestSupport
import Testing

/// `provenance add DATASET PATH...`, checked against the git CLI.
@Suite struct AddTests {
    struct AddJSON: Decodable {
        var dataset: String
        var commit: String
        var parent: String?
        var files: Int
        var bytes: UInt64
        var contributor: String
        var contributor_id: String
        var manifest_sha256: String
        var total_files: Int
    }

    struct ContributorJSON: Decodable, Equatable {
        var contributor: String
        var id: String
        var commits: Int
    }

    @Test func addCommitsFilesAsTheContributorAndGitAgrees() throws {
        let cli = try CLIHarness()
        try cli.write("data/a.txt", "alpha\nbeta\n")
        try cli.write("data/sub/b.txt", "gamma\n")
        let first = try cli.json(AddTests.AddJSON.self, "add", "corpus", "data", "--contributor", "Ada Lovelace <ada@example.org>", "-m", "Seed corpus")
        #expect(first.dataset == "corpus")
        #expect(first.files == 2)
        #expect(first.bytes == 17)
        #expect(first.parent == nil)
        #expect(first.contributor_id == "ada@example.org")

        try cli.write("data/a.txt", "alpha\nbeta\ndelta\n")
        let second = try cli.json(AddTests.AddJSON.self, "add", "corpus", "data/a.txt", "--contributor", "Grace Hopper <Grace@Example.org>")
        #expect(second.parent == first.commit)
        #expect(second.files == 1)
        #expect(second.total_files == 2)
        #expect(second.contributor_id == "grace@example.org")

        let repo = cli.datasetRepository("corpus")
        try git(["fsck", "--strict"], in: repo)
        let gitLog = try git(["log", "--format=%H %aN <%aE> %s"], in: repo).lines
        #expect(gitLog == [
            "\(second.commit) Grace Hopper <Grace@Example.org> Add data/a.txt",
            "\(first.commit) Ada Lovelace <ada@example.org> Seed corpus",
        ])
        #expect(try git(["show", "HEAD:data/a.txt"], in: repo).stdout == "alpha\nbeta\ndelta\n")
        #expect(try git(["show", "HEAD:data/sub/b.txt"], in: repo).stdout == "gamma\n")

        let log = try cli.run("log", "corpus")
        #expect(log.lines == [
            "\(second.commit.prefix(7)) Grace Hopper <Grace@Example.org> Add data/a.txt",
            "\(first.commit.prefix(7)) Ada Lovelace <ada@example.org> Seed corpus",
        ])
        let contributors = try cli.json([AddTests.ContributorJSON].self, "contributors", "corpus")
        #expect(contributors == [
            ContributorJSON(contributor: "Ada Lovelace <ada@example.org>", id: "ada@example.org", commits: 1),
            ContributorJSON(contributor: "Grace Hopper <Grace@Example.org>", id: "grace@example.org", commits: 1),
        ])
        // At the first commit only Ada had contributed.
        let atFirst = try cli.json([AddTests.ContributorJSON].self, "contributors", "corpus@\(first.commit.prefix(8))")
        #expect(atFirst.map(\.id) == ["ada@example.org"])
    }

    @Test func manifestHashesMatchSha256sum() throws {
        let cli = try CLIHarness()
        try cli.write("d/x.txt", "some text\n")
        var random = SystemRandomNumberGenerator()
        try cli.directory.write("d/blob.bin", Data((0..<70_000).map { _ in UInt8.random(in: 0...255, using: &random) }))
        let added = try cli.json(AddTests.AddJSON.self, "add", "set", "d", "--contributor", "A <a@example.org>")
        let manifest = try cli.run("manifest", "set")
        #expect(manifest.succeeded)
        struct ManifestJSON: Decodable { var files: [Entry]; struct Entry: Decodable { var path: String; var size: UInt64; var sha256: String } }
        let decoded = try JSONDecoder().decode(ManifestJSON.self, from: Data(manifest.output.utf8))
        #expect(decoded.files.map(\.path) == ["d/blob.bin", "d/x.txt"])
        for entry in decoded.files {
            let oracle = try runProcess("/usr/bin/sha256sum", [cli.work.appendingPathComponent(entry.path).path])
            #expect(oracle.output.hasPrefix(entry.sha256 + " "))
        }
        #expect(decoded.files.map(\.size) == [70_000, 10])
        // The manifest's own hash is the SHA-256 of the canonical bytes printed.
        let manifestFile = try cli.write("manifest.json", manifest.output)
        let oracle = try runProcess("/usr/bin/sha256sum", [manifestFile.path])
        #expect(oracle.output.hasPrefix(added.manifest_sha256 + " "))
    }

    /// Enough files that the blobs are written by several workers at once: every blob, mode
    /// and manifest digest must still be exactly what git and sha256sum compute, in order.
    @Test func manyFilesWrittenInParallelAgreeWithGit() throws {
        let cli = try CLIHarness()
        for index in 0..<300 {
            try cli.write("many/dir\(index % 7)/file\(index).txt", String(repeating: "line \(index)\n", count: index % 13 + 1))
        }
        try cli.write("many/empty.txt", "")
        let script = try cli.write("many/run.sh", "#!/bin/sh\necho hi\n")
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: script.path)
        let added = try cli.json(AddTests.AddJSON.self, "add", "set", "many", "--contributor", "A <a@example.org>")
        #expect(added.files == 302)
        let repo = cli.datasetRepository("set")
        try git(["fsck", "--strict"], in: repo)
        let tree = try git(["ls-tree", "-r", "HEAD"], in: repo).lines
        #expect(tree.count == 302)
        for row in tree {
            let fields = row.split(separator: "\t", maxSplits: 1)
            let meta = fields[0].split(separator: " ")
            let path = String(fields[1])
            let expected = try git(["hash-object", cli.work.appendingPathComponent(path).path], in: cli.work).output
            #expect(String(meta[2]) == expected, "\(path)")
            #expect(String(meta[0]) == (path == "many/run.sh" ? "100755" : "100644"), "\(path)")
        }
        struct ManifestJSON: Decodable { var files: [Entry]; struct Entry: Decodable { var path: String; var sha256: String } }
        let manifest = try JSONDecoder().decode(ManifestJSON.self, from: Data(try cli.must("manifest", "set").output.utf8))
        #expect(manifest.files.count == 302)
        for entry in manifest.files where entry.path.hasSuffix("7.txt") || entry.path == "many/run.sh" {
            let oracle = try runProcess("/usr/bin/sha256sum", [cli.work.appendingPathComponent(entry.path).path])
            #expect(oracle.output.hasPrefix(entry.sha256 + " "), "\(entry.path)")
        }
    }

    /// Many small files go into one pack with their folders; a later add of some of the same
    /// files and some new ones packs only the new objects; re-adding what is there writes nothing.
    @Test func manySmallFilesGoIntoOnePackThatGitReads() throws {
        let cli = try CLIHarness()
        for index in 0..<200 {
            try cli.write("bulk/d\(index % 10)/f\(index).txt", "file \(index)\n" + String(repeating: "x", count: index * 37))
        }
        try cli.write("bulk/d3/same-as-f0.txt", "file 0\n")
        let big = Data((0..<((1 << 20) + 10)).map { UInt8(truncatingIfNeeded: $0 &* 13) })
        try big.write(to: cli.work.appendingPathComponent("bulk/big.bin"))
        let added = try cli.json(AddTests.AddJSON.self, "add", "bulk", "bulk", "--contributor", "A <a@example.org>")
        #expect(added.files == 202)
        let repo = cli.datasetRepository("bulk")
        try git(["fsck", "--strict"], in: repo)
        let packs = try FileManager.default.contentsOfDirectory(atPath: repo.appendingPathComponent("objects/pack").path).sorted()
        #expect(packs.count == 2 && packs.allSatisfy { $0.hasPrefix("pack-") }, "\(packs)")
        let idx = try #require(packs.first { $0.hasSuffix(".idx") })
        // 200 distinct small blobs (one file duplicates another) and 12 folders; the big file is loose.
        let verify = try git(["verify-pack", "-v", "objects/pack/\(idx)"], in: repo)
        #expect(verify.lines.contains("non delta: 212 objects"), "\(verify.lines.suffix(3))")
        #expect(try git(["count-objects", "-v"], in: repo).lines.first == "count: 2", "the big blob and the commit")
        for row in try git(["ls-tree", "-r", "HEAD"], in: repo).lines {
            let fields = row.split(separator: "\t", maxSplits: 1)
            let path = String(fields[1])
            #expect(String(fields[0].split(separator: " ")[2]) == (try git(["hash-object", cli.work.appendingPathComponent(path).path], in: cli.work).output), "\(path)")
        }
        // git's own tree of the same files is the same tree.
        try git(["init", "-q", "oracle"], in: cli.work)
        try FileManager.default.copyItem(at: cli.work.appendingPathComponent("bulk"), to: cli.work.appendingPathComponent("oracle/bulk"))
        try git(["add", "-A"], in: cli.work.appendingPathComponent("oracle"))
        #expect(try git(["write-tree"], in: cli.work.appendingPathComponent("oracle")).output
                == (try git(["rev-parse", "HEAD^{tree}"], in: repo).output))

        // 100 files again, 80 unchanged and 20 changed, plus 70 new ones.
        for index in 0..<20 { try cli.write("bulk/d\(index % 10)/f\(index).txt", "changed \(index)\n") }
        for index in 0..<70 { try cli.write("bulk/new/n\(index).txt", "new \(index)\n") }
        var again = (0..<100).map { "bulk/d\($0 % 10)/f\($0).txt" }
        again.append("bulk/new")
        let secondRun = try cli.must(["add", "bulk"] + again + ["--contributor", "B <b@example.org>", "--json"])
        let second = try JSONDecoder().decode(AddTests.AddJSON.self, from: Data(secondRun.stdout.utf8))
        #expect(second.files == 170)
        #expect(second.total_files == 272)
        try git(["fsck", "--strict"], in: repo)
        let newPack = try #require(try FileManager.default.contentsOfDirectory(atPath: repo.appendingPathComponent("objects/pack").path)
            .first { $0.hasSuffix(".idx") && $0 != idx })
        // 90 new blobs; the root, bulk, bulk/new and the ten d* folders.
        #expect(try git(["verify-pack", "-v", "objects/pack/\(newPack)"], in: repo).lines.contains("non delta: 103 objects"))
        // The same files once more: nothing to add, and no pack left behind.
        let same = try cli.run(["add", "bulk"] + again + ["--contributor", "B <b@example.org>"])
        #expect(!same.succeeded && same.stderr.contains("nothing to add"), "\(same)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: repo.appendingPathComponent("objects/pack").path).count == 4)
    }

    @Test func toPlacesFilesAndModesAndSymlinksAreKept() throws {
        let cli = try CLIHarness()
        let script = try cli.write("tools/run.sh", "#!/bin/sh\necho hi\n")
        chmod(script.path, 0o755)
        try FileManager.default.createSymbolicLink(atPath: cli.work.appendingPathComponent("tools/link").path, withDestinationPath: "run.sh")
        let outside = try TemporaryDirectory()
        let absolute = try outside.write("external/notes.md", "# notes\n")
        #expect(try cli.run("add", "mixed", "tools", "--to", "vendor", "--contributor", "A <a@example.org>").succeeded)
        #expect(try cli.run("add", "mixed", absolute.deletingLastPathComponent().path, "--to", "imports", "--contributor", "A <a@example.org>").succeeded)
        let tree = try git(["ls-tree", "-r", "HEAD"], in: cli.datasetRepository("mixed")).lines
            .map { $0.split(separator: "\t").map(String.init) }
            .map { ($0[0].split(separator: " ")[0], $0[1]) }
        #expect(tree.map { "\($0.0) \($0.1)" } == [
            "100644 imports/external/notes.md",
            "120000 vendor/tools/link",
            "100755 vendor/tools/run.sh",
        ])
        try git(["fsck", "--strict"], in: cli.datasetRepository("mixed"))
    }

    @Test func datasetsListsHeadsCommitsContributorsAndSize() throws {
        let cli = try CLIHarness()
        try cli.write("a.txt", "12345")
        try cli.write("b.txt", "1234567890")
        #expect(try cli.run("add", "one", "a.txt", "--contributor", "A <a@example.org>").succeeded)
        #expect(try cli.run("add", "one", "b.txt", "--contributor", "B <b@example.org>").succeeded)
        #expect(try cli.run("add", "two", "b.txt", "--contributor", "B <b@example.org>").succeeded)
        struct Summary: Decodable { var name: String; var head: String?; var commits: Int; var contributors: Int; var files: Int; var bytes: UInt64 }
        let list = try cli.json([Summary].self, "datasets")
        #expect(list.map(\.name) == ["one", "two"])
        #expect(list.map(\.commits) == [2, 1])
        #expect(list.map(\.contributors) == [2, 1])
        #expect(list.map(\.files) == [2, 1])
        #expect(list.map(\.bytes) == [15, 10])
        let head = try git(["rev-parse", "HEAD"], in: cli.datasetRepository("one")).output
        #expect(list[0].head == head)
        let text = try cli.run("datasets")
        #expect(text.lines.first?.hasPrefix("DATASET") == true)
        #expect(text.lines.count == 3)
    }

    @Test func largeFileIsStoredByteForByte() throws {
        let cli = try CLIHarness()
        // Larger than the 1 MiB streaming chunk, with a tail, so several chunks are written.
        var bytes = Data(count: 3 * (1 << 20) + 12345)
        bytes.withUnsafeMutableBytes { raw in
            for index in 0..<raw.count { raw[index] = UInt8(truncatingIfNeeded: index &* 2654435761 >> 7) }
        }
        let file = try cli.directory.write("big.bin", bytes)
        #expect(try cli.run("add", "big", "big.bin", "--contributor", "A <a@example.org>").succeeded)
        let expected = try git(["hash-object", file.path], in: cli.work).output
        let stored = try git(["rev-parse", "HEAD:big.bin"], in: cli.datasetRepository("big")).output
        #expect(stored == expected)
        try git(["fsck", "--strict"], in: cli.datasetRepository("big"))
    }
}
