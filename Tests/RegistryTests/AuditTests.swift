import Crypto
import Foundation
import ProvenanceCore
import ProvenanceTestSupport
import Testing

/// `provenance audit` against a real registry: a clean one passes, run after run; a ledger
/// rewritten, truncated or forked between two audits, an invoice whose split was altered and
/// a repository that no longer matches fail, each named in one line with exit 1.
@Suite struct AuditTests {
    /// A store with dataset `poems`, model `m@1` (priced, with a training log), node `gpu1`,
    /// caller `alice` funded, and `calls` settled calls.
    static func market(calls: Int) throws -> CLIHarness {
        let cli = try CLIHarness()
        try cli.write("poems/a.txt", "a poem by Ada\n")
        try cli.must("add", "poems", "poems", "--contributor", "Ada Lovelace <ada@example.org>")
        try cli.write("poems/b.txt", "a poem by Grace\n")
        try cli.must("add", "poems", "poems/b.txt", "--contributor", "Grace Hopper <grace@example.org>")
        try cli.write("train.log", "step 1 loss 2.0\n")
        try cli.must("model", "register", "m@1", "--developer", "Dev <dev@example.org>", "--dataset", "poems", "--training-log", "train.log")
        try cli.must("model", "price", "m", "--input-per-1k", "1", "--output-per-1k", "2")
        try cli.must("account", "deposit", "alice", "1000")
        try cli.must("node", "add", "gpu1")
        try call(cli, keys: (0..<calls).map { "call-\($0)" })
        return cli
    }

    static func call(_ cli: CLIHarness, keys: [String], store: URL? = nil) throws {
        for key in keys {
            try cli.must(["call", "m@1", "--caller", "alice", "--node", "gpu1", "--input-tokens", "\(1000 + key.count * 7)", "--output-tokens", "10",
                          "--latency-ms", "50", "--idempotency-key", key] + (store.map { ["--store", $0.path] } ?? []))
        }
    }

    /// `provenance audit URL --state FILE ARGS...`.
    static func audit(_ cli: CLIHarness, _ registry: LiveRegistry, state: URL, _ arguments: String...) throws -> ProcessResult {
        try cli.run(["audit", registry.base, "--state", state.path] + arguments)
    }

    /// A failed audit: exit 1 (no crash), one `Error: audit failed: …` line naming `problem`,
    /// and the state file as it was.
    static func expectFailure(_ result: ProcessResult, _ problem: String, state: URL, before: Data?,
                              sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(!result.signalled && result.status == 1, "\(result)", sourceLocation: sourceLocation)
        #expect(result.errorLines.count == 1, "\(result.stderr)", sourceLocation: sourceLocation)
        #expect(result.errorLines.first?.hasPrefix("Error: audit failed: \(problem)") == true, "\(result.stderr)", sourceLocation: sourceLocation)
        let after = try? Data(contentsOf: state)
        #expect(after == before, "the state changed", sourceLocation: sourceLocation)
    }

    static func sqlite(_ cli: CLIHarness, _ sql: String) throws -> String {
        try TestBackend.sql(store: cli.store, sql)
    }

    static func hex(_ cli: CLIHarness, _ column: String) -> String { TestBackend.hexExpression(column, store: cli.store) }

    static func blob(_ cli: CLIHarness, _ data: Data) -> String { TestBackend.blobLiteral(data, store: cli.store) }

    /// Re-signs the latest checkpoint over the ledger's current leaves with the registry's own
    /// key, as an operator who rewrote its ledger would.
    static func resign(_ cli: CLIHarness) throws {
        let leaves = try sqlite(cli, "SELECT \(hex(cli, "leaf_hash")) FROM invoices ORDER BY ledger_index").split(separator: "\n").map { Data(hex: String($0)) }
        let size = leaves.count
        let note = try sqlite(cli, "SELECT note FROM checkpoints WHERE size = \(size)")
        let origin = String(note.split(separator: "\n")[0])
        let keyText = try String(contentsOf: cli.store.appendingPathComponent("keys/registry.ed25519"), encoding: .utf8)
        let key = try Curve25519.Signing.PrivateKey(rawRepresentation: Data(base64Encoded: keyText.trimmingCharacters(in: .whitespacesAndNewlines))!)
        let root = MerkleTree.root(ofLeafHashes: leaves)
        let signed = try NoteSigner(name: origin, privateKey: key).sign(Checkpoint(origin: origin, size: size, rootHash: root))
        _ = try sqlite(cli, "UPDATE checkpoints SET root = \(blob(cli, root)), note = '\(signed)' WHERE size = \(size)")
    }

    /// Replaces invoice `index`'s stored bytes (and leaf hash) with `edit` of them.
    static func rewrite(_ cli: CLIHarness, invoice index: Int, _ edit: (String) -> String) throws {
        let bytes = Data(hex: try sqlite(cli, "SELECT \(hex(cli, "bytes")) FROM invoices WHERE ledger_index = \(index)"))
        let edited = Data(edit(String(decoding: bytes, as: UTF8.self)).utf8)
        #expect(edited != bytes)
        _ = try sqlite(cli, "UPDATE invoices SET bytes = \(blob(cli, edited)), leaf_hash = \(blob(cli, MerkleTree.leafHash(edited))) WHERE ledger_index = \(index)")
    }

    @Test func aCleanRegistryPassesRunAfterRunWithGit() async throws {
        let cli = try Self.market(calls: 3)
        var registry = try LiveRegistry(store: cli.store)
        let state = cli.directory.path("audit/state.json")
        let first = try Self.audit(cli, registry, state: state, "--git")
        #expect(first.succeeded, "\(first)")
        #expect(first.stdout.contains("pinned") && first.stdout.contains("checkpoint 3 invoices") && first.stdout.contains("invoices 3 new"))
        #expect(first.stdout.contains("1 lineage level(s) checked in 2 cloned repositories"), "\(first.stdout)")
        let pinned = try JSONDecoder().decode([String: AnyDecodable].self, from: Data(contentsOf: state))
        #expect(pinned["size"]?.int == 3)

        // Two more calls; the next audit checks only those, consistent with the 3 seen.
        try Self.call(cli, keys: ["call-3", "call-4"])
        let second = try Self.audit(cli, registry, state: state, "--git", "--json")
        #expect(second.succeeded, "\(second)")
        let summary = try JSONDecoder().decode([String: AnyDecodable].self, from: Data(second.stdout.utf8))
        #expect(summary["previous_size"]?.int == 3 && summary["size"]?.int == 5 && summary["invoices_checked"]?.int == 2)
        #expect(summary["pinned"]?.bool == false)

        // Nothing new; a restarted registry on another port is the same log.
        registry.stop()
        registry = try LiveRegistry(store: cli.store)
        let third = try Self.audit(cli, registry, state: state)
        #expect(third.succeeded && third.stdout.contains("invoices 0 new") && third.stdout.contains("unchanged since the last audit"), "\(third)")
        #expect(try cli.must("verify").output.hasPrefix("verified"))
    }

    @Test func aKeyOtherThanTheRegistrysIsRefusedAndChangesNothing() async throws {
        let cli = try Self.market(calls: 1)
        let registry = try LiveRegistry(store: cli.store)
        let state = cli.directory.path("state.json")
        let other = NoteSigner(name: "provenance.ledger/other", privateKey: Curve25519.Signing.PrivateKey()).verifierKey
        Self.expectFailure(try Self.audit(cli, registry, state: state, "--key", other), "the registry's checkpoint is not signed by the pinned key",
                           state: state, before: nil)
        Self.expectFailure(try Self.audit(cli, registry, state: state, "--key", "not-a-key"), "--key 'not-a-key' is not a signed-note verifier key",
                           state: state, before: nil)
        // The right key, given explicitly, passes; another one is then refused against the pin.
        let served = try #require(try JSONSerialization.jsonObject(with: try await registry.get("/v1/ledger/checkpoint").body) as? [String: Any])
        let key = try #require(served["verifier_key"] as? String)
        #expect(try Self.audit(cli, registry, state: state, "--key", key).succeeded)
        let pinned = try Data(contentsOf: state)
        Self.expectFailure(try Self.audit(cli, registry, state: state, "--key", other), "--key \(other.prefix(20))", state: state, before: pinned)
        #expect(try Self.audit(cli, registry, state: state).succeeded)
        // Bad input: one line each, nothing written.
        let elsewhere = cli.directory.path("elsewhere.json")
        for (arguments, problem) in [(["ftp://example.org"], "'ftp://example.org' is not a registry URL"),
                                     (["http://127.0.0.1:9"], "cannot reach the registry at http://127.0.0.1:9")] {
            let result = try cli.run(["audit"] + arguments + ["--state", elsewhere.path])
            #expect(!result.signalled && result.status == 1 && result.errorLines.count == 1, "\(result)")
            #expect(result.stderr.contains(problem), "\(result.stderr)")
        }
        #expect(!FileManager.default.fileExists(atPath: elsewhere.path))
    }

    @Test func aLedgerRewrittenAndReSignedIsCaughtAndNamed() async throws {
        let cli = try Self.market(calls: 3)
        var registry = try LiveRegistry(store: cli.store)
        let state = cli.directory.path("state.json")
        #expect(try Self.audit(cli, registry, state: state).succeeded)
        let before = try Data(contentsOf: state)
        registry.stop()
        // Invoice 1 now says another caller paid; the operator re-signs a checkpoint over it.
        try Self.rewrite(cli, invoice: 1) { $0.replacingOccurrences(of: "\"caller\":\"alice\"", with: "\"caller\":\"alicf\"") }
        try Self.resign(cli)
        registry = try LiveRegistry(store: cli.store)
        Self.expectFailure(try Self.audit(cli, registry, state: state), "rewritten: invoice 1 is not the invoice the last audit verified",
                           state: state, before: before)
        // Growing the rewritten log does not hide it: the consistency proof fails the same way.
        registry.stop()
        try Self.call(cli, keys: ["call-3"])
        registry = try LiveRegistry(store: cli.store)
        let grown = try Self.audit(cli, registry, state: state)
        Self.expectFailure(grown, "rewritten: invoice 1", state: state, before: before)
    }

    @Test func aTruncatedLedgerIsCaughtAndNamed() async throws {
        let cli = try Self.market(calls: 3)
        var registry = try LiveRegistry(store: cli.store)
        let state = cli.directory.path("state.json")
        #expect(try Self.audit(cli, registry, state: state).succeeded)
        let before = try Data(contentsOf: state)
        registry.stop()
        // The last invoice and its checkpoint are gone; the checkpoint of 2 is genuinely signed.
        _ = try Self.sqlite(cli, "DELETE FROM invoices WHERE ledger_index = 2; DELETE FROM checkpoints WHERE size = 3")
        registry = try LiveRegistry(store: cli.store)
        Self.expectFailure(try Self.audit(cli, registry, state: state),
                           "truncated: the registry's signed checkpoint holds 2 invoices, but the last audit verified 3", state: state, before: before)
    }

    @Test func aForkedLedgerIsCaughtAndNamed() async throws {
        let cli = try Self.market(calls: 1)
        // Two copies of one ledger go their own ways from invoice 1 on.
        let fork = cli.directory.path("fork/.provenance")
        try FileManager.default.createDirectory(at: fork.deletingLastPathComponent(), withIntermediateDirectories: true)
        try TestBackend.copyStore(cli.store, to: fork)
        try Self.call(cli, keys: ["a-1", "a-2"])
        try Self.call(cli, keys: ["b-1", "b-2", "b-3"], store: fork)

        let state = cli.directory.path("state.json")
        var registry = try LiveRegistry(store: cli.store)
        #expect(try Self.audit(cli, registry, state: state).succeeded)
        let before = try Data(contentsOf: state)
        registry.stop()
        registry = try LiveRegistry(store: fork)
        Self.expectFailure(try Self.audit(cli, registry, state: state), "forked: the log differs from invoice 1 on", state: state, before: before)
        // An auditor who saw only the fork finds it sound on its own: what is caught is the second view.
        #expect(try Self.audit(cli, registry, state: cli.directory.path("fresh.json")).succeeded)
    }

    /// An invoice whose payout was raised (leaf and checkpoint re-signed to match) fails a
    /// fresh audit: the split is recomputed from the invoice's own inputs.
    @Test func aSplitThatDoesNotFollowFromItsInputsIsNamed() async throws {
        let cli = try Self.market(calls: 2)
        try Self.rewrite(cli, invoice: 1) { text in
            let range = text.range(of: #""payouts":\[\{"account":"[^"]*","amount":"[0-9]+"#, options: .regularExpression)!
            let match = String(text[range])
            let digits = match.split(separator: "\"").last!
            return text.replacingCharacters(in: range, with: match.dropLast(digits.count) + String(UInt64(digits)! + 1))
        }
        try Self.resign(cli)
        let registry = try LiveRegistry(store: cli.store)
        let state = cli.directory.path("state.json")
        Self.expectFailure(try Self.audit(cli, registry, state: state), "invoice 1: its split does not follow from its recorded inputs",
                           state: state, before: nil)
    }

    /// With --git the lineage is held against clones: a version tag the model repository no
    /// longer has fails the audit.
    @Test func aLineageGitNoLongerHoldsFailsTheGitAudit() async throws {
        let cli = try Self.market(calls: 1)
        try git(["--git-dir", cli.store.appendingPathComponent("models/m.git").path, "tag", "-d", "1"], in: cli.work)
        let registry = try LiveRegistry(store: cli.store)
        let state = cli.directory.path("state.json")
        let result = try Self.audit(cli, registry, state: state, "--git")
        Self.expectFailure(result, "git: model commit", state: state, before: nil)
        #expect(result.stderr.contains("is not the commit git tags 1"))
        // Without --git the ledger alone is sound.
        #expect(try Self.audit(cli, registry, state: state).succeeded)
    }

    /// Spans of a per-call attribution (span-match) are held against clones with --git: a span
    /// whose text was rewritten (same length, so its weights still add up) is named.
    @Test func spansAreHeldAgainstGitAndARewrittenSpanIsNamed() async throws {
        let cli = try Self.market(calls: 0)
        try cli.must("model", "set-plugin", "m", "span-match:min_bytes=5")
        try cli.write("out.txt", "I recall: a poem by Ada\n")
        try cli.must("call", "m@1", "--caller", "alice", "--node", "gpu1", "--input-tokens", "1000", "--output-tokens", "10", "--latency-ms", "50",
                     "--idempotency-key", "span-1", "--output-file", "out.txt")
        let invoice = try cli.must("invoice", "show", "0", "--canonical").stdout
        #expect(invoice.contains("a poem by Ada"), "\(invoice)")
        var registry = try LiveRegistry(store: cli.store)
        let clean = try Self.audit(cli, registry, state: cli.directory.path("clean.json"), "--git")
        #expect(clean.succeeded, "\(clean)")
        registry.stop()

        try Self.rewrite(cli, invoice: 0) { $0.replacingOccurrences(of: "a poem by Ada", with: "a poem by Eve") }
        try Self.resign(cli)
        registry = try LiveRegistry(store: cli.store)
        let state = cli.directory.path("state.json")
        let result = try Self.audit(cli, registry, state: state, "--git")
        Self.expectFailure(result, "git: invoice 0: a span of m@1", state: state, before: nil)
        #expect(result.stderr.contains("does not hold its text verbatim"), "\(result.stderr)")
        // The ledger alone cannot tell: the form of the spans still holds.
        #expect(try Self.audit(cli, registry, state: state).succeeded)
    }
}

/// Any JSON value, for reading a few fields of an answer.
struct AnyDecodable: Decodable {
    let value: Any
    var int: Int? { value as? Int }
    var bool: Bool? { value as? Bool }

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let bool = try? container.decode(Bool.self) { value = bool } else if let int = try? container.decode(Int.self) { value = int }
        else if let text = try? container.decode(String.self) { value = text } else { value = NSNull() }
    }
}

extension Data {
    init(hex: String) {
        var bytes: [UInt8] = []
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            bytes.append(UInt8(hex[index..<next], radix: 16)!)
            index = next
        }
        self.init(bytes)
    }

    var hexString: String { map { String(format: "%02x", $0) }.joined() }
}
