import ArgumentParser
import Foundation
import ProvenanceCore

/// `--store DIR`, shared by every command that works on a store.
struct StoreOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The store directory (default: $PROVENANCE_STORE, else the nearest .provenance/).", valueName: "DIR"))
    var store: String?

    var workingDirectory: URL { URL(fileURLWithPath: FileManager.default.currentDirectoryPath, isDirectory: true) }

    /// Opens the store this invocation names or finds.
    func open() throws -> Store {
        try refuseImplicitRegistry()
        let root = try Store.locate(explicit: store, environment: ProcessInfo.processInfo.environment, directory: workingDirectory)
        return try Store.open(at: root)
    }
}

extension StoreOptions {
    /// A command that works only on a local store, run while `$PROVENANCE_REGISTRY` names a
    /// registry, is refused rather than run on whatever store is found here: the caller meant the
    /// registry. `--store DIR` says the local store is meant. (Commands that can run against a
    /// registry do so before they open a store.)
    func refuseImplicitRegistry() throws {
        guard store == nil, let registry = ProcessInfo.processInfo.environment["PROVENANCE_REGISTRY"], !registry.isEmpty else { return }
        throw ValidationError("provenance \(Provenance.invokedCommand) works only on a local store, and $PROVENANCE_REGISTRY names \(registry): give --store DIR to use a local store, or unset PROVENANCE_REGISTRY")
    }
}

/// `--json`, shared by every command that prints data.
struct OutputOptions: ParsableArguments {
    @Flag(name: .long, help: "Print JSON for scripts instead of text for people.")
    var json = false
}
