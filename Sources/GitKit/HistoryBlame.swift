internal import CGit2
public import Foundation

/// A file whose lines are to be blamed.
public struct BlameTarget: Sendable {
    public var path: String
    public var blob: ObjectID
    public var mode: FileMode
    public var treatment: Treatment

    /// How a file's content is blamed.
    public enum Treatment: Sendable {
        /// Line by line.
        case lines
        /// Whole, to the last commit that changed its content (following renames as blame
        /// does), like a single line that every change replaces.
        case whole
        /// Whole when git would call it binary (a NUL byte in its first 8,000 bytes), else by line.
        case wholeIfBinary
    }

    public init(path: String, blob: ObjectID, mode: FileMode, treatment: Treatment) {
        self.path = path
        self.blob = blob
        self.mode = mode
        self.treatment = treatment
    }
}

/// Consecutive lines of a target that one commit last changed.
public struct BlameSpan: Sendable, Equatable {
    /// Index into `HistoryBlame.Result.commits`.
    public var commit: Int
    /// 0-based first line in the target.
    public var start: Int
    public var lines: Int
    /// The bytes of those lines, newlines included (the whole size for a whole file).
    public var bytes: UInt64
}

/// Blames every line of many files of one commit in one walk of the history, as `git blame`
/// (git 2.39, default options) assigns lines:
///
/// - A commit passes a file's lines to the first parent that has the same content at the same
///   path, or else at a path it was renamed from (exact renames, a unique basename at 75%
///   similarity, otherwise the best match at 50%: diffcore's rules for one followed path).
/// - Otherwise each parent that has the file (same path first, then renamed) takes, in parent
///   order, the lines that xdiff (Myers with the indent heuristic) finds unchanged against it;
///   a parent whose content equals an earlier parent's takes nothing.
/// - What no parent takes is blamed on the commit.
///
/// Files share the walk: one tree diff per commit and parent serves every file, and commits
/// no file's lines reach are never read. Memory holds the pending line ranges, a few blobs at
/// a time and the commits read.
public final class HistoryBlame {
    /// The outcome for each target, in the order given.
    public struct Result {
        public enum File {
            /// Spans covering every line (one span for a whole file; none for an empty file).
            case spans([BlameSpan])
            /// The whole file, unchanged, reached this commit at this path, which `reusable`
            /// offered: its blame there is its blame here.
            case reused(commit: ObjectID, path: String)
        }

        public var files: [File]
        /// The commits spans refer to.
        public var commits: [ObjectID]
    }

    private let repository: Repository

    public init(repository: Repository) {
        self.repository = repository
    }

    // MARK: State of one walk

    private struct Entry {
        var file: Int32
        /// First line in the final file.
        var finalStart: Int32
        /// First line in the origin's blob.
        var originStart: Int32
        var count: Int32
    }

    private final class Origin {
        let path: String
        let blob: RawOID
        let mode: UInt32
        var entries: [Entry] = []

        init(path: String, blob: RawOID, mode: UInt32) {
            self.path = path
            self.blob = blob
            self.mode = mode
        }
    }

    private struct CommitInfo {
        var tree: RawOID
        var parents: [RawOID]
        var time: Int64
    }

    private struct Target {
        var blob: RawOID
        var whole: Bool
        var lineCount: Int
        /// Byte offset where each line starts, plus the size at the end.
        var lineStarts: [UInt64]
    }

    /// Blames `targets` as of `commit`.
    ///
    /// - Parameters:
    ///   - reusable: asked once for each commit the walk reaches; returns the paths (with their
    ///     blobs) whose blame at that commit the caller already knows, or nil. A target that
    ///     reaches such a commit whole and unchanged stops there as `.reused`.
    ///   - progress: called after each commit with the number of commits processed.
    public func blame(_ targets: [BlameTarget], at commit: ObjectID,
                      reusable: (ObjectID) throws -> [String: ObjectID]? = { _ in nil },
                      progress: (Int) -> Void = { _ in }) throws -> Result {
        try blame(targets, at: commit, workers: 1, reusable: reusable, progress: progress)
    }

    /// Blames `targets` as `blame(_:at:reusable:progress:)` does, on up to `workers` threads:
    /// the files are dealt into that many groups and each group gets its own walk of the
    /// history (and its own libgit2 handle). A file's blame depends on nothing but its own
    /// history, so the groups cannot disagree; the tree diffs are repeated per group, the line
    /// diffs and blob reads, which cost the most, are shared out. `reusable` and `progress`
    /// are called from one thread at a time (progress with the commits of all groups).
    public func blame(_ targets: [BlameTarget], at commit: ObjectID, workers: Int,
                      reusable: (ObjectID) throws -> [String: ObjectID]? = { _ in nil },
                      progress: (Int) -> Void = { _ in }) throws -> Result {
        let groups = min(max(1, workers), targets.count)
        if groups <= 1 { return try walk(targets, at: commit, repository: repository, reusable: reusable, progress: progress) }
        let path = repository.path
        // The closures do not outlive this call: concurrentPerform returns when every walk has.
        return try withoutActuallyEscaping(reusable) { reusable in
            try withoutActuallyEscaping(progress) { progress in
                let shared = ParallelWalks(groups: groups, reusable: reusable, progress: progress)
                DispatchQueue.concurrentPerform(iterations: groups) { group in
                    let indices = Array(stride(from: group, to: targets.count, by: groups))
                    do {
                        let own = try Repository.open(at: path)
                        let result = try HistoryBlame(repository: own).walk(indices.map { targets[$0] }, at: commit, repository: own,
                                                                            reusable: { try shared.reusable($0) },
                                                                            progress: { shared.walked(group: group, commits: $0) })
                        shared.finish(group: group, indices: indices, result: result)
                    } catch {
                        shared.fail(error)
                    }
                }
                return try shared.merged(count: targets.count)
            }
        }
    }

    private func walk(_ targets: [BlameTarget], at commit: ObjectID, repository: Repository,
                      reusable: (ObjectID) throws -> [String: ObjectID]?,
                      progress: (Int) -> Void) throws -> Result {
        var files = [Result.File](repeating: .spans([]), count: targets.count)
        var spans = [[BlameSpan]](repeating: [], count: targets.count)
        var reused: [Int: (ObjectID, String)] = [:]
        var commits: [ObjectID] = []
        var commitIndex: [RawOID: Int] = [:]

        // Targets: line starts of each text file, read once.
        var prepared: [Target] = []
        prepared.reserveCapacity(targets.count)
        for target in targets {
            let blob = RawOID(target.blob)
            let treatment = target.treatment
            try repository.withBlobBytes(blob) { bytes in
                let whole = treatment == .whole || (treatment == .wholeIfBinary && HistoryBlame.isBinary(bytes))
                if whole {
                    prepared.append(Target(blob: blob, whole: true, lineCount: 1, lineStarts: [0, UInt64(bytes.count)]))
                } else {
                    let starts = Self.lineStarts(bytes)
                    prepared.append(Target(blob: blob, whole: false, lineCount: starts.count - 1, lineStarts: starts))
                }
            }
        }

        var infos: [RawOID: CommitInfo] = [:]
        func info(_ id: RawOID) throws -> CommitInfo? {
            if let known = infos[id] { return known }
            var commit: OpaquePointer?
            var oid = id.oid
            let result = git_commit_lookup(&commit, repository.pointer, &oid)
            if result == GIT_ENOTFOUND.rawValue { git_error_clear(); return nil }
            try check("git_commit_lookup", result)
            defer { git_commit_free(commit) }
            let parents = (0..<git_commit_parentcount(commit)).map { RawOID(git_commit_parent_id(commit, $0)) }
            let read = CommitInfo(tree: RawOID(git_commit_tree_id(commit)), parents: parents, time: Int64(git_commit_time(commit)))
            infos[id] = read
            return read
        }

        var pending: [RawOID: [String: Origin]] = [:]
        var queue = CommitQueue()
        let start = RawOID(commit)
        guard let startInfo = try info(start) else {
            throw GitError(function: "git_commit_lookup", message: "no commit \(commit.hex)")
        }
        var initial: [String: Origin] = [:]
        for (index, target) in targets.enumerated() {
            let origin = initial[target.path] ?? Origin(path: target.path, blob: prepared[index].blob, mode: target.mode.rawValue)
            if prepared[index].lineCount > 0 {
                origin.entries.append(Entry(file: Int32(index), finalStart: 0, originStart: 0, count: Int32(prepared[index].lineCount)))
            }
            initial[target.path] = origin
        }
        pending[start] = initial
        queue.push(start, time: startInfo.time)

        var spanCache = SpanCache()
        let contents = BlobContents()
        var processed = 0

        func blameOn(_ id: RawOID, _ entries: [Entry]) {
            guard !entries.isEmpty else { return }
            let index: Int
            if let known = commitIndex[id] {
                index = known
            } else {
                index = commits.count
                commits.append(id.objectID)
                commitIndex[id] = index
            }
            for entry in entries {
                let target = prepared[Int(entry.file)]
                let first = Int(entry.finalStart)
                let count = Int(entry.count)
                let bytes = target.lineStarts[first + count] - target.lineStarts[first]
                spans[Int(entry.file)].append(BlameSpan(commit: index, start: first, lines: target.whole ? 0 : count, bytes: bytes))
            }
        }

        func pass(_ entries: [Entry], to parent: RawOID, path: String, blob: RawOID, mode: UInt32, time: Int64) {
            guard !entries.isEmpty else { return }
            // Mutated in place: copying a commit's table of origins per pass cost more than the diffs.
            if let origin = pending[parent]?[path] {
                origin.entries.append(contentsOf: entries)
            } else {
                let origin = Origin(path: path, blob: blob, mode: mode)
                origin.entries = entries
                pending[parent, default: [:]][path] = origin
            }
            queue.push(parent, time: time)
        }

        while let id = queue.pop() {
            guard var origins = pending.removeValue(forKey: id), !origins.isEmpty else { continue }
            guard let current = try info(id) else { continue }
            processed += 1
            progress(processed)

            // Targets that arrive here whole and unchanged, where the caller knows the answer.
            if let known = try reusable(id.objectID) {
                for origin in origins.values {
                    guard let offered = known[origin.path], RawOID(offered) == origin.blob else { continue }
                    var byFile: [Int32: [Int]] = [:]
                    for (position, entry) in origin.entries.enumerated() { byFile[entry.file, default: []].append(position) }
                    var done: Set<Int> = []
                    for (file, positions) in byFile where positions.count == 1 {
                        let entry = origin.entries[positions[0]]
                        let target = prepared[Int(file)]
                        if target.blob == origin.blob && entry.finalStart == 0 && entry.originStart == 0 && Int(entry.count) == target.lineCount {
                            reused[Int(file)] = (id.objectID, origin.path)
                            done.insert(positions[0])
                        }
                    }
                    if !done.isEmpty {
                        origin.entries = origin.entries.enumerated().filter { !done.contains($0.offset) }.map(\.element)
                        if origin.entries.isEmpty { origins[origin.path] = nil }
                    }
                }
            }

            let live = origins.values.filter { !$0.entries.isEmpty }
            if live.isEmpty { continue }
            let parents = try current.parents.compactMap { parent in try info(parent).map { (id: parent, info: $0) } }
            if parents.isEmpty {
                for origin in live { blameOn(id, origin.entries) }
                continue
            }

            // One tree diff per parent serves every file.
            var changes: [[String: TreeChange]] = []
            var deletions: [[RenameDetection.Source]] = []
            for parent in parents {
                var byPath: [String: TreeChange] = [:]
                var deleted: [RenameDetection.Source] = []
                for change in try repository.treeChanges(from: parent.info.tree, to: current.tree) {
                    if let old = change.old, change.new == nil {
                        deleted.append(RenameDetection.Source(path: change.path, id: old.id, mode: old.mode))
                    }
                    if change.new != nil { byPath[change.path] = change }
                }
                changes.append(byPath)
                deletions.append(deleted)
            }
            spanCache.removeAll()

            // The common case in one move: with one parent, every file this commit did not
            // touch passes whole to the parent at the same path, so when the parent has nothing
            // pending yet the untouched part of the table is handed over as it is.
            var touched = live
            if parents.count == 1 && pending[parents[0].id] == nil {
                var untouched = origins
                touched = []
                for path in changes[0].keys {
                    if let origin = untouched.removeValue(forKey: path), !origin.entries.isEmpty { touched.append(origin) }
                }
                if !untouched.isEmpty {
                    pending[parents[0].id] = untouched
                    queue.push(parents[0].id, time: parents[0].info.time)
                }
            }

            for origin in touched {
                // Pass 0: the same path in each parent; pass 1: a path it was renamed from.
                var scapegoats = [RenameDetection.Source?](repeating: nil, count: parents.count)
                var whole: (parent: Int, source: RenameDetection.Source)?
                search: for round in 0..<2 {
                    for i in parents.indices where scapegoats[i] == nil {
                        var found: RenameDetection.Source?
                        if round == 0 {
                            if let change = changes[i][origin.path] {
                                if let old = change.old, fileType(old.mode) == fileType(change.new!.mode) {
                                    found = RenameDetection.Source(path: origin.path, id: old.id, mode: old.mode)
                                }
                            } else {
                                found = RenameDetection.Source(path: origin.path, id: origin.blob, mode: origin.mode)
                            }
                        } else if let change = changes[i][origin.path], change.old == nil {
                            let destination = RenameDetection.Source(path: origin.path, id: origin.blob, mode: change.new!.mode)
                            found = try RenameDetection.source(for: destination, among: deletions[i], spans: &spanCache,
                                                               repository: repository)
                        }
                        guard let found else { continue }
                        if found.id == origin.blob {
                            whole = (i, found)
                            break search
                        }
                        if !scapegoats[..<i].contains(where: { $0?.id == found.id }) { scapegoats[i] = found }
                    }
                }
                if let whole {
                    let parent = parents[whole.parent]
                    pass(origin.entries, to: parent.id, path: whole.source.path, blob: whole.source.id, mode: whole.source.mode,
                         time: parent.info.time)
                    continue
                }

                var remaining = origin.entries.filter { !prepared[Int($0.file)].whole }
                let wholeEntries = origin.entries.filter { prepared[Int($0.file)].whole }
                for (i, scapegoat) in scapegoats.enumerated() {
                    guard let scapegoat, !remaining.isEmpty else { continue }
                    let hunks = try Repository.lineHunks(from: try contents.content(of: scapegoat.id, in: repository),
                                                         to: try contents.content(of: origin.blob, in: repository))
                    let (passed, kept) = Self.split(remaining, by: hunks)
                    pass(passed, to: parents[i].id, path: scapegoat.path, blob: scapegoat.id, mode: scapegoat.mode,
                         time: parents[i].info.time)
                    remaining = kept
                }
                blameOn(id, remaining + wholeEntries)
            }
        }

        for index in targets.indices {
            if let (commit, path) = reused[index] {
                files[index] = .reused(commit: commit, path: path)
            } else {
                files[index] = .spans(spans[index].sorted { $0.start < $1.start })
            }
        }
        return Result(files: files, commits: commits)
    }

    /// Splits entries (line ranges of the new blob) into what the diff leaves unchanged, mapped
    /// to the old blob's lines, and what it changed (blame_chunk's work in git).
    private static func split(_ entries: [Entry], by hunks: [LineHunk]) -> (passed: [Entry], kept: [Entry]) {
        var passed: [Entry] = []
        var kept: [Entry] = []
        // Unchanged stretches of the new blob: [start, end) with offset old - new.
        var stretches: [(start: Int, end: Int, offset: Int)] = []
        var newLine = 0
        var offset = 0
        for hunk in hunks {
            if hunk.newStart > newLine { stretches.append((newLine, hunk.newStart, offset)) }
            newLine = hunk.newStart + hunk.newCount
            offset = (hunk.oldStart + hunk.oldCount) - newLine
        }
        stretches.append((newLine, Int.max, offset))

        for entry in entries {
            var start = Int(entry.originStart)
            let end = start + Int(entry.count)
            // The first stretch that ends after `start`.
            var low = 0
            var high = stretches.count
            while low < high {
                let mid = (low + high) / 2
                if stretches[mid].end <= start { low = mid + 1 } else { high = mid }
            }
            var k = low
            func piece(_ from: Int, _ to: Int) -> Entry {
                Entry(file: entry.file, finalStart: entry.finalStart + Int32(from - Int(entry.originStart)),
                      originStart: Int32(from), count: Int32(to - from))
            }
            while start < end {
                if k < stretches.count && stretches[k].start <= start {
                    let to = min(end, stretches[k].end)
                    var moved = piece(start, to)
                    moved.originStart = Int32(start + stretches[k].offset)
                    passed.append(moved)
                    start = to
                    k += 1
                } else {
                    let to = k < stretches.count ? min(end, stretches[k].start) : end
                    kept.append(piece(start, to))
                    start = to
                }
            }
        }
        return (passed, kept)
    }

    /// Whether the file is binary by the test every blame-related part of git uses: a NUL byte
    /// in the first 8,000 bytes.
    static func isBinary(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard let base = bytes.baseAddress else { return false }
        return memchr(base, 0, min(bytes.count, 8000)) != nil
    }

    /// Where each line starts, plus the size: a last line without a newline is still a line.
    static func lineStarts(_ bytes: UnsafeRawBufferPointer) -> [UInt64] {
        var starts: [UInt64] = [0]
        let count = bytes.count
        guard count > 0 else { return starts }
        var index = 0
        while index < count {
            if let found = memchr(bytes.baseAddress! + index, 0x0A, count - index) {
                index = bytes.baseAddress!.distance(to: UnsafeRawPointer(found)) + 1
            } else {
                index = count
            }
            starts.append(UInt64(index))
        }
        return starts
    }
}

/// Commits to visit, newest commit time first (git blame's order).
private struct CommitQueue {
    private var heap: [(time: Int64, sequence: Int, id: RawOID)] = []
    private var members: Set<RawOID> = []
    private var sequence = 0

    mutating func push(_ id: RawOID, time: Int64) {
        guard members.insert(id).inserted else { return }
        sequence += 1
        heap.append((time, sequence, id))
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard Self.before(heap[child], heap[parent]) else { break }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() -> RawOID? {
        guard !heap.isEmpty else { return nil }
        let top = heap[0]
        let last = heap.removeLast()
        if !heap.isEmpty {
            heap[0] = last
            var parent = 0
            while true {
                let left = 2 * parent + 1
                let right = left + 1
                var best = parent
                if left < heap.count && Self.before(heap[left], heap[best]) { best = left }
                if right < heap.count && Self.before(heap[right], heap[best]) { best = right }
                if best == parent { break }
                heap.swapAt(parent, best)
                parent = best
            }
        }
        members.remove(top.id)
        return top.id
    }

    private static func before(_ a: (time: Int64, sequence: Int, id: RawOID), _ b: (time: Int64, sequence: Int, id: RawOID)) -> Bool {
        a.time != b.time ? a.time > b.time : a.sequence < b.sequence
    }
}

/// What parallel walks share: the caller's closures behind one lock, their results, the
/// first error.
private final class ParallelWalks: @unchecked Sendable {
    private let lock = NSLock()
    private let reusableBody: (ObjectID) throws -> [String: ObjectID]?
    private let progressBody: (Int) -> Void
    private var commits: [Int]
    private var results: [(indices: [Int], result: HistoryBlame.Result)?]
    private var error: (any Error)?

    init(groups: Int, reusable: @escaping (ObjectID) throws -> [String: ObjectID]?, progress: @escaping (Int) -> Void) {
        reusableBody = reusable
        progressBody = progress
        commits = Array(repeating: 0, count: groups)
        results = Array(repeating: nil, count: groups)
    }

    func reusable(_ id: ObjectID) throws -> [String: ObjectID]? {
        lock.lock()
        defer { lock.unlock() }
        return try reusableBody(id)
    }

    func walked(group: Int, commits done: Int) {
        lock.lock()
        defer { lock.unlock() }
        commits[group] = done
        progressBody(commits.reduce(0, +))
    }

    func finish(group: Int, indices: [Int], result: HistoryBlame.Result) {
        lock.lock()
        results[group] = (indices, result)
        lock.unlock()
    }

    func fail(_ error: any Error) {
        lock.lock()
        if self.error == nil { self.error = error }
        lock.unlock()
    }

    /// One result in the targets' order, with one table of commits.
    func merged(count: Int) throws -> HistoryBlame.Result {
        if let error { throw error }
        var files = [HistoryBlame.Result.File](repeating: .spans([]), count: count)
        var commits: [ObjectID] = []
        var index: [ObjectID: Int] = [:]
        for case let (indices, result)? in results {
            let remap = result.commits.map { commit -> Int in
                if let known = index[commit] { return known }
                index[commit] = commits.count
                commits.append(commit)
                return commits.count - 1
            }
            for (position, target) in indices.enumerated() {
                switch result.files[position] {
                case .reused(let commit, let path): files[target] = .reused(commit: commit, path: path)
                case .spans(let spans):
                    files[target] = .spans(spans.map { var span = $0; span.commit = remap[span.commit]; return span })
                }
            }
        }
        return HistoryBlame.Result(files: files, commits: commits)
    }
}
