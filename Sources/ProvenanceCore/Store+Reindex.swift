import Foundation
import GitKit

/// What `provenance reindex` rebuilt.
public struct ReindexReport: Codable, Sendable, Equatable {
    public var datasets: Int
    public var registeredCommits: Int
    public var models: Int
    public var modelVersions: Int
    /// Span indexes rebuilt (by the CLI, for models that use span-match).
    public var spanIndexes: Int?

    enum CodingKeys: String, CodingKey {
        case datasets, models
        case spanIndexes = "span_indexes"
        case registeredCommits = "registered_commits"
        case modelVersions = "model_versions"
    }
}

extension Store {
    /// Rebuilds the index of datasets and models from the git repositories alone: registered
    /// dataset commits from their `refs/provenance/registered/` pins (manifests rehashed from
    /// the blobs, contributors re-read from history), model versions from their tags and
    /// `provenance.json`. Everything is replaced in one transaction.
    public func reindex() throws -> ReindexReport {
        try withWriteLock(Store.wholeStoreLock) {
            var registrations: [CommitRegistration] = []
            var heads: [String: String] = [:]
            for (name, url) in try repositories(in: datasetsURL) {
                let repository = try Repository.open(at: url)
                guard let head = try repository.referenceTarget(Self.branch) else { continue }
                var pinned = Set(try repository.referenceNames(matching: Self.registeredPrefix + "*").compactMap {
                    ObjectID(hex: String($0.dropFirst(Self.registeredPrefix.count)))
                })
                pinned.insert(head)
                // Oldest first, as they were registered: reverse topological order of the history.
                let ordered = try repository.history(from: Array(pinned)).reversed().filter { pinned.contains($0) }
                var cache: [String: BlobDigest] = [:]
                var previous: ObjectID?
                for commit in ordered {
                    let files = try repository.files(inTree: try repository.commit(commit).tree)
                    let (manifest, digests) = try Self.manifest(of: files, in: repository, cache: &cache)
                    let (contributors, historyCommits) = try Self.contributorSummaries(repository: repository, commit: commit)
                    let parents = try repository.commit(commit).parents
                    let kind: RegisteredCommit.Kind = parents.count <= 1 && parents.first == previous ? .add : .import
                    registrations.append(CommitRegistration(
                        record: RegisteredCommit(dataset: name, commit: commit.hex, previousHead: previous?.hex, kind: kind,
                                                 files: manifest.files.count, bytes: manifest.totalBytes,
                                                 manifestSHA256: try manifest.sha256(), historyCommits: historyCommits,
                                                 registeredAt: try repository.commit(commit).committer.time),
                        manifest: try manifest.canonicalJSON(), contributors: contributors, blobDigests: digests,
                        createsDataset: false))
                    previous = commit
                }
                heads[name] = head.hex
            }

            var versions: [ModelVersionRegistration] = []
            var pluginChanges: [PluginChange] = []
            var modelCount = 0
            for (name, url) in try repositories(in: modelsURL) {
                let repository = try Repository.open(at: url)
                guard let head = try repository.referenceTarget(Self.branch) else { continue }
                var tagsByCommit: [ObjectID: [String]] = [:]
                for tag in try repository.tagNames() {
                    if let commit = try repository.resolveCommit("refs/tags/\(tag)") { tagsByCommit[commit, default: []].append(tag) }
                }
                var modelVersions: [ModelVersionRegistration] = []
                for commit in try repository.history(from: [head]).reversed() {
                    guard let tags = tagsByCommit[commit] else { continue }
                    let read = try repository.commit(commit)
                    guard let blob = try repository.blob(atPath: ModelManifest.fileName, inTree: read.tree) else {
                        throw ProvenanceError(.git, "model '\(name)': commit \(commit.short) has no \(ModelManifest.fileName)")
                    }
                    let data = try repository.readBlob(blob)
                    let manifest: ModelManifest
                    do { manifest = try JSONDecoder().decode(ModelManifest.self, from: data) } catch {
                        throw ProvenanceError(.git, "model '\(name)': \(ModelManifest.fileName) at \(commit.short) cannot be read: \(error)")
                    }
                    guard manifest.model == name, tags.contains(manifest.version) else {
                        throw ProvenanceError(.git, "model '\(name)': commit \(commit.short) is tagged \(tags.joined(separator: ", ")) but its manifest names \(manifest.reference)")
                    }
                    modelVersions.append(ModelVersionRegistration(
                        version: ModelVersionRecord(model: name, version: manifest.version, commit: commit.hex, manifest: data,
                                                    registeredAt: read.committer.time),
                        plugin: manifest.plugin, pluginChange: nil))
                }
                if !modelVersions.isEmpty { modelCount += 1 }
                versions += modelVersions
                if let tip = try repository.referenceTarget(Self.pluginReference) {
                    for commit in try repository.history(from: [tip]).reversed() {
                        let read = try repository.commit(commit)
                        guard let blob = try repository.blob(atPath: "plugin.json", inTree: read.tree),
                              let body = try? JSONDecoder().decode([String: String].self, from: try repository.readBlob(blob)),
                              let plugin = body["plugin"]
                        else { throw ProvenanceError(.git, "model '\(name)': plugin history commit \(commit.short) has no readable plugin.json") }
                        pluginChanges.append(PluginChange(model: name, plugin: plugin, changedAt: read.author.time,
                                                          changedBy: "\(read.author.name) <\(read.author.email)>", commit: commit.hex))
                    }
                }
            }
            try index.rebuild(datasets: registrations, datasetHeads: heads, models: versions, pluginChanges: pluginChanges)
            return ReindexReport(datasets: heads.count, registeredCommits: registrations.count, models: modelCount,
                                 modelVersions: versions.count)
        }
    }

    /// The `NAME.git` repositories in `folder`, by name.
    private func repositories(in folder: URL) throws -> [(String, URL)] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        return names.sorted().compactMap { entry in
            guard entry.hasSuffix(".git") else { return nil }
            let name = String(entry.dropLast(4))
            guard Names.isValidName(name) else { return nil }
            return (name, folder.appendingPathComponent(entry, isDirectory: true))
        }
    }
}
