import Foundation
import Hummingbird
import HummingbirdTesting
import ProvenanceCore
import ProvenanceTestSupport
@testable import RegistryService
import Testing

/// The explorer's pages and the contributor route, in process (no browser): escaping, errors,
/// and the contributor report against the invoices it sums.
@Suite struct ExplorerPageTests {
    /// Text a contributor controls (commit messages, names) is escaped on every page; it never
    /// becomes markup.
    @Test func valuesFromTheStoreAreEscaped() async throws {
        let fixture = try RegistryFixture()
        let repo = fixture.directory.path("remotes/evil")
        try FileManager.default.createDirectory(at: repo, withIntermediateDirectories: true)
        try git(["init", "-q"], in: repo)
        try fixture.directory.write("remotes/evil/a.txt", "a\n")
        try gitCommit(repo, author: "Eve O'Hara <eve@example.org>", message: "<script>alert(\"x\")</script> & <b>bold</b>", date: 1_700_000_000)
        try await fixture.app().test(.router) { client in
            try await client.send(.post, "/v1/datasets/evil/commits", token: fixture.contributor, json: ["source": "file://\(repo.path)"])
                .expect(.created)
            let page = try await client.send(.get, "/datasets/evil").expect(.ok)
            #expect(page.headers[.contentType] == "text/html; charset=utf-8")
            #expect(page.text.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;"))
            #expect(page.text.contains("Eve O&#39;Hara"))
            #expect(!page.text.contains("<script>alert") && !page.text.contains("<b>bold"))
            let people = try await client.send(.get, "/contributors").expect(.ok)
            #expect(people.text.contains("Eve O&#39;Hara &lt;eve@example.org&gt;"))
        }
    }

    @Test func unknownThingsAreHTMLErrorPages() async throws {
        let fixture = try RegistryFixture()
        try await fixture.app().test(.router) { client in
            for (path, status) in [("/datasets/nope", 404), ("/models/nope", 404), ("/models/nope/versions/1", 404),
                                   ("/invoices/0", 404), ("/contributors/nobody@example.org", 404), ("/datasets/Bad%20Name", 400),
                                   ("/invoices?page=0", 400)] {
                let response = try await client.send(.get, path)
                #expect(Int(response.status.code) == status, "\(path): \(response.status.code)")
                #expect(response.headers[.contentType] == "text/html; charset=utf-8", "\(path)")
                #expect(response.text.contains("<h1>"), "\(path)")
            }
            // Pages of an empty store render, and say there is nothing yet.
            for path in ["/", "/datasets", "/models", "/contributors", "/invoices", "/ledger"] {
                let response = try await client.send(.get, path).expect(.ok)
                #expect(response.text.hasPrefix("<!doctype html>"), "\(path)")
            }
            let ledger = try await client.send(.get, "/ledger").expect(.ok)
            #expect(ledger.text.contains("No checkpoint yet"))
            let style = try await client.send(.get, ExplorerAssets.stylesheetPath).expect(.ok)
            #expect(style.headers[.contentType] == "text/css; charset=utf-8")
            let script = try await client.send(.get, ExplorerAssets.verifierPath).expect(.ok)
            #expect(script.headers[.contentType] == "text/javascript; charset=utf-8" && script.text.contains("crypto.subtle.verify"))
            // The invoice lookup form redirects to the invoice's stable address.
            let jump = try await client.send(.get, "/invoices?index=7")
            #expect(jump.status == .seeOther && jump.headers[.location] == "/invoices/7")
        }
    }

    /// `GET /v1/contributors/{account}`: datasets, model versions and the sum of every payout to
    /// the account, equal to its balance (a contributor only receives).
    @Test func theContributorRouteSumsWhatTheInvoicesPaid() async throws {
        let fixture = try RegistryFixture()
        let key = NodeSigner()
        try await fixture.app().test(.router) { client in
            try await fixture.market(client)
            try await fixture.priceAndFund(client, key: key, callers: ["alice"], deposit: "100")
            for (index, tokens) in [1000, 3000, 7].enumerated() {
                try await SignedCall(caller: "alice", inputTokens: UInt64(tokens), key: "k\(index)", signer: key)
                    .submit(client, token: fixture.node).expect(.created)
            }
            let report = try await client.send(.get, "/v1/contributors/ann@example.org").expect(.ok).object()
            #expect(report["account"] as? String == "ann@example.org")
            #expect(report["names"] as? [String] == ["Ann <ann@example.org>"])
            let datasets = try #require(report["datasets"] as? [[String: Any]])
            #expect(datasets.map { $0["dataset"] as? String } == ["text"])
            let models = try #require(report["models"] as? [[String: Any]])
            #expect(models.count == 1 && models[0]["model"] as? String == "m" && models[0]["version"] as? String == "1")
            let invoices = try #require(report["invoices"] as? [[String: Any]])
            #expect(invoices.count == 3)
            var sum: Int128 = 0
            for earning in invoices {
                let index = try #require(earning["index"] as? Int)
                let invoice = try await client.send(.get, "/v1/invoices/\(index)").expect(.ok).object()
                let payouts = try #require(((invoice["invoice"] as? [String: Any])?["settlement"] as? [String: Any])?["payouts"] as? [[String: Any]])
                let paid = payouts.filter { $0["account"] as? String == "ann@example.org" }.compactMap { ($0["amount"] as? String).flatMap { Int128($0) } }.reduce(0, +)
                #expect(earning["amount_raw"] as? String == String(paid))
                #expect(earning["roles"] as? [String] == ["data"])
                sum += paid
            }
            #expect(report["total_raw"] as? String == String(sum))
            #expect(report["total_raw"] as? String == (try fixture.store.rawBalance("ann@example.org")))
            #expect(report["total"] as? String == TokenAmount(raw: sum).description)

            // The page shows the same total, and the developer (paid, but no dataset) has a page too.
            let page = try await client.send(.get, "/contributors/ann@example.org").expect(.ok)
            #expect(page.text.contains("<data class=\"amount\" value=\"\(sum)\">\(TokenAmount(raw: sum).description)</data>"))
            let developer = try await client.send(.get, "/v1/contributors/dev@example.org").expect(.ok).object()
            #expect((developer["datasets"] as? [Any])?.isEmpty == true && (developer["invoices"] as? [Any])?.count == 3)

            try await client.send(.get, "/v1/contributors/nobody@example.org").expectError(.notFound, "not_found")
            try await client.send(.get, "/v1/contributors/Not%20An%20Account").expectError(.badRequest, "invalid_argument")
        }
    }
}
