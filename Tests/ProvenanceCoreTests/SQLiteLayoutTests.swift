import AttributionPlugins
import Crypto
import Foundation
import GRDB
@testable import ProvenanceCore
import ProvenanceTestSupport
import Testing

/// How the embedded database lays out what settlement writes: 8 KB pages for new stores (an
/// invoice of about 2.2 KB filled a 4 KB page alone), no index on a call's status, and a
/// deferred call's payload (record, signature, price, output) in `pending_calls` until it is
/// settled, so that settling updates the small row in `calls` in place and the payload's pages
/// go back to the free list.
@Suite struct SQLiteLayoutTests {
    static func folder() throws -> URL {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("layout-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        return folder
    }

    static func indexes(_ db: Database) throws -> Set<String> {
        Set(try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'calls'"))
    }

    @Test func aNewDatabaseHasEightKilobytePagesAndKeepsPendingPayloadsApart() throws {
        let folder = try Self.folder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let index = try SQLiteRegistryIndex(url: folder.appendingPathComponent("registry.sqlite"))
        try index.pool.read { db in
            #expect(try Int.fetchOne(db, sql: "PRAGMA page_size") == 8_192)
            // Nothing indexes what settling a call changes (its status and invoice).
            let names = try Self.indexes(db)
            #expect(!names.contains("calls_pending") && !names.contains("calls_by_status"), "\(names)")
            #expect(try db.tableExists("pending_calls"))
            // The query settlement runs reads the payloads in the order they came, with no sort.
            let plan = try String.fetchAll(db, sql: """
                EXPLAIN QUERY PLAN SELECT id, record FROM pending_calls ORDER BY id
                """, adapter: SuffixRowAdapter(fromIndex: 3)).joined(separator: "\n")
            #expect(plan.contains("pending_calls") && !plan.contains("TEMP B-TREE"), "\(plan)")
        }
    }

    @Test func anOlderDatabaseKeepsItsPageSizeAndMovesPendingPayloads() throws {
        let folder = try Self.folder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let url = folder.appendingPathComponent("registry.sqlite")
        // A database as an earlier release left it: 4 KB pages, the schema before v8, one call
        // pending with its payload in its row of calls, one settled.
        var configuration = Configuration()
        configuration.prepareDatabase { db in try db.execute(sql: "PRAGMA page_size = 4096; PRAGMA journal_mode = WAL") }
        let older = try DatabaseQueue(path: url.path, configuration: configuration)
        try SQLiteRegistryIndex.migrator.migrate(older, upTo: "v7-call-outputs")
        try older.write { db in
            #expect(try Self.indexes(db).contains("calls_by_status"))
            try db.execute(sql: """
                INSERT INTO calls (idempotency_key, digest, status, record, signature, price, fee, caller, reserve_batch, created_at, output_text)
                VALUES ('k1', 'd1', 'pending', x'7b7d', x'7b7e', x'7b7f', '5', 'alice', 1, 100, 'out');
                INSERT INTO calls (idempotency_key, digest, status, invoice, created_at) VALUES ('k0', 'd0', 'settled', 0, 90)
                """)
        }
        try older.close()
        let index = try SQLiteRegistryIndex(url: url)
        try index.pool.read { db in
            #expect(try Int.fetchOne(db, sql: "PRAGMA page_size") == 4_096)
            let names = try Self.indexes(db)
            #expect(!names.contains("calls_pending") && !names.contains("calls_by_status"), "\(names)")
            let payload = try Row.fetchAll(db, sql: "SELECT idempotency_key, hex(record), hex(signature), hex(price), fee, output_text FROM pending_calls")
            #expect(payload.map { $0.databaseValues.map(\.description) } == [["\"k1\"", "\"7B7D\"", "\"7B7E\"", "\"7B7F\"", "\"5\"", "\"out\""]])
            let calls = try String.fetchAll(db, sql: """
                SELECT idempotency_key || ':' || status || ':' || coalesce(fee, '-') || ':' || (record IS NULL AND output_text IS NULL)
                FROM calls ORDER BY idempotency_key
                """)
            #expect(calls == ["k0:settled:-:1", "k1:pending:5:1"])
        }
    }

    /// Settling a call as reserved when it is not pending (settled already, or never reserved)
    /// is refused, and the transaction writes nothing: neither the invoice nor the call's row.
    @Test func aReservedRowWhoseCallIsNotPendingIsRefused() throws {
        let folder = try Self.folder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let index = try SQLiteRegistryIndex(url: folder.appendingPathComponent("registry.sqlite"))
        try index.pool.write { db in
            try db.execute(sql: "INSERT INTO calls (idempotency_key, digest, status, invoice, created_at) VALUES ('done', 'd0', 'settled', 0, 1)")
        }
        // A pending call whose payload is another row than the one settlement read is refused too.
        try index.pool.write { db in
            try db.execute(sql: """
                INSERT INTO calls (idempotency_key, digest, status, fee, caller, reserve_batch, created_at) VALUES ('moved', 'd2', 'pending', '5', 'alice', 1, 1);
                INSERT INTO pending_calls (id, idempotency_key, record, signature, price, fee) VALUES (5, 'moved', x'00', x'00', x'00', '5')
                """)
        }
        for (key, row) in [("done", nil), ("never", nil), ("moved", 6)] as [(String, Int64?)] {
            let row = InvoiceRow(invoice: StoredInvoice(index: 1, bytes: Data("{}".utf8), leafHash: Data(count: 32), settledAt: 2),
                                 caller: "alice", model: "m", batch: "batch-1", idempotencyKey: key, digest: "d1", reserved: true,
                                 pendingRow: row)
            var message: String?
            do {
                try index.writeLedger { try $0.insertInvoices([row], at: 2) }
            } catch let error as ProvenanceError {
                message = error.message
            }
            #expect(message == "call \(key) is settled as reserved but is not pending")
            let invoices = try index.pool.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM invoices") }
            let calls = try index.pool.read {
                try String.fetchAll($0, sql: "SELECT idempotency_key || ':' || status || ':' || coalesce(invoice, '') FROM calls ORDER BY idempotency_key")
            }
            let payloads = try index.pool.read { try String.fetchAll($0, sql: "SELECT id || ':' || idempotency_key FROM pending_calls") }
            #expect(invoices == 0 && calls == ["done:settled:0", "moved:pending:"] && payloads == ["5:moved"], "\(calls) \(payloads)")
        }
    }

    /// Deferred calls, settled: each row keeps its reservation (caller, fee, reserving batch,
    /// time) and gains its invoice, in place; the pages the payloads filled are free for the next calls.
    @Test func settlingDeferredCallsFreesThePagesTheirPayloadsHeld() async throws {
        let root = try Self.folder()
        defer { try? FileManager.default.removeItem(at: root) }
        let (store, resolver, nodeKey) = try DeferredStore.make(in: root)
        let records = DeferredStore.records(0..<2_000)
        let signatures = try CallSignature.signBatch(records, with: nodeKey)
        _ = try await store.submit(Array(zip(records, signatures)), deferred: true, resolver: resolver)

        let database = root.appendingPathComponent(".provenance/registry.sqlite")
        let queue = try DatabaseQueue(path: database.path)
        struct Reservation: Equatable { var fee: String; var caller: String; var batch: Int64; var at: Int64 }
        func reservations() throws -> [String: Reservation] {
            try queue.read { db in
                var result: [String: Reservation] = [:]
                for row in try Row.fetchAll(db, sql: "SELECT idempotency_key, fee, caller, reserve_batch, created_at FROM calls") {
                    result[row["idempotency_key"]] = Reservation(fee: row["fee"], caller: row["caller"], batch: row["reserve_batch"], at: row["created_at"])
                }
                return result
            }
        }
        let reserved = try reservations()
        #expect(reserved.count == 2_000)
        func count(_ sql: String) throws -> Int { try queue.read { try Int.fetchOne($0, sql: sql) ?? -1 } }
        func bytes(_ table: String) throws -> Int { try count("SELECT sum(pgsize) FROM dbstat WHERE name = '\(table)'") }
        let (callBytes, payloadBytes) = (try bytes("calls"), try bytes("pending_calls"))
        let pagesBefore = try count("PRAGMA page_count")

        let report = try await store.settlePending(resolver: resolver)
        #expect(report.settled == 2_000)
        #expect(try reservations() == reserved)
        #expect(try count("SELECT count(*) FROM calls WHERE status = 'settled' AND record IS NULL AND signature IS NULL AND invoice IS NOT NULL") == 2_000)
        #expect(try count("SELECT count(*) FROM pending_calls") == 0)
        // 2,000 records and batch signatures filled some 2 MB of pending_calls: its pages are free
        // now. The rows of calls were small from the start and stayed where they were.
        let pageSize = try count("PRAGMA page_size")
        let payloadBytesAfter = try bytes("pending_calls")
        #expect(payloadBytes > 1_500_000 && payloadBytesAfter <= pageSize, "pending_calls: \(payloadBytes) bytes, then \(payloadBytesAfter)")
        // The invoices settling wrote took the freed pages first: the file grew by less than they hold.
        let invoiceBytes = try bytes("invoices")
        let pagesAfter = try count("PRAGMA page_count")
        let grown = (pagesAfter - pagesBefore) * pageSize
        #expect(grown < invoiceBytes - payloadBytes / 2, "grew \(grown) bytes for \(invoiceBytes) of invoices")
        let settledCallBytes = try bytes("calls")
        #expect(callBytes < 400_000 && settledCallBytes <= callBytes * 6 / 5, "calls: \(callBytes) bytes reserved, \(settledCallBytes) settled")
        let verified = try store.verify()
        #expect(verified.ok, "\(verified.failure ?? "")")
        // A replay of a settled deferred call still finds its invoice.
        let replay = try await store.submit([(records[7], signatures[7])], deferred: true, resolver: resolver)
        #expect(replay.first?.replayed == true && replay.first?.invoice == 7)
    }

    /// Transfers between a few accounts, some to the account they come from, one for each sequence in `range`.
    static func transfers(_ range: ClosedRange<Int64>) -> [Transfer] {
        range.map { sequence in
            let from = "a\(sequence % 7)"
            return Transfer(sequence: sequence, from: from, to: sequence % 11 == 0 ? from : "b\(sequence % 5)", amount: TokenAmount(raw: 1),
                            cause: .deposit, invoice: nil, call: nil, batch: nil, createdAt: sequence, hash: "h\(sequence)")
        }
    }

    /// `verify` checks `account_postings` against the transfers: a posting taken away, one
    /// added, and a mark moved past the last transfer are each named; verify changes nothing.
    @Test func verifyNamesAPostingThatDisagreesWithTheTransfers() throws {
        let root = try Self.folder()
        defer { try? FileManager.default.removeItem(at: root) }
        let (store, _, _) = try DeferredStore.make(in: root)
        for index in 0..<Int(SQLiteLedgerAccess.postingRun) { _ = try store.deposit(TokenAmount(raw: 1), to: "acct\(index % 5)") }
        let database = root.appendingPathComponent(".provenance/registry.sqlite").path
        func sql(_ text: String) throws -> String {
            let result = try runProcess("/usr/bin/sqlite3", [database, text])
            guard result.succeeded else { throw FixtureError("sqlite3: \(result.stderr)") }
            return result.output
        }
        #expect(try sql("SELECT upto FROM account_postings_state") == "\(SQLiteLedgerAccess.postingRun)")
        let before = try store.verify()
        #expect(before.ok, "\(before.failure ?? "")")
        let first = try sql("SELECT MIN(sequence) FROM transfers WHERE to_account = 'acct3'")
        let other = try sql("SELECT MIN(sequence) FROM transfers WHERE to_account = 'acct1'")
        let cases = [
            ("DELETE FROM account_postings WHERE account = 'acct3' AND sequence = \(first)",
             "INSERT INTO account_postings VALUES ('acct3', \(first))",
             "transfer \(first): not posted to the statement of account acct3 (account_postings)"),
            ("INSERT INTO account_postings VALUES ('acct3', \(other))",
             "DELETE FROM account_postings WHERE account = 'acct3' AND sequence = \(other)",
             "account_postings: lists transfer \(other) in the statement of account acct3, which that transfer does not move money for"),
            ("UPDATE account_postings_state SET upto = 999999", "UPDATE account_postings_state SET upto = \(SQLiteLedgerAccess.postingRun)",
             "account_postings_state: transfers are posted up to 999999, past the last transfer"),
        ]
        for (tamper, undo, message) in cases {
            _ = try sql(tamper)
            let postings = try sql("SELECT count(*), sum(sequence) FROM account_postings")
            let report = try store.verify()
            #expect(!report.ok)
            #expect(report.failure?.hasPrefix(message) == true, "\(report.failure ?? "no failure")")
            #expect(try sql("SELECT count(*), sum(sequence) FROM account_postings") == postings, "verify changed nothing")
            _ = try sql(undo)
        }
        let after = try store.verify()
        #expect(after.ok && after.transfers == before.transfers, "\(after.failure ?? "")")
    }

    /// An account's transfers are found by `account_postings`, filled a run of transfers at a
    /// time, and by a scan of the transfers after the last run: a statement is the same either
    /// way, and nothing indexes `transfers` by account (such an index took a page a caller a commit).
    @Test func anAccountsTransfersAreFoundWhetherPostedYetOrNot() throws {
        let folder = try Self.folder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let index = try SQLiteRegistryIndex(url: folder.appendingPathComponent("registry.sqlite"))
        let run = SQLiteLedgerAccess.postingRun
        var written: [Transfer] = []
        func check(posted expected: Int64) throws {
            for account in ["a0", "a3", "a6", "b0", "b4", "nobody"] {
                let found: [Int64] = try index.readLedger { try $0.transfers(account: account) }.map(\.sequence)
                let expected: [Int64] = written.filter { $0.from == account || $0.to == account }.map(\.sequence)
                #expect(found == expected, "\(account): \(found.count) transfers found, \(expected.count) written")
            }
            try index.pool.read { (db: Database) throws in
                #expect(try Int64.fetchOne(db, sql: "SELECT upto FROM account_postings_state") == expected)
                var pairs = Set<String>()
                for transfer in written where transfer.sequence <= expected {
                    pairs.insert("\(transfer.from) \(transfer.sequence)")
                    pairs.insert("\(transfer.to) \(transfer.sequence)")
                }
                let posted = try String.fetchAll(db, sql: "SELECT account || ' ' || sequence FROM account_postings")
                #expect(posted.count == pairs.count && Set(posted) == pairs)
            }
        }
        // Fewer than a run: nothing posted, the tail is scanned.
        written += Self.transfers(1...(run - 10))
        try index.writeLedger { try $0.insert(Array(written)) }
        try check(posted: 0)
        // A run's worth: every transfer so far is posted in one sorted run.
        let more = Self.transfers((run - 9)...(run + 100))
        written += more
        try index.writeLedger { try $0.insert(more) }
        try check(posted: run + 100)
        // A few more: posted and tail together.
        let tail = Self.transfers((run + 101)...(run + 130))
        written += tail
        try index.writeLedger { try $0.insert(tail) }
        try check(posted: run + 100)
        try index.pool.read { (db: Database) throws in
            let names = Set(try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'transfers'"))
            // Nothing indexes transfers: they are found by sequence, or by account through account_postings.
            #expect(names.isEmpty, "\(names)")
            let plan = try String.fetchAll(db, sql: "EXPLAIN QUERY PLAN SELECT * FROM transfers WHERE sequence IN (\(SQLiteLedgerAccess.accountSequences))",
                                           arguments: ["a1"], adapter: SuffixRowAdapter(fromIndex: 3)).joined(separator: "\n")
            #expect(plan.contains("account_postings USING PRIMARY KEY") && !plan.contains("SCAN transfers"), "\(plan)")
        }
    }

    /// A database from before `account_postings` gets every transfer it holds posted when it is
    /// opened, and loses its indexes of transfers (by account, invoice and batch).
    @Test func anOlderDatabasePostsItsTransfersWhenOpened() throws {
        let folder = try Self.folder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let url = folder.appendingPathComponent("registry.sqlite")
        let older = try DatabaseQueue(path: url.path)
        try SQLiteRegistryIndex.migrator.migrate(older, upTo: "v9-pending-payloads")
        try older.write { db in
            for sequence in 1...25 as ClosedRange<Int64> {
                try db.execute(sql: """
                    INSERT INTO transfers (sequence, from_account, to_account, amount, cause, created_at, hash)
                    VALUES (?, ?, ?, '1', 'deposit', 0, 'h')
                    """, arguments: [sequence, sequence % 3 == 0 ? "alice" : "world", sequence % 2 == 0 ? "bo" : "alice"])
            }
        }
        try older.close()
        let index = try SQLiteRegistryIndex(url: url)
        let alice: [Int64] = try index.readLedger { try $0.transfers(account: "alice") }.map(\.sequence)
        let bo: [Int64] = try index.readLedger { try $0.transfers(account: "bo") }.map(\.sequence)
        let aliceExpected: [Int64] = (1...25).filter { $0 % 3 == 0 || $0 % 2 == 1 }
        let boExpected: [Int64] = (1...25).filter { $0 % 2 == 0 }
        #expect(alice == aliceExpected)
        #expect(bo == boExpected)
        try index.pool.read { (db: Database) throws in
            #expect(try Int64.fetchOne(db, sql: "SELECT upto FROM account_postings_state") == 25)
            // alice → alice (sequences 3, 9, 15, 21) is posted once.
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM account_postings") == 50 - 4)
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'transfers'") == 0)
        }
    }
}

/// A store with one priced model on one dataset, a funded caller (alice) and a staked node (gpu).
enum DeferredStore {
    static func make(in root: URL) throws -> (Store, PluginRegistry, Curve25519.Signing.PrivateKey) {
        let work = root.appendingPathComponent("work")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        let (store, _) = try Store.initialize(at: root.appendingPathComponent(".provenance"))
        try Data("sample\n".utf8).write(to: work.appendingPathComponent("f.txt"))
        _ = try store.add(dataset: "corpus", paths: ["f.txt"], workingDirectory: work, destination: nil,
                          contributor: Identity(name: "Ann", email: "ann@example.org"), message: nil)
        let resolver = PluginRegistry()
        _ = try store.registerModel(ModelRegistrationRequest(
            reference: ModelVersionReference(model: "m", version: "1"), developer: Identity(name: "Dev", email: "dev@example.org"),
            datasets: [RevisionReference(parsing: "corpus")], trainingLogs: [], base: nil, weights: nil, plugin: nil), resolver: resolver)
        try store.setPrice(Price(inputPer1k: try TokenAmount(parsing: "0.001"), outputPer1k: .zero, minFee: .zero, split: .standard,
                                 sloMilliseconds: nil, sloPenaltyBps: 0), model: "m")
        _ = try store.deposit(try TokenAmount(parsing: "1000"), to: "alice")
        _ = try store.deposit(try TokenAmount(parsing: "10"), to: "node:gpu")
        _ = try store.addNode("gpu", stake: try TokenAmount(parsing: "5"))
        return (store, resolver, try store.keyStore.nodeKey("gpu"))
    }

    /// Calls of alice to m@1 through gpu, keyed d<n>.
    static func records(_ range: Range<Int>) -> [CallRecord] {
        range.map {
            CallRecord(caller: "alice", model: "m", version: "1", node: "gpu", router: nil, inputTokens: UInt64(100 + $0), outputTokens: 0,
                       latencyMilliseconds: 10, outputSHA256: nil, idempotencyKey: "d\($0)")
        }
    }
}
