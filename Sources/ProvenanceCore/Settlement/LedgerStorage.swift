public import Foundation

/// A transfer between two accounts, with its cause. Every movement of money is one.
public struct Transfer: Sendable, Equatable {
    public enum Cause: String, Sendable, Codable {
        case deposit, withdrawal, stake, charge, reserve, release, payout, refund
    }

    public var sequence: Int64
    public var from: String
    public var to: String
    public var amount: TokenAmount
    public var cause: Cause
    public var invoice: Int?
    /// The call record's digest, for charges, reserves and releases (single-call transfers of
    /// older ledgers).
    public var call: String?
    /// The settlement batch this transfer nets, if it is one of a batch's aggregated lines.
    public var batch: Int64?
    public var createdAt: Int64
    /// SHA-256 chaining this transfer to the previous one, so any edit shows.
    public var hash: String

    public init(sequence: Int64, from: String, to: String, amount: TokenAmount, cause: Cause, invoice: Int?, call: String?,
                batch: Int64?, createdAt: Int64, hash: String) {
        self.sequence = sequence
        self.from = from
        self.to = to
        self.amount = amount
        self.cause = cause
        self.invoice = invoice
        self.call = call
        self.batch = batch
        self.createdAt = createdAt
        self.hash = hash
    }

    /// The hash of this transfer given the previous transfer's hash: SHA-256 of the canonical
    /// JSON object of its fields and `previous` (`canonicalBytes`).
    public func computeHash(previous: String) -> String {
        SHA256Digest.hex(of: canonicalBytes(previous: previous))
    }

    /// The canonical JSON object `{"amount", "batch" (batch lines only, so transfers written
    /// before batches hash as they did), "call", "cause", "created_at", "from", "invoice",
    /// "previous", "sequence", "to"}`, written in that (sorted) order directly: building a
    /// dictionary of values and sorting its keys for every transfer was a twentieth of a
    /// group commit. It is written with `CanonicalWriter`: integers straight from the stack,
    /// the bytes copied into `Data` at once (`String(sequence)` and its like allocated a string
    /// each, and `Data(bytes)` took Foundation's generic path).
    public func canonicalBytes(previous: String) -> Data {
        var out = CanonicalWriter(capacity: 256 + from.utf8.count + to.utf8.count)
        out.raw(#"{"amount":"#)
        out.string(amount.rawString)
        if let batch {
            out.raw(#","batch":"#)
            out.integer(batch)
        }
        out.raw(#","call":"#)
        out.optional(call)
        out.raw(#","cause":"#)
        out.string(cause.rawValue)
        out.raw(#","created_at":"#)
        out.integer(createdAt)
        out.raw(#","from":"#)
        out.string(from)
        out.raw(#","invoice":"#)
        if let invoice { out.integer(invoice) } else { out.raw("null") }
        out.raw(#","previous":"#)
        out.string(previous)
        out.raw(#","sequence":"#)
        out.integer(sequence)
        out.raw(#","to":"#)
        out.string(to)
        out.byte(UInt8(ascii: "}"))
        return out.data
    }

    public static let genesisHash = String(repeating: "0", count: 64)
}

extension Transfer: Encodable {
    enum CodingKeys: String, CodingKey {
        case sequence, from, to, amount, cause, invoice, call, batch
        case amountRaw = "amount_raw"
        case createdAt = "created_at"
    }

    /// The one JSON shape of a transfer, for the CLI and the registry: amounts as token decimal
    /// and base-unit strings, absent invoice and call as null.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(sequence, forKey: .sequence)
        try container.encode(from, forKey: .from)
        try container.encode(to, forKey: .to)
        try container.encode(amount.description, forKey: .amount)
        try container.encode(amount.rawString, forKey: .amountRaw)
        try container.encode(cause.rawValue, forKey: .cause)
        try container.encode(invoice, forKey: .invoice)
        try container.encode(call, forKey: .call)
        try container.encode(batch.map { Store.batchName($0) }, forKey: .batch)
        try container.encode(createdAt, forKey: .createdAt)
    }
}

public struct NodeRecord: Sendable, Equatable {
    public var name: String
    public var publicKey: String
    public var stake: TokenAmount

    public init(name: String, publicKey: String, stake: TokenAmount) {
        self.name = name
        self.publicKey = publicKey
        self.stake = stake
    }
}

/// A call whose fee is reserved, waiting for `settle`.
public struct PendingCall: Sendable, Equatable {
    public var record: CallRecord
    public var price: Price
    public var fee: TokenAmount
    /// The record's canonical bytes as stored (what the node signed).
    public var recordBytes: Data
    /// The signature's canonical bytes, as the invoice will carry them; read with `signature()`.
    public var signatureBytes: Data
    /// The call's output, kept for a per-call plugin (span-match) until the call is settled.
    public var outputText: String?
    /// The row the storage keeps it in, when it settles it by that row (SQLite's `pending_calls`);
    /// nil for a call not read from storage, or a storage that finds it by its key alone.
    public var storageRow: Int64?

    public init(record: CallRecord, signature: CallSignature, price: Price, fee: TokenAmount, recordBytes: Data? = nil, outputText: String? = nil) {
        self.init(record: record, signatureBytes: signature.canonicalBytes, price: price, fee: fee,
                  recordBytes: recordBytes ?? record.canonicalBytes, outputText: outputText)
    }

    public init(record: CallRecord, signatureBytes: Data, price: Price, fee: TokenAmount, recordBytes: Data, outputText: String? = nil) {
        self.outputText = outputText
        self.record = record
        self.signatureBytes = signatureBytes
        self.price = price
        self.fee = fee
        self.recordBytes = recordBytes
    }

    public func signature() throws -> CallSignature { try CallSignature(canonical: try CanonicalValue(parsing: signatureBytes)) }
}

/// What the ledger stores for one invoice.
public struct StoredInvoice: Sendable, Equatable {
    public var index: Int
    public var bytes: Data
    public var leafHash: Data
    public var settledAt: Int64

    public init(index: Int, bytes: Data, leafHash: Data, settledAt: Int64) {
        self.index = index
        self.bytes = bytes
        self.leafHash = leafHash
        self.settledAt = settledAt
    }
}

/// One settlement batch: a group commit of calls, or a batch of deferred calls settled together.
/// Its invoices are contiguous in the ledger; its transfers are one line per (from, to, cause).
public struct SettlementBatch: Sendable, Equatable {
    public var id: Int64
    public var firstInvoice: Int
    public var invoiceCount: Int
    public var createdAt: Int64

    public init(id: Int64, firstInvoice: Int, invoiceCount: Int, createdAt: Int64) {
        self.id = id
        self.firstInvoice = firstInvoice
        self.invoiceCount = invoiceCount
        self.createdAt = createdAt
    }
}

/// A deferred call's reservation, as the calls table keeps it after settlement too.
public struct Reservation: Sendable, Equatable {
    public var idempotencyKey: String
    public var caller: String
    public var fee: TokenAmount
    public var batch: Int64

    public init(idempotencyKey: String, caller: String, fee: TokenAmount, batch: Int64) {
        self.idempotencyKey = idempotencyKey
        self.caller = caller
        self.fee = fee
        self.batch = batch
    }
}

/// A deposit or withdrawal made under an idempotency key.
public struct MoneyRequest: Sendable, Equatable {
    public var key: String
    public var digest: String
    public var transfer: Int64

    public init(key: String, digest: String, transfer: Int64) {
        self.key = key
        self.digest = digest
        self.transfer = transfer
    }
}

public struct StoredCheckpoint: Sendable, Equatable {
    public var size: Int
    public var root: Data
    public var note: String

    public init(size: Int, root: Data, note: String) {
        self.size = size
        self.root = root
        self.note = note
    }
}

public enum CallStatus: Sendable, Equatable {
    case pending(digest: String)
    case settled(digest: String, invoice: Int)

    public var digest: String {
        switch self {
        case .pending(let digest), .settled(let digest, _): return digest
        }
    }
}

/// Reads of the money side of the store.
public protocol LedgerReader {
    func balance(of account: String) throws -> TokenAmount?
    func balances() throws -> [String: TokenAmount]
    func transfers(account: String?) throws -> [Transfer]
    func node(named name: String) throws -> NodeRecord?
    func nodes() throws -> [NodeRecord]
    func price(model: String) throws -> Price?
    /// A model's active attribution plugin, as the index holds it.
    func activePlugin(model: String) throws -> String?
    func callStatus(idempotencyKey: String) throws -> CallStatus?
    func pendingCalls() throws -> [PendingCall]
    /// How many calls are pending, counted by the database: nothing of them is read.
    func pendingCallCount() throws -> Int
    /// The idempotency keys of the calls still pending.
    func pendingCallKeys() throws -> Set<String>
    func invoice(index: Int) throws -> StoredInvoice?
    func invoices(indices: [Int]) throws -> [StoredInvoice]
    func invoiceIndices(account: String?, model: String?) throws -> [Int]
    func allInvoices() throws -> [StoredInvoice]
    func leafHashes() throws -> [Data]
    func frontier() throws -> CompactRange
    func checkpoints() throws -> [StoredCheckpoint]
    func lastTransfer() throws -> (sequence: Int64, hash: String)
    func transfer(sequence: Int64) throws -> Transfer?
    /// A settlement terms block by its SHA-256 (hex).
    func terms(sha256: String) throws -> Data?
    func batches() throws -> [SettlementBatch]
    func batch(id: Int64) throws -> SettlementBatch?
    /// Reservations made in `batch` (every batch when nil), in the order they were made.
    func reservations(batch: Int64?) throws -> [Reservation]
    func moneyRequest(key: String) throws -> MoneyRequest?
    /// The statuses of many calls at once (a group commit's), by idempotency key.
    func callStatuses(idempotencyKeys: [String]) throws -> [String: CallStatus]
    /// The balances of the accounts among `accounts` that exist.
    func balances(of accounts: [String]) throws -> [String: TokenAmount]
    /// The first disagreement between the transfers and an index of them by account that the
    /// backend keeps itself rather than through the database's own indexes (nil: none, or no
    /// such index), for `verify`.
    func accountIndexProblem() throws -> String?
}

/// An invoice row as a batch writes it.
public struct InvoiceRow: Sendable {
    public var invoice: StoredInvoice
    public var caller: String
    public var model: String
    public var batch: String?
    /// The call it settles: its idempotency key and record digest.
    public var idempotencyKey: String
    public var digest: String
    /// Whether the call was reserved (deferred) and is pending until this row settles it.
    public var reserved: Bool
    /// For a reserved call, the row its pending call was read from (`PendingCall.storageRow`).
    public var pendingRow: Int64? = nil
}

/// Writes, all inside one transaction that commits or rolls back whole.
public protocol LedgerWriter: LedgerReader {
    func insert(_ transfer: Transfer) throws
    func insert(_ node: NodeRecord) throws
    func setPrice(_ price: Price, model: String, at time: Int64) throws
    func saveFrontier(_ range: CompactRange) throws
    func insertCheckpoint(_ checkpoint: StoredCheckpoint, at time: Int64) throws
    /// Stores a terms block unless it is already stored.
    func insertTerms(sha256: String, bytes: Data) throws
    /// Opens a batch; its invoice range is set by `closeBatch`.
    func insertBatch(firstInvoice: Int, at time: Int64) throws -> Int64
    func closeBatch(_ id: Int64, invoiceCount: Int) throws
    func insertMoneyRequest(_ request: MoneyRequest) throws
    /// Keeps a group's deferred calls until settlement, in order; `digest` is each record's SHA-256
    /// (hex), `batch` the batch whose transfer reserved their fees.
    func insertPending(_ calls: [(call: PendingCall, digest: String)], batch: Int64, at time: Int64) throws
    /// Writes many invoices and marks their calls settled: one group's or batch's.
    func insertInvoices(_ rows: [InvoiceRow], at time: Int64) throws
    func insert(_ transfers: [Transfer]) throws
    func setBalances(_ balances: [(account: String, amount: TokenAmount)]) throws
    /// Where the store stands, read inside this transaction: the same mark in a later
    /// transaction means nothing was written to the store in between, by this process or any
    /// other. Nil when the backend cannot tell cheaply; a group commit then reads its ledger
    /// state anew each time (`LedgerSnapshot`).
    func changeMark() throws -> LedgerChangeMark?
}

/// A point in a store's history of writes, as a backend tells it (`LedgerWriter.changeMark`).
public struct LedgerChangeMark: Equatable, Sendable {
    /// Changes when another connection commits.
    public let version: Int64
    /// Counts the rows this connection has written.
    public let changes: Int64

    public init(version: Int64, changes: Int64) {
        self.version = version
        self.changes = changes
    }
}

/// What a group commit knows of the ledger once it has committed: its last transfer, its
/// frontier, the balances of the accounts it read or wrote, the prices and plugins it checked.
/// The next group starts from it instead of reading them again, if the store's change mark is
/// still the one taken after the group's writes: nothing else has written since, here or in
/// another process. Reading them was about 2.7% of a deferred run's samples (64 callers'
/// balances, the last transfer and the frontier, the model's price, for every group).
struct LedgerSnapshot {
    let mark: LedgerChangeMark
    let lastTransfer: (sequence: Int64, hash: String)
    let frontier: CompactRange
    /// Accounts that exist, with their balances.
    let balances: [String: TokenAmount]
    let prices: [String: Price?]
    let plugins: [String: String?]

    /// Beyond this many accounts, the balances are read anew by every group.
    static let maxAccounts = 100_000
}

/// The storage of accounts, transfers, calls, invoices and the Merkle ledger.
public protocol LedgerStorage: AnyObject, Sendable {
    func readLedger<T>(_ body: (any LedgerReader) throws -> T) throws -> T
    func writeLedger<T>(_ body: (any LedgerWriter) throws -> T) throws -> T
}
