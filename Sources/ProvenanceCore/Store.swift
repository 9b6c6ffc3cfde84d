public import Foundation
import Crypto
import GitKit

/// A Provenance store: the registry index plus one bare git repository per dataset and model.
///
/// ```
/// .provenance/
///   registry.sqlite   index (SQLite, WAL)
///   datasets/         one bare repository per dataset
///   models/           one bare repository per model
///   keys/             Ed25519 keys, mode 0700
/// ```
public final class Store: Sendable {
    /// The store directory itself (the `.provenance` folder, or whatever `--store` named).
    public let root: URL
    public let index: any RegistryIndex

    public static let defaultDirectoryName = ".provenance"
    public static let environmentVariable = "PROVENANCE_STORE"

    /// Derived values this process may reuse: attribution levels, the registry's signer.
    let caches = StoreCaches()
    /// Coalesces concurrent call submissions into group commits.
    let committer = SettlementCommitter()

    private init(root: URL, index: any RegistryIndex) {
        self.root = root
        self.index = index
    }

    var databaseURL: URL { root.appendingPathComponent("registry.sqlite") }
    var datasetsURL: URL { root.appendingPathComponent("datasets", isDirectory: true) }
    var modelsURL: URL { root.appendingPathComponent("models", isDirectory: true) }
    var keysURL: URL { root.appendingPathComponent("keys", isDirectory: true) }
    var temporaryURL: URL { root.appendingPathComponent("tmp", isDirectory: true) }
    /// External attribution plugins private to this store.
    /// Span indexes of dataset commits (`provenance index build`), named by the commits they cover.
    public var indexesURL: URL { root.appendingPathComponent("indexes", isDirectory: true) }
    public var pluginsURL: URL { root.appendingPathComponent("plugins", isDirectory: true) }

    /// Where dataset `name`'s bare repository lives.
    public func datasetRepositoryURL(_ name: String) -> URL {
        datasetsURL.appendingPathComponent("\(name).git", isDirectory: true)
    }

    // MARK: Finding and creating stores

    /// The store directory a command should use: `explicit` (`--store`), else
    /// `$PROVENANCE_STORE`, else `.provenance` in `directory` (for `init`).
    public static func initialLocation(explicit: String?, environment: [String: String], directory: URL) -> URL {
        if let explicit, !explicit.isEmpty { return URL(fileURLWithPath: explicit, relativeTo: directory).standardizedFileURL }
        if let env = environment[environmentVariable], !env.isEmpty { return URL(fileURLWithPath: env, relativeTo: directory).standardizedFileURL }
        return directory.appendingPathComponent(defaultDirectoryName, isDirectory: true)
    }

    /// Finds the store as git finds `.git`: `explicit`, else `$PROVENANCE_STORE`, else the
    /// nearest `.provenance/` walking up from `directory`.
    ///
    /// - Throws: a one-line error saying how to create a store when there is none.
    public static func locate(explicit: String?, environment: [String: String], directory: URL) throws -> URL {
        if let explicit, !explicit.isEmpty {
            let url = URL(fileURLWithPath: explicit, relativeTo: directory).standardizedFileURL
            guard isStore(url) else {
                throw ProvenanceError(.noStore, "no Provenance store at \(url.path) (--store): create one with `provenance init --store \(explicit)`")
            }
            return url
        }
        if let env = environment[environmentVariable], !env.isEmpty {
            let url = URL(fileURLWithPath: env, relativeTo: directory).standardizedFileURL
            guard isStore(url) else {
                throw ProvenanceError(.noStore, "no Provenance store at \(url.path) ($\(environmentVariable)): create one with `provenance init`")
            }
            return url
        }
        var current = directory.standardizedFileURL
        while true {
            let candidate = current.appendingPathComponent(defaultDirectoryName, isDirectory: true)
            if isStore(candidate) { return candidate }
            let parent = current.deletingLastPathComponent()
            if parent.path == current.path || current.path == "/" { break }
            current = parent
        }
        throw ProvenanceError(.noStore, "not inside a Provenance store (no .provenance/ here or in any parent): run `provenance init` to create one, or pass --store DIR")
    }

    static func isStore(_ url: URL) -> Bool {
        let fm = FileManager.default
        return fm.fileExists(atPath: url.appendingPathComponent("registry.sqlite").path)
            || fm.fileExists(atPath: url.appendingPathComponent(DatabaseLocation.fileName).path)
    }

    /// The database server this store's state lives on; nil for the embedded SQLite file.
    public var database: DatabaseLocation? { (index as? any DatabaseBacked)?.location }

    /// Creates the store layout at `root`, or brings an existing store's schema up to date.
    ///
    /// - Returns: the store, and whether it was newly created.
    ///
    /// With `database` (a `postgres://` URL), the store's state lives in that database instead of
    /// `registry.sqlite`; the database must be empty or already hold this store's schema.
    public static func initialize(at root: URL, database: String? = nil) throws -> (store: Store, created: Bool) {
        let fm = FileManager.default
        let existed = isStore(root)
        let requested = try database.map { try DatabaseLocation.parse($0) }
        if existed {
            let current = try DatabaseLocation.read(from: root)
            if let requested, current != requested.location {
                let now = current.map { "in \($0.url)" } ?? "in \(root.appendingPathComponent("registry.sqlite").path)"
                throw ProvenanceError.conflict("the store at \(root.path) keeps its state \(now); `provenance migrate --to URL` moves it to a database")
            }
        }
        var isDirectory: ObjCBool = false
        if fm.fileExists(atPath: root.path, isDirectory: &isDirectory), !isDirectory.boolValue {
            throw ProvenanceError.conflict("cannot create a store at \(root.path): a file is in the way")
        }
        do {
            try fm.createDirectory(at: root, withIntermediateDirectories: true)
            for folder in ["datasets", "models", "tmp"] {
                try fm.createDirectory(at: root.appendingPathComponent(folder), withIntermediateDirectories: true)
            }
            let keys = root.appendingPathComponent("keys")
            try fm.createDirectory(at: keys, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            try fm.setAttributes([.posixPermissions: 0o700], ofItemAtPath: keys.path)
        } catch {
            throw ProvenanceError(.storage, "cannot create a store at \(root.path): \(error.localizedDescription)")
        }
        let store = Store(root: root, index: try requested.map { requested in
            existed ? try openIndex(at: root) : try StoreBackends.open(requested.location, password: requested.password)
        } ?? openIndex(at: root))
        // The registry's signing key names the ledger (its checkpoint origin), so it exists from the start.
        _ = try store.keyStore.registryKey()
        try store.claimLedger()
        if let requested, !existed {
            // The marker file comes last: until the database holds the schema and this store's
            // key, the folder is no store.
            if let password = requested.password { try writeDatabasePassword(password, in: root) }
            try requested.location.write(to: root)
        }
        return (store, !existed)
    }

    /// Opens the store at `root`, which must exist.
    public static func open(at root: URL) throws -> Store {
        guard isStore(root) else {
            throw ProvenanceError(.noStore, "no Provenance store at \(root.path): create one with `provenance init`")
        }
        let store = Store(root: root, index: try openIndex(at: root))
        try store.claimLedger()
        return store
    }

    /// A database holds one store's ledger: the first store to open it records its checkpoint
    /// key there, and any other store folder is refused.
    func claimLedger() throws {
        guard let backed = index as? any DatabaseBacked else { return }
        try backed.claimLedger(verifierKey: try noteSigner().verifierKey)
    }

    /// The index of the existing store at `root`: its database server's, else `registry.sqlite`.
    static func openIndex(at root: URL) throws -> any RegistryIndex {
        if let location = try DatabaseLocation.read(from: root) {
            return try StoreBackends.open(location, password: try readDatabasePassword(in: root))
        }
        return try SQLiteRegistryIndex(url: root.appendingPathComponent("registry.sqlite"))
    }

    static func writeDatabasePassword(_ password: String, in root: URL) throws {
        let file = root.appendingPathComponent("keys").appendingPathComponent(DatabaseLocation.passwordFileName)
        guard FileManager.default.createFile(atPath: file.path, contents: Data(password.utf8), attributes: [.posixPermissions: 0o600]) else {
            throw ProvenanceError(.storage, "cannot write \(file.path)")
        }
    }

    /// The password `init` was given in the database URL, kept in `keys/` (mode 0600); nil when
    /// the password comes from `PGPASSWORD`, `PGPASSFILE` or `~/.pgpass`, or none is needed.
    static func readDatabasePassword(in root: URL) throws -> String? {
        let file = root.appendingPathComponent("keys").appendingPathComponent(DatabaseLocation.passwordFileName)
        guard let data = FileManager.default.contents(atPath: file.path) else { return nil }
        return String(decoding: data, as: UTF8.self)
    }

    /// The contributors of many registered dataset commits, from memory where already loaded.
    func contributors(of keys: [DatasetCommitKey]) throws -> [DatasetCommitKey: [ContributorSummary]] {
        try caches.contributors(keys) { try index.contributors(of: $0) }
    }

    // MARK: Writing

    /// Runs `body` holding the store's write lock, so that concurrent writers (several CLI
    /// processes, or the registry service) change the git repositories one at a time.
    ///
    /// A store on a database server takes the database's lock named `scope` instead (say
    /// `datasets/NAME`): replicas on other machines are serialised per repository.
    func withWriteLock<T>(_ scope: String, _ body: () throws -> T) throws -> T {
        if let locking = index as? any StoreLocking, database != nil {
            return try locking.withExclusiveLock(scope, body)
        }
        let lockPath = root.appendingPathComponent("lock").path
        let fd = Foundation.open(lockPath, O_CREAT | O_RDWR, 0o644)
        guard fd >= 0 else {
            throw ProvenanceError(.storage, "cannot open the store lock \(lockPath): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        while flock(fd, LOCK_EX) != 0 {
            if errno != EINTR {
                throw ProvenanceError(.storage, "cannot lock the store \(lockPath): \(String(cString: strerror(errno)))")
            }
        }
        defer { flock(fd, LOCK_UN) }
        return try body()
    }

    /// Whether this process is the one that settles on schedule: always, for a store of its
    /// own; for replicas sharing a database, the one holding the database's lock for it.
    public func leadsScheduledSettlement() throws -> Bool {
        guard database != nil, let locking = index as? any StoreLocking else { return true }
        return try locking.holdLock("scheduled-settlement")
    }

    /// The scope that excludes every other writer (`reindex`).
    static let wholeStoreLock = "*"

    /// A fresh folder under the store's `tmp/`, removed by the caller.
    func makeTemporaryDirectory(prefix: String) throws -> URL {
        let url = temporaryURL.appendingPathComponent("\(prefix)-\(UUID().uuidString.lowercased())", isDirectory: true)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}

/// Values derived from immutable inputs, kept for the life of a `Store` (one CLI process, or
/// the registry service). Guarded by a lock, since the service settles from many tasks.
final class StoreCaches: @unchecked Sendable {
    private let lock = NSLock()
    private var levels: [String: [InvoiceLevel]] = [:]
    private var signer: NoteSigner?
    private var versions: [ModelVersionReference: (ModelVersionRecord, ModelManifest)] = [:]
    private var contributors: [DatasetCommitKey: [ContributorSummary]] = [:]

    /// A registered commit's contributors never change either.
    func contributors(_ keys: [DatasetCommitKey], load: ([DatasetCommitKey]) throws -> [DatasetCommitKey: [ContributorSummary]]) rethrows
        -> [DatasetCommitKey: [ContributorSummary]] {
        lock.lock()
        var result: [DatasetCommitKey: [ContributorSummary]] = [:]
        var missing: [DatasetCommitKey] = []
        for key in keys {
            if let known = contributors[key] { result[key] = known } else { missing.append(key) }
        }
        lock.unlock()
        guard !missing.isEmpty else { return result }
        let loaded = try load(missing)
        lock.lock()
        for (key, list) in loaded {
            contributors[key] = list
            result[key] = list
        }
        lock.unlock()
        return result
    }

    private var inputs: [String: AttributionInput] = [:]

    /// What a plugin sees of a version (without a call): fixed once the version is registered.
    func attributionInput(_ key: String, load: () throws -> AttributionInput) rethrows -> AttributionInput {
        lock.lock()
        if let known = inputs[key] {
            lock.unlock()
            return known
        }
        lock.unlock()
        let input = try load()
        lock.lock()
        inputs[key] = input
        lock.unlock()
        return input
    }

    /// Registered model versions never change, so their decoded manifests can be kept.
    func version(_ reference: ModelVersionReference) -> (ModelVersionRecord, ModelManifest)? {
        lock.lock()
        defer { lock.unlock() }
        return versions[reference]
    }

    func setVersion(_ value: (ModelVersionRecord, ModelManifest), for reference: ModelVersionReference) {
        lock.lock()
        versions[reference] = value
        lock.unlock()
    }

    func levels(_ key: String) -> [InvoiceLevel]? {
        lock.lock()
        defer { lock.unlock() }
        return levels[key]
    }

    func setLevels(_ value: [InvoiceLevel], for key: String) {
        lock.lock()
        levels[key] = value
        lock.unlock()
    }

    private var terms: [String: SettlementTerms] = [:]
    private var termsBySHA: [String: SettlementTerms] = [:]
    private var nodes: [String: NodeRecord] = [:]

    func terms(_ key: String) -> SettlementTerms? {
        lock.lock()
        defer { lock.unlock() }
        return terms[key]
    }

    func setTerms(_ value: SettlementTerms, for key: String) {
        lock.lock()
        terms[key] = value
        termsBySHA[value.sha256] = value
        lock.unlock()
    }

    /// Terms blocks read back from the ledger (their hash checked), by SHA-256.
    func terms(sha256: String, load: () throws -> SettlementTerms?) rethrows -> SettlementTerms? {
        lock.lock()
        if let known = termsBySHA[sha256] {
            lock.unlock()
            return known
        }
        lock.unlock()
        guard let loaded = try load() else { return nil }
        lock.lock()
        termsBySHA[sha256] = loaded
        lock.unlock()
        return loaded
    }

    private var prices: [String: Price] = [:]
    private var plugins: [String: String] = [:]

    /// A model's price and active plugin as last read. Settlement prepares calls with these and
    /// checks them inside its transaction, where a stale one sends the call back to be prepared
    /// again (`SettlementCommitter`); a change made in this process forgets them at once.
    func price(_ model: String, load: () throws -> Price) rethrows -> Price {
        try remembered(\.prices, model, load: load)
    }

    func plugin(_ model: String, load: () throws -> String) rethrows -> String {
        try remembered(\.plugins, model, load: load)
    }

    /// The value under `key` in one of the dictionaries above, loaded (outside the lock) and
    /// kept when missing.
    private func remembered<Value>(_ table: ReferenceWritableKeyPath<StoreCaches, [String: Value]>, _ key: String,
                                   load: () throws -> Value) rethrows -> Value {
        lock.lock()
        if let known = self[keyPath: table][key] {
            lock.unlock()
            return known
        }
        lock.unlock()
        let loaded = try load()
        lock.lock()
        self[keyPath: table][key] = loaded
        lock.unlock()
        return loaded
    }

    func forget(model: String) {
        lock.lock()
        prices[model] = nil
        plugins[model] = nil
        lock.unlock()
    }

    func node(_ name: String) -> NodeRecord? {
        lock.lock()
        defer { lock.unlock() }
        return nodes[name]
    }

    func setNode(_ node: NodeRecord) {
        lock.lock()
        nodes[node.name] = node
        lock.unlock()
    }

    /// Live bearer tokens recently read, by their secret's SHA-256.
    let tokens = RecentTokens()

    private var ledgerSnapshot: LedgerSnapshot?
    /// Group commits that started from a snapshot, for the tests that show when one is used.
    private var snapshotsTaken = 0

    /// The last group commit's snapshot, taken away, if the store is still where it left it:
    /// a snapshot is used once, and a group that fails keeps none.
    func takeLedgerSnapshot(ifStill mark: LedgerChangeMark) -> LedgerSnapshot? {
        lock.lock()
        defer { lock.unlock() }
        guard let snapshot = ledgerSnapshot else { return nil }
        ledgerSnapshot = nil
        guard snapshot.mark == mark else { return nil }
        snapshotsTaken += 1
        return snapshot
    }

    var ledgerSnapshotsTaken: Int {
        lock.lock()
        defer { lock.unlock() }
        return snapshotsTaken
    }

    func keepLedgerSnapshot(_ snapshot: LedgerSnapshot) {
        lock.lock()
        ledgerSnapshot = snapshot
        lock.unlock()
    }

    /// Batch signatures this process has verified.
    let verifiedBatches = VerifiedBatchSignatures()

    func signer(_ make: () throws -> NoteSigner) rethrows -> NoteSigner {
        lock.lock()
        defer { lock.unlock() }
        if let signer { return signer }
        let made = try make()
        signer = made
        return made
    }
}

/// Remembers verified batch signatures, so the records of one signed batch — submitted
/// together or one by one, checked on any thread — cost one Ed25519 verification in all, and
/// the inclusion path of the batch's last record checked, so that the next stops hashing where
/// its path joins that one (`InclusionTrail`).
final class VerifiedBatchSignatures: @unchecked Sendable {
    /// A batch whose signature held: what identifies it besides its root, and the trail of the
    /// last of its records checked. A class, so that the record after it replaces the trail in
    /// place: setting the dictionary's entry again hashed the root a second time for every call
    /// (about 0.3% of a deferred run's samples, with the lookup before it 0.5%).
    private final class Batch {
        let signature: Data
        let size: Int
        let key: Data
        /// Read and replaced under the memo's lock.
        var trail: InclusionTrail

        init(signature: Data, size: Int, key: Data, trail: InclusionTrail) {
            self.signature = signature
            self.size = size
            self.key = key
            self.trail = trail
        }
    }

    private let lock = NSLock()
    /// By root: a 32-byte key to hash, where the signature, size and key it was checked with
    /// are compared (a key of all four, built and hashed for every record, cost more).
    private var verified: [Data: Batch] = [:]
    /// Batches remembered before all are forgotten: an entry with its trail (a proof's eight
    /// hashes, each a `Data` of its own, and the check's states) took 2,426-2,447 bytes of
    /// resident memory a batch over 3,000 batches of 256 (against 15-37 bytes with a limit of 1),
    /// so at most about 24 MB by default; a batch seen again after that costs one more Ed25519
    /// check. A proof read by the registry's HTTP reader now holds its hashes as slices of one
    /// buffer: in a probe of 3,000 batches (a debug build, resident memory less that of a memo
    /// of one), an entry took 1,450-1,700 bytes so, against 1,960-2,300 with eight `Data`.
    let limit: Int

    init(limit: Int = 10_000) {
        precondition(limit > 0, "a memo remembers at least one batch")
        self.limit = limit
    }

    /// How many batches are remembered now.
    var remembered: Int {
        lock.lock()
        defer { lock.unlock() }
        return verified.count
    }

    /// A node's verification key and its raw bytes, which a remembered batch is compared by:
    /// `rawRepresentation` makes a new `Data` each time it is asked (0.3% of a deferred run's
    /// samples when it was asked for every call).
    struct NodeKey {
        let key: Curve25519.Signing.PublicKey
        let raw: Data

        init(_ key: Curve25519.Signing.PublicKey) {
            self.key = key
            raw = key.rawRepresentation
        }
    }

    private var keys: [String: NodeKey] = [:]

    /// A node's verification key from its base64 form, parsed once (nil: unreadable).
    func key(_ base64: String) -> NodeKey? {
        lock.lock()
        if let known = keys[base64] {
            lock.unlock()
            return known
        }
        lock.unlock()
        guard let key = Data(base64Encoded: base64).flatMap({ try? Curve25519.Signing.PublicKey(rawRepresentation: $0) }) else { return nil }
        let made = NodeKey(key)
        lock.lock()
        if keys.count >= 10_000 { keys.removeAll(keepingCapacity: true) }
        keys[base64] = made
        lock.unlock()
        return made
    }

    /// Checks a call's signature against `key` (nil: the node's key is unreadable), for a caller
    /// that parsed the key itself (`verify`, re-deriving invoices).
    func verify(_ signature: CallSignature, of recordBytes: Data, key: Curve25519.Signing.PublicKey?) -> Bool {
        verify(signature, of: recordBytes, nodeKey: key.map(NodeKey.init))
    }

    /// Checks a call's signature against `key` (nil: the node's key is unreadable), as parsed
    /// and kept by `key(_:)`.
    func verify(_ signature: CallSignature, of recordBytes: Data, nodeKey key: NodeKey?) -> Bool {
        guard let key else { return false }
        guard case .batch(let root, let batchSignature, let index, let size, let proof) = signature else {
            return signature.verify(recordBytes: recordBytes, publicKey: key.key)
        }
        lock.lock()
        let known = verified[root].flatMap { $0.signature == batchSignature && $0.size == size && $0.key == key.raw ? $0 : nil }
        let sharing = known?.trail
        lock.unlock()
        guard let trail = MerkleTree.verifyInclusion(leafHash: MerkleTree.inlineLeafHash(recordBytes), index: index, size: size,
                                                     proof: proof, root: root, sharing: sharing)
        else { return false }
        if let known {
            lock.lock()
            known.trail = trail
            lock.unlock()
            return true
        }
        guard key.key.isValidSignature(batchSignature, for: CallSignature.batchMessage(root: root, size: size)) else { return false }
        lock.lock()
        if verified.count >= limit { verified.removeAll(keepingCapacity: true) }
        verified[root] = Batch(signature: batchSignature, size: size, key: key.raw, trail: trail)
        lock.unlock()
        return true
    }
}

/// Bearer tokens authenticated in the last `Store.authenticationCacheSeconds`.
final class RecentTokens: @unchecked Sendable {
    private let lock = NSLock()
    private var entries: [String: (token: AccessToken, readAt: UInt64)] = [:]
    private var forgotten: UInt64 = 0

    /// Changes whenever a revocation forgets every token: a read that began before it is not kept.
    var generation: UInt64 {
        lock.lock()
        defer { lock.unlock() }
        return forgotten
    }

    func token(_ hash: String, at now: UInt64) -> AccessToken? {
        lock.lock()
        defer { lock.unlock() }
        guard let entry = entries[hash], now &- entry.readAt < Store.authenticationCacheSeconds * 1_000_000_000 else { return nil }
        return entry.token
    }

    func remember(_ token: AccessToken, hash: String, at now: UInt64, ifStill generation: UInt64) {
        lock.lock()
        defer { lock.unlock() }
        guard generation == forgotten else { return }
        if entries.count >= 10_000 { entries.removeAll(keepingCapacity: true) }
        entries[hash] = (token, now)
    }

    func forgetAll() {
        lock.lock()
        entries.removeAll()
        forgotten &+= 1
        lock.unlock()
    }
}
