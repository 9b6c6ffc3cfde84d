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
    /// hash chain, every balance from the transfers, and conservation.
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
        let loaded: ([StoredInvoice], [StoredCheckpoint], [Transfer], [String: TokenAmount], [PendingCall], [String: NodeRecord])
        do { loaded = try ledger.readLedger { ledger in
            var nodes: [String: NodeRecord] = [:]
            for node in try ledger.nodes() { nodes[node.name] = node }
            return (try ledger.allInvoices(), try ledger.checkpoints(), try ledger.transfers(account: nil), try ledger.balances(),
                    try ledger.pendingCalls(), nodes)
        } } catch let error as ProvenanceError {
            // A stored value that cannot even be read (a malformed amount, an unknown cause) is a failure too.
            throw fail(error.message)
        }
        let (invoices, checkpoints, transfers, balances, pending, nodes) = loaded

        // Transfers: the hash chain, then every balance.
        var previous = Transfer.genesisHash
        var derived: [String: TokenAmount] = [:]
        for (position, transfer) in transfers.enumerated() {
            let name = "transfer \(transfer.sequence)"
            guard transfer.sequence == Int64(position + 1) else { throw fail("\(name): the transfer sequence has a gap") }
            guard transfer.computeHash(previous: previous) == transfer.hash else {
                throw fail("\(name): its hash does not match its contents and the chain before it")
            }
            guard transfer.amount.raw > 0 else { throw fail("\(name): moves a non-positive amount") }
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
        // Invoices: bytes → leaf hash, document, signature, split, git objects, transfers.
        var transfersByInvoice: [Int: [Transfer]] = [:]
        for transfer in transfers { if let invoice = transfer.invoice { transfersByInvoice[invoice, default: []].append(transfer) } }
        var repositories: [String: Repository] = [:]
        var verifiedBatches = Set<Data>()
        var checkedLevels = Set<[String]>()
        func repository(_ url: URL) throws -> Repository {
            if let open = repositories[url.path] { return open }
            let repo = try Repository.open(at: url)
            repositories[url.path] = repo
            return repo
        }
        for (position, stored) in invoices.enumerated() {
            let name = "invoice \(stored.index)"
            guard stored.index == position else { throw fail("\(name): the ledger skips from \(position - 1) to \(stored.index)") }
            guard MerkleTree.leafHash(stored.bytes) == stored.leafHash else {
                throw fail("\(name): its leaf hash does not match its stored bytes")
            }
            let invoice: Invoice
            do { invoice = try Invoice(canonicalBytes: stored.bytes) } catch { throw fail("\(name): cannot be read (\(error))") }
            guard invoice.canonicalBytes == stored.bytes else { throw fail("\(name): its bytes are not canonical") }
            guard invoice.ledgerIndex == stored.index else { throw fail("\(name): it records ledger index \(invoice.ledgerIndex)") }
            guard let node = nodes[invoice.record.node], node.publicKey == invoice.nodeKey,
                  let keyData = Data(base64Encoded: node.publicKey), let key = try? Curve25519.Signing.PublicKey(rawRepresentation: keyData)
            else { throw fail("\(name): node '\(invoice.record.node)' or its key does not match the node registry") }
            guard invoice.signature.verify(record: invoice.record, publicKey: key, verifiedBatches: &verifiedBatches) else {
                throw fail("\(name): the node signature does not verify")
            }
            let recomputed: SettlementComputation
            do { recomputed = try SettlementComputation.compute(record: invoice.record, price: invoice.price, levels: invoice.levels) } catch {
                throw fail("\(name): its split cannot be recomputed (\(error))")
            }
            guard recomputed == invoice.computation else { throw fail("\(name): its split does not follow from its recorded inputs") }
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
            let expected = expectedTransfers(invoice)
            let actual = (transfersByInvoice[stored.index] ?? []).map { [$0.from, $0.to, $0.amount.rawString, $0.cause.rawValue] }
            guard actual == expected else { throw fail("\(name): its transfers do not match its payouts") }
            report.invoices += 1
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
            guard let node = nodes[call.record.node], let keyData = Data(base64Encoded: node.publicKey),
                  let key = try? Curve25519.Signing.PublicKey(rawRepresentation: keyData),
                  call.signature.verify(record: call.record, publicKey: key, verifiedBatches: &verifiedBatches)
            else { throw fail("pending call \(call.record.idempotencyKey): the node signature does not verify") }
            reserved = try reserved.adding(call.fee)
            report.pendingCalls += 1
        }
        guard balances[Accounts.escrow] ?? .zero == reserved else {
            throw fail("account escrow: holds \(balances[Accounts.escrow] ?? .zero), pending calls reserve \(reserved)")
        }
    }

    /// The transfers an invoice implies, in the order settlement writes them.
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
