import Foundation
import PostgresStorage
import ProvenanceTestSupport
import Testing

/// `init --database`: what a store on PostgreSQL keeps in its folder, and what is refused.
@Suite struct PostgresStoreTests {
    @Test(.enabled(if: TestPostgres.available, "needs PostgreSQL"))
    func aDatabaseStoreKeepsNoPasswordInItsFolderAndOneLedgerPerDatabase() throws {
        let url = try TestPostgres.newDatabaseURL()
        // Trust authentication ignores the password; the store must still keep it only in keys/.
        let withPassword = url.replacingOccurrences(of: "postgres://postgres@", with: "postgres://postgres:s3cret@")
        let cli = try CLIHarness(initialize: false)
        let created = try cli.must("init", "--database", withPassword)
        #expect(created.output == "Initialized empty Provenance store in \(cli.store.path) (state in \(url))")
        let marker = try String(contentsOf: cli.store.appendingPathComponent("database.json"), encoding: .utf8)
        #expect(marker.contains(url.replacingOccurrences(of: "/", with: "\\/")) || marker.contains(url), "\(marker)")
        #expect(!marker.contains("s3cret"))
        let password = cli.store.appendingPathComponent("keys/database-password")
        #expect(try String(contentsOf: password, encoding: .utf8) == "s3cret")
        #expect((try FileManager.default.attributesOfItem(atPath: password.path)[.posixPermissions] as? NSNumber)?.intValue == 0o600)
        #expect(!FileManager.default.fileExists(atPath: cli.store.appendingPathComponent("registry.sqlite").path))
        // It works like any store, and says so again when re-initialised.
        try cli.write("a.txt", "a\n")
        try cli.must("add", "text", "a.txt", "--contributor", "Ann <ann@example.org>")
        #expect(try cli.must("init").output == "Reinitialized existing Provenance store in \(cli.store.path) (state in \(url))")

        // A second store folder (other keys) on the same database would sign another key's
        // checkpoints into the same ledger: refused, and it is left no store.
        let other = try CLIHarness(initialize: false)
        let state = try TestBackend.dump(store: cli.store)
        let refused = try other.run("init", "--database", url)
        #expect(refused.status != 0 && !refused.signalled)
        #expect(refused.errorLines.count == 1 && refused.stderr.contains("holds the ledger of another store"), "\(refused.stderr)")
        #expect(!FileManager.default.fileExists(atPath: other.store.appendingPathComponent("database.json").path))
        #expect(try TestBackend.dump(store: cli.store) == state)

        // A database a newer provenance has migrated further is refused, not written to.
        try TestBackend.sql(store: cli.store, "INSERT INTO provenance_migrations (id) VALUES ('v99-from-the-future')")
        let newer = try cli.run("datasets")
        #expect(newer.status != 0 && !newer.signalled)
        #expect(newer.errorLines.count == 1 && newer.stderr.contains("written by a newer version"), "\(newer.stderr)")
        try TestBackend.sql(store: cli.store, "DELETE FROM provenance_migrations WHERE id = 'v99-from-the-future'")
        #expect(try cli.must("datasets").output.contains("text"))

        // An existing store is not moved by init: that is `migrate`'s job.
        let sqlite = try CLIHarness()
        if TestBackend.databaseURL(ofStore: sqlite.store) == nil {
            try sqlite.expectRefusal(["init", "--database", try TestPostgres.newDatabaseURL()], mentioning: "provenance migrate")
        }
    }

    @Test(arguments: [
        ("mysql://u@h/db", "only postgres://"),
        ("postgres://u@/db", "names no host"),
        ("postgres://u@h", "names no database"),
        ("postgres://h/db", "names no user"),
        ("postgres://u@h/db?sslmode=require", "options"),
        ("not a url", "postgres://"),
    ])
    func malformedDatabaseURLsAreRefusedAndCreateNothing(url: String, message: String) throws {
        let cli = try CLIHarness(initialize: false)
        let result = try cli.run("init", "--database", url)
        #expect(result.status != 0 && !result.signalled)
        #expect(result.errorLines.count == 1 && result.stderr.contains(message), "\(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: cli.store.appendingPathComponent("database.json").path))
        #expect(!FileManager.default.fileExists(atPath: cli.store.appendingPathComponent("registry.sqlite").path))
    }

    @Test func anUnreachableDatabaseIsOneClearLine() throws {
        let cli = try CLIHarness(initialize: false)
        let port = try PostgresServer.freePort()
        let result = try cli.run("init", "--database", "postgres://postgres:hunter2@127.0.0.1:\(port)/nowhere")
        #expect(result.status != 0 && !result.signalled)
        #expect(result.errorLines.count == 1 && result.stderr.contains("not reachable"), "\(result.stderr)")
        #expect(!result.stderr.contains("hunter2"))
        #expect(!FileManager.default.fileExists(atPath: cli.store.appendingPathComponent("database.json").path))
        #expect(!FileManager.default.fileExists(atPath: cli.store.appendingPathComponent("keys/database-password").path))
    }

    @Test func passwordsComeFromPGPASSWORDThenThePasswordFile() throws {
        let folder = try TemporaryDirectory()
        let file = try folder.write("pgpass", """
            # host:port:database:user:password
            db.example:5432:reg:prov:first
            *:5433:*:prov:any\\:colon\\\\slash
            other:*:*:*:fallback
            """)
        chmod(file.path, 0o600)
        let environment = ["PGPASSFILE": file.path]
        #expect(PostgresPassword.lookup(host: "db.example", port: 5432, database: "reg", user: "prov", environment: environment) == "first")
        #expect(PostgresPassword.lookup(host: "x", port: 5433, database: "y", user: "prov", environment: environment) == #"any:colon\slash"#)
        #expect(PostgresPassword.lookup(host: "other", port: 1, database: "z", user: "w", environment: environment) == "fallback")
        #expect(PostgresPassword.lookup(host: "none", port: 5432, database: "reg", user: "prov", environment: environment) == nil)
        #expect(PostgresPassword.lookup(host: "none", port: 5432, database: "reg", user: "prov",
                                        environment: environment.merging(["PGPASSWORD": "env"]) { $1 }) == "env")
        // As libpq does, a password file others can read is ignored.
        chmod(file.path, 0o644)
        #expect(PostgresPassword.lookup(host: "db.example", port: 5432, database: "reg", user: "prov", environment: environment) == nil)
    }

    /// Two processes adding to one dataset at once (as two replicas would): the database's lock
    /// for `datasets/NAME` serialises them, so every add lands, one after another, on one branch.
    @Test(.enabled(if: TestPostgres.available, "needs PostgreSQL"))
    func concurrentAddsToOneDatasetAreSerialisedByTheDatabaseLock() async throws {
        let cli = try CLIHarness(initialize: false)
        try cli.must("init", "--database", try TestPostgres.newDatabaseURL())
        for n in 0..<8 { try cli.write("f\(n).txt", "file \(n)\n") }
        let results = try await withThrowingTaskGroup(of: ProcessResult.self) { group in
            for n in 0..<8 {
                group.addTask { try cli.run("add", "shared", "f\(n).txt", "--contributor", "C\(n) <c\(n)@example.org>", "-m", "add \(n)") }
            }
            var all: [ProcessResult] = []
            for try await result in group { all.append(result) }
            return all
        }
        #expect(results.allSatisfy { $0.succeeded }, "\(results.filter { !$0.succeeded })")
        let repository = cli.datasetRepository("shared")
        let log = try git(["log", "--format=%s", "HEAD"], in: repository).output.split(separator: "\n").map(String.init)
        #expect(log.count == 8 && Set(log) == Set((0..<8).map { "add \($0)" }), "\(log)")
        #expect(try git(["ls-tree", "--name-only", "HEAD"], in: repository).output.split(separator: "\n").count == 8)
        #expect(try git(["fsck", "--strict"], in: repository).succeeded)
        #expect(try cli.must("log", "shared").lines.count >= 8)
    }
}
