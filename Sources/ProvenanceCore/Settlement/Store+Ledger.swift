public import Foundation
import Crypto
import GitKit

/// An invoice as `invoice show` prints it: the canonical document plus where it sits in the ledger.
public struct InvoiceEntry: Sendable {
    public var index: Int
    public var leafHash: String
    public var settledAt: Int64
    public var bytes: Data
    public var invoice: Invoice
}

/// An inclusion proof, as `ledger proof` prints it.
public struct InclusionProofInfo: Codable, Sendable, Equatable {
    public var index: Int
    public var treeSize: Int
    public var leafHash: String
    public var rootHash: String
    public var proof: [String]

    enum CodingKeys: String, CodingKey {
        case index, proof
        case treeSize = "tree_size"
        case leafHash = "leaf_hash"
        case rootHash = "root_hash"
    }
}

/// A consistency proof, as `ledger consistency` prints it.
public struct ConsistencyProofInfo: Codable, Sendable, Equatable {
    public var oldSize: Int
    public var newSize: Int
    public var oldRoot: String
    public var newRoot: String
    public var proof: [String]

    enum CodingKeys: String, CodingKey {
        case proof
        case oldSize = "old_size"
        case newSize = "new_size"
        case oldRoot = "old_root"
        case newRoot = "new_root"
    }
}

/// The latest signed checkpoint.
public struct CheckpointInfo: Codable, Sendable, Equatable {
    public var origin: String
    public var size: Int
    public var rootHash: String
    public var note: String
    /// The registry's verifier key, to check the note with any signed-note tool.
    public var verifierKey: String

    enum CodingKeys: String, CodingKey {
        case origin, size, note
        case rootHash = "root_hash"
        case verifierKey = "verifier_key"
    }
}

extension Store {
    public func invoice(_ index: Int) throws -> InvoiceEntry {
        guard let stored = try ledger.readLedger({ try $0.invoice(index: index) }) else {
            let size = try ledger.readLedger { try $0.frontier().size }
            throw ProvenanceError.notFound("no invoice \(index): the ledger holds invoices 0 to \(size - 1)")
        }
        return try entry(stored)
    }

    func entry(_ stored: StoredInvoice) throws -> InvoiceEntry {
        InvoiceEntry(index: stored.index, leafHash: stored.leafHash.base64EncodedString(), settledAt: stored.settledAt,
                     bytes: stored.bytes, invoice: try Invoice(canonicalBytes: stored.bytes, terms: terms(sha256:)))
    }

    /// A settlement terms block by its SHA-256, checked against it; nil when the ledger has none.
    public func terms(sha256: String) throws -> SettlementTerms? {
        try caches.terms(sha256: sha256) {
            guard let bytes = try ledger.readLedger({ try $0.terms(sha256: sha256) }) else { return nil }
            guard SHA256Digest.hex(of: bytes) == sha256 else {
                throw ProvenanceError(.storage, "settlement terms \(sha256.prefix(12))… do not hash to their name")
            }
            return try SettlementTerms(canonicalBytes: bytes)
        }
    }

    /// Invoices where `account` paid or was paid, and/or of `model`, in ledger order.
    public func invoices(account: String?, model: String?, from: Int64? = nil, to: Int64? = nil) throws -> [InvoiceEntry] {
        if let account { try Accounts.validate(account) }
        return try ledger.readLedger { ledger in
            try ledger.invoices(indices: try ledger.invoiceIndices(account: account, model: model))
        }.filter { (from == nil || $0.settledAt >= from!) && (to == nil || $0.settledAt <= to!) }.map(entry)
            // A batch line names the batch, not each invoice: keep those that concern the account.
            .filter { account == nil || $0.invoice.record.caller == account || $0.invoice.computation.payouts.contains { $0.account == account } }
    }

    public func checkpoint() throws -> CheckpointInfo {
        let signer = try noteSigner()
        guard let latest = try ledger.readLedger({ try $0.checkpoints() }).last else {
            throw ProvenanceError.notFound("the ledger has no checkpoint yet: one is signed after the first settlement")
        }
        return CheckpointInfo(origin: signer.name, size: latest.size, rootHash: latest.root.base64EncodedString(), note: latest.note,
                              verifierKey: signer.verifierKey)
    }

    /// The inclusion proof of invoice `index` in the tree of `size` leaves (default: the latest checkpoint).
    public func inclusionProof(index: Int, size: Int?) throws -> InclusionProofInfo {
        let leaves = try ledger.readLedger { try $0.leafHashes() }
        let treeSize = try size ?? checkpoint().size
        guard treeSize >= 1, treeSize <= leaves.count else {
            throw ProvenanceError.invalid("--size \(treeSize) is not a tree size of this ledger (1 to \(leaves.count))")
        }
        guard index >= 0, index < treeSize else {
            throw ProvenanceError.notFound("no invoice \(index) in the tree of size \(treeSize)")
        }
        let proof = try MerkleTree.inclusionProof(index: index, size: treeSize, leafHashes: leaves)
        return InclusionProofInfo(index: index, treeSize: treeSize, leafHash: leaves[index].base64EncodedString(),
                                  rootHash: MerkleTree.root(ofLeafHashes: Array(leaves.prefix(treeSize))).base64EncodedString(),
                                  proof: proof.map { $0.base64EncodedString() })
    }

    public func consistencyProof(oldSize: Int, newSize: Int?) throws -> ConsistencyProofInfo {
        let leaves = try ledger.readLedger { try $0.leafHashes() }
        let new = newSize ?? leaves.count
        guard new <= leaves.count else { throw ProvenanceError.invalid("NEW_SIZE \(new) is larger than the ledger (\(leaves.count))") }
        guard oldSize >= 0, oldSize <= new else { throw ProvenanceError.invalid("OLD_SIZE \(oldSize) must be between 0 and \(new)") }
        let proof = try MerkleTree.consistencyProof(oldSize: oldSize, newSize: new, leafHashes: leaves)
        return ConsistencyProofInfo(oldSize: oldSize, newSize: new,
                                    oldRoot: MerkleTree.root(ofLeafHashes: Array(leaves.prefix(oldSize))).base64EncodedString(),
                                    newRoot: MerkleTree.root(ofLeafHashes: Array(leaves.prefix(new))).base64EncodedString(),
                                    proof: proof.map { $0.base64EncodedString() })
    }
}

/// One statement for a payee: their invoices with proofs that each is in the signed ledger.
public struct InvoiceBundle: Sendable {
    public struct Item: Sendable {
        public var index: Int
        public var leafHash: String
        public var proof: [String]
        public var received: TokenAmount
        public var paid: TokenAmount
        public var bytes: Data
    }

    public var account: String
    public var checkpoint: CheckpointInfo
    public var items: [Item]
    public var received: TokenAmount
    public var paid: TokenAmount
    /// The settlement terms blocks the invoices refer to, by SHA-256.
    public var terms: [String: Data]
}

extension Store {
    /// Every invoice that paid or charged `account` in [`from`, `to`] (Unix seconds), each with
    /// its inclusion proof against the latest signed checkpoint.
    public func bundle(account: String, from: Int64?, to: Int64?) throws -> InvoiceBundle {
        let checkpoint = try checkpoint()
        let leaves = try ledger.readLedger { try $0.leafHashes() }
        let entries = try invoices(account: account, model: nil, from: from, to: to).filter { $0.index < checkpoint.size }
        var items: [InvoiceBundle.Item] = []
        var terms: [String: Data] = [:]
        var received = TokenAmount.zero
        var paid = TokenAmount.zero
        for entry in entries {
            var inflow = TokenAmount.zero
            for payout in entry.invoice.computation.payouts where payout.account == account { inflow = try inflow.adding(payout.amount) }
            var outflow = TokenAmount.zero
            if entry.invoice.record.caller == account {
                outflow = try entry.invoice.computation.fee.subtracting(entry.invoice.computation.penalty)
            }
            if let sha = entry.invoice.termsSHA256, terms[sha] == nil, let block = try self.terms(sha256: sha) { terms[sha] = block.bytes }
            received = try received.adding(inflow)
            paid = try paid.adding(outflow)
            let proof = try MerkleTree.inclusionProof(index: entry.index, size: checkpoint.size, leafHashes: leaves)
            items.append(.init(index: entry.index, leafHash: entry.leafHash, proof: proof.map { $0.base64EncodedString() },
                               received: inflow, paid: outflow, bytes: entry.bytes))
        }
        return InvoiceBundle(account: account, checkpoint: checkpoint, items: items, received: received, paid: paid, terms: terms)
    }
}

/// One line of an account's statement: a transfer and, when expanded, the invoices (or, for a
/// reservation, the calls) a batch line adds up.
public struct StatementLine: Sendable, Encodable {
    public struct Item: Sendable, Encodable {
        /// The invoice that moved this part (charges, releases, payouts, refunds)…
        public var invoice: Int?
        /// …or the idempotency key of the call whose fee was reserved.
        public var call: String?
        public var amount: TokenAmount

        public init(invoice: Int?, call: String?, amount: TokenAmount) {
            self.invoice = invoice
            self.call = call
            self.amount = amount
        }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(invoice, forKey: .invoice)
            try container.encode(call, forKey: .call)
            try container.encode(amount.description, forKey: .amount)
            try container.encode(amount.rawString, forKey: .amountRaw)
        }

        enum CodingKeys: String, CodingKey {
            case invoice, call, amount
            case amountRaw = "amount_raw"
        }
    }

    public var transfer: Transfer
    /// Nil unless expanded, and for transfers that are not batch lines.
    public var items: [Item]?

    public init(transfer: Transfer, items: [Item]?) {
        self.transfer = transfer
        self.items = items
    }

    public func encode(to encoder: any Encoder) throws {
        try transfer.encode(to: encoder)
        if let items {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(items, forKey: .invoices)
        }
    }

    enum CodingKeys: String, CodingKey { case invoices }
}

extension Store {
    /// Every transfer in or out of `account`, oldest first; with `expand`, each batch line
    /// lists the invoices (or reserved calls) whose parts it sums, so a contributor sees every
    /// call that paid them.
    public func statement(of account: String, expand: Bool) throws -> [StatementLine] {
        let transfers = try statement(of: account)
        guard expand else { return transfers.map { StatementLine(transfer: $0, items: nil) } }
        var batchInvoices: [Int64: [Invoice]] = [:]
        return try transfers.map { transfer in
            guard let batchID = transfer.batch else { return StatementLine(transfer: transfer, items: nil) }
            if transfer.cause == .reserve {
                let reservations = try ledger.readLedger { try $0.reservations(batch: batchID) }
                return StatementLine(transfer: transfer, items: reservations.filter { $0.caller == transfer.from }.map {
                    StatementLine.Item(invoice: nil, call: $0.idempotencyKey, amount: $0.fee)
                })
            }
            if batchInvoices[batchID] == nil {
                let stored = try ledger.readLedger { ledger -> [StoredInvoice] in
                    guard let batch = try ledger.batch(id: batchID) else { return [] }
                    return try ledger.invoices(indices: Array(batch.firstInvoice..<(batch.firstInvoice + batch.invoiceCount)))
                }
                batchInvoices[batchID] = try stored.map { try entry($0).invoice }
            }
            let key = Book.NetKey(from: transfer.from, to: transfer.to, cause: transfer.cause)
            var items: [StatementLine.Item] = []
            for invoice in batchInvoices[batchID]! {
                var amount = TokenAmount.zero
                for movement in expectedMovements(invoice) where movement.key == key { amount = try amount.adding(movement.amount) }
                if amount.raw > 0 { items.append(StatementLine.Item(invoice: invoice.ledgerIndex, call: nil, amount: amount)) }
            }
            return StatementLine(transfer: transfer, items: items)
        }
    }
}
