public import Foundation
import GitKit

/// A plugin name with its options: `data-volume`, or `data-volume:unit=lines`.
public struct PluginSpec: Sendable, Hashable, CustomStringConvertible {
    public var name: String
    public var options: [String: String]

    public init(name: String, options: [String: String] = [:]) {
        self.name = name
        self.options = options
    }

    /// Parses `NAME[:key=value,...]`.
    public init(parsing text: String) throws {
        let parts = text.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
        name = String(parts[0])
        try AttributionPluginNames.validate(name)
        options = [:]
        if parts.count == 2 {
            for pair in parts[1].split(separator: ",") {
                let kv = pair.split(separator: "=", maxSplits: 1)
                guard kv.count == 2, !kv[0].isEmpty else {
                    throw ProvenanceError.invalid("malformed plugin option '\(pair)' in '\(text)': write NAME:key=value[,key=value]")
                }
                options[String(kv[0])] = String(kv[1])
            }
        }
    }

    /// Canonical text: options sorted by key.
    public var description: String {
        options.isEmpty ? name : name + ":" + options.keys.sorted().map { "\($0)=\(options[$0]!)" }.joined(separator: ",")
    }
}

/// A runnable attribution plugin: a built-in strategy, or an external executable.
public struct AttributionPlugin: Sendable {
    public enum Kind: String, Sendable, Codable { case builtIn = "built-in", external }

    public var name: String
    public var version: String
    public var kind: Kind
    /// The options the plugin accepts, with what each means; nil: any (external plugins).
    public var options: [String: String]?
    /// Where an external plugin's executable is.
    public var location: String?
    let compute: @Sendable (AttributionInput) async throws -> [ContributorWeight]
    /// For a plugin whose weights depend on the call: the spans a call's output earns.
    let computeSpans: (@Sendable (AttributionInput, AttributionInput.Call) async throws -> [AttributedSpan])?
    /// Checks option values before a model is set to use them (built-ins that have rules).
    let validateOptions: (@Sendable ([String: String]) throws -> Void)?
    /// For an external plugin: whether it has declared that each call needs its own answer.
    let declaresPerCall: (@Sendable () -> Bool)?
    /// Whether each call is attributed on its own (its output decides the weights).
    public var dependsOnCall: Bool { computeSpans != nil || declaresPerCall?() == true }

    public init<S: AttributionStrategy>(_ strategy: S) {
        self.init(builtIn: strategy, spans: nil)
    }

    public init<S: CallAttributionStrategy>(_ strategy: S) {
        self.init(builtIn: strategy, spans: { try await strategy.spans(for: $0, call: $1) })
    }

    private init<S: AttributionStrategy>(builtIn strategy: S,
                                         spans: (@Sendable (AttributionInput, AttributionInput.Call) async throws -> [AttributedSpan])?) {
        name = S.name
        version = S.version
        kind = .builtIn
        options = S.options
        location = nil
        compute = { try await strategy.weights(for: $0) }
        computeSpans = spans
        declaresPerCall = nil
        validateOptions = { try S.validate(options: $0) }
    }

    /// An external plugin; `declaresPerCall` says whether it has asked to weigh every call itself.
    public init(name: String, version: String, location: String,
                declaresPerCall: (@Sendable () -> Bool)? = nil,
                compute: @escaping @Sendable (AttributionInput) async throws -> [ContributorWeight]) {
        self.declaresPerCall = declaresPerCall
        validateOptions = nil
        self.name = name
        self.version = version
        kind = .external
        options = nil
        self.location = location
        self.compute = compute
        computeSpans = nil
    }
}

/// Finds plugins by name: the built-ins, and external `provenance-attribution-<name>` executables.
public protocol AttributionPluginResolver: Sendable {
    func plugin(named name: String, store: Store) throws -> AttributionPlugin
}

/// A model version's weights, as `attribute` prints them and invoices record them.
public struct AttributionResult: Codable, Sendable, Equatable {
    public struct Weight: Codable, Sendable, Equatable {
        /// `Name <email>` after mailmap.
        public var contributor: String
        public var id: String
        /// Integer parts per billion; all of them sum to exactly 1,000,000,000.
        public var ppb: UInt64
        /// The plugin's own figure for this contributor (bytes, lines, score…); nil for a
        /// contributor who is weighted only through the base model.
        public var raw: Double?
    }

    public var model: String
    public var version: String
    public var plugin: String
    public var pluginVersion: String
    public var baseSharePPB: UInt64
    /// The base version's own result, when part of the weight flows to it.
    public var base: String?
    public var weights: [Weight]
    /// For a call attributed by what its output reproduced (span-match): the spans that
    /// earned, across the lineage; empty when nothing matched and the fallback weighed it.
    /// Nil when no call was given or no plugin of the lineage depends on the call.
    public var spans: [AttributedSpan]?

    enum CodingKeys: String, CodingKey {
        case model, version, plugin, base, weights, spans
        case pluginVersion = "plugin_version"
        case baseSharePPB = "base_share_ppb"
    }
}

extension Store {
    // MARK: Plugin selection

    /// The model's active plugin, with its options.
    public func activePlugin(of model: String) throws -> PluginSpec {
        try Names.validateModelName(model)
        guard let record = try index.model(named: model) else {
            throw ProvenanceError.notFound("unknown model '\(model)': `provenance model list` shows the registered models")
        }
        return try PluginSpec(parsing: record.plugin)
    }

    /// The model's plugin changes, oldest first.
    public func pluginHistory(model: String) throws -> [PluginChange] {
        try Names.validateModelName(model)
        guard try index.model(named: model) != nil else {
            throw ProvenanceError.notFound("unknown model '\(model)': `provenance model list` shows the registered models")
        }
        return try index.pluginHistory(model: model)
    }

    /// Makes `spec` the model's active plugin, recording the change in the model repository's
    /// `refs/provenance/plugin` history and in the index, all or nothing.
    public func setPlugin(model: String, to spec: PluginSpec, by actor: Identity?, resolver: any AttributionPluginResolver,
                          date: Date = Date()) throws -> PluginChange {
        try Names.validateModelName(model)
        let plugin = try resolver.plugin(named: spec.name, store: self)
        try Self.checkOptions(spec, of: plugin)
        return try withWriteLock("models/\(model)") {
            guard let record = try index.model(named: model) else {
                throw ProvenanceError.notFound("unknown model '\(model)': `provenance model list` shows the registered models")
            }
            if record.plugin == spec.description {
                throw ProvenanceError.conflict("\(model) already uses \(spec)")
            }
            let (repository, _) = try openModelForWriting(model, record: record)
            let developer = try actor ?? index.modelVersions(model: model).last.map {
                let manifest = try $0.decodedManifest()
                return Identity(name: manifest.developer.name, email: manifest.developer.email)
            } ?? Identity(name: "Provenance", email: "registry@localhost")
            let change = try writePluginChange(model: model, spec: spec, by: developer, in: repository, date: date)
            try index.record(change) {
                try moveReference(Self.pluginReference, in: repository, to: change.commit)
                CrashPoint.afterReferenceUpdated.hit()
            }
            caches.forget(model: model)
            return change
        }
    }

    static let pluginReference = "refs/provenance/plugin"

    /// Writes (but does not reference) a commit on top of `refs/provenance/plugin` recording `spec`.
    func writePluginChange(model: String, spec: PluginSpec, by actor: Identity, in repository: Repository, date: Date) throws -> PluginChange {
        let parent = try repository.referenceTarget(Self.pluginReference)
        let body = try CanonicalJSON.encode(["model": model, "plugin": spec.description]) + Data("\n".utf8)
        let editor = try TreeEditor(repository: repository, base: nil)
        try editor.setFile("plugin.json", id: try repository.writeBlob(body), mode: .blob, size: UInt64(body.count))
        let signature = Signature(name: actor.name, email: actor.email, time: Int64(date.timeIntervalSince1970.rounded(.down)),
                                  offsetMinutes: Int32(TimeZone.current.secondsFromGMT(for: date) / 60))
        let commit = try repository.createCommit(tree: try editor.write(), parents: parent.map { [$0] } ?? [], author: signature,
                                                 committer: signature, message: "Use attribution plugin \(spec)\n")
        return PluginChange(model: model, plugin: spec.description, changedAt: signature.time, changedBy: actor.description,
                            commit: commit.hex)
    }

    func moveReference(_ name: String, in repository: Repository, to commit: String) throws {
        let current = try repository.referenceTarget(name)
        try repository.updateReference(name, to: try objectID(commit), expecting: current, message: "provenance")
    }

    static func checkOptions(_ spec: PluginSpec, of plugin: AttributionPlugin) throws {
        guard let accepted = plugin.options else { return }
        for key in spec.options.keys.sorted() where accepted[key] == nil {
            let known = accepted.keys.sorted().map { "\($0) (\(accepted[$0]!))" }.joined(separator: ", ")
            throw ProvenanceError.invalid("plugin '\(plugin.name)' has no option '\(key)'\(known.isEmpty ? "" : "; it accepts \(known)")")
        }
        do { try plugin.validateOptions?(spec.options) } catch let error as AttributionError {
            throw ProvenanceError.invalid(error.description)
        }
    }

    // MARK: Attributing

    /// What the plugin of `reference` sees.
    public func attributionInput(for reference: ModelVersionReference, options: [String: String] = [:],
                                 call: AttributionInput.Call? = nil) throws -> AttributionInput {
        let (record, manifest) = try modelVersion(reference)
        let modelRepository = modelRepositoryURL(reference.model)
        let repository = try Repository.open(at: modelRepository)
        let commit = try objectID(record.commit)
        let contributors = try contributors(of: manifest.datasets.map { DatasetCommitKey(dataset: $0.dataset, commit: $0.commit) })
        let datasets = manifest.datasets.map { input in
            AttributionInput.DatasetCommit(dataset: input.dataset, commit: input.commit, manifestSHA256: input.manifestSHA256,
                                           repository: datasetRepositoryURL(input.dataset),
                                           contributors: contributors[DatasetCommitKey(dataset: input.dataset, commit: input.commit)] ?? [])
        }
        let logs = try manifest.trainingLogs.map { log in
            guard let blob = try repository.blob(atPath: log.path, inCommit: commit) else {
                throw ProvenanceError(.git, "\(reference): training log \(log.path) is missing from commit \(commit.short)")
            }
            return AttributionInput.TrainingLog(path: log.path, sha256: log.sha256, size: log.size, blob: blob.hex)
        }
        return AttributionInput(model: reference.model, version: reference.version, modelCommit: record.commit,
                                modelRepository: modelRepository, datasets: datasets, trainingLogs: logs, call: call,
                                options: options, authorshipCache: index, indexes: indexesURL)
    }

    /// The weights of `reference` under its active plugin (or `override`), with the base
    /// share of its lineage mixed in, recursively.
    ///
    /// The rule: a version with a base and a base share of `s` ppb gives `s/10^9` of its weight
    /// to the base version's own result (computed under the base model's active plugin) and
    /// keeps the rest for its own dataset contributors; a version without datasets gives all of
    /// it to its base. Each step is re-normalised exactly, so the result is integer ppb.
    public func attribute(_ reference: ModelVersionReference, override: PluginSpec? = nil,
                          resolver: any AttributionPluginResolver, call: AttributionInput.Call? = nil) async throws -> AttributionResult {
        let (_, manifest) = try modelVersion(reference)
        let (specText, pluginVersion, own, ownSpans) = try await ownShares(reference, override: override, resolver: resolver, call: call)
        var shares = own
        var spans = ownSpans
        var basePPB: UInt64 = 0
        if let base = manifest.base {
            basePPB = manifest.datasets.isEmpty ? PartsPerBillion.whole : manifest.baseSharePPB ?? 0
            if basePPB > 0 {
                let baseResult = try await attribute(base.reference, resolver: resolver, call: call)
                if let baseSpans = baseResult.spans { spans = (spans ?? []) + baseSpans }
                let baseShares = baseResult.weights.map { PartsPerBillion.Share(contributor: $0.id, ppb: $0.ppb, raw: 0) }
                shares = PartsPerBillion.mix(own: own, base: baseShares, basePPB: basePPB)
            }
        }
        let identities = try contributorIdentities(of: reference, only: Set(shares.map(\.contributor)))
        let ownRaw = Dictionary(uniqueKeysWithValues: own.map { ($0.contributor, $0.raw) })
        let weights = shares.map { share in
            AttributionResult.Weight(contributor: identities[share.contributor] ?? share.contributor, id: share.contributor,
                                     ppb: share.ppb, raw: ownRaw[share.contributor])
        }.sorted { ($0.ppb, $1.id) > ($1.ppb, $0.id) }
        return AttributionResult(model: reference.model, version: reference.version, plugin: specText,
                                 pluginVersion: pluginVersion, baseSharePPB: basePPB,
                                 base: basePPB > 0 ? manifest.base?.reference.description : nil, weights: weights, spans: spans)
    }

    /// The version's own weights (no base mixed in) under its active plugin or `override`:
    /// the plugin spec used, its version, and the normalised shares (empty without datasets).
    /// With a call and a plugin that depends on it, the shares are what the output's spans
    /// earned, and the spans come along (empty: nothing matched, the plugin's version weights
    /// apply); otherwise spans is nil.
    func ownShares(_ reference: ModelVersionReference, override: PluginSpec?, resolver: any AttributionPluginResolver,
                   call: AttributionInput.Call?) async throws
        -> (plugin: String, pluginVersion: String, shares: [PartsPerBillion.Share], spans: [AttributedSpan]?) {
        let (_, manifest) = try modelVersion(reference)
        let specText = try override?.description ?? index.model(named: reference.model)?.plugin ?? manifest.plugin
        let spec = try PluginSpec(parsing: specText)
        let plugin = try resolver.plugin(named: spec.name, store: self)
        try Self.checkOptions(spec, of: plugin)
        guard !manifest.datasets.isEmpty else { return (spec.description, plugin.version, [], nil) }
        // The version's input is fixed once registered: calls reuse it (a call is attributed per call).
        var input = try caches.attributionInput("\(reference)|\(spec)") { try attributionInput(for: reference, options: spec.options) }
        input.call = call
        do {
            var spans: [AttributedSpan]?
            if let call, call.outputText != nil, let computeSpans = plugin.computeSpans {
                let found = try await computeSpans(input, call)
                spans = found
                if !found.isEmpty {
                    // The bytes each author's spans earned, normalised as any plugin's weights are
                    // (and as `LevelCallAttribution.weights(of:)` re-derives them for verify).
                    return (spec.description, plugin.version,
                            try PartsPerBillion.normalize(AttributedSpan.weights(of: found), known: Set(input.contributors.map(\.id)),
                                                          plugin: plugin.name), found)
                }
            }
            let weights = try await plugin.compute(input)
            return (spec.description, plugin.version,
                    try PartsPerBillion.normalize(weights, known: Set(input.contributors.map(\.id)), plugin: plugin.name), spans)
        } catch let error as AttributionError {
            throw ProvenanceError.invalid(error.description)
        } catch let error as ProvenanceError {
            throw ProvenanceError(error.code, "attribution plugin '\(plugin.name)': \(error.message)")
        }
    }

    /// `Name <email>` for every contributor id in the lineage of `reference`, nearest first.
    func contributorIdentities(of reference: ModelVersionReference, only wanted: Set<String>) throws -> [String: String] {
        var identities: [String: String] = [:]
        var keys: [DatasetCommitKey] = []
        for version in try baseChain(from: reference) {
            keys += try modelVersion(version).1.datasets.map { DatasetCommitKey(dataset: $0.dataset, commit: $0.commit) }
        }
        let contributors = try contributors(of: keys)
        for key in keys {
            for contributor in contributors[key] ?? [] where wanted.contains(contributor.id) && identities[contributor.id] == nil {
                identities[contributor.id] = contributor.identity
                if identities.count == wanted.count { return identities }
            }
        }
        return identities
    }
}
