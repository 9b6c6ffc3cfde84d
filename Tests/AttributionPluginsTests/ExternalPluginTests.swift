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
        #expect(request["protocol"] as? String == "provenance-attribution/2")
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

    /// Protocol 2: a plugin that answers `"per_call": true` is sent every call settled under it,
    /// output text included, and its answer weighs that call alone (the invoice says so).
    @Test func aPluginThatAsksForCallsWeighsEachCall() throws {
        let cli = try PluginTests.store()
        try Self.install(cli, name: "reader", script: """
            #!/usr/bin/env python3
            import json, sys
            request = json.load(sys.stdin)
            call = request.get("call")
            with open(sys.argv[0] + ".calls", "a") as log:
                log.write(json.dumps(call) + "\\n")
            ids = sorted({c["id"] for d in request["datasets"] for c in d["contributors"]})
            if call is None:
                weights = [{"contributor": i, "weight": 1} for i in ids]
            else:
                # The call's weight goes to whoever the output names.
                named = [i for i in ids if i.split("@")[0] in (call.get("output_text") or "")]
                weights = [{"contributor": i, "weight": 1} for i in (named or ids)]
            print(json.dumps({"protocol": "provenance-attribution/2", "per_call": True, "weights": weights}))
            """)
        try cli.must("model", "set-plugin", "m", "reader")
        try cli.must("model", "price", "m", "--input-per-1k", "1", "--output-per-1k", "0")
        try cli.must("node", "add", "n1")
        try cli.must("account", "deposit", "payer@example.org", "10")
        let output = try cli.write("out.txt", "an answer in the style of bo")
        try cli.must("call", "m@1", "--caller", "payer@example.org", "--node", "n1", "--input-tokens", "1000", "--output-tokens", "0",
                     "--latency-ms", "1", "--output-file", output.path)
        let shown = try cli.run("invoice", "show", "0", "--json")
        let invoice = (try JSONSerialization.jsonObject(with: Data(shown.stdout.utf8)) as! [String: Any])["invoice"] as! [String: Any]
        let traceability = invoice["traceability"] as! [String: Any]
        let attribution = try #require((traceability["call_attribution"] as? [[String: Any]])?.first)
        #expect(attribution["basis"] as? String == "plugin")
        #expect((attribution["weights"] as? [[String: Any]])?.compactMap { $0["contributor"] as? String } == ["bo@example.org"])
        let payouts = (invoice["settlement"] as! [String: Any])["payouts"] as! [[String: Any]]
        #expect(Set(payouts.filter { $0["role"] as? String == "data" }.compactMap { $0["account"] as? String }) == ["bo@example.org"])
        // The plugin saw the version once without a call, then the call with its output.
        let calls = try String(contentsOf: cli.store.appendingPathComponent("plugins/provenance-attribution-reader.calls"), encoding: .utf8)
            .split(separator: "\n")
        #expect(calls.first == "null")
        #expect(calls.last?.contains("an answer in the style of bo") == true)
        #expect(try cli.run("verify").succeeded)
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
        ("badpercall", "#!/bin/sh\ncat >/dev/null\necho '{\"per_call\": \"yes\", \"weights\": [{\"contributor\": \"ann@example.org\", \"weight\": 1}]}'\n", "\"per_call\" must be true or false"),
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
