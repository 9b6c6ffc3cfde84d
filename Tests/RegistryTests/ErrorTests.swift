import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import ProvenanceCore
import ProvenanceTestSupport
import RegistryService
import Testing

/// Every error code, in the one JSON shape, and never a change to the store.
@Suite struct ErrorTests {
    /// A market with a priced model, node gpu1 (its key in `signer`) and alice holding 2 tokens.
    static func withMarket(limit: Int = 4 * 1024 * 1024, allowLocalRemotes: Bool = true,
                           _ body: @Sendable @escaping (RegistryFixture, NodeSigner, any TestClientProtocol) async throws -> Void) async throws {
        let fixture = try RegistryFixture()
        let signer = NodeSigner()
        try await fixture.app().test(.router) { client in
            try await fixture.market(client)
            try await fixture.priceAndFund(client, key: signer, callers: ["alice"], deposit: "2")
        }
        let configuration = RegistryConfiguration(allowLocalRemotes: allowLocalRemotes, maxBodyBytes: limit)
        try await fixture.app(configuration: configuration).test(.router) { client in
            try await body(fixture, signer, client)
        }
    }

    @Test func malformedRequestsAre400() async throws {
        try await Self.withMarket { fixture, signer, client in
            let before = try fixture.state()
            try await client.send(.post, "/v1/accounts/alice/deposits", token: fixture.admin, raw: "{\"amount\": ")
                .expectError(.badRequest, "malformed_request")
            try await client.send(.post, "/v1/accounts/alice/deposits", token: fixture.admin, raw: "")
                .expectError(.badRequest, "malformed_request")
            try await client.send(.post, "/v1/accounts/alice/deposits", token: fixture.admin, json: ["amount": 5])
                .expectError(.badRequest, "malformed_request")
            try await client.send(.post, "/v1/accounts/alice/deposits", token: fixture.admin, json: ["amt": "5"])
                .expectError(.badRequest, "malformed_request")
            let call = try SignedCall(caller: "alice", key: "k1", signer: signer)
            try await client.send(.post, "/v1/calls", token: fixture.node, json: call.body())
                .expectError(.badRequest, "malformed_request")  // no Idempotency-Key
            var negative = call.body()
            negative["record"] = ["caller": "alice", "model": "m", "version": "1", "node": "gpu1", "input_tokens": -1,
                                  "output_tokens": 0, "latency_ms": 1, "idempotency_key": "k1"]
            try await client.send(.post, "/v1/calls", token: fixture.node, json: negative, headers: [HTTPField.Name("Idempotency-Key")!: "k1"])
                .expectError(.badRequest, "malformed_request")
            try await client.send(.get, "/v1/ledger/inclusion-proof").expectError(.badRequest, "malformed_request")
            #expect(try fixture.state() == before)
        }
    }

    @Test func malformedValuesAre400() async throws {
        try await Self.withMarket { fixture, signer, client in
            let before = try fixture.state()
            try await client.send(.get, "/v1/datasets/Bad%20Name").expectError(.badRequest, "invalid_argument")
            try await client.send(.get, "/v1/models/m/versions/1..2").expectError(.badRequest, "invalid_argument")
            try await client.send(.get, "/v1/datasets/text/log?rev=HEAD@%7B1%7D").expectError(.badRequest, "invalid_argument")
            try await client.send(.get, "/v1/invoices/-1").expectError(.badRequest, "invalid_argument")
            try await client.send(.get, "/v1/invoices?limit=0").expectError(.badRequest, "invalid_argument")
            try await client.send(.get, "/v1/ledger/inclusion-proof?index=99999999999999999999").expectError(.badRequest, "invalid_argument")
            try await client.send(.get, "/v1/accounts/Alice/balance", token: fixture.admin).expectError(.badRequest, "invalid_argument")
            try await client.send(.post, "/v1/accounts/alice/deposits", token: fixture.admin, json: ["amount": "1e3"])
                .expectError(.badRequest, "invalid_argument")
            try await client.send(.post, "/v1/accounts/alice/deposits", token: fixture.admin, json: ["amount": " 5"])
                .expectError(.badRequest, "invalid_argument")
            try await client.send(.post, "/v1/models/m/versions", token: fixture.developer, json: [
                "version": "2", "developer": "not an identity", "datasets": ["text"],
            ]).expectError(.badRequest, "invalid_argument")
            try await client.send(.put, "/v1/models/m/price", token: fixture.developer, json: [
                "input_per_1k": "1", "output_per_1k": "1", "split": ["developer": 2000, "data": 5000, "node": 2000, "platform": 1000, "dao": 0],
            ]).expectError(.badRequest, "invalid_argument")
            var call = try SignedCall(caller: "alice", key: "k1", signer: signer).body()
            call["signature"] = ["kind": "single", "signature": "not base64!"]
            try await client.send(.post, "/v1/calls", token: fixture.node, json: call, headers: [HTTPField.Name("Idempotency-Key")!: "k1"])
                .expectError(.badRequest, "invalid_argument")
            #expect(try fixture.state() == before)
        }
    }

    @Test func insufficientFundsIs402() async throws {
        try await Self.withMarket { fixture, signer, client in
            try await SignedCall(caller: "alice", inputTokens: 2000, key: "k1", signer: signer).submit(client, token: fixture.node).expect(.created)
            let before = try fixture.state()
            try await SignedCall(caller: "alice", inputTokens: 1000, key: "k2", signer: signer).submit(client, token: fixture.node)
                .expectError(.init(code: 402), "insufficient_funds")
            try await SignedCall(caller: "alice", inputTokens: 1000, key: "k3", signer: signer).submit(client, token: fixture.node, deferred: true)
                .expectError(.init(code: 402), "insufficient_funds")
            try await client.send(.post, "/v1/nodes", token: fixture.admin, json: [
                "name": "gpu2", "public_key": NodeSigner().publicKey, "stake": "1",
            ]).expectError(.init(code: 402), "insufficient_funds")
            #expect(try fixture.state() == before)
        }
    }

    @Test func unknownThingsAre404AndUnknownMethods405() async throws {
        try await Self.withMarket { fixture, _, client in
            try await client.send(.get, "/v1/nope").expectError(.notFound, "not_found")
            try await client.send(.get, "/v1/datasets/nope").expectError(.notFound, "not_found")
            try await client.send(.get, "/v1/models/m/versions/9").expectError(.notFound, "not_found")
            try await client.send(.get, "/v1/invoices/7").expectError(.notFound, "not_found")
            try await client.send(.get, "/v1/nodes/gpu9").expectError(.notFound, "not_found")
            try await client.send(.get, "/v1/accounts/nobody/balance", token: fixture.admin).expectError(.notFound, "not_found")
            let wrongMethod = try await client.send(.delete, "/v1/models/m/price", token: fixture.admin)
            try wrongMethod.expectError(.methodNotAllowed, "method_not_allowed")
            #expect(wrongMethod.headers[.allow] == "GET, PUT")
        }
    }

    @Test func existingThingsAre409() async throws {
        try await Self.withMarket { fixture, signer, client in
            let before = try fixture.state()
            try await client.send(.post, "/v1/models/m/versions", token: fixture.developer, json: [
                "version": "1", "developer": RegistryFixture.developerIdentity, "datasets": ["text"],
            ]).expectError(.conflict, "conflict")
            try await client.send(.post, "/v1/nodes", token: fixture.node, json: ["name": "gpu1", "public_key": signer.publicKey])
                .expectError(.conflict, "conflict")
            try await client.send(.put, "/v1/models/m/plugin", token: fixture.developer, json: ["plugin": "equal-share"])
                .expectError(.conflict, "conflict")
            #expect(try fixture.state() == before)
        }
    }

    @Test func bodiesOverTheLimitAre413AndOtherMediaTypes415() async throws {
        try await Self.withMarket(limit: 2048) { fixture, _, client in
            let before = try fixture.state()
            let big = String(repeating: "x", count: 4096)
            try await client.send(.post, "/v1/models/m/versions", token: fixture.developer, json: [
                "version": "2", "developer": RegistryFixture.developerIdentity, "datasets": ["text"],
                "training_logs": [["name": "log.txt", "content": big]],
            ]).expectError(.contentTooLarge, "payload_too_large")
            try await client.send(.post, "/v1/accounts/alice/deposits", token: fixture.admin, raw: #"{"amount":"1"}"#,
                                  headers: [.contentType: "text/plain"])
                .expectError(.unsupportedMediaType, "unsupported_media_type")
            #expect(try fixture.state() == before)
        }
    }

    @Test func wellFormedInputTheDomainRefusesIs422() async throws {
        try await Self.withMarket(allowLocalRemotes: false) { fixture, signer, client in
            let before = try fixture.state()
            // Signed by another key than the node's registered one.
            try await SignedCall(caller: "alice", key: "k1", signer: NodeSigner()).submit(client, token: fixture.node)
                .expectError(.unprocessableContent, "refused")
            // The header and the signed record name different keys.
            let call = try SignedCall(caller: "alice", key: "k1", signer: signer)
            try await client.send(.post, "/v1/calls", token: fixture.node, json: call.body(), headers: [HTTPField.Name("Idempotency-Key")!: "k2"])
                .expectError(.unprocessableContent, "refused")
            try await client.send(.post, "/v1/accounts/alice/deposits", token: fixture.admin, json: ["amount": "0"])
                .expectError(.unprocessableContent, "refused")
            try await client.send(.post, "/v1/accounts/escrow/deposits", token: fixture.admin, json: ["amount": "1"])
                .expectError(.unprocessableContent, "refused")
            try await client.send(.put, "/v1/models/m/price", token: fixture.developer, json: [
                "input_per_1k": "1", "output_per_1k": "1", "split": ["developer": 2000, "data": 5000, "node": 2000, "platform": 999],
            ]).expectError(.unprocessableContent, "refused")
            // The service cannot be made to read its own disk.
            for source in ["file://\(fixture.directory.url.path)", fixture.directory.url.path, "./x", "ftp://example.org/x.git"] {
                try await client.send(.post, "/v1/datasets/other/commits", token: fixture.contributor, json: ["source": source])
                    .expectError(.unprocessableContent, "refused")
            }
            try await client.send(.get, "/v1/ledger/consistency-proof?old_size=5&new_size=2").expectError(.unprocessableContent, "refused")
            #expect(try fixture.state() == before)
        }
    }

    /// Hostile input of every kind gets a 4xx in the error shape, never a 5xx.
    @Test func hostileInputNeverGetsA5xx() async throws {
        try await Self.withMarket { fixture, signer, client in
            let before = try fixture.state()
            let paths = [
                "/v1/datasets/%ff", "/v1/datasets/%", "/v1/datasets/text/contributors?rev=%00", "/v1/datasets/text/log?rev=:/x",
                "/v1/datasets/text/log?limit=-5", "/v1/models/m/versions/%E2%80%A8", "/v1/models/m/versions/1/attribution?plugin=../../bin/sh",
                "/v1/models/m/versions/1/attribution?plugin=nope", "/v1/invoices?offset=99999999999", "/v1/invoices/bundle?account=alice",
                "/v1/ledger/inclusion-proof?index=0&size=99", "/v1/ledger/consistency-proof?old_size=0",
                "/v1/invoices/9223372036854775807/canonical", "/v1/nodes/" + String(repeating: "a", count: 5000),
            ]
            for path in paths {
                let response = try await client.send(.get, path, token: fixture.admin)
                #expect(response.status.code < 500, "\(path): \(response.text)")
                if response.status.code >= 400 { _ = try response.errorCode() }
            }
            let bodies: [Any] = [
                ["source": String(repeating: "\u{0}", count: 10)], ["source": "https://"], ["source": "ssh://-oProxyCommand=x/y"],
                ["source": "https://example.invalid/x.git", "rev": "-x"], [1, 2, 3], "text", NSNull(),
            ]
            for body in bodies {
                let data = try JSONSerialization.data(withJSONObject: body, options: [.fragmentsAllowed])
                let response = try await client.send(.post, "/v1/datasets/z/commits", token: fixture.contributor,
                                                      raw: String(decoding: data, as: UTF8.self))
                #expect(response.status.code < 500 && response.status.code >= 400, "\(body): \(response.text)")
            }
            // A price so high that a big call's fee overflows 128 bits: refused, not a crash.
            let price = try await client.send(.put, "/v1/models/m/price", token: fixture.developer, json: [
                "input_per_1k": "99999999999999999999.999999999999999999", "output_per_1k": "0", "slo_ms": 9223372036854775807 as Int64,
            ])
            #expect(price.status == .ok, "\(price.text)")
            let overflow = try await SignedCall(caller: "alice", inputTokens: UInt64.max, key: "k9", signer: signer).submit(client, token: fixture.node)
            try overflow.expectError(.unprocessableContent, "refused")
            #expect(try fixture.state() != before)  // only the price changed
        }
    }
}

extension RegistryFixture {
    /// Everything a request could change, to show that a refused one changed nothing: the
    /// ledger (balances, transfers, invoices, checkpoints, pending calls), prices, nodes,
    /// datasets and models.
    func state() throws -> String {
        let ledger = try store.ledger.readLedger { ledger in
            [
                "balances \(try ledger.balances().sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value.rawString)" })",
                "transfers \(try ledger.transfers(account: nil).count) \(try ledger.lastTransfer().hash)",
                "leaves \(try ledger.leafHashes().count) checkpoints \(try ledger.checkpoints().count) pending \(try ledger.pendingCalls().count)",
                "price \(try ledger.price(model: "m").map { [$0.inputPer1k.rawString, $0.outputPer1k.rawString, $0.minFee.rawString, $0.split.description, "\($0.sloMilliseconds ?? 0)", "\($0.sloPenaltyBps)"] } ?? [])",
                "nodes \(try ["gpu1", "gpu2", "gpu3"].map { try ledger.node(named: $0).map { "\($0.name) \($0.publicKey) \($0.stake.rawString)" } ?? "-" })",
            ]
        }
        let datasets = try store.datasetSummaries().map { "\($0.name)@\($0.head ?? "-")" }
        let models = try store.modelSummaries().map { "\($0.model):\($0.versions) \($0.plugin)" }
        return (ledger + ["datasets \(datasets)", "models \(models)"]).joined(separator: "\n")
    }
}
