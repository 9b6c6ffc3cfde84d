internal import CGit2

/// A run of consecutive lines that `git blame` assigns to one commit.
public struct BlameHunk: Sendable, Equatable {
    /// The commit that last changed these lines.
    public var commit: ObjectID
    /// 1-based number of the hunk's first line in the blamed version of the file.
    public var startLine: Int
    public var lineCount: Int
}

extension Repository {
    /// Blames `path` as of `commit`: which commit last changed each line, following history
    /// through merges as git's blame does (libgit2 ports git's algorithm; no copy detection,
    /// like `git blame` without `-M`/`-C`).
    public func blame(path: String, at commit: ObjectID) throws -> [BlameHunk] {
        var options = git_blame_options()
        try check("git_blame_options_init", provenance_git_blame_options_init(&options))
        options.newest_commit = commit.oid
        var blame: OpaquePointer?
        try check("git_blame_file", git_blame_file(&blame, pointer, path, &options))
        defer { git_blame_free(blame) }
        let count = git_blame_get_hunk_count(blame)
        var hunks: [BlameHunk] = []
        hunks.reserveCapacity(Int(count))
        for index in 0..<count {
            guard let hunk = git_blame_get_hunk_byindex(blame, index) else { continue }
            hunks.append(BlameHunk(commit: ObjectID(hunk.pointee.final_commit_id),
                                   startLine: Int(hunk.pointee.final_start_line_number),
                                   lineCount: Int(hunk.pointee.lines_in_hunk)))
        }
        return hunks
    }

    /// The blob at `path` in commit `id`'s tree, or nil.
    public func blob(atPath path: String, inCommit id: ObjectID) throws -> ObjectID? {
        try blob(atPath: path, inTree: try commit(id).tree)
    }

    /// The newest commit reachable from `commit` that changed `path`, simplifying history as
    /// `git log -1 -- path` does: at a merge, follow a parent that has the same content.
    public func lastCommitChanging(path: String, from commit: ObjectID) throws -> ObjectID {
        var current = commit
        while true {
            let read = try self.commit(current)
            let blob = try self.blob(atPath: path, inTree: read.tree)
            var sameParent: ObjectID?
            for parent in read.parents where try self.blob(atPath: path, inCommit: parent) == blob {
                sameParent = parent
                break
            }
            guard let next = sameParent, blob != nil else { return current }
            current = next
        }
    }
}
