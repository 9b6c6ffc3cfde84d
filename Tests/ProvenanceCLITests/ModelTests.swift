import Foundation
import ProvenanceTestSupport
import Testing

/// `model register`, `model list/show`, `trace`, `reindex` and `export-attestation`.
@Suite struct ModelTests {
    /// Four datasets by six contributors; base → chat → chat-legal, each level adding data.
    static func threeLevels() throws -> CLIHarness {
        let cli = try CLIHarness()
        func add(_ dataset: String, _ file: String, _ text: String, _ who: String) throws {
            try cli.write(file, text)
            let result = try cli.run("add", dataset, file, "--contributor", who)
            guard result.succeeded else { throw FixtureError("add failed: \(result)") }
        }
        try add("web", "web/a.txt", "alpha\n", "Ada <ada@example.org>")
        try add("web", "web/b.txt", "beta\n", "Bob <bob@example.org>")
        try add("books", "books/c.txt", "gamma\n", "Cy <cy@example.org>")
        try add("dialogue", "dialogue/d.txt", "delta\n", "Dee <dee@example.org>")
        try add("dialogue", "dialogue/e.txt", "epsilon\n", "Eve <eve@example.org>")
        try add("law", "law/f.txt", "zeta\n", "Fay <fay@example.org>")
        try add("law", "law/g.txt", "eta\n", "Ada <ADA@example.org>")
        try cli.write("logs/pretrain.log", "step 1 loss 3.2\nstep 2 loss 2.9\n")
        try cli.write("logs/chat.log", "step 1 loss 1.1\n")
        try cli.directory.write("weights/base.bin", Data((0..<4096).map { UInt8($0 % 251) }))
        let steps: [[String]] = [
            ["model", "register", "base@1.0", "--developer", "Lab <lab@example.org>", "--dataset", "web", "--dataset", "books",
             "--training-log", "logs/pretrain.log", "--weights", "weights/base.bin"],
            ["model", "register", "chat@1.0", "--developer", "Tuner <tuner@example.org>", "--dataset", "dialogue",
             "--base", "base@1.0", "--training-log", "logs/chat.log"],
            ["model", "register", "chat-legal@0.1", "--developer", "Tuner <tuner@example.org>", "--dataset", "law",
             "--base", "chat@1.0", "--plugin", "data-volume"],
        ]
        for step in steps {
            let result = try cli.run(step)
            guard result.succeeded else { throw FixtureError("\(step.joined(separator: " ")) failed: \(result)") }
        }
        return cli
    }

    struct TraceJSON: Decodable {
        var model: String
        var version: String
        var commit: String
        var developer: String
        var plugin: String
        var training_logs: [Log]
        var datasets: [Dataset]
        var base: Box?
        struct Log: Decodable { var path: String; var sha256: String; var size: Int }
        struct Dataset: Decodable { var dataset: String; var commit: String; var manifest_sha256: String; var contributors: [Contributor] }
        struct Contributor: Decodable, Equatable { var contributor: String; var id: String; var commits: Int }
        final class Box: Decodable {
            let value: TraceJSON
            init(from decoder: any Decoder) throws { value = try TraceJSON(from: decoder) }
        }
    }

    @Test func threeLevelLineageTracesInEveryFormat() throws {
        let cli = try Self.threeLevels()
        let json = try cli.run("trace", "chat-legal@0.1", "--format", "json")
        #expect(json.succeeded)
        let top = try JSONDecoder().decode(TraceJSON.self, from: Data(json.stdout.utf8))
        let chain = [top, top.base!.value, top.base!.value.base!.value]
        #expect(top.base?.value.base?.value.base == nil)
        #expect(chain.map { "\($0.model)@\($0.version)" } == ["chat-legal@0.1", "chat@1.0", "base@1.0"])
        #expect(chain.map(\.developer) == ["Tuner <tuner@example.org>", "Tuner <tuner@example.org>", "Lab <lab@example.org>"])
        #expect(chain.map(\.plugin) == ["data-volume", "equal-share", "equal-share"])
        #expect(chain.map { $0.datasets.map(\.dataset) } == [["law"], ["dialogue"], ["web", "books"]])
        let ids = Set(chain.flatMap { $0.datasets.flatMap { $0.contributors.map(\.id) } })
        #expect(ids == ["ada@example.org", "bob@example.org", "cy@example.org", "dee@example.org", "eve@example.org", "fay@example.org"])
        #expect(chain[0].datasets[0].contributors == [
            .init(contributor: "Ada <ADA@example.org>", id: "ada@example.org", commits: 1),
            .init(contributor: "Fay <fay@example.org>", id: "fay@example.org", commits: 1),
        ])
        // Each dataset commit in the trace is the head git reports, with the same manifest as `manifest`.
        for dataset in chain.flatMap(\.datasets) {
            #expect(try git(["rev-parse", "HEAD"], in: cli.datasetRepository(dataset.dataset)).output == dataset.commit)
            let manifest = try cli.write("m-\(dataset.dataset).json", try cli.run("manifest", dataset.dataset).output)
            #expect(try runProcess("/usr/bin/sha256sum", [manifest.path]).output.hasPrefix(dataset.manifest_sha256))
        }
        let pretrain = chain[2].training_logs[0]
        #expect(pretrain.path == "training-logs/pretrain.log")
        #expect(try runProcess("/usr/bin/sha256sum", [cli.work.appendingPathComponent("logs/pretrain.log").path]).output.hasPrefix(pretrain.sha256))

        let tree = try cli.run("trace", "chat-legal@0.1")
        #expect(tree.succeeded)
        #expect(tree.lines.first?.hasPrefix("model chat-legal@0.1  commit \(top.commit.prefix(7))  developer Tuner <tuner@example.org>") == true)
        #expect(tree.lines.contains { $0.contains("└─ base chat@1.0") })
        #expect(tree.lines.contains { $0.contains("└─ base base@1.0") })
        // chat-legal uses data-volume with no base share: law's 9 bytes, 4 of them Ada's.
        #expect(tree.lines.contains { $0.hasSuffix("Ada <ADA@example.org>  ada@example.org  1 commit  weight 44.4444%") })
        #expect(tree.lines.contains { $0.hasSuffix("Bob <bob@example.org>  bob@example.org  1 commit") })
        #expect(tree.lines.contains("weights of chat-legal@0.1 under data-volume:"))
        #expect(tree.lines.contains { $0.contains("training log  training-logs/pretrain.log  sha256 \(pretrain.sha256)") })
        #expect(tree.lines.filter { $0.contains("dataset ") }.count == 4)

        let dot = try cli.run("trace", "chat-legal@0.1", "--format", "dot")
        #expect(dot.succeeded)
        #expect(dot.lines.first == "digraph provenance {")
        #expect(dot.stdout.contains(#""model:chat-legal@0.1" -> "model:chat@1.0" [label="base"];"#))
        #expect(dot.stdout.contains(#""model:chat@1.0" -> "model:base@1.0" [label="base"];"#))
        for id in ids { #expect(dot.stdout.contains("\"contributor:\(id)\" [shape=ellipse")) }
        if FileManager.default.isExecutableFile(atPath: "/usr/bin/dot") {
            let file = try cli.write("lineage.dot", dot.stdout)
            let svg = try runProcess("/usr/bin/dot", ["-Tsvg", file.path])
            #expect(svg.succeeded, "\(svg.stderr)")
            #expect(svg.stdout.contains("<svg"))
            #expect(svg.stdout.contains("chat&#45;legal@0.1") || svg.stdout.contains("chat-legal@0.1"))
        }
    }

    @Test func modelRepositoriesAreGitAndManifestsMatchSha256sum() throws {
        let cli = try Self.threeLevels()
        let repo = cli.store.appendingPathComponent("models/base.git")
        try git(["fsck", "--strict"], in: repo)
        try git(["fsck", "--strict"], in: cli.store.appendingPathComponent("models/chat.git"))
        let shown = try git(["show", "1.0:provenance.json"], in: repo).stdout
        struct Manifest: Decodable {
            var model: String; var version: String
            var developer: Developer; var weights: Weights; var training_logs: [Log]; var datasets: [Input]
            struct Developer: Decodable { var name: String; var email: String }
            struct Weights: Decodable { var name: String; var sha256: String; var size: Int }
            struct Log: Decodable { var path: String; var sha256: String; var size: Int }
            struct Input: Decodable { var dataset: String; var commit: String; var manifest_sha256: String }
        }
        let manifest = try JSONDecoder().decode(Manifest.self, from: Data(shown.utf8))
        #expect(manifest.model == "base" && manifest.version == "1.0")
        #expect(manifest.developer.email == "lab@example.org")
        let weights = cli.work.appendingPathComponent("weights/base.bin").path
        #expect(try runProcess("/usr/bin/sha256sum", [weights]).output.hasPrefix(manifest.weights.sha256 + " "))
        #expect(manifest.weights.size == 4096)
        #expect(try git(["cat-file", "-e", "1.0:weights/base.bin"], in: repo, allowFailure: true).status != 0)
        let log = manifest.training_logs[0]
        #expect(try runProcess("/usr/bin/sha256sum", [cli.work.appendingPathComponent("logs/pretrain.log").path]).output.hasPrefix(log.sha256 + " "))
        // The training log itself is stored in the tagged commit.
        #expect(try git(["show", "1.0:training-logs/pretrain.log"], in: repo).stdout == "step 1 loss 3.2\nstep 2 loss 2.9\n")
        #expect(manifest.datasets.map(\.dataset) == ["web", "books"])
        #expect(manifest.datasets[0].commit == (try git(["rev-parse", "HEAD"], in: cli.datasetRepository("web")).output))
        #expect(try git(["log", "--format=%an <%ae>|%s", "1.0"], in: repo).output == "Lab <lab@example.org>|Register base@1.0")

        struct Show: Decodable { var model: String; var version: String; var commit: String; var base: Base?; struct Base: Decodable { var model: String; var version: String; var commit: String } }
        let show = try cli.json(Show.self, "model", "show", "chat@1.0")
        #expect(show.commit == (try git(["rev-parse", "1.0"], in: cli.store.appendingPathComponent("models/chat.git")).output))
        #expect(show.base?.commit == (try git(["rev-parse", "1.0"], in: repo).output))
        struct Summary: Decodable, Equatable { var model: String; var plugin: String; var versions: [String]; var latest: String? }
        #expect(try cli.json([Summary].self, "model", "list") == [
            Summary(model: "base", plugin: "equal-share", versions: ["1.0"], latest: "1.0"),
            Summary(model: "chat", plugin: "equal-share", versions: ["1.0"], latest: "1.0"),
            Summary(model: "chat-legal", plugin: "data-volume", versions: ["0.1"], latest: "0.1"),
        ])
    }

    @Test func reindexRebuildsTheSameAnswersFromGitAlone() throws {
        let cli = try Self.threeLevels()
        // A second version, an imported history and a forced replacement, so pins matter.
        #expect(try cli.run("model", "register", "base@1.1", "--developer", "Lab <lab@example.org>", "--dataset", "web@HEAD~1").succeeded)
        let queries: [[String]] = [
            ["datasets", "--json"], ["contributors", "web", "--json"], ["contributors", "law", "--json"],
            ["model", "list", "--json"], ["model", "show", "base@1.0", "--json"], ["model", "show", "base@1.1", "--json"],
            ["model", "show", "chat-legal@0.1", "--json"], ["trace", "chat-legal@0.1", "--format", "json"],
            ["trace", "base@1.1", "--format", "json"], ["log", "web", "--json"],
        ]
        func answers() throws -> [String] {
            try queries.map { query in
                let result = try cli.run(query)
                guard result.succeeded else { throw FixtureError("\(query) failed: \(result)") }
                return result.stdout
            }
        }
        let before = try answers()
        // Throw the index away entirely, then rebuild it from the repositories.
        if TestBackend.isPostgres {
            try TestBackend.sql(store: cli.store, "DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        }
        for suffix in ["", "-wal", "-shm"] {
            try? FileManager.default.removeItem(at: cli.store.appendingPathComponent("registry.sqlite" + suffix))
        }
        #expect(try cli.run("init").succeeded)
        #expect(try cli.run("model", "list").output.hasPrefix("No models yet"))
        let reindex = try cli.run("reindex")
        #expect(reindex.succeeded, "\(reindex)")
        #expect(reindex.output == "Reindexed 4 dataset(s) with 7 registered commit(s), 3 model(s) with 4 version(s)")
        let after = try answers()
        for (index, query) in queries.enumerated() {
            #expect(after[index] == before[index], "\(query.joined(separator: " ")) differs after reindex")
        }
    }

    @Test func attestationIsInTotoWithSlsaProvenance() throws {
        let cli = try Self.threeLevels()
        struct Statement: Decodable {
            var _type: String
            var predicateType: String
            var subject: [Descriptor]
            var predicate: Predicate
            struct Descriptor: Decodable { var name: String?; var uri: String?; var digest: [String: String] }
            struct Predicate: Decodable {
                var buildDefinition: Build
                var runDetails: Run
                struct Build: Decodable { var buildType: String; var resolvedDependencies: [Descriptor] }
                struct Run: Decodable { var builder: Builder; var byproducts: [Descriptor]; struct Builder: Decodable { var id: String } }
            }
        }
        let base = try JSONDecoder().decode(Statement.self, from: Data(try cli.run("export-attestation", "base@1.0").stdout.utf8))
        #expect(base._type == "https://in-toto.io/Statement/v1")
        #expect(base.predicateType == "https://slsa.dev/provenance/v1")
        let weights = try runProcess("/usr/bin/sha256sum", [cli.work.appendingPathComponent("weights/base.bin").path]).output
        #expect(base.subject.count == 1 && weights.hasPrefix(base.subject[0].digest["sha256"]! + " "))
        #expect(base.predicate.runDetails.builder.id == "mailto:lab@example.org")
        let web = try git(["rev-parse", "HEAD"], in: cli.datasetRepository("web")).output
        #expect(base.predicate.buildDefinition.resolvedDependencies.contains { $0.digest["gitCommit"] == web })
        #expect(base.predicate.buildDefinition.resolvedDependencies.filter { $0.digest["sha256"] != nil }.count == 2)
        #expect(base.predicate.runDetails.byproducts.map(\.name) == ["training-logs/pretrain.log"])
        // Without weights the subject is the model commit.
        let legal = try JSONDecoder().decode(Statement.self, from: Data(try cli.run("export-attestation", "chat-legal@0.1").stdout.utf8))
        let commit = try git(["rev-parse", "0.1"], in: cli.store.appendingPathComponent("models/chat-legal.git")).output
        #expect(legal.subject[0].digest == ["gitCommit": commit])
        #expect(legal.predicate.buildDefinition.resolvedDependencies.contains { $0.uri == "provenance:model/chat@1.0" })
    }

    static let dev = ["--developer", "Dev <dev@example.org>"]

    @Test func registrationRefusals() throws {
        let cli = try Self.threeLevels()
        let source = try TemporaryDirectory()
        try git(["init", "-q"], in: source.url)
        try source.write("x.txt", "1\n")
        try gitCommit(source.url, author: "Zed <zed@example.org>", message: "one", date: 1_700_000_000)
        try source.write("x.txt", "2\n")
        try gitCommit(source.url, author: "Zed <zed@example.org>", message: "two", date: 1_700_000_100)
        #expect(try cli.run("add", "imported", "--from", source.url.path).succeeded)
        let unregistered = try git(["rev-parse", "HEAD~1"], in: source.url).output

        let refuse = { (arguments: [String], mentioning: String) in
            try RefusalTests.expectRefusal(cli, arguments, mentioning: mentioning)
        }
        try refuse(["model", "register", "new@1"] + Self.dev + ["--dataset", "nosuch"], "unknown dataset 'nosuch'")
        try refuse(["model", "register", "new@1"] + Self.dev + ["--dataset", "web@nosuchrev"], "unknown revision 'nosuchrev'")
        try refuse(["model", "register", "new@1"] + Self.dev + ["--dataset", "imported@\(unregistered)"], "not registered")
        try refuse(["model", "register", "new@1"] + Self.dev + ["--dataset", "web", "--base", "ghost@1"], "base model ghost@1 does not exist")
        try refuse(["model", "register", "new@1"] + Self.dev + ["--dataset", "web", "--base", "base@9"], "base model base@9 does not exist")
        try refuse(["model", "register", "new@1"] + Self.dev + ["--dataset", "web", "--base", "new@1"], "cycle")
        try refuse(["model", "register", "base@1.0"] + Self.dev + ["--dataset", "web"], "already registered")
        try refuse(["model", "register", "new@1"] + Self.dev + ["--dataset", "web", "--training-log", "missing.log"], "training log")
        try refuse(["model", "register", "new@1"] + Self.dev + ["--dataset", "web", "--weights", "missing.bin"], "weights file")
        try refuse(["model", "register", "new@1"] + Self.dev + ["--dataset", "web", "--weights", "logs"], "not a regular file")
        try refuse(["model", "register", "New@1"] + Self.dev + ["--dataset", "web"], "invalid model name 'New'")
        try refuse(["model", "register", "new"] + Self.dev + ["--dataset", "web"], "names no version")
        try refuse(["model", "register", "new@-1"] + Self.dev + ["--dataset", "web"], "invalid version '-1'")
        try refuse(["model", "register", "new@1..2"] + Self.dev + ["--dataset", "web"], "invalid version")
        try refuse(["model", "register", "new@1", "--developer", "nobody"] + ["--dataset", "web"], "malformed identity")
        try refuse(["model", "register", "new@1"] + Self.dev, "at least one --dataset")
        try refuse(["model", "register", "new@1"] + Self.dev + ["--dataset", "web", "--plugin", "Bad Plugin"], "invalid plugin name")
        try refuse(["model", "show", "ghost@1"], "unknown model 'ghost'")
        try refuse(["model", "show", "base@2"], "has no version '2'")
        try refuse(["trace", "ghost@1"], "unknown model 'ghost'")
        try refuse(["trace", "base@1.0", "--format", "svg"], "format")
        try refuse(["export-attestation", "base@2"], "has no version '2'")
        #expect(!FileManager.default.fileExists(atPath: cli.store.appendingPathComponent("models/new.git").path))
    }

    @Test(arguments: CrashTests.points.dropFirst())
    func crashDuringRegistrationLeavesNoHalfVersion(at point: String) throws {
        let cli = try Self.threeLevels()
        let crashed = try cli.run(["model", "register", "base@2.0", "--developer", "Lab <lab@example.org>", "--dataset", "web"],
                                  environment: ["PROVENANCE_CRASH_AT": point])
        #expect(crashed.signalled, "\(crashed)")
        let committed = point == "after-index-committed"
        struct Summary: Decodable { var model: String; var versions: [String] }
        let versions = try cli.json([Summary].self, "model", "list").first { $0.model == "base" }?.versions
        #expect(versions == (committed ? ["1.0", "2.0"] : ["1.0"]))
        // The next registration repairs the branch and tags; git agrees with the index.
        #expect(try cli.run("model", "register", "base@3.0", "--developer", "Lab <lab@example.org>", "--dataset", "books").succeeded)
        let repo = cli.store.appendingPathComponent("models/base.git")
        try git(["fsck", "--strict"], in: repo)
        #expect(try git(["tag", "--list"], in: repo).lines == (committed ? ["1.0", "2.0", "3.0"] : ["1.0", "3.0"]))
        #expect(try git(["log", "--format=%s"], in: repo).lines
                == (committed ? ["Register base@3.0", "Register base@2.0", "Register base@1.0"] : ["Register base@3.0", "Register base@1.0"]))
    }
}
