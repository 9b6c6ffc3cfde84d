import Foundation
import ProvenanceTestSupport
import Testing

/// equal-share, influence-score, external plugins, plugin swaps and base shares, end to end.
@Suite struct PluginTests {
    struct Result: Decodable, Equatable {
        var model: String
        var version: String
        var plugin: String
        var base_share_ppb: UInt64
        var weights: [Weight]
        struct Weight: Decodable, Equatable { var contributor: String; var id: String; var ppb: UInt64; var raw: Double? }
        var ppb: [String: UInt64] { Dictionary(uniqueKeysWithValues: weights.map { ($0.id, $0.ppb) }) }
    }

    /// Dataset `text`: a.txt lines 1-2 by Ann, line 3 by Cy; b.txt by Bo. Model m@1 trained on it.
    static func store(trainingLog: String? = nil) throws -> CLIHarness {
        let cli = try CLIHarness()
        try cli.write("a.txt", "first\nsecond\n")
        #expect(try cli.run("add", "text", "a.txt", "--contributor", "Ann <ann@example.org>").succeeded)
        try cli.write("b.txt", "bo's line\n")
        #expect(try cli.run("add", "text", "b.txt", "--contributor", "Bo <bo@example.org>").succeeded)
        try cli.write("a.txt", "first\nsecond\nthird by cy\n")
        #expect(try cli.run("add", "text", "a.txt", "--contributor", "Cy <cy@example.org>").succeeded)
        var register = ["model", "register", "m@1", "--developer", "Dev <dev@example.org>", "--dataset", "text"]
        if let trainingLog {
            try cli.write("influence.jsonl", trainingLog)
            register += ["--training-log", "influence.jsonl"]
        }
        let result = try cli.run(register)
        #expect(result.succeeded, "\(result)")
        return cli
    }

    @Test func equalShareWeighsEveryContributorTheSame() throws {
        let cli = try Self.store()
        let result = try cli.json(Result.self, "attribute", "m@1")
        #expect(result.plugin == "equal-share")
        #expect(result.ppb == ["ann@example.org": 333_333_334, "bo@example.org": 333_333_333, "cy@example.org": 333_333_333])
        #expect(result.weights.first?.contributor == "Ann <ann@example.org>")
    }

    @Test func influenceScoresGoToTheLineAuthorsAndOnlyPositiveOnesEarn() throws {
        let log = """
            step 1 loss 2.0
            {"dataset": "text", "path": "a.txt", "line": 1, "score": 0.5}
            {"dataset": "text", "path": "a.txt", "line": 3, "score": 1.5}
            {"dataset": "text", "path": "a.txt", "line": 2, "score": 0.25}
            {"dataset": "text", "path": "b.txt", "line": 1, "score": -4}
            {"event": "checkpoint"}

            """
        let cli = try Self.store(trainingLog: log)
        let result = try cli.json(Result.self, "attribute", "m@1", "--plugin", "influence-score")
        #expect(result.plugin == "influence-score")
        #expect(result.ppb == ["ann@example.org": 333_333_333, "bo@example.org": 0, "cy@example.org": 666_666_667])
        #expect(result.weights.first { $0.id == "ann@example.org" }?.raw == 0.75)
    }

    @Test func influenceRecordsThatNameNothingAreErrorsThatSayWhich() throws {
        let cases: [(String, String)] = [
            (#"{"dataset": "text", "path": "missing.txt", "line": 1, "score": 1}"#, "training-logs/influence.jsonl line 2: dataset 'text' has no file 'missing.txt'"),
            (#"{"dataset": "text", "path": "a.txt", "line": 9, "score": 1}"#, "training-logs/influence.jsonl line 2: 'a.txt' in dataset 'text' has 3 lines, so there is no line 9"),
            (#"{"dataset": "other", "path": "a.txt", "line": 1, "score": 1}"#, "training-logs/influence.jsonl line 2 names dataset 'other'"),
            (#"{"dataset": "text", "line": 1, "score": 1}"#, "training-logs/influence.jsonl line 2: a record needs"),
        ]
        for (record, message) in cases {
            let cli = try Self.store(trainingLog: "loss 1\n\(record)\n")
            let result = try cli.run("attribute", "m@1", "--plugin", "influence-score")
            #expect(result.status == 1 && !result.signalled)
            #expect(result.errorLines.count == 1)
            #expect(result.stderr.contains("attribution plugin 'influence-score'"), "\(result.stderr)")
            #expect(result.stderr.contains(message), "\(result.stderr)")
        }
        let empty = try Self.store(trainingLog: "just a loss curve\n")
        let result = try empty.run("attribute", "m@1", "--plugin", "influence-score")
        #expect(result.stderr.contains("hold no influence records"))
    }

    @Test func swappingPluginsChangesAttributionAndTraceAndNothingElse() throws {
        let cli = try Self.store()
        func snapshot() throws -> [String] {
            try [["model", "show", "m@1", "--json"], ["datasets", "--json"], ["contributors", "text", "--json"]].map { try cli.run($0).stdout }
                + [try git(["for-each-ref", "--format=%(refname) %(objectname)", "refs/tags", "refs/heads"], in: cli.store.appendingPathComponent("models/m.git")).stdout]
        }
        let before = try snapshot()
        let equal = try cli.json(Result.self, "attribute", "m@1")
        let traceBefore = try cli.run("trace", "m@1").stdout
        let swap = try cli.run("model", "set-plugin", "m", "data-volume", "--by", "Ops <ops@example.org>")
        #expect(swap.output == "m now uses data-volume")
        let volume = try cli.json(Result.self, "attribute", "m@1")
        #expect(volume.plugin == "data-volume")
        #expect(volume.ppb != equal.ppb)
        // a.txt is 6+7+12 bytes, b.txt 10: Ann 13, Bo 10, Cy 12 of 35.
        #expect(volume.weights.map(\.raw) == [13, 12, 10])
        // --unit applies to the active plugin.
        let lines = try cli.json(Result.self, "attribute", "m@1", "--unit", "lines")
        #expect(lines.plugin == "data-volume:unit=lines")
        #expect(lines.ppb == ["ann@example.org": 500_000_000, "bo@example.org": 250_000_000, "cy@example.org": 250_000_000])
        let traceAfter = try cli.run("trace", "m@1").stdout
        #expect(traceAfter != traceBefore)
        #expect(traceAfter.contains("plugin data-volume"))
        #expect(traceAfter.contains("weight 37.1429%"))
        #expect(try snapshot() == before)

        struct Change: Decodable { var plugin: String; var changed_by: String; var commit: String }
        let history = try cli.json([Change].self, "model", "plugin-history", "m")
        #expect(history.map(\.plugin) == ["equal-share", "data-volume"])
        #expect(history.map(\.changed_by) == ["Dev <dev@example.org>", "Ops <ops@example.org>"])
        // The history is git: commits on refs/provenance/plugin of the model repository.
        let repo = cli.store.appendingPathComponent("models/m.git")
        #expect(try git(["log", "--format=%H", "refs/provenance/plugin"], in: repo).lines == history.map(\.commit).reversed())
        #expect(try git(["show", "refs/provenance/plugin:plugin.json"], in: repo).output == #"{"model":"m","plugin":"data-volume"}"#)
        try git(["fsck", "--strict"], in: repo)

        // Refusals: the same plugin again, an unknown plugin, an unknown option, an unknown model.
        try cli.expectRefusal(["model", "set-plugin", "m", "data-volume"], mentioning: "already uses data-volume")
        try cli.expectRefusal(["model", "set-plugin", "m", "nosuch"], mentioning: "unknown attribution plugin 'nosuch'")
        try cli.expectRefusal(["model", "set-plugin", "m", "equal-share:unit=lines"], mentioning: "has no option 'unit'")
        try cli.expectRefusal(["model", "set-plugin", "ghost", "equal-share"], mentioning: "unknown model 'ghost'")
        try cli.expectRefusal(["attribute", "m@1", "--plugin", "data-volume", "--unit", "pages"], mentioning: "unit must be bytes or lines")

        // reindex keeps the history and the active plugin.
        #expect(try cli.run("reindex").succeeded)
        #expect(try cli.json([Change].self, "model", "plugin-history", "m").map(\.commit) == history.map(\.commit))
        #expect(try cli.json(Result.self, "attribute", "m@1") == volume)
    }

    @Test func baseSharesFlowRecursivelyThroughTheLineage() throws {
        let cli = try Self.store()
        try cli.write("tune.txt", "tuning data\n")
        #expect(try cli.run("add", "tune", "tune.txt", "--contributor", "Tia <tia@example.org>").succeeded)
        #expect(try cli.run("model", "register", "ft@1", "--developer", "Dev <dev@example.org>", "--dataset", "tune",
                            "--base", "m@1", "--base-share", "400000000").succeeded)
        // ft@1: 60% to Tia, 40% to m@1's equal thirds.
        let ft = try cli.json(Result.self, "attribute", "ft@1")
        #expect(ft.base_share_ppb == 400_000_000)
        #expect(ft.ppb == ["tia@example.org": 600_000_000, "ann@example.org": 133_333_334, "bo@example.org": 133_333_333, "cy@example.org": 133_333_333])
        #expect(ft.weights.first { $0.id == "ann@example.org" }?.raw == nil)
        // A version with no datasets of its own passes everything to its base.
        #expect(try cli.run("model", "register", "ft2@1", "--developer", "Dev <dev@example.org>", "--base", "ft@1").succeeded)
        let ft2 = try cli.json(Result.self, "attribute", "ft2@1")
        #expect(ft2.ppb == ft.ppb)
        // Without --base-share the default is 0: the base's contributors get nothing.
        #expect(try cli.run("model", "register", "ft3@1", "--developer", "Dev <dev@example.org>", "--dataset", "tune", "--base", "m@1").succeeded)
        #expect(try cli.json(Result.self, "attribute", "ft3@1").ppb == ["tia@example.org": 1_000_000_000])
        try cli.expectRefusal(["model", "register", "x@1", "--developer", "D <d@example.org>", "--dataset", "tune", "--base-share", "5"], mentioning: "--base-share needs --base")
        try cli.expectRefusal(["model", "register", "x@1", "--developer", "D <d@example.org>", "--dataset", "tune", "--base", "m@1", "--base-share", "1000000001"], mentioning: "more than 1000000000")
    }
}
