import AttributionPlugins
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import ProvenanceCore
import ProvenanceTestSupport
import RegistryService
import Testing

/// Group commit and net settlement over HTTP: concurrent calls share transactions, each fails
/// alone, and every batch line equals the sum of its invoices.
@Suite struct GroupCommitTests {
    /// 64 concurrent clients: some send the same idempotency key twice at once, some are short
    /// of funds. Every accepted call has exactly one invoice, every refused call moved nothing,
    /// and every balance equals a recomputation from the invoices alone.
    @Test func sixtyFourConcurrentClients() async throws {
        let fixture = try RegistryFixture()
        let signer = NodeSigner()
        // rich0…rich47 hold 100 tokens, poor0…poor15 hold 2.5: enough for two calls of 1, not three.
        let rich = (0..<48).map { "rich\($0)" }
        let poor = (0..<16).map { "poor\($0)" }
        try await fixture.app().test(.router) { client in
            try await fixture.market(client)
            try await fixture.priceAndFund(client, key: signer, callers: rich, deposit: "100")
            for caller in poor {
                try await client.send(.post, "/v1/accounts/\(caller)/deposits", token: fixture.admin, json: ["amount": "2.5"]).expect(.created)
            }
            let deposited = Dictionary(uniqueKeysWithValues: rich.map { ($0, Int128(100) * 1_000_000_000_000_000_000) }
                + poor.map { ($0, Int128(25) * 100_000_000_000_000_000) })

            // Each client sends 6 calls of 1 token; every 5th call of a rich client is sent twice at once.
            struct Sent: Sendable { let caller: String; let key: String; let status: HTTPResponse.Status; let invoice: Int?; let code: String? }
            let sent = try await withThrowingTaskGroup(of: [Sent].self) { group in
                for caller in rich + poor {
                    group.addTask {
                        var results: [Sent] = []
                        for n in 0..<6 {
                            let key = "\(caller)-\(n)"
                            let call = try SignedCall(caller: caller, inputTokens: 1000, key: key, signer: signer)
                            let copies = caller.hasPrefix("rich") && n % 5 == 0 ? 2 : 1
                            let responses = try await withThrowingTaskGroup(of: TestResponse.self) { twins in
                                for _ in 0..<copies { twins.addTask { try await call.submit(client, token: fixture.node) } }
                                return try await twins.reduce(into: []) { $0.append($1) }
                            }
                            for response in responses {
                                let object = try? response.object()
                                results.append(Sent(caller: caller, key: key, status: response.status, invoice: object?["invoice"] as? Int,
                                                    code: (object?["error"] as? [String: Any])?["code"] as? String))
                            }
                        }
                        return results
                    }
                }
                return try await group.reduce(into: []) { $0 += $1 }
            }

            // Rich calls all settle (the twins as one invoice and one replay); poor callers settle two, then are refused with 402.
            let accepted = sent.filter { $0.status == .created || $0.status == .ok }
            let refused = sent.filter { $0.status != .created && $0.status != .ok }
            #expect(refused.allSatisfy { $0.status == .init(code: 402) && $0.code == "insufficient_funds" && $0.caller.hasPrefix("poor") })
            let refusedCalls = 16 * 4
            #expect(refused.count == refusedCalls)
            let replays = 48 * 2
            #expect(sent.filter { $0.status == .ok }.count == replays, "one replay per twin pair")
            var invoiceByKey: [String: Int] = [:]
            for call in accepted {
                let invoice = try #require(call.invoice)
                if let earlier = invoiceByKey[call.key] { #expect(earlier == invoice, "a replay names the same invoice") }
                invoiceByKey[call.key] = invoice
            }
            let acceptedCalls = 48 * 6 + 16 * 2
            #expect(invoiceByKey.count == acceptedCalls)
            #expect(Set(invoiceByKey.values).count == invoiceByKey.count, "one invoice per accepted call")

            // The ledger: exactly those invoices, and batches with fewer lines than payouts.
            let entries = try fixture.store.invoices(account: nil, model: nil)
            #expect(entries.count == invoiceByKey.count)
            #expect(Set(entries.map { $0.invoice.record.idempotencyKey }) == Set(invoiceByKey.keys))
            #expect(entries.allSatisfy { $0.invoice.formatVersion == 2 && $0.invoice.batch != nil })
            let batches = Set(entries.compactMap(\.invoice.batch))
            #expect(batches.count < entries.count, "concurrent calls were grouped: \(batches.count) batches for \(entries.count) invoices")

            // Balances recomputed from the invoices alone, against the deposits.
            var expected: [String: Int128] = deposited
            for entry in entries {
                let invoice = entry.invoice
                expected[invoice.record.caller, default: 0] -= invoice.computation.fee.raw - invoice.computation.penalty.raw
                for payout in invoice.computation.payouts { expected[payout.account, default: 0] += payout.amount.raw }
            }
            for (account, amount) in expected {
                #expect(try fixture.store.balance(of: account).raw == amount, "\(account)")
            }
            // Refused calls moved nothing: a poor caller paid exactly two calls.
            for caller in poor { #expect(try fixture.store.balance(of: caller).raw == Int128(5) * 100_000_000_000_000_000) }
            let report = try fixture.store.verify()
            #expect(report.ok, "\(report.failure ?? "")")
        }
    }

    /// `/metrics` tells an operator what the group commit does: calls a group (a histogram), each
    /// group's transaction time, the submissions refused inside a group, and the calls pending,
    /// counted by the database without reading them.
    @Test func metricsShowEachGroupCommitAndThePendingCalls() async throws {
        let fixture = try RegistryFixture()
        let signer = NodeSigner()
        try await fixture.app().test(.router) { client in
            try await fixture.market(client)
            try await fixture.priceAndFund(client, key: signer, callers: ["rich"], deposit: "100")
            try await client.send(.post, "/v1/accounts/poor/deposits", token: fixture.admin, json: ["amount": "0.5"]).expect(.created)
            // One at a time: each call is a group of its own.
            for n in 0..<5 {
                try await SignedCall(caller: "rich", key: "r\(n)", signer: signer).submit(client, token: fixture.node, deferred: true).expect(.created)
            }
            try await SignedCall(caller: "rich", key: "now", signer: signer).submit(client, token: fixture.node).expect(.created)
            // A call of 1 token from an account holding 0.5: refused inside its group.
            try await SignedCall(caller: "poor", key: "p0", signer: signer).submit(client, token: fixture.node, deferred: true)
                .expect(.init(code: 402))

            let metrics = try await client.send(.get, "/metrics").expect(.ok).text
            let lines = Set(metrics.split(separator: "\n").map(String.init))
            for line in [
                "provenance_calls_pending_calls 5.0",
                "provenance_group_commit_size_calls_count 7",
                "provenance_group_commit_size_calls_sum 7.0",
                #"provenance_group_commit_size_calls_bucket{le="1.0"} 7"#,
                "provenance_group_commit_duration_seconds_count 7",
                "provenance_group_commit_failed_submissions_total 1",
            ] {
                #expect(lines.contains(line), "\(line) in\n\(metrics)")
            }

            try await client.send(.post, "/v1/settlements", token: fixture.admin).expect(.ok)
            let settled = try await client.send(.get, "/metrics").expect(.ok).text
            #expect(settled.contains("provenance_calls_pending_calls 0.0\n"))
            #expect(settled.contains("provenance_group_commit_size_calls_count 7\n"), "a batch settlement is no group commit")
        }
    }

    /// A statement shows one line per batch; expanded, the lines list every invoice that paid.
    @Test func statementExpandsBatchLinesIntoInvoices() async throws {
        let fixture = try RegistryFixture()
        let signer = NodeSigner()
        try await fixture.app().test(.router) { client in
            try await fixture.market(client)
            try await fixture.priceAndFund(client, key: signer, callers: ["alice"], deposit: "20")
            for n in 0..<5 {
                try await SignedCall(caller: "alice", inputTokens: 1000, key: "d\(n)", signer: signer)
                    .submit(client, token: fixture.node, deferred: true).expect(.created)
            }
            try await client.send(.post, "/v1/settlements", token: fixture.admin).expect(.ok)
            let plain = try await client.send(.get, "/v1/accounts/ann@example.org/statement", token: fixture.admin).expect(.ok).object()
            let lines = try #require(plain["transfers"] as? [[String: Any]])
            #expect(lines.count == 1 && lines[0]["cause"] as? String == "payout" && lines[0]["batch"] is String)
            #expect(lines[0]["invoices"] == nil)
            let expanded = try await client.send(.get, "/v1/accounts/ann@example.org/statement?invoices=true", token: fixture.admin)
                .expect(.ok).object()
            let line = try #require((expanded["transfers"] as? [[String: Any]])?.first)
            let items = try #require(line["invoices"] as? [[String: Any]])
            #expect(items.compactMap { $0["invoice"] as? Int } == [0, 1, 2, 3, 4])
            let sum = items.compactMap { ($0["amount_raw"] as? String).flatMap { Int128($0) } }.reduce(0, +)
            #expect(String(sum) == line["amount_raw"] as? String)
            // The reservation line lists the calls it reserved.
            let alice = try await client.send(.get, "/v1/accounts/alice/statement?invoices=true", token: fixture.admin).expect(.ok).object()
            // (Each call came alone, so each was its own group with its own reservation line.)
            let reserves = try #require(alice["transfers"] as? [[String: Any]]).filter { $0["cause"] as? String == "reserve" }
            let reserved = reserves.flatMap { ($0["invoices"] as? [[String: Any]]) ?? [] }.compactMap { $0["call"] as? String }
            #expect(reserved.sorted() == ["d0", "d1", "d2", "d3", "d4"])
            try await client.send(.get, "/v1/accounts/alice/statement?invoices=maybe", token: fixture.admin).expectError(.badRequest, "invalid_argument")
        }
    }

    /// Invoices refer to their terms by SHA-256; the registry serves the block, the bundle carries it.
    @Test func termsAreServedAndBundled() async throws {
        let fixture = try RegistryFixture()
        let signer = NodeSigner()
        try await fixture.app().test(.router) { client in
            try await fixture.market(client)
            try await fixture.priceAndFund(client, key: signer, callers: ["alice"], deposit: "5")
            try await SignedCall(caller: "alice", inputTokens: 1000, key: "one", signer: signer).submit(client, token: fixture.node).expect(.created)
            let canonical = try await client.send(.get, "/v1/invoices/0/canonical").expect(.ok)
            let compact = try canonical.object()
            let sha = try #require((compact["traceability"] as? [String: Any])?["terms_sha256"] as? String)
            #expect((compact["traceability"] as? [String: Any])?["lineage"] == nil, "the leaf refers to the lineage, it does not repeat it")
            let terms = try await client.send(.get, "/v1/terms/\(sha)").expect(.ok)
            #expect(SHA256Digest.hex(of: Data(terms.body.readableBytesView)) == sha)
            let shown = try await client.send(.get, "/v1/invoices/0").expect(.ok).object()
            let lineage = try #require(((shown["invoice"] as? [String: Any])?["traceability"] as? [String: Any])?["lineage"] as? [[String: Any]])
            #expect(lineage.first?["model"] as? String == "m")
            let bundle = try await client.send(.get, "/v1/invoices/bundle?account=ann@example.org", token: fixture.admin).expect(.ok).object()
            #expect((bundle["terms"] as? [String: Any])?[sha] != nil)
            try await client.send(.get, "/v1/terms/\(String(repeating: "0", count: 64))").expectError(.notFound, "not_found")
            try await client.send(.get, "/v1/terms/xyz").expectError(.badRequest, "invalid_argument")
        }
    }

    /// The registry prepares calls with the price and plugins it last read; a change made by
    /// another process is caught inside the transaction and the call prepared again.
    @Test func aPriceOrPluginChangedElsewhereIsUsedAtOnce() async throws {
        let fixture = try RegistryFixture()
        let signer = NodeSigner()
        try await fixture.app().test(.router) { client in
            try await fixture.market(client)
            try await fixture.priceAndFund(client, key: signer, callers: ["alice"], deposit: "10")
            let first = try await SignedCall(caller: "alice", inputTokens: 1000, key: "p1", signer: signer).submit(client, token: fixture.node)
                .expect(.created).object()
            #expect(first["fee"] as? String == "1")
            // Another process (its own Store, its own caches) doubles the price and swaps the plugin.
            let elsewhere = try Store.open(at: fixture.store.root)
            try elsewhere.setPrice(Price(inputPer1k: try TokenAmount(parsing: "2"), outputPer1k: .zero, minFee: .zero, split: .standard,
                                         sloMilliseconds: nil, sloPenaltyBps: 0), model: "m")
            let second = try await SignedCall(caller: "alice", inputTokens: 1000, key: "p2", signer: signer).submit(client, token: fixture.node)
                .expect(.created).object()
            #expect(second["fee"] as? String == "2")
            _ = try elsewhere.setPlugin(model: "m", to: PluginSpec(name: "data-volume"), by: nil, resolver: PluginRegistry())
            let third = try await SignedCall(caller: "alice", inputTokens: 1000, key: "p3", signer: signer).submit(client, token: fixture.node)
                .expect(.created).object()
            let invoice = try fixture.store.invoice(try #require(third["invoice"] as? Int)).invoice
            #expect(invoice.levels.first?.plugin == "data-volume" && invoice.computation.fee.description == "2")
            #expect(try fixture.store.rawBalance("alice") == "5000000000000000000")
            #expect(try fixture.store.verify().ok)
        }
    }

    /// Deposits and withdrawals take an Idempotency-Key: a retry moves nothing, another body is 409.
    @Test func idempotentDepositsAndWithdrawals() async throws {
        let fixture = try RegistryFixture()
        try await fixture.app().test(.router) { client in
            let key: HTTPFields = [HTTPField.Name("Idempotency-Key")!: "dep-1"]
            let first = try await client.send(.post, "/v1/accounts/alice/deposits", token: fixture.admin, json: ["amount": "7"], headers: key)
                .expect(.created)
            #expect(first.headers[HTTPField.Name("Idempotency-Replayed")!] == "false")
            let state = try fixture.state()
            let again = try await client.send(.post, "/v1/accounts/alice/deposits", token: fixture.admin, json: ["amount": "7"], headers: key)
                .expect(.ok)
            #expect(again.headers[HTTPField.Name("Idempotency-Replayed")!] == "true")
            #expect(try first.object()["sequence"] as? Int == again.object()["sequence"] as? Int)
            try await client.send(.post, "/v1/accounts/alice/deposits", token: fixture.admin, json: ["amount": "8"], headers: key)
                .expectError(.conflict, "idempotency_conflict")
            try await client.send(.post, "/v1/accounts/alice/withdrawals", token: fixture.admin, json: ["amount": "7"], headers: key)
                .expectError(.conflict, "idempotency_conflict")
            #expect(try fixture.state() == state)
            #expect(try fixture.store.rawBalance("alice") == "7000000000000000000")

            let out: HTTPFields = [HTTPField.Name("Idempotency-Key")!: "wd-1"]
            try await client.send(.post, "/v1/accounts/alice/withdrawals", token: fixture.admin, json: ["amount": "2"], headers: out).expect(.created)
            try await client.send(.post, "/v1/accounts/alice/withdrawals", token: fixture.admin, json: ["amount": "2"], headers: out).expect(.ok)
            #expect(try fixture.store.rawBalance("alice") == "5000000000000000000")
            let before = try fixture.state()
            try await client.send(.post, "/v1/accounts/alice/withdrawals", token: fixture.admin, json: ["amount": "50"])
                .expectError(.init(code: 402), "insufficient_funds")
            try await client.send(.post, "/v1/accounts/alice/withdrawals", token: fixture.caller, json: ["amount": "1"])
                .expectError(.forbidden, "forbidden")
            #expect(try fixture.state() == before)
        }
    }
}
