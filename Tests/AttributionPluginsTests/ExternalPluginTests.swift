import Foundation
import ProvenanceTestSupport
import Testing

/// External `provenance-attribution-<name>` executables: the example plugin works, and every
/// way a plugin can misbehave is one clear line naming it, never a hang or a partial result.
@Suite struct ExternalPluginTests {
    static var examples: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Plugins/examples")
    }

    static func install(_ cli: CLIHarness, name: String, script: String) throws {
        let folder = cli.store.appendingPathComponent("plugins")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let file = folder.appendingPathComponent("provenance-attribution-\(name)")
        try Data(script.utf8).write(to: file)
        chmod(file.path, 0o755)
    }

    @Test func theExamplePythonPluginRunsFromPath() throws {
        let cli = try PluginTests.store()
        let path = "\(Self.examples.path):\(ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")"
        let listed = try cli.run(["plugins", "--json"], environment: ["PATH": path])
        #expect(listed.stdout.contains("\"commit-count\""))
        let result = try cli.run(["attribute", "m@1", "--plugin", "commit-count", "--json"], environment: ["PATH": path])
        #expect(result.succeeded, "\(result)")
        let decoded = try JSONDecoder().decode(PluginTests.Result.self, from: Data(result.stdout.utf8))
        // Ann, Bo and Cy each authored one commit of text's history.
        #expect(decoded.ppb == ["ann@example.org": 333_333_334, "bo@example.org": 333_333_333, "cy@example.org": 333_333_333])
        // Its stderr is passed through as a log.
        #expect(result.stderr.contains("commit-count: 3 contributors over 1 dataset commits of m@1"))
        // It can be the model's active plugin, and trace uses it.
        #expect(try cli.run(["model", "set-plugin", "m", "commit-count"], environment: ["PATH": path]).succeeded)
        #expect(try cli.run(["trace", "m@1"], environment: ["PATH": path]).stdout.contains("weights of m@1 under commit-count"))
    }

    @Test func theRequestCarriesTheDocumentedFields() throws {
        let cli = try PluginTests.store(trainingLog: "loss 1\n")
        try Self.install(cli, name: "echo", script: """
            #!/usr/bin/env python3
            import json, sys
            request = json.load(sys.stdin)
            json.dump(request, open(sys.argv[0] + ".request.json", "w"))
            ids = [c["id"] for d in request["datasets"] for c in d["contributors"]]
            print(json.dumps({"weights": [{"contributor": i, "weight": 1} for i in ids]}))
            """)
        #expect(try cli.run("attribute", "m@1", "--plugin", "echo").succeeded)
        let saved = try Data(contentsOf: cli.store.appendingPathComponent("plugins/provenance-attribution-echo.request.json"))
        let request = try JSONSerialization.jsonObject(with: saved) as! [String: Any]
        #expect(request["protocol"] as? String == "provenance-attribution/1")
        #expect(request["model"] as? String == "m" && request["version"] as? String == "1")
        #expect(request["call"] is NSNull)
        let datasets = request["datasets"] as! [[String: Any]]
        #expect(datasets.first?["dataset"] as? String == "text")
        #expect((datasets.first?["repository"] as? String)?.hasSuffix("/datasets/text.git") == true)
        #expect((datasets.first?["contributors"] as? [[String: Any]])?.count == 3)
        let logs = request["training_logs"] as! [[String: Any]]
        #expect(logs.first?["path"] as? String == "training-logs/influence.jsonl")
        #expect(logs.first?["sha256"] as? String != nil)
    }

    @Test(arguments: [
        ("crash", "#!/bin/sh\necho 'about to fail' >&2\nexit 3\n", "failed with exit status 3"),
        ("segv", "#!/bin/sh\nkill -SEGV $$\n", "crashed (signal 11)"),
        ("garbage", "#!/bin/sh\ncat >/dev/null\necho 'hello, world'\n", "printed something that is not a JSON object"),
        ("silent", "#!/bin/sh\ncat >/dev/null\n", "printed nothing"),
        ("noweights", "#!/bin/sh\ncat >/dev/null\necho '{\"result\": []}'\n", "has no \"weights\" array"),
        ("badentry", "#!/bin/sh\ncat >/dev/null\necho '{\"weights\": [{\"contributor\": 1, \"weight\": \"x\"}]}'\n", "weights[0] must be"),
        ("stranger", "#!/bin/sh\ncat >/dev/null\necho '{\"weights\": [{\"contributor\": \"eve@example.org\", \"weight\": 1}]}'\n", "'eve@example.org' is not a contributor"),
        ("negative", "#!/bin/sh\ncat >/dev/null\necho '{\"weights\": [{\"contributor\": \"ann@example.org\", \"weight\": -1}]}'\n", "is negative"),
        ("zero", "#!/bin/sh\ncat >/dev/null\necho '{\"weights\": [{\"contributor\": \"ann@example.org\", \"weight\": 0}]}'\n", "every weight is zero"),
        ("oldproto", "#!/bin/sh\ncat >/dev/null\necho '{\"protocol\": \"provenance-attribution/0\", \"weights\": []}'\n", "speaks protocol provenance-attribution/0"),
    ])
    func misbehavingPluginsFailClearly(name: String, script: String, message: String) throws {
        let cli = try PluginTests.store()
        try Self.install(cli, name: name, script: script)
        let before = try cli.snapshot()
        let result = try cli.run("attribute", "m@1", "--plugin", name)
        #expect(result.status == 1 && !result.signalled, "\(result)")
        let errors = result.errorLines.filter { $0.hasPrefix("Error: ") }
        #expect(errors.count == 1)
        #expect(errors.first?.contains("attribution plugin '\(name)'") == true, "\(result.stderr)")
        #expect(result.stderr.contains(message), "\(result.stderr)")
        #expect(result.stdout.isEmpty)
        #expect(try cli.snapshot() == before)
    }

    @Test func aHangingPluginIsStoppedAtItsTimeLimit() throws {
        let cli = try PluginTests.store()
        try Self.install(cli, name: "hang", script: "#!/bin/sh\nsleep 60\n")
        let started = Date()
        let result = try cli.run("attribute", "m@1", "--plugin", "hang", "--plugin-timeout", "1")
        let elapsed = Date().timeIntervalSince(started)
        #expect(result.status == 1)
        #expect(result.errorLines == ["Error: attribution plugin 'hang': did not answer within 1 s and was stopped (raise --plugin-timeout if it needs longer)"])
        #expect(elapsed < 8, "took \(elapsed) s")
    }
}
