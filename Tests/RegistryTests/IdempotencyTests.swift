import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import ProvenanceCore
import ProvenanceTestSupport
import RegistryService
import Testing

/// `Idempotency-Key`: a retry never charges twice; a key names one call record.
@Suite struct IdempotencyTests {
    @Test func sameKeyAndRecordReturnTheSameInvoice() async throws {
        let fixture = try RegistryFixture()
        let signer = NodeSigner()
        try await fixture.app().test(.router) { client in
            try await fixture.market(client)
            try await fixture.priceAndFund(client, key: signer, callers: ["alice"], deposit: "5")
            let call = try SignedCall(caller: "alice", inputTokens: 2000, key: "retry-me", signer: signer)
            let first = try await call.submit(client, token: fixture.node).expect(.created)
            #expect(first.headers[HTTPField.Name("Idempotency-Replayed")!] == "false")
            // Each of the answer's fields once (they are appended, not set): its type, its length.
            #expect(first.headers[values: HTTPField.Name("Idempotency-Replayed")!].count == 1)
            #expect(first.headers[values: .contentType] == ["application/json"])
            #expect(first.headers[values: .contentLength] == [String(first.body.readableBytes)])
            let balance = try fixture.store.rawBalance("alice")
            let state = try fixture.state()
            for _ in 0..<3 {
                let again = try await call.submit(client, token: fixture.node).expect(.ok)
                #expect(again.headers[HTTPField.Name("Idempotency-Replayed")!] == "true")
                let (a, b) = (try first.object(), try again.object())
                #expect(a["invoice"] as? Int == 0 && b["invoice"] as? Int == 0)
                #expect(a["record"] as? String == b["record"] as? String && a["fee"] as? String == b["fee"] as? String)
                #expect(b["replayed"] as? Bool == true)
            }
            #expect(try fixture.store.rawBalance("alice") == balance)
            #expect(try fixture.state() == state)
        }
    }

    @Test func sameKeyWithAnotherRecordIs409() async throws {
        let fixture = try RegistryFixture()
        let signer = NodeSigner()
        try await fixture.app().test(.router) { client in
            try await fixture.market(client)
            try await fixture.priceAndFund(client, key: signer, callers: ["alice"], deposit: "5")
            try await SignedCall(caller: "alice", inputTokens: 1000, key: "k", signer: signer).submit(client, token: fixture.node).expect(.created)
            let state = try fixture.state()
            for deferred in [false, true] {
                try await SignedCall(caller: "alice", inputTokens: 3000, key: "k", signer: signer).submit(client, token: fixture.node, deferred: deferred)
                    .expectError(.conflict, "idempotency_conflict")
            }
            #expect(try fixture.state() == state)
        }
    }

    @Test func aDeferredCallReplaysAsPendingThenAsItsInvoice() async throws {
        let fixture = try RegistryFixture()
        let signer = NodeSigner()
        try await fixture.app().test(.router) { client in
            try await fixture.market(client)
            try await fixture.priceAndFund(client, key: signer, callers: ["alice"], deposit: "5")
            let call = try SignedCall(caller: "alice", inputTokens: 1000, key: "later", signer: signer)
            let reserved = try await call.submit(client, token: fixture.node, deferred: true).expect(.created).object()
            #expect(reserved["status"] as? String == "pending" && reserved["invoice"] == nil)
            let replay = try await call.submit(client, token: fixture.node, deferred: true).expect(.ok).object()
            #expect(replay["status"] as? String == "pending" && replay["replayed"] as? Bool == true)
            #expect(try fixture.store.rawBalance("alice") == "4000000000000000000")
            try await client.send(.post, "/v1/settlements", token: fixture.admin).expect(.ok)
            let settled = try await call.submit(client, token: fixture.node).expect(.ok).object()
            #expect(settled["status"] as? String == "settled" && settled["invoice"] as? Int == 0)
            #expect(try fixture.store.rawBalance("alice") == "4000000000000000000")
            #expect(try fixture.store.verify().ok)
        }
    }
}
