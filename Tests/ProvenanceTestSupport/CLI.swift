public import Foundation
import ProvenanceCore

/// Drives the built `provenance` executable as a user would, in a scratch directory with a store.
public final class CLIHarness: @unchecked Sendable {
    public let directory: TemporaryDirectory
    /// The working directory commands run in (holds the data and the `.provenance` store).
    public var work: URL { directory.url }
    public var store: URL { directory.url.appendingPathComponent(".provenance") }

    /// The executable SwiftPM built beside the test bundle.
    public static let binary: String = {
        if let override = ProcessInfo.processInfo.environment["PROVENANCE_BIN"] { return override }
        var url = Bundle.main.bundleURL
        for _ in 0..<4 {
            let candidate = url.appendingPathComponent("provenance")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate.path }
            url = url.deletingLastPathComponent()
        }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent(".build/debug/provenance").path
    }()

    /// A new scratch directory; with `initialize`, a store in it too.
    public init(initialize: Bool = true) throws {
        directory = try TemporaryDirectory("provenance-cli")
        if initialize {
            let result = try run(try TestBackend.newDatabaseURL().map { ["init", "--database", $0] } ?? ["init"])
            guard result.succeeded else { throw FixtureError("provenance init failed: \(result)") }
        }
    }

    /// Runs `provenance ARGS...` in the scratch directory (or `directory`).
    @discardableResult
    public func run(_ arguments: String..., in directory: URL? = nil, environment: [String: String] = [:]) throws -> ProcessResult {
        try run(arguments, in: directory, environment: environment)
    }

    @discardableResult
    public func run(_ arguments: [String], in directory: URL? = nil, environment: [String: String] = [:]) throws -> ProcessResult {
        try runProcess(Self.binary, arguments, in: directory ?? work, environment: environment)
    }

    /// Runs a command that must succeed.
    @discardableResult
    public func must(_ arguments: String..., environment: [String: String] = [:]) throws -> ProcessResult {
        try must(arguments, environment: environment)
    }

    @discardableResult
    public func must(_ arguments: [String], environment: [String: String] = [:]) throws -> ProcessResult {
        let result = try run(arguments, environment: environment)
        guard result.succeeded else { throw FixtureError("provenance \(arguments.joined(separator: " ")) failed: \(result)") }
        return result
    }

    /// Runs a command that must succeed, and decodes its `--json` output.
    public func json<T: Decodable>(_ type: T.Type, _ arguments: String...) throws -> T {
        let result = try run(arguments + ["--json"])
        guard result.succeeded else { throw FixtureError("provenance \(arguments.joined(separator: " ")) failed: \(result)") }
        return try JSONDecoder().decode(T.self, from: Data(result.stdout.utf8))
    }

    /// Writes a data file in the scratch directory.
    @discardableResult
    public func write(_ relative: String, _ contents: String) throws -> URL {
        try directory.write(relative, contents)
    }

    /// The bare repository of dataset `name`.
    public func datasetRepository(_ name: String) -> URL {
        store.appendingPathComponent("datasets/\(name).git")
    }

    /// Everything a command could change: every file under the store (path, size, content hash
    /// for small files) and every row of the index, so "nothing changed" can be asserted.
    public func snapshot() throws -> String {
        var lines: [String] = []
        let root = store.path
        if let enumerator = FileManager.default.enumerator(atPath: root) {
            for case let relative as String in enumerator {
                // The lock file and SQLite's shared-memory and WAL files change on reads too.
                if relative == "lock" || relative.hasPrefix("registry.sqlite") { continue }
                let full = root + "/" + relative
                var isDirectory: ObjCBool = false
                _ = FileManager.default.fileExists(atPath: full, isDirectory: &isDirectory)
                if isDirectory.boolValue {
                    lines.append("dir \(relative)")
                } else {
                    let data = (try? Data(contentsOf: URL(fileURLWithPath: full))) ?? Data()
                    lines.append("file \(relative) \(data.count) \(SHA256Digest.hex(of: data))")
                }
            }
        }
        return (lines.sorted() + [try TestBackend.dump(store: store)]).joined(separator: "\n")
    }
}
