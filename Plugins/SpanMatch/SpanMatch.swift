public import Foundation
import DataVolume
import EqualShare
public import ProvenanceCore

/// Pays, per call, the people whose text the model's output reproduced.
///
/// Given a call's output, it finds every maximal span of at least `min_bytes` bytes that
/// occurs verbatim in the version's training data (every text file of every dataset commit
/// of the version; base versions are attributed by their own plugin as their base share
/// says), through a suffix-array index of those commits (`SpanIndex`). Each output byte inside
/// a span is earned by the longest span covering it; a span found in several places is
/// credited to the occurrence written first (the copy never outranks the original); its bytes
/// go to the git blame authors of the lines there. A contributor's weight is the bytes earned.
///
/// Without a call, or when the output reproduces nothing, the version's weights are those of
/// the `fallback` plugin (data-volume unless set), so such a call pays as it would have.
public struct SpanMatch: CallAttributionStrategy {
    public static let name = "span-match"
    public static let version = "1"
    public static let options = [
        "min_bytes": "the shortest span that earns, in bytes (default \(defaultMinimumBytes))",
        "fallback": "the plugin that weighs a call whose output reproduces nothing: data-volume (default) or equal-share",
    ]
    public static let defaultMinimumBytes = 40

    public init() {}

    public static func validate(options: [String: String]) throws {
        _ = try minimumBytes(options)
        _ = try fallback(options)
    }

    static func minimumBytes(_ options: [String: String]) throws -> Int {
        guard let text = options["min_bytes"] else { return defaultMinimumBytes }
        guard let value = Int(text), (1...1_000_000).contains(value) else {
            throw AttributionError(plugin: name, message: "min_bytes must be a whole number of bytes from 1 to 1000000, not '\(text)'")
        }
        return value
    }

    static func fallback(_ options: [String: String]) throws -> any AttributionStrategy {
        switch options["fallback"] ?? DataVolume.name {
        case DataVolume.name: return DataVolume()
        case EqualShare.name: return EqualShare()
        case let other: throw AttributionError(plugin: name, message: "fallback must be data-volume or equal-share, not '\(other)'")
        }
    }

    // Option values were checked by `validate(options:)` when the plugin was chosen.
    public func weights(for input: AttributionInput) async throws -> [ContributorWeight] {
        var options = input.options
        options["min_bytes"] = nil
        options["fallback"] = nil
        var fallbackInput = input
        fallbackInput.options = options
        return try await Self.fallback(input.options).weights(for: fallbackInput)
    }

    public func spans(for input: AttributionInput, call: AttributionInput.Call) async throws -> [AttributedSpan] {
        let minimum = try Self.minimumBytes(input.options)
        guard let text = call.outputText, !text.isEmpty, !input.datasets.isEmpty else { return [] }
        let index = try Self.index(for: input)
        return index.attribute(output: Data(text.utf8), minimumBytes: minimum).spans
    }

    /// The index of the version's dataset commits, built when missing; indexes are immutable
    /// (named by their commits), so one opened stays open for the life of the process.
    public static func index(for input: AttributionInput) throws -> SpanIndex {
        guard let folder = input.indexes else {
            throw AttributionError(plugin: name, message: "no index folder: span-match needs a store")
        }
        let inputs = input.datasets.map { SpanIndex.Input(dataset: $0.dataset, commit: $0.commit, repository: $0.repository) }
        let key = SpanIndex.key(for: inputs.map { SpanIndex.Source(dataset: $0.dataset, commit: $0.commit) })
        let directory = folder.appendingPathComponent(key, isDirectory: true)
        return try OpenIndexes.shared.index(at: directory) { try SpanIndex.build(inputs, in: folder) }
    }
}

/// Indexes opened by this process, by directory.
final class OpenIndexes: @unchecked Sendable {
    static let shared = OpenIndexes()
    private let lock = NSLock()
    private var open: [String: SpanIndex] = [:]

    func index(at directory: URL, build: () throws -> SpanIndex) throws -> SpanIndex {
        lock.lock()
        defer { lock.unlock() }
        // An open index stays usable even if its folder goes (it is mapped); `forget` drops one rebuilt.
        if let index = open[directory.path] { return index }
        let index = FileManager.default.fileExists(atPath: directory.appendingPathComponent("meta.json").path)
            ? try SpanIndex(directory: directory) : try build()
        open[directory.path] = index
        return index
    }

    func forget(_ directory: URL) {
        lock.lock()
        open[directory.path] = nil
        lock.unlock()
    }
}

/// What `provenance index build` made: one index per version of the lineage with datasets.
public struct SpanIndexReport: Codable, Sendable, Equatable {
    public var version: String
    public var key: String
    public var sources: [SpanIndex.Source]
    public var files: Int
    public var textBytes: Int
    public var diskBytes: Int
    public var seconds: Double

    enum CodingKeys: String, CodingKey {
        case version, key, sources, files, seconds
        case textBytes = "text_bytes"
        case diskBytes = "disk_bytes"
    }
}

extension SpanMatch {
    /// Builds (or with `force` rebuilds) the span index of `reference` and of each base version
    /// below it that has datasets.
    public static func buildIndexes(for reference: ModelVersionReference, store: Store, force: Bool) throws -> [SpanIndexReport] {
        var reports: [SpanIndexReport] = []
        for version in try store.baseChain(from: reference) {
            let input = try store.attributionInput(for: version)
            guard !input.datasets.isEmpty else { continue }
            let started = Date()
            let inputs = input.datasets.map { SpanIndex.Input(dataset: $0.dataset, commit: $0.commit, repository: $0.repository) }
            let index: SpanIndex
            if force {
                index = try SpanIndex.build(inputs, in: store.indexesURL, force: true)
                OpenIndexes.shared.forget(index.directory)
            } else {
                index = try Self.index(for: input)
            }
            reports.append(SpanIndexReport(version: version.description, key: index.directory.lastPathComponent, sources: index.sources,
                                           files: index.fileCount, textBytes: index.textBytes, diskBytes: index.diskBytes,
                                           seconds: Date().timeIntervalSince(started)))
        }
        return reports
    }

    /// After `reindex`: drops every span index and rebuilds those of the versions of models
    /// whose active plugin is span-match (the others are built when first needed).
    public static func rebuildIndexes(store: Store) throws -> Int {
        try? FileManager.default.removeItem(at: store.indexesURL)
        var built = 0
        for model in try store.modelSummaries() where (try? PluginSpec(parsing: model.plugin).name) == name {
            for version in model.versions {
                built += try buildIndexes(for: ModelVersionReference(model: model.model, version: version), store: store, force: true).count
            }
        }
        return built
    }
}
