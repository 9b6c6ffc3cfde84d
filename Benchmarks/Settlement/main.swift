// Settlement throughput against the floor the store sets: the same rows inserted into SQLite
// with no logic at all. Run through Benchmarks/settlement.sh (release build).
import AttributionPlugins
import Foundation
import GRDB
import ProvenanceCore

let environment = ProcessInfo.processInfo.environment
let deferredCalls = Int(environment["DEFERRED_CALLS"] ?? "") ?? 200_000
let realtimeCalls = Int(environment["REALTIME_CALLS"] ?? "") ?? 20_000
let batchSize = Int(environment["BATCH_SIZE"] ?? "") ?? 10_000
let signBatch = 1_000

func seconds(_ body: () async throws -> Void) async rethrows -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    try await body()
    return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
}

func rate(_ count: Int, _ time: Double) -> String { String(format: "%.0f calls/s (%.2f s for %d)", Double(count) / time, time, count) }

let root = FileManager.default.temporaryDirectory.appendingPathComponent("provenance-settlement-bench-\(UUID().uuidString)")
defer { try? FileManager.default.removeItem(at: root) }
let work = root.appendingPathComponent("work")
try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)

// A model trained on one dataset of five contributors, priced, a funded caller, a staked node.
let (store, _) = try Store.initialize(at: root.appendingPathComponent(".provenance"))
for index in 0..<5 {
    try Data("sample \(index)\n".utf8).write(to: work.appendingPathComponent("f\(index).txt"))
    _ = try store.add(dataset: "corpus", paths: ["f\(index).txt"], workingDirectory: work, destination: nil,
                      contributor: Identity(name: "Contributor \(index)", email: "c\(index)@example.org"), message: nil)
}
let resolver = PluginRegistry()
_ = try store.registerModel(ModelRegistrationRequest(
    reference: ModelVersionReference(model: "m", version: "1"), developer: Identity(name: "Dev", email: "dev@example.org"),
    datasets: [RevisionReference(parsing: "corpus")], trainingLogs: [], base: nil, weights: nil, plugin: nil), resolver: resolver)
try store.setPrice(Price(inputPer1k: try TokenAmount(parsing: "0.001"), outputPer1k: try TokenAmount(parsing: "0.002"),
                         minFee: .zero, split: .standard, sloMilliseconds: 500, sloPenaltyBps: 1000), model: "m")
_ = try store.deposit(try TokenAmount(parsing: "1000000000"), to: "caller")
_ = try store.deposit(try TokenAmount(parsing: "10"), to: "node:gpu")
_ = try store.addNode("gpu", stake: try TokenAmount(parsing: "5"))
let nodeKey = try store.keyStore.nodeKey("gpu")

func record(_ key: String, _ index: Int) -> CallRecord {
    CallRecord(caller: "caller", model: "m", version: "1", node: "gpu", router: nil, inputTokens: UInt64(500 + index % 1000),
               outputTokens: UInt64(100 + index % 300), latencyMilliseconds: UInt64(100 + index % 700), outputSHA256: nil,
               idempotencyKey: key)
}

// Deferred: submit with node batch signatures, then settle batches of `batchSize`.
var submitTime = 0.0
var settleTime = 0.0
var settled = 0
while settled < deferredCalls {
    let count = min(batchSize, deferredCalls - settled)
    var records: [CallRecord] = []
    for index in 0..<count { records.append(record("d\(settled + index)", settled + index)) }
    submitTime += try await seconds {
        for start in stride(from: 0, to: count, by: signBatch) {
            let chunk = Array(records[start..<min(start + signBatch, count)])
            let signatures = try CallSignature.signBatch(chunk, with: nodeKey)
            _ = try await store.submit(Array(zip(chunk, signatures)), deferred: true, resolver: resolver)
        }
    }
    settleTime += try await seconds {
        let report = try await store.settlePending(resolver: resolver)
        precondition(report.settled == count, "settled \(report.settled) of \(count)")
    }
    settled += count
}

// Real-time, one caller at a time: one call per transaction, each signed alone and checkpointed.
let realtimeTime = try await seconds {
    for index in 0..<realtimeCalls {
        let call = record("r\(index)", index)
        _ = try await store.submit([(call, try CallSignature.sign(call, with: nodeKey))], deferred: false, resolver: resolver)
    }
}

// Real-time, many callers at once: the group commit coalesces their calls into shared
// transactions, one fsync and one checkpoint each.
let concurrentCalls = Int(environment["CONCURRENT_CALLS"] ?? "") ?? 40_000
let clients = Int(environment["CLIENTS"] ?? "") ?? 64
let signedConcurrent = try (0..<concurrentCalls).map { index -> (CallRecord, CallSignature) in
    let call = record("g\(index)", index)
    return (call, try CallSignature.sign(call, with: nodeKey))
}
let groupTime = try await seconds {
    try await withThrowingTaskGroup(of: Void.self) { group in
        for client in 0..<clients {
            group.addTask {
                for index in stride(from: client, to: concurrentCalls, by: clients) {
                    _ = try await store.submit([signedConcurrent[index]], deferred: false, resolver: resolver)
                }
            }
        }
        try await group.waitForAll()
    }
}

var report: VerifyReport!
let verifyTime = try await seconds { report = try store.verify() }
precondition(report.ok, "verify failed: \(report.failure ?? "")")

// The floor: the same rows (invoices, batch transfers, call rows, terms) inserted into a fresh
// SQLite database with the same settings, in as many transactions, with no logic at all.
let source = try DatabaseQueue(path: root.appendingPathComponent(".provenance/registry.sqlite").path)
let invoices = try source.read { try Row.fetchAll($0, sql: "SELECT * FROM invoices ORDER BY ledger_index") }
let transfers = try source.read { try Row.fetchAll($0, sql: "SELECT * FROM transfers WHERE batch IS NOT NULL ORDER BY sequence") }
let calls = try source.read { try Row.fetchAll($0, sql: "SELECT * FROM calls ORDER BY rowid") }
let pageSize = try source.read { try Int.fetchOne($0, sql: "PRAGMA page_size")! }
let databaseBytes = try source.writeWithoutTransaction { db -> Int in
    try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)")
    return try Int.fetchOne(db, sql: "PRAGMA page_count")! * pageSize
}
let settledCalls = deferredCalls + realtimeCalls + concurrentCalls

@MainActor func floor(invoices: ArraySlice<Row>, transfers: ArraySlice<Row>, calls: ArraySlice<Row>, transactions: Int) throws -> Double {
    var configuration = Configuration()
    // The store's settings: full fsync, the log copied into the database by a thread of its own.
    configuration.prepareDatabase { db in
        try db.execute(sql: "PRAGMA synchronous = FULL")
        try db.execute(sql: "PRAGMA wal_autocheckpoint = \(WALCheckpointer.fallbackPages)")
    }
    let path = root.appendingPathComponent("floor-\(UUID().uuidString).sqlite").path
    let pool = try DatabasePool(path: path, configuration: configuration)
    let checkpointer = WALCheckpointer(path: path)
    defer { checkpointer.stop() }
    try pool.write { db in
        try db.execute(sql: """
            CREATE TABLE invoices (ledger_index INTEGER PRIMARY KEY, bytes BLOB NOT NULL, leaf_hash BLOB NOT NULL, caller TEXT NOT NULL,
              model TEXT NOT NULL, batch TEXT, settled_at INTEGER NOT NULL);
            CREATE TABLE transfers (sequence INTEGER PRIMARY KEY, from_account TEXT NOT NULL, to_account TEXT NOT NULL, amount TEXT NOT NULL,
              cause TEXT NOT NULL, invoice INTEGER, call TEXT, created_at INTEGER NOT NULL, hash TEXT NOT NULL, batch INTEGER);
            CREATE INDEX transfers_by_from ON transfers(from_account); CREATE INDEX transfers_by_to ON transfers(to_account);
            CREATE INDEX transfers_by_invoice ON transfers(invoice);
            CREATE TABLE calls (idempotency_key TEXT PRIMARY KEY, digest TEXT NOT NULL, status TEXT NOT NULL, invoice INTEGER,
              fee TEXT, caller TEXT, reserve_batch INTEGER, created_at INTEGER NOT NULL);
            """)
    }
    func part<T>(_ rows: ArraySlice<T>, _ index: Int) -> ArraySlice<T> {
        let per = (rows.count + transactions - 1) / max(transactions, 1)
        let start = rows.startIndex + min(rows.count, index * per)
        return rows[start..<(rows.startIndex + min(rows.count, (index + 1) * per))]
    }
    return try seconds {
        for index in 0..<transactions {
            try pool.write { db in
                let insertInvoice = try db.cachedStatement(sql: "INSERT INTO invoices VALUES (?, ?, ?, ?, ?, ?, ?)")
                let insertTransfer = try db.cachedStatement(sql: "INSERT INTO transfers VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
                let insertCall = try db.cachedStatement(sql: "INSERT INTO calls VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
                for invoice in part(invoices, index) {
                    try insertInvoice.execute(arguments: [invoice["ledger_index"], invoice["bytes"], invoice["leaf_hash"], invoice["caller"],
                                                          invoice["model"], invoice["batch"], invoice["settled_at"]])
                }
                for transfer in part(transfers, index) {
                    try insertTransfer.execute(arguments: [transfer["sequence"], transfer["from_account"], transfer["to_account"],
                                                           transfer["amount"], transfer["cause"], transfer["invoice"], transfer["call"],
                                                           transfer["created_at"], transfer["hash"], transfer["batch"]])
                }
                for call in part(calls, index) {
                    try insertCall.execute(arguments: [call["idempotency_key"], call["digest"], "settled", call["invoice"], call["fee"],
                                                       call["caller"], call["reserve_batch"], call["created_at"]])
                }
            }
        }
    }
}

// (seconds(_:) is async; the floor is synchronous.)
func seconds(_ body: () throws -> Void) rethrows -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    try body()
    return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
}

let batchInvoices = invoices.prefix(deferredCalls)
let batchTransfers = try source.read {
    try Row.fetchAll($0, sql: """
        SELECT t.* FROM transfers t JOIN batches b ON b.id = t.batch WHERE b.invoice_count > 0 AND b.first_invoice < ? ORDER BY t.sequence
        """, arguments: [deferredCalls])
}
let batchFloor = try floor(invoices: invoices.prefix(deferredCalls), transfers: batchTransfers[...],
                           calls: calls.prefix(deferredCalls), transactions: deferredCalls / batchSize)
let rowsPerCall = Double(invoices.count + transfers.count + calls.count) / Double(invoices.count)

print("settlement, 5 contributors, SQLite synchronous=FULL, WAL; \(String(format: "%.2f", rowsPerCall)) rows per settled call:")
print("  deferred submit (node batch signatures of \(signBatch)): \(rate(deferredCalls, submitTime))")
print("  batch settlement (batches of \(batchSize)):              \(rate(deferredCalls, settleTime))")
print("  SQLite floor, same rows, same transactions:          \(rate(deferredCalls, batchFloor))")
print(String(format: "  ratio batch settlement / floor %.2f", batchFloor / settleTime))
print("  real-time, one caller (one call per transaction):    \(rate(realtimeCalls, realtimeTime))")
print("  real-time, \(clients) concurrent callers (group commit):   \(rate(concurrentCalls, groupTime))")
print("  database bytes per settled call: \(databaseBytes / settledCalls) (\(databaseBytes) bytes for \(settledCalls) calls)")
print("  verify: \(report.invoices) invoices, \(report.transfers) transfers re-derived in \(String(format: "%.2f", verifyTime)) s")
