import ArgumentParser
import Foundation
import PostgresStorage
import ProvenanceCore

extension Provenance {
    struct Migrate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Move a store's state from registry.sqlite into an empty PostgreSQL database.",
            discussion: """
                Copies every row in one database transaction, then writes database.json and moves \
                registry.sqlite aside to registry.sqlite.migrated (delete it once you are satisfied). \
                Stop `provenance serve` on the store first: writes made during the copy would stay behind.
                """)

        @OptionGroup var storeOptions: StoreOptions

        @Option(name: .customLong("to"), help: ArgumentHelp(
            "The database to move the store into; a password is better given by $PGPASSWORD or ~/.pgpass.",
            valueName: "postgres://USER[:PASSWORD]@HOST[:PORT]/DB"))
        var target: String

        func run() throws {
            let root = try Store.locate(explicit: storeOptions.store, environment: ProcessInfo.processInfo.environment,
                                        directory: storeOptions.workingDirectory)
            let summary = try SQLiteToPostgres.migrateStore(at: root, to: target)
            print("migrated \(summary.count("datasets")) datasets, \(summary.count("models")) models, \(summary.count("invoices")) invoices, "
                  + "\(summary.count("transfers")) transfers to \(summary.location.url) in \(String(format: "%.1f", summary.seconds)) s")
            print("the store now keeps its state in \(summary.location.url); the old file is kept as "
                  + "\(Store.migratedSQLiteFile(at: root).path): delete it when you no longer need it")
        }
    }
}
