import ArgumentParser
import Foundation
import ProvenanceCore

extension Provenance {
    struct Init: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a store (in ./.provenance unless --store or $PROVENANCE_STORE says otherwise).")

        @OptionGroup var storeOptions: StoreOptions

        func run() throws {
            try storeOptions.refuseImplicitRegistry()
            let root = Store.initialLocation(explicit: storeOptions.store, environment: ProcessInfo.processInfo.environment,
                                             directory: storeOptions.workingDirectory)
            let (_, created) = try Store.initialize(at: root)
            print(created ? "Initialized empty Provenance store in \(root.path)" : "Reinitialized existing Provenance store in \(root.path)")
        }
    }
}
