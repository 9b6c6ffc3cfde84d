import PostgresNIO
import ProvenanceCore

/// The registry's schema on PostgreSQL, as versioned migrations: each runs once, in order, in
/// one transaction, and is recorded in `provenance_migrations`. Replicas starting together
/// take turns (an advisory lock), so only one applies a migration.
///
/// The tables are those of the SQLite index, with PostgreSQL types: amounts stay decimal
/// strings of base units (they exceed 64 bits), and the tables SQLite ordered by `rowid` have
/// an explicit `position`.
enum PostgresSchema {
    static let migrations: [(id: String, sql: [String])] = [
        ("v1-registry", [
            """
            CREATE TABLE datasets (name TEXT PRIMARY KEY, head TEXT, created_at BIGINT NOT NULL)
            """,
            """
            CREATE TABLE dataset_commits (
              position BIGSERIAL NOT NULL,
              dataset TEXT NOT NULL REFERENCES datasets (name) ON DELETE CASCADE,
              commit_id TEXT NOT NULL, previous_head TEXT, kind TEXT NOT NULL, files BIGINT NOT NULL,
              bytes BIGINT NOT NULL, manifest_sha256 TEXT NOT NULL, manifest BYTEA NOT NULL,
              history_commits BIGINT NOT NULL, registered_at BIGINT NOT NULL,
              PRIMARY KEY (dataset, commit_id))
            """,
            """
            CREATE TABLE commit_contributors (
              dataset TEXT NOT NULL, commit_id TEXT NOT NULL, contributor_id TEXT NOT NULL, name TEXT NOT NULL,
              email TEXT NOT NULL, commits BIGINT NOT NULL,
              PRIMARY KEY (dataset, commit_id, contributor_id),
              FOREIGN KEY (dataset, commit_id) REFERENCES dataset_commits (dataset, commit_id) ON DELETE CASCADE)
            """,
            """
            CREATE TABLE blob_digests (
              dataset TEXT NOT NULL REFERENCES datasets (name) ON DELETE CASCADE, blob_id TEXT NOT NULL,
              sha256 TEXT NOT NULL, size BIGINT NOT NULL, PRIMARY KEY (dataset, blob_id))
            """,
            "CREATE TABLE models (name TEXT PRIMARY KEY, plugin TEXT NOT NULL, head TEXT, created_at BIGINT NOT NULL)",
            """
            CREATE TABLE model_versions (
              position BIGSERIAL NOT NULL, model TEXT NOT NULL REFERENCES models (name) ON DELETE CASCADE,
              version TEXT NOT NULL, commit_id TEXT NOT NULL, manifest BYTEA NOT NULL, registered_at BIGINT NOT NULL,
              PRIMARY KEY (model, version))
            """,
            """
            CREATE TABLE model_datasets (
              model TEXT NOT NULL, version TEXT NOT NULL, dataset TEXT NOT NULL, commit_id TEXT NOT NULL,
              FOREIGN KEY (model, version) REFERENCES model_versions (model, version) ON DELETE CASCADE)
            """,
            "CREATE INDEX model_datasets_by_commit ON model_datasets (dataset, commit_id)",
            """
            CREATE TABLE file_authorship (
              dataset TEXT NOT NULL, commit_id TEXT NOT NULL, path TEXT NOT NULL, blob_id TEXT NOT NULL,
              contributor_id TEXT NOT NULL, bytes BIGINT NOT NULL, lines BIGINT NOT NULL,
              PRIMARY KEY (dataset, commit_id, path, contributor_id))
            """,
            """
            CREATE TABLE authorship_commits (
              dataset TEXT NOT NULL, commit_id TEXT NOT NULL, files TEXT NOT NULL, PRIMARY KEY (dataset, commit_id))
            """,
            """
            CREATE TABLE plugin_history (
              position BIGSERIAL PRIMARY KEY, model TEXT NOT NULL REFERENCES models (name) ON DELETE CASCADE,
              plugin TEXT NOT NULL, changed_at BIGINT NOT NULL, changed_by TEXT NOT NULL, commit_id TEXT NOT NULL)
            """,
            "CREATE TABLE accounts (id TEXT PRIMARY KEY, balance TEXT NOT NULL)",
            """
            CREATE TABLE transfers (
              sequence BIGINT PRIMARY KEY, from_account TEXT NOT NULL, to_account TEXT NOT NULL, amount TEXT NOT NULL,
              cause TEXT NOT NULL, invoice BIGINT, call TEXT, batch BIGINT, created_at BIGINT NOT NULL, hash TEXT NOT NULL)
            """,
            "CREATE INDEX transfers_by_from ON transfers (from_account)",
            "CREATE INDEX transfers_by_to ON transfers (to_account)",
            "CREATE INDEX transfers_by_invoice ON transfers (invoice)",
            "CREATE INDEX transfers_by_batch ON transfers (batch)",
            "CREATE TABLE nodes (name TEXT PRIMARY KEY, public_key TEXT NOT NULL, stake TEXT NOT NULL)",
            """
            CREATE TABLE prices (
              model TEXT PRIMARY KEY, input_per_1k TEXT NOT NULL, output_per_1k TEXT NOT NULL, min_fee TEXT NOT NULL,
              split TEXT NOT NULL, slo_ms BIGINT, slo_penalty_bps BIGINT NOT NULL, updated_at BIGINT NOT NULL)
            """,
            """
            CREATE TABLE calls (
              position BIGSERIAL NOT NULL, idempotency_key TEXT PRIMARY KEY, digest TEXT NOT NULL, status TEXT NOT NULL,
              record BYTEA, signature BYTEA, price BYTEA, fee TEXT, invoice BIGINT, created_at BIGINT NOT NULL,
              output_text TEXT, caller TEXT, reserve_batch BIGINT)
            """,
            "CREATE INDEX calls_pending ON calls (position) WHERE status = 'pending'",
            "CREATE INDEX calls_by_reserve_batch ON calls (reserve_batch) WHERE reserve_batch IS NOT NULL",
            """
            CREATE TABLE invoices (
              ledger_index BIGINT PRIMARY KEY, bytes BYTEA NOT NULL, leaf_hash BYTEA NOT NULL, caller TEXT NOT NULL,
              model TEXT NOT NULL, batch TEXT, settled_at BIGINT NOT NULL)
            """,
            "CREATE INDEX invoices_by_model ON invoices (model)",
            "CREATE INDEX invoices_by_caller ON invoices (caller)",
            "CREATE TABLE ledger_state (id BIGINT PRIMARY KEY, frontier BYTEA NOT NULL)",
            "CREATE TABLE checkpoints (size BIGINT PRIMARY KEY, root BYTEA NOT NULL, note TEXT NOT NULL, created_at BIGINT NOT NULL)",
            """
            CREATE TABLE batches (
              id BIGINT PRIMARY KEY, first_invoice BIGINT NOT NULL, invoice_count BIGINT NOT NULL, created_at BIGINT NOT NULL)
            """,
            "CREATE TABLE invoice_terms (sha256 TEXT PRIMARY KEY, bytes BYTEA NOT NULL)",
            "CREATE TABLE money_requests (key TEXT PRIMARY KEY, digest TEXT NOT NULL, transfer BIGINT NOT NULL)",
            """
            CREATE TABLE access_tokens (
              id TEXT PRIMARY KEY, secret_sha256 TEXT NOT NULL UNIQUE, role TEXT NOT NULL, subject TEXT NOT NULL,
              created_at BIGINT NOT NULL, revoked_at BIGINT)
            """,
            // The store this database belongs to: its ledger origin and checkpoint key, so a
            // second store directory cannot sign the same ledger with another key.
            "CREATE TABLE store_identity (id BIGINT PRIMARY KEY, verifier_key TEXT NOT NULL)",
        ]),
        // No query finds transfers by invoice or by batch (statements go by account, then join
        // the batch by its key), and every inserted transfer paid for both: SQLite dropped them in
        // its v10-account-postings.
        ("v2-unread-transfer-indexes", [
            "DROP INDEX IF EXISTS transfers_by_invoice",
            "DROP INDEX IF EXISTS transfers_by_batch",
        ]),
    ]

    /// A fixed advisory-lock key for migrations (any 64-bit value no other lock uses).
    static let migrationLock: Int64 = 0x5052_4F56_4D49_4752  // "PROVMIGR"

    /// Applies the migrations `session`'s database has not seen yet.
    static func migrate(_ session: PostgresSession) throws {
        try session.transaction {
            try session.query("SELECT pg_advisory_xact_lock(\(migrationLock))", "lock the schema for migration")
            try session.query("""
                CREATE TABLE IF NOT EXISTS provenance_migrations (id TEXT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())
                """, "create the migrations table")
            var applied = Set<String>()
            for row in try session.query("SELECT id FROM provenance_migrations", "read the applied migrations") {
                applied.insert(try row.decode(String.self))
            }
            let known = Set(migrations.map(\.id))
            if let unknown = applied.subtracting(known).sorted().first {
                throw ProvenanceError(.storage, "the database holds migration '\(unknown)', which this provenance does not know: it was written by a newer version")
            }
            for migration in migrations where !applied.contains(migration.id) {
                for statement in migration.sql {
                    try session.query(PostgresQuery(unsafeSQL: statement), "apply migration \(migration.id)")
                }
                try session.query("INSERT INTO provenance_migrations (id) VALUES (\(migration.id))", "record migration \(migration.id)")
            }
        }
    }
}
