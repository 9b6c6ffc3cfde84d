public import Foundation
import GitKit

extension InvoiceLevel {
    /// Holds this level of an invoice's lineage against git alone, in any copies of the
    /// repositories (the auditor's clones): the model commit is the version's tag, its
    /// `provenance.json` records every dataset commit with the same manifest SHA-256 and every
    /// training log with the same SHA-256, each training log's bytes hash to it, every dataset
    /// commit exists, and the SHA-256 manifest recomputed from the commit's tree hashes to what
    /// the invoice says.
    ///
    /// - Parameters:
    ///   - model: a clone of the model's repository.
    ///   - dataset: a clone of the named dataset's repository.
    /// - Returns: the first problem, as a phrase; nil when everything holds.
    public func problemInGit(model: URL, dataset: (String) -> URL) -> String? {
        let name = "\(self.model)@\(version)"
        do {
            let modelRepository = try Repository.open(at: model)
            guard let tagged = try modelRepository.resolveCommit("refs/tags/\(version)"), tagged.hex == modelCommit else {
                return "model commit \(modelCommit.prefix(7)) of \(name) is not the commit git tags \(version)"
            }
            guard let blob = try modelRepository.blob(atPath: ModelManifest.fileName, inCommit: tagged),
                  let manifest = try? JSONDecoder().decode(ModelManifest.self, from: try modelRepository.readBlob(blob)) else {
                return "\(name) has no readable \(ModelManifest.fileName) in git"
            }
            for input in datasets where !manifest.datasets.contains(where: {
                $0.dataset == input.dataset && $0.commit == input.commit && $0.manifestSHA256 == input.manifestSHA256
            }) {
                return "\(name)'s \(ModelManifest.fileName) does not record dataset commit \(input.dataset)@\(input.commit.prefix(7)) with manifest \(input.manifestSHA256.prefix(12))…"
            }
            for sha in trainingLogSHA256 {
                guard let log = manifest.trainingLogs.first(where: { $0.sha256 == sha }) else {
                    return "training log \(sha.prefix(12))… is not recorded by \(name)'s \(ModelManifest.fileName)"
                }
                guard let logBlob = try modelRepository.blob(atPath: log.path, inCommit: tagged) else {
                    return "training log \(log.path) of \(name) is not in git"
                }
                var hasher = StreamingSHA256()
                try modelRepository.readBlob(logBlob) { hasher.update($0) }
                let actual = hasher.finalizeHex()
                guard actual == sha else { return "training log \(log.path) of \(name) hashes to \(actual.prefix(12))…, not \(sha.prefix(12))…" }
            }
            for input in datasets {
                let repository = try Repository.open(at: dataset(input.dataset))
                guard let id = ObjectID(hex: input.commit), repository.objectType(id) == .commit else {
                    return "dataset commit \(input.dataset)@\(input.commit.prefix(7)) is not in git"
                }
                let files = try repository.files(inTree: try repository.commit(id).tree)
                var cache: [String: BlobDigest] = [:]
                let actual = try Store.manifest(of: files, in: repository, cache: &cache).0.sha256()
                guard actual == input.manifestSHA256 else {
                    return "the manifest of dataset commit \(input.dataset)@\(input.commit.prefix(7)) hashes to \(actual.prefix(12))… in git, not \(input.manifestSHA256.prefix(12))…"
                }
            }
        } catch {
            return "the git repositories of \(name) cannot be read (\(error))"
        }
        return nil
    }
}

extension Invoice {
    /// Holds every span of the invoice's per-call attribution against git alone, in clones of the
    /// datasets: its text at its offset of the file in its commit, on its lines, which git blame
    /// gives to its contributor (what `provenance verify` checks on the store).
    ///
    /// - Returns: the first problem, as a phrase; nil when every span holds.
    public func spanProblemInGit(dataset: @escaping (String) -> URL) -> String? {
        var checker = SpanChecker(repositories: dataset)
        for attribution in callAttribution {
            for span in attribution.spans {
                do {
                    if let problem = try checker.check(span) { return "a span of \(attribution.level) \(problem)" }
                } catch {
                    return "a span of \(attribution.level) cannot be read from git (\(error))"
                }
            }
        }
        return nil
    }
}
