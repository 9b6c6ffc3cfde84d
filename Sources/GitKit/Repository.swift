internal import CGit2
public import Foundation

/// A git repository opened through libgit2. Owns its handle and frees it in `deinit`.
///
/// Not thread-safe: use one `Repository` per thread, as libgit2 requires.
public final class Repository {
    let pointer: OpaquePointer
    /// Where the repository lives (the `.git` directory, or the bare repository itself).
    public let path: URL

    private init(pointer: OpaquePointer, path: URL) {
        self.pointer = pointer
        self.path = path
    }

    deinit { git_repository_free(pointer) }

    /// Opens an existing repository, bare or not, at exactly `path` (no search upwards).
    ///
    /// - Throws: `GitError` when there is no repository there.
    public static func open(at path: URL) throws -> Repository {
        precondition(libgit2Initialised)
        var repo: OpaquePointer?
        try check("git_repository_open_ext", git_repository_open_ext(
            &repo, path.path, GIT_REPOSITORY_OPEN_NO_SEARCH.rawValue, nil))
        guard let repo else { throw GitError(function: "git_repository_open_ext", message: "no repository returned") }
        return Repository(pointer: repo, path: path)
    }

    /// Creates a bare repository at `path` (creating missing folders) whose HEAD names `initialBranch`.
    public static func createBare(at path: URL, initialBranch: String = "main") throws -> Repository {
        precondition(libgit2Initialised)
        var options = git_repository_init_options()
        try check("git_repository_init_options_init", provenance_git_repository_init_options_init(&options))
        options.flags = GIT_REPOSITORY_INIT_BARE.rawValue | GIT_REPOSITORY_INIT_MKPATH.rawValue
        var repo: OpaquePointer?
        try initialBranch.withCString { branch in
            options.initial_head = branch
            try check("git_repository_init_ext", git_repository_init_ext(&repo, path.path, &options))
        }
        guard let repo else { throw GitError(function: "git_repository_init_ext", message: "no repository returned") }
        return Repository(pointer: repo, path: path)
    }

    /// True for a bare repository.
    public var isBare: Bool { git_repository_is_bare(pointer) == 1 }

    // MARK: References

    /// The commit a reference points to (following symbolic references), or nil if it does not exist.
    public func referenceTarget(_ name: String) throws -> ObjectID? {
        var oid = git_oid()
        let result = git_reference_name_to_id(&oid, pointer, name)
        if result == GIT_ENOTFOUND.rawValue { return nil }
        try check("git_reference_name_to_id", result)
        return ObjectID(oid)
    }

    /// The full name of the branch HEAD names, e.g. `refs/heads/main`, even when it is unborn.
    public func headReferenceName() throws -> String {
        var ref: OpaquePointer?
        try check("git_reference_lookup", git_reference_lookup(&ref, pointer, "HEAD"))
        defer { git_reference_free(ref) }
        guard let target = git_reference_symbolic_target(ref) else { return "HEAD" }
        return String(cString: target)
    }

    /// The commit HEAD points to, or nil when HEAD is unborn.
    public func head() throws -> ObjectID? {
        try referenceTarget("HEAD")
    }

    /// Points reference `name` at `target`, only if it currently points at `expected`
    /// (nil: only if it does not exist yet). A compare-and-swap, so concurrent writers cannot
    /// silently overwrite one another.
    public func updateReference(_ name: String, to target: ObjectID, expecting expected: ObjectID?, message: String) throws {
        var ref: OpaquePointer?
        var newOID = target.oid
        if let expected {
            var current = expected.oid
            try check("git_reference_create_matching", git_reference_create_matching(
                &ref, pointer, name, &newOID, 1, &current, message))
        } else {
            try check("git_reference_create", git_reference_create(&ref, pointer, name, &newOID, 0, message))
        }
        git_reference_free(ref)
    }

    /// Deletes reference `name`; does nothing if it does not exist.
    public func deleteReference(_ name: String) throws {
        let result = git_reference_remove(pointer, name)
        if result == GIT_ENOTFOUND.rawValue { return }
        try check("git_reference_remove", result)
    }

    /// The names of all references matching a glob such as `refs/tags/*`.
    public func referenceNames(matching glob: String) throws -> [String] {
        var iterator: OpaquePointer?
        try check("git_reference_iterator_glob_new", git_reference_iterator_glob_new(&iterator, pointer, glob))
        defer { git_reference_iterator_free(iterator) }
        var names: [String] = []
        var name: UnsafePointer<CChar>?
        while true {
            let result = git_reference_next_name(&name, iterator)
            if result == GIT_ITEROVER.rawValue { break }
            try check("git_reference_next_name", result)
            if let name { names.append(String(cString: name)) }
        }
        return names.sorted()
    }

    // MARK: Revisions

    /// Resolves a revision (full or abbreviated id, branch, tag, `HEAD~2`, …) to a commit.
    ///
    /// - Returns: nil when the revision names nothing, or names something that is not a commit.
    public func resolveCommit(_ revision: String) throws -> ObjectID? {
        var object: OpaquePointer?
        let result = git_revparse_single(&object, pointer, revision)
        if result == GIT_ENOTFOUND.rawValue || result == GIT_EAMBIGUOUS.rawValue || result == GIT_EINVALIDSPEC.rawValue {
            return nil
        }
        try check("git_revparse_single", result)
        defer { git_object_free(object) }
        var peeled: OpaquePointer?
        let peel = git_object_peel(&peeled, object, GIT_OBJECT_COMMIT)
        if peel < 0 { return nil }
        defer { git_object_free(peeled) }
        return ObjectID(git_object_id(peeled))
    }

    /// True when `commit` has `ancestor` in its history (a commit is not its own descendant).
    public func isDescendant(_ commit: ObjectID, of ancestor: ObjectID) throws -> Bool {
        var c = commit.oid
        var a = ancestor.oid
        return try check("git_graph_descendant_of", git_graph_descendant_of(pointer, &c, &a)) == 1
    }

    /// True when the object database holds `id`.
    public func contains(_ id: ObjectID) -> Bool {
        var odb: OpaquePointer?
        guard git_repository_odb(&odb, pointer) == 0 else { return false }
        defer { git_odb_free(odb) }
        var oid = id.oid
        return git_odb_exists(odb, &oid) == 1
    }

    /// The type of object `id`, or nil if the repository does not have it.
    public func objectType(_ id: ObjectID) -> ObjectType? {
        var odb: OpaquePointer?
        guard git_repository_odb(&odb, pointer) == 0 else { return nil }
        defer { git_odb_free(odb) }
        var oid = id.oid
        var size = 0
        var type = GIT_OBJECT_INVALID
        guard git_odb_read_header(&size, &type, odb, &oid) == 0 else { return nil }
        return ObjectType(type)
    }
}

/// The kinds of git object.
public enum ObjectType: Sendable {
    case commit, tree, blob, tag

    init?(_ type: git_object_t) {
        switch type {
        case GIT_OBJECT_COMMIT: self = .commit
        case GIT_OBJECT_TREE: self = .tree
        case GIT_OBJECT_BLOB: self = .blob
        case GIT_OBJECT_TAG: self = .tag
        default: return nil
        }
    }
}

extension Repository {
    /// Creates the lightweight tag `refs/tags/<name>` pointing at `target`; refuses to move an existing tag.
    public func createTag(_ name: String, target: ObjectID) throws {
        var object: OpaquePointer?
        var oid = target.oid
        try check("git_object_lookup", git_object_lookup(&object, pointer, &oid, GIT_OBJECT_ANY))
        defer { git_object_free(object) }
        var out = git_oid()
        try check("git_tag_create_lightweight", git_tag_create_lightweight(&out, pointer, name, object, 0))
    }

    /// The names of all tags, without `refs/tags/`.
    public func tagNames() throws -> [String] {
        try referenceNames(matching: "refs/tags/*").map { String($0.dropFirst("refs/tags/".count)) }
    }
}
