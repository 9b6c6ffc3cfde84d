public import Foundation
import GRDB
import NIOCore
import PostgresNIO
public import ProvenanceCore

/// `provenance migrate --to postgres://…`: moves a store's state from `registry.sqlite` into an
/// empty PostgreSQL database, row for row, in one PostgreSQL transaction.
///
/// The columns to copy are read from the PostgreSQL schema itself, so a table or column added by
/// a later migration is copied without a change here; an SQLite table or column the PostgreSQL
/// schema lacks stops the copy instead of being dropped silently. The order SQLite kept by
/// `rowid` becomes the `position` (or `batches.id`) column, and every sequence is set past the
/// largest value copied, and past SQLite's own `sqlite_sequence`, so new rows sort after the old.
public enum SQLiteToPostgres {
    public struct Summary: Sendable {
        /// Rows copied, per table.
        public var rows: [String: Int]
        public var location: DatabaseLocation
        /// Seconds the copy took, from opening the database to its commit.
        public var seconds: Double

        public func count(_ table: String) -> Int { rows[table] ?? 0 }
    }

    /// The tables in an order that satisfies their foreign keys; tables added later go after them.
    static let tableOrder = [
        "datasets", "dataset_commits", "commit_contributors", "blob_digests",
        "models", "model_versions", "model_datasets", "plugin_history", "file_authorship", "authorship_commits",
        "accounts", "transfers", "nodes", "prices", "calls", "invoices", "ledger_state", "checkpoints", "batches",
        "invoice_terms", "money_requests", "access_tokens",
    ]
    /// PostgreSQL-only tables: nothing in SQLite to copy into them.
    static let postgresOnly: Set<String> = ["provenance_migrations", "store_identity"]
    /// SQLite bookkeeping and SQLite's own index of accounts (PostgreSQL indexes `transfers`), not the store's state.
    static let sqliteOnly: Set<String> = ["grdb_migrations", "sqlite_sequence", "account_postings", "account_postings_state"]
    /// SQLite tables whose rows PostgreSQL keeps in another's: SQLite keeps a pending call's
    /// record, signature, price and output in `pending_calls`, PostgreSQL in its row of `calls`.
    /// `key` joins the two; the folded table's `id` is its own order, which the row it joins keeps.
    static let folded: [String: (into: String, key: String)] = ["pending_calls": ("calls", "idempotency_key")]
    /// Rows per INSERT … SELECT FROM unnest(…).
    static let chunkRows = 5_000

    /// Moves the store at `root` into the database `url` names: checks, copies, then switches the
    /// store over (`database.json`, and `registry.sqlite` moved to `registry.sqlite.migrated`).
    ///
    /// Nothing changes, in the store or the database, when it refuses: a bad URL, a store already
    /// in a database, a database that cannot be reached, or one that already holds a store's rows.
    public static func migrateStore(at root: URL, to url: String,
                                    environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Summary {
        let (location, password) = try DatabaseLocation.parse(url)
        if let current = try Store.databaseLocation(at: root) {
            throw ProvenanceError.conflict("the store at \(root.path) already keeps its state in \(current.url): nothing to migrate")
        }
        let file = Store.sqliteFile(at: root)
        guard FileManager.default.fileExists(atPath: file.path) else {
            throw ProvenanceError(.noStore, "no registry.sqlite in \(root.path): nothing to migrate")
        }
        let summary = try copy(sqlite: file, to: location, password: password, environment: environment)
        try Store.switchToDatabase(at: root, location: location, password: password)
        return summary
    }

    /// Copies every row of the SQLite file `file` into `location`'s database, which must hold no
    /// store yet (no schema, or the schema with no rows). One read snapshot, one transaction.
    public static func copy(sqlite file: URL, to location: DatabaseLocation, password: String?,
                            environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Summary {
        let started = Date()
        var configuration = Configuration()
        configuration.readonly = true
        let queue: DatabaseQueue
        do {
            queue = try DatabaseQueue(path: file.path, configuration: configuration)
        } catch {
            throw ProvenanceError(.storage, "cannot open \(file.path): \(error)")
        }
        defer { try? queue.close() }
        let pool = try PostgresRegistryIndex.connectionPool(location: location, password: password, environment: environment)
        let rows: [String: Int] = try pool.withSession { session in
            // Refuse before creating anything: the database may be someone else's store.
            try refuseUnlessEmpty(session, location: location)
            try PostgresSchema.migrate(session)
            let schema = try postgresColumns(session)
            let tables = tableOrder.filter { schema[$0] != nil }
                + schema.keys.filter { !tableOrder.contains($0) && !postgresOnly.contains($0) }.sorted()
            return try readSQLite(queue, file: file) { db in
                let sqliteTables = try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
                for table in sqliteTables where !sqliteOnly.contains(table) && folded[table] == nil && schema[table] == nil {
                    throw ProvenanceError(.storage, "registry.sqlite has a table '\(table)' the PostgreSQL schema lacks: this provenance cannot migrate it")
                }
                for table in tables where !sqliteTables.contains(table) {
                    throw ProvenanceError(.storage, "registry.sqlite has no table '\(table)': open the store once with this provenance (say `provenance verify`) to bring it up to date, then migrate")
                }
                var sequences: [String: Int64] = [:]
                if try db.tableExists("sqlite_sequence") {
                    for row in try Row.fetchAll(db, sql: "SELECT name, seq FROM sqlite_sequence") {
                        let name: String = row[0]
                        let seq: Int64 = row[1]
                        sequences[name] = seq
                    }
                }
                return try session.transaction {
                    let list = tables.map { quoted($0) }.joined(separator: ", ")
                    try session.query(PostgresQuery(unsafeSQL: "LOCK TABLE \(list) IN ACCESS EXCLUSIVE MODE"), "lock the tables")
                    try session.query("SELECT pg_advisory_xact_lock(\(PostgresRegistryIndex.ledgerLock))", "lock the ledger")
                    // Someone may have written between the first look and the locks.
                    try refuseUnlessEmpty(session, location: location)
                    var counts: [String: Int] = [:]
                    for table in tables {
                        let folding = folded.filter { $0.value.into == table && sqliteTables.contains($0.key) }
                            .map { (table: $0.key, key: $0.value.key) }
                        counts[table] = try copyTable(table, columns: schema[table]!, folding: folding.first, from: db, into: session)
                    }
                    try session.flush()
                    // Every row arrived: the database counts what was read.
                    for table in tables {
                        let stored = try session.query(PostgresQuery(unsafeSQL: "SELECT count(*)::bigint FROM \(quoted(table))"), "count \(table)")
                            .first?.decode(Int64.self) ?? -1
                        guard stored == Int64(counts[table] ?? 0) else {
                            throw ProvenanceError(.storage, "copied \(counts[table] ?? 0) rows of \(table) but the database holds \(stored): nothing was migrated")
                        }
                    }
                    for table in tables {
                        for column in schema[table]! where column.serial {
                            try setSequence(table, column.name, past: sequences[table] ?? 0, in: session)
                        }
                    }
                    return counts
                }
            }
        }
        return Summary(rows: rows, location: location, seconds: Date().timeIntervalSince(started))
    }

    // MARK: Checks

    /// Throws unless no table of a store's schema in `session`'s database holds a row.
    static func refuseUnlessEmpty(_ session: PostgresSession, location: DatabaseLocation) throws {
        let known = tableOrder + ["store_identity"]
        let present = try session.query("""
            SELECT table_name::text FROM information_schema.tables
            WHERE table_schema = current_schema() AND table_name = ANY(\(known)::text[])
            """, "read the database's tables").map { try $0.decode(String.self) }
        guard !present.isEmpty else { return }
        let probes = known.filter(present.contains).map { "SELECT \(literal($0))::text AS t WHERE EXISTS (SELECT 1 FROM \(quoted($0)))" }
        let full = try session.query(PostgresQuery(unsafeSQL: probes.joined(separator: " UNION ALL ")), "look for rows in the database")
            .map { try $0.decode(String.self) }
        if !full.isEmpty {
            throw ProvenanceError.conflict("the database \(location.url) already holds a Provenance store (rows in \(full.joined(separator: ", "))): migrate into an empty database")
        }
    }

    // MARK: Schema

    struct Column {
        enum Kind { case text, bigint, bytea }
        var name: String
        var kind: Kind
        var nullable: Bool
        /// A BIGSERIAL column: its sequence is set past the copied rows.
        var serial: Bool
    }

    /// The columns of every table in `session`'s schema, in their order.
    static func postgresColumns(_ session: PostgresSession) throws -> [String: [Column]] {
        var result: [String: [Column]] = [:]
        for row in try session.query("""
            SELECT table_name::text, column_name::text, data_type::text, is_nullable::text, coalesce(column_default, '')::text
            FROM information_schema.columns WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position
            """, "read the database's schema") {
            let (table, name, type, nullable, defaultValue) = try row.decode((String, String, String, String, String).self)
            if postgresOnly.contains(table) { continue }
            let kind: Column.Kind
            switch type {
            case "text": kind = .text
            case "bigint": kind = .bigint
            case "bytea": kind = .bytea
            default: throw ProvenanceError(.storage, "column \(table).\(name) has type \(type), which migrate cannot copy")
            }
            result[table, default: []].append(Column(name: name, kind: kind, nullable: nullable == "YES",
                                                     serial: defaultValue.hasPrefix("nextval(")))
        }
        return result
    }

    // MARK: Copying

    /// Runs `body` in one read transaction of the SQLite file: every table from one snapshot.
    static func readSQLite<T>(_ queue: DatabaseQueue, file: URL, _ body: (Database) throws -> T) throws -> T {
        do {
            return try queue.read(body)
        } catch let error as DatabaseError {
            throw ProvenanceError(.storage, "cannot read \(file.path): \(error.message ?? "\(error)")")
        }
    }

    /// Column values gathered for one `INSERT … SELECT FROM unnest(…)`.
    struct Batch {
        var texts: [[String]]
        var ints: [[Int64]]
        var bytes: [[ByteBuffer]]
        var nulls: [[Bool]]
        var count = 0

        init(width: Int) {
            texts = Array(repeating: [], count: width)
            ints = Array(repeating: [], count: width)
            bytes = Array(repeating: [], count: width)
            nulls = Array(repeating: [], count: width)
        }
    }

    /// Copies `table` in `rowid` order; returns the count of rows. With `folding`, each row takes
    /// the values of the columns it shares with the row of `folding.table` of the same `key`,
    /// where there is one.
    static func copyTable(_ table: String, columns: [Column], folding: (table: String, key: String)? = nil,
                          from db: Database, into session: PostgresSession) throws -> Int {
        func columnNames(_ table: String) throws -> Set<String> {
            Set(try Row.fetchAll(db, sql: "PRAGMA table_info(\(quoted(table)))").map { $0["name"] as String })
        }
        let sqliteColumns = try columnNames(table)
        let foldedColumns = try folding.map { try columnNames($0.table).subtracting([$0.key, "id"]) } ?? []
        for (name, lost) in [(table, sqliteColumns), (folding?.table ?? "", foldedColumns)] {
            if let lost = lost.subtracting(columns.map(\.name)).sorted().first {
                throw ProvenanceError(.storage, "registry.sqlite's \(name) has a column '\(lost)' the PostgreSQL schema lacks: this provenance cannot migrate it")
            }
        }
        // A column SQLite lacks is its rowid (the order) when serial, else NULL, as SQLite's own
        // migration adding it would have left it.
        let selects = try columns.map { column -> String in
            if foldedColumns.contains(column.name) { return "coalesce(f.\(quoted(column.name)), t.\(quoted(column.name)))" }
            if sqliteColumns.contains(column.name) { return "t.\(quoted(column.name))" }
            if column.serial { return "t.rowid" }
            if column.nullable { return "NULL" }
            throw ProvenanceError(.storage, "registry.sqlite's \(table) has no column '\(column.name)': open the store once with this provenance (say `provenance verify`) to bring it up to date, then migrate")
        }
        let insert = insertSQL(table, columns: columns)
        var batch = Batch(width: columns.count)
        var total = 0
        var sent = 0
        let join = folding.map { " LEFT JOIN \(quoted($0.table)) f ON f.\(quoted($0.key)) = t.\(quoted($0.key))" } ?? ""
        let cursor = try Row.fetchCursor(db, sql: "SELECT \(selects.joined(separator: ", ")) FROM \(quoted(table)) t\(join) ORDER BY t.rowid")
        while let row = try cursor.next() {
            for (i, column) in columns.enumerated() {
                try append(row[i] as DatabaseValue, to: &batch, at: i, column: column, table: table)
            }
            batch.count += 1
            total += 1
            if batch.count == chunkRows {
                try send(&batch, insert, columns: columns, into: session)
                sent += 1
                // Keep a bounded number of statements in flight (and their parameters in memory).
                if sent % 8 == 0 { try session.flush() }
            }
        }
        if batch.count > 0 { try send(&batch, insert, columns: columns, into: session) }
        return total
    }

    static func append(_ value: DatabaseValue, to batch: inout Batch, at i: Int, column: Column, table: String) throws {
        var isNull = false
        switch (column.kind, value.storage) {
        case (_, .null):
            guard column.nullable else {
                throw ProvenanceError(.storage, "registry.sqlite's \(table).\(column.name) holds a NULL, which the PostgreSQL schema does not allow")
            }
            isNull = true
            switch column.kind {
            case .text: batch.texts[i].append("")
            case .bigint: batch.ints[i].append(0)
            case .bytea: batch.bytes[i].append(ByteBuffer())
            }
        case (.text, .string(let text)): batch.texts[i].append(text)
        case (.text, .int64(let number)): batch.texts[i].append(String(number))
        case (.bigint, .int64(let number)): batch.ints[i].append(number)
        case (.bytea, .blob(let data)): batch.bytes[i].append(ByteBuffer(bytes: data))
        case (.bytea, .string(let text)): batch.bytes[i].append(ByteBuffer(string: text))
        default:
            throw ProvenanceError(.storage, "registry.sqlite's \(table).\(column.name) holds \(value), which does not fit its PostgreSQL type")
        }
        if column.nullable { batch.nulls[i].append(isNull) }
    }

    /// `INSERT INTO table (…) SELECT … FROM unnest($1, …)`: one array per column, plus a mask of
    /// NULLs per nullable column (PostgresNIO encodes no arrays of optionals).
    static func insertSQL(_ table: String, columns: [Column]) -> String {
        var arrays: [String] = [], names: [String] = [], values: [String] = []
        var parameter = 0
        for (i, column) in columns.enumerated() {
            parameter += 1
            let type = switch column.kind { case .text: "text"; case .bigint: "bigint"; case .bytea: "bytea" }
            arrays.append("$\(parameter)::\(type)[]")
            names.append("v\(i)")
            if column.nullable {
                parameter += 1
                arrays.append("$\(parameter)::boolean[]")
                names.append("n\(i)")
                values.append("CASE WHEN n\(i) THEN NULL ELSE v\(i) END")
            } else {
                values.append("v\(i)")
            }
        }
        return """
            INSERT INTO \(quoted(table)) (\(columns.map { quoted($0.name) }.joined(separator: ", ")))
            SELECT \(values.joined(separator: ", ")) FROM unnest(\(arrays.joined(separator: ", "))) AS u (\(names.joined(separator: ", ")))
            """
    }

    static func send(_ batch: inout Batch, _ sql: String, columns: [Column], into session: PostgresSession) throws {
        var binds = PostgresBindings(capacity: columns.count * 2)
        for (i, column) in columns.enumerated() {
            switch column.kind {
            case .text: binds.append(batch.texts[i])
            case .bigint: binds.append(batch.ints[i])
            case .bytea: binds.append(batch.bytes[i])
            }
            if column.nullable { binds.append(batch.nulls[i]) }
        }
        session.send(PostgresQuery(unsafeSQL: sql, binds: binds))
        batch = Batch(width: columns.count)
    }

    /// Sets `table.column`'s sequence so the next value is past every copied one and past
    /// `floor` (SQLite's `sqlite_sequence` for the table, which an AUTOINCREMENT never reuses).
    static func setSequence(_ table: String, _ column: String, past floor: Int64, in session: PostgresSession) throws {
        let largest = try session.query(PostgresQuery(unsafeSQL: "SELECT coalesce(max(\(quoted(column))), 0)::bigint FROM \(quoted(table))"),
                                        "read the largest \(table).\(column)").first?.decode(Int64.self) ?? 0
        let last = max(largest, floor)
        try session.query("""
            SELECT setval(pg_get_serial_sequence(\(quoted(table)), \(column)), \(max(last, 1)), \(last > 0))
            """, "set the sequence of \(table).\(column)")
    }

    static func quoted(_ name: String) -> String { "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\"" }
    static func literal(_ text: String) -> String { "'" + text.replacingOccurrences(of: "'", with: "''") + "'" }
}
