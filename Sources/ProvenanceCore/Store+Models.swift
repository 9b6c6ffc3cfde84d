public import Foundation
import GitKit

/// What `provenance model register` needs.
public struct ModelRegistrationRequest: Sendable {
    public var reference: ModelVersionReference
    public var developer: Identity
    public var datasets: [RevisionReference]
    public var trainingLogs: [URL]
    public var base: ModelVersionReference?
    public var weights: URL?
    public var plugin: PluginSpec?
    /// Parts per billion of the version's attribution that flows to its base (default 0).
    public var baseSharePPB: UInt64?

    public init(reference: ModelVersionReference, developer: Identity, datasets: [RevisionReference], trainingLogs: [URL],
                base: ModelVersionReference?, weights: URL?, plugin: PluginSpec?, baseSharePPB: UInt64? = nil) {
        self.baseSharePPB = baseSharePPB
        self.reference = reference
        self.developer = developer
        self.datasets = datasets
        self.trainingLogs = trainingLogs
        self.base = base
        self.weights = weights
        self.plugin = plugin
    }
}

/// A registered model version as `model show` and `model register --json` print it.
public struct ModelVersionInfo: Codable, Sendable, Equatable {
    public var model: String
    public var version: String
    public var commit: String
    public var developer: String
    public var datasets: [ModelManifest.DatasetInput]
    public var trainingLogs: [ModelManifest.TrainingLog]
    public var base: ModelManifest.Base?
    public var weights: ModelManifest.Weights?
    public var plugin: String
    public var baseSharePPB: UInt64?

    enum CodingKeys: String, CodingKey {
        case model, version, commit, developer, datasets, base, weights, plugin
        case trainingLogs = "training_logs"
        case baseSharePPB = "base_share_ppb"
    }

    init(manifest: ModelManifest, commit: String) {
        model = manifest.model
        version = manifest.version
        self.commit = commit
        developer = manifest.developer.identity
        datasets = manifest.datasets
        trainingLogs = manifest.trainingLogs
        base = manifest.base
        weights = manifest.weights
        plugin = manifest.plugin
        baseSharePPB = manifest.baseSharePPB
    }
}

/// One model as `model list` prints it.
public struct ModelSummary: Codable, Sendable, Equatable {
    public var model: String
    public var plugin: String
    public var versions: [String]
    public var latest: String?
}

/// The names attribution plugins may have. Which plugins exist is the plugin registry's
/// business (AttributionPlugins); the core only checks the form of a name.
public enum AttributionPluginNames {
    public static let defaultPlugin = "equal-share"

    /// A name a built-in or an external `provenance-attribution-<name>` executable can carry.
    public static func validate(_ name: String) throws {
        let ok = !name.isEmpty && name.count <= 64 && name.utf8.allSatisfy {
            ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_")
        }
        guard ok else {
            throw ProvenanceError.invalid("invalid plugin name '\(name)': use a-z 0-9 - _ (`provenance plugins` lists those available)")
        }
    }
}

extension Store {
    public func modelRepositoryURL(_ name: String) -> URL {
        modelsURL.appendingPathComponent("\(name).git", isDirectory: true)
    }

    // MARK: Registering

    /// Registers a model version: one commit in `models/MODEL.git` holding the training logs and
    /// `provenance.json`, tagged with the version, and its index entry, all or nothing.
    public func registerModel(_ request: ModelRegistrationRequest, resolver: any AttributionPluginResolver,
                              date: Date = Date()) throws -> ModelVersionInfo {
        let reference = request.reference
        if let spec = request.plugin { try Self.checkOptions(spec, of: try resolver.plugin(named: spec.name, store: self)) }
        if let share = request.baseSharePPB {
            guard request.base != nil else { throw ProvenanceError.invalid("--base-share needs --base: there is no base model to share with") }
            guard share <= PartsPerBillion.whole else {
                throw ProvenanceError.invalid("--base-share \(share) is more than 1000000000 parts per billion (the whole)")
            }
        }
        guard !request.datasets.isEmpty || request.base != nil else {
            throw ProvenanceError.invalid("\(reference) needs at least one --dataset DS@REV (or a --base model it was fine-tuned from)")
        }
        // Files first: nothing is written if one is missing.
        let logNames = try request.trainingLogs.map { try Self.checkRegularFile($0, what: "training log") }
        var seen = Set<String>()
        for name in logNames where !seen.insert(name).inserted {
            throw ProvenanceError.invalid("two training logs are named '\(name)'; rename one so both fit in \(ModelManifest.trainingLogFolder)/")
        }
        let weightsName = try request.weights.map { try Self.checkRegularFile($0, what: "weights file") }

        return try withWriteLock("models/\(reference.model)") {
            if try index.modelVersion(model: reference.model, version: reference.version) != nil {
                throw ProvenanceError.conflict("\(reference) is already registered; versions are immutable, so register a new version")
            }
            // Dataset references must name registered commits.
            var inputs: [ModelManifest.DatasetInput] = []
            for datasetReference in request.datasets {
                let resolved = try resolve(datasetReference)
                guard resolved.registered, let commit = try index.registeredCommit(dataset: resolved.dataset, commit: resolved.commit) else {
                    throw ProvenanceError.invalid("\(datasetReference) is commit \(resolved.commit.prefix(7)) of '\(resolved.dataset)', which is in its history but not registered; name a commit that `provenance add` registered")
                }
                if inputs.contains(where: { $0.dataset == commit.dataset && $0.commit == commit.commit }) { continue }
                inputs.append(ModelManifest.DatasetInput(dataset: commit.dataset, commit: commit.commit,
                                                         manifestSHA256: commit.manifestSHA256, files: commit.files, bytes: commit.bytes))
            }
            var base: ModelManifest.Base?
            if let baseReference = request.base {
                if baseReference == reference {
                    throw ProvenanceError.invalid("\(reference) cannot be its own base: that would form a cycle")
                }
                guard let record = try index.modelVersion(model: baseReference.model, version: baseReference.version) else {
                    throw ProvenanceError.notFound("base model \(baseReference) does not exist: `provenance model list` shows the registered versions")
                }
                let chain = try baseChain(from: baseReference)
                if chain.contains(reference) {
                    throw ProvenanceError.invalid("--base \(baseReference) would form a cycle: \(reference) is already in its lineage")
                }
                base = ModelManifest.Base(model: baseReference.model, version: baseReference.version, commit: record.commit)
            }

            let existing = try index.model(named: reference.model)
            let (repository, created) = try openModelForWriting(reference.model, record: existing)
            do {
                let editor = try TreeEditor(repository: repository, base: nil)
                var logs: [ModelManifest.TrainingLog] = []
                for (url, name) in zip(request.trainingLogs, logNames) {
                    var hasher = StreamingSHA256()
                    let (id, size) = try repository.writeBlob(fromFile: url) { hasher.update($0) }
                    let path = "\(ModelManifest.trainingLogFolder)/\(name)"
                    try editor.setFile(path, id: id, mode: .blob, size: size)
                    logs.append(ModelManifest.TrainingLog(path: path, sha256: hasher.finalizeHex(), size: size))
                }
                var weights: ModelManifest.Weights?
                if let url = request.weights, let weightsName {
                    let (sha256, size) = try SHA256Digest.hex(ofFileAt: url)
                    weights = ModelManifest.Weights(name: weightsName, sha256: sha256, size: size)
                }
                let plugin = request.plugin?.description ?? existing?.plugin ?? AttributionPluginNames.defaultPlugin
                let manifest = ModelManifest(
                    format: ModelManifest.format, model: reference.model, version: reference.version,
                    developer: .init(name: request.developer.name, email: request.developer.email, id: request.developer.id),
                    datasets: inputs, trainingLogs: logs, base: base, weights: weights, plugin: plugin,
                    baseSharePPB: base == nil ? nil : request.baseSharePPB ?? 0)
                let manifestData = try manifest.encoded()
                try editor.setFile(ModelManifest.fileName, id: try repository.writeBlob(manifestData), mode: .blob,
                                   size: UInt64(manifestData.count))
                let tree = try editor.write()
                let signature = Signature(name: request.developer.name, email: request.developer.email,
                                          time: Int64(date.timeIntervalSince1970.rounded(.down)),
                                          offsetMinutes: Int32(TimeZone.current.secondsFromGMT(for: date) / 60))
                let parent = try existing?.head.map { try objectID($0) }
                let commit = try repository.createCommit(tree: tree, parents: parent.map { [$0] } ?? [], author: signature,
                                                         committer: signature, message: "Register \(reference)\n")
                CrashPoint.afterObjectsWritten.hit()
                // A new model, or a different plugin, starts or extends the plugin history.
                let pluginChange = existing?.plugin == plugin ? nil : try writePluginChange(
                    model: reference.model, spec: try PluginSpec(parsing: plugin), by: request.developer, in: repository, date: date)
                let registration = ModelVersionRegistration(
                    version: ModelVersionRecord(model: reference.model, version: reference.version, commit: commit.hex,
                                                manifest: manifestData, registeredAt: signature.time),
                    plugin: plugin, pluginChange: pluginChange)
                try index.register(registration) {
                    if let pluginChange { try moveReference(Self.pluginReference, in: repository, to: pluginChange.commit) }
                    try repository.createTag(reference.version, target: commit)
                    try repository.updateReference(Self.branch, to: commit, expecting: parent, message: "provenance: register \(reference)")
                    CrashPoint.afterReferenceUpdated.hit()
                }
                CrashPoint.afterIndexCommitted.hit()
                return ModelVersionInfo(manifest: manifest, commit: commit.hex)
            } catch {
                if created { try? FileManager.default.removeItem(at: repository.path) }
                if let error = error as? GitError { throw ProvenanceError(.git, "cannot register \(reference): \(error.message)") }
                throw error
            }
        }
    }

    /// The file's name, after checking it is a readable regular file.
    static func checkRegularFile(_ url: URL, what: String) throws -> String {
        var info = stat()
        guard stat(url.path, &info) == 0 else {
            throw ProvenanceError.invalid("\(what) '\(url.path)' does not exist")
        }
        guard info.st_mode & S_IFMT == S_IFREG else {
            throw ProvenanceError.invalid("\(what) '\(url.path)' is not a regular file")
        }
        guard access(url.path, R_OK) == 0 else {
            throw ProvenanceError.invalid("\(what) '\(url.path)' cannot be read")
        }
        return url.lastPathComponent
    }

    /// Opens (or creates) a model's repository and makes its branch and tags agree with the
    /// index, undoing what a crashed registration left behind.
    func openModelForWriting(_ name: String, record: ModelRecord?) throws -> (Repository, Bool) {
        let url = modelRepositoryURL(name)
        var created = false
        let repository: Repository
        if FileManager.default.fileExists(atPath: url.path) {
            repository = try Repository.open(at: url)
        } else {
            if record != nil { throw ProvenanceError(.git, "model '\(name)' is registered but its repository \(url.path) is missing") }
            repository = try Repository.createBare(at: url)
            created = true
        }
        let registered = try record?.head.map { try objectID($0) }
        let actual = try repository.referenceTarget(Self.branch)
        if actual != registered {
            if let registered {
                try repository.updateReference(Self.branch, to: registered, expecting: actual, message: "provenance: recover registered head")
            } else {
                try repository.deleteReference(Self.branch)
            }
        }
        let plugin = try index.pluginHistory(model: name).last.map { try objectID($0.commit) }
        let actualPlugin = try repository.referenceTarget(Self.pluginReference)
        if actualPlugin != plugin {
            if let plugin {
                try repository.updateReference(Self.pluginReference, to: plugin, expecting: actualPlugin, message: "provenance: recover plugin")
            } else {
                try repository.deleteReference(Self.pluginReference)
            }
        }
        let versions = Set(try index.modelVersions(model: name).map(\.version))
        for tag in try repository.tagNames() where !versions.contains(tag) {
            try repository.deleteReference("refs/tags/\(tag)")
        }
        return (repository, created)
    }

    /// The chain of base versions below `reference` (itself first), refusing a cycle.
    public func baseChain(from reference: ModelVersionReference) throws -> [ModelVersionReference] {
        var chain: [ModelVersionReference] = []
        var next: ModelVersionReference? = reference
        while let current = next {
            if chain.contains(current) {
                throw ProvenanceError(.storage, "the lineage of \(reference) cycles through \(current)")
            }
            chain.append(current)
            // Versions are immutable, so their decoded manifests come from memory once read.
            next = try modelVersion(current).1.base?.reference
        }
        return chain
    }

    // MARK: Reading

    /// The registered version `reference`, or a clear error.
    public func modelVersion(_ reference: ModelVersionReference) throws -> (ModelVersionRecord, ModelManifest) {
        if let cached = caches.version(reference) { return cached }
        guard try index.model(named: reference.model) != nil else {
            throw ProvenanceError.notFound("unknown model '\(reference.model)': `provenance model list` shows the registered models")
        }
        guard let record = try index.modelVersion(model: reference.model, version: reference.version) else {
            let known = try index.modelVersions(model: reference.model).map(\.version)
            throw ProvenanceError.notFound("model '\(reference.model)' has no version '\(reference.version)' (it has \(known.joined(separator: ", ")))")
        }
        let version = (record, try record.decodedManifest())
        caches.setVersion(version, for: reference)
        return version
    }

    public func showModel(_ reference: ModelVersionReference) throws -> ModelVersionInfo {
        let (record, manifest) = try modelVersion(reference)
        return ModelVersionInfo(manifest: manifest, commit: record.commit)
    }

    public func modelSummaries() throws -> [ModelSummary] {
        try index.models().map { model in
            let versions = try index.modelVersions(model: model.name).map(\.version)
            return ModelSummary(model: model.name, plugin: model.plugin, versions: versions, latest: versions.last)
        }
    }
}
