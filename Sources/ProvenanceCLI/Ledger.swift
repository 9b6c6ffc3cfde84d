import ArgumentParser
import Foundation
import ProvenanceCore
import RegistryAPI

extension Provenance {
    struct InvoiceCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "invoice", abstract: "Read AI invoices.", subcommands: [Show.self, List.self, Bundle.self])
    }

    /// An invoice with its place in the ledger, for JSON output.
    static func invoiceObject(_ entry: InvoiceEntry) throws -> [String: Any] {
        try invoiceObject(index: entry.index, leafHash: entry.leafHash, settledAt: entry.settledAt, invoice: entry.invoice)
    }

    static func invoiceObject(index: Int, leafHash: String, settledAt: Int64, invoice: Invoice) throws -> [String: Any] {
        ["index": index, "leaf_hash": leafHash, "settled_at": settledAt,
         "invoice": try JSONSerialization.jsonObject(with: invoice.expanded.encoded())]
    }
}

extension Provenance.InvoiceCommand {
    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one invoice.")
        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var remote: RegistryOptions
        @OptionGroup var output: OutputOptions
        @Flag(name: .customLong("canonical"), help: "Print the invoice's exact canonical bytes (what the ledger hashes).") var canonical = false
        @Argument(help: "The invoice id (its ledger index).") var id: Int

        func run() async throws {
            if let client = try remote.client(storeOptions) {
                guard id >= 0 else { throw ValidationError("the invoice id is its ledger index, 0 or more") }
                // Its place in the ledger through the generated client; the invoice itself as its
                // exact canonical bytes, which Invoice(canonicalBytes:) checks and --canonical prints.
                let placed = try await client.call("the invoice") { try await $0.showInvoice(path: .init(index: id)).ok.body.json }
                let bytes = try await client.must("/v1/invoices/\(id)/canonical")
                if canonical { return print(String(decoding: bytes, as: UTF8.self)) }
                // A format-2 invoice names its terms block by SHA-256: read it from the registry.
                var named: String?
                var terms: SettlementTerms?
                let invoice: Invoice
                do {
                    invoice = try Invoice(canonicalBytes: bytes, terms: { named = $0; return nil })
                } catch {
                    guard let sha256 = named, sha256.utf8.count == 64, sha256.allSatisfy(\.isHexDigit) else { throw error }
                    terms = try SettlementTerms(canonicalBytes: try await client.must("/v1/terms/\(sha256)"))
                    invoice = try Invoice(canonicalBytes: bytes, terms: { $0 == sha256 ? terms : nil })
                }
                return try show(index: placed.index, leafHash: placed.leafHash, settledAt: Int64(placed.settledAt), invoice: invoice)
            }
            let entry = try storeOptions.open().invoice(id)
            if canonical { return print(String(decoding: entry.bytes, as: UTF8.self)) }
            try show(index: entry.index, leafHash: entry.leafHash, settledAt: entry.settledAt, invoice: entry.invoice)
        }

        /// Prints the invoice, the same for a local store and a registry.
        func show(index: Int, leafHash: String, settledAt: Int64, invoice: Invoice) throws {
            if output.json {
                return try Output.jsonObject(try Provenance.invoiceObject(index: index, leafHash: leafHash, settledAt: settledAt, invoice: invoice))
            }
            let record = invoice.record
            print("invoice \(index)  leaf \(leafHash)")
            print("call     \(record.caller) → \(record.model)@\(record.version) on node \(record.node)\(record.router.map { " via \($0)" } ?? "")")
            print("metering \(record.inputTokens) in, \(record.outputTokens) out, \(record.latencyMilliseconds) ms\(invoice.price.sloMilliseconds.map { " (SLO \($0) ms \(invoice.computation.sloMet ? "met" : "missed"))" } ?? "")")
            print("fee      \(invoice.computation.fee)\(invoice.computation.penalty.raw > 0 ? ", \(invoice.computation.penalty) refunded" : "")  (\(invoice.mode.rawValue)\(invoice.batch.map { ", \($0)" } ?? ""))")
            for level in invoice.levels {
                print("lineage  \(level.model)@\(level.version) \(level.modelCommit.prefix(7)) under \(level.plugin)\(level.baseSharePPB > 0 ? ", \(LineageRenderer.percent(level.baseSharePPB)) onward" : "")")
            }
            for attribution in invoice.callAttribution {
                switch attribution.basis {
                case .fallback: print("call     \(attribution.level): the output reproduced nothing; the version's own weights apply")
                case .plugin: print("call     \(attribution.level): weighed for this call by its plugin")
                case .spans:
                    print("call     \(attribution.level): \(attribution.spans.count) span(s) of the output found in the training data")
                    Output.table(["OUTPUT", "BYTES", "CONTRIBUTOR", "SOURCE", "TEXT"], attribution.spans.map { span in
                        ["\(span.outputOffset)-\(span.outputOffset + span.length)", String(span.length), span.contributor,
                         "\(span.dataset)@\(span.commit.prefix(7)):\(span.path):\(span.lineStart)\(span.lineEnd > span.lineStart ? "-\(span.lineEnd)" : "")",
                         Provenance.Attribute.excerpt(span.text)]
                    }, rightAligned: [1])
                }
            }
            Output.table(["PAYEE", "ROLE", "AMOUNT", "FOR"], invoice.computation.payouts.map {
                [$0.account, $0.role.rawValue, $0.amount.description, $0.level ?? "-"]
            }, rightAligned: [2])
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List invoices, optionally of one account or model.")
        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var remote: RegistryOptions
        @OptionGroup var output: OutputOptions
        @Option(help: ArgumentHelp("Only invoices this account paid or was paid by.", valueName: "ACCOUNT")) var account: String?
        @Option(help: ArgumentHelp("Only invoices of this model.", valueName: "MODEL")) var model: String?

        func run() async throws {
            if let client = try remote.client(storeOptions) {
                let entries = try await remoteEntries(client)
                if output.json { return try Output.jsonObject(entries) }
                return show(try entries.map(Self.row))
            }
            let entries = try storeOptions.open().invoices(account: account, model: model)
            if output.json { return try Output.jsonObject(try entries.map(Provenance.invoiceObject)) }
            show(entries.map {
                ["\($0.index)", $0.invoice.record.caller, "\($0.invoice.record.model)@\($0.invoice.record.version)", $0.invoice.record.node,
                 $0.invoice.computation.fee.description, $0.invoice.mode.rawValue]
            })
        }

        func show(_ rows: [[String]]) {
            Output.table(["INVOICE", "CALLER", "MODEL", "NODE", "FEE", "MODE"], rows, rightAligned: [0, 4])
        }

        /// Every page of `GET /v1/invoices`, as JSON objects. Read as bytes, not through the
        /// generated types: an invoice is a free-form document whose integers (token counts up to
        /// 2^64-1) the generated value container would read as Double.
        func remoteEntries(_ client: RegistryClient) async throws -> [[String: Any]] {
            if let account { try Accounts.validate(account) }
            if let model { try Names.validateModelName(model) }
            var filter = ""
            if let account { filter += "&account=\(try RegistryClient.queryValue(account))" }
            if let model { filter += "&model=\(model)" }
            var entries: [[String: Any]] = []
            while true {
                let body = try await client.must("/v1/invoices?offset=\(entries.count)&limit=1000\(filter)")
                guard let page = try? JSONSerialization.jsonObject(with: body) as? [String: Any], let total = page["total"] as? Int,
                      let invoices = page["invoices"] as? [[String: Any]] else {
                    throw AuditError("the registry's answer to GET /v1/invoices is not what the API documents")
                }
                entries += invoices
                if invoices.isEmpty || entries.count >= total { return entries }
            }
        }

        /// A table row from an invoice entry as the API gives it (the expanded invoice).
        static func row(_ entry: [String: Any]) throws -> [String] {
            let invoice = entry["invoice"] as? [String: Any]
            let parties = invoice?["parties"] as? [String: Any]
            guard let index = entry["index"] as? Int, let caller = parties?["caller"] as? String, let model = parties?["model"] as? String,
                  let version = parties?["version"] as? String, let node = parties?["node"] as? String,
                  let fee = ((invoice?["pricing"] as? [String: Any])?["fee"] as? String).flatMap(TokenAmount.init(rawString:)),
                  let mode = (invoice?["settlement"] as? [String: Any])?["mode"] as? String else {
                throw AuditError("the registry's invoice list holds an entry that is not an invoice as the API documents it")
            }
            return ["\(index)", caller, "\(model)@\(version)", node, fee.description, mode]
        }
    }

    struct Bundle: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "One statement of an account's invoices, each with its Merkle proof against the signed checkpoint (JSON).")
        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var remote: RegistryOptions
        @Option(help: ArgumentHelp("The payee or caller.", valueName: "ACCOUNT")) var account: String
        @Option(help: ArgumentHelp("Settled at or after (Unix seconds or ISO 8601).", valueName: "T")) var from: String?
        @Option(help: ArgumentHelp("Settled at or before (Unix seconds or ISO 8601).", valueName: "T")) var to: String?

        static func time(_ text: String, _ flag: String) throws -> Int64 {
            if let seconds = Int64(text) { return seconds }
            let formatter = ISO8601DateFormatter()
            if let date = formatter.date(from: text) { return Int64(date.timeIntervalSince1970) }
            formatter.formatOptions = [.withFullDate]
            if let date = formatter.date(from: text) { return Int64(date.timeIntervalSince1970) }
            throw ValidationError("\(flag) '\(text)' is neither Unix seconds nor an ISO 8601 time like 2026-11-21T12:00:00Z")
        }

        func run() async throws {
            let fromTime = try self.from.map { try Self.time($0, "--from") }
            let toTime = try self.to.map { try Self.time($0, "--to") }
            if let client = try remote.client(storeOptions) {
                try Accounts.validate(account)
                // As bytes, like `invoice list`: the invoices are free-form documents.
                let query = "account=\(try RegistryClient.queryValue(account))" + (fromTime.map { "&from=\($0)" } ?? "") + (toTime.map { "&to=\($0)" } ?? "")
                let body = try await client.must("/v1/invoices/bundle?\(query)")
                guard var object = try? JSONSerialization.jsonObject(with: body) as? [String: Any],
                      let invoices = object["invoices"] as? [[String: Any]] else {
                    throw AuditError("the registry's answer to GET /v1/invoices/bundle is not what the API documents")
                }
                // The API also gives each invoice's amounts in tokens; the local bundle has base units only.
                let kept: Set<String> = ["index", "leaf_hash", "proof", "received_raw", "paid_raw", "invoice"]
                object["invoices"] = invoices.map { $0.filter { kept.contains($0.key) } }
                return try Output.jsonObject(object)
            }
            let bundle = try storeOptions.open().bundle(account: account, from: fromTime, to: toTime)
            let object: [String: Any] = [
                "account": bundle.account,
                "received": bundle.received.description, "received_raw": bundle.received.rawString,
                "paid": bundle.paid.description, "paid_raw": bundle.paid.rawString,
                "checkpoint": ["origin": bundle.checkpoint.origin, "size": bundle.checkpoint.size, "root_hash": bundle.checkpoint.rootHash,
                               "note": bundle.checkpoint.note, "verifier_key": bundle.checkpoint.verifierKey],
                "invoices": try bundle.items.map { item -> [String: Any] in
                    ["index": item.index, "leaf_hash": item.leafHash, "proof": item.proof,
                     "received_raw": item.received.rawString, "paid_raw": item.paid.rawString,
                     "invoice": try JSONSerialization.jsonObject(with: item.bytes)]
                },
                "terms": try bundle.terms.mapValues { try JSONSerialization.jsonObject(with: $0) },
            ]
            try Output.jsonObject(object)
        }
    }
}

extension Provenance {
    struct LedgerCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "ledger", abstract: "The RFC 9162 Merkle ledger of invoices: checkpoints and proofs.",
            subcommands: [CheckpointCommand.self, Proof.self, Consistency.self])
    }
}

extension Provenance.LedgerCommand {
    struct CheckpointCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "checkpoint", abstract: "Print the latest signed checkpoint (C2SP signed note).")
        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var remote: RegistryOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            let checkpoint: CheckpointInfo
            if let client = try remote.client(storeOptions) {
                let answer = try await client.call("the checkpoint") { try await $0.ledgerCheckpoint().ok.body.json }
                checkpoint = try RegistryClient.domain(answer, as: CheckpointInfo.self, "the checkpoint")
            } else {
                checkpoint = try storeOptions.open().checkpoint()
            }
            if output.json { return try Output.json(checkpoint) }
            print(checkpoint.note, terminator: "")
        }
    }

    struct Proof: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the inclusion proof of an invoice.")
        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var remote: RegistryOptions
        @OptionGroup var output: OutputOptions
        @Argument(help: "The invoice id.") var invoice: Int
        @Option(help: ArgumentHelp("The tree size to prove against (default: the latest checkpoint).", valueName: "N")) var size: Int?

        func run() async throws {
            let proof: InclusionProofInfo
            if let client = try remote.client(storeOptions) {
                let answer = try await client.call("the inclusion proof") {
                    try await $0.inclusionProof(query: .init(index: invoice, size: size)).ok.body.json
                }
                proof = try RegistryClient.domain(answer, as: InclusionProofInfo.self, "the inclusion proof")
            } else {
                proof = try storeOptions.open().inclusionProof(index: invoice, size: size)
            }
            if output.json { return try Output.json(proof) }
            print("invoice \(proof.index) in tree of size \(proof.treeSize)")
            print("leaf  \(proof.leafHash)")
            print("root  \(proof.rootHash)")
            for (step, hash) in proof.proof.enumerated() { print("\(step)  \(hash)") }
        }
    }

    struct Consistency: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the consistency proof between two tree sizes.")
        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var remote: RegistryOptions
        @OptionGroup var output: OutputOptions
        @Argument(help: "The older tree size.") var oldSize: Int
        @Argument(help: "The newer tree size (default: the whole ledger).") var newSize: Int?

        func run() async throws {
            let proof: ConsistencyProofInfo
            if let client = try remote.client(storeOptions) {
                let answer = try await client.call("the consistency proof") {
                    try await $0.consistencyProof(query: .init(oldSize: oldSize, newSize: newSize)).ok.body.json
                }
                proof = try RegistryClient.domain(answer, as: ConsistencyProofInfo.self, "the consistency proof")
            } else {
                proof = try storeOptions.open().consistencyProof(oldSize: oldSize, newSize: newSize)
            }
            if output.json { return try Output.json(proof) }
            print("from size \(proof.oldSize) (root \(proof.oldRoot)) to size \(proof.newSize) (root \(proof.newRoot))")
            for (step, hash) in proof.proof.enumerated() { print("\(step)  \(hash)") }
        }
    }
}

extension Provenance {
    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Re-derive everything: leaf hashes, roots, checkpoint and node signatures, every split, every balance, and every git object referenced.",
            discussion: """
                With --registry URL (and any valid token) the registry verifies its own store and says what it \
                found; to check a registry without trusting it, use `provenance audit`.
                """)
        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var remote: RegistryOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            let report: VerifyReport
            if let client = try remote.client(storeOptions) {
                let answer = try await client.call("verify") { try await $0.verify().ok.body.json }
                report = try RegistryClient.domain(answer, as: VerifyReport.self, "verify")
            } else {
                report = try storeOptions.open().verify()
            }
            if output.json { try Output.json(report) } else if report.ok {
                print("verified \(report.invoices) invoice(s), \(report.checkpoints) checkpoint(s), \(report.transfers) transfer(s), \(report.accounts) account(s), \(report.pendingCalls) pending call(s)")
            }
            guard report.ok else {
                throw ProvenanceError(.storage, "verify failed: \(report.failure ?? "unknown")")
            }
        }
    }
}
