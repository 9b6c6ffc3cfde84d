public import Foundation
import NIOCore
import PostgresNIO
public import ProvenanceCore

/// The registry's storage on PostgreSQL: the index, the ledger and the tokens of a store whose
/// state several `provenance serve` replicas share.
///
/// Every ledger transaction first takes one advisory lock, so the replicas append to one
/// ledger in one order, each transaction reading the balances, the Merkle frontier and the
/// transfer chain its predecessor committed. Repository writes take a lock per repository.
public final class PostgresRegistryIndex: RegistryIndex, DatabaseBacked, @unchecked Sendable {
    public let location: DatabaseLocation
    let pool: PostgresConnectionPool
    /// Locks this process holds until it releases them (`holdLock`), each on a connection of its own.
    let held = Locked<[String: PostgresSession]>([:])

    /// The advisory-lock key every ledger write transaction takes ("PROVLEDG").
    static let ledgerLock: Int64 = 0x5052_4F56_4C45_4447

    /// Makes `postgres://` stores openable in this process.
    public static func register() {
        StoreBackends.register(scheme: "postgres") { location, password in
            try PostgresRegistryIndex(location: location, password: password)
        }
    }

    /// Connects to the database `location` names and brings its schema up to date.
    ///
    /// - Parameter password: the password to use; nil to take it from `PGPASSWORD`, then
    ///   `PGPASSFILE` (or `~/.pgpass`), as libpq does.
    public init(location: DatabaseLocation, password: String?, environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        self.location = location
        pool = try Self.connectionPool(location: location, password: password, environment: environment)
        try pool.withSession { try PostgresSchema.migrate($0) }
    }

    /// Connections to the database `location` names (none opened yet).
    static func connectionPool(location: DatabaseLocation, password: String?, environment: [String: String]) throws -> PostgresConnectionPool {
        guard let components = URLComponents(string: location.url), let host = components.host, let user = components.user else {
            throw ProvenanceError(.storage, "the database URL '\(location.url)' cannot be read")
        }
        let port = components.port ?? 5432
        let database = String(components.path.drop(while: { $0 == "/" }))
        let secret = password ?? PostgresPassword.lookup(host: host, port: port, database: database, user: user, environment: environment)
        var configuration = PostgresConnection.Configuration(host: host, port: port, username: user, password: secret, database: database,
                                                             tls: .disable)
        configuration.options.connectTimeout = .seconds(5)
        return PostgresConnectionPool(configuration: configuration, description: location.url)
    }

    deinit {
        // PostgresNIO requires every connection closed before it is released.
        for session in held.read({ Array($0.values) }) { closeQuietly(session.connection) }
    }

    public func claimLedger(verifierKey: String) throws {
        let recorded = try pool.withSession { session in
            try session.query("INSERT INTO store_identity (id, verifier_key) VALUES (1, \(verifierKey)) ON CONFLICT (id) DO NOTHING",
                              "record the ledger's key")
            return try session.query("SELECT verifier_key FROM store_identity WHERE id = 1", "read the ledger's key").first?.decode(String.self)
        }
        guard recorded == verifierKey else {
            throw ProvenanceError.conflict("the database \(location.url) holds the ledger of another store (checkpoint key \(recorded ?? "?")): open it with that store's folder, whose keys/ sign that ledger")
        }
    }

    // MARK: Running statements

    func read<T>(_ body: (PostgresSession) throws -> T) throws -> T {
        try pool.withSession(body)
    }

    func write<T>(_ body: (PostgresSession) throws -> T) throws -> T {
        try pool.withSession { session in try session.transaction { try body(session) } }
    }

    // MARK: Datasets

    public func dataset(named name: String) throws -> DatasetRecord? {
        try read { try $0.query("SELECT name, head, created_at FROM datasets WHERE name = \(name)").first.map(Self.datasetRecord) }
    }

    public func datasets() throws -> [DatasetRecord] {
        try read { try $0.query(#"SELECT name, head, created_at FROM datasets ORDER BY name COLLATE "C""#).map(Self.datasetRecord) }
    }

    static let commitColumns = "dataset, commit_id, previous_head, kind, files, bytes, manifest_sha256, history_commits, registered_at"

    public func registeredCommit(dataset: String, commit: String) throws -> RegisteredCommit? {
        try read {
            try $0.query("SELECT \(unescaped: Self.commitColumns) FROM dataset_commits WHERE dataset = \(dataset) AND commit_id = \(commit)")
                .first.map(Self.registeredCommit)
        }
    }

    public func registeredCommits(dataset: String) throws -> [RegisteredCommit] {
        try read {
            try $0.query("""
                SELECT \(unescaped: Self.commitColumns) FROM dataset_commits WHERE dataset = \(dataset) ORDER BY registered_at, position
                """).map(Self.registeredCommit)
        }
    }

    public func manifest(dataset: String, commit: String) throws -> Data? {
        try read {
            try $0.query("SELECT manifest FROM dataset_commits WHERE dataset = \(dataset) AND commit_id = \(commit)").first
                .map { try $0.decode(Data.self) }
        }
    }

    public func contributors(dataset: String, commit: String) throws -> [ContributorSummary] {
        let key = DatasetCommitKey(dataset: dataset, commit: commit)
        return try contributors(of: [key])[key] ?? []
    }

    public func contributors(of commits: [DatasetCommitKey]) throws -> [DatasetCommitKey: [ContributorSummary]] {
        let keys = Array(Set(commits))
        guard !keys.isEmpty else { return [:] }
        return try read { session in
            var result: [DatasetCommitKey: [ContributorSummary]] = [:]
            for key in keys { result[key] = [] }
            let rows = try session.query("""
                SELECT c.dataset, c.commit_id, c.contributor_id, c.name, c.email, c.commits
                FROM commit_contributors c JOIN unnest(\(keys.map(\.dataset))::text[], \(keys.map(\.commit))::text[]) AS k (dataset, commit_id)
                  ON c.dataset = k.dataset AND c.commit_id = k.commit_id
                ORDER BY c.dataset, c.commit_id, c.commits DESC, c.contributor_id COLLATE "C"
                """)
            for row in rows {
                let (dataset, commit, id, name, email, count) = try row.decode((String, String, String, String, String, Int64).self)
                result[DatasetCommitKey(dataset: dataset, commit: commit), default: []]
                    .append(ContributorSummary(id: id, name: name, email: email, commits: Int(count)))
            }
            return result
        }
    }

    public func blobDigests(dataset: String, blobs: [String]) throws -> [String: BlobDigest] {
        guard !blobs.isEmpty else { return [:] }
        return try read { session in
            var result: [String: BlobDigest] = [:]
            for start in stride(from: 0, to: blobs.count, by: 10_000) {
                let chunk = Array(blobs[start..<min(start + 10_000, blobs.count)])
                for row in try session.query("""
                    SELECT blob_id, sha256, size FROM blob_digests WHERE dataset = \(dataset) AND blob_id = ANY(\(chunk)::text[])
                    """) {
                    let (blob, sha256, size) = try row.decode((String, String, Int64).self)
                    result[blob] = BlobDigest(blob: blob, sha256: sha256, size: UInt64(size))
                }
            }
            return result
        }
    }

    public func register(_ registration: CommitRegistration, beforeCommit: () throws -> Void) throws {
        try write { session in
            try Self.insert(registration, into: session)
            try session.flush()
            try beforeCommit()
        }
    }

    static func insert(_ registration: CommitRegistration, into session: PostgresSession) throws {
        let record = registration.record
        if registration.createsDataset {
            session.send("INSERT INTO datasets (name, head, created_at) VALUES (\(record.dataset), NULL, \(record.registeredAt))")
        }
        let inserted = try session.result("""
            INSERT INTO dataset_commits (dataset, commit_id, previous_head, kind, files, bytes, manifest_sha256,
                                         manifest, history_commits, registered_at)
            VALUES (\(record.dataset), \(record.commit), \(record.previousHead), \(record.kind.rawValue), \(Int64(record.files)),
                    \(Int64(record.bytes)), \(record.manifestSHA256), \(bytea(registration.manifest)), \(Int64(record.historyCommits)),
                    \(record.registeredAt))
            ON CONFLICT (dataset, commit_id) DO NOTHING
            """, "register \(record.dataset)@\(record.commit)")
        if (inserted.metadata.rows ?? 0) > 0, !registration.contributors.isEmpty {
            let list = registration.contributors
            session.send("""
                INSERT INTO commit_contributors (dataset, commit_id, contributor_id, name, email, commits)
                SELECT \(record.dataset), \(record.commit), * FROM unnest(\(list.map(\.id))::text[], \(list.map(\.name))::text[],
                                                                       \(list.map(\.email))::text[], \(list.map { Int64($0.commits) })::bigint[])
                """)
        }
        let blobs = registration.blobDigests.sorted { $0.blob < $1.blob }
        for start in stride(from: 0, to: blobs.count, by: 10_000) {
            let chunk = Array(blobs[start..<min(start + 10_000, blobs.count)])
            session.send("""
                INSERT INTO blob_digests (dataset, blob_id, sha256, size)
                SELECT \(record.dataset), * FROM unnest(\(chunk.map(\.blob))::text[], \(chunk.map(\.sha256))::text[],
                                                         \(chunk.map { Int64($0.size) })::bigint[])
                ON CONFLICT (dataset, blob_id) DO NOTHING
                """)
        }
        session.send("UPDATE datasets SET head = \(record.commit) WHERE name = \(record.dataset)")
    }

    static func datasetRecord(_ row: PostgresRow) throws -> DatasetRecord {
        let (name, head, created) = try row.decode((String, String?, Int64).self)
        return DatasetRecord(name: name, head: head, createdAt: created)
    }

    static func registeredCommit(_ row: PostgresRow) throws -> RegisteredCommit {
        let (dataset, commit, previous, kind, files, bytes, sha256, history, registered) =
            try row.decode((String, String, String?, String, Int64, Int64, String, Int64, Int64).self)
        return RegisteredCommit(dataset: dataset, commit: commit, previousHead: previous, kind: RegisteredCommit.Kind(rawValue: kind) ?? .add,
                                files: Int(files), bytes: UInt64(bytes), manifestSHA256: sha256, historyCommits: Int(history),
                                registeredAt: registered)
    }

    // MARK: Models

    public func model(named name: String) throws -> ModelRecord? {
        try read { try $0.query("SELECT name, plugin, head, created_at FROM models WHERE name = \(name)").first.map(Self.modelRecord) }
    }

    public func models() throws -> [ModelRecord] {
        try read { try $0.query(#"SELECT name, plugin, head, created_at FROM models ORDER BY name COLLATE "C""#).map(Self.modelRecord) }
    }

    public func modelVersion(model: String, version: String) throws -> ModelVersionRecord? {
        try read {
            try $0.query("""
                SELECT model, version, commit_id, manifest, registered_at FROM model_versions WHERE model = \(model) AND version = \(version)
                """).first.map(Self.modelVersionRecord)
        }
    }

    public func modelVersions(model: String) throws -> [ModelVersionRecord] {
        try read {
            try $0.query("""
                SELECT model, version, commit_id, manifest, registered_at FROM model_versions WHERE model = \(model)
                ORDER BY registered_at, position
                """).map(Self.modelVersionRecord)
        }
    }

    public func register(_ registration: ModelVersionRegistration, beforeCommit: () throws -> Void) throws {
        try write { session in
            try Self.insert(registration, into: session)
            try session.flush()
            try beforeCommit()
        }
    }

    static func insert(_ registration: ModelVersionRegistration, into session: PostgresSession) throws {
        let version = registration.version
        let manifest = try version.decodedManifest()
        session.send("""
            INSERT INTO models (name, plugin, head, created_at) VALUES (\(version.model), \(registration.plugin), \(version.commit), \(version.registeredAt))
            ON CONFLICT (name) DO UPDATE SET head = excluded.head
            """)
        session.send("""
            INSERT INTO model_versions (model, version, commit_id, manifest, registered_at)
            VALUES (\(version.model), \(version.version), \(version.commit), \(bytea(version.manifest)), \(version.registeredAt))
            """)
        for input in manifest.datasets {
            session.send("""
                INSERT INTO model_datasets (model, version, dataset, commit_id) VALUES (\(version.model), \(version.version), \(input.dataset), \(input.commit))
                """)
        }
        if let change = registration.pluginChange { insert(change, into: session) }
    }

    public func rebuild(datasets: [CommitRegistration], datasetHeads: [String: String], models: [ModelVersionRegistration],
                        pluginChanges: [PluginChange]) throws {
        try write { session in
            for table in ["plugin_history", "file_authorship", "authorship_commits", "model_datasets", "model_versions", "models",
                          "commit_contributors", "dataset_commits", "blob_digests", "datasets"] {
                session.send(PostgresQuery(unsafeSQL: "DELETE FROM \(table)"))
            }
            var created = Set<String>()
            for var registration in datasets {
                registration.createsDataset = created.insert(registration.record.dataset).inserted
                try Self.insert(registration, into: session)
            }
            for (dataset, head) in datasetHeads {
                session.send("UPDATE datasets SET head = \(head) WHERE name = \(dataset)")
            }
            for registration in models { try Self.insert(registration, into: session) }
            for change in pluginChanges { Self.insert(change, into: session) }
        }
    }

    static func modelRecord(_ row: PostgresRow) throws -> ModelRecord {
        let (name, plugin, head, created) = try row.decode((String, String, String?, Int64).self)
        return ModelRecord(name: name, plugin: plugin, head: head, createdAt: created)
    }

    static func modelVersionRecord(_ row: PostgresRow) throws -> ModelVersionRecord {
        let (model, version, commit, manifest, registered) = try row.decode((String, String, String, Data, Int64).self)
        return ModelVersionRecord(model: model, version: version, commit: commit, manifest: manifest, registeredAt: registered)
    }

    // MARK: Plugins

    public func pluginHistory(model: String) throws -> [PluginChange] {
        try read {
            try $0.query("SELECT model, plugin, changed_at, changed_by, commit_id FROM plugin_history WHERE model = \(model) ORDER BY position")
                .map {
                    let (model, plugin, at, by, commit) = try $0.decode((String, String, Int64, String, String).self)
                    return PluginChange(model: model, plugin: plugin, changedAt: at, changedBy: by, commit: commit)
                }
        }
    }

    public func record(_ change: PluginChange, beforeCommit: () throws -> Void) throws {
        try write { session in
            Self.insert(change, into: session)
            try session.flush()
            try beforeCommit()
        }
    }

    static func insert(_ change: PluginChange, into session: PostgresSession) {
        session.send("""
            INSERT INTO plugin_history (model, plugin, changed_at, changed_by, commit_id)
            VALUES (\(change.model), \(change.plugin), \(change.changedAt), \(change.changedBy), \(change.commit))
            """)
        session.send("UPDATE models SET plugin = \(change.plugin) WHERE name = \(change.model)")
    }

    // MARK: Authorship cache

    public func authorship(dataset: String, commit: String) throws -> [FileAuthorship]? {
        try read { session in
            guard let filesJSON = try session.query("SELECT files FROM authorship_commits WHERE dataset = \(dataset) AND commit_id = \(commit)")
                .first.map({ try $0.decode(String.self) }) else { return nil }
            let files = (try? JSONDecoder().decode([[String]].self, from: Data(filesJSON.utf8))) ?? []
            var byPath: [String: FileAuthorship] = [:]
            for pair in files where pair.count == 2 { byPath[pair[0]] = FileAuthorship(path: pair[0], blob: pair[1], amounts: [:]) }
            for row in try session.query("""
                SELECT path, contributor_id, bytes, lines FROM file_authorship WHERE dataset = \(dataset) AND commit_id = \(commit)
                """) {
                let (path, contributor, bytes, lines) = try row.decode((String, String, Int64, Int64).self)
                byPath[path]?.amounts[contributor] = .init(bytes: UInt64(bytes), lines: UInt64(lines))
            }
            return files.compactMap { $0.count == 2 ? byPath[$0[0]] : nil }
        }
    }

    public func storeAuthorship(_ files: [FileAuthorship], dataset: String, commit: String) throws {
        try write { session in
            let list = String(decoding: try JSONEncoder().encode(files.map { [$0.path, $0.blob] }), as: UTF8.self)
            session.send("""
                INSERT INTO authorship_commits (dataset, commit_id, files) VALUES (\(dataset), \(commit), \(list))
                ON CONFLICT (dataset, commit_id) DO UPDATE SET files = excluded.files
                """)
            var paths: [String] = [], blobs: [String] = [], contributors: [String] = [], bytes: [Int64] = [], lines: [Int64] = []
            for file in files {
                for (contributor, amount) in file.amounts {
                    paths.append(file.path)
                    blobs.append(file.blob)
                    contributors.append(contributor)
                    bytes.append(Int64(amount.bytes))
                    lines.append(Int64(amount.lines))
                }
            }
            guard !paths.isEmpty else { return }
            session.send("""
                INSERT INTO file_authorship (dataset, commit_id, path, blob_id, contributor_id, bytes, lines)
                SELECT \(dataset), \(commit), * FROM unnest(\(paths)::text[], \(blobs)::text[], \(contributors)::text[], \(bytes)::bigint[], \(lines)::bigint[])
                ON CONFLICT (dataset, commit_id, path, contributor_id) DO UPDATE
                  SET blob_id = excluded.blob_id, bytes = excluded.bytes, lines = excluded.lines
                """)
        }
    }

    public func authorshipCommits(dataset: String) throws -> Set<String> {
        try read { Set(try $0.query("SELECT commit_id FROM authorship_commits WHERE dataset = \(dataset)").map { try $0.decode(String.self) }) }
    }
}

// MARK: Tokens

extension PostgresRegistryIndex: TokenStorage {
    static func accessToken(_ row: PostgresRow) throws -> AccessToken {
        let (id, role, subject, created, revoked) = try row.decode((String, String, String, Int64, Int64?).self)
        guard let parsed = AccessRole(rawValue: role) else {
            throw ProvenanceError(.storage, "access token \(id) has an unknown role '\(role)'")
        }
        return AccessToken(id: id, role: parsed, subject: subject, createdAt: created, revokedAt: revoked)
    }

    static let tokenColumns = "id, role, subject, created_at, revoked_at"

    public func insertToken(_ token: AccessToken, secretSHA256: String) throws {
        try write {
            _ = try $0.query("""
                INSERT INTO access_tokens (id, secret_sha256, role, subject, created_at, revoked_at)
                VALUES (\(token.id), \(secretSHA256), \(token.role.rawValue), \(token.subject), \(token.createdAt), \(token.revokedAt))
                """)
        }
    }

    public func token(secretSHA256: String) throws -> AccessToken? {
        try read { try $0.query("SELECT \(unescaped: Self.tokenColumns) FROM access_tokens WHERE secret_sha256 = \(secretSHA256)").first }
            .map(Self.accessToken)
    }

    public func token(id: String) throws -> AccessToken? {
        try read { try $0.query("SELECT \(unescaped: Self.tokenColumns) FROM access_tokens WHERE id = \(id)").first }.map(Self.accessToken)
    }

    public func tokens() throws -> [AccessToken] {
        try read { try $0.query(#"SELECT \#(unescaped: Self.tokenColumns) FROM access_tokens ORDER BY created_at, id COLLATE "C""#) }
            .map(Self.accessToken)
    }

    public func revokeToken(id: String, at time: Int64) throws -> Bool {
        try write {
            try $0.result("UPDATE access_tokens SET revoked_at = \(time) WHERE id = \(id) AND revoked_at IS NULL").metadata.rows == 1
        }
    }
}

// MARK: Locks

extension PostgresRegistryIndex: StoreLocking {
    /// Runs `body` holding the database lock named `scope`, on a connection kept for it. Every
    /// repository lock is also a shared hold on the whole-store lock, which `reindex` takes alone.
    public func withExclusiveLock<T>(_ scope: String, _ body: () throws -> T) throws -> T {
        try pool.withSession { session in
            if scope == "*" {
                try session.query("SELECT pg_advisory_lock(hashtextextended('*', 0))", "lock the store")
            } else {
                try session.query("SELECT pg_advisory_lock_shared(hashtextextended('*', 0))", "lock the store")
                try session.query("SELECT pg_advisory_lock(hashtextextended(\(scope), 0))", "lock \(scope)")
            }
            defer {
                // Closing the session would release the locks too; unlocking keeps the connection.
                do { try session.query("SELECT pg_advisory_unlock_all()") } catch { session.broken = true }
            }
            return try body()
        }
    }

    public func holdLock(_ scope: String) throws -> Bool {
        try held.write { held in
            if let session = held[scope] {
                if !session.connection.isClosed { return true }
                // The connection died, and the lock with it: take it again if nobody else has.
                held[scope] = nil
            }
            let connection = try PostgresConnection.connect(on: PostgresConnectionPool.group.next(), configuration: pool.configuration,
                                                            id: 0, logger: pool.logger).block()
            let session = PostgresSession(connection: connection, pool: pool)
            guard try session.query("SELECT pg_try_advisory_lock(hashtextextended(\(scope), 0))").first?.decode(Bool.self) == true else {
                closeQuietly(connection)
                return false
            }
            held[scope] = session
            return true
        }
    }
}
