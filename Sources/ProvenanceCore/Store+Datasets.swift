public import Foundation
import GitKit

/// What `provenance add DATASET PATH...` wrote.
public struct AddResult: Codable, Sendable, Equatable {
    public var dataset: String
    public var commit: String
    /// The head the commit was made on top of; nil for a dataset's first commit.
    public var parent: String?
    public var contributor: String
    public var contributorID: String
    /// Files and bytes this commit added or replaced.
    public var files: Int
    public var bytes: UInt64
    /// Files, bytes and manifest of the dataset's whole tree at the new commit.
    public var totalFiles: Int
    public var totalBytes: UInt64
    public var manifestSHA256: String

    enum CodingKeys: String, CodingKey {
        case dataset, commit, parent, contributor, files, bytes
        case contributorID = "contributor_id"
        case totalFiles = "total_files"
        case totalBytes = "total_bytes"
        case manifestSHA256 = "manifest_sha256"
    }
}

/// What `provenance add DATASET --from URL` registered.
public struct ImportResult: Codable, Sendable, Equatable {
    public var dataset: String
    public var commit: String
    public var previousHead: String?
    /// Commits reachable from the imported commit that the dataset did not have before.
    public var newCommits: Int
    public var contributors: [ContributorSummary]
    public var files: Int
    public var bytes: UInt64
    public var manifestSHA256: String
    public var forced: Bool
    /// False when the commit was already the dataset's head (nothing was written).
    public var changed: Bool

    enum CodingKeys: String, CodingKey {
        case dataset, commit, contributors, files, bytes, forced, changed
        case previousHead = "previous_head"
        case newCommits = "new_commits"
        case manifestSHA256 = "manifest_sha256"
    }
}

/// One line of `provenance log`.
public struct LogEntry: Codable, Sendable, Equatable {
    public var commit: String
    public var author: String
    public var id: String
    public var time: Int64
    public var summary: String
    public var registered: Bool
}

/// One row of `provenance datasets`.
public struct DatasetSummary: Codable, Sendable, Equatable {
    public var name: String
    public var head: String?
    public var commits: Int
    public var contributors: Int
    public var files: Int
    public var bytes: UInt64
    public var registeredCommits: Int

    enum CodingKeys: String, CodingKey {
        case name, head, commits, contributors, files, bytes
        case registeredCommits = "registered_commits"
    }
}

/// A dataset reference resolved to a commit.
public struct ResolvedDatasetCommit: Sendable, Equatable {
    public var dataset: String
    public var commit: String
    /// True when the commit was registered by `add` (it has a manifest); false for a commit
    /// that is only in a registered commit's history.
    public var registered: Bool
}

extension Store {
    static let branch = "refs/heads/main"

    // MARK: Adding files

    /// Commits `paths` to `dataset` as one commit authored by `contributor`, on top of its head,
    /// creating the dataset on first use, and registers the commit with its manifest.
    public func add(dataset: String, paths: [String], workingDirectory: URL, destination: String?,
                    contributor: Identity, message: String?, date: Date = Date()) throws -> AddResult {
        try Names.validateDatasetName(dataset)
        let files = try DatasetFileCollector.collect(paths: paths, workingDirectory: workingDirectory,
                                                     destination: destination, storeRoot: root)
        return try add(files: files, dataset: dataset, contributor: contributor, message: message, date: date)
    }

    /// Commits `files` (from disk, or uploads staged by the registry) under the write lock.
    func add(files: [DatasetFile], dataset: String, contributor: Identity, message: String?, date: Date) throws -> AddResult {
        try withWriteLock("datasets/\(dataset)") {
            let (record, repository, created) = try openDatasetForWriting(dataset)
            do {
                return try add(files: files, to: dataset, record: record, repository: repository, creating: created,
                               contributor: contributor, message: message, date: date)
            } catch {
                if created { try? FileManager.default.removeItem(at: repository.path) }
                throw error
            }
        }
    }

    private func add(files: [DatasetFile], to dataset: String, record: DatasetRecord?, repository: Repository,
                     creating: Bool, contributor: Identity, message: String?, date: Date) throws -> AddResult {
        let parent = try record?.head.map { try objectID($0) }
        let parentTree = try parent.map { try repository.commit($0).tree }
        let editor = try TreeEditor(repository: repository, base: parentTree)

        // Refuse file/folder clashes before writing a single object. Every folder a new file
        // goes under is collected once; the per-file checks that name the clash run only when
        // one of them finds one.
        var folders = Set<Substring>()
        for file in files {
            var path = Substring(file.treePath)
            while let slash = path.lastIndex(of: "/") {
                path = path[..<slash]
                if !folders.insert(path).inserted { break }
            }
        }
        if parentTree != nil,
           folders.contains(where: { editor.file(at: String($0)) != nil }) || files.contains(where: { editor.isDirectory($0.treePath) }) {
            for file in files {
                let parts = file.treePath.split(separator: "/").map(String.init)
                for depth in 1..<max(parts.count, 1) where editor.file(at: parts[..<depth].joined(separator: "/")) != nil {
                    throw ProvenanceError.conflict("cannot add '\(file.treePath)': '\(parts[..<depth].joined(separator: "/"))' is a file in dataset '\(dataset)'")
                }
                if editor.isDirectory(file.treePath) {
                    throw ProvenanceError.conflict("cannot add '\(file.treePath)': it is a folder in dataset '\(dataset)'")
                }
            }
        }
        if files.contains(where: { folders.contains(Substring($0.treePath)) }) {
            let newPaths = Set(files.map(\.treePath))
            for file in files {
                let parts = file.treePath.split(separator: "/").map(String.init)
                for depth in 1..<max(parts.count, 1) where newPaths.contains(parts[..<depth].joined(separator: "/")) {
                    throw ProvenanceError.conflict("cannot add both '\(parts[..<depth].joined(separator: "/"))' as a file and '\(file.treePath)' under it")
                }
            }
        }

        // Many small files go into one pack with the folders that hold them; it is put in
        // place only once the tree is known to differ from the parent's.
        let packable = files.reduce(0) { count, file in
            if case .regular = file.kind, file.size <= UInt64(PackWriter.largestPackedBlob) { return count + 1 }
            return count
        }
        let pack: PackWriter?
        do {
            pack = packable >= Self.packThreshold
                ? try PackWriter(repository: repository, expectedCount: packable + folders.count + 1) : nil
        } catch let error as GitError {
            throw ProvenanceError(.git, "cannot write to dataset '\(dataset)': \(error.message)")
        }

        var added: [Manifest.Entry] = []
        var digests: [BlobDigest] = []
        var addedBytes: UInt64 = 0
        added.reserveCapacity(files.count)
        digests.reserveCapacity(files.count)
        let blobs = try Self.writeBlobs(files, into: repository, pack: pack, dataset: dataset, skipExisting: parent != nil)
        for (file, blob) in zip(files, blobs) {
            try editor.setFile(file.treePath, id: blob.id, mode: blob.mode, size: blob.size)
            added.append(Manifest.Entry(path: file.treePath, size: blob.size, sha256: blob.sha256))
            digests.append(BlobDigest(blob: blob.id.hex, sha256: blob.sha256, size: blob.size))
            addedBytes += blob.size
        }
        let tree: ObjectID
        do {
            tree = try editor.write(into: pack)
        } catch let error as GitError {
            throw ProvenanceError(.git, "cannot write to dataset '\(dataset)': \(error.message)")
        }
        if let parentTree, tree == parentTree {
            throw ProvenanceError.conflict("nothing to add: these files are already in dataset '\(dataset)' at \(parent!.short)")
        }
        if let pack {
            do {
                try pack.finish()
                try repository.refreshObjects()
            } catch let error as GitError {
                throw ProvenanceError(.git, "cannot write to dataset '\(dataset)': \(error.message)")
            }
        }

        let signature = Signature(name: contributor.name, email: contributor.email,
                                  time: Int64(date.timeIntervalSince1970.rounded(.down)),
                                  offsetMinutes: Int32(TimeZone.current.secondsFromGMT(for: date) / 60))
        let commitMessage = message ?? (files.count == 1 ? "Add \(files[0].treePath)" : "Add \(files.count) files")
        let commit: ObjectID
        do {
            commit = try repository.createCommit(tree: tree, parents: parent.map { [$0] } ?? [], author: signature,
                                                 committer: signature, message: commitMessage.hasSuffix("\n") ? commitMessage : commitMessage + "\n")
        } catch let error as GitError {
            throw ProvenanceError(.git, "cannot commit to dataset '\(dataset)': \(error.message)")
        }
        CrashPoint.afterObjectsWritten.hit()

        // The new manifest is the parent's with the added files replaced or inserted.
        var entries: [String: Manifest.Entry] = [:]
        if let parent, let data = try index.manifest(dataset: dataset, commit: parent.hex) {
            for entry in try JSONDecoder().decode(Manifest.self, from: data).files { entries[entry.path] = entry }
        }
        for entry in added { entries[entry.path] = entry }
        let manifest = Manifest(files: Array(entries.values))
        let manifestJSON = try manifest.canonicalJSON()
        let (contributors, historyCommits) = try Self.contributorSummaries(repository: repository, commit: commit)

        let registration = CommitRegistration(
            record: RegisteredCommit(dataset: dataset, commit: commit.hex, previousHead: parent?.hex, kind: .add,
                                     files: manifest.files.count, bytes: manifest.totalBytes,
                                     manifestSHA256: SHA256Digest.hex(of: manifestJSON), historyCommits: historyCommits,
                                     registeredAt: Int64(date.timeIntervalSince1970)),
            manifest: manifestJSON, contributors: contributors, blobDigests: digests,
            createsDataset: record == nil)
        try commitRegistration(registration, repository: repository, expectedHead: parent)

        return AddResult(dataset: dataset, commit: commit.hex, parent: parent?.hex, contributor: contributor.description,
                         contributorID: contributor.id, files: files.count, bytes: addedBytes,
                         totalFiles: manifest.files.count, totalBytes: manifest.totalBytes,
                         manifestSHA256: registration.record.manifestSHA256)
    }

    struct WrittenBlob {
        var id: ObjectID
        var size: UInt64
        var sha256: String
        var mode: FileMode
    }

    /// Fewer small files than this are written as loose objects; more go into one pack.
    static let packThreshold = 64

    /// Writes every file as a blob while hashing it with SHA-256 in the same pass, and returns
    /// the results in the order of `files`.
    ///
    /// Many files are spread over all cores, each worker with its own libgit2 handle (libgit2
    /// wants one per thread). With a `pack`, files of at most `PackWriter.largestPackedBlob`
    /// go into it (each worker hashes and compresses its files, only the appends are
    /// serialised), which saves creating and renaming one loose-object file per file; larger
    /// files, and all files without a pack, are streamed into loose objects.
    ///
    /// - Parameter skipExisting: leave objects the repository already has out of the pack
    ///   (worth a lookup per file only when the dataset has earlier commits).
    static func writeBlobs(_ files: [DatasetFile], into repository: Repository, pack: PackWriter?, dataset: String,
                           skipExisting: Bool = false) throws -> [WrittenBlob] {
        let workers = files.count >= 64 ? max(1, min(ProcessInfo.processInfo.activeProcessorCount, 8)) : 1
        // Workers run outside the task, where the task-local progress sink is not visible.
        let shared = BlobWriteState(count: files.count, task: "Adding to \(dataset)", sink: ProgressReport.sink)
        let total = files.count
        @Sendable func write(_ file: DatasetFile, in repository: Repository) throws -> WrittenBlob {
            switch file.kind {
            case .regular(let executable):
                var hasher = StreamingSHA256()
                let id: ObjectID
                let size: UInt64
                do {
                    (id, size) = try repository.writeBlob(fromPath: file.sourcePath, into: pack, skipExisting: skipExisting) { hasher.update($0) }
                } catch let error as GitError {
                    throw ProvenanceError(.git, "cannot store '\(file.treePath)': \(error.message)")
                }
                return WrittenBlob(id: id, size: size, sha256: hasher.finalizeHex(), mode: executable ? .executable : .blob)
            case .symlink(let target):
                let data = Data(target.utf8)
                return WrittenBlob(id: try repository.writeBlob(data), size: UInt64(data.count), sha256: SHA256Digest.hex(of: data), mode: .symlink)
            }
        }
        @Sendable func run(worker: Int, repository: Repository) {
            var index = worker
            while index < total && !shared.failed {
                do {
                    shared.store(try write(files[index], in: repository), at: index)
                } catch {
                    shared.fail(error)
                }
                index += workers
            }
        }
        if workers == 1 {
            run(worker: 0, repository: repository)
        } else {
            let path = repository.path
            DispatchQueue.concurrentPerform(iterations: workers) { worker in
                do { run(worker: worker, repository: try Repository.open(at: path)) } catch { shared.fail(error) }
            }
        }
        return try shared.results(dataset: dataset)
    }

    // MARK: Importing history

    /// Fetches commit `revision` (default: the source's HEAD) of the git repository at `source`
    /// with its history, and registers it as the dataset's new head.
    ///
    /// The fetch lands first in a quarantine repository under `tmp/`, so a refused import
    /// leaves the dataset repository untouched.
    public func importCommit(dataset: String, source: String, revision: String?, force: Bool,
                             workingDirectory: URL, date: Date = Date()) throws -> ImportResult {
        try Names.validateDatasetName(dataset)
        let url = try Self.normalizeSource(source, workingDirectory: workingDirectory)
        return try withWriteLock("datasets/\(dataset)") {
            let quarantineURL = try makeTemporaryDirectory(prefix: "import")
            defer { try? FileManager.default.removeItem(at: quarantineURL) }
            let quarantine = try Repository.createBare(at: quarantineURL)
            // A local repository's objects are copied as files (packs as they are), as `git clone`
            // does for a path; anything else goes through a libgit2 fetch.
            if url.hasPrefix("/"), try Self.copyLocalRepository(url, into: quarantine) {
                // copied
            } else { do {
                try quarantine.fetch(from: url, refspecs: ["+refs/heads/*:refs/source/heads/*", "+refs/tags/*:refs/source/tags/*", "+HEAD:refs/source/HEAD"],
                                     progress: ProgressReport.isActive ? { received, total in
                                         ProgressReport.report("Fetching \(source)", done: received, total: total, unit: "objects")
                                     } : nil)
            } catch let error as GitError {
                throw ProvenanceError.invalid("cannot fetch from '\(source)': \(error.message)")
            } }
            let target = try Self.resolveImported(revision, in: quarantine, source: source)

            let (record, repository, created) = try openDatasetForWriting(dataset)
            do {
                let previous = try record?.head.map { try objectID($0) }
                if let previous, previous == target {
                    let registered = try index.registeredCommit(dataset: dataset, commit: target.hex)
                    return ImportResult(dataset: dataset, commit: target.hex, previousHead: previous.hex, newCommits: 0,
                                        contributors: try index.contributors(dataset: dataset, commit: target.hex),
                                        files: registered?.files ?? 0, bytes: registered?.bytes ?? 0,
                                        manifestSHA256: registered?.manifestSHA256 ?? "", forced: false, changed: false)
                }
                if let previous, !force {
                    let descends = quarantine.contains(previous) ? try quarantine.isDescendant(target, of: previous) : false
                    guard descends else {
                        throw ProvenanceError.conflict("\(target.short) from '\(source)' does not descend from the head \(previous.short) of dataset '\(dataset)'; pass --force to replace the head anyway (its registered commits stay registered)")
                    }
                }
                try quarantine.updateReference("refs/import", to: target, expecting: nil, message: "import")
                do {
                    // Into a new dataset every object is copied whole; into one with history, only
                    // what it lacks is fetched (the quarantine holds the source's whole history).
                    if previous == nil, try repository.copyObjects(from: quarantine) {
                        // copied
                    } else {
                    try repository.fetch(from: quarantineURL.path, refspecs: ["+refs/import:refs/provenance/incoming"],
                                         progress: ProgressReport.isActive ? { received, total in
                                             ProgressReport.report("Copying into \(dataset)", done: received, total: total, unit: "objects")
                                         } : nil)
                    }
                } catch let error as GitError {
                    throw ProvenanceError(.git, "cannot copy the imported commits into dataset '\(dataset)': \(error.message)")
                }
                defer { try? repository.deleteReference("refs/provenance/incoming") }
                CrashPoint.afterObjectsWritten.hit()

                let (manifest, digests) = try manifest(of: target, in: repository, dataset: dataset)
                let (contributors, historyCommits) = try Self.contributorSummaries(repository: repository, commit: target)
                // One walk of the whole history is enough: without a previous head, it is all new.
                let newCommits = try previous.map { try repository.history(from: [target], hiding: [$0]).count } ?? historyCommits
                let registration = CommitRegistration(
                    record: RegisteredCommit(dataset: dataset, commit: target.hex, previousHead: previous?.hex, kind: .import,
                                             files: manifest.files.count, bytes: manifest.totalBytes,
                                             manifestSHA256: try manifest.sha256(), historyCommits: historyCommits,
                                             registeredAt: Int64(date.timeIntervalSince1970)),
                    manifest: try manifest.canonicalJSON(), contributors: contributors, blobDigests: digests,
                    createsDataset: record == nil)
                let forced = try previous.map { try !repository.isDescendant(target, of: $0) } ?? false
                try commitRegistration(registration, repository: repository, expectedHead: previous)
                return ImportResult(dataset: dataset, commit: target.hex, previousHead: previous?.hex, newCommits: newCommits,
                                    contributors: contributors, files: manifest.files.count, bytes: manifest.totalBytes,
                                    manifestSHA256: registration.record.manifestSHA256, forced: forced, changed: true)
            } catch {
                if created { try? FileManager.default.removeItem(at: repository.path) }
                throw error
            }
        }
    }

    /// Copies the objects of the local repository at `path` into `quarantine` and mirrors its
    /// branches, tags and HEAD under `refs/source/`, as a fetch with the import's refspecs would.
    /// Returns false (nothing copied) when the repository cannot be copied as files.
    static func copyLocalRepository(_ path: String, into quarantine: Repository) throws -> Bool {
        guard let source = try? Repository.open(at: URL(fileURLWithPath: path)) else { return false }
        ProgressReport.report("Copying objects from \(path)", done: 0, total: 1, unit: "repositories")
        guard try quarantine.copyObjects(from: source) else { return false }
        for (pattern, prefix) in [("refs/heads/*", "refs/source/heads/"), ("refs/tags/*", "refs/source/tags/")] {
            for name in try source.referenceNames(matching: pattern) {
                guard let target = try source.referenceTarget(name) else { continue }
                let local = prefix + name.dropFirst(pattern.count - 1)
                try quarantine.updateReference(local, to: target, expecting: nil, message: "import")
            }
        }
        if let head = try source.head() {
            try quarantine.updateReference("refs/source/HEAD", to: head, expecting: nil, message: "import")
        }
        ProgressReport.report("Copying objects from \(path)", done: 1, total: 1, unit: "repositories")
        return true
    }

    /// A local path becomes an absolute path that must be a git repository; URLs pass through.
    static func normalizeSource(_ source: String, workingDirectory: URL) throws -> String {
        guard !source.isEmpty else { throw ProvenanceError.invalid("--from needs a git repository path or URL") }
        var path: String?
        if source.hasPrefix("file://") {
            path = String(source.dropFirst("file://".count))
        } else if !source.contains("://") && !source.contains("@") || source.hasPrefix("/") || source.hasPrefix(".") {
            path = URL(fileURLWithPath: source, relativeTo: workingDirectory).standardizedFileURL.path
        }
        guard let path else { return source }
        guard FileManager.default.fileExists(atPath: path), (try? Repository.open(at: URL(fileURLWithPath: path))) != nil else {
            throw ProvenanceError.invalid("'\(source)' is not a git repository")
        }
        return path
    }

    /// Resolves `revision` among what the quarantine fetched: a commit id, or a branch or tag of the source.
    static func resolveImported(_ revision: String?, in quarantine: Repository, source: String) throws -> ObjectID {
        guard let revision else {
            if let head = try quarantine.referenceTarget("refs/source/HEAD") { return head }
            throw ProvenanceError.invalid("'\(source)' has no commits (its HEAD is unborn); pass --rev to pick one")
        }
        for candidate in ["refs/source/heads/\(revision)", "refs/source/tags/\(revision)"] {
            if let id = try quarantine.resolveCommit(candidate) { return id }
        }
        if !revision.hasPrefix("refs/"), let id = try quarantine.resolveCommit(revision) { return id }
        throw ProvenanceError.notFound("unknown revision '\(revision)' in '\(source)': give a branch, tag or commit id it has")
    }

    // MARK: Registration and recovery

    /// Writes the registration and moves the branch in one step: the index transaction commits
    /// only once the branch points at the new commit. A crash between the two leaves the branch
    /// ahead of the index, which the next write to the dataset rolls back.
    ///
    /// Every registered commit also gets a reference `refs/provenance/registered/<id>`, so that
    /// it stays reachable when a forced import replaces the head, and so that `reindex` can tell
    /// from the repository alone which commits were registered.
    private func commitRegistration(_ registration: CommitRegistration, repository: Repository,
                                    expectedHead: ObjectID?) throws {
        let commit = try objectID(registration.record.commit)
        let current = try repository.referenceTarget(Self.branch)
        try index.register(registration) {
            let pin = Self.registeredReference(commit)
            if try repository.referenceTarget(pin) == nil {
                try repository.updateReference(pin, to: commit, expecting: nil, message: "provenance: registered")
            }
            try repository.updateReference(Self.branch, to: commit, expecting: current,
                                           message: "provenance: register \(commit.short)")
            CrashPoint.afterReferenceUpdated.hit()
        }
        CrashPoint.afterIndexCommitted.hit()
    }

    static let registeredPrefix = "refs/provenance/registered/"

    static func registeredReference(_ commit: ObjectID) -> String { registeredPrefix + commit.hex }

    /// Opens (or creates) a dataset's repository for a write and makes its branch agree with
    /// the index, undoing whatever a crashed write left behind.
    func openDatasetForWriting(_ name: String) throws -> (record: DatasetRecord?, repository: Repository, created: Bool) {
        let record = try index.dataset(named: name)
        let url = datasetRepositoryURL(name)
        var created = false
        let repository: Repository
        if FileManager.default.fileExists(atPath: url.path) {
            do { repository = try Repository.open(at: url) } catch let error as GitError {
                throw ProvenanceError(.git, "dataset repository \(url.path) cannot be opened: \(error.message)")
            }
        } else {
            if record != nil {
                throw ProvenanceError(.git, "dataset '\(name)' is registered but its repository \(url.path) is missing")
            }
            repository = try Repository.createBare(at: url)
            created = true
            CrashPoint.afterRepositoryCreated.hit()
        }
        let registered = try record?.head.map { try objectID($0) }
        let actual = try repository.referenceTarget(Self.branch)
        if actual != registered {
            if let registered {
                guard repository.contains(registered) else {
                    throw ProvenanceError(.git, "dataset '\(name)': registered head \(registered.short) is missing from \(url.path)")
                }
                try repository.updateReference(Self.branch, to: registered, expecting: actual, message: "provenance: recover registered head")
            } else {
                try repository.deleteReference(Self.branch)
            }
        }
        try repository.deleteReference("refs/provenance/incoming")
        // Pins of registrations whose index transaction never committed.
        let registeredCommits = Set(try index.registeredCommits(dataset: name).map(\.commit))
        for pin in try repository.referenceNames(matching: Self.registeredPrefix + "*")
        where !registeredCommits.contains(String(pin.dropFirst(Self.registeredPrefix.count))) {
            try repository.deleteReference(pin)
        }
        return (record, repository, created)
    }

    func objectID(_ hex: String) throws -> ObjectID {
        guard let id = ObjectID(hex: hex) else { throw ProvenanceError(.storage, "the registry index holds a malformed commit id '\(hex)'") }
        return id
    }

    // MARK: Manifests and contributors

    /// The manifest of `commit`'s whole tree, hashing only blobs whose digest is not cached
    /// in the index.
    func manifest(of commit: ObjectID, in repository: Repository, dataset: String) throws -> (Manifest, [BlobDigest]) {
        let files = try repository.files(inTree: try repository.commit(commit).tree).filter { $0.mode != .submodule }
        var cache = try index.blobDigests(dataset: dataset, blobs: Array(Set(files.map(\.id.hex))))
        return try Self.manifest(of: files, in: repository, cache: &cache)
    }

    /// The manifest of `files`, taking digests from `cache` and adding the ones it computes.
    static func manifest(of files: [TreeFile], in repository: Repository, cache: inout [String: BlobDigest]) throws -> (Manifest, [BlobDigest]) {
        var fresh: [BlobDigest] = []
        var entries: [Manifest.Entry] = []
        for file in files where file.mode != .submodule {
            let digest: BlobDigest
            if let cached = cache[file.id.hex] {
                digest = cached
            } else {
                var hasher = StreamingSHA256()
                var size: UInt64 = 0
                try repository.readBlob(file.id) { chunk in
                    hasher.update(chunk)
                    size += UInt64(chunk.count)
                }
                digest = BlobDigest(blob: file.id.hex, sha256: hasher.finalizeHex(), size: size)
                cache[file.id.hex] = digest
                fresh.append(digest)
            }
            entries.append(Manifest.Entry(path: file.path, size: digest.size, sha256: digest.sha256))
        }
        return (Manifest(files: entries), fresh)
    }

    /// The contributors of every commit reachable from `commit`, with `commit`'s own
    /// `.mailmap` applied, and the number of commits in that history.
    static func contributorSummaries(repository: Repository, commit: ObjectID) throws -> ([ContributorSummary], Int) {
        let mailmap = try mailmap(at: commit, in: repository)
        var byID: [String: ContributorSummary] = [:]
        var order: [String] = []
        var count = 0
        try repository.walkHistory(from: [commit]) { id in
            count += 1
            if count % 256 == 0 { ProgressReport.report("Reading contributors", done: count, unit: "commits") }
            let author = try repository.commit(id).author
            let (name, email) = mailmap.resolve(name: author.name, email: author.email)
            let key = email.lowercased()
            if byID[key] == nil {
                byID[key] = ContributorSummary(id: key, name: name, email: email, commits: 0)
                order.append(key)
            }
            byID[key]!.commits += 1
            return true
        }
        let contributors = order.compactMap { byID[$0] }.sorted { ($0.commits, $1.id) > ($1.commits, $0.id) }
        return (contributors, count)
    }

    /// The `.mailmap` in `commit`'s tree, or an empty mailmap.
    static func mailmap(at commit: ObjectID, in repository: Repository) throws -> Mailmap {
        let tree = try repository.commit(commit).tree
        guard let blob = try repository.blob(atPath: ".mailmap", inTree: tree) else { return Mailmap() }
        return Mailmap(contents: try repository.readBlob(blob))
    }

    // MARK: Reading

    /// Opens a registered dataset's repository for reading.
    func openDataset(_ name: String) throws -> (DatasetRecord, Repository) {
        try Names.validateDatasetName(name)
        guard let record = try index.dataset(named: name) else {
            throw ProvenanceError.notFound("unknown dataset '\(name)': `provenance datasets` lists them; `provenance add \(name) PATH...` creates it")
        }
        do { return (record, try Repository.open(at: datasetRepositoryURL(name))) } catch let error as GitError {
            throw ProvenanceError(.git, "dataset '\(name)': cannot open its repository: \(error.message)")
        }
    }

    /// Resolves `NAME[@REV]` to a commit in the dataset's registered history.
    ///
    /// REV may be a full or abbreviated commit id, a tag or a branch; without it, the
    /// registered head. A commit outside every registered commit's history is refused.
    public func resolve(_ reference: RevisionReference) throws -> ResolvedDatasetCommit {
        let (record, repository) = try openDataset(reference.name)
        return try resolve(reference, record: record, repository: repository)
    }

    func resolve(_ reference: RevisionReference, record: DatasetRecord, repository: Repository) throws -> ResolvedDatasetCommit {
        guard let headHex = record.head else {
            throw ProvenanceError.notFound("dataset '\(reference.name)' has no registered commit yet")
        }
        guard let revision = reference.revision else {
            return ResolvedDatasetCommit(dataset: reference.name, commit: headHex, registered: true)
        }
        guard let id = try repository.resolveCommit(revision) else {
            throw ProvenanceError.notFound("unknown revision '\(revision)' in dataset '\(reference.name)': `provenance log \(reference.name)` lists its commits")
        }
        if try index.registeredCommit(dataset: reference.name, commit: id.hex) != nil {
            return ResolvedDatasetCommit(dataset: reference.name, commit: id.hex, registered: true)
        }
        let tips = try index.registeredCommits(dataset: reference.name).map { try objectID($0.commit) }
        for tip in tips where try repository.isDescendant(tip, of: id) {
            return ResolvedDatasetCommit(dataset: reference.name, commit: id.hex, registered: false)
        }
        throw ProvenanceError.notFound("revision '\(revision)' of dataset '\(reference.name)' (\(id.short)) is not in any registered history")
    }

    /// The contributors of `NAME[@REV]`: one entry per contributor id, most commits first.
    public func contributors(of reference: RevisionReference) throws -> [ContributorSummary] {
        let (record, repository) = try openDataset(reference.name)
        let resolved = try resolve(reference, record: record, repository: repository)
        if resolved.registered {
            return try index.contributors(dataset: resolved.dataset, commit: resolved.commit)
        }
        return try Self.contributorSummaries(repository: repository, commit: try objectID(resolved.commit)).0
    }

    /// The history of `NAME[@REV]`, newest first, with mailmapped authors.
    public func log(of reference: RevisionReference, limit: Int? = nil) throws -> [LogEntry] {
        let (record, repository) = try openDataset(reference.name)
        let resolved = try resolve(reference, record: record, repository: repository)
        let tip = try objectID(resolved.commit)
        let mailmap = try Self.mailmap(at: tip, in: repository)
        let registered = Set(try index.registeredCommits(dataset: reference.name).map(\.commit))
        var entries: [LogEntry] = []
        try repository.walkHistory(from: [tip]) { id in
            let commit = try repository.commit(id)
            let (name, email) = mailmap.resolve(name: commit.author.name, email: commit.author.email)
            entries.append(LogEntry(commit: id.hex, author: "\(name) <\(email)>", id: email.lowercased(),
                                    time: commit.author.time, summary: commit.summary, registered: registered.contains(id.hex)))
            return limit.map { entries.count < $0 } ?? true
        }
        return entries
    }

    /// Every dataset with its head's figures.
    public func datasetSummaries() throws -> [DatasetSummary] {
        try index.datasets().map { record in
            let head = try record.head.flatMap { try index.registeredCommit(dataset: record.name, commit: $0) }
            let contributors = try record.head.map { try index.contributors(dataset: record.name, commit: $0).count } ?? 0
            return DatasetSummary(name: record.name, head: record.head, commits: head?.historyCommits ?? 0,
                                  contributors: contributors, files: head?.files ?? 0, bytes: head?.bytes ?? 0,
                                  registeredCommits: try index.registeredCommits(dataset: record.name).count)
        }
    }

    /// The canonical manifest of a registered commit.
    public func manifest(of reference: RevisionReference) throws -> (commit: String, manifest: Data) {
        let resolved = try resolve(reference)
        guard resolved.registered, let data = try index.manifest(dataset: resolved.dataset, commit: resolved.commit) else {
            throw ProvenanceError.notFound("\(reference) (\(resolved.commit.prefix(7))) is not a registered commit, so it has no manifest")
        }
        return (resolved.commit, data)
    }
}

/// What the blob-writing workers share: one slot per file, the first error, the count done.
private final class BlobWriteState: @unchecked Sendable {
    private let lock = NSLock()
    private var slots: [Store.WrittenBlob?]
    private var error: (any Error)?
    private var done = 0

    private let sink: (@Sendable (ProgressEvent) -> Void)?

    private let task: String

    init(count: Int, task: String, sink: (@Sendable (ProgressEvent) -> Void)?) {
        slots = Array(repeating: nil, count: count)
        self.task = task
        self.sink = sink
    }

    var failed: Bool { lock.lock(); defer { lock.unlock() }; return error != nil }

    func store(_ blob: Store.WrittenBlob, at index: Int) {
        lock.lock()
        slots[index] = blob
        done += 1
        let count = done
        lock.unlock()
        if count % 64 == 0 || count == slots.count {
            sink?(ProgressEvent(task: task, done: count, total: slots.count, unit: "files"))
        }
    }

    func fail(_ error: any Error) {
        lock.lock()
        if self.error == nil { self.error = error }
        lock.unlock()
    }

    func results(dataset: String) throws -> [Store.WrittenBlob] {
        if let error { throw error }
        return slots.map { $0! }
    }
}
