import Foundation
import Hummingbird
import ProvenanceCore

extension RegistryAPI {
    static let defaultInvoicePage = 100
    static let maxInvoicePage = 1000

    func ledgerEndpoints() -> [Endpoint] {
        [
            Endpoint(.get, "/v1/invoices") { request, _ in
                let account = try request.query("account", pattern: Pattern.account, hint: "use 1-128 characters a-z 0-9 @ . _ + : -")
                let model = try request.query("model", pattern: Pattern.name, hint: "use a model name")
                let offset = try request.integerQuery("offset") ?? 0
                let limit = try request.integerQuery("limit", in: 1...Self.maxInvoicePage) ?? Self.defaultInvoicePage
                let (page, total) = try await Blocking.run { [store] in
                    let entries = try store.invoices(account: account, model: model)
                    return (try entries.dropFirst(offset).prefix(limit).map(InvoicePayload.init), entries.count)
                }
                struct Answer: Encodable { var total: Int; var offset: Int; var invoices: [InvoicePayload] }
                return JSONResponse.make(Answer(total: total, offset: offset, invoices: page))
            },
            Endpoint(.get, "/v1/invoices/bundle") { request, _ in
                guard let account = try request.query("account", pattern: Pattern.account, hint: "use 1-128 characters a-z 0-9 @ . _ + : -") else {
                    throw RegistryError.malformed("the account query parameter is required")
                }
                let from = try request.integerQuery("from", in: Int(Int64.min)...Int(Int64.max)).map(Int64.init)
                let to = try request.integerQuery("to", in: Int(Int64.min)...Int(Int64.max)).map(Int64.init)
                let bundle = try await Blocking.run { [store] in try BundlePayload(store.bundle(account: account, from: from, to: to)) }
                return JSONResponse.make(bundle)
            },
            Endpoint(.get, "/v1/invoices/{index}") { _, context in
                let index = try Self.invoiceIndex(context)
                let payload = try await Blocking.run { [store] in try InvoicePayload(store.invoice(index)) }
                return JSONResponse.make(payload)
            },
            Endpoint(.get, "/v1/invoices/{index}/canonical") { _, context in
                let index = try Self.invoiceIndex(context)
                let entry = try await Blocking.run { [store] in try store.invoice(index) }
                var response = JSONResponse.bytes(entry.bytes)
                response.headers[.eTag] = "\"\(entry.leafHash)\""
                return response
            },
            Endpoint(.get, "/v1/terms/{sha256}") { _, context in
                let sha = try context.path("sha256")
                try Pattern.check(sha, Pattern.sha256Hex, "sha256", "give 64 lowercase hex digits")
                guard let terms = try await Blocking.run({ [store] in try store.terms(sha256: sha) }) else {
                    throw RegistryError.notFound("the ledger holds no settlement terms \(sha)")
                }
                var response = JSONResponse.bytes(terms.bytes)
                response.headers[.eTag] = "\"\(sha)\""
                return response
            },
            Endpoint(.get, "/v1/ledger/checkpoint") { _, _ in
                let checkpoint = try await Blocking.run { [store] in try store.checkpoint() }
                return JSONResponse.make(checkpoint)
            },
            Endpoint(.get, "/v1/ledger/inclusion-proof") { request, _ in
                guard let index = try request.integerQuery("index") else {
                    throw RegistryError.malformed("the index query parameter is required")
                }
                let size = try request.integerQuery("size", in: 1...Int.max)
                let proof = try await Blocking.run { [store] in try store.inclusionProof(index: index, size: size) }
                return JSONResponse.make(proof)
            },
            Endpoint(.get, "/v1/ledger/consistency-proof") { request, _ in
                guard let old = try request.integerQuery("old_size") else {
                    throw RegistryError.malformed("the old_size query parameter is required")
                }
                let new = try request.integerQuery("new_size")
                let proof = try await Blocking.run { [store] in try store.consistencyProof(oldSize: old, newSize: new) }
                return JSONResponse.make(proof)
            },
            Endpoint(.get, "/v1/verify") { _, context in
                _ = try context.require(.contributor, .developer, .node, .caller)
                let report = try await Blocking.run { [store] in try store.verify() }
                return JSONResponse.make(report)
            },
        ]
    }

    static func invoiceIndex(_ context: RegistryRequestContext) throws -> Int {
        let text = try context.path("index")
        guard let index = Request.integer(text), index >= 0 else {
            throw RegistryError.invalid("invoice index '\(text)' must be a whole number, at least 0")
        }
        return index
    }
}
