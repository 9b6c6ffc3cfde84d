import AttributionPlugins
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import ProvenanceCore
import ProvenanceTestSupport
import RegistryService
import Testing

/// `output_text` on `POST /v1/calls`: a model attributed per call (span-match) pays by what
/// the output reproduced, and an output that is not the signed one is refused with nothing written.
@Suite struct SpanMatchHTTPTests {
    @Test func outputTextDecidesThePayoutAndAWrongOneIsRefused() async throws {
        let fixture = try RegistryFixture()
        let signer = NodeSigner()
        try await fixture.app().test(.router) { client in
            try await fixture.market(client)
            try await fixture.priceAndFund(client, key: signer, callers: ["carol"], deposit: "10")
            _ = try fixture.store.setPlugin(model: "m", to: PluginSpec(name: "span-match", options: ["min_bytes": "1"]), by: nil,
                                            resolver: PluginRegistry())
            let output = "a\nb"  // "a\n" is Ann's whole file, "b" the start of Bo's
            func call(_ key: String, text: String) throws -> (SignedCall, [String: Any]) {
                var call = try SignedCall(caller: "carol", key: key, signer: signer)
                call.record.outputSHA256 = SHA256Digest.hex(of: Data(output.utf8))
                call.signature = try CallSignature.sign(call.record, with: signer.key)
                var body = call.body()
                var record = body["record"] as! [String: Any]
                record["output_sha256"] = call.record.outputSHA256
                body["record"] = record
                body["output_text"] = text
                return (call, body)
            }
            let before = try fixture.store.balance(of: "carol")
            let (wrong, wrongBody) = try call("k-wrong", text: "not what the node signed")
            let refused = try await client.send(.post, "/v1/calls", token: fixture.node, json: wrongBody,
                                                headers: [HTTPField.Name("Idempotency-Key")!: wrong.record.idempotencyKey])
            #expect(refused.status == .unprocessableContent)
            #expect(String(buffer: refused.body).contains("output_sha256"))
            #expect(try fixture.store.invoices(account: nil, model: nil).isEmpty)
            #expect(try fixture.store.balance(of: "carol") == before)

            // An output over 1 MiB is refused before anything else (400), and writes nothing either.
            let (_, hugeBody) = try call("k-huge", text: String(repeating: "x", count: (1 << 20) + 1))
            let huge = try await client.send(.post, "/v1/calls", token: fixture.node, json: hugeBody,
                                             headers: [HTTPField.Name("Idempotency-Key")!: "k-huge"])
            #expect(huge.status == .badRequest)
            #expect(String(buffer: huge.body).contains("at most 1048576 bytes"))
            #expect(try fixture.store.invoices(account: nil, model: nil).isEmpty)

            let (right, rightBody) = try call("k-right", text: output)
            let settled = try await client.send(.post, "/v1/calls", token: fixture.node, json: rightBody,
                                                headers: [HTTPField.Name("Idempotency-Key")!: right.record.idempotencyKey])
            #expect(settled.status == .created)
            let invoice = try #require(try fixture.store.invoices(account: nil, model: nil).first?.invoice)
            let attribution = try #require(invoice.callAttribution.first)
            #expect(attribution.basis == .spans)
            #expect(attribution.spans.map { [$0.contributor, $0.path, $0.text] } == [["ann@example.org", "a.txt", "a\n"], ["bo@example.org", "b.txt", "b"]])
            // Ann earned 2 bytes of 3, Bo 1; Cy and Di (in the code dataset) were not reproduced.
            #expect(attribution.weights.map(\.contributor) == ["ann@example.org", "bo@example.org"])
            #expect(attribution.weights.map(\.ppb) == [666_666_667, 333_333_333])
            #expect(Set(invoice.computation.payouts.filter { $0.role == .data }.map(\.account)) == ["ann@example.org", "bo@example.org"])
            // The explorer's invoice page lists the spans, linked to their contributors.
            let page = try await client.send(.get, "/invoices/0").expect(.ok)
            #expect(page.text.contains("<h3>This call's attribution at <a href=\"/models/m/versions/1\">m@1</a></h3>"))
            #expect(page.text.contains("<code class=\"span-text\">b</code>"))
            #expect(page.text.contains("b.txt lines 1"))
            let report = try fixture.store.verify()
            #expect(report.ok, "\(report.failure ?? "")")
        }
    }
}
