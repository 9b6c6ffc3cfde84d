internal import CGit2

/// Builds a new tree from a base tree plus added or replaced files, nesting folders as needed.
///
/// The tree is held as folders in memory. Folders of the base are read only when a path goes
/// through them, and a folder nothing was written under keeps its id, so editing a few paths
/// of a large tree reads and writes only the folders on those paths. `write(into:)` serialises
/// the changed folders in git's tree format and can put them into a `PackWriter` along with
/// the blobs, instead of writing one loose object per folder.
public final class TreeEditor {
    private enum Node {
        case file(git_oid, UInt32)
        /// A folder of the base not read yet.
        case subtree(git_oid)
        case folder(Folder)
    }

    private final class Folder {
        var entries: [String: Node] = [:]
        /// The folder's id while it is as the base had it; nil once something changed under it.
        var unchangedID: git_oid?
    }

    private let repository: Repository
    private let root: Folder

    /// Starts from `base` (nil: an empty tree).
    public init(repository: Repository, base: ObjectID?) throws {
        self.repository = repository
        if let base {
            root = try Self.load(base.oid, in: repository)
        } else {
            root = Folder()
        }
    }

    private static func load(_ id: git_oid, in repository: Repository) throws -> Folder {
        var tree: OpaquePointer?
        var oid = id
        try check("git_tree_lookup", git_tree_lookup(&tree, repository.pointer, &oid))
        defer { git_tree_free(tree) }
        let folder = Folder()
        folder.unchangedID = id
        for index in 0..<git_tree_entrycount(tree) {
            guard let entry = git_tree_entry_byindex(tree, index) else { continue }
            let name = String(cString: git_tree_entry_name(entry))
            let entryID = git_tree_entry_id(entry)!.pointee
            let mode = git_tree_entry_filemode(entry).rawValue
            folder.entries[name] = mode == FileMode.tree.rawValue ? .subtree(entryID) : .file(entryID, mode)
        }
        return folder
    }

    /// The folder at `components` (read from the base if needed), or nil if there is none.
    private func folder(at components: ArraySlice<Substring>, creating: Bool) throws -> Folder? {
        var folder = root
        for component in components {
            let name = String(component)
            if creating { folder.unchangedID = nil }
            switch folder.entries[name] {
            case .folder(let child)?:
                folder = child
            case .subtree(let id)?:
                let child = try Self.load(id, in: repository)
                folder.entries[name] = .folder(child)
                folder = child
            case .file?:
                guard creating else { return nil }
                throw GitError(function: "TreeEditor", message: "'\(components.joined(separator: "/"))' passes through a file")
            case nil:
                guard creating else { return nil }
                let child = Folder()
                folder.entries[name] = .folder(child)
                folder = child
            }
        }
        if creating { folder.unchangedID = nil }
        return folder
    }

    /// The blob and mode at `path`, if the tree has a file there.
    public func file(at path: String) -> (id: ObjectID, mode: FileMode)? {
        let components = path.split(separator: "/")
        guard let last = components.last,
              let folder = try? folder(at: components.dropLast(), creating: false),
              case .file(let id, let mode)? = folder.entries[String(last)] else { return nil }
        return (ObjectID(id), FileMode(rawValue: mode) ?? .blob)
    }

    /// True when the tree has files below folder `path`.
    public func isDirectory(_ path: String) -> Bool {
        let components = path.split(separator: "/")
        guard let last = components.last, let folder = try? folder(at: components.dropLast(), creating: false) else { return false }
        switch folder.entries[String(last)] {
        case .subtree?: return true
        case .folder(let child)?: return !child.entries.isEmpty
        default: return false
        }
    }

    /// Adds or replaces the file at `path`.
    ///
    /// - Throws: `GitError` when a folder is at `path` or a file is where a folder on the path should be.
    public func setFile(_ path: String, id: ObjectID, mode: FileMode, size: UInt64) throws {
        let components = path.split(separator: "/")
        guard let last = components.last else { throw GitError(function: "TreeEditor", message: "an empty path has no file") }
        let folder = try folder(at: components.dropLast(), creating: true)!
        let name = String(last)
        switch folder.entries[name] {
        case .subtree?, .folder?:
            throw GitError(function: "TreeEditor", message: "'\(path)' is a folder")
        default:
            folder.entries[name] = .file(id.oid, mode.rawValue)
        }
    }

    /// Writes the tree (and its changed subtrees) as loose objects.
    public func write() throws -> ObjectID {
        try write(into: nil)
    }

    /// Writes the tree and its changed subtrees into `pack`, or as loose objects without one.
    public func write(into pack: PackWriter?) throws -> ObjectID {
        var odb: OpaquePointer?
        try check("git_repository_odb", git_repository_odb(&odb, repository.pointer))
        defer { git_odb_free(odb) }
        return ObjectID(try write(root, odb: odb!, pack: pack))
    }

    /// The number of folders `write` would serialise: the root and every folder a file was set under.
    public var changedFolderCount: Int { Self.changedFolders(in: root) }

    private static func changedFolders(in folder: Folder) -> Int {
        guard folder.unchangedID == nil else { return 0 }
        var count = 1
        for case .folder(let child) in folder.entries.values { count += changedFolders(in: child) }
        return count
    }

    private static let blobMode = Array("100644".utf8)
    private static let treeMode = Array("40000".utf8)

    private func write(_ folder: Folder, odb: OpaquePointer, pack: PackWriter?) throws -> git_oid {
        if let id = folder.unchangedID { return id }
        // git's order: bytewise by name, a folder compared as if its name ended in '/'.
        var rows: [(name: [UInt8], isTree: Bool, mode: UInt32, id: git_oid)] = []
        rows.reserveCapacity(folder.entries.count)
        for (name, node) in folder.entries {
            switch node {
            case .file(let id, let mode): rows.append((Array(name.utf8), false, mode, id))
            case .subtree(let id): rows.append((Array(name.utf8), true, FileMode.tree.rawValue, id))
            case .folder(let child):
                if child.entries.isEmpty { continue }
                rows.append((Array(name.utf8), true, FileMode.tree.rawValue, try write(child, odb: odb, pack: pack)))
            }
        }
        rows.sort { Repository.compareTreeNames($0.name, $0.isTree, $1.name, $1.isTree) < 0 }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(rows.count * 40)
        for row in rows {
            switch row.mode {
            case FileMode.blob.rawValue: bytes += Self.blobMode
            case FileMode.tree.rawValue: bytes += Self.treeMode
            default: bytes += Array(String(row.mode, radix: 8).utf8)
            }
            bytes.append(0x20)
            bytes += row.name
            bytes.append(0)
            withUnsafeBytes(of: row.id.id) { bytes.append(contentsOf: $0) }
        }
        if let pack {
            return try bytes.withUnsafeBytes { try pack.add($0, type: .tree).oid }
        }
        var oid = git_oid()
        try bytes.withUnsafeBytes { raw in
            _ = try check("git_odb_write", git_odb_write(&oid, odb, raw.baseAddress, raw.count, GIT_OBJECT_TREE))
        }
        return oid
    }
}
