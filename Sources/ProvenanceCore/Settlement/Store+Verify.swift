import Foundation
import Crypto
import GitKit

/// What `provenance verify` re-derived, and the first thing that did not match.
public struct VerifyReport: Codable, Sendable, Equatable {
    public var ok: Bool
    public var invoices: Int
    public var checkpoints: Int
    public var transfers: Int
    public var accounts: Int
    public var pendingCalls: Int
    /// The first mismatch, naming the invoice, checkpoint, transfer or account.
    public var failure: String?

    enum CodingKeys: String, CodingKey {
        case ok, invoices, checkpoints, transfers, accounts, failure
        case pendingCalls = "pending_calls"
    }
}

struct VerifyFailure: Error { let message: String }

extension Store {
    /// Re-derives everything from what is stored: every invoice's leaf hash, node signature and
    /// split, every referenced git object, every checkpoint's root and signature, the transfer
    /// hash chain, every balance from the transfers, the index of transfers by account, and
    /// conservation.
    public func verify() throws -> VerifyReport {
        var report = VerifyReport(ok: false, invoices: 0, checkpoints: 0, transfers: 0, accounts: 0, pendingCalls: 0, failure: nil)
        do {
            try verify(into: &report)
            report.ok = true
        } catch let failure as VerifyFailure {
            report.failure = failure.message
        }
        return report
    }

    private func verify(into report: inout VerifyReport) throws {
        func fail(_ message: String) -> VerifyFailure { VerifyFailure(message: message) }
        struct Loaded {
            var invoices: [StoredInvoice]
            var checkpoints: [StoredCheckpoint]
            var transfers: [Transfer]
            var balances: [String: TokenAmount]
            var pending: [PendingCall]
            var nodes: [String: NodeRecord]
            var batches: [SettlementBatch]
            var reservations: [Reservation]
        }
        let loaded: Loaded
        do { loaded = try ledger.readLedger { ledger in
            var nodes: [String: NodeRecord] = [:]
            for node in try ledger.nodes() { nodes[node.name] = node }
            return Loaded(invoices: try ledger.allInvoices(), checkpoints: try ledger.checkpoints(), transfers: try ledger.transfers(account: nil),
                          balances: try ledger.balances(), pending: try ledger.pendingCalls(), nodes: nodes, batches: try ledger.batches(),
                          reservations: try ledger.reservations(batch: nil))
        } } catch let error as ProvenanceError {
            // A stored value that cannot even be read (a malformed amount, an unknown cause) is a failure too.
            throw fail(error.message)
        }
        let (invoices, checkpoints, transfers, balances, pending, nodes) = (loaded.invoices, loaded.checkpoints, loaded.transfers,
                                                                            loaded.balances, loaded.pending, loaded.nodes)

        // Transfers: the hash chain, then every balance.
        var previous = Transfer.genesisHash
        var derived: [String: TokenAmount] = [:]
        let settlementCauses: Set<Transfer.Cause> = [.charge, .release, .payout, .refund, .reserve]
        for (position, transfer) in transfers.enumerated() {
            let name = "transfer \(transfer.sequence)"
            guard transfer.sequence == Int64(position + 1) else { throw fail("\(name): the transfer sequence has a gap") }
            guard transfer.computeHash(previous: previous) == transfer.hash else {
                throw fail("\(name): its hash does not match its contents and the chain before it")
            }
            guard transfer.amount.raw > 0 else { throw fail("\(name): moves a non-positive amount") }
            if settlementCauses.contains(transfer.cause), transfer.batch == nil, transfer.invoice == nil, transfer.call == nil {
                throw fail("\(name): a \(transfer.cause.rawValue) that names no batch, invoice or call")
            }
            previous = transfer.hash
            derived[transfer.from] = try derived[transfer.from, default: .zero].subtracting(transfer.amount)
            derived[transfer.to] = try derived[transfer.to, default: .zero].adding(transfer.amount)
            report.transfers += 1
        }
        for account in Set(balances.keys).union(derived.keys).sorted() {
            let stored = balances[account] ?? .zero
            let expected = derived[account] ?? .zero
            guard stored == expected else {
                throw fail("account \(account): balance \(stored) does not match its transfers (\(expected))")
            }
            report.accounts += 1
        }
        // The statements' index of transfers by account, where the backend keeps one itself.
        do {
            if let problem = try ledger.readLedger({ try $0.accountIndexProblem() }) { throw fail(problem) }
        } catch let error as ProvenanceError {
            throw fail(error.message)
        }

        // Terms blocks, read from the ledger and checked against their names.
        var termsBlocks: [String: SettlementTerms] = [:]
        let termsLock = NSLock()
        var termsError: String?
        func terms(_ sha: String) throws -> SettlementTerms? {
            termsLock.lock()
            defer { termsLock.unlock() }
            if let known = termsBlocks[sha] { return known }
            guard let bytes = try ledger.readLedger({ try $0.terms(sha256: sha) }) else { return nil }
            guard SHA256Digest.hex(of: bytes) == sha else {
                termsError = termsError ?? "settlement terms \(sha.prefix(12))…: their bytes do not hash to their name"
                throw ProvenanceError.invalid("settlement terms \(sha.prefix(12))… do not hash to their name")
            }
            let block = try SettlementTerms(canonicalBytes: bytes)
            termsBlocks[sha] = block
            return block
        }

        // Per invoice, on every core: bytes → leaf hash, document, signature, split.
        let signatures = VerifiedBatchSignatures()
        let checked = Slots<Result<Invoice, VerifyFailure>?>(count: invoices.count, repeating: nil)
        let check: (Int) -> Result<Invoice, VerifyFailure> = { position in
            let stored = invoices[position]
            let name = "invoice \(stored.index)"
            guard stored.index == position else { return .failure(fail("\(name): the ledger skips from \(position - 1) to \(stored.index)")) }
            guard MerkleTree.leafHash(stored.bytes) == stored.leafHash else {
                return .failure(fail("\(name): its leaf hash does not match its stored bytes"))
            }
            // The checks an outside auditor makes too (`provenance audit`), in one pure function.
            return Invoice.rederive(bytes: stored.bytes, index: stored.index, terms: terms, nodeKey: { invoice in
                guard let node = nodes[invoice.record.node], node.publicKey == invoice.nodeKey else { return nil }
                return node.verificationKey
            }, signatures: signatures).mapError { fail("\(name): \($0)") }
        }
        let chunk = 256
        Parallel.forEach((invoices.count + chunk - 1) / chunk) { part in
            for position in (part * chunk)..<min(invoices.count, (part + 1) * chunk) { checked[position] = check(position) }
        }
        if let termsError { throw fail(termsError) }

        // In ledger order: git objects once per distinct level, transfers against payouts.
        var transfersByInvoice: [Int: [Transfer]] = [:]
        var linesByBatch: [Int64: [Book.NetKey: TokenAmount]] = [:]
        for transfer in transfers {
            if let invoice = transfer.invoice { transfersByInvoice[invoice, default: []].append(transfer) }
            if let batch = transfer.batch {
                let key = Book.NetKey(from: transfer.from, to: transfer.to, cause: transfer.cause)
                guard linesByBatch[batch]?[key] == nil else {
                    throw fail("transfer \(transfer.sequence): batch \(Store.batchName(batch)) has two lines \(transfer.from) → \(transfer.to) (\(transfer.cause.rawValue))")
                }
                linesByBatch[batch, default: [:]][key] = transfer.amount
            }
        }
        var batchesByID: [Int64: SettlementBatch] = [:]
        for batch in loaded.batches { batchesByID[batch.id] = batch }
        var expectedByBatch: [Int64: [Book.NetKey: TokenAmount]] = [:]
        var repositories: [String: Repository] = [:]
        var checkedLevels = Set<[String]>()
        func repository(_ url: URL) throws -> Repository {
            if let open = repositories[url.path] { return open }
            let repo = try Repository.open(at: url)
            repositories[url.path] = repo
            return repo
        }
        var spanChecker = SpanChecker(store: self)
        for (position, stored) in invoices.enumerated() {
            let name = "invoice \(stored.index)"
            let invoice: Invoice
            switch checked[position]! {
            case .failure(let failure): throw failure
            case .success(let value): invoice = value
            }
            for level in invoice.levels {
                guard level.weights.isEmpty || level.weights.reduce(0, { $0 + $1.ppb }) == PartsPerBillion.whole else {
                    throw fail("\(name): the weights of \(level.model)@\(level.version) do not sum to 1000000000 ppb")
                }
                // The git objects a level names are checked once per distinct level.
                let levelKey = [level.model, level.version, level.modelCommit] + level.trainingLogSHA256
                    + level.datasets.flatMap { [$0.dataset, $0.commit] }
                if checkedLevels.contains(levelKey) { continue }
                let modelRepo: Repository
                do { modelRepo = try repository(modelRepositoryURL(level.model)) } catch {
                    throw fail("\(name): the repository of model '\(level.model)' is missing")
                }
                guard let tagged = try? modelRepo.resolveCommit("refs/tags/\(level.version)"), tagged.hex == level.modelCommit else {
                    throw fail("\(name): model commit \(level.modelCommit.prefix(7)) of \(level.model)@\(level.version) is not in its repository")
                }
                let manifestBlob = try modelRepo.blob(atPath: ModelManifest.fileName, inCommit: tagged)
                let manifest = try manifestBlob.map { try JSONDecoder().decode(ModelManifest.self, from: try modelRepo.readBlob($0)) }
                for sha in level.trainingLogSHA256 where !(manifest?.trainingLogs.contains { $0.sha256 == sha } ?? false) {
                    throw fail("\(name): training log \(sha.prefix(12))… is not recorded by \(level.model)@\(level.version)")
                }
                for dataset in level.datasets {
                    guard let repo = try? repository(datasetRepositoryURL(dataset.dataset)), let id = ObjectID(hex: dataset.commit),
                          repo.objectType(id) == .commit
                    else { throw fail("\(name): dataset commit \(dataset.dataset)@\(dataset.commit.prefix(7)) does not exist") }
                }
                checkedLevels.insert(levelKey)
            }
            for attribution in invoice.callAttribution {
                for span in attribution.spans {
                    if let problem = try spanChecker.check(span) { throw fail("\(name): a span of \(attribution.level) \(problem)") }
                }
            }
            if invoice.formatVersion == 1 {
                let expected = expectedTransfers(invoice)
                let actual = (transfersByInvoice[stored.index] ?? []).map { [$0.from, $0.to, $0.amount.rawString, $0.cause.rawValue] }
                guard actual == expected else { throw fail("\(name): its transfers do not match its payouts") }
            } else {
                guard let batchName = invoice.batch, batchName.hasPrefix("batch-"), let id = Int64(batchName.dropFirst(6)),
                      let batch = batchesByID[id], batch.firstInvoice <= stored.index, stored.index < batch.firstInvoice + batch.invoiceCount
                else { throw fail("\(name): it names batch '\(invoice.batch ?? "none")', which does not hold it") }
                guard transfersByInvoice[stored.index] == nil else { throw fail("\(name): it has transfers of its own besides its batch's") }
                for movement in expectedMovements(invoice) {
                    expectedByBatch[id, default: [:]][movement.key] = try (expectedByBatch[id]?[movement.key] ?? .zero).adding(movement.amount)
                }
            }
            report.invoices += 1
        }
        for reservation in loaded.reservations {
            let key = Book.NetKey(from: reservation.caller, to: Accounts.escrow, cause: .reserve)
            expectedByBatch[reservation.batch, default: [:]][key] = try (expectedByBatch[reservation.batch]?[key] ?? .zero).adding(reservation.fee)
        }
        // Every batch's lines are exactly the sums of its invoices' movements and reservations.
        for id in Set(linesByBatch.keys).union(expectedByBatch.keys).sorted() {
            let name = "batch \(Store.batchName(id))"
            guard let batch = batchesByID[id] else { throw fail("\(name): its transfers name a batch the ledger does not hold") }
            for invoiceIndex in batch.firstInvoice..<(batch.firstInvoice + batch.invoiceCount) where invoiceIndex >= invoices.count {
                throw fail("\(name): it claims invoice \(invoiceIndex), which the ledger does not hold")
            }
            let actual = linesByBatch[id] ?? [:]
            let expected = expectedByBatch[id] ?? [:]
            for key in Set(actual.keys).union(expected.keys).sorted(by: { ($0.from, $0.to, $0.cause.rawValue) < ($1.from, $1.to, $1.cause.rawValue) }) {
                let line = actual[key] ?? .zero
                let sum = expected[key] ?? .zero
                guard line == sum else {
                    throw fail("\(name): its line \(key.from) → \(key.to) (\(key.cause.rawValue)) moves \(line), its invoices add up to \(sum)")
                }
            }
        }
        for batch in loaded.batches where batch.invoiceCount > 0 {
            for invoiceIndex in batch.firstInvoice..<(batch.firstInvoice + batch.invoiceCount) where invoiceIndex < invoices.count {
                if case .success(let invoice) = checked[invoiceIndex]!, invoice.formatVersion == 2, invoice.batch != Store.batchName(batch.id) {
                    throw fail("batch \(Store.batchName(batch.id)): it claims invoice \(invoiceIndex), which names \(invoice.batch ?? "no batch")")
                }
            }
        }

        // Checkpoints: each signature, and each root against the leaves.
        let verifier = try noteSigner().verifier
        // Roots are recomputed in one pass over the leaves, as a log grows: O(n log n) for any
        // number of checkpoints (a real-time ledger signs one per call).
        var range = CompactRange()
        var leafIterator = invoices.makeIterator()
        for stored in checkpoints {
            let name = "checkpoint \(stored.size)"
            let checkpoint: Checkpoint
            do { checkpoint = try verifier.verify(stored.note) } catch { throw fail("\(name): its signature does not verify (\(error))") }
            guard checkpoint.size == stored.size, checkpoint.rootHash == stored.root else {
                throw fail("\(name): its signed note does not match its stored size and root")
            }
            while range.size < stored.size, let next = leafIterator.next() { range.append(leafHash: next.leafHash) }
            guard range.size == stored.size, range.root == stored.root else {
                throw fail("\(name): its root is not the root of the ledger's first \(stored.size) invoices")
            }
            report.checkpoints += 1
        }
        if !invoices.isEmpty, checkpoints.last?.size != invoices.count {
            throw fail("checkpoint: the latest signed checkpoint does not cover all \(invoices.count) invoices")
        }

        var total = TokenAmount.zero
        for balance in balances.values { total = try total.adding(balance) }
        guard total.raw == 0 else { throw fail("conservation: the balances sum to \(total), not 0") }
        guard (balances[Accounts.clearing] ?? .zero).raw == 0 else { throw fail("account clearing: holds money between settlements") }
        var reserved = TokenAmount.zero
        for call in pending {
            guard let node = nodes[call.record.node], let signature = try? call.signature(),
                  signatures.verify(signature, of: call.recordBytes, key: node.verificationKey)
            else { throw fail("pending call \(call.record.idempotencyKey): the node signature does not verify") }
            reserved = try reserved.adding(call.fee)
            report.pendingCalls += 1
        }
        guard balances[Accounts.escrow] ?? .zero == reserved else {
            throw fail("account escrow: holds \(balances[Accounts.escrow] ?? .zero), pending calls reserve \(reserved)")
        }
    }

    /// The movements a format-2 invoice adds to its batch's lines.
    func expectedMovements(_ invoice: Invoice) -> [(key: Book.NetKey, amount: TokenAmount)] {
        let computation = invoice.computation
        var result: [(key: Book.NetKey, amount: TokenAmount)] = [
            (Book.NetKey(from: invoice.mode == .batch ? Accounts.escrow : invoice.record.caller, to: Accounts.clearing,
                         cause: invoice.mode == .batch ? .release : .charge), computation.fee),
        ]
        for payout in computation.payouts where payout.amount.raw > 0 {
            result.append((Book.NetKey(from: Accounts.clearing, to: payout.account, cause: .payout), payout.amount))
        }
        if computation.penalty.raw > 0 {
            result.append((Book.NetKey(from: Accounts.clearing, to: invoice.record.caller, cause: .refund), computation.penalty))
        }
        return result.filter { $0.amount.raw > 0 }
    }

    /// The transfers a format-1 invoice implies, in the order settlement wrote them.
    func expectedTransfers(_ invoice: Invoice) -> [[String]] {
        let computation = invoice.computation
        var result: [[String]] = [[invoice.mode == .batch ? Accounts.escrow : invoice.record.caller, Accounts.clearing,
                                   computation.fee.rawString, invoice.mode == .batch ? "release" : "charge"]]
        for payout in computation.payouts { result.append([Accounts.clearing, payout.account, payout.amount.rawString, "payout"]) }
        if computation.penalty.raw > 0 {
            result.append([Accounts.clearing, invoice.record.caller, computation.penalty.rawString, "refund"])
        }
        return result
    }
}

extension Store {
    /// What is wrong with an invoice's per-call attribution on its face, if anything: each
    /// entry names a level of its lineage with datasets, a fallback keeps that level's
    /// weights and has no spans, a plugin's answer is well-formed ppb, and weights resting on
    /// spans are exactly what the spans earn; spans
    /// are as long as their text, in output order without overlap, and from the level's
    /// dataset commits. (`SpanChecker` holds each span against git.)
    static func checkCallAttribution(_ invoice: Invoice) -> String? {
        var seen = Set<String>()
        for attribution in invoice.callAttribution {
            guard seen.insert(attribution.level).inserted,
                  let level = invoice.levels.first(where: { "\($0.model)@\($0.version)" == attribution.level }), !level.weights.isEmpty
            else { return "its call attribution names \(attribution.level), not a level of its lineage with datasets (or names it twice)" }
            switch attribution.basis {
            case .fallback:
                guard attribution.spans.isEmpty, attribution.weights == level.weights else {
                    return "its fallback attribution of \(attribution.level) is not the version's own weights"
                }
                continue
            case .plugin:
                // An external plugin's answer for the call: only its form can be checked here.
                guard attribution.spans.isEmpty, !attribution.weights.isEmpty,
                      attribution.weights.reduce(0, { $0 + $1.ppb }) == PartsPerBillion.whole,
                      attribution.weights.allSatisfy({ $0.ppb > 0 }),
                      zip(attribution.weights, attribution.weights.dropFirst()).allSatisfy({ $0.contributor < $1.contributor })
                else { return "the call weights of \(attribution.level) are not positive ppb summing to 1000000000 in contributor order" }
                continue
            case .spans:
                break
            }
            guard !attribution.spans.isEmpty else { return "its call attribution of \(attribution.level) rests on spans but has none" }
            var end: UInt64 = 0
            let commits = Set(level.datasets.map { "\($0.dataset)@\($0.commit)" })
            for span in attribution.spans {
                guard span.length > 0, UInt64(span.text.utf8.count) == span.length, span.outputOffset >= end else {
                    return "a span of \(attribution.level) at output byte \(span.outputOffset) overlaps another or is not as long as its text"
                }
                guard commits.contains("\(span.dataset)@\(span.commit)") else {
                    return "a span of \(attribution.level) cites \(span.dataset)@\(span.commit.prefix(7)), which the version was not trained on"
                }
                end = span.outputOffset + span.length
            }
            let plugin = (try? PluginSpec(parsing: level.plugin).name) ?? level.plugin
            guard let weights = try? LevelCallAttribution.weights(of: attribution.spans, plugin: plugin), weights == attribution.weights else {
                return "the weights of \(attribution.level) do not follow from its spans"
            }
        }
        return nil
    }
}

/// Holds spans against git: the text is the file's bytes at the recorded offset, which lie
/// on the recorded lines, and git blame gives every one of those lines to the contributor.
struct SpanChecker {
    /// Where each dataset's repository is: the store's, or an auditor's clone.
    let repository: (String) -> URL
    private var blobs: [String: Data] = [:]
    private var authors: [String: [String]] = [:]

    init(store: Store) {
        self.init(repositories: store.datasetRepositoryURL)
    }

    init(repositories: @escaping (String) -> URL) {
        repository = repositories
    }

    /// A description of what does not hold, or nil.
    mutating func check(_ span: AttributedSpan) throws -> String? {
        let key = "\(span.dataset)\u{0}\(span.commit)\u{0}\(span.path)"
        let where_ = "(\(span.dataset)@\(span.commit.prefix(7)):\(span.path) lines \(span.lineStart)-\(span.lineEnd))"
        if blobs[key] == nil {
            guard let repository = try? Repository.open(at: repository(span.dataset)), let commit = ObjectID(hex: span.commit),
                  let blob = try? repository.blob(atPath: span.path, inCommit: commit)
            else { return "\(where_) names a file that is not in git" }
            blobs[key] = try repository.readBlob(blob)
        }
        let content = blobs[key]!
        let start = Int(span.fileOffset), end = start + Int(span.length)
        guard end <= content.count, content[content.startIndex + start..<content.startIndex + end] == Data(span.text.utf8) else {
            return "\(where_) does not hold its text verbatim at byte \(span.fileOffset)"
        }
        let before = content[content.startIndex..<content.startIndex + start].reduce(0) { $0 + ($1 == 10 ? 1 : 0) }
        let inside = content[content.startIndex + start..<content.startIndex + end - 1].reduce(0) { $0 + ($1 == 10 ? 1 : 0) }
        guard span.lineStart == before + 1, span.lineEnd == before + 1 + inside else {
            return "\(where_): its text lies on lines \(before + 1)-\(before + 1 + inside)"
        }
        if authors[key] == nil {
            var authorship = try DatasetAuthorship(repository: repository(span.dataset), commit: span.commit)
            authors[key] = try authorship.lineAuthors(path: span.path)
        }
        let lines = authors[key]!
        guard span.lineEnd <= lines.count, lines[(span.lineStart - 1)..<span.lineEnd].allSatisfy({ $0 == span.contributor }) else {
            return "\(where_): git blame does not give those lines to \(span.contributor)"
        }
        return nil
    }
}
