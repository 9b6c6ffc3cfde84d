public import Foundation
import GitKit

/// How much of one file each contributor authored, as `git blame` assigns its lines.
public struct FileAuthorship: Sendable, Equatable {
    public struct Amount: Sendable, Equatable {
        public var bytes: UInt64
        public var lines: UInt64

        public init(bytes: UInt64, lines: UInt64) {
            self.bytes = bytes
            self.lines = lines
        }
    }

    public var path: String
    public var blob: String
    /// Keyed by contributor id.
    public var amounts: [String: Amount]

    public init(path: String, blob: String, amounts: [String: Amount]) {
        self.path = path
        self.blob = blob
        self.amounts = amounts
    }
}

/// Where per-file authorship of dataset commits is kept between runs (the registry index).
public protocol AuthorshipCache: Sendable {
    func authorship(dataset: String, commit: String) throws -> [FileAuthorship]?
    func storeAuthorship(_ files: [FileAuthorship], dataset: String, commit: String) throws
    /// Every commit of `dataset` whose authorship is cached, so a walk of its history knows
    /// where it may stop without asking commit by commit.
    func authorshipCommits(dataset: String) throws -> Set<String>
}

extension AuthorshipCache {
    /// Without a list, no ancestor's results are reused (only the commit's own).
    public func authorshipCommits(dataset: String) throws -> Set<String> { [] }
}

/// Computes which contributor authored each byte of a dataset commit.
///
/// Text files are blamed line by line as `git blame` does by default (`HistoryBlame`: renames
/// followed, merges passed to every parent that has a line); a line's bytes include its
/// newline. A binary file (a NUL byte in its first 8,000 bytes, git's own test) or a symbolic
/// link goes whole to the last commit that changed its content, following renames as blame
/// does, and counts no lines. Submodules count not at all. Authors are mapped through the
/// commit's `.mailmap` to contributor ids.
public struct DatasetAuthorship {
    let repository: Repository
    let commit: ObjectID
    let mailmap: Mailmap
    let mailmapBlob: ObjectID?
    private var authorCache: [ObjectID: String] = [:]

    public init(repository: URL, commit: String) throws {
        self.repository = try Repository.open(at: repository)
        guard let id = ObjectID(hex: commit) else { throw ProvenanceError.invalid("'\(commit)' is not a commit id") }
        self.commit = id
        self.mailmap = try Store.mailmap(at: id, in: self.repository)
        self.mailmapBlob = try self.repository.blob(atPath: ".mailmap", inCommit: id)
    }

    /// The contributor id of `commit`'s author.
    mutating func contributor(of commit: ObjectID) throws -> String {
        if let id = authorCache[commit] { return id }
        let author = try repository.commit(commit).author
        let id = mailmap.resolve(name: author.name, email: author.email).email.lowercased()
        authorCache[commit] = id
        return id
    }

    /// Every file's authorship, from `cache` when this commit is cached. Otherwise one walk of
    /// the history blames every file, and stops early for each file that reaches a cached
    /// commit unchanged, as long as that commit's `.mailmap` is this one's (cached amounts
    /// are keyed by contributor ids, which the mailmap decides).
    public mutating func files(dataset: String, cache: (any AuthorshipCache)?) throws -> [FileAuthorship] {
        if let cached = try cache?.authorship(dataset: dataset, commit: commit.hex) { return cached }
        let tree = try repository.commit(commit).tree
        let files = try repository.files(inTree: tree).filter { $0.mode != .submodule }
        var targets: [BlameTarget] = []
        targets.reserveCapacity(files.count)
        for file in files {
            targets.append(BlameTarget(path: file.path, blob: file.id, mode: file.mode,
                                       treatment: file.mode == .symlink ? .whole : .wholeIfBinary))
        }

        let cachedCommits = try cache?.authorshipCommits(dataset: dataset) ?? []
        var offered: [ObjectID: [String: FileAuthorship]] = [:]
        let repository = self.repository
        let mailmapBlob = self.mailmapBlob
        let sink = ProgressReport.sink
        // One walk per core, each over a share of the files (the walks cannot disagree).
        let workers = targets.count >= 8 ? min(ProcessInfo.processInfo.activeProcessorCount, 8) : 1
        let result = try HistoryBlame(repository: repository).blame(targets, at: commit, workers: workers, reusable: { candidate in
            guard let cache, cachedCommits.contains(candidate.hex),
                  try repository.blob(atPath: ".mailmap", inCommit: candidate) == mailmapBlob,
                  let rows = try cache.authorship(dataset: dataset, commit: candidate.hex)
            else { return nil }
            var byPath: [String: FileAuthorship] = [:]
            for row in rows { byPath[row.path] = row }
            offered[candidate] = byPath
            return byPath.compactMapValues { ObjectID(hex: $0.blob) }
        }, progress: { walked in
            // Called from the walks' threads, where the task-local sink is not visible.
            if walked % 16 == 0, let sink { sink(ProgressEvent(task: "Blaming \(dataset)", done: walked, total: nil, unit: "commits walked")) }
        })

        var authors: [String] = []
        for commit in result.commits { authors.append(try contributor(of: commit)) }
        var output: [FileAuthorship] = []
        output.reserveCapacity(files.count)
        for (index, file) in files.enumerated() {
            switch result.files[index] {
            case .reused(let ancestor, let path):
                var row = offered[ancestor]![path]!
                row.path = file.path
                output.append(row)
            case .spans(let spans):
                var amounts: [String: FileAuthorship.Amount] = [:]
                for span in spans {
                    amounts[authors[span.commit], default: .init(bytes: 0, lines: 0)].bytes += span.bytes
                    amounts[authors[span.commit], default: .init(bytes: 0, lines: 0)].lines += UInt64(span.lines)
                }
                output.append(FileAuthorship(path: file.path, blob: file.id.hex, amounts: amounts))
            }
        }
        try cache?.storeAuthorship(output, dataset: dataset, commit: commit.hex)
        return output
    }

    /// Consecutive lines of a file that one contributor wrote, as git blame assigns them, with
    /// the author time of the commit that last changed them.
    public struct LineRun: Sendable, Equatable {
        /// 0-based first line.
        public var start: Int
        public var lines: Int
        /// The bytes of those lines, newlines included.
        public var bytes: UInt64
        public var contributor: String
        /// Seconds since the epoch: when the lines were written.
        public var time: Int64
    }

    /// The line runs of each of `files` (text files of this commit: path, blob id, executable bit), in one
    /// walk of the history for all of them, on `workers` threads.
    public mutating func lineRuns(of files: [(path: String, blob: String, executable: Bool)], workers: Int,
                                  progress: (@Sendable (Int) -> Void)? = nil) throws -> [[LineRun]] {
        let targets = try files.map { file in
            guard let blob = ObjectID(hex: file.blob) else { throw ProvenanceError.invalid("'\(file.blob)' is not a blob id") }
            return BlameTarget(path: file.path, blob: blob, mode: file.executable ? .executable : .blob, treatment: .lines)
        }
        let result = try HistoryBlame(repository: repository).blame(targets, at: commit, workers: max(1, workers), reusable: { _ in nil },
                                                                    progress: { walked in progress?(walked) })
        var authors: [(String, Int64)] = []
        for id in result.commits {
            let commit = try repository.commit(id)
            authors.append((try contributor(of: id), commit.author.time))
        }
        return result.files.map { file in
            guard case .spans(let spans) = file else { return [] }
            return spans.map { LineRun(start: $0.start, lines: $0.lines, bytes: $0.bytes, contributor: authors[$0.commit].0, time: authors[$0.commit].1) }
        }
    }

    /// The contributor id of each line of `path` (0-based), as git blame assigns them.
    public mutating func lineAuthors(path: String) throws -> [String] {
        let tree = try repository.commit(commit).tree
        guard let file = try repository.files(inTree: tree).first(where: { $0.path == path }), file.mode != .submodule else {
            throw ProvenanceError.notFound("no file '\(path)' at \(commit.short)")
        }
        let result = try HistoryBlame(repository: repository).blame(
            [BlameTarget(path: path, blob: file.id, mode: file.mode, treatment: .lines)], at: commit, progress: { walked in
                if walked % 16 == 0 { ProgressReport.report("Blaming \(path)", done: walked, unit: "commits") }
            })
        guard case .spans(let spans) = result.files[0] else { return [] }
        var authors: [String] = []
        for span in spans {
            let id = try contributor(of: result.commits[span.commit])
            authors.append(contentsOf: repeatElement(id, count: span.lines))
        }
        return authors
    }

    /// git's test for binary content: a NUL byte in the first 8,000 bytes.
    public static func isBinary(_ content: Data) -> Bool {
        content.prefix(8000).contains(0)
    }
}
