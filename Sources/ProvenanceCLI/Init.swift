import ArgumentParser
import Foundation
import ProvenanceCore

extension Provenance {
    struct Init: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a store (in ./.provenance unless --store or $PROVENANCE_STORE says otherwise).")

        @OptionGroup var storeOptions: StoreOptions

        @Option(name: .customLong("database"), help: ArgumentHelp(
            "Keep the store's state in this PostgreSQL database instead of SQLite; a password is better given by $PGPASSWORD or ~/.pgpass.",
            valueName: "postgres://USER[:PASSWORD]@HOST[:PORT]/DB"))
        var database: String?

        func run() throws {
            try storeOptions.refuseImplicitRegistry()
            let root = Store.initialLocation(explicit: storeOptions.store, environment: ProcessInfo.processInfo.environment,
                                             directory: storeOptions.workingDirectory)
            let (store, created) = try Store.initialize(at: root, database: database)
            let place = store.database.map { " (state in \($0.url))" } ?? ""
            print(created ? "Initialized empty Provenance store in \(root.path)\(place)" : "Reinitialized existing Provenance store in \(root.path)\(place)")
        }
    }
}
