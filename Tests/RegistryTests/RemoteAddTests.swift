import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import ProvenanceCore
import ProvenanceTestSupport
import Testing

/// `provenance add --registry`: the real CLI uploads to a real `provenance serve`, which writes
/// the commit; the git CLI is the oracle for what was written and by whom.
@Suite struct RemoteAddTests {
    static let ada = "Ada Lovelace <ada@example.org>"

    /// A store served on loopback, a contributor token for ada@example.org, and a separate
    /// folder (no store in it) the client runs in.
    static func served() throws -> (cli: CLIHarness, registry: LiveRegistry, token: String, client: TemporaryDirectory) {
        let cli = try CLIHarness()
        let token = try cli.must("token", "create", "--role", "contributor", "--subject", "ada@example.org").output
        return (cli, try LiveRegistry(store: cli.store), token, try TemporaryDirectory("provenance-remote-client"))
    }

    static func remote(_ cli: CLIHarness, _ registry: LiveRegistry, _ token: String, in client: TemporaryDirectory,
                       _ arguments: [String]) throws -> ProcessResult {
        try cli.run(arguments + ["--registry", registry.base], in: client.url, environment: ["PROVENANCE_TOKEN": token])
    }

    static func stagedUploads(_ cli: CLIHarness) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: cli.store.appendingPathComponent("tmp").path).filter { $0.hasPrefix("upload-") }
    }

    @Test func smallFilesAreCommittedByTheRegistryAuthoredAsTheTokensSubject() async throws {
        let (cli, registry, token, client) = try Self.served()
        try client.write("a.txt", "first poem\n")
        try client.write("sub/b.txt", "second poem\n")
        let added = try Self.remote(cli, registry, token, in: client, ["add", "poems", "a.txt", "sub", "--contributor", Self.ada, "-m", "two poems"])
        #expect(added.succeeded, "\(added)")
        let commit = added.output
        #expect(commit.count == 40)

        // git says who wrote what.
        let repo = cli.datasetRepository("poems")
        let log = try git(["--git-dir", repo.path, "log", "--format=%H %an <%ae> %cn <%ce> %s", "main"], in: cli.work).output
        #expect(log == "\(commit) \(Self.ada) \(Self.ada) two poems")
        #expect(try git(["--git-dir", repo.path, "show", "\(commit):sub/b.txt"], in: cli.work).stdout == "second poem\n")
        try git(["--git-dir", repo.path, "fsck", "--strict", "--no-dangling"], in: cli.work)

        // The store's own view agrees, and the uploads are gone.
        let local = try cli.json([LogEntry].self, "log", "poems")
        #expect(local.map(\.commit) == [commit] && local[0].registered && local[0].id == "ada@example.org")
        #expect(try Self.stagedUploads(cli).isEmpty)

        // --json prints what a local add prints; the same content twice is uploaded once.
        try client.write("c.txt", "same\n")
        try client.write("d.txt", "same\n")
        let json = try Self.remote(cli, registry, token, in: client, ["add", "poems", "c.txt", "d.txt", "--contributor", Self.ada, "--json"])
        #expect(json.succeeded, "\(json)")
        let result = try JSONDecoder().decode(AddResult.self, from: Data(json.stdout.utf8))
        #expect(result.parent == commit && result.files == 2 && result.totalFiles == 4 && result.contributorID == "ada@example.org")
        // The manifest the registry answered for is the store's canonical one, byte for byte.
        let manifest = try cli.must("manifest", "poems").output
        #expect(result.manifestSHA256 == SHA256Digest.hex(of: Data(manifest.utf8)))
        #expect(manifest.contains(SHA256Digest.hex(of: Data("same\n".utf8))))
        #expect(try git(["--git-dir", repo.path, "rev-parse", "main"], in: cli.work).output == result.commit)
        #expect(try Self.stagedUploads(cli).isEmpty)
    }

    @Test func aContributorOtherThanTheTokensSubjectIsRefusedAndNothingIsWritten() async throws {
        let (cli, registry, token, client) = try Self.served()
        try client.write("a.txt", "not mine\n")
        let before = try cli.snapshot()
        let refused = try Self.remote(cli, registry, token, in: client, ["add", "poems", "a.txt", "--contributor", "Grace Hopper <grace@example.org>"])
        #expect(!refused.signalled && refused.status != 0)
        #expect(refused.errorLines.count == 1, "\(refused.stderr)")
        #expect(refused.stderr.contains("is not this token's subject 'ada@example.org'"), "\(refused.stderr)")
        #expect(refused.stdout.isEmpty)
        #expect(try cli.snapshot() == before)
        #expect(!FileManager.default.fileExists(atPath: cli.datasetRepository("poems").path))

        // The registry refuses it by itself too (403), before looking at any upload.
        var request = URLRequest(url: URL(string: registry.base + "/v1/datasets/poems/files")!)
        request.httpMethod = "POST"
        request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.httpBody = Data(#"{"contributor":"Grace Hopper <grace@example.org>","files":[{"path":"a.txt","sha256":"\#(String(repeating: "a", count: 64))"}]}"#.utf8)
        let (data, response) = try await URLSession.shared.data(for: request)
        #expect((response as? HTTPURLResponse)?.statusCode == 403, "\(String(decoding: data, as: UTF8.self))")
        #expect(String(decoding: data, as: UTF8.self).contains("ada@example.org"))
        #expect(try cli.snapshot() == before)

        // Without a token: one line, nothing sent.
        let anonymous = try cli.run(["add", "poems", "a.txt", "--contributor", Self.ada, "--registry", registry.base], in: client.url)
        #expect(anonymous.status != 0 && anonymous.errorLines.count == 1 && anonymous.stderr.contains("PROVENANCE_TOKEN"), "\(anonymous)")
        #expect(try cli.snapshot() == before)
    }

    /// The SHA-256s are checked at both ends: an upload whose bytes are not the ones named is
    /// refused and not kept; a commit naming an upload the registry does not have is refused.
    @Test func uploadsAreCheckedAgainstTheirSHA256() async throws {
        let (cli, registry, token, _) = try Self.served()
        let before = try cli.snapshot()
        let claimed = SHA256Digest.hex(of: Data("what I said\n".utf8))
        var put = URLRequest(url: URL(string: registry.base + "/v1/uploads/\(claimed)")!)
        put.httpMethod = "PUT"
        put.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
        put.httpBody = Data("what I sent\n".utf8)
        let (data, response) = try await URLSession.shared.data(for: put)
        #expect((response as? HTTPURLResponse)?.statusCode == 422)
        #expect(String(decoding: data, as: UTF8.self).contains("hash to \(SHA256Digest.hex(of: Data("what I sent\n".utf8)))"))
        #expect(try Self.stagedUploads(cli).isEmpty)
        #expect(try cli.snapshot() == before)

        var post = URLRequest(url: URL(string: registry.base + "/v1/datasets/poems/files")!)
        post.httpMethod = "POST"
        post.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
        post.setValue("application/json", forHTTPHeaderField: "Content-Type")
        post.httpBody = Data(#"{"contributor":"\#(Self.ada)","files":[{"path":"a.txt","sha256":"\#(claimed)"}]}"#.utf8)
        let (postData, postResponse) = try await URLSession.shared.data(for: post)
        #expect((postResponse as? HTTPURLResponse)?.statusCode == 422)
        #expect(String(decoding: postData, as: UTF8.self).contains("not on the registry"))
        #expect(try cli.snapshot() == before)
    }

    /// `--from` asks the registry to fetch the history; the same import on a local store prints
    /// the same. A file:// source needs a server started with --allow-local-remotes.
    @Test func anImportFromAGitRemoteRunsOnTheRegistry() async throws {
        let cli = try CLIHarness()
        let token = try cli.must("token", "create", "--role", "contributor", "--subject", "ada@example.org").output
        let client = try TemporaryDirectory("provenance-remote-client")
        let source = client.path("source")
        try FileManager.default.createDirectory(at: source, withIntermediateDirectories: true)
        try git(["init", "-q"], in: source)
        try client.write("source/a.txt", "a\n")
        try gitCommit(source, author: "Ann <ann@example.org>", message: "a", date: 1_700_000_000)
        try client.write("source/b.txt", "b\n")
        try gitCommit(source, author: "Bo <bo@example.org>", message: "b", date: 1_700_000_060)
        let head = try git(["rev-parse", "HEAD"], in: source).output

        let strict = try LiveRegistry(store: cli.store)
        let before = try cli.snapshot()
        let refused = try Self.remote(cli, strict, token, in: client, ["add", "text", "--from", "file://\(source.path)"])
        #expect(refused.status != 0 && refused.stdout.isEmpty && refused.errorLines.count == 1, "\(refused)")
        #expect(refused.stderr.contains("422") && refused.stderr.contains("--allow-local-remotes"), "\(refused.stderr)")
        #expect(try cli.snapshot() == before)
        strict.stop()

        let registry = try LiveRegistry(store: cli.store, arguments: ["--allow-local-remotes"])
        let imported = try Self.remote(cli, registry, token, in: client, ["add", "text", "--from", "file://\(source.path)", "--json"])
        #expect(imported.succeeded, "\(imported)")
        let result = try JSONDecoder().decode(ImportResult.self, from: Data(imported.stdout.utf8))
        #expect(result.commit == head && result.newCommits == 2 && result.contributors.count == 2 && result.changed)
        #expect(try git(["--git-dir", cli.datasetRepository("text").path, "rev-parse", "main"], in: cli.work).output == head)
        // Again: nothing new, said as a local add says it.
        let again = try Self.remote(cli, registry, token, in: client, ["add", "text", "--from", "file://\(source.path)"])
        let local = try cli.run(["add", "text", "--from", "file://\(source.path)"])
        #expect(again.succeeded && local.succeeded && again.stdout == local.stdout && again.output == "text is already at \(head)", "\(again) \(local)")
    }

    /// A 1 GiB file goes through with both processes' peak memory far below its size.
    @Test func aOneGiBFileStreamsWithFlatMemoryOnBothSides() async throws {
        let (cli, registry, token, client) = try Self.served()
        let size: UInt64 = 1 << 30
        let big = client.path("big.bin")
        #expect(FileManager.default.createFile(atPath: big.path, contents: nil))
        let handle = try FileHandle(forWritingTo: big)
        // Sparse, with marks spread through it so the content is not uniform.
        for mark in 0..<64 {
            try handle.seek(toOffset: UInt64(mark) * (size / 64) + UInt64(mark))
            try handle.write(contentsOf: Data("mark \(mark)\n".utf8))
        }
        try handle.truncate(atOffset: size)
        try handle.close()
        let (expected, _) = try Store.sha256(ofFileAt: big.path)

        let result = try runProcess("/usr/bin/time", ["-f", "maxrss-kib %M", CLIHarness.binary, "add", "big", "big.bin",
                                                      "--contributor", Self.ada, "--registry", registry.base, "--json"],
                                    in: client.url, environment: ["PROVENANCE_TOKEN": token])
        #expect(result.succeeded, "\(result)")
        let clientKiB = try #require(result.stderr.split(separator: "\n").last { $0.hasPrefix("maxrss-kib ") }.flatMap { Int($0.dropFirst(11)) })
        let status = try String(contentsOfFile: "/proc/\(registry.process.processIdentifier)/status", encoding: .utf8)
        let serverKiB = try #require(status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") }
            .flatMap { Int($0.split(separator: " ", omittingEmptySubsequences: true)[1]) })
        print("remote add of 1 GiB: client peak RSS \(clientKiB / 1024) MiB, server peak RSS \(serverKiB / 1024) MiB")
        #expect(clientKiB < 200 * 1024, "client peak RSS \(clientKiB) KiB")
        #expect(serverKiB < 200 * 1024, "server peak RSS \(serverKiB) KiB")

        let answer = try JSONDecoder().decode(AddResult.self, from: Data(result.stdout.utf8))
        #expect(answer.bytes == size)
        let repo = cli.datasetRepository("big")
        #expect(try git(["--git-dir", repo.path, "cat-file", "-s", "\(answer.commit):big.bin"], in: cli.work).output == "\(size)")
        #expect(try git(["--git-dir", repo.path, "log", "--format=%an <%ae>", "main"], in: cli.work).output == Self.ada)
        let manifest = try cli.must("manifest", "big").output
        #expect(manifest.contains(expected) && answer.manifestSHA256 == SHA256Digest.hex(of: Data(manifest.utf8)))
        #expect(try Self.stagedUploads(cli).isEmpty)
    }
}
