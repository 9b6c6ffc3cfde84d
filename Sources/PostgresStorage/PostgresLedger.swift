import Foundation
import NIOCore
import PostgresNIO
public import ProvenanceCore

extension PostgresRegistryIndex: LedgerStorage {
    /// A read of the ledger as of one moment: a read-only snapshot transaction, so that a
    /// verification or a listing never sees half of another replica's batch.
    public func readLedger<T>(_ body: (any LedgerReader) throws -> T) throws -> T {
        try pool.withSession { session in
            try session.transaction("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY") { try body(PostgresLedgerAccess(session: session)) }
        }
    }

    /// A write transaction holding the ledger lock: one writer at a time across every replica,
    /// each reading what the one before it committed.
    public func writeLedger<T>(_ body: (any LedgerWriter) throws -> T) throws -> T {
        try pool.withSession { session in
            try session.transaction {
                try session.query("SELECT pg_advisory_xact_lock(\(Self.ledgerLock))", "lock the ledger")
                return try body(PostgresLedgerAccess(session: session))
            }
        }
    }
}

/// The ledger's SQL on one PostgreSQL connection inside one transaction. Inserts and updates
/// are sent without waiting; the transaction's commit waits for them.
struct PostgresLedgerAccess: LedgerWriter {
    let session: PostgresSession

    func amount(_ text: String, _ what: @autoclosure () -> String) throws -> TokenAmount {
        try TokenAmount(stored: text, in: what())
    }

    func balance(of account: String) throws -> TokenAmount? {
        try session.query("SELECT balance FROM accounts WHERE id = \(account)").first.map {
            try amount(try $0.decode(String.self), "account \(account)")
        }
    }

    func balances() throws -> [String: TokenAmount] {
        var result: [String: TokenAmount] = [:]
        for row in try session.query("SELECT id, balance FROM accounts") {
            let (id, balance) = try row.decode((String, String).self)
            result[id] = try amount(balance, "account \(id)")
        }
        return result
    }

    static let transferColumns = "sequence, from_account, to_account, amount, cause, invoice, call, batch, created_at, hash"

    func transfer(_ row: PostgresRow) throws -> Transfer {
        let (sequence, from, to, value, cause, invoice, call, batch, created, hash) =
            try row.decode((Int64, String, String, String, String, Int64?, String?, Int64?, Int64, String).self)
        guard let parsed = Transfer.Cause(rawValue: cause) else {
            throw ProvenanceError(.storage, "transfer \(sequence) has an unknown cause")
        }
        return Transfer(sequence: sequence, from: from, to: to, amount: try amount(value, "transfer \(sequence)"), cause: parsed,
                        invoice: invoice.map { Int($0) }, call: call, batch: batch, createdAt: created, hash: hash)
    }

    func transfers(account: String?) throws -> [Transfer] {
        let rows = try account.map {
            try session.query("""
                SELECT \(unescaped: Self.transferColumns) FROM transfers WHERE from_account = \($0) OR to_account = \($0) ORDER BY sequence
                """)
        } ?? session.query("SELECT \(unescaped: Self.transferColumns) FROM transfers ORDER BY sequence")
        return try rows.map(transfer)
    }

    func transfer(sequence: Int64) throws -> Transfer? {
        try session.query("SELECT \(unescaped: Self.transferColumns) FROM transfers WHERE sequence = \(sequence)").first.map(transfer)
    }

    func terms(sha256: String) throws -> Data? {
        try session.query("SELECT bytes FROM invoice_terms WHERE sha256 = \(sha256)").first.map { try $0.decode(Data.self) }
    }

    static func settlementBatch(_ row: PostgresRow) throws -> SettlementBatch {
        let (id, first, count, created) = try row.decode((Int64, Int64, Int64, Int64).self)
        return SettlementBatch(id: id, firstInvoice: Int(first), invoiceCount: Int(count), createdAt: created)
    }

    func batches() throws -> [SettlementBatch] {
        try session.query("SELECT id, first_invoice, invoice_count, created_at FROM batches ORDER BY id").map(Self.settlementBatch)
    }

    func batch(id: Int64) throws -> SettlementBatch? {
        try session.query("SELECT id, first_invoice, invoice_count, created_at FROM batches WHERE id = \(id)").first.map(Self.settlementBatch)
    }

    func reservations(batch: Int64?) throws -> [Reservation] {
        let rows = try batch.map {
            try session.query("""
                SELECT idempotency_key, caller, fee, reserve_batch FROM calls WHERE reserve_batch = \($0) ORDER BY position
                """)
        } ?? session.query("""
            SELECT idempotency_key, caller, fee, reserve_batch FROM calls WHERE reserve_batch IS NOT NULL ORDER BY position
            """)
        return try rows.map {
            let (key, caller, fee, batch) = try $0.decode((String, String?, String?, Int64).self)
            guard let caller, let fee else { throw ProvenanceError(.storage, "the reservation of call \(key) has no caller or fee") }
            return Reservation(idempotencyKey: key, caller: caller, fee: try amount(fee, "call \(key)"), batch: batch)
        }
    }

    func moneyRequest(key: String) throws -> MoneyRequest? {
        try session.query("SELECT key, digest, transfer FROM money_requests WHERE key = \(key)").first.map {
            let (key, digest, transfer) = try $0.decode((String, String, Int64).self)
            return MoneyRequest(key: key, digest: digest, transfer: transfer)
        }
    }

    func node(named name: String) throws -> NodeRecord? {
        try session.query("SELECT name, public_key, stake FROM nodes WHERE name = \(name)").first.map(node)
    }

    func node(_ row: PostgresRow) throws -> NodeRecord {
        let (name, key, stake) = try row.decode((String, String, String).self)
        return NodeRecord(name: name, publicKey: key, stake: try amount(stake, "node \(name)"))
    }

    func nodes() throws -> [NodeRecord] {
        try session.query(#"SELECT name, public_key, stake FROM nodes ORDER BY name COLLATE "C""#).map(node)
    }

    func price(model: String) throws -> Price? {
        guard let row = try session.query("""
            SELECT input_per_1k, output_per_1k, min_fee, split, slo_ms, slo_penalty_bps FROM prices WHERE model = \(model)
            """).first else { return nil }
        let (input, output, minimum, split, slo, penalty) = try row.decode((String, String, String, String, Int64?, Int64).self)
        return Price(inputPer1k: try amount(input, "price"), outputPer1k: try amount(output, "price"), minFee: try amount(minimum, "price"),
                     split: try RoleSplit(parsing: split), sloMilliseconds: slo.map { UInt64($0) }, sloPenaltyBps: UInt32(penalty))
    }

    func activePlugin(model: String) throws -> String? {
        try session.query("SELECT plugin FROM models WHERE name = \(model)").first.map { try $0.decode(String.self) }
    }

    func callStatus(idempotencyKey: String) throws -> CallStatus? {
        guard let row = try session.query("SELECT digest, status, invoice FROM calls WHERE idempotency_key = \(idempotencyKey)").first else {
            return nil
        }
        let (digest, status, invoice) = try row.decode((String, String, Int64?).self)
        if status == "settled", let invoice { return .settled(digest: digest, invoice: Int(invoice)) }
        return .pending(digest: digest)
    }

    func callStatuses(idempotencyKeys: [String]) throws -> [String: CallStatus] {
        guard !idempotencyKeys.isEmpty else { return [:] }
        var result: [String: CallStatus] = [:]
        for row in try session.query("""
            SELECT idempotency_key, digest, status, invoice FROM calls WHERE idempotency_key = ANY(\(idempotencyKeys)::text[])
            """) {
            let (key, digest, status, invoice) = try row.decode((String, String, String, Int64?).self)
            result[key] = status == "settled" && invoice != nil ? .settled(digest: digest, invoice: Int(invoice!)) : .pending(digest: digest)
        }
        return result
    }

    /// PostgreSQL finds an account's transfers through its own indexes: nothing of ours to check.
    func accountIndexProblem() throws -> String? { nil }

    func balances(of accounts: [String]) throws -> [String: TokenAmount] {
        guard !accounts.isEmpty else { return [:] }
        var result: [String: TokenAmount] = [:]
        for row in try session.query("SELECT id, balance FROM accounts WHERE id = ANY(\(accounts)::text[])") {
            let (id, balance) = try row.decode((String, String).self)
            result[id] = try amount(balance, "account \(id)")
        }
        return result
    }

    func pendingCalls() throws -> [PendingCall] {
        try PendingCall.decode(try session.query("""
            SELECT record, signature, price, fee, output_text FROM calls WHERE status = 'pending' ORDER BY created_at, position
            """).map {
            let (record, signature, price, fee, output) = try $0.decode((Data, Data, Data, String, String?).self)
            return PendingCall.StoredRow(record: record, signature: signature, price: price, fee: fee, output: output)
        })
    }

    func pendingCallCount() throws -> Int {
        guard let row = try session.query("SELECT COUNT(*) FROM calls WHERE status = 'pending'").first else { return 0 }
        return Int(try row.decode(Int64.self))
    }

    func pendingCallKeys() throws -> Set<String> {
        Set(try session.query("SELECT idempotency_key FROM calls WHERE status = 'pending'").map { try $0.decode(String.self) })
    }

    static let invoiceColumns = "ledger_index, bytes, leaf_hash, settled_at"

    static func storedInvoice(_ row: PostgresRow) throws -> StoredInvoice {
        let (index, bytes, leaf, settled) = try row.decode((Int64, Data, Data, Int64).self)
        return StoredInvoice(index: Int(index), bytes: bytes, leafHash: leaf, settledAt: settled)
    }

    func invoice(index: Int) throws -> StoredInvoice? {
        try session.query("SELECT \(unescaped: Self.invoiceColumns) FROM invoices WHERE ledger_index = \(Int64(index))").first
            .map(Self.storedInvoice)
    }

    func invoices(indices: [Int]) throws -> [StoredInvoice] {
        guard !indices.isEmpty else { return [] }
        var found: [Int: StoredInvoice] = [:]
        for row in try session.query("""
            SELECT \(unescaped: Self.invoiceColumns) FROM invoices WHERE ledger_index = ANY(\(indices.map { Int64($0) })::bigint[])
            """) {
            let invoice = try Self.storedInvoice(row)
            found[invoice.index] = invoice
        }
        return indices.compactMap { found[$0] }
    }

    func invoiceIndices(account: String?, model: String?) throws -> [Int] {
        func ints(_ rows: [PostgresRow]) throws -> [Int] { try rows.map { Int(try $0.decode(Int64.self)) } }
        guard let account else {
            return try ints(model.map {
                try session.query("SELECT ledger_index FROM invoices WHERE model = \($0) ORDER BY ledger_index")
            } ?? session.query("SELECT ledger_index FROM invoices ORDER BY ledger_index"))
        }
        // Older ledgers link payouts to invoices; netted ones to batches, whose invoice ranges
        // are taken whole here (the store keeps those whose payouts name the account).
        var indices = Set(try ints(session.query("""
            SELECT ledger_index FROM invoices
            WHERE (\(model)::text IS NULL OR model = \(model))
              AND (caller = \(account) OR ledger_index IN (SELECT invoice FROM transfers WHERE to_account = \(account) AND invoice IS NOT NULL))
            """)))
        let ranges = try session.query("""
            SELECT DISTINCT b.first_invoice, b.invoice_count FROM transfers t JOIN batches b ON b.id = t.batch
            WHERE t.to_account = \(account) AND t.cause = 'payout'
            """)
        for range in ranges {
            let (first, count) = try range.decode((Int64, Int64).self)
            if let model {
                indices.formUnion(try ints(session.query("""
                    SELECT ledger_index FROM invoices WHERE ledger_index >= \(first) AND ledger_index < \(first + count) AND model = \(model)
                    """)))
            } else {
                indices.formUnion(Int(first)..<Int(first + count))
            }
        }
        return indices.sorted()
    }

    func allInvoices() throws -> [StoredInvoice] {
        try session.query("SELECT \(unescaped: Self.invoiceColumns) FROM invoices ORDER BY ledger_index").map(Self.storedInvoice)
    }

    func leafHashes() throws -> [Data] {
        try session.query("SELECT leaf_hash FROM invoices ORDER BY ledger_index").map { try $0.decode(Data.self) }
    }

    func frontier() throws -> CompactRange {
        guard let data = try session.query("SELECT frontier FROM ledger_state WHERE id = 1").first.map({ try $0.decode(Data.self) }) else {
            return CompactRange()
        }
        do { return try JSONDecoder().decode(CompactRange.self, from: data) } catch {
            throw ProvenanceError(.storage, "the ledger's Merkle frontier cannot be read: \(error)")
        }
    }

    func checkpoints() throws -> [StoredCheckpoint] {
        try session.query("SELECT size, root, note FROM checkpoints ORDER BY size").map {
            let (size, root, note) = try $0.decode((Int64, Data, String).self)
            return StoredCheckpoint(size: Int(size), root: root, note: note)
        }
    }

    func lastTransfer() throws -> (sequence: Int64, hash: String) {
        guard let row = try session.query("SELECT sequence, hash FROM transfers ORDER BY sequence DESC LIMIT 1").first else {
            return (0, Transfer.genesisHash)
        }
        return try row.decode((Int64, String).self)
    }

    // MARK: Writes

    func setBalance(_ amount: TokenAmount, of account: String) throws {
        session.send("""
            INSERT INTO accounts (id, balance) VALUES (\(account), \(amount.rawString)) ON CONFLICT (id) DO UPDATE SET balance = excluded.balance
            """)
    }

    func insert(_ transfer: Transfer) throws {
        session.send("""
            INSERT INTO transfers (sequence, from_account, to_account, amount, cause, invoice, call, batch, created_at, hash)
            VALUES (\(transfer.sequence), \(transfer.from), \(transfer.to), \(transfer.amount.rawString), \(transfer.cause.rawValue),
                    \(transfer.invoice.map { Int64($0) }), \(transfer.call), \(transfer.batch), \(transfer.createdAt), \(transfer.hash))
            """)
    }

    func insert(_ node: NodeRecord) throws {
        try session.query("INSERT INTO nodes (name, public_key, stake) VALUES (\(node.name), \(node.publicKey), \(node.stake.rawString))",
                          "add node \(node.name)")
    }

    func setPrice(_ price: Price, model: String, at time: Int64) throws {
        try session.query("""
            INSERT INTO prices (model, input_per_1k, output_per_1k, min_fee, split, slo_ms, slo_penalty_bps, updated_at)
            VALUES (\(model), \(price.inputPer1k.rawString), \(price.outputPer1k.rawString), \(price.minFee.rawString),
                    \(price.split.description), \(price.sloMilliseconds.map { Int64($0) }), \(Int64(price.sloPenaltyBps)), \(time))
            ON CONFLICT (model) DO UPDATE SET input_per_1k = excluded.input_per_1k, output_per_1k = excluded.output_per_1k,
              min_fee = excluded.min_fee, split = excluded.split, slo_ms = excluded.slo_ms,
              slo_penalty_bps = excluded.slo_penalty_bps, updated_at = excluded.updated_at
            """, "set the price of \(model)")
    }

    func insertPending(_ call: PendingCall, digest: String, batch: Int64, at time: Int64) throws {
        session.send("""
            INSERT INTO calls (idempotency_key, digest, status, record, signature, price, fee, caller, reserve_batch, created_at, output_text)
            VALUES (\(call.record.idempotencyKey), \(digest), 'pending', \(bytea(call.recordBytes)), \(bytea(call.signatureBytes)), \(bytea(call.price.storedBytes)),
                    \(call.fee.rawString), \(call.record.caller), \(batch), \(time), \(call.outputText))
            """)
    }

    /// A group's deferred calls in one statement (row by row when one carries an output: an
    /// array parameter holds no NULL).
    func insertPending(_ calls: [(call: PendingCall, digest: String)], batch: Int64, at time: Int64) throws {
        guard calls.count > 1, calls.allSatisfy({ $0.call.outputText == nil }) else {
            for (call, digest) in calls { try insertPending(call, digest: digest, batch: batch, at: time) }
            return
        }
        session.send("""
            INSERT INTO calls (idempotency_key, digest, status, record, signature, price, fee, caller, reserve_batch, created_at, output_text)
            SELECT k, d, 'pending', r, s, p, f, c, \(batch), \(time), NULL
            FROM unnest(\(calls.map(\.call.record.idempotencyKey))::text[], \(calls.map(\.digest))::text[],
                        \(calls.map { bytea($0.call.recordBytes) })::bytea[], \(calls.map { bytea($0.call.signatureBytes) })::bytea[],
                        \(calls.map { bytea($0.call.price.storedBytes) })::bytea[], \(calls.map(\.call.fee.rawString))::text[],
                        \(calls.map(\.call.record.caller))::text[])
              AS t (k, d, r, s, p, f, c)
            """)
    }

    func markSettled(idempotencyKey: String, digest: String, invoice: Int, at time: Int64) throws {
        // The invoice holds the record and signature, so the call row keeps only the key and outcome.
        session.send("""
            INSERT INTO calls (idempotency_key, digest, status, invoice, created_at) VALUES (\(idempotencyKey), \(digest), 'settled', \(Int64(invoice)), \(time))
            ON CONFLICT (idempotency_key) DO UPDATE SET status = 'settled', invoice = excluded.invoice,
              record = NULL, signature = NULL, price = NULL, output_text = NULL
            """)
    }

    func insertInvoice(_ invoice: StoredInvoice, caller: String, model: String, batch: String?) throws {
        session.send("""
            INSERT INTO invoices (ledger_index, bytes, leaf_hash, caller, model, batch, settled_at)
            VALUES (\(Int64(invoice.index)), \(bytea(invoice.bytes)), \(bytea(invoice.leafHash)), \(caller), \(model), \(batch), \(invoice.settledAt))
            """)
    }

    func saveFrontier(_ range: CompactRange) throws {
        let data = try JSONEncoder().encode(range)
        session.send("INSERT INTO ledger_state (id, frontier) VALUES (1, \(bytea(data))) ON CONFLICT (id) DO UPDATE SET frontier = excluded.frontier")
    }

    func insertTerms(sha256: String, bytes: Data) throws {
        session.send("INSERT INTO invoice_terms (sha256, bytes) VALUES (\(sha256), \(bytea(bytes))) ON CONFLICT (sha256) DO NOTHING")
    }

    /// Batch ids are numbered under the ledger lock, not by a sequence: a rolled-back batch
    /// gives its id back, as in SQLite, so both backends name the same batches alike.
    func insertBatch(firstInvoice: Int, at time: Int64) throws -> Int64 {
        guard let id = try session.query("""
            INSERT INTO batches (id, first_invoice, invoice_count, created_at)
            SELECT COALESCE(max(id), 0) + 1, \(Int64(firstInvoice)), 0, \(time) FROM batches RETURNING id
            """, "open a settlement batch").first else {
            throw ProvenanceError(.storage, "opening a settlement batch returned no id")
        }
        return try id.decode(Int64.self)
    }

    func closeBatch(_ id: Int64, invoiceCount: Int) throws {
        session.send("UPDATE batches SET invoice_count = \(Int64(invoiceCount)) WHERE id = \(id)")
    }

    func insertMoneyRequest(_ request: MoneyRequest) throws {
        session.send("INSERT INTO money_requests (key, digest, transfer) VALUES (\(request.key), \(request.digest), \(request.transfer))")
    }

    func insertInvoices(_ rows: [InvoiceRow], at time: Int64) throws {
        guard !rows.isEmpty else { return }
        guard rows.allSatisfy({ $0.batch != nil }) else {
            for row in rows {
                try insertInvoice(row.invoice, caller: row.caller, model: row.model, batch: row.batch)
                try markSettled(idempotencyKey: row.idempotencyKey, digest: row.digest, invoice: row.invoice.index, at: time)
            }
            return
        }
        session.send("""
            INSERT INTO invoices (ledger_index, bytes, leaf_hash, caller, model, batch, settled_at)
            SELECT i, b, l, c, m, g, \(time) FROM unnest(\(rows.map { Int64($0.invoice.index) })::bigint[], \(rows.map { bytea($0.invoice.bytes) })::bytea[],
                                                 \(rows.map { bytea($0.invoice.leafHash) })::bytea[], \(rows.map(\.caller))::text[],
                                                 \(rows.map(\.model))::text[], \(rows.map { $0.batch! })::text[]) AS t (i, b, l, c, m, g)
            """)
        session.send("""
            INSERT INTO calls (idempotency_key, digest, status, invoice, created_at)
            SELECT k, d, 'settled', i, \(time) FROM unnest(\(rows.map(\.idempotencyKey))::text[], \(rows.map(\.digest))::text[],
                                                       \(rows.map { Int64($0.invoice.index) })::bigint[]) AS t (k, d, i)
            ON CONFLICT (idempotency_key) DO UPDATE SET status = 'settled', invoice = excluded.invoice,
              record = NULL, signature = NULL, price = NULL, output_text = NULL
            """)
    }

    func insert(_ transfers: [Transfer]) throws {
        // One statement for a batch's netted lines (no invoice, no call, a batch); others row by row.
        guard transfers.count > 1, transfers.allSatisfy({ $0.invoice == nil && $0.call == nil && $0.batch != nil }) else {
            for transfer in transfers { try insert(transfer) }
            return
        }
        session.send("""
            INSERT INTO transfers (sequence, from_account, to_account, amount, cause, invoice, call, batch, created_at, hash)
            SELECT s, f, t, a, c, NULL, NULL, b, w, h
            FROM unnest(\(transfers.map(\.sequence))::bigint[], \(transfers.map(\.from))::text[], \(transfers.map(\.to))::text[],
                        \(transfers.map(\.amount.rawString))::text[], \(transfers.map(\.cause.rawValue))::text[],
                        \(transfers.map { $0.batch! })::bigint[], \(transfers.map(\.createdAt))::bigint[], \(transfers.map(\.hash))::text[])
              AS r (s, f, t, a, c, b, w, h)
            """)
    }

    /// Nil: many servers write one PostgreSQL database, and no cheap value says that none of
    /// them has written since this connection's last transaction; every group commit reads
    /// its balances, last transfer and frontier anew.
    func changeMark() throws -> LedgerChangeMark? { nil }

    func setBalances(_ balances: [(account: String, amount: TokenAmount)]) throws {
        guard !balances.isEmpty else { return }
        session.send("""
            INSERT INTO accounts (id, balance) SELECT * FROM unnest(\(balances.map(\.account))::text[], \(balances.map(\.amount.rawString))::text[])
            ON CONFLICT (id) DO UPDATE SET balance = excluded.balance
            """)
    }

    func insertCheckpoint(_ checkpoint: StoredCheckpoint, at time: Int64) throws {
        session.send("""
            INSERT INTO checkpoints (size, root, note, created_at) VALUES (\(Int64(checkpoint.size)), \(bytea(checkpoint.root)), \(checkpoint.note), \(time))
            ON CONFLICT (size) DO UPDATE SET root = excluded.root, note = excluded.note, created_at = excluded.created_at
            """)
    }
}

/// Bytes as a `bytea` parameter (binding `Data` directly can throw; a buffer cannot).
func bytea(_ data: Data) -> ByteBuffer { ByteBuffer(bytes: data) }
