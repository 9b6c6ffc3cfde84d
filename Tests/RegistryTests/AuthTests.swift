import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import ProvenanceCore
import ProvenanceTestSupport
import RegistryService
import Testing

/// Bearer tokens: 401 without a valid one, 403 for the wrong role or subject, public reads open.
@Suite struct AuthTests {
    /// Every route that needs a token, with a body good enough to reach the authorization check.
    static func protectedRoutes() -> [(HTTPRequest.Method, String, [String: Any]?)] { [
        (.post, "/v1/datasets/text/commits", ["source": "https://example.invalid/x.git"]),
        (.post, "/v1/models/m/versions", ["version": "2", "developer": "Dev <dev@example.org>", "datasets": ["text"]]),
        (.put, "/v1/models/m/plugin", ["plugin": "data-volume"]),
        (.put, "/v1/models/m/price", ["input_per_1k": "1", "output_per_1k": "1"]),
        (.get, "/v1/accounts/alice/balance", nil),
        (.get, "/v1/accounts/alice/statement", nil),
        (.post, "/v1/accounts/alice/deposits", ["amount": "1"]),
        (.post, "/v1/nodes", ["name": "gpu9", "public_key": NodeSigner().publicKey]),
        (.post, "/v1/calls", [:]),
        (.post, "/v1/calls/batch", ["calls": []]),
        (.post, "/v1/settlements", nil),
        (.get, "/v1/verify", nil),
    ] }

    @Test func protectedRoutesNeedAValidToken() async throws {
        let fixture = try RegistryFixture()
        let revoked = try fixture.store.createToken(role: .admin, subject: "old").secret
        _ = try fixture.store.revokeToken(revoked)
        try await fixture.app().test(.router) { client in
            for (method, path, body) in Self.protectedRoutes() {
                for token in [nil, "prov_unknown", revoked, "not-a-token"] as [String?] {
                    let response = try await client.send(method, path, token: token, json: body)
                    try response.expectError(.unauthorized, "unauthorized")
                    #expect(response.headers[.wwwAuthenticate] == "Bearer realm=\"provenance\"")
                }
                let basic = try await client.send(method, path, json: body, headers: [.authorization: "Basic YWRtaW46YWRtaW4="])
                try basic.expectError(.unauthorized, "unauthorized")
            }
            // A broken token is refused even where no token is needed.
            try await client.send(.get, "/v1/datasets", token: revoked).expectError(.unauthorized, "unauthorized")
        }
    }

    @Test func publicReadsNeedNoToken() async throws {
        let fixture = try RegistryFixture()
        let signer = NodeSigner()
        try await fixture.app().test(.router) { client in
            try await fixture.market(client)
            try await fixture.priceAndFund(client, key: signer, callers: ["alice"], deposit: "5")
            try await SignedCall(caller: "alice", key: "k1", signer: signer).submit(client, token: fixture.node).expect(.created)
            for path in ["/healthz", "/metrics", "/v1/datasets", "/v1/datasets/text", "/v1/datasets/text/contributors", "/v1/datasets/text/log",
                         "/v1/models", "/v1/models/m", "/v1/models/m/versions/1", "/v1/models/m/versions/1/trace",
                         "/v1/models/m/versions/1/attribution", "/v1/models/m/plugin", "/v1/models/m/price", "/v1/nodes/gpu1",
                         "/v1/invoices", "/v1/invoices/0", "/v1/invoices/0/canonical", "/v1/invoices/bundle?account=alice",
                         "/v1/ledger/checkpoint", "/v1/ledger/inclusion-proof?index=0", "/v1/ledger/consistency-proof?old_size=0&new_size=1"] {
                try await client.send(.get, path).expect(.ok)
            }
        }
    }

    @Test func rolesMayDoOnlyTheirRoutes() async throws {
        let fixture = try RegistryFixture()
        try await fixture.app().test(.router) { client in
            try await fixture.market(client)
            let before = try fixture.state()
            let refusals: [(String, HTTPRequest.Method, String, [String: Any]?)] = [
                (fixture.caller, .post, "/v1/accounts/alice/deposits", ["amount": "1"]),
                (fixture.developer, .post, "/v1/accounts/dev@example.org/deposits", ["amount": "1"]),
                (fixture.node, .post, "/v1/settlements", nil),
                (fixture.caller, .post, "/v1/datasets/text/commits", ["source": "https://example.invalid/x.git"]),
                (fixture.developer, .post, "/v1/datasets/text/commits", ["source": "https://example.invalid/x.git"]),
                (fixture.contributor, .post, "/v1/models/m/versions", ["version": "2", "developer": "Ann <ann@example.org>", "datasets": ["text"]]),
                (fixture.caller, .put, "/v1/models/m/price", ["input_per_1k": "1", "output_per_1k": "1"]),
                (fixture.node, .put, "/v1/models/m/plugin", ["plugin": "data-volume"]),
                (fixture.caller, .post, "/v1/nodes", ["name": "gpu1", "public_key": NodeSigner().publicKey]),
                (fixture.developer, .post, "/v1/calls", [:]),
            ]
            for (token, method, path, body) in refusals {
                try await client.send(method, path, token: token, json: body).expectError(.forbidden, "forbidden")
            }
            // Only an admin may force a dataset's head.
            try await client.send(.post, "/v1/datasets/text/commits", token: fixture.contributor,
                                  json: ["source": "https://example.invalid/x.git", "force": true]).expectError(.forbidden, "forbidden")
            #expect(try fixture.state() == before)
        }
    }

    @Test func subjectsLimitWhatARoleTouches() async throws {
        let fixture = try RegistryFixture()
        let signer = NodeSigner()
        let otherDeveloper = try fixture.store.createToken(role: .developer, subject: "eve@example.org").secret
        let otherNode = try fixture.store.createToken(role: .node, subject: "gpu2").secret
        try await fixture.app().test(.router) { client in
            try await fixture.market(client)
            try await fixture.priceAndFund(client, key: signer, callers: ["alice", "bob"], deposit: "5")
            let before = try fixture.state()

            // A caller reads only its own account; a node only node:NAME.
            try await client.send(.get, "/v1/accounts/alice/statement", token: fixture.caller).expect(.ok)
            try await client.send(.get, "/v1/accounts/bob/statement", token: fixture.caller).expectError(.forbidden, "forbidden")
            try await client.send(.get, "/v1/accounts/bob/balance", token: fixture.caller).expectError(.forbidden, "forbidden")
            try await client.send(.get, "/v1/accounts/node:gpu1/balance", token: fixture.node).expect(.ok)
            try await client.send(.get, "/v1/accounts/alice/balance", token: fixture.node).expectError(.forbidden, "forbidden")

            // A developer changes only models whose latest version they developed, and only as themselves.
            try await client.send(.put, "/v1/models/m/price", token: otherDeveloper, json: ["input_per_1k": "9", "output_per_1k": "9"])
                .expectError(.forbidden, "forbidden")
            try await client.send(.put, "/v1/models/m/plugin", token: otherDeveloper, json: ["plugin": "data-volume"])
                .expectError(.forbidden, "forbidden")
            try await client.send(.post, "/v1/models/m/versions", token: otherDeveloper, json: [
                "version": "2", "developer": "Eve <eve@example.org>", "datasets": ["text"],
            ]).expectError(.forbidden, "forbidden")
            try await client.send(.post, "/v1/models/n/versions", token: otherDeveloper, json: [
                "version": "1", "developer": RegistryFixture.developerIdentity, "datasets": ["text"],
            ]).expectError(.forbidden, "forbidden")
            try await client.send(.put, "/v1/models/m/plugin", token: fixture.developer, json: ["plugin": "data-volume", "by": "Eve <eve@example.org>"])
                .expectError(.forbidden, "forbidden")

            // A node registers only itself, and submits only the calls it served.
            try await client.send(.post, "/v1/nodes", token: fixture.node, json: ["name": "gpu3", "public_key": NodeSigner().publicKey])
                .expectError(.forbidden, "forbidden")
            try await SignedCall(caller: "alice", key: "k1", signer: signer).submit(client, token: otherNode).expectError(.forbidden, "forbidden")
            #expect(try fixture.state() == before)

            // What they may do, they can.
            try await client.send(.post, "/v1/models/m/versions", token: fixture.developer, json: [
                "version": "2", "developer": RegistryFixture.developerIdentity, "datasets": ["text"], "base": "m@1",
            ]).expect(.created)
            try await client.send(.post, "/v1/models/n/versions", token: otherDeveloper, json: [
                "version": "1", "developer": "Eve <eve@example.org>", "datasets": ["code"],
                "training_logs": [["name": "train.log", "content": "loss 0.1\n"]],
            ]).expect(.created)
            try await client.send(.put, "/v1/models/n/plugin", token: otherDeveloper, json: ["plugin": "data-volume", "options": ["unit": "lines"]])
                .expect(.ok)
            try await client.send(.post, "/v1/nodes", token: otherNode, json: ["name": "gpu2", "public_key": NodeSigner().publicKey])
                .expect(.created)
        }
    }

    /// Only the SHA-256 of a token is stored; revoking takes effect at once.
    @Test func tokensAreStoredHashedAndRevocable() async throws {
        let fixture = try RegistryFixture()
        let issued = try fixture.store.createToken(role: .caller, subject: "alice")
        #expect(issued.secret.hasPrefix("prov_") && issued.secret.count == 48)
        let dump = try TestBackend.sql(store: fixture.store.root, "SELECT id, secret_sha256, role, subject FROM access_tokens")
        #expect(!dump.contains(issued.secret))
        #expect(dump.contains(SHA256Digest.hex(of: Data(issued.secret.utf8))))
        #expect(throws: ProvenanceError.self) { try fixture.store.createToken(role: .node, subject: "Not A Name") }
        #expect(throws: ProvenanceError.self) { try fixture.store.createToken(role: .caller, subject: "escrow") }

        try await fixture.app().test(.router) { client in
            try await client.send(.get, "/v1/verify", token: issued.secret).expect(.ok)
            _ = try fixture.store.revokeToken(issued.token.id)
            try await client.send(.get, "/v1/verify", token: issued.secret).expectError(.unauthorized, "unauthorized")
        }
        #expect(throws: ProvenanceError.self) { try fixture.store.revokeToken(issued.secret) }
    }

    /// The registry remembers a live token for a second: a revocation by this process applies
    /// at once, one by another process (its own Store) within that second.
    @Test func aRevocationElsewhereAppliesWithinTheCacheTime() async throws {
        let fixture = try RegistryFixture()
        let issued = try fixture.store.createToken(role: .caller, subject: "carol")
        #expect(try fixture.store.authenticate(secret: issued.secret)?.subject == "carol")
        let elsewhere = try Store.open(at: fixture.store.root)
        _ = try elsewhere.revokeToken(issued.secret)
        #expect(try elsewhere.authenticate(secret: issued.secret) == nil)
        try await Task.sleep(for: .milliseconds(Int(Store.authenticationCacheSeconds) * 1000 + 100))
        #expect(try fixture.store.authenticate(secret: issued.secret) == nil)
        // In-process revocation forgets at once.
        let second = try fixture.store.createToken(role: .caller, subject: "dave")
        #expect(try fixture.store.authenticate(secret: second.secret) != nil)
        _ = try fixture.store.revokeToken(second.secret)
        #expect(try fixture.store.authenticate(secret: second.secret) == nil)
    }
}
