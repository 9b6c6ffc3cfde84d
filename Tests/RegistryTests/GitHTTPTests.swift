import Foundation
import ProvenanceCore
import ProvenanceTestSupport
import Testing

/// Every repository of the store, cloned and fetched by the stock git CLI over the registry's
/// dumb HTTP routes; git is the oracle.
@Suite struct GitHTTPTests {
    /// A store with dataset `poems` of three commits (the first, of 70 files, written as a
    /// pack), a model `m@1` trained on it, and a registry serving it.
    static func served() throws -> (CLIHarness, LiveRegistry) {
        let cli = try CLIHarness()
        for index in 0..<70 { try cli.write("poems/p\(index).txt", "poem \(index)\nline two of \(index)\n") }
        try cli.must("add", "poems", "poems", "--contributor", "Ada Lovelace <ada@example.org>", "-m", "seventy poems")
        try cli.write("notes.txt", "a note\n")
        try cli.must("add", "poems", "notes.txt", "--to", "annotations", "--contributor", "Grace Hopper <grace@example.org>")
        try cli.write("more/extra.txt", "extra\n")
        try cli.must("add", "poems", "more/extra.txt", "--contributor", "Ada Lovelace <ada@example.org>", "-m", "one more")
        try cli.write("train.log", "step 1 loss 2.0\n")
        try cli.must("model", "register", "m@1", "--developer", "Dev <dev@example.org>", "--dataset", "poems", "--training-log", "train.log")
        return (cli, try LiveRegistry(store: cli.store))
    }

    /// `git log` of `rev` in `repo`, one line per commit as the registry's log reports it.
    static func gitLog(_ repo: URL, _ rev: String = "HEAD") throws -> [String] {
        try git(["log", "--format=%H %at %an <%ae> %s", rev], in: repo).output.split(separator: "\n").map(String.init)
    }

    static func registryLog(_ cli: CLIHarness, _ dataset: String) throws -> [String] {
        try cli.json([LogEntry].self, "log", dataset).map { "\($0.commit) \($0.time) \($0.author) \($0.summary)" }
    }

    @Test func aDatasetClonesWithTheGitCLIPassesFsckAndHasTheRegistrysLogThenFetchesANewCommit() async throws {
        let (cli, registry) = try Self.served()
        // The first add really went into a pack: the clone must read packs as well as loose objects.
        let packs = try FileManager.default.contentsOfDirectory(atPath: cli.datasetRepository("poems").appendingPathComponent("objects/pack").path)
        #expect(packs.contains { $0.hasSuffix(".pack") }, "\(packs)")

        let scratch = try TemporaryDirectory("provenance-git-clone")
        let clone = scratch.path("poems")
        let cloned = try git(["clone", "-q", "\(registry.base)/git/datasets/poems.git", clone.path], in: scratch.url, allowFailure: true)
        #expect(cloned.succeeded, "\(cloned)")
        try git(["fsck", "--strict", "--no-dangling"], in: clone)
        let log = try Self.gitLog(clone)
        #expect(log.count == 3)
        #expect(log == (try Self.registryLog(cli, "poems")))
        #expect(try git(["ls-files"], in: clone).lines.count == 72)
        #expect(try String(contentsOf: clone.appendingPathComponent("annotations/notes.txt"), encoding: .utf8) == "a note\n")

        // A new add on the registry; git fetch brings exactly that commit.
        try cli.write("late.txt", "late\n")
        try cli.must("add", "poems", "late.txt", "--contributor", "Grace Hopper <grace@example.org>", "-m", "late")
        let fetched = try git(["fetch", "-q", "origin"], in: clone, allowFailure: true)
        #expect(fetched.succeeded, "\(fetched)")
        try git(["fsck", "--strict", "--no-dangling"], in: clone)
        let fetchedLog = try Self.gitLog(clone, "origin/main")
        #expect(fetchedLog.count == 4 && fetchedLog.first?.hasSuffix("late") == true)
        #expect(fetchedLog == (try Self.registryLog(cli, "poems")))
        #expect(Array(fetchedLog.dropFirst()) == log)
    }

    @Test func aModelRepositoryClonesWithItsVersionTag() async throws {
        let (cli, registry) = try Self.served()
        let scratch = try TemporaryDirectory("provenance-git-clone")
        let clone = scratch.path("m")
        let cloned = try git(["clone", "-q", "\(registry.base)/git/models/m.git", clone.path], in: scratch.url, allowFailure: true)
        #expect(cloned.succeeded, "\(cloned)")
        try git(["fsck", "--strict", "--no-dangling"], in: clone)
        #expect(try git(["tag"], in: clone).lines == ["1"])
        let manifest = try git(["show", "1:provenance.json"], in: clone).stdout
        let store = try git(["--git-dir", cli.store.appendingPathComponent("models/m.git").path, "show", "1:provenance.json"], in: scratch.url).stdout
        #expect(!manifest.isEmpty && manifest == store)
        #expect(try git(["show", "1:training-logs/train.log"], in: clone).stdout == "step 1 loss 2.0\n")
    }

    /// `info/refs` and `objects/info/packs` are byte for byte what `git update-server-info`
    /// writes, annotated tags peeled included; the smart probe gets the same plain text.
    @Test func theGeneratedFilesAreWhatGitUpdateServerInfoWrites() async throws {
        let (cli, registry) = try Self.served()
        let models = cli.store.appendingPathComponent("models/m.git")
        try git(["--git-dir", models.path, "tag", "-a", "annotated", "-m", "an annotated tag", "1"], in: cli.work)
        for (kind, name) in [("datasets", "poems"), ("models", "m")] {
            let scratch = try TemporaryDirectory("provenance-server-info")
            // The oracle: update-server-info on a copy of the store's own repository.
            let original = scratch.path("original.git")
            try FileManager.default.copyItem(at: cli.store.appendingPathComponent("\(kind)/\(name).git"), to: original)
            try git(["--git-dir", original.path, "update-server-info"], in: scratch.url)
            let expectedRefs = try Data(contentsOf: original.appendingPathComponent("info/refs"))
            let expectedPacks = try Data(contentsOf: original.appendingPathComponent("objects/info/packs"))

            let refs = try await registry.get("/git/\(kind)/\(name).git/info/refs")
            #expect(refs.status == 200 && refs.contentType?.hasPrefix("text/plain") == true)
            #expect(refs.body == expectedRefs, "\(String(decoding: refs.body, as: UTF8.self)) vs \(String(decoding: expectedRefs, as: UTF8.self))")
            let probe = try await registry.get("/git/\(kind)/\(name).git/info/refs?service=git-upload-pack")
            #expect(probe.status == 200 && probe.contentType?.hasPrefix("text/plain") == true && probe.body == expectedRefs)
            let packs = try await registry.get("/git/\(kind)/\(name).git/objects/info/packs")
            // git orders several packs by age; the set of lines and the closing blank line are the format.
            #expect(packs.status == 200 && Set(packs.body.split(separator: 10)) == Set(expectedPacks.split(separator: 10)))
            #expect(packs.body.count == expectedPacks.count && packs.body.last == 10)
            let head = try await registry.get("/git/\(kind)/\(name).git/HEAD")
            let expectedHead = try Data(contentsOf: original.appendingPathComponent("HEAD"))
            #expect(head.status == 200 && head.body == expectedHead)
        }
        let refs = String(decoding: try await registry.get("/git/models/m.git/info/refs").body, as: UTF8.self)
        #expect(refs.contains("\trefs/tags/annotated^{}\n"))
    }

    @Test func unknownRepositoriesAndPathsOutsideTheProtocolAre404() async throws {
        let (cli, registry) = try Self.served()
        let head = try #require(try cli.json([LogEntry].self, "log", "poems").first?.commit)
        for path in [
            "/git/datasets/nope.git/info/refs", "/git/datasets/poems/info/refs", "/git/models/poems.git/HEAD",
            "/git/datasets/m.git/HEAD", "/git/datasets/..%2F..%2Fregistry.sqlite/HEAD", "/git/datasets/..%2Fmodels%2Fm.git/HEAD",
            "/git/datasets/poems.git/config", "/git/datasets/poems.git/description", "/git/datasets/poems.git/objects/info/alternates",
            "/git/datasets/poems.git/objects/\(head.prefix(2))/..%2F..%2Fconfig", "/git/datasets/poems.git/objects/\(head.prefix(2))/\(head.dropFirst(2).uppercased())",
            "/git/datasets/poems.git/objects/pack/pack-\(String(repeating: "0", count: 40)).pack",
            "/git/datasets/poems.git/objects/pack/pack-\(String(repeating: "0", count: 40)).keep",
            "/git/datasets/poems.git/refs/heads/main", "/git/datasets/poems.git/packed-refs", "/git/keys/registry.ed25519",
        ] {
            let answer = try await registry.get(path)
            #expect(answer.status == 404, "\(path): \(answer.status)")
        }
        // What is there is served: a loose object of the last commit (trees and commits are loose).
        let loose = try await registry.get("/git/datasets/poems.git/objects/\(head.prefix(2))/\(head.dropFirst(2))")
        #expect(loose.status == 200 && loose.contentType == "application/x-git-loose-object")
        let scratch = try TemporaryDirectory("provenance-git-clone")
        let unknown = try git(["clone", "-q", "\(registry.base)/git/datasets/nope.git", scratch.path("nope").path], in: scratch.url, allowFailure: true)
        #expect(!unknown.succeeded && unknown.stderr.contains("not found"), "\(unknown)")
    }

    /// The repositories are read-only: git push is refused at its probe (403), the methods a
    /// dumb push would use are not routes, and the store is unchanged.
    @Test func aPushIsRefusedAndChangesNothing() async throws {
        let (cli, registry) = try Self.served()
        let scratch = try TemporaryDirectory("provenance-git-clone")
        let clone = scratch.path("poems")
        try git(["clone", "-q", "\(registry.base)/git/datasets/poems.git", clone.path], in: scratch.url)
        try FileManager.default.removeItem(at: clone.appendingPathComponent("annotations/notes.txt"))
        try gitCommit(clone, author: "Mallory <mallory@example.org>", message: "rewrite history", date: 1_800_000_000)
        let before = try cli.snapshot()
        let pushed = try git(["push", "origin", "HEAD:main"], in: clone, allowFailure: true)
        #expect(!pushed.succeeded && pushed.stderr.contains("403"), "\(pushed)")
        let forced = try git(["push", "--force", "origin", "HEAD:refs/heads/other"], in: clone, allowFailure: true)
        #expect(!forced.succeeded, "\(forced)")
        let probe = try await registry.get("/git/datasets/poems.git/info/refs?service=git-receive-pack")
        #expect(probe.status == 403 && String(decoding: probe.body, as: UTF8.self).contains("read-only"))
        for (method, path) in [("PUT", "/git/datasets/poems.git/objects/info/packs"), ("POST", "/git/datasets/poems.git/git-receive-pack"),
                               ("POST", "/git/datasets/poems.git/git-upload-pack"), ("DELETE", "/git/datasets/poems.git/HEAD"),
                               ("MKCOL", "/git/datasets/poems.git/objects/ab/")] {
            let status = try await registry.send(method, path)
            #expect(status == 404 || status == 405, "\(method) \(path): \(status)")
        }
        #expect(try cli.snapshot() == before)
        #expect(try Self.registryLog(cli, "poems").count == 3)
    }

    /// Object files are streamed: cloning a 96 MiB incompressible file leaves the server's peak
    /// memory where it was, give or take a few chunks.
    @Test func aLargeObjectIsStreamedWithFlatMemory() async throws {
        let cli = try CLIHarness()
        var generator = SplitMix64(state: 42)
        let size = 96 << 20
        var bytes = [UInt8](repeating: 0, count: size)
        bytes.withUnsafeMutableBytes { buffer in
            let words = buffer.bindMemory(to: UInt64.self)
            for index in words.indices { words[index] = generator.next() }
        }
        try cli.directory.write("big.bin", Data(bytes))
        bytes = []
        try cli.must("add", "big", "big.bin", "--contributor", "Ada Lovelace <ada@example.org>")
        let registry = try LiveRegistry(store: cli.store)
        // Warm the server up with a small request first, so the baseline includes its buffers.
        _ = try await registry.get("/git/datasets/big.git/info/refs")
        let before = try Self.peakMemory(registry.process.processIdentifier)
        let scratch = try TemporaryDirectory("provenance-git-clone")
        let cloned = try git(["clone", "-q", "\(registry.base)/git/datasets/big.git", scratch.path("big").path], in: scratch.url, allowFailure: true)
        #expect(cloned.succeeded, "\(cloned)")
        let after = try Self.peakMemory(registry.process.processIdentifier)
        let attributes = try FileManager.default.attributesOfItem(atPath: scratch.path("big/big.bin").path)
        #expect(attributes[.size] as? Int == size)
        #expect(after - before < 32 << 20, "peak RSS grew by \((after - before) >> 20) MiB while serving a \(size >> 20) MiB object")
    }

    /// A process's peak resident memory (VmHWM), in bytes.
    static func peakMemory(_ pid: Int32) throws -> Int {
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        let line = try #require(status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") })
        let kilobytes = try #require(Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]))
        return kilobytes * 1024
    }
}
