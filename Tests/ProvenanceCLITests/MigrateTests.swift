import Foundation
import ProvenanceCore
import ProvenanceTestSupport
import Testing

/// `provenance migrate --to postgres://…`: an SQLite store moved into PostgreSQL reads back the
/// same, verifies, and keeps working; every refusal changes nothing.
@Suite(.serialized) struct MigrateTests {
    /// A store with a bit of everything, built with the CLI as a user would (after scripts/demo.sh):
    /// added and imported datasets, models with a base and a swapped plugin, an authorship cache,
    /// prices, deposits, a node, real-time and deferred calls, a settlement, a withdrawal, tokens,
    /// and one deferred call still pending.
    static func richStore() throws -> CLIHarness {
        let cli = try CLIHarness()
        try cli.write("poems/byron/she-walks.txt", "She walks in beauty, like the night\nOf cloudless climes and starry skies;\n")
        try cli.write("poems/byron/roving.txt", "So, we'll go no more a roving\nSo late into the night,\n")
        try cli.must("add", "poems", "poems", "--contributor", "Ada Lovelace <ada@example.org>", "-m", "Byron, two poems")
        try cli.write("poems/hopper/quote.txt", "The most dangerous phrase in the language is \"we have always done it this way\".\n")
        try cli.must("add", "poems", "poems/hopper/quote.txt", "--contributor", "Grace Hopper <grace@example.org>")
        try cli.write("notes.txt", "Nevertheless, it moves.\n")
        try cli.must("add", "poems", "notes.txt", "--to", "annotations", "--contributor", "Grace Hopper <Grace@Example.org>", "-m", "Annotations")

        let source = cli.work.appendingPathComponent("wiki-source")
        try FileManager.default.createDirectory(at: source, withIntermediateDirectories: true)
        try git(["init", "-q", "-b", "main"], in: source)
        for (index, (author, file, text)) in [("Alan Turing <alan@example.org>", "turing.md", "Alan Turing proposed the imitation game.\n"),
                                              ("Claude Shannon <claude@example.org>", "shannon.md", "Claude Shannon founded information theory.\n"),
                                              ("Alonzo Church <alonzo@example.org>", "church.md", "Alonzo Church invented the lambda calculus.\n")].enumerated() {
            try text.write(to: source.appendingPathComponent(file), atomically: true, encoding: .utf8)
            try gitCommit(source, author: author, message: file, date: 1_700_000_000 + index * 60)
        }
        try cli.must("add", "wiki", "--from", "./wiki-source")
        try cli.write("law/contracts.txt", "A contract needs offer, acceptance and consideration.\n")
        try cli.must("add", "law", "law", "--contributor", "Ruth Ginsburg <ruth@example.org>")

        try cli.write("logs/pretrain.log", "step 1 loss 3.21\nstep 2 loss 2.87\n")
        try cli.must("model", "register", "base@1.0", "--developer", "Lab <lab@example.org>", "--dataset", "wiki", "--dataset", "poems@HEAD~1",
                     "--training-log", "logs/pretrain.log")
        try cli.must("model", "register", "chat@1.0", "--developer", "Tuner <tuner@example.org>", "--dataset", "poems", "--dataset", "law",
                     "--base", "base@1.0")
        try cli.must("model", "set-plugin", "chat", "data-volume", "--by", "Tuner <tuner@example.org>")
        try cli.must("attribute", "chat@1.0")

        try cli.must("model", "price", "base", "--input-per-1k", "0.002", "--output-per-1k", "0.006", "--min-fee", "0.0001",
                     "--split", "developer=2000,data=5000,node=2000,platform=1000")
        try cli.must("model", "price", "chat", "--input-per-1k", "0.004", "--output-per-1k", "0.012", "--slo-ms", "800", "--slo-penalty-bps", "5000",
                     "--split", "developer=2500,data=4000,node=2000,platform=500,router=1000")
        try cli.must("account", "deposit", "alice@example.org", "25", "--idempotency-key", "dep-1")
        try cli.must("account", "deposit", "node:gpu-1", "10")
        try cli.must("node", "add", "gpu-1", "--stake", "5")
        try cli.must("call", "base@1.0", "--caller", "alice@example.org", "--node", "gpu-1", "--input-tokens", "1200", "--output-tokens", "400",
                     "--latency-ms", "350", "--idempotency-key", "rt-1")
        for i in 1...3 {
            try cli.must("call", "chat@1.0", "--caller", "alice@example.org", "--node", "gpu-1", "--router", "router@example.org",
                         "--input-tokens", "\(500 * i)", "--output-tokens", "\(200 * i)", "--latency-ms", "\(300 * i)", "--defer",
                         "--idempotency-key", "chat-\(i)")
            try cli.must("call", "base@1.0", "--caller", "alice@example.org", "--node", "gpu-1", "--input-tokens", "\(900 * i)",
                         "--output-tokens", "\(100 * i)", "--latency-ms", "200", "--defer", "--idempotency-key", "base-\(i)")
        }
        try cli.must("settle")
        try cli.must("account", "withdraw", "ada@example.org", "0.0001", "--idempotency-key", "out-1")
        try cli.must("call", "base@1.0", "--caller", "alice@example.org", "--node", "gpu-1", "--input-tokens", "700", "--output-tokens", "70",
                     "--latency-ms", "100", "--defer", "--idempotency-key", "pending-1")
        try cli.must("token", "create", "--role", "admin", "--subject", "ops")
        try cli.must("token", "create", "--role", "caller", "--subject", "alice@example.org")
        return cli
    }

    /// Every listing whose output must not change when the store moves.
    static let listings: [[String]] = [
        ["datasets", "--json"], ["log", "poems", "--json"], ["log", "wiki", "--json"], ["log", "law", "--json"],
        ["contributors", "poems", "--json"], ["contributors", "wiki", "--json"],
        ["manifest", "poems"], ["model", "list", "--json"], ["model", "show", "chat@1.0", "--json"], ["trace", "chat@1.0", "--format", "json"], ["trace", "chat@1.0"],
        ["export-attestation", "base@1.0"], ["model", "plugin-history", "chat", "--json"], ["attribute", "chat@1.0", "--json"],
        ["attribute", "base@1.0", "--json"],
        ["account", "balance", "alice@example.org", "--json"], ["account", "balance", "ada@example.org", "--raw"],
        ["account", "statement", "alice@example.org", "--json"], ["account", "statement", "grace@example.org", "--invoices", "--json"],
        ["account", "statement", "node:gpu-1", "--json"],
        ["invoice", "list", "--json"], ["invoice", "show", "0", "--json"], ["invoice", "show", "4", "--canonical"],
        ["ledger", "checkpoint", "--json"], ["ledger", "proof", "2", "--json"], ["token", "list", "--json"], ["verify", "--json"],
    ]

    static func capture(_ cli: CLIHarness) throws -> [String: String] {
        var outputs: [String: String] = [:]
        for arguments in listings { outputs[arguments.joined(separator: " ")] = try cli.must(arguments).stdout }
        return outputs
    }

    /// A server of the test's own, and a fresh empty database on it.
    static func withServer(_ body: (PostgresServer) throws -> Void) throws {
        let server = try PostgresServer()
        defer { server.stop() }
        try server.start()
        try body(server)
    }

    static var postgresAvailable: Bool { PostgresServer.isAvailable }

    @Test(.enabled(if: postgresAvailable, "PostgreSQL is not installed (/usr/lib/postgresql/15/bin/initdb)"))
    func aMigratedStoreReadsTheSameVerifiesAndKeepsWorking() throws {
        try Self.withServer { server in
            let cli = try Self.richStore()
            let first = try Self.capture(cli)
            let before = try Self.capture(cli)
            #expect(before == first, "the listings are not stable on SQLite alone")
            #expect(before["verify --json"]?.contains("\"ok\":true") == true || before["verify --json"]?.contains("\"ok\" : true") == true)

            try server.createDatabase("moved")
            let migrated = try cli.must("migrate", "--to", server.url(database: "moved", password: "s3cret"))
            #expect(migrated.lines.first?.hasPrefix("migrated 3 datasets, 2 models, 7 invoices, ") == true, "\(migrated)")
            #expect(migrated.lines.first?.contains("to \(server.url(database: "moved"))") == true, "\(migrated)")
            #expect(migrated.stdout.contains("registry.sqlite.migrated"))
            #expect(!migrated.stdout.contains("s3cret"))

            // The store now opens PostgreSQL: no password in database.json, the password kept 0600.
            let fm = FileManager.default
            #expect(!fm.fileExists(atPath: cli.store.appendingPathComponent("registry.sqlite").path))
            #expect(fm.fileExists(atPath: cli.store.appendingPathComponent("registry.sqlite.migrated").path))
            let marker = try String(contentsOf: cli.store.appendingPathComponent("database.json"), encoding: .utf8)
            #expect(marker.contains(server.url(database: "moved")) && !marker.contains("s3cret"))
            let passwordFile = cli.store.appendingPathComponent("keys/database-password")
            #expect(try String(contentsOf: passwordFile, encoding: .utf8) == "s3cret")
            #expect((try fm.attributesOfItem(atPath: passwordFile.path)[.posixPermissions] as? Int) == 0o600)
            #expect(try server.psql("SELECT count(*) FROM invoices", database: "moved") == "7")
            // SQLite kept the pending call's record, signature and price apart (pending_calls);
            // PostgreSQL keeps them in its row of calls.
            #expect(try server.psql("""
                SELECT count(*) FROM calls WHERE status = 'pending' AND record IS NOT NULL AND signature IS NOT NULL AND price IS NOT NULL
                """, database: "moved") == "1")

            let after = try Self.capture(cli)
            for key in before.keys.sorted() {
                #expect(after[key] == before[key], "\(key) changed:\n\(before[key] ?? "")\n---\n\(after[key] ?? "")")
            }

            // New rows sort after the copied ones: the pending call settles, new calls and a batch follow.
            try cli.must("call", "chat@1.0", "--caller", "alice@example.org", "--node", "gpu-1", "--router", "router@example.org",
                         "--input-tokens", "100", "--output-tokens", "10", "--latency-ms", "100", "--idempotency-key", "after-1")
            try cli.must("call", "base@1.0", "--caller", "alice@example.org", "--node", "gpu-1", "--input-tokens", "100",
                         "--output-tokens", "10", "--latency-ms", "100", "--defer", "--idempotency-key", "after-2")
            try cli.must("settle")
            try cli.must("model", "set-plugin", "chat", "equal-share", "--by", "Tuner <tuner@example.org>")
            // The idempotency key of the withdrawal made on SQLite is honoured here: replayed, not moved twice.
            let ada = try cli.must("account", "balance", "ada@example.org", "--raw").output
            try cli.must("account", "withdraw", "ada@example.org", "0.0001", "--idempotency-key", "out-1")
            #expect(try cli.must("account", "balance", "ada@example.org", "--raw").output == ada)
            let verify = try cli.must("verify")
            #expect(verify.output.hasPrefix("verified 10 invoice(s)"), "\(verify)")
            let history = try cli.must("model", "plugin-history", "chat").output
            #expect(history.range(of: "data-volume")!.lowerBound < history.range(of: "equal-share", options: .backwards)!.lowerBound, "\(history)")
            #expect(try server.psql("SELECT count(*) FROM calls WHERE status = 'pending'", database: "moved") == "0")

            // A second migrate is refused: the store already lives in a database.
            try server.createDatabase("again")
            let files = try Self.listing(cli.store)
            let dump = try server.psql("SELECT count(*) FROM invoices", database: "moved")
            let again = try cli.run("migrate", "--to", server.url(database: "again"))
            #expect(again.status != 0 && again.errorLines.count == 1 && again.stderr.contains("already keeps its state in"), "\(again)")
            #expect(try Self.listing(cli.store) == files)
            #expect(try server.psql("SELECT count(*) FROM invoices", database: "moved") == dump)
            #expect(try server.psql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'", database: "again") == "0")
        }
    }

    @Test(.enabled(if: postgresAvailable, "PostgreSQL is not installed (/usr/lib/postgresql/15/bin/initdb)"))
    func migratingIntoADatabaseThatHoldsAStoreIsRefusedAndChangesNothing() throws {
        try Self.withServer { server in
            try server.createDatabase("taken")
            // Another store already lives in the database.
            let other = try CLIHarness(initialize: false)
            try other.must("init", "--database", server.url(database: "taken"))
            try other.write("a.txt", "a\n")
            try other.must("add", "text", "a.txt", "--contributor", "Ann <ann@example.org>")

            let cli = try CLIHarness()
            try cli.write("b.txt", "b\n")
            try cli.must("add", "text", "b.txt", "--contributor", "Bo <bo@example.org>")
            let database = try server.dump(database: "taken")
            try cli.expectRefusal(["migrate", "--to", server.url(database: "taken", password: "pw")], mentioning: "already holds a Provenance store")
            #expect(try server.dump(database: "taken") == database)
            #expect(!FileManager.default.fileExists(atPath: cli.store.appendingPathComponent("database.json").path))
            #expect(!FileManager.default.fileExists(atPath: cli.store.appendingPathComponent("keys/database-password").path))

            // A database another store was initialised on belongs to that store (its checkpoint
            // key is recorded there), even with no rows written yet.
            try server.createDatabase("schema-only")
            let empty = try CLIHarness(initialize: false)
            try empty.must("init", "--database", server.url(database: "schema-only"))
            try cli.expectRefusal(["migrate", "--to", server.url(database: "schema-only")], mentioning: "already holds a Provenance store")
            // An empty schema no store claims (as a copy that failed leaves it) is fine to migrate into.
            try server.psql("DELETE FROM store_identity", database: "schema-only")
            let moved = try cli.must("migrate", "--to", server.url(database: "schema-only"))
            #expect(moved.output.hasPrefix("migrated 1 datasets, 0 models, 0 invoices, "), "\(moved)")
            #expect(try cli.must("contributors", "text").output.contains("bo@example.org"))
            #expect(try cli.must("verify").succeeded)
        }
    }

    /// What registry.sqlite holds that the PostgreSQL schema has no place for stops the copy
    /// before a row is written: a column of the table SQLite keeps pending calls' payloads in
    /// (which the copy folds into calls), or a table of its own.
    @Test(.enabled(if: postgresAvailable, "PostgreSQL is not installed (/usr/lib/postgresql/15/bin/initdb)"))
    func aTableOrColumnThePostgreSQLSchemaLacksIsRefusedAndChangesNothing() throws {
        try Self.withServer { server in
            let cli = try CLIHarness()
            try cli.write("b.txt", "b\n")
            try cli.must("add", "text", "b.txt", "--contributor", "Bo <bo@example.org>")
            try server.createDatabase("target")
            for (change, message) in [
                ("ALTER TABLE pending_calls ADD COLUMN extra TEXT", "registry.sqlite's pending_calls has a column 'extra' the PostgreSQL schema lacks"),
                ("CREATE TABLE extra_table (x TEXT)", "registry.sqlite has a table 'extra_table' the PostgreSQL schema lacks"),
            ] {
                try TestBackend.sql(store: cli.store, change)
                try cli.expectRefusal(["migrate", "--to", server.url(database: "target")], mentioning: message)
                #expect(!FileManager.default.fileExists(atPath: cli.store.appendingPathComponent("database.json").path))
                #expect(try server.psql("SELECT (SELECT count(*) FROM datasets) + (SELECT count(*) FROM calls)", database: "target") == "0")
            }
        }
    }

    /// A crash between the steps after the copy leaves a store that opens and verifies: SQLite
    /// before `database.json` exists, the database from then on, even with registry.sqlite still there.
    @Test(.enabled(if: postgresAvailable, "PostgreSQL is not installed (/usr/lib/postgresql/15/bin/initdb)"),
          arguments: ["before-database-marker", "after-database-marker"])
    func aCrashAfterTheCopyLeavesAStoreThatOpens(point: String) throws {
        try Self.withServer { server in
            let cli = try CLIHarness()
            try cli.write("b.txt", "b\n")
            try cli.must("add", "text", "b.txt", "--contributor", "Bo <bo@example.org>")
            try cli.must("account", "deposit", "bo@example.org", "3")
            let listing = try cli.must("datasets", "--json").stdout
            try server.createDatabase("target")
            let crashed = try cli.run(["migrate", "--to", server.url(database: "target", password: "pw")],
                                      environment: ["PROVENANCE_CRASH_AT": point])
            #expect(crashed.signalled, "\(crashed)")
            let fm = FileManager.default
            let marker = fm.fileExists(atPath: cli.store.appendingPathComponent("database.json").path)
            #expect(marker == (point == "after-database-marker"))
            #expect(fm.fileExists(atPath: cli.store.appendingPathComponent("registry.sqlite").path))
            #expect(try cli.must("datasets", "--json").stdout == listing)
            #expect(try cli.must("account", "balance", "bo@example.org", "--raw").output == "3000000000000000000")
            #expect(try cli.must("verify").succeeded)
            if !marker {
                // Still on SQLite: the database holds the copy, so migrating there again is refused…
                try cli.expectRefusal(["migrate", "--to", server.url(database: "target")], mentioning: "already holds a Provenance store")
                // …and migrating into another, empty one works.
                try server.createDatabase("second")
                try cli.must("migrate", "--to", server.url(database: "second"))
                #expect(try cli.must("datasets", "--json").stdout == listing)
            }
        }
    }

    @Test func badURLsAndUnreachableDatabasesAreRefusedAndChangeNothing() throws {
        let cli = try CLIHarness()
        try cli.write("b.txt", "b\n")
        try cli.must("add", "text", "b.txt", "--contributor", "Bo <bo@example.org>")
        try cli.expectRefusal(["migrate", "--to", "mysql://root@127.0.0.1/db"], mentioning: "only postgres://")
        try cli.expectRefusal(["migrate", "--to", "not a url"], mentioning: "database URL")
        try cli.expectRefusal(["migrate", "--to", "postgres://me@127.0.0.1:5432/"], mentioning: "names no database")
        try cli.expectRefusal(["migrate", "--to", "postgres://127.0.0.1:5432/db"], mentioning: "names no user")
        // Nobody listens on a port just found free.
        let port = try Self.closedPort()
        try cli.expectRefusal(["migrate", "--to", "postgres://me:pw@127.0.0.1:\(port)/db"], mentioning: "not reachable")
        #expect(!FileManager.default.fileExists(atPath: cli.store.appendingPathComponent("database.json").path))
    }

    /// A loopback port with no listener (bound and released).
    static func closedPort() throws -> Int { try PostgresServer.freePort() }

    /// Every path under `root` with its size and digest.
    static func listing(_ root: URL) throws -> [String] {
        var lines: [String] = []
        for case let relative as String in FileManager.default.enumerator(atPath: root.path)! where relative != "lock" {
            let data = (try? Data(contentsOf: root.appendingPathComponent(relative))) ?? Data()
            lines.append("\(relative) \(data.count) \(SHA256Digest.hex(of: data))")
        }
        return lines.sorted()
    }
}
