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
        let root = try Store.locate(explicit: store, environment: ProcessInfo.processInfo.environment, directory: workingDirectory)
        return try Store.open(at: root)
    }
}

/// `--json`, shared by every command that prints data.
struct OutputOptions: ParsableArguments {
    @Flag(name: .long, help: "Print JSON for scripts instead of text for people.")
    var json = false
}
