public import Foundation
import GRDB
import GRDBSQLite

extension SQLiteRegistryIndex: LedgerStorage {
    static func registerSettlementMigration(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("v4-settlement") { db in
            // Amounts are decimal strings of base units: SQLite integers stop at 2^63.
            try db.create(table: "accounts") { t in
                t.primaryKey("id", .text)
                t.column("balance", .text).notNull()
            }
            try db.create(table: "transfers") { t in
                t.primaryKey("sequence", .integer)
                t.column("from_account", .text).notNull()
                t.column("to_account", .text).notNull()
                t.column("amount", .text).notNull()
                t.column("cause", .text).notNull()
                t.column("invoice", .integer)
                t.column("call", .text)
                t.column("created_at", .integer).notNull()
                t.column("hash", .text).notNull()
            }
            try db.create(index: "transfers_by_from", on: "transfers", columns: ["from_account"])
            try db.create(index: "transfers_by_to", on: "transfers", columns: ["to_account"])
            try db.create(index: "transfers_by_invoice", on: "transfers", columns: ["invoice"])
            try db.create(table: "nodes") { t in
                t.primaryKey("name", .text)
                t.column("public_key", .text).notNull()
                t.column("stake", .text).notNull()
            }
            try db.create(table: "prices") { t in
                t.primaryKey("model", .text)
                t.column("input_per_1k", .text).notNull()
                t.column("output_per_1k", .text).notNull()
                t.column("min_fee", .text).notNull()
                t.column("split", .text).notNull()
                t.column("slo_ms", .integer)
                t.column("slo_penalty_bps", .integer).notNull()
                t.column("updated_at", .integer).notNull()
            }
            try db.create(table: "calls") { t in
                t.primaryKey("idempotency_key", .text)
                t.column("digest", .text).notNull()
                t.column("status", .text).notNull()
                t.column("record", .blob)
                t.column("signature", .blob)
                t.column("price", .blob)
                t.column("fee", .text)
                t.column("invoice", .integer)
                t.column("created_at", .integer).notNull()
            }
            try db.create(index: "calls_by_status", on: "calls", columns: ["status"])
            try db.create(table: "invoices") { t in
                t.primaryKey("ledger_index", .integer)
                t.column("bytes", .blob).notNull()
                t.column("leaf_hash", .blob).notNull()
                t.column("caller", .text).notNull()
                t.column("model", .text).notNull()
                t.column("batch", .text)
                t.column("settled_at", .integer).notNull()
            }
            try db.create(index: "invoices_by_model", on: "invoices", columns: ["model"])
            try db.create(table: "ledger_state") { t in
                t.primaryKey("id", .integer)
                t.column("frontier", .blob).notNull()
            }
            try db.create(table: "checkpoints") { t in
                t.primaryKey("size", .integer)
                t.column("root", .blob).notNull()
                t.column("note", .text).notNull()
                t.column("created_at", .integer).notNull()
            }
        }
    }

    /// Per-call attribution: a deferred call keeps its output text until it is settled.
    static func registerCallOutputMigration(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("v7-call-outputs") { db in
            try db.alter(table: "calls") { t in t.add(column: "output_text", .text) }
        }
    }

    /// Net settlement: transfers netted per batch, settlement terms stored once, deferred calls
    /// remembering their caller and reserving batch, idempotent deposits and withdrawals.
    static func registerNetSettlementMigration(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("v6-net-settlement") { db in
            try db.alter(table: "transfers") { t in t.add(column: "batch", .integer) }
            try db.create(index: "transfers_by_batch", on: "transfers", columns: ["batch"])
            try db.create(table: "batches") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("first_invoice", .integer).notNull()
                t.column("invoice_count", .integer).notNull()
                t.column("created_at", .integer).notNull()
            }
            // Batch names of older ledgers were "batch-<ledger size>": start new ids above them.
            try db.execute(sql: "INSERT INTO sqlite_sequence (name, seq) VALUES ('batches', (SELECT COUNT(*) FROM invoices))")
            try db.create(table: "invoice_terms") { t in
                t.primaryKey("sha256", .text)
                t.column("bytes", .blob).notNull()
            }
            try db.alter(table: "calls") { t in
                t.add(column: "caller", .text)
                t.add(column: "reserve_batch", .integer)
            }
            try db.create(index: "calls_by_reserve_batch", on: "calls", columns: ["reserve_batch"], condition: Column("reserve_batch") != nil)
            try db.create(table: "money_requests") { t in
                t.primaryKey("key", .text)
                t.column("digest", .text).notNull()
                t.column("transfer", .integer).notNull()
            }
        }
    }

    /// Only pending calls are indexed by status (settled ones, nearly every row, were indexed
    /// for no query), in the order settlement takes them.
    static func registerPendingIndexMigration(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("v8-pending-index") { db in
            try db.drop(index: "calls_by_status")
            try db.execute(sql: "CREATE INDEX calls_pending ON calls (created_at) WHERE status = 'pending'")
        }
    }

    /// A deferred call's record, signature, price and output live in `pending_calls` until it
    /// is settled (with its fee repeated, so that reading them takes no join), apart from its row
    /// in `calls` (key, digest, status, reservation), which stays small for good. Settling updates that row in place (no index covers what changes) and
    /// deletes the payload by its rowid; the payload's pages go back to the free list for the
    /// next calls. Before, the row was deleted and written again: the delete, through three
    /// indexes, was half of writing a batch's invoices.
    static func registerPendingPayloadMigration(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("v9-pending-payloads") { db in
            try db.execute(sql: """
                CREATE TABLE pending_calls (id INTEGER PRIMARY KEY, idempotency_key TEXT NOT NULL, record BLOB NOT NULL,
                  signature BLOB NOT NULL, price BLOB NOT NULL, fee TEXT NOT NULL, output_text TEXT);
                INSERT INTO pending_calls (idempotency_key, record, signature, price, fee, output_text)
                  SELECT idempotency_key, record, signature, price, fee, output_text FROM calls
                  WHERE status = 'pending' ORDER BY created_at, rowid;
                UPDATE calls SET record = NULL, signature = NULL, price = NULL, output_text = NULL WHERE status = 'pending';
                DROP INDEX calls_pending;
                """)
        }
    }

    /// An account's transfers are found through `account_postings` (account, transfer sequence),
    /// filled in runs of `SQLiteLedgerAccess.postingRun` transfers rather than one entry per
    /// transfer as it is written. An index on `transfers (from_account)` took an entry on the
    /// page of each account a group commit moved money for: a deferred group of about 16 calls
    /// from as many callers dirtied about 18 pages of it, 8 KB each written to the log and again
    /// to the database, 44% of the bytes a group wrote (`Benchmarks/wal-frames.sh`). A run
    /// dirties each account's page once, however many of its transfers the account has.
    /// Transfers past the last run (`account_postings_state.upto`) are found by scanning that
    /// short tail.
    ///
    /// The indexes of transfers by invoice and by batch go too: no query reads them, and each
    /// took a page a group commit (a netted transfer's invoice is NULL: every group's landed on
    /// the last page of NULLs, splitting it in the middle of the index).
    static func registerAccountPostingsMigration(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("v10-account-postings") { db in
            try db.execute(sql: """
                CREATE TABLE account_postings (account TEXT NOT NULL, sequence INTEGER NOT NULL, PRIMARY KEY (account, sequence)) WITHOUT ROWID;
                CREATE TABLE account_postings_state (id INTEGER PRIMARY KEY CHECK (id = 1), upto INTEGER NOT NULL);
                INSERT INTO account_postings (account, sequence)
                  SELECT from_account, sequence FROM transfers UNION SELECT to_account, sequence FROM transfers ORDER BY 1, 2;
                INSERT INTO account_postings_state (id, upto) VALUES (1, (SELECT COALESCE(MAX(sequence), 0) FROM transfers));
                DROP INDEX transfers_by_from;
                DROP INDEX transfers_by_to;
                DROP INDEX transfers_by_invoice;
                DROP INDEX transfers_by_batch;
                """)
        }
    }

    public func readLedger<T>(_ body: (any LedgerReader) throws -> T) throws -> T {
        try read { db in try body(SQLiteLedgerAccess(db: db)) }
    }

    public func writeLedger<T>(_ body: (any LedgerWriter) throws -> T) throws -> T {
        try write { db in try body(SQLiteLedgerAccess(db: db)) }
    }
}

/// The ledger's SQL, on one connection inside one transaction (or read).
extension PendingCall {
    /// A pending call's row as either backend stores it.
    public struct StoredRow: Sendable {
        public var record: Data
        public var signature: Data
        public var price: Data
        public var fee: String
        public var output: String?
        /// Where the storage keeps it, when it finds it by more than its key (see `PendingCall.storageRow`).
        public var storageRow: Int64?

        public init(record: Data, signature: Data, price: Data, fee: String, output: String?, storageRow: Int64? = nil) {
            self.record = record
            self.signature = signature
            self.price = price
            self.fee = fee
            self.output = output
            self.storageRow = storageRow
        }
    }

    /// Decodes stored pending calls. Decoding a batch of ten thousand records is most of reading
    /// it, so it is spread over the cores.
    public static func decode(_ rows: [StoredRow]) throws -> [PendingCall] {
        let decoded = Slots<Result<PendingCall, any Error>>(count: rows.count, repeating: .failure(ProvenanceError(.storage, "not decoded")))
        let chunk = 256
        Parallel.forEach((rows.count + chunk - 1) / chunk) { part in
            // Calls reserved together mostly share one price: decode each distinct one once.
            var prices: [Data: Price] = [:]
            for position in (part * chunk)..<min(rows.count, (part + 1) * chunk) {
                let row = rows[position]
                decoded[position] = Result {
                    let price = try prices[row.price] ?? Price(storedBytes: row.price)
                    prices[row.price] = price
                    var call = PendingCall(record: try CallRecord(canonicalBytes: row.record), signatureBytes: row.signature,
                                           price: price, fee: try TokenAmount(stored: row.fee, in: "call"), recordBytes: row.record,
                                           outputText: row.output)
                    call.storageRow = row.storageRow
                    return call
                }
            }
        }
        return try decoded.map { try $0.get() }
    }
}

extension Price {
    /// The canonical bytes a pending call's price is kept as, by either backend.
    public var storedBytes: Data { SQLiteLedgerAccess.encodePrice(self) }

    public init(storedBytes: Data) throws { self = try SQLiteLedgerAccess.decodePrice(storedBytes) }
}

struct SQLiteLedgerAccess: LedgerWriter {
    let db: Database

    func amount(_ text: String, _ what: @autoclosure () -> String) throws -> TokenAmount {
        try TokenAmount(stored: text, in: what())
    }

    func balance(of account: String) throws -> TokenAmount? {
        let statement = try db.cachedStatement(sql: "SELECT balance FROM accounts WHERE id = ?")
        return try String.fetchOne(statement, arguments: [account]).map { try amount($0, "account \(account)") }
    }

    func balances(of accounts: [String]) throws -> [String: TokenAmount] {
        let select = try SQLiteStep(db, sql: "SELECT balance FROM accounts WHERE id = ?")
        var result: [String: TokenAmount] = [:]
        for account in accounts {
            try select.bind(1, account)
            if let text = try select.first({ $0.text(0) }) {
                guard let text else { throw ProvenanceError(.storage, "account \(account) has no balance") }
                result[account] = try amount(text, "account \(account)")
            }
        }
        return result
    }

    func balances() throws -> [String: TokenAmount] {
        var result: [String: TokenAmount] = [:]
        for row in try Row.fetchAll(db, sql: "SELECT id, balance FROM accounts") {
            let id: String = row["id"]
            result[id] = try amount(row["balance"], "account \(id)")
        }
        return result
    }

    /// The sequences of an account's transfers, as SQL with one parameter (the account): those
    /// posted in runs, and the tail not posted yet.
    static let accountSequences = """
        SELECT sequence FROM account_postings WHERE account = ?1
        UNION ALL
        SELECT sequence FROM transfers WHERE sequence > (SELECT upto FROM account_postings_state WHERE id = 1)
          AND (from_account = ?1 OR to_account = ?1)
        """

    /// `account_postings` against the transfers it posts: every transfer up to the mark under
    /// the account it comes from and the one it goes to, nothing else, and the mark no further
    /// than the last transfer. A posting missing would leave a transfer out of a statement while
    /// the balances stayed right, so `verify` checks it like the balances.
    func accountIndexProblem() throws -> String? {
        guard let upto = try Int64.fetchOne(db, sql: "SELECT upto FROM account_postings_state WHERE id = 1") else {
            return "account_postings_state: the mark of posted transfers is missing"
        }
        let last = try Int64.fetchOne(db, sql: "SELECT COALESCE(MAX(sequence), 0) FROM transfers") ?? 0
        guard upto <= last else { return "account_postings_state: transfers are posted up to \(upto), past the last transfer \(last)" }
        let row = try Row.fetchOne(db, sql: """
            WITH expected (account, sequence) AS (
              SELECT from_account, sequence FROM transfers WHERE sequence <= ?1
              UNION SELECT to_account, sequence FROM transfers WHERE sequence <= ?1)
            SELECT * FROM (
              SELECT 'missing' AS problem, account, sequence FROM (SELECT account, sequence FROM expected
                                                                   EXCEPT SELECT account, sequence FROM account_postings)
              UNION ALL
              SELECT 'extra', account, sequence FROM (SELECT account, sequence FROM account_postings EXCEPT SELECT account, sequence FROM expected))
            ORDER BY sequence, account LIMIT 1
            """, arguments: [upto])
        guard let row else { return nil }
        let (problem, account, sequence): (String, String, Int64) = (row["problem"], row["account"], row["sequence"])
        return problem == "missing"
            ? "transfer \(sequence): not posted to the statement of account \(account) (account_postings)"
            : "account_postings: lists transfer \(sequence) in the statement of account \(account), which that transfer does not move money for"
    }

    func transfers(account: String?) throws -> [Transfer] {
        let rows: [Row]
        if let account {
            rows = try Row.fetchAll(db, sql: "SELECT * FROM transfers WHERE sequence IN (\(Self.accountSequences)) ORDER BY sequence",
                                    arguments: [account])
        } else {
            rows = try Row.fetchAll(db, sql: "SELECT * FROM transfers ORDER BY sequence")
        }
        return try rows.map { row in
            guard let cause = Transfer.Cause(rawValue: row["cause"]) else {
                throw ProvenanceError(.storage, "transfer \(row["sequence"] as Int64) has an unknown cause")
            }
            return Transfer(sequence: row["sequence"], from: row["from_account"], to: row["to_account"],
                            amount: try amount(row["amount"], "transfer \(row["sequence"] as Int64)"), cause: cause,
                            invoice: row["invoice"], call: row["call"], batch: row["batch"], createdAt: row["created_at"], hash: row["hash"])
        }
    }

    func transfer(sequence: Int64) throws -> Transfer? {
        guard let row = try Row.fetchOne(db, sql: "SELECT * FROM transfers WHERE sequence = ?", arguments: [sequence]) else { return nil }
        guard let cause = Transfer.Cause(rawValue: row["cause"]) else {
            throw ProvenanceError(.storage, "transfer \(sequence) has an unknown cause")
        }
        return Transfer(sequence: sequence, from: row["from_account"], to: row["to_account"],
                        amount: try amount(row["amount"], "transfer \(sequence)"), cause: cause, invoice: row["invoice"], call: row["call"],
                        batch: row["batch"], createdAt: row["created_at"], hash: row["hash"])
    }

    func terms(sha256: String) throws -> Data? {
        try Data.fetchOne(try db.cachedStatement(sql: "SELECT bytes FROM invoice_terms WHERE sha256 = ?"), arguments: [sha256])
    }

    func batches() throws -> [SettlementBatch] {
        try Row.fetchAll(db, sql: "SELECT * FROM batches ORDER BY id").map(Self.settlementBatch)
    }

    func batch(id: Int64) throws -> SettlementBatch? {
        try Row.fetchOne(db, sql: "SELECT * FROM batches WHERE id = ?", arguments: [id]).map(Self.settlementBatch)
    }

    static func settlementBatch(_ row: Row) -> SettlementBatch {
        SettlementBatch(id: row["id"], firstInvoice: row["first_invoice"], invoiceCount: row["invoice_count"], createdAt: row["created_at"])
    }

    func reservations(batch: Int64?) throws -> [Reservation] {
        let rows = try batch.map {
            try Row.fetchAll(db, sql: "SELECT idempotency_key, caller, fee, reserve_batch FROM calls WHERE reserve_batch = ? ORDER BY rowid",
                             arguments: [$0])
        } ?? Row.fetchAll(db, sql: "SELECT idempotency_key, caller, fee, reserve_batch FROM calls WHERE reserve_batch IS NOT NULL ORDER BY rowid")
        return try rows.map {
            let key: String = $0["idempotency_key"]
            guard let caller = $0["caller"] as String?, let fee = $0["fee"] as String? else {
                throw ProvenanceError(.storage, "the reservation of call \(key) has no caller or fee")
            }
            return Reservation(idempotencyKey: key, caller: caller, fee: try amount(fee, "call \(key)"), batch: $0["reserve_batch"])
        }
    }

    func moneyRequest(key: String) throws -> MoneyRequest? {
        try Row.fetchOne(db, sql: "SELECT * FROM money_requests WHERE key = ?", arguments: [key]).map {
            MoneyRequest(key: $0["key"], digest: $0["digest"], transfer: $0["transfer"])
        }
    }

    func node(named name: String) throws -> NodeRecord? {
        try Row.fetchOne(try db.cachedStatement(sql: "SELECT * FROM nodes WHERE name = ?"), arguments: [name]).map {
            NodeRecord(name: $0["name"], publicKey: $0["public_key"], stake: try amount($0["stake"], "node \(name)"))
        }
    }

    func nodes() throws -> [NodeRecord] {
        try Row.fetchAll(db, sql: "SELECT * FROM nodes ORDER BY name").map {
            NodeRecord(name: $0["name"], publicKey: $0["public_key"], stake: try amount($0["stake"], "node \($0["name"] as String)"))
        }
    }

    /// Prices as last read, with their row: a group commit reads each model's price to check the
    /// one its calls were prepared with, and parsing the amounts and split was most of that.
    private static let pricesRead = Locked<[String: (row: [DatabaseValue], price: Price)]>([:])

    func price(model: String) throws -> Price? {
        let statement = try db.cachedStatement(
            sql: "SELECT input_per_1k, output_per_1k, min_fee, split, slo_ms, slo_penalty_bps FROM prices WHERE model = ?")
        guard let row = try Row.fetchOne(statement, arguments: [model]) else { return nil }
        let values = Array(row.databaseValues)
        if let known = Self.pricesRead.read({ $0[model] }), known.row == values { return known.price }
        let price = Price(inputPer1k: try amount(row[0], "price"), outputPer1k: try amount(row[1], "price"),
                          minFee: try amount(row[2], "price"), split: try RoleSplit(parsing: row[3]),
                          sloMilliseconds: (row[4] as Int64?).map { UInt64($0) }, sloPenaltyBps: UInt32(row[5] as Int64))
        Self.pricesRead.write {
            if $0.count >= 1_000 { $0.removeAll() }
            $0[model] = (values, price)
        }
        return price
    }

    func activePlugin(model: String) throws -> String? {
        try String.fetchOne(try db.cachedStatement(sql: "SELECT plugin FROM models WHERE name = ?"), arguments: [model])
    }

    func callStatuses(idempotencyKeys: [String]) throws -> [String: CallStatus] {
        let select = try SQLiteStep(db, sql: "SELECT digest, status, invoice FROM calls WHERE idempotency_key = ?")
        var result: [String: CallStatus] = [:]
        for key in idempotencyKeys {
            try select.bind(1, key)
            let status = try select.first { columns -> CallStatus in
                guard let digest = columns.text(0) else { throw ProvenanceError(.storage, "call \(key) has no digest") }
                if columns.text(1) == "settled", let invoice = columns.int64(2) { return .settled(digest: digest, invoice: Int(invoice)) }
                return .pending(digest: digest)
            }
            if let status { result[key] = status }
        }
        return result
    }

    func callStatus(idempotencyKey: String) throws -> CallStatus? {
        let statement = try db.cachedStatement(sql: "SELECT digest, status, invoice FROM calls WHERE idempotency_key = ?")
        guard let row = try Row.fetchOne(statement, arguments: [idempotencyKey]) else { return nil }
        if (row["status"] as String) == "settled", let invoice = row["invoice"] as Int? {
            return .settled(digest: row["digest"], invoice: invoice)
        }
        return .pending(digest: row["digest"])
    }

    func pendingCalls() throws -> [PendingCall] {
        // Through a cursor, by column position: fetching whole rows, then reading them by column
        // name, took twice as long as decoding the records that follows.
        var stored: [PendingCall.StoredRow] = []
        let rows = try Row.fetchCursor(db, sql: "SELECT id, record, signature, price, fee, output_text FROM pending_calls ORDER BY id")
        while let row = try rows.next() {
            stored.append(.init(record: row[1], signature: row[2], price: row[3], fee: row[4], output: row[5], storageRow: row[0]))
        }
        return try PendingCall.decode(stored)
    }

    func pendingCallCount() throws -> Int {
        try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM pending_calls") ?? 0
    }

    func pendingCallKeys() throws -> Set<String> {
        Set(try String.fetchAll(db, sql: "SELECT idempotency_key FROM pending_calls"))
    }

    /// The last price encoded, with its bytes: every call of a model carries the same one.
    private static let lastPrice = Locked<(Price, Data)?>(nil)

    static func encodePrice(_ price: Price) -> Data {
        if let (known, bytes) = lastPrice.read({ $0 }), known == price { return bytes }
        let bytes = encodeNewPrice(price)
        lastPrice.write { $0 = (price, bytes) }
        return bytes
    }

    private static func encodeNewPrice(_ price: Price) -> Data {
        CanonicalValue.object([
            "input_per_1k": .string(price.inputPer1k.rawString), "output_per_1k": .string(price.outputPer1k.rawString),
            "min_fee": .string(price.minFee.rawString), "split": .string(price.split.description),
            "slo_ms": price.sloMilliseconds.map { .integer($0) } ?? .null, "slo_penalty_bps": .integer(price.sloPenaltyBps),
        ]).encoded()
    }

    static func decodePrice(_ data: Data) throws -> Price {
        let value = try CanonicalValue(parsing: data)
        func amount(_ key: String) throws -> TokenAmount {
            guard let amount = value[key]?.stringValue.flatMap(TokenAmount.init(rawString:)) else {
                throw ProvenanceError(.storage, "a stored price has no \(key)")
            }
            return amount
        }
        return Price(inputPer1k: try amount("input_per_1k"), outputPer1k: try amount("output_per_1k"), minFee: try amount("min_fee"),
                     split: try RoleSplit(parsing: value["split"]?.stringValue ?? ""),
                     sloMilliseconds: value["slo_ms"]?.stringValue.flatMap { UInt64($0) },
                     sloPenaltyBps: value["slo_penalty_bps"]?.stringValue.flatMap { UInt32($0) } ?? 0)
    }

    func invoice(index: Int) throws -> StoredInvoice? {
        try Row.fetchOne(db, sql: "SELECT * FROM invoices WHERE ledger_index = ?", arguments: [index]).map(Self.storedInvoice)
    }

    func invoices(indices: [Int]) throws -> [StoredInvoice] {
        try indices.compactMap { try invoice(index: $0) }
    }

    func invoiceIndices(account: String?, model: String?) throws -> [Int] {
        guard let account else {
            guard let model else { return try Int.fetchAll(db, sql: "SELECT ledger_index FROM invoices ORDER BY ledger_index") }
            return try Int.fetchAll(db, sql: "SELECT ledger_index FROM invoices WHERE model = ? ORDER BY ledger_index", arguments: [model])
        }
        // Older ledgers link payouts to invoices; netted ones to batches, whose invoice ranges
        // are taken whole here (the store keeps those whose payouts name the account).
        let paid = "SELECT invoice, batch, cause FROM transfers WHERE sequence IN (\(Self.accountSequences)) AND to_account = ?1"
        var indices = Set(try Int.fetchAll(db, sql: """
            SELECT ledger_index FROM invoices WHERE (?2 IS NULL OR model = ?2)
              AND (caller = ?1 OR ledger_index IN (SELECT invoice FROM (\(paid)) WHERE invoice IS NOT NULL))
            """, arguments: [account, model]))
        let ranges = try Row.fetchAll(db, sql: """
            SELECT DISTINCT b.first_invoice, b.invoice_count FROM (\(paid)) t JOIN batches b ON b.id = t.batch
            WHERE t.cause = 'payout'
            """, arguments: [account])
        for range in ranges {
            let first: Int = range["first_invoice"], count: Int = range["invoice_count"]
            if let model {
                indices.formUnion(try Int.fetchAll(db, sql: "SELECT ledger_index FROM invoices WHERE ledger_index >= ? AND ledger_index < ? AND model = ?",
                                                   arguments: [first, first + count, model]))
            } else {
                indices.formUnion(first..<(first + count))
            }
        }
        return indices.sorted()
    }

    func allInvoices() throws -> [StoredInvoice] {
        try Row.fetchAll(db, sql: "SELECT * FROM invoices ORDER BY ledger_index").map(Self.storedInvoice)
    }

    static func storedInvoice(_ row: Row) -> StoredInvoice {
        StoredInvoice(index: row["ledger_index"], bytes: row["bytes"], leafHash: row["leaf_hash"], settledAt: row["settled_at"])
    }

    func leafHashes() throws -> [Data] {
        try Data.fetchAll(db, sql: "SELECT leaf_hash FROM invoices ORDER BY ledger_index")
    }

    func frontier() throws -> CompactRange {
        guard let data = try Data.fetchOne(try db.cachedStatement(sql: "SELECT frontier FROM ledger_state WHERE id = 1")) else { return CompactRange() }
        do { return try JSONDecoder().decode(CompactRange.self, from: data) } catch {
            throw ProvenanceError(.storage, "the ledger's Merkle frontier cannot be read: \(error)")
        }
    }

    func checkpoints() throws -> [StoredCheckpoint] {
        try Row.fetchAll(db, sql: "SELECT * FROM checkpoints ORDER BY size").map {
            StoredCheckpoint(size: $0["size"], root: $0["root"], note: $0["note"])
        }
    }

    func lastTransfer() throws -> (sequence: Int64, hash: String) {
        guard let row = try Row.fetchOne(try db.cachedStatement(sql: "SELECT sequence, hash FROM transfers ORDER BY sequence DESC LIMIT 1")) else {
            return (0, Transfer.genesisHash)
        }
        return (row["sequence"], row["hash"])
    }

    // MARK: Writes

    func insert(_ transfer: Transfer) throws {
        try insert([transfer])
    }

    func insert(_ transfers: [Transfer]) throws {
        let insert = try SQLiteStep(db, sql: """
            INSERT INTO transfers (sequence, from_account, to_account, amount, cause, invoice, call, batch, created_at, hash)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """)
        for transfer in transfers {
            try insert.bind(1, transfer.sequence)
            try insert.bind(2, transfer.from)
            try insert.bind(3, transfer.to)
            try insert.bind(4, transfer.amount.rawString)
            try insert.bind(5, transfer.cause.rawValue)
            try insert.bind(6, transfer.invoice.map(Int64.init))
            try insert.bind(7, transfer.call)
            try insert.bind(8, transfer.batch)
            try insert.bind(9, transfer.createdAt)
            try insert.bind(10, transfer.hash)
            try insert.run()
        }
        if let last = transfers.last?.sequence { try postAccounts(through: last) }
    }

    /// Transfers posted to `account_postings` at a time (see `registerAccountPostingsMigration`).
    /// A run of 4,096, sorted as it then was, took 10-13 ms (sqlite3's timer) inside the group
    /// commit that posted it, and every call waiting behind it waited that much longer:
    /// deferred p99 went from 14-16 ms to 17-22 ms.
    static let postingRun: Int64 = 1_024

    /// Posts the transfers after the last run, through `last`, once there are a run's worth.
    func postAccounts(through last: Int64) throws {
        guard let posted = try SQLiteStep(db, sql: "SELECT upto FROM account_postings_state WHERE id = 1").first({ $0.int64(0) }) ?? nil else {
            throw ProvenanceError(.storage, "account_postings_state has no row")
        }
        guard last - posted >= Self.postingRun else { return }
        // Both sides of each transfer, once when it goes from an account to itself. Unsorted: the
        // run's pages are few and in the cache, and sorting it first (UNION ... ORDER BY) took
        // 10-13 ms for 4,096 transfers against 6-8 ms for these two inserts (sqlite3's timer).
        try db.cachedStatement(sql: """
            INSERT INTO account_postings (account, sequence) SELECT from_account, sequence FROM transfers WHERE sequence > ?1 AND sequence <= ?2
            """).execute(arguments: [posted, last])
        try db.cachedStatement(sql: """
            INSERT INTO account_postings (account, sequence) SELECT to_account, sequence FROM transfers
            WHERE sequence > ?1 AND sequence <= ?2 AND to_account != from_account
            """).execute(arguments: [posted, last])
        try db.cachedStatement(sql: "UPDATE account_postings_state SET upto = ? WHERE id = 1").execute(arguments: [last])
    }

    /// `PRAGMA data_version`, which changes when another connection (of this process or
    /// another) commits, read after it opens the transaction's read; and the rows this
    /// connection has changed by any statement (`sqlite3_total_changes64`), since every write
    /// this process makes to the store goes through the pool's one writer connection.
    func changeMark() throws -> LedgerChangeMark? {
        guard let version = try SQLiteStep(db, sql: "PRAGMA data_version").first({ $0.int64(0) }) ?? nil else {
            throw ProvenanceError(.storage, "PRAGMA data_version returned nothing")
        }
        return LedgerChangeMark(version: version, changes: sqlite3_total_changes64(db.sqliteConnection))
    }

    func setBalances(_ balances: [(account: String, amount: TokenAmount)]) throws {
        let upsert = try SQLiteStep(db, sql: """
            INSERT INTO accounts (id, balance) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET balance = excluded.balance
            """)
        for (account, amount) in balances {
            try upsert.bind(1, account)
            try upsert.bind(2, amount.rawString)
            try upsert.run()
        }
    }

    func insert(_ node: NodeRecord) throws {
        try db.execute(sql: "INSERT INTO nodes (name, public_key, stake) VALUES (?, ?, ?)",
                       arguments: [node.name, node.publicKey, node.stake.rawString])
    }

    func setPrice(_ price: Price, model: String, at time: Int64) throws {
        try db.execute(sql: """
            INSERT INTO prices (model, input_per_1k, output_per_1k, min_fee, split, slo_ms, slo_penalty_bps, updated_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (model) DO UPDATE SET input_per_1k = excluded.input_per_1k, output_per_1k = excluded.output_per_1k,
              min_fee = excluded.min_fee, split = excluded.split, slo_ms = excluded.slo_ms,
              slo_penalty_bps = excluded.slo_penalty_bps, updated_at = excluded.updated_at
            """, arguments: [model, price.inputPer1k.rawString, price.outputPer1k.rawString, price.minFee.rawString,
                             price.split.description, price.sloMilliseconds.map { Int64($0) }, Int64(price.sloPenaltyBps), time])
    }

    func insertPending(_ calls: [(call: PendingCall, digest: String)], batch: Int64, at time: Int64) throws {
        let insertCall = try SQLiteStep(db, sql: """
            INSERT INTO calls (idempotency_key, digest, status, fee, caller, reserve_batch, created_at) VALUES (?, ?, 'pending', ?, ?, ?, ?)
            """)
        let insertPayload = try SQLiteStep(db, sql: """
            INSERT INTO pending_calls (idempotency_key, record, signature, price, fee, output_text) VALUES (?, ?, ?, ?, ?, ?)
            """)
        // Calls reserved together mostly share a price: encoded once for a run of them.
        var lastPrice: (price: Price, bytes: Data)?
        for (call, digest) in calls {
            let fee = call.fee.rawString
            try insertCall.bind(1, call.record.idempotencyKey)
            try insertCall.bind(2, digest)
            try insertCall.bind(3, fee)
            try insertCall.bind(4, call.record.caller)
            try insertCall.bind(5, batch)
            try insertCall.bind(6, time)
            try insertCall.run()
            if lastPrice?.price != call.price { lastPrice = (call.price, Self.encodePrice(call.price)) }
            try insertPayload.bind(1, call.record.idempotencyKey)
            try insertPayload.bind(2, call.recordBytes)
            try insertPayload.bind(3, call.signatureBytes)
            try insertPayload.bind(4, lastPrice!.bytes)
            try insertPayload.bind(5, fee)
            try insertPayload.bind(6, call.outputText)
            try insertPayload.run()
        }
    }

    /// Writes a group's or batch's invoices and settles their calls. A reserved call's row is
    /// marked settled in place and its payload (`pending_calls`, found by the row the pending
    /// call was read from) deleted.
    func insertInvoices(_ rows: [InvoiceRow], at time: Int64) throws {
        let insertInvoice = try SQLiteStep(db, sql: """
            INSERT INTO invoices (ledger_index, bytes, leaf_hash, caller, model, batch, settled_at) VALUES (?, ?, ?, ?, ?, ?, ?)
            """)
        // A call settled in real time: the invoice holds the record and signature, so the call row
        // keeps only the key and outcome. (Since v9 no row of calls holds a payload: there is none
        // to clear on conflict.)
        let markSettled = try SQLiteStep(db, sql: """
            INSERT INTO calls (idempotency_key, digest, status, invoice, created_at) VALUES (?, ?, 'settled', ?, ?)
            ON CONFLICT (idempotency_key) DO UPDATE SET status = 'settled', invoice = excluded.invoice
            """)
        let settleReserved = try SQLiteStep(db, sql: """
            UPDATE calls SET status = 'settled', invoice = ? WHERE idempotency_key = ? AND status = 'pending'
            """)
        let dropPayload = try SQLiteStep(db, sql: "DELETE FROM pending_calls WHERE id = ? AND idempotency_key = ?")
        for row in rows {
            let index = Int64(row.invoice.index)
            try insertInvoice.bind(1, index)
            try insertInvoice.bind(2, row.invoice.bytes)
            try insertInvoice.bind(3, row.invoice.leafHash)
            try insertInvoice.bind(4, row.caller)
            try insertInvoice.bind(5, row.model)
            try insertInvoice.bind(6, row.batch)
            try insertInvoice.bind(7, row.invoice.settledAt)
            try insertInvoice.run()
            guard row.reserved else {
                try markSettled.bind(1, row.idempotencyKey)
                try markSettled.bind(2, row.digest)
                try markSettled.bind(3, index)
                try markSettled.bind(4, time)
                try markSettled.run()
                continue
            }
            try settleReserved.bind(1, index)
            try settleReserved.bind(2, row.idempotencyKey)
            var settled = try settleReserved.run() == 1
            if settled {
                try dropPayload.bind(1, row.pendingRow)
                try dropPayload.bind(2, row.idempotencyKey)
                settled = try dropPayload.run() == 1
            }
            guard settled else {
                throw ProvenanceError(.storage, "call \(row.idempotencyKey) is settled as reserved but is not pending")
            }
        }
    }

    func saveFrontier(_ range: CompactRange) throws {
        let data = try JSONEncoder().encode(range)
        try db.execute(sql: "INSERT INTO ledger_state (id, frontier) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET frontier = excluded.frontier",
                       arguments: [data])
    }

    func insertTerms(sha256: String, bytes: Data) throws {
        try db.cachedStatement(sql: "INSERT INTO invoice_terms (sha256, bytes) VALUES (?, ?) ON CONFLICT (sha256) DO NOTHING")
            .execute(arguments: [sha256, bytes])
    }

    func insertBatch(firstInvoice: Int, at time: Int64) throws -> Int64 {
        try db.cachedStatement(sql: "INSERT INTO batches (first_invoice, invoice_count, created_at) VALUES (?, 0, ?)")
            .execute(arguments: [firstInvoice, time])
        return db.lastInsertedRowID
    }

    func closeBatch(_ id: Int64, invoiceCount: Int) throws {
        try db.cachedStatement(sql: "UPDATE batches SET invoice_count = ? WHERE id = ?").execute(arguments: [invoiceCount, id])
    }

    func insertMoneyRequest(_ request: MoneyRequest) throws {
        try db.execute(sql: "INSERT INTO money_requests (key, digest, transfer) VALUES (?, ?, ?)",
                       arguments: [request.key, request.digest, request.transfer])
    }

    func insertCheckpoint(_ checkpoint: StoredCheckpoint, at time: Int64) throws {
        try db.execute(sql: "INSERT OR REPLACE INTO checkpoints (size, root, note, created_at) VALUES (?, ?, ?, ?)",
                       arguments: [checkpoint.size, checkpoint.root, checkpoint.note, time])
    }
}
