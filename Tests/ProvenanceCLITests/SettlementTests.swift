import Foundation
import ProvenanceCore
import ProvenanceTestSupport
import Testing

/// Metered calls, exact splits, AI invoices and the verifiable ledger, through the CLI.
@Suite struct SettlementTests {
    static let token = "000000000000000000"

    /// Dataset `text` (Ann, Bo, Cy), model m@1 (developer dev@example.org, equal-share), priced
    /// 1 token per 1k input and 2 per 1k output, node gpu1 with a stake of 5, caller alice with 100.
    static func market(split: String = "developer=2000,data=5000,node=2000,platform=1000", extra: [String] = []) throws -> CLIHarness {
        let cli = try CLIHarness()
        for (who, text) in [("Ann <ann@example.org>", "a\n"), ("Bo <bo@example.org>", "b\n"), ("Cy <cy@example.org>", "c\n")] {
            try cli.write("\(text.first!).txt", text)
            try cli.must("add", "text", "\(text.first!).txt", "--contributor", who)
        }
        try cli.must("model", "register", "m@1", "--developer", "Dev <dev@example.org>", "--dataset", "text")
        try cli.must(["model", "price", "m", "--input-per-1k", "1", "--output-per-1k", "2", "--split", split] + extra)
        try cli.must("account", "deposit", "node:gpu1", "10")
        try cli.must("node", "add", "gpu1", "--stake", "5")
        try cli.must("account", "deposit", "alice", "100")
        return cli
    }

    static func balance(_ cli: CLIHarness, _ account: String) throws -> String {
        try cli.must("account", "balance", account, "--raw").output
    }

    struct Outcome: Decodable { var status: String; var replayed: Bool; var invoice: Int?; var fee: String; var idempotency_key: String }

    @Test func aRealTimeCallIsChargedSplitExactlyAndVerifiable() throws {
        let cli = try Self.market()
        // 1500 input at 1/1k + 700 output at 2/1k = 1.5 + 1.4 = 2.9 tokens.
        let outcome = try cli.json(Outcome.self, "call", "m@1", "--caller", "alice", "--node", "gpu1", "--input-tokens", "1500",
                                   "--output-tokens", "700", "--latency-ms", "80", "--idempotency-key", "k1")
        #expect(outcome.status == "settled" && outcome.invoice == 0 && outcome.fee == "2.9" && !outcome.replayed)
        let fee: Int128 = 2_900_000_000_000_000_000
        #expect(try Self.balance(cli, "alice") == String(100 * 1_000_000_000_000_000_000 - fee))
        // developer 20%, data 50% in thirds (largest remainder: ann gets the extra unit), node 20%, platform 10%.
        #expect(try Self.balance(cli, "dev@example.org") == "580000000000000000")
        // The data pool (1.45) follows the integer weights: 333333334, 333333333, 333333333 ppb.
        #expect(try Self.balance(cli, "ann@example.org") == "483333334300000000")
        #expect(try Self.balance(cli, "bo@example.org") == "483333332850000000")
        #expect(try Self.balance(cli, "cy@example.org") == "483333332850000000")
        #expect(try Self.balance(cli, "node:gpu1") == "5580000000000000000")
        #expect(try Self.balance(cli, "platform") == "290000000000000000")
        #expect(try Self.balance(cli, "stake:gpu1") == "5" + Self.token)
        #expect(try Self.balance(cli, "external") == "-110" + Self.token)

        let verify = try cli.must("verify")
        // 3 setup transfers, 1 charge, 6 payouts; external, alice, clearing, node, stake, dev, 3 contributors, platform.
        #expect(verify.output == "verified 1 invoice(s), 1 checkpoint(s), 10 transfer(s), 10 account(s), 0 pending call(s)")

        // The invoice: five groups, canonical (sorted keys, no whitespace, integers as strings).
        let canonical = try cli.must("invoice", "show", "0", "--canonical").output
        let object = try JSONSerialization.jsonObject(with: Data(canonical.utf8)) as! [String: Any]
        #expect(Set(object.keys) == ["format", "parties", "metering", "traceability", "pricing", "settlement", "call"])
        let sorted = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
        #expect(String(decoding: sorted, as: UTF8.self) == canonical)
        let pricing = object["pricing"] as! [String: Any]
        #expect(pricing["fee"] as? String == String(fee))
        // The leaf refers to the lineage and price by the SHA-256 of their terms block…
        let traceability = object["traceability"] as! [String: Any]
        #expect(object["format"] as? String == "provenance-invoice/2" && traceability["lineage"] == nil && pricing["split_bps"] == nil)
        let termsSHA = try #require(traceability["terms_sha256"] as? String)
        let terms = try #require(try Store.open(at: cli.store).terms(sha256: termsSHA))
        #expect(SHA256Digest.hex(of: terms.bytes) == termsSHA && terms.levels.first?.model == "m")
        // …and `invoice show` prints the whole invoice, the block written out.
        let shown = try JSONSerialization.jsonObject(with: Data(try cli.must("invoice", "show", "0", "--json").stdout.utf8)) as! [String: Any]
        let whole = shown["invoice"] as! [String: Any]
        #expect((whole["pricing"] as! [String: Any])["split_bps"] != nil)
        let lineage = (((whole["traceability"] as! [String: Any])["lineage"]) as! [[String: Any]])[0]
        #expect(lineage["plugin"] as? String == "equal-share")
        #expect((lineage["weights"] as! [[String: Any]]).map { $0["ppb"] as! String } == ["333333334", "333333333", "333333333"])
        #expect(lineage["model_commit"] as? String == (try git(["rev-parse", "1"], in: cli.store.appendingPathComponent("models/m.git")).output))

        // Replay: same key, same record → the same invoice, charged once.
        let replay = try cli.json(Outcome.self, "call", "m@1", "--caller", "alice", "--node", "gpu1", "--input-tokens", "1500",
                                  "--output-tokens", "700", "--latency-ms", "80", "--idempotency-key", "k1")
        #expect(replay.replayed && replay.invoice == 0)
        #expect(try Self.balance(cli, "alice") == String(100 * 1_000_000_000_000_000_000 - fee))
        // Same key, different record → refused, nothing changed.
        try cli.expectRefusal(["call", "m@1", "--caller", "alice", "--node", "gpu1", "--input-tokens", "1", "--output-tokens", "700",
                               "--latency-ms", "80", "--idempotency-key", "k1"], mentioning: "idempotency key 'k1' was already used")
    }

    @Test func minimumFeeSloPenaltyAndRouter() throws {
        let cli = try Self.market(split: "developer=2000,data=4000,node=2000,platform=1000,router=1000",
                                  extra: ["--min-fee", "0.5", "--slo-ms", "100", "--slo-penalty-bps", "5000"])
        // 10 input tokens cost 0.01 < min fee 0.5; latency 250 > 100 misses the SLO: half the node's 0.1 goes back.
        let outcome = try cli.json(Outcome.self, "call", "m@1", "--caller", "alice", "--node", "gpu1", "--router", "router1",
                                   "--input-tokens", "10", "--output-tokens", "0", "--latency-ms", "250")
        #expect(outcome.fee == "0.5")
        #expect(try Self.balance(cli, "alice") == "99550000000000000000")
        #expect(try Self.balance(cli, "node:gpu1") == "5050000000000000000")
        #expect(try Self.balance(cli, "router1") == "50000000000000000")
        #expect(try Self.balance(cli, "platform") == "50000000000000000")
        let invoice = try JSONSerialization.jsonObject(with: Data(try cli.must("invoice", "show", "0", "--canonical").stdout.utf8)) as! [String: Any]
        #expect((invoice["metering"] as! [String: Any])["slo_met"] as? Bool == false)
        #expect((invoice["pricing"] as! [String: Any])["penalty"] as? String == "50000000000000000")
        // Without a router its share goes to the platform.
        let second = try cli.json(Outcome.self, "call", "m@1", "--caller", "alice", "--node", "gpu1", "--input-tokens", "10", "--output-tokens", "0", "--latency-ms", "50")
        #expect(try Self.balance(cli, "platform") == "150000000000000000")
        #expect(try cli.must("verify").succeeded)
        // Neither call named a key: each got a UUIDv7 (RFC 9562), the second sorting after the
        // first, so that the store's index of keys takes them on its last page.
        for key in [outcome.idempotency_key, second.idempotency_key] {
            let uuid = try #require(UUID(uuidString: key))
            #expect(uuid.uuid.6 >> 4 == 7 && uuid.uuid.8 >> 6 == 0b10 && key == key.lowercased())
            let milliseconds = try #require(IdempotencyKey.milliseconds(of: key))
            #expect(abs(Double(milliseconds) / 1000 - Date().timeIntervalSince1970) < 600)
        }
        #expect(outcome.idempotency_key < second.idempotency_key)
    }

    @Test func deferredCallsReserveAtOnceAndSettleAsOneBatch() throws {
        let cli = try Self.market()
        for index in 0..<5 {
            let outcome = try cli.json(Outcome.self, "call", "m@1", "--caller", "alice", "--node", "gpu1", "--input-tokens", "1000",
                                       "--output-tokens", "0", "--latency-ms", "10", "--defer", "--idempotency-key", "d\(index)")
            #expect(outcome.status == "pending" && outcome.invoice == nil)
        }
        #expect(try Self.balance(cli, "alice") == "95" + Self.token)
        #expect(try Self.balance(cli, "escrow") == "5" + Self.token)
        #expect(try cli.must("verify").output.hasSuffix("5 pending call(s)"))
        struct Report: Decodable { var batch: String?; var settled: Int; var invoices: [Int]; var tree_size: Int }
        let report = try cli.json(Report.self, "settle")
        // Each CLI call was its own group (batches 1-5 reserved); the settlement is batch 6.
        #expect(report.settled == 5 && report.invoices == [0, 1, 2, 3, 4] && report.batch == "batch-6" && report.tree_size == 5)
        #expect(try Self.balance(cli, "escrow") == "0")
        #expect(try Self.balance(cli, "dev@example.org") == "1" + Self.token)
        struct Checkpoint: Decodable { var size: Int; var note: String }
        let checkpoint = try cli.json(Checkpoint.self, "ledger", "checkpoint")
        #expect(checkpoint.size == 5)
        // 3 setup transfers, 5 reserves, then for the batch one release and one payout per payee (6), not one per
        // invoice; escrow is the 11th account.
        #expect(try cli.must("verify").output == "verified 5 invoice(s), 1 checkpoint(s), 15 transfer(s), 11 account(s), 0 pending call(s)")
        // The statement shows the batch line; --invoices lists the five invoices it sums.
        let statement = try cli.must("account", "statement", "ann@example.org", "--invoices").stdout
        #expect(statement.contains("batch-6"))
        for index in 0..<5 { #expect(statement.contains("invoice \(index)")) }
        // A replayed deferred call after settlement returns its invoice.
        let replay = try cli.json(Outcome.self, "call", "m@1", "--caller", "alice", "--node", "gpu1", "--input-tokens", "1000",
                                  "--output-tokens", "0", "--latency-ms", "10", "--defer", "--idempotency-key", "d3")
        #expect(replay.replayed && replay.status == "settled" && replay.invoice == 3)
        let nothing = try cli.must("settle")
        #expect(nothing.output == "nothing to settle")
    }

    @Test func refusalsChangeNothing() throws {
        let cli = try Self.market()
        let call = ["call", "m@1", "--caller", "alice", "--node", "gpu1", "--input-tokens", "10", "--output-tokens", "10", "--latency-ms", "5"]
        try cli.expectRefusal(["account", "deposit", "alice", "--", "-5"], mentioning: "negative")
        try cli.expectRefusal(["account", "deposit", "alice", "abc"], mentioning: "is not a token amount")
        try cli.expectRefusal(["account", "deposit", "alice", "1.0000000000000000001"], mentioning: "19 decimals")
        try cli.expectRefusal(["account", "deposit", "alice", "999999999999999999999999999999999999999"], mentioning: "too large")
        try cli.expectRefusal(["account", "deposit", "alice", "1.5", "--raw"], mentioning: "whole number of base units")
        try cli.expectRefusal(["account", "deposit", "alice", "0"], mentioning: "more than zero")
        try cli.expectRefusal(["account", "deposit", "Alice", "1"], mentioning: "invalid account 'Alice'")
        try cli.expectRefusal(["account", "deposit", "escrow", "1"], mentioning: "internal account")
        try cli.expectRefusal(["account", "withdraw", "alice", "101"], mentioning: "insufficient balance")
        try cli.expectRefusal(["account", "balance", "nobody"], mentioning: "unknown account 'nobody'")
        try cli.expectRefusal(["model", "price", "m", "--input-per-1k", "1", "--output-per-1k", "1", "--split", "developer=1,data=1,node=1,platform=1"], mentioning: "sums to 4 basis points")
        try cli.expectRefusal(["model", "price", "m", "--input-per-1k", "1", "--output-per-1k", "1", "--split", "developer=5000,data=5000"], mentioning: "no node= part")
        try cli.expectRefusal(["model", "price", "ghost", "--input-per-1k", "1", "--output-per-1k", "1"], mentioning: "unknown model 'ghost'")
        try cli.expectRefusal(["model", "price", "m", "--input-per-1k", "1", "--output-per-1k", "1", "--slo-ms", "18446744073709551615"], mentioning: "--slo-ms must be between 1 and")
        try cli.expectRefusal(call.replacingOccurrences(of: "m@1", with: "m@2"), mentioning: "has no version '2'")
        try cli.expectRefusal(call.replacingOccurrences(of: "m@1", with: "ghost@1"), mentioning: "unknown model 'ghost'")
        try cli.expectRefusal(call.replacingOccurrences(of: "gpu1", with: "gpu9"), mentioning: "no private key for node 'gpu9'")
        try cli.expectRefusal(call.replacingOccurrences(of: "alice", with: "bob"), mentioning: "unknown account 'bob'")
        try cli.expectRefusal(["call", "m@1", "--caller", "alice", "--node", "gpu1", "--input-tokens", "999999999999999999", "--output-tokens", "999999999999999999",
                               "--latency-ms", "5"], mentioning: "insufficient balance")
        // An overflow in the fee itself.
        try cli.must("model", "price", "m", "--input-per-1k", "100000000000000000000", "--output-per-1k", "1")
        try cli.expectRefusal(["call", "m@1", "--caller", "alice", "--node", "gpu1", "--input-tokens", "18446744073709551615", "--output-tokens", "1",
                               "--latency-ms", "5"], mentioning: "overflow")
        // A model without a price.
        try cli.must("model", "register", "free@1", "--developer", "Dev <dev@example.org>", "--dataset", "text")
        try cli.expectRefusal(call.replacingOccurrences(of: "m@1", with: "free@1"), mentioning: "model 'free' has no price")
        // A bad signature: the node's private key file no longer matches its registered public key.
        try cli.must("node", "add", "gpu2")
        let keyFile = cli.store.appendingPathComponent("keys/node-gpu2.ed25519")
        let other = cli.store.appendingPathComponent("keys/node-gpu1.ed25519")
        try FileManager.default.removeItem(at: keyFile)
        try FileManager.default.copyItem(at: other, to: keyFile)
        try cli.expectRefusal(call.replacingOccurrences(of: "gpu1", with: "gpu2"), mentioning: "bad signature")
        try cli.expectRefusal(["node", "add", "gpu1"], mentioning: "node 'gpu1' already exists")
        try cli.expectRefusal(["node", "add", "GPU 9"], mentioning: "invalid node name 'GPU 9'")
        try cli.expectRefusal(["model", "price", "m", "--input-per-1k", "1", "--output-per-1k", "1", "--slo-penalty-bps", "100"],
                              mentioning: "--slo-penalty-bps needs --slo-ms")
        try cli.expectRefusal(["model", "price", "m", "--input-per-1k", "1", "--output-per-1k", "1", "--slo-ms", "10", "--slo-penalty-bps", "10001"],
                              mentioning: "more than 10000")
        try cli.expectRefusal(["node", "add", "gpu3", "--stake", "1"], mentioning: "insufficient balance")
        #expect(try cli.must("verify").succeeded)
    }

    @Test func nodeKeysArePrivate() throws {
        let cli = try Self.market()
        let attributes = try FileManager.default.attributesOfItem(atPath: cli.store.appendingPathComponent("keys/node-gpu1.ed25519").path)
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
    }
}

extension Array where Element == String {
    func replacingOccurrences(of old: String, with new: String) -> [String] { map { $0 == old ? new : $0 } }
}
