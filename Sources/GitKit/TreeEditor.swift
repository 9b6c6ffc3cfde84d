internal import CGit2

/// Builds a new tree from a base tree plus added or replaced files, nesting folders as needed.
///
/// Backed by an in-memory libgit2 index, which never touches the repository's own index.
public final class TreeEditor {
    private let index: OpaquePointer
    private let repository: Repository

    /// Starts from `base` (nil: an empty tree).
    public init(repository: Repository, base: ObjectID?) throws {
        self.repository = repository
        var index: OpaquePointer?
        try check("git_index_new", git_index_new(&index))
        guard let index else { throw GitError(function: "git_index_new", message: "no index returned") }
        self.index = index
        if let base {
            var tree: OpaquePointer?
            var oid = base.oid
            try check("git_tree_lookup", git_tree_lookup(&tree, repository.pointer, &oid))
            defer { git_tree_free(tree) }
            try check("git_index_read_tree", git_index_read_tree(index, tree))
        }
    }

    deinit { git_index_free(index) }

    /// The blob and mode at `path`, if the tree has a file there.
    public func file(at path: String) -> (id: ObjectID, mode: FileMode)? {
        guard let entry = git_index_get_bypath(index, path, 0) else { return nil }
        return (ObjectID(entry.pointee.id), FileMode(rawValue: entry.pointee.mode) ?? .blob)
    }

    /// True when the tree has files below folder `path`.
    public func isDirectory(_ path: String) -> Bool {
        var position = 0
        return git_index_find_prefix(&position, index, path + "/") == 0
    }

    /// Adds or replaces the file at `path`.
    public func setFile(_ path: String, id: ObjectID, mode: FileMode, size: UInt64) throws {
        var entry = git_index_entry()
        entry.mode = mode.rawValue
        entry.id = id.oid
        entry.file_size = UInt32(truncatingIfNeeded: min(size, UInt64(UInt32.max)))
        try path.withCString { cPath in
            entry.path = cPath
            try check("git_index_add", git_index_add(index, &entry))
        }
    }

    /// Writes the tree (and its subtrees) to the repository.
    public func write() throws -> ObjectID {
        var oid = git_oid()
        try check("git_index_write_tree_to", git_index_write_tree_to(&oid, index, repository.pointer))
        return ObjectID(oid)
    }
}
