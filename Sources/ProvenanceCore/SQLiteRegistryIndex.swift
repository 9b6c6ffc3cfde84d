public import Foundation
import GRDB

/// The embedded registry index: SQLite in WAL mode, through GRDB, with versioned migrations.
public final class SQLiteRegistryIndex: RegistryIndex, @unchecked Sendable {
    let pool: DatabasePool
    private var checkpointer: WALCheckpointer?

    /// Opens (creating if needed) the database at `url` and brings its schema up to date.
    public init(url: URL) throws {
        var configuration = Configuration()
        configuration.busyMode = .timeout(30)
        configuration.prepareDatabase { db in
            // A new database gets 8 KB pages (an existing one keeps its own: this is ignored).
            // An invoice is about 2.2 KB: a 4 KB page holds one and wastes the rest, an 8 KB page
            // three (Benchmarks/settlement.sh: 4,743 bytes a settled call with 4 KB pages, 3,711 with 8 KB).
            try db.execute(sql: "PRAGMA page_size = \(Self.pageSize)")
            try db.execute(sql: "PRAGMA synchronous = FULL")
            // The log is copied into the database by `WALCheckpointer`, off the commit path; a
            // commit does it only if the log outgrows 40 MB (the checkpointer held up by readers).
            try db.execute(sql: "PRAGMA wal_autocheckpoint = \(WALCheckpointer.fallbackPages)")
        }
        do {
            pool = try DatabasePool(path: url.path, configuration: configuration)
            try Self.migrator.migrate(pool)
        } catch let error as DatabaseError {
            throw ProvenanceError(.storage, "cannot open the registry index \(url.path): \(error.message ?? error.description)")
        }
        checkpointer = WALCheckpointer(path: url.path)
    }

    deinit {
        checkpointer?.stop()
    }

    /// The page size of a database created from now on.
    static let pageSize = 8_192

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1-datasets") { db in
            try db.create(table: "datasets") { t in
                t.primaryKey("name", .text)
                t.column("head", .text)
                t.column("created_at", .integer).notNull()
            }
            try db.create(table: "dataset_commits") { t in
                t.column("dataset", .text).notNull().references("datasets", onDelete: .cascade)
                t.column("commit_id", .text).notNull()
                t.column("previous_head", .text)
                t.column("kind", .text).notNull()
                t.column("files", .integer).notNull()
                t.column("bytes", .integer).notNull()
                t.column("manifest_sha256", .text).notNull()
                t.column("manifest", .blob).notNull()
                t.column("history_commits", .integer).notNull()
                t.column("registered_at", .integer).notNull()
                t.primaryKey(["dataset", "commit_id"])
            }
            try db.create(table: "commit_contributors") { t in
                t.column("dataset", .text).notNull()
                t.column("commit_id", .text).notNull()
                t.column("contributor_id", .text).notNull()
                t.column("name", .text).notNull()
                t.column("email", .text).notNull()
                t.column("commits", .integer).notNull()
                t.primaryKey(["dataset", "commit_id", "contributor_id"])
                t.foreignKey(["dataset", "commit_id"], references: "dataset_commits", onDelete: .cascade)
            }
            try db.create(table: "blob_digests") { t in
                t.column("dataset", .text).notNull().references("datasets", onDelete: .cascade)
                t.column("blob_id", .text).notNull()
                t.column("sha256", .text).notNull()
                t.column("size", .integer).notNull()
                t.primaryKey(["dataset", "blob_id"])
            }
        }
        migrator.registerMigration("v2-models") { db in
            try db.create(table: "models") { t in
                t.primaryKey("name", .text)
                t.column("plugin", .text).notNull()
                t.column("head", .text)
                t.column("created_at", .integer).notNull()
            }
            try db.create(table: "model_versions") { t in
                t.column("model", .text).notNull().references("models", onDelete: .cascade)
                t.column("version", .text).notNull()
                t.column("commit_id", .text).notNull()
                t.column("manifest", .blob).notNull()
                t.column("registered_at", .integer).notNull()
                t.primaryKey(["model", "version"])
            }
            // Which versions were made from which dataset commits, for lineage queries.
            try db.create(table: "model_datasets") { t in
                t.column("model", .text).notNull()
                t.column("version", .text).notNull()
                t.column("dataset", .text).notNull()
                t.column("commit_id", .text).notNull()
                t.foreignKey(["model", "version"], references: "model_versions", onDelete: .cascade)
            }
            try db.create(index: "model_datasets_by_commit", on: "model_datasets", columns: ["dataset", "commit_id"])
        }
        migrator.registerMigration("v3-attribution") { db in
            // Per-file blame totals of dataset commits, so data-volume is computed once per commit
            // and incrementally from a cached parent.
            try db.create(table: "file_authorship") { t in
                t.column("dataset", .text).notNull()
                t.column("commit_id", .text).notNull()
                t.column("path", .text).notNull()
                t.column("blob_id", .text).notNull()
                t.column("contributor_id", .text).notNull()
                t.column("bytes", .integer).notNull()
                t.column("lines", .integer).notNull()
                t.primaryKey(["dataset", "commit_id", "path", "contributor_id"])
            }
            // Commits whose authorship is complete (a file with no lines has no rows).
            try db.create(table: "authorship_commits") { t in
                t.column("dataset", .text).notNull()
                t.column("commit_id", .text).notNull()
                t.column("files", .text).notNull()
                t.primaryKey(["dataset", "commit_id"])
            }
            try db.create(table: "plugin_history") { t in
                t.autoIncrementedPrimaryKey("position")
                t.column("model", .text).notNull().references("models", onDelete: .cascade)
                t.column("plugin", .text).notNull()
                t.column("changed_at", .integer).notNull()
                t.column("changed_by", .text).notNull()
                t.column("commit_id", .text).notNull()
            }
        }
        registerSettlementMigration(&migrator)
        registerTokenMigration(&migrator)
        registerNetSettlementMigration(&migrator)
        registerAuthorshipEngineMigration(&migrator)
        registerCallOutputMigration(&migrator)
        registerPendingIndexMigration(&migrator)
        registerPendingPayloadMigration(&migrator)
        registerAccountPostingsMigration(&migrator)
        return migrator
    }

    /// Runs a write transaction, turning database failures into one-line errors.
    func write<T>(_ body: (Database) throws -> T) throws -> T {
        do {
            let result = try pool.write(body)
            checkpointer?.committed()
            return result
        } catch let error as DatabaseError {
            throw ProvenanceError(.storage, "registry index write failed: \(error.message ?? error.description)")
        }
    }

    /// Runs a read, turning database failures into one-line errors.
    func read<T>(_ body: (Database) throws -> T) throws -> T {
        do { return try pool.read(body) } catch let error as DatabaseError {
            throw ProvenanceError(.storage, "registry index read failed: \(error.message ?? error.description)")
        }
    }

    public func dataset(named name: String) throws -> DatasetRecord? {
        try read { db in
            try Row.fetchOne(db, sql: "SELECT name, head, created_at FROM datasets WHERE name = ?", arguments: [name])
                .map(Self.datasetRecord)
        }
    }

    public func datasets() throws -> [DatasetRecord] {
        try read { db in
            try Row.fetchAll(db, sql: "SELECT name, head, created_at FROM datasets ORDER BY name").map(Self.datasetRecord)
        }
    }

    public func registeredCommit(dataset: String, commit: String) throws -> RegisteredCommit? {
        try read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM dataset_commits WHERE dataset = ? AND commit_id = ?", arguments: [dataset, commit])
                .map(Self.registeredCommit)
        }
    }

    public func registeredCommits(dataset: String) throws -> [RegisteredCommit] {
        try read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM dataset_commits WHERE dataset = ? ORDER BY registered_at, rowid", arguments: [dataset])
                .map(Self.registeredCommit)
        }
    }

    public func manifest(dataset: String, commit: String) throws -> Data? {
        try read { db in
            try Data.fetchOne(db, sql: "SELECT manifest FROM dataset_commits WHERE dataset = ? AND commit_id = ?", arguments: [dataset, commit])
        }
    }

    public func contributors(dataset: String, commit: String) throws -> [ContributorSummary] {
        try read { db in
            try Row.fetchAll(db, sql: """
                SELECT contributor_id, name, email, commits FROM commit_contributors
                WHERE dataset = ? AND commit_id = ? ORDER BY commits DESC, contributor_id
                """, arguments: [dataset, commit]).map {
                ContributorSummary(id: $0["contributor_id"], name: $0["name"], email: $0["email"], commits: $0["commits"])
            }
        }
    }

    public func contributors(of commits: [DatasetCommitKey]) throws -> [DatasetCommitKey: [ContributorSummary]] {
        try read { db in
            var result: [DatasetCommitKey: [ContributorSummary]] = [:]
            let statement = try db.cachedStatement(sql: """
                SELECT contributor_id, name, email, commits FROM commit_contributors
                WHERE dataset = ? AND commit_id = ? ORDER BY commits DESC, contributor_id
                """)
            for key in Set(commits) {
                var list: [ContributorSummary] = []
                let rows = try Row.fetchCursor(statement, arguments: [key.dataset, key.commit])
                while let row = try rows.next() {
                    list.append(ContributorSummary(id: row[0], name: row[1], email: row[2], commits: row[3]))
                }
                result[key] = list
            }
            return result
        }
    }

    public func blobDigests(dataset: String, blobs: [String]) throws -> [String: BlobDigest] {
        try read { db in
            var result: [String: BlobDigest] = [:]
            // Chunked so the statement stays under SQLite's variable limit.
            for start in stride(from: 0, to: blobs.count, by: 500) {
                let chunk = Array(blobs[start..<min(start + 500, blobs.count)])
                let marks = Array(repeating: "?", count: chunk.count).joined(separator: ",")
                var arguments: StatementArguments = [dataset]
                arguments += StatementArguments(chunk)
                for row in try Row.fetchAll(db, sql: "SELECT blob_id, sha256, size FROM blob_digests WHERE dataset = ? AND blob_id IN (\(marks))", arguments: arguments) {
                    let digest = BlobDigest(blob: row["blob_id"], sha256: row["sha256"], size: UInt64(row["size"] as Int64))
                    result[digest.blob] = digest
                }
            }
            return result
        }
    }

    public func register(_ registration: CommitRegistration, beforeCommit: () throws -> Void) throws {
        try write { db in
            try Self.insert(registration, into: db)
            try beforeCommit()
        }
    }

    static func insert(_ registration: CommitRegistration, into db: Database) throws {
        let record = registration.record
        if registration.createsDataset {
            try db.execute(sql: "INSERT INTO datasets (name, head, created_at) VALUES (?, NULL, ?)",
                           arguments: [record.dataset, record.registeredAt])
        }
        try db.execute(sql: """
            INSERT INTO dataset_commits (dataset, commit_id, previous_head, kind, files, bytes, manifest_sha256,
                                         manifest, history_commits, registered_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (dataset, commit_id) DO NOTHING
            """, arguments: [record.dataset, record.commit, record.previousHead, record.kind.rawValue, record.files,
                             Int64(record.bytes), record.manifestSHA256, registration.manifest, record.historyCommits,
                             record.registeredAt])
        if db.changesCount > 0 {
            let statement = try db.cachedStatement(sql: """
                INSERT INTO commit_contributors (dataset, commit_id, contributor_id, name, email, commits)
                VALUES (?, ?, ?, ?, ?, ?)
                """)
            for contributor in registration.contributors {
                try statement.execute(arguments: [record.dataset, record.commit, contributor.id, contributor.name,
                                                  contributor.email, contributor.commits])
            }
        }
        let digest = try db.cachedStatement(sql: """
            INSERT INTO blob_digests (dataset, blob_id, sha256, size) VALUES (?, ?, ?, ?)
            ON CONFLICT (dataset, blob_id) DO NOTHING
            """)
        // In key order, so the index B-tree is appended to rather than split at random places.
        for blob in registration.blobDigests.sorted(by: { $0.blob < $1.blob }) {
            try digest.execute(arguments: [record.dataset, blob.blob, blob.sha256, Int64(blob.size)])
        }
        try db.execute(sql: "UPDATE datasets SET head = ? WHERE name = ?", arguments: [record.commit, record.dataset])
    }

    private static func datasetRecord(_ row: Row) -> DatasetRecord {
        DatasetRecord(name: row["name"], head: row["head"], createdAt: row["created_at"])
    }

    private static func registeredCommit(_ row: Row) -> RegisteredCommit {
        RegisteredCommit(
            dataset: row["dataset"], commit: row["commit_id"], previousHead: row["previous_head"],
            kind: RegisteredCommit.Kind(rawValue: row["kind"]) ?? .add, files: row["files"],
            bytes: UInt64(row["bytes"] as Int64), manifestSHA256: row["manifest_sha256"],
            historyCommits: row["history_commits"], registeredAt: row["registered_at"])
    }

    // MARK: Models

    public func model(named name: String) throws -> ModelRecord? {
        try read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM models WHERE name = ?", arguments: [name]).map(Self.modelRecord)
        }
    }

    public func models() throws -> [ModelRecord] {
        try read { db in try Row.fetchAll(db, sql: "SELECT * FROM models ORDER BY name").map(Self.modelRecord) }
    }

    public func modelVersion(model: String, version: String) throws -> ModelVersionRecord? {
        try read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM model_versions WHERE model = ? AND version = ?", arguments: [model, version])
                .map(Self.modelVersionRecord)
        }
    }

    public func modelVersions(model: String) throws -> [ModelVersionRecord] {
        try read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM model_versions WHERE model = ? ORDER BY registered_at, rowid", arguments: [model])
                .map(Self.modelVersionRecord)
        }
    }

    public func register(_ registration: ModelVersionRegistration, beforeCommit: () throws -> Void) throws {
        try write { db in
            try Self.insert(registration, into: db)
            try beforeCommit()
        }
    }

    static func insert(_ registration: ModelVersionRegistration, into db: Database) throws {
        let version = registration.version
        let manifest = try version.decodedManifest()
        try db.execute(sql: """
            INSERT INTO models (name, plugin, head, created_at) VALUES (?, ?, ?, ?)
            ON CONFLICT (name) DO UPDATE SET head = excluded.head
            """, arguments: [version.model, registration.plugin, version.commit, version.registeredAt])
        try db.execute(sql: """
            INSERT INTO model_versions (model, version, commit_id, manifest, registered_at) VALUES (?, ?, ?, ?, ?)
            """, arguments: [version.model, version.version, version.commit, version.manifest, version.registeredAt])
        for input in manifest.datasets {
            try db.execute(sql: "INSERT INTO model_datasets (model, version, dataset, commit_id) VALUES (?, ?, ?, ?)",
                           arguments: [version.model, version.version, input.dataset, input.commit])
        }
        if let change = registration.pluginChange { try insert(change, into: db) }
    }

    public func rebuild(datasets: [CommitRegistration], datasetHeads: [String: String], models: [ModelVersionRegistration],
                        pluginChanges: [PluginChange]) throws {
        try write { db in
            for table in ["plugin_history", "file_authorship", "authorship_commits", "model_datasets", "model_versions", "models", "commit_contributors", "dataset_commits", "blob_digests", "datasets"] {
                try db.execute(sql: "DELETE FROM \(table)")
            }
            var created = Set<String>()
            for var registration in datasets {
                registration.createsDataset = created.insert(registration.record.dataset).inserted
                try Self.insert(registration, into: db)
            }
            for (dataset, head) in datasetHeads {
                try db.execute(sql: "UPDATE datasets SET head = ? WHERE name = ?", arguments: [head, dataset])
            }
            for registration in models {
                try Self.insert(registration, into: db)
            }
            for change in pluginChanges {
                try Self.insert(change, into: db)
            }
        }
    }

    private static func modelRecord(_ row: Row) -> ModelRecord {
        ModelRecord(name: row["name"], plugin: row["plugin"], head: row["head"], createdAt: row["created_at"])
    }

    private static func modelVersionRecord(_ row: Row) -> ModelVersionRecord {
        ModelVersionRecord(model: row["model"], version: row["version"], commit: row["commit_id"], manifest: row["manifest"],
                           registeredAt: row["registered_at"])
    }

    // MARK: Plugins

    public func pluginHistory(model: String) throws -> [PluginChange] {
        try read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM plugin_history WHERE model = ? ORDER BY position", arguments: [model]).map {
                PluginChange(model: $0["model"], plugin: $0["plugin"], changedAt: $0["changed_at"], changedBy: $0["changed_by"],
                             commit: $0["commit_id"])
            }
        }
    }

    public func record(_ change: PluginChange, beforeCommit: () throws -> Void) throws {
        try write { db in
            try Self.insert(change, into: db)
            try beforeCommit()
        }
    }

    static func insert(_ change: PluginChange, into db: Database) throws {
        try db.execute(sql: "INSERT INTO plugin_history (model, plugin, changed_at, changed_by, commit_id) VALUES (?, ?, ?, ?, ?)",
                       arguments: [change.model, change.plugin, change.changedAt, change.changedBy, change.commit])
        try db.execute(sql: "UPDATE models SET plugin = ? WHERE name = ?", arguments: [change.plugin, change.model])
    }

    // MARK: Authorship cache

    public func authorship(dataset: String, commit: String) throws -> [FileAuthorship]? {
        try read { db in
            guard let filesJSON = try String.fetchOne(db, sql: "SELECT files FROM authorship_commits WHERE dataset = ? AND commit_id = ?",
                                                      arguments: [dataset, commit]) else { return nil }
            let files = (try? JSONDecoder().decode([[String]].self, from: Data(filesJSON.utf8))) ?? []
            var byPath: [String: FileAuthorship] = [:]
            for pair in files where pair.count == 2 { byPath[pair[0]] = FileAuthorship(path: pair[0], blob: pair[1], amounts: [:]) }
            for row in try Row.fetchAll(db, sql: "SELECT path, contributor_id, bytes, lines FROM file_authorship WHERE dataset = ? AND commit_id = ?",
                                        arguments: [dataset, commit]) {
                let path: String = row["path"]
                byPath[path]?.amounts[row["contributor_id"]] = .init(bytes: UInt64(row["bytes"] as Int64), lines: UInt64(row["lines"] as Int64))
            }
            return files.compactMap { $0.count == 2 ? byPath[$0[0]] : nil }
        }
    }

    public func storeAuthorship(_ files: [FileAuthorship], dataset: String, commit: String) throws {
        try write { db in
            let list = try JSONEncoder().encode(files.map { [$0.path, $0.blob] })
            try db.execute(sql: "INSERT OR REPLACE INTO authorship_commits (dataset, commit_id, files) VALUES (?, ?, ?)",
                           arguments: [dataset, commit, String(decoding: list, as: UTF8.self)])
            let statement = try db.cachedStatement(sql: """
                INSERT OR REPLACE INTO file_authorship (dataset, commit_id, path, blob_id, contributor_id, bytes, lines)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """)
            for file in files {
                for (contributor, amount) in file.amounts {
                    try statement.execute(arguments: [dataset, commit, file.path, file.blob, contributor,
                                                      Int64(amount.bytes), Int64(amount.lines)])
                }
            }
        }
    }
}

/// Copies SQLite's write-ahead log into the database file, on a thread and a connection of its
/// own (a PASSIVE checkpoint: it never blocks a writer or a reader): soon after each commit made
/// through this process's index (`committed()`), at most every `spacing`, and every `interval`
/// regardless, for writers in other processes.
///
/// Left to commits, the copy happens inside whichever commit fills the log past 1,000 pages —
/// under load several times a second, each a 4 MB copy and an fsync of the database that every
/// call of that group commit waits for. Measured with `Benchmarks/http.sh`, taking it off the
/// commit path took real-time settlement from 4,241 to 6,770 calls/s and its p50 latency from
/// 15 to 8 ms (one loaded machine, two runs a few minutes apart).
///
/// How often it runs sets the tail: each checkpoint ends with an fsync of the database file,
/// and a group commit whose own fsync of the log lands behind it waits for it. The longer
/// between checkpoints, the more pages each one copies and the longer that fsync. Real-time p99
/// on `Benchmarks/http.sh` (64 connections, 2 cores, one run each unless given): checkpoints
/// every 1 s, 69 and 74 ms; every 100 ms, 27–32 ms (three runs); every 50 ms, 23.5 and 26.4 ms;
/// every 20 ms, 21.6 and 19.5 ms; every 10 ms, 17.9, 23.5 and 40.3 ms. After each commit, at
/// most every 10 ms (this class), nine runs: 17.9-28.0 ms, median 23.6 ms, at or under 20 ms in
/// the three where the server's CPU a call was lowest — on a machine where the same binary's CPU
/// a call moves by a third from run to run.
public final class WALCheckpointer: @unchecked Sendable {
    /// The log size (pages) past which a commit checkpoints anyway.
    public static let fallbackPages = 10_000
    /// A checkpoint at least this often, commits or not (another process may have written).
    public static let interval: TimeInterval = 0.1
    /// After a checkpoint, the next waits at least this long, so that a busy server copies the
    /// log in small steps without checkpointing once per commit.
    static let spacing: TimeInterval = 0.01

    private struct State {
        var committed = false
        var stopping = false
    }

    private let state = Locked(State())
    private let wake = DispatchSemaphore(value: 0)
    private let stopped = DispatchSemaphore(value: 0)

    /// - Parameter interval: how long the thread waits for a commit before checkpointing anyway.
    public init(path: String, interval: TimeInterval = WALCheckpointer.interval) {
        let thread = Thread { [state, wake, stopped] in
            var configuration = Configuration()
            configuration.busyMode = .timeout(1)
            var connection = try? DatabaseQueue(path: path, configuration: configuration)
            while true {
                _ = wake.wait(timeout: .now() + interval)
                let stopping = state.write { state -> Bool in
                    state.committed = false
                    return state.stopping
                }
                if stopping { break }
                // A checkpoint that finds the log busy copies what it can; the next one goes on.
                _ = try? connection?.writeWithoutTransaction { try $0.execute(sql: "PRAGMA wal_checkpoint(PASSIVE)") }
                Thread.sleep(forTimeInterval: Self.spacing)
            }
            connection = nil
            stopped.signal()
        }
        thread.name = "provenance.wal-checkpoint"
        thread.start()
    }

    /// Tells the thread a commit went into the log: it checkpoints soon (wakes it once per
    /// checkpoint, however many commits come meanwhile).
    public func committed() {
        if state.write({ state in defer { state.committed = true }; return !state.committed && !state.stopping }) { wake.signal() }
    }

    private let stopOnce = Locked(false)

    /// Stops the thread and closes its connection (once; later calls return at once).
    public func stop() {
        guard stopOnce.write({ done in defer { done = true }; return !done }) else { return }
        state.write { $0.stopping = true }
        wake.signal()
        stopped.wait()
    }
}
