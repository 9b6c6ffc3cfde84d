public import Foundation

/// One contributor of a dataset commit's history, after the commit's `.mailmap` is applied.
public struct ContributorSummary: Codable, Sendable, Equatable {
    /// The contributor id: the mailmapped email, lowercased.
    public var id: String
    /// The mailmapped name of the contributor's newest commit in that history.
    public var name: String
    /// The mailmapped email as written in that commit.
    public var email: String
    /// Commits authored in the history reachable from the dataset commit.
    public var commits: Int

    /// `Name <email>`, as `git log --format='%aN <%aE>'` prints it.
    public var identity: String { "\(name) <\(email)>" }

    public init(id: String, name: String, email: String, commits: Int) {
        self.id = id
        self.name = name
        self.email = email
        self.commits = commits
    }
}

/// A dataset as the index knows it.
public struct DatasetRecord: Sendable, Equatable {
    public var name: String
    /// The last registered head; nil only for a dataset with no registered commit.
    public var head: String?
    public var createdAt: Int64

    public init(name: String, head: String?, createdAt: Int64) {
        self.name = name
        self.head = head
        self.createdAt = createdAt
    }
}

/// A registered dataset commit: one that `add` wrote or imported, with its manifest.
public struct RegisteredCommit: Sendable, Equatable {
    public enum Kind: String, Sendable, Codable { case add, `import` }

    public var dataset: String
    public var commit: String
    /// The head the commit was registered on top of (nil for the first).
    public var previousHead: String?
    public var kind: Kind
    /// Files and bytes in the commit's whole tree.
    public var files: Int
    public var bytes: UInt64
    public var manifestSHA256: String
    /// Commits in the history reachable from this commit.
    public var historyCommits: Int
    public var registeredAt: Int64

    public init(dataset: String, commit: String, previousHead: String?, kind: Kind, files: Int, bytes: UInt64, manifestSHA256: String, historyCommits: Int, registeredAt: Int64) {
        self.dataset = dataset
        self.commit = commit
        self.previousHead = previousHead
        self.kind = kind
        self.files = files
        self.bytes = bytes
        self.manifestSHA256 = manifestSHA256
        self.historyCommits = historyCommits
        self.registeredAt = registeredAt
    }
}

/// Everything a registration writes to the index, applied in one transaction.
public struct CommitRegistration: Sendable {
    public var record: RegisteredCommit
    public var manifest: Data
    public var contributors: [ContributorSummary]
    /// SHA-256 and size of blobs hashed on the way, so later manifests need not rehash them.
    public var blobDigests: [BlobDigest]
    /// True when this registration creates the dataset.
    public var createsDataset: Bool
}

/// A blob's SHA-256 and size, cached by git blob id.
public struct BlobDigest: Sendable, Equatable {
    public var blob: String
    public var sha256: String
    public var size: UInt64

    public init(blob: String, sha256: String, size: UInt64) {
        self.blob = blob
        self.sha256 = sha256
        self.size = size
    }
}

/// The registry index: what the store knows beyond the git repositories themselves.
///
/// Storage sits behind this protocol so that another database can join SQLite without
/// touching the domain code.
public protocol RegistryIndex: AnyObject, Sendable, AuthorshipCache {
    func dataset(named name: String) throws -> DatasetRecord?
    func datasets() throws -> [DatasetRecord]
    func registeredCommit(dataset: String, commit: String) throws -> RegisteredCommit?
    func registeredCommits(dataset: String) throws -> [RegisteredCommit]
    func manifest(dataset: String, commit: String) throws -> Data?
    func contributors(dataset: String, commit: String) throws -> [ContributorSummary]
    /// Contributors of many registered commits in one read, keyed by `DatasetCommitKey`.
    func contributors(of commits: [DatasetCommitKey]) throws -> [DatasetCommitKey: [ContributorSummary]]
    func blobDigests(dataset: String, blobs: [String]) throws -> [String: BlobDigest]

    /// Writes `registration` and moves the dataset's head, all or nothing. `beforeCommit` runs
    /// inside the transaction, last; if it throws, nothing is written.
    func register(_ registration: CommitRegistration, beforeCommit: () throws -> Void) throws

    func model(named name: String) throws -> ModelRecord?
    func models() throws -> [ModelRecord]
    func modelVersion(model: String, version: String) throws -> ModelVersionRecord?
    /// A model's versions in the order they were registered.
    func modelVersions(model: String) throws -> [ModelVersionRecord]

    /// Writes a model version (creating the model on first use) and moves the model's head,
    /// all or nothing; `beforeCommit` runs inside the transaction, last.
    func register(_ registration: ModelVersionRegistration, beforeCommit: () throws -> Void) throws

    /// A model's plugin changes, oldest first.
    func pluginHistory(model: String) throws -> [PluginChange]

    /// Makes `change` the model's active plugin; `beforeCommit` runs inside the transaction, last.
    func record(_ change: PluginChange, beforeCommit: () throws -> Void) throws

    /// Replaces everything the index knows about datasets and models with what `reindex`
    /// read from the repositories, in one transaction.
    func rebuild(datasets: [CommitRegistration], datasetHeads: [String: String], models: [ModelVersionRegistration],
                 pluginChanges: [PluginChange]) throws
}

/// A model as the index knows it.
public struct ModelRecord: Sendable, Equatable {
    public var name: String
    /// The active attribution plugin.
    public var plugin: String
    /// The commit of the last registered version.
    public var head: String?
    public var createdAt: Int64

    public init(name: String, plugin: String, head: String?, createdAt: Int64) {
        self.name = name
        self.plugin = plugin
        self.head = head
        self.createdAt = createdAt
    }
}

/// A registered model version.
public struct ModelVersionRecord: Sendable, Equatable {
    public var model: String
    public var version: String
    public var commit: String
    /// The exact `provenance.json` bytes committed with the version.
    public var manifest: Data
    public var registeredAt: Int64

    public func decodedManifest() throws -> ModelManifest {
        do { return try JSONDecoder().decode(ModelManifest.self, from: manifest) } catch {
            throw ProvenanceError(.storage, "the manifest of \(model)@\(version) in the index cannot be read: \(error)")
        }
    }

    public init(model: String, version: String, commit: String, manifest: Data, registeredAt: Int64) {
        self.model = model
        self.version = version
        self.commit = commit
        self.manifest = manifest
        self.registeredAt = registeredAt
    }
}

/// Everything registering a model version writes to the index.
public struct ModelVersionRegistration: Sendable {
    public var version: ModelVersionRecord
    /// The model's active plugin after this registration.
    public var plugin: String
    /// Set when the registration creates the model or changes its plugin.
    public var pluginChange: PluginChange?
}

/// One change of a model's active attribution plugin, as recorded in the model repository's
/// `refs/provenance/plugin` history.
public struct PluginChange: Codable, Sendable, Equatable {
    public var model: String
    /// The plugin and its options, e.g. `data-volume` or `data-volume:unit=lines`.
    public var plugin: String
    public var changedAt: Int64
    public var changedBy: String
    /// The commit on `refs/provenance/plugin` that records the change.
    public var commit: String

    enum CodingKeys: String, CodingKey {
        case model, plugin, commit
        case changedAt = "changed_at"
        case changedBy = "changed_by"
    }

    public init(model: String, plugin: String, changedAt: Int64, changedBy: String, commit: String) {
        self.model = model
        self.plugin = plugin
        self.changedAt = changedAt
        self.changedBy = changedBy
        self.commit = commit
    }
}

/// A dataset commit, as a dictionary key.
public struct DatasetCommitKey: Hashable, Sendable {
    public var dataset: String
    public var commit: String

    public init(dataset: String, commit: String) {
        self.dataset = dataset
        self.commit = commit
    }
}
