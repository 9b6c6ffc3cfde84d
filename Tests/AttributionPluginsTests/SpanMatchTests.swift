import AttributionPlugins
import Foundation
@testable import ProvenanceCore
import ProvenanceTestSupport
import SpanMatch
import Testing

/// span-match: the suffix-array index against a naive scan, and per-call attribution against
/// the git CLI (blame, show) on a dataset written by several authors.
@Suite struct SpanMatchTests {
    /// Every maximal span a naive scan finds, and nothing else: for each output start, the
    /// longest prefix found in any one file; kept when it ends beyond every earlier one.
    static func naiveSpans(_ output: [UInt8], files: [[UInt8]], minimum: Int) -> [(start: Int, length: Int, occurrences: Int)] {
        func occurrences(_ pattern: ArraySlice<UInt8>) -> Int {
            var count = 0
            for file in files where file.count >= pattern.count {
                for start in 0...(file.count - pattern.count) where file[start..<(start + pattern.count)] == pattern { count += 1 }
            }
            return count
        }
        var result: [(Int, Int, Int)] = []
        var previousEnd = 0
        for start in output.indices {
            var length = 0
            while start + length < output.count, output[start + length] != 0,
                  occurrences(output[start..<(start + length + 1)]) > 0 {
                length += 1
            }
            let end = start + length
            defer { previousEnd = max(previousEnd, end) }
            guard end > previousEnd, length >= minimum else { continue }
            result.append((start, length, occurrences(output[start..<end])))
        }
        return result
    }

    @Test(arguments: [1, 2, 3, 4])
    func theIndexFindsExactlyTheMaximalSpansOfANaiveScan(seed: UInt64) throws {
        var random = SplitMix64(state: seed)
        let repo = try TemporaryDirectory("span-random")
        try git(["init", "-q"], in: repo.url)
        // A small alphabet, so spans repeat across files and within them.
        let alphabet = Array("abc d\n".utf8)
        var files: [[UInt8]] = []
        for number in 0..<Int.random(in: 3...7, using: &random) {
            let bytes = (0..<Int.random(in: 0...400, using: &random)).map { _ in alphabet.randomElement(using: &random)! }
            files.append(bytes)
            _ = try repo.write("f\(number).txt", Data(bytes))
        }
        try gitCommit(repo.url, author: "R <r@example.org>", message: "random", date: 1_700_000_000)
        let commit = try git(["rev-parse", "HEAD"], in: repo.url).output
        let indexes = try TemporaryDirectory("span-random-index")
        let index = try SpanIndex.build([SpanIndex.Input(dataset: "random", commit: commit, repository: repo.url.appendingPathComponent(".git"))],
                                        in: indexes.url)
        // git's tree order, as the index reads it: byte order of the paths.
        #expect(index.fileCount == files.count)
        #expect(index.textBytes == files.reduce(0) { $0 + $1.count })
        var longSpans = 0
        for round in 0..<40 {
            var output: [UInt8] = []
            for _ in 0..<Int.random(in: 1...6, using: &random) {
                if Bool.random(using: &random), let file = files.randomElement(using: &random), !file.isEmpty {
                    let start = Int.random(in: 0..<file.count, using: &random)
                    output += file[start..<min(file.count, start + Int.random(in: 1...60, using: &random))]
                } else {
                    output += (0..<Int.random(in: 1...20, using: &random)).map { _ in
                        Bool.random(using: &random) ? UInt8(ascii: "x") : alphabet.randomElement(using: &random)!
                    }
                }
                if round % 5 == 0 { output.append(0) }  // a NUL never matches: spans stop at it
            }
            // Below 16 bytes every start is searched; from 16 on, the gram filter and the skip inside spans are used.
            let minimum = round % 2 == 0 ? Int.random(in: 1...12, using: &random) : Int.random(in: 16...30, using: &random)
            let expected = Self.naiveSpans(output, files: files, minimum: minimum)
            let found = index.maximalSpans(in: Data(output), minimumBytes: minimum)
            if minimum >= 16 { longSpans += found.count }
            #expect(found.map { [$0.start, $0.length, $0.occurrences] } == expected.map { [$0.start, $0.length, $0.occurrences] },
                    "seed \(seed) round \(round)")
            // Every found span is really at its credited position.
            for match in found {
                let text = index.text(at: match.position, length: match.length)
                #expect(text == Data(output[match.start..<(match.start + match.length)]))
            }
        }
        #expect(longSpans > 0, "the rounds with the gram filter found spans to compare")
    }

    // MARK: Attribution on a dataset of several authors

    struct Result: Decodable {
        var plugin: String
        var weights: [Weight]
        var spans: [AttributedSpan]?
        struct Weight: Decodable { var id: String; var ppb: UInt64; var raw: Double? }
    }

    static let annParagraph = "Rivers carve their valleys over thousands of years, patiently moving sand and stone toward the sea.\nEvery flood rewrites the map a little, and every drought reveals what the water left behind.\n"
    static let boSentence = "Lighthouses were once kept by families who trimmed the wicks every four hours through the night.\n"
    static let cySentence = "A sourdough starter needs flour, water, patience, and a warm kitchen corner away from drafts.\n"

    /// Three authors; Cy's file is renamed (and moved) afterwards by Di, as git blame follows.
    static func makeCLI() throws -> CLIHarness {
        let source = try TemporaryDirectory("span-source")
        let repo = source.url
        try git(["init", "-q"], in: repo)
        try source.write("rivers.txt", annParagraph)
        try gitCommit(repo, author: "Ann Author <ann@example.org>", message: "rivers", date: 1_700_000_000)
        try source.write("coast/lighthouses.txt", "Notes on the coast.\n" + boSentence)
        try gitCommit(repo, author: "Bo Writer <bo@example.org>", message: "lighthouses", date: 1_700_000_100)
        try source.write("bread.txt", cySentence + "Bake it hot.\n")
        try gitCommit(repo, author: "Cy Baker <cy@example.org>", message: "bread", date: 1_700_000_200)
        try FileManager.default.createDirectory(at: source.path("kitchen"), withIntermediateDirectories: true)
        try git(["mv", "bread.txt", "kitchen/bread-notes.txt"], in: repo)
        try gitCommit(repo, author: "Di Mover <di@example.org>", message: "move bread", date: 1_700_000_300)
        let cli = try CLIHarness()
        try cli.must("add", "texts", "--from", repo.path)
        try cli.must("model", "register", "m@1", "--developer", "Dev <dev@example.org>", "--dataset", "texts", "--plugin", "span-match:min_bytes=24")
        return cli
    }

    func attribute(_ cli: CLIHarness, _ output: String) throws -> Result {
        let file = try cli.write("output-\(UUID().uuidString).txt", output)
        return try cli.json(Result.self, "attribute", "m@1", "--output-file", file.path)
    }

    @Test func anOutputQuotingOneAuthorsParagraphPaysThatAuthor() throws {
        let cli = try Self.makeCLI()
        let result = try attribute(cli, "Here is what I found: " + Self.annParagraph + "Hope that helps!")
        #expect(result.weights.map(\.id) == ["ann@example.org"])
        #expect(result.weights.first?.ppb == 1_000_000_000)
        let spans = try #require(result.spans)
        #expect(spans.map(\.contributor) == ["ann@example.org"])
        #expect(spans.first?.path == "rivers.txt")
        #expect(spans.first.map { ($0.lineStart, $0.lineEnd) } ?? (0, 0) == (1, 2))
        #expect(spans.reduce(0) { $0 + $1.length } == UInt64(Self.annParagraph.utf8.count))
    }

    @Test func anOutputMixingTwoAuthorsSentencesPaysBothBySpanLength() throws {
        let cli = try Self.makeCLI()
        let bo = Self.boSentence.dropLast()  // without its newline
        let annPart = "Every flood rewrites the map a little"
        let result = try attribute(cli, "Two facts. \(bo) Also: \(annPart)!")
        let spans = try #require(result.spans)
        var bytes: [String: UInt64] = [:]
        for span in spans { bytes[span.contributor, default: 0] += span.length }
        #expect(bytes == ["bo@example.org": UInt64(bo.utf8.count), "ann@example.org": UInt64(annPart.utf8.count)])
        let raw = Dictionary(uniqueKeysWithValues: result.weights.map { ($0.id, UInt64($0.raw ?? -1)) })
        #expect(raw == bytes)
        let total = UInt64(bo.utf8.count + annPart.utf8.count)
        let ppb = Dictionary(uniqueKeysWithValues: result.weights.map { ($0.id, $0.ppb) })
        #expect(ppb["bo@example.org"]! + ppb["ann@example.org"]! == 1_000_000_000)
        let exact = UInt64(bo.utf8.count) * 1_000_000_000 / total  // largest remainder: floor or one more
        #expect(ppb["bo@example.org"]! == exact || ppb["bo@example.org"]! == exact + 1)
    }

    @Test func aSpanInsideARenamedFileGoesToGitBlamesAuthor() throws {
        let cli = try Self.makeCLI()
        let result = try attribute(cli, "Recipe: " + Self.cySentence)
        let spans = try #require(result.spans)
        #expect(spans.count == 1)
        let span = try #require(spans.first)
        #expect(span.path == "kitchen/bread-notes.txt")
        // The oracle: git blame follows the rename to Cy, not Di who moved the file.
        let repo = cli.datasetRepository("texts")
        let porcelain = try git(["blame", "--line-porcelain", "-L", "\(span.lineStart),\(span.lineEnd)", span.commit, "--", span.path], in: repo).stdout
        let authors = Set(porcelain.split(separator: "\n").filter { $0.hasPrefix("author-mail ") }.map { $0.dropFirst("author-mail <".count).dropLast() })
        #expect(authors == ["cy@example.org"])
        #expect(span.contributor == "cy@example.org")
        #expect(result.weights.map(\.id) == ["cy@example.org"])
    }

    @Test func anOutputWithNoMatchingSpanFallsBackToDataVolume() throws {
        let cli = try Self.makeCLI()
        let result = try attribute(cli, "Nothing in this answer was ever written in the training data, not a word of it.")
        #expect(result.spans == [])
        let dataVolume = try cli.json(Result.self, "attribute", "m@1", "--plugin", "data-volume")
        #expect(result.weights.map(\.id) == dataVolume.weights.map(\.id))
        #expect(result.weights.map(\.ppb) == dataVolume.weights.map(\.ppb))
        // Without an output, span-match weighs the version as its fallback does.
        let plain = try cli.json(Result.self, "attribute", "m@1")
        #expect(plain.weights.map(\.ppb) == dataVolume.weights.map(\.ppb))
        #expect(plain.spans == nil)
    }

    struct IndexReport: Decodable {
        var version: String
        var key: String
        var files: Int
        var text_bytes: Int
        var disk_bytes: Int
    }

    @Test func indexBuildAndReindexWriteTheIndexNamedByItsCommits() throws {
        let cli = try Self.makeCLI()
        let reports = try cli.json([IndexReport].self, "index", "build", "m@1")
        let report = try #require(reports.first)
        #expect(report.version == "m@1")
        #expect(report.files == 3)
        let oracle = try git(["ls-tree", "-r", "-l", "main"], in: cli.datasetRepository("texts")).stdout
            .split(separator: "\n").compactMap { Int($0.split(separator: " ", omittingEmptySubsequences: true)[3].split(separator: "\t")[0]) }
        #expect(report.text_bytes == oracle.reduce(0, +))
        #expect(report.disk_bytes <= 6 * report.text_bytes + 4096)
        let folder = cli.store.appendingPathComponent("indexes/\(report.key)")
        for file in ["corpus", "sa", "meta.json"] { #expect(FileManager.default.fileExists(atPath: folder.appendingPathComponent(file).path)) }
        // reindex drops the indexes and builds again those of models that use span-match.
        try FileManager.default.removeItem(at: folder)
        let reindexed = try cli.run("reindex")
        #expect(reindexed.succeeded && reindexed.stdout.contains("1 span index"), "\(reindexed)")
        #expect(FileManager.default.fileExists(atPath: folder.appendingPathComponent("sa").path))
        // Refusals: one line, non-zero exit.
        let unknown = try cli.run("index", "build", "nosuch@1")
        #expect(unknown.status != 0 && unknown.stderr.hasPrefix("Error:") && unknown.stderr.split(separator: "\n").count == 1, "\(unknown)")
        let before = try cli.snapshot()
        let option = try cli.run("model", "set-plugin", "m", "span-match:min_bytes=zero")
        #expect(option.status != 0 && option.stderr.contains("min_bytes must be a whole number"), "\(option)")
        let fallback = try cli.run("model", "set-plugin", "m", "span-match:fallback=influence-score")
        #expect(fallback.status != 0 && fallback.stderr.contains("fallback must be data-volume or equal-share"), "\(fallback)")
        #expect(try cli.snapshot() == before, "a refused plugin option changes nothing")
        // A damaged index is named, with the command that rebuilds it.
        let suffixes = folder.appendingPathComponent("sa")
        let handle = try FileHandle(forWritingTo: suffixes)
        try handle.truncate(atOffset: 4)
        try handle.close()
        let answer = try cli.write("answer.txt", Self.cySentence)
        let damaged = try cli.run("attribute", "m@1", "--output-file", answer.path)
        #expect(damaged.status != 0 && damaged.stderr.contains("is damaged") && damaged.stderr.contains("provenance index build"), "\(damaged)")
        try cli.must("index", "build", "m@1", "--force")
        #expect(try cli.run("attribute", "m@1", "--output-file", answer.path).succeeded)
    }

    struct Shown: Decodable {
        struct Invoice: Decodable {
            struct Traceability: Decodable {
                struct Level: Decodable {
                    var level: String
                    var basis: String
                    var spans: [Span]
                }
                struct Span: Decodable {
                    var dataset: String
                    var commit: String
                    var path: String
                    var line_start: String
                    var line_end: String
                    var file_offset: String
                    var length: String
                    var contributor: String
                    var text: String
                }
                var call_attribution: [Level]?
            }
            struct Settlement: Decodable {
                struct Payout: Decodable { var account: String; var role: String; var amount: String }
                var payouts: [Payout]
            }
            var traceability: Traceability
            var settlement: Settlement
        }
        var invoice: Invoice
    }

    func setUpCalls(_ cli: CLIHarness) throws {
        try cli.must("model", "price", "m", "--input-per-1k", "1", "--output-per-1k", "1")
        try cli.must("node", "add", "n1")
        try cli.must("account", "deposit", "caller@example.org", "100")
    }

    @Test func theInvoiceRecordsSpansThatMatchGitShowAtTheirLines() throws {
        let cli = try Self.makeCLI()
        try setUpCalls(cli)
        let output = try cli.write("answer.txt", "Quote: \(Self.boSentence)and \(Self.annParagraph)")
        try cli.must("call", "m@1", "--caller", "caller@example.org", "--node", "n1", "--input-tokens", "1000", "--output-tokens", "1000",
                     "--latency-ms", "5", "--output-file", output.path)
        let shown = try cli.json(Shown.self, "invoice", "show", "0")
        let levels = try #require(shown.invoice.traceability.call_attribution)
        #expect(levels.map(\.level) == ["m@1"])
        #expect(levels[0].basis == "spans")
        let repo = cli.datasetRepository("texts")
        for span in levels[0].spans {
            let file = try git(["show", "\(span.commit):\(span.path)"], in: repo).stdout
            let lines = file.split(separator: "\n", omittingEmptySubsequences: false)
            let covered = lines[(Int(span.line_start)! - 1)..<Int(span.line_end)!].joined(separator: "\n")
            #expect(covered.contains(span.text.trimmingCharacters(in: .newlines)))
            let bytes = Array(file.utf8)
            let start = Int(span.file_offset)!
            #expect(Array(bytes[start..<(start + Int(span.length)!)]) == Array(span.text.utf8))
        }
        #expect(Set(levels[0].spans.map(\.contributor)) == ["ann@example.org", "bo@example.org"])
        // Only the authors whose words were reproduced are paid for data.
        let data = Set(shown.invoice.settlement.payouts.filter { $0.role == "data" }.map(\.account))
        #expect(data == ["ann@example.org", "bo@example.org"])
        // A deferred call keeps its output until it is settled, and is attributed then.
        let later = try cli.write("later.txt", "Recipe: " + Self.cySentence)
        try cli.must("call", "m@1", "--caller", "caller@example.org", "--node", "n1", "--input-tokens", "1000", "--output-tokens", "1000",
                     "--latency-ms", "5", "--output-file", later.path, "--defer")
        // SQLite keeps a pending call's payload in a table of its own; PostgreSQL in its row of calls.
        let outputs = "SELECT count(*) FROM \(TestBackend.isPostgres ? "calls" : "pending_calls") WHERE output_text IS NOT NULL"
        let kept = try TestBackend.sql(store: cli.store, outputs)
        #expect(kept == "1")
        try cli.must("settle")
        let deferred = try cli.json(Shown.self, "invoice", "show", "1")
        #expect(deferred.invoice.traceability.call_attribution?.first?.spans.map(\.contributor) == ["cy@example.org"])
        let cleared = try TestBackend.sql(store: cli.store, outputs)
        #expect(cleared == "0", "a settled call keeps no copy of its output; the invoice holds the evidence")
        let verified = try cli.run("verify")
        #expect(verified.succeeded, "\(verified)")
    }

    @Test func verifyNamesASpanWhoseTextIsNotInGit() throws {
        let cli = try Self.makeCLI()
        try setUpCalls(cli)
        let output = try cli.write("answer.txt", "Quote: \(Self.boSentence)")
        try cli.must("call", "m@1", "--caller", "caller@example.org", "--node", "n1", "--input-tokens", "1000", "--output-tokens", "1000",
                     "--latency-ms", "5", "--output-file", output.path)
        #expect(try cli.run("verify").succeeded)
        // Rewrite the span's text in the stored invoice, and its leaf hash with it, so that the
        // invoice reads and hashes as its own: only holding the span against git can tell.
        let hex = try TestBackend.sql(store: cli.store, "SELECT \(TestBackend.hexExpression("bytes", store: cli.store)) FROM invoices WHERE ledger_index = 0")
        var bytes = Data(hexString: hex)
        let range = try #require(bytes.range(of: Data("trimmed the wicks".utf8)))
        bytes.replaceSubrange(range, with: Data("trimmed the WICKS".utf8))
        let leaf = SHA256Digest.hex(of: Data([0]) + bytes)
        try TestBackend.sql(store: cli.store, """
            UPDATE invoices SET bytes = \(TestBackend.blobLiteral(bytes, store: cli.store)),
              leaf_hash = \(TestBackend.blobLiteral(Data(hexString: leaf), store: cli.store)) WHERE ledger_index = 0
            """)
        let verify = try cli.run("verify")
        #expect(!verify.succeeded)
        #expect(verify.stderr.contains("invoice 0: a span of m@1"), "\(verify)")
        #expect(verify.stderr.contains("does not hold its text verbatim"), "\(verify)")
    }

    /// Each check verify makes of a span or of a call's attribution, failing on its own.
    @Test func eachSpanCheckNamesWhatDoesNotHold() async throws {
        let cli = try Self.makeCLI()
        try setUpCalls(cli)
        let output = try cli.write("answer.txt", "Quote: \(Self.boSentence)and \(Self.annParagraph)")
        try cli.must("call", "m@1", "--caller", "caller@example.org", "--node", "n1", "--input-tokens", "1000", "--output-tokens", "1000",
                     "--latency-ms", "5", "--output-file", output.path)
        let store = try Store.open(at: cli.store)
        let invoice = try store.invoice(0).invoice
        #expect(Store.checkCallAttribution(invoice) == nil)
        let attribution = try #require(invoice.callAttribution.first)
        let span = try #require(attribution.spans.first)
        var checker = SpanChecker(store: store)
        #expect(try checker.check(span) == nil)

        func problem(_ change: (inout AttributedSpan) -> Void) throws -> String {
            var changed = span
            change(&changed)
            return try checker.check(changed) ?? "no problem found"
        }
        #expect(try problem { $0.path = "nowhere.txt" }.contains("names a file that is not in git"))
        #expect(try problem { $0.text = $0.text.uppercased() }.contains("does not hold its text verbatim"))
        #expect(try problem { $0.lineStart += 1; $0.lineEnd += 1 }.contains("its text lies on lines"))
        #expect(try problem { $0.contributor = "ann@example.org" }.contains("git blame does not give those lines to ann@example.org"))

        func attributionProblem(_ change: (inout LevelCallAttribution) -> Void) -> String {
            var changed = invoice
            change(&changed.callAttribution[0])
            return Store.checkCallAttribution(changed) ?? "no problem found"
        }
        #expect(attributionProblem { $0.weights.reverse() }.contains("do not follow from its spans"))
        #expect(attributionProblem { $0.spans[1].outputOffset = $0.spans[0].outputOffset }.contains("overlaps another"))
        #expect(attributionProblem { $0.spans[0].commit = String(repeating: "0", count: 40) }.contains("which the version was not trained on"))
        #expect(attributionProblem { $0.basis = .fallback }.contains("fallback attribution of m@1 is not the version's own weights"))
        // As a plugin's answer, well-formed weights pass (only the plugin could re-derive them); others do not.
        #expect(attributionProblem { $0.basis = .plugin; $0.spans = [] } == "no problem found")
        #expect(attributionProblem { $0.basis = .plugin; $0.spans = []; $0.weights[0].ppb += 1 }.contains("not positive ppb summing to 1000000000"))
        #expect(attributionProblem { $0.spans = [] }.contains("rests on spans but has none"))
        #expect(attributionProblem { $0.level = "m@2" }.contains("not a level of its lineage"))
    }

    @Test func aWrongOutputTextForTheSignedHashIsRefusedWithNothingWritten() async throws {
        let cli = try Self.makeCLI()
        try setUpCalls(cli)
        let store = try Store.open(at: cli.store)
        let before = try cli.snapshot()
        let record = CallRecord(caller: "caller@example.org", model: "m", version: "1", node: "n1", router: nil, inputTokens: 10,
                                outputTokens: 10, latencyMilliseconds: 1, outputSHA256: SHA256Digest.hex(of: Data("the real output".utf8)),
                                idempotencyKey: "wrong-output")
        let signature = try CallSignature.sign(record, with: try store.keyStore.nodeKey("n1"))
        await #expect(throws: ProvenanceError.self) {
            _ = try await store.submit([(record, signature)], outputs: ["another output"], deferred: false, resolver: PluginRegistry())
        }
        do {
            _ = try await store.submit([(record, signature)], outputs: ["another output"], deferred: false, resolver: PluginRegistry())
        } catch let error as ProvenanceError {
            #expect(error.message.contains("output_text"))
            #expect(error.message.contains("output_sha256"))
        }
        // An output for a record that signed no output hash is refused too.
        let unhashed = CallRecord(caller: "caller@example.org", model: "m", version: "1", node: "n1", router: nil, inputTokens: 10,
                                  outputTokens: 10, latencyMilliseconds: 1, outputSHA256: nil, idempotencyKey: "no-hash")
        let unhashedSignature = try CallSignature.sign(unhashed, with: try store.keyStore.nodeKey("n1"))
        do {
            _ = try await store.submit([(unhashed, unhashedSignature)], outputs: ["text"], deferred: false, resolver: PluginRegistry())
            Issue.record("an output without a signed hash was accepted")
        } catch let error as ProvenanceError {
            #expect(error.message.contains("has no output_sha256"))
        }
        // An output holding U+0000 is refused, signed hash and all, deferred or not: PostgreSQL's
        // text refuses it (a deferred call would fail its whole group) and SQLite's reads end at it.
        let withNUL = "before\u{0}after"
        let nulRecord = CallRecord(caller: "caller@example.org", model: "m", version: "1", node: "n1", router: nil, inputTokens: 10,
                                   outputTokens: 10, latencyMilliseconds: 1, outputSHA256: SHA256Digest.hex(of: Data(withNUL.utf8)),
                                   idempotencyKey: "nul-output")
        let nulSignature = try CallSignature.sign(nulRecord, with: try store.keyStore.nodeKey("n1"))
        for deferred in [false, true] {
            do {
                _ = try await store.submit([(nulRecord, nulSignature)], outputs: [withNUL], deferred: deferred, resolver: PluginRegistry())
                Issue.record("an output holding NUL was accepted (deferred: \(deferred))")
            } catch let error as ProvenanceError {
                #expect(error.message.contains("NUL character (U+0000)"))
                #expect(error.message.contains("nul-output"))
            }
        }
        #expect(try cli.snapshot() == before)
        // The right text settles.
        let outcome = try await store.submit([(record, signature)], outputs: ["the real output"], deferred: false,
                                             resolver: PluginRegistry())
        #expect(outcome.first?.status == .settled)
    }
}

extension Data {
    init(hexString: String) {
        var bytes: [UInt8] = []
        var index = hexString.startIndex
        while index < hexString.endIndex {
            let next = hexString.index(index, offsetBy: 2)
            bytes.append(UInt8(hexString[index..<next], radix: 16)!)
            index = next
        }
        self.init(bytes)
    }
}
