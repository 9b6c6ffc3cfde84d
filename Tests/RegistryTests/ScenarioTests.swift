import Crypto
import Foundation
import Hummingbird
import HummingbirdTesting
import ProvenanceCore
import ProvenanceTestSupport
import RegistryService
import Testing

/// The whole market over HTTP, as many clients use it at once.
@Suite struct ScenarioTests {
    static let token = "000000000000000000"

    /// Datasets from local git remotes, a model, a price, deposits, then 1,000 signed calls from
    /// 8 concurrent clients (half real-time, half deferred; every 7th sent twice at once with
    /// the same key), one settlement, and exact balances with a passing verify.
    @Test func aThousandCallsFromEightClientsSettleExactly() async throws {
        let fixture = try RegistryFixture()
        let key = NodeSigner()
        let clients = 8
        let callsPerClient = 125
        let callers = (0..<clients).map { "caller\($0)@example.org" }
        let metrics = RegistryMetrics()
        try await fixture.app(metrics: metrics).test(.router) { client in
            try await fixture.market(client)
            try await fixture.priceAndFund(client, key: key, callers: callers, deposit: "250")

            // Call i costs 1 + i % 3 tokens (1,000 input tokens per token at 1 per 1k).
            let (settled, pending) = try await withThrowingTaskGroup(of: (Int, Int).self) { group in
                for (c, caller) in callers.enumerated() {
                    group.addTask {
                        var settled = 0, pending = 0
                        for i in 0..<callsPerClient {
                            let call = try SignedCall(caller: caller, inputTokens: UInt64(1000 * (1 + i % 3)), key: "c\(c)-\(i)", signer: key)
                            let deferred = i % 2 == 1
                            if i % 7 == 0 {
                                // A retry racing the original: one settles, the other replays the same outcome.
                                async let first = call.submit(client, token: fixture.node, deferred: deferred)
                                async let second = call.submit(client, token: fixture.node, deferred: deferred)
                                let answers = try await [first, second]
                                #expect(Set(answers.map(\.status.code)) == [200, 201], "\(answers.map(\.text))")
                                let outcomes = try answers.map { try $0.object() }
                                #expect(outcomes[0]["invoice"] as? Int == outcomes[1]["invoice"] as? Int)
                                #expect(outcomes[0]["record"] as? String == outcomes[1]["record"] as? String)
                            } else {
                                try await call.submit(client, token: fixture.node, deferred: deferred).expect(.created)
                            }
                            if deferred { pending += 1 } else { settled += 1 }
                        }
                        return (settled, pending)
                    }
                }
                return try await group.reduce((0, 0)) { ($0.0 + $1.0, $0.1 + $1.1) }
            }
            #expect(settled + pending == clients * callsPerClient)

            // A late retry of a real-time call returns its invoice; of a deferred one, its reservation.
            let late = try await SignedCall(caller: callers[0], inputTokens: 1000, key: "c0-0", signer: key).submit(client, token: fixture.node)
            let lateOutcome = try late.object()
            #expect(late.status == .ok && lateOutcome["invoice"] as? Int != nil)

            let settlement = try await client.send(.post, "/v1/settlements", token: fixture.admin).expect(.ok).object()
            #expect(settlement["settled"] as? Int == pending)
            #expect(settlement["tree_size"] as? Int == clients * callsPerClient)
            let again = try await client.send(.post, "/v1/settlements", token: fixture.admin).expect(.ok).object()
            #expect(again["settled"] as? Int == 0)

            let verify = try await client.send(.get, "/v1/verify", token: fixture.caller).expect(.ok).object()
            #expect(verify["ok"] as? Bool == true, "\(verify)")
            #expect(verify["invoices"] as? Int == 1000)
            #expect(verify["pending_calls"] as? Int == 0)

            // Each client paid 42×1 + 42×2 + 41×3 = 249 of its 250 tokens; the 1,992 in fees split
            // 20% developer, 50% data (a quarter to each of four contributors), 20% node, 10% platform.
            for caller in callers {
                let balance = try await client.send(.get, "/v1/accounts/\(caller)/balance", token: fixture.admin).expect(.ok).object()
                #expect(balance["balance_raw"] as? String == "1" + Self.token)
            }
            let expected = [
                "dev@example.org": "398400000000000000000", "ann@example.org": "249" + Self.token, "bo@example.org": "249" + Self.token,
                "cy@example.org": "249" + Self.token, "di@example.org": "249" + Self.token, "node:gpu1": "398400000000000000000",
                "platform": "199200000000000000000", "escrow": "0", "clearing": "0", "external": "-2000" + Self.token,
            ]
            for (account, raw) in expected { #expect(try fixture.store.rawBalance(account) == raw, "\(account)") }

            // Every invoice is in the signed ledger, and the proofs check out.
            let checkpoint = try await client.send(.get, "/v1/ledger/checkpoint").expect(.ok).object()
            #expect(checkpoint["size"] as? Int == 1000)
            let proof = try await client.send(.get, "/v1/ledger/inclusion-proof?index=999").expect(.ok).object()
            #expect(proof["tree_size"] as? Int == 1000)
            let list = try await client.send(.get, "/v1/invoices?account=caller3@example.org&limit=1000").expect(.ok).object()
            #expect(list["total"] as? Int == callsPerClient)

            let exposition = try await client.send(.get, "/metrics").expect(.ok).text
            #expect(exposition.contains("provenance_calls_settled_total 1000"))
            #expect(exposition.contains("provenance_ledger_size_invoices 1000"))
            #expect(exposition.contains(#"provenance_http_requests_total{method="POST",route="/v1/calls",status="201"}"#))
        }
    }

    /// Calls signed as one batch (one Ed25519 signature) through `POST /v1/calls/batch`.
    @Test func aBatchSignedByOneSignatureSettles() async throws {
        let fixture = try RegistryFixture()
        let key = NodeSigner()
        try await fixture.app().test(.router) { client in
            try await fixture.market(client)
            try await fixture.priceAndFund(client, key: key, callers: ["alice"], deposit: "10")
            let records = (0..<5).map {
                CallRecord(caller: "alice", model: "m", version: "1", node: "gpu1", router: nil, inputTokens: 1000, outputTokens: 0,
                           latencyMilliseconds: 10, outputSHA256: nil, idempotencyKey: "b\($0)")
            }
            let signatures = try CallSignature.signBatch(records, with: key.key)
            let calls = zip(records, signatures).map { SignedCall(record: $0, signature: $1).body() }
            let answer = try await client.send(.post, "/v1/calls/batch", token: fixture.node, json: ["calls": calls, "deferred": true])
                .expect(.ok).object()
            let outcomes = try #require(answer["outcomes"] as? [[String: Any]])
            #expect(outcomes.count == 5 && outcomes.allSatisfy { $0["status"] as? String == "pending" })
            try await client.send(.post, "/v1/settlements", token: fixture.admin).expect(.ok)
            #expect(try fixture.store.rawBalance("alice") == "5" + Self.token)
            #expect(try fixture.store.verify().ok)
        }
    }

    /// `--settle-every`: pending calls settle without anyone asking.
    @Test func scheduledSettlementSettlesPendingCalls() async throws {
        let fixture = try RegistryFixture(configuration: RegistryConfiguration(port: 0, allowLocalRemotes: true, settleEvery: .milliseconds(200)))
        let key = NodeSigner()
        try await fixture.app().test(.live) { client in
            try await fixture.market(client)
            try await fixture.priceAndFund(client, key: key, callers: ["alice"], deposit: "10")
            try await SignedCall(caller: "alice", key: "s1", signer: key).submit(client, token: fixture.node, deferred: true).expect(.created)
            var settled = false
            for _ in 0..<50 where !settled {
                try await Task.sleep(for: .milliseconds(100))
                settled = try fixture.store.ledger.readLedger { try $0.frontier().size } == 1
            }
            #expect(settled)
            let invoice = try await client.send(.get, "/v1/invoices/0").expect(.ok).object()
            let settlement = try #require((invoice["invoice"] as? [String: Any])?["settlement"] as? [String: Any])
            #expect(settlement["mode"] as? String == "batch")
        }
    }
}

extension SignedCall {
    init(record: CallRecord, signature: CallSignature) {
        self.record = record
        self.signature = signature
    }
}
