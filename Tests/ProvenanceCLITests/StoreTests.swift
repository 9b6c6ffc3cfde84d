import Foundation
import ProvenanceTestSupport
import Testing

/// `provenance init` and how commands find their store.
@Suite struct StoreTests {
    @Test func initCreatesTheLayout() throws {
        let cli = try CLIHarness(initialize: false)
        let created = try cli.run("init")
        #expect(created.succeeded)
        #expect(created.output == "Initialized empty Provenance store in \(cli.store.path)")
        for folder in ["datasets", "models", "keys"] {
            var isDirectory: ObjCBool = false
            #expect(FileManager.default.fileExists(atPath: cli.store.appendingPathComponent(folder).path, isDirectory: &isDirectory) && isDirectory.boolValue)
        }
        let keys = try FileManager.default.attributesOfItem(atPath: cli.store.appendingPathComponent("keys").path)
        #expect((keys[.posixPermissions] as? NSNumber)?.intValue == 0o700)
        if TestBackend.databaseURL(ofStore: cli.store) != nil {
            #expect(try TestBackend.sql(store: cli.store, "SELECT id FROM provenance_migrations ORDER BY applied_at, id") == "v1-registry\nv2-unread-transfer-indexes")
            #expect(try TestBackend.sql(store: cli.store, "SELECT indexname FROM pg_indexes WHERE tablename = 'transfers' ORDER BY indexname")
                    == "transfers_by_from\ntransfers_by_to\ntransfers_pkey")
        } else {
        let journal = try runProcess("/usr/bin/sqlite3", [cli.store.appendingPathComponent("registry.sqlite").path, "PRAGMA journal_mode"])
        #expect(journal.output == "wal")
        let migrations = try runProcess("/usr/bin/sqlite3", [cli.store.appendingPathComponent("registry.sqlite").path, "SELECT identifier FROM grdb_migrations"])
        #expect(migrations.lines == ["v1-datasets", "v2-models", "v3-attribution", "v4-settlement", "v5-access-tokens", "v6-net-settlement",
                                     "v6-authorship-follows-renames", "v7-call-outputs", "v8-pending-index", "v9-pending-payloads",
                                     "v10-account-postings"])
        let pageSize = try runProcess("/usr/bin/sqlite3", [cli.store.appendingPathComponent("registry.sqlite").path, "PRAGMA page_size"])
        #expect(pageSize.output == "8192")
        }
        // Running it again is harmless and says so.
        let again = try cli.run("init")
        #expect(again.output == "Reinitialized existing Provenance store in \(cli.store.path)")
    }

    @Test func commandsFindTheStoreLikeGitFindsDotGit() throws {
        let cli = try CLIHarness()
        let deep = cli.work.appendingPathComponent("a/b/c")
        try FileManager.default.createDirectory(at: deep, withIntermediateDirectories: true)
        try cli.write("a/b/c/file.txt", "x\n")
        // From a subfolder: the nearest .provenance upwards; paths stay relative to the subfolder.
        #expect(try cli.run(["add", "nested", "file.txt", "--contributor", "A <a@example.org>"], in: deep).succeeded)
        #expect(try git(["ls-tree", "-r", "--name-only", "HEAD"], in: cli.datasetRepository("nested")).output == "file.txt")

        // --store and $PROVENANCE_STORE name a store elsewhere.
        let elsewhere = try TemporaryDirectory()
        let other = elsewhere.path("custom-store")
        #expect(try cli.run("init", "--store", other.path).succeeded)
        #expect(try cli.run(["add", "viaflag", "file.txt", "--store", other.path, "--contributor", "A <a@example.org>"], in: deep).succeeded)
        let listed = try cli.run(["datasets", "--json"], in: elsewhere.url, environment: ["PROVENANCE_STORE": other.path])
        #expect(listed.succeeded)
        #expect(listed.stdout.contains("\"viaflag\""))
        #expect(!listed.stdout.contains("\"nested\""))
    }

    @Test func outsideAnyStoreSaysHowToCreateOne() throws {
        let cli = try CLIHarness(initialize: false)
        let result = try cli.run("datasets")
        #expect(result.status == 1)
        #expect(result.errorLines == ["Error: not inside a Provenance store (no .provenance/ here or in any parent): run `provenance init` to create one, or pass --store DIR"])
        let flagged = try cli.run("datasets", "--store", "nowhere")
        #expect(flagged.status == 1)
        #expect(flagged.errorLines.first?.contains("provenance init --store nowhere") == true)
        let env = try cli.run(["datasets"], environment: ["PROVENANCE_STORE": cli.work.appendingPathComponent("missing").path])
        #expect(env.status == 1)
        #expect(env.errorLines.first?.contains("$PROVENANCE_STORE") == true)
        #expect(!FileManager.default.fileExists(atPath: cli.store.path))
    }

    @Test func unknownOptionsAreOneLineToo() throws {
        let cli = try CLIHarness()
        let result = try cli.run("add", "corpus", "--bogus")
        #expect(result.status != 0 && !result.signalled)
        #expect(result.errorLines.count == 1)
        #expect(result.errorLines.first?.hasPrefix("Error: ") == true)
    }
}
