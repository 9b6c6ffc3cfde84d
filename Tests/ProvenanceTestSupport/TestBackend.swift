public import Foundation
import PostgresStorage

/// The backend the tests' stores use. By default SQLite; with `PROVENANCE_TEST_POSTGRES` set to
/// a server (`postgres://USER@HOST:PORT`), every store a fixture creates gets a fresh database
/// on that server, so the same suites run against PostgreSQL (`make test` does both).
public enum TestBackend {
    /// The PostgreSQL server the tests use, if any.
    public static let postgresServer: String? = {
        guard let url = ProcessInfo.processInfo.environment["PROVENANCE_TEST_POSTGRES"], !url.isEmpty else { return nil }
        return url.hasSuffix("/") ? String(url.dropLast()) : url
    }()

    public static var isPostgres: Bool { postgresServer != nil }

    private static let counter = LockedCounter()

    /// A new empty database on the test server, as a URL for `init --database`; nil on SQLite.
    /// Also makes `postgres://` stores openable in this process, as the CLI does at startup.
    public static func newDatabaseURL() throws -> String? {
        guard let server = postgresServer else { return nil }
        PostgresRegistryIndex.register()
        let name = "t_\(getpid())_\(counter.next())_\(UUID().uuidString.prefix(8).lowercased())"
        try psql(server: server, database: "postgres", "CREATE DATABASE \(name)")
        return "\(server)/\(name)"
    }

    /// Runs `sql` with psql on `database` of `server`; returns its unaligned, tuples-only output.
    @discardableResult
    public static func psql(server: String, database: String, _ sql: String) throws -> String {
        guard let components = URLComponents(string: server), let host = components.host else {
            throw FixtureError("PROVENANCE_TEST_POSTGRES is not a URL: \(server)")
        }
        var environment: [String: String] = [:]
        if let password = components.password { environment["PGPASSWORD"] = password }
        let result = try runProcess("/usr/bin/psql", ["-h", host, "-p", String(components.port ?? 5432), "-U", components.user ?? "postgres",
                                                      "-d", database, "-qAtX", "-v", "ON_ERROR_STOP=1", "-c", sql], environment: environment)
        guard result.succeeded else { throw FixtureError("psql \(sql.prefix(80)): \(result.stderr)") }
        return result.output
    }

    /// The database URL a store keeps in `database.json`, if it has one.
    public static func databaseURL(ofStore store: URL) -> String? {
        guard let data = FileManager.default.contents(atPath: store.appendingPathComponent("database.json").path),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return nil }
        return object["url"] as? String
    }

    /// Runs `sql` against a store's state, whichever backend holds it: sqlite3 on
    /// `registry.sqlite`, psql on its database. Returns the rows, `|`-separated.
    @discardableResult
    public static func sql(store: URL, _ sql: String) throws -> String {
        if let url = databaseURL(ofStore: store), let components = URLComponents(string: url) {
            let database = String(components.path.dropFirst())
            var server = components
            server.path = ""
            return try psql(server: server.string ?? url, database: database, sql)
        }
        let result = try runProcess("/usr/bin/sqlite3", [store.appendingPathComponent("registry.sqlite").path, sql])
        guard result.succeeded else { throw FixtureError("sqlite3 \(sql.prefix(80)): \(result.stderr)") }
        return result.output
    }

    /// Copies a store (nobody may be using it): its folder, and on PostgreSQL its database, as
    /// a new database the copy's `database.json` names.
    public static func copyStore(_ store: URL, to copy: URL) throws {
        if let url = databaseURL(ofStore: store), var components = URLComponents(string: url) {
            let original = String(components.path.dropFirst())
            let name = "\(original)_copy_\(counter.next())"
            components.path = ""
            try psql(server: components.string ?? url, database: "postgres", "CREATE DATABASE \(name) TEMPLATE \(original)")
            try FileManager.default.copyItem(at: store, to: copy)
            components.path = "/\(name)"
            let json = try JSONSerialization.data(withJSONObject: ["url": components.string ?? url])
            try json.write(to: copy.appendingPathComponent("database.json"))
            return
        }
        try sql(store: store, "PRAGMA wal_checkpoint(TRUNCATE)")
        try FileManager.default.copyItem(at: store, to: copy)
    }

    /// Every row of a store's state, in a stable text form, to assert that nothing changed.
    public static func dump(store: URL) throws -> String {
        if let url = databaseURL(ofStore: store), let components = URLComponents(string: url), let host = components.host {
            let result = try runProcess("/usr/bin/pg_dump", ["-h", host, "-p", String(components.port ?? 5432), "-U", components.user ?? "postgres",
                                                             "--data-only", "--no-owner", "-d", String(components.path.dropFirst())])
            guard result.succeeded else { throw FixtureError("pg_dump failed: \(result.stderr)") }
            // A rolled-back insert still consumes a value of a BIGSERIAL sequence (PostgreSQL
            // never gives one back); those only order rows, so their positions are not state.
            // `\restrict` lines (pg_dump 15.14 on) carry a random key, and comments a time.
            let lines = result.stdout.split(separator: "\n", omittingEmptySubsequences: false)
                .filter { !$0.hasPrefix("SELECT pg_catalog.setval(") && !$0.hasPrefix("\\restrict") && !$0.hasPrefix("\\unrestrict") && !$0.hasPrefix("--") }
            // Rows come in their physical order, which an UPDATE changes even when it writes
            // the same values back: each table's rows are sorted.
            var sorted: [Substring] = []
            var rows: [Substring]?
            for line in lines {
                if line.hasPrefix("COPY ") {
                    sorted.append(line)
                    rows = []
                } else if line == "\\.", let table = rows {
                    sorted += table.sorted()
                    sorted.append(line)
                    rows = nil
                } else if rows != nil {
                    rows!.append(line)
                } else {
                    sorted.append(line)
                }
            }
            return sorted.joined(separator: "\n")
        }
        let dump = try runProcess("/usr/bin/sqlite3", [store.appendingPathComponent("registry.sqlite").path, ".dump"])
        guard dump.succeeded else { throw FixtureError("sqlite3 .dump failed: \(dump.stderr)") }
        return dump.stdout
    }

    /// `bytes` as a literal of the store's SQL dialect.
    public static func blobLiteral(_ bytes: Data, store: URL) -> String {
        let hex = bytes.map { String(format: "%02X", $0) }.joined()
        return databaseURL(ofStore: store) != nil ? "'\\x\(hex)'::bytea" : "X'\(hex)'"
    }

    /// The SQL that reads a blob column as hex, in the store's dialect.
    public static func hexExpression(_ column: String, store: URL) -> String {
        databaseURL(ofStore: store) != nil ? "upper(encode(\(column), 'hex'))" : "hex(\(column))"
    }
}

private final class LockedCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0

    func next() -> Int {
        lock.lock()
        defer { lock.unlock() }
        value += 1
        return value
    }
}
