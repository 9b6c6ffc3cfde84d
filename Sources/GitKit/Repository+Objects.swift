internal import CGit2
public import Foundation
#if canImport(Glibc)
internal import Glibc
#endif

/// File modes git records in trees.
public enum FileMode: UInt32, Sendable {
    case blob = 0o100644
    case executable = 0o100755
    case symlink = 0o120000
    case tree = 0o040000
    case submodule = 0o160000
}

/// One file of a tree, listed recursively: its path from the tree's root, blob id and mode.
public struct TreeFile: Hashable, Sendable {
    public var path: String
    public var id: ObjectID
    public var mode: FileMode
}

/// A commit as read from the object database.
public struct Commit: Sendable {
    public let id: ObjectID
    public let tree: ObjectID
    public let parents: [ObjectID]
    public let author: Signature
    public let committer: Signature
    public let message: String

    /// The first line of the message.
    public var summary: String {
        String(message.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false).first ?? "")
    }
}

extension Repository {
    private func withODB<T>(_ body: (OpaquePointer) throws -> T) throws -> T {
        var odb: OpaquePointer?
        try check("git_repository_odb", git_repository_odb(&odb, pointer))
        defer { git_odb_free(odb) }
        guard let odb else { throw GitError(function: "git_repository_odb", message: "no object database") }
        return try body(odb)
    }

    // MARK: Blobs

    /// Writes the file at `url` as a blob, streaming it in chunks so memory does not grow with
    /// its size. `observe` sees every chunk as it is written (to hash it in the same pass).
    ///
    /// Plain POSIX calls read the file (one open, one fstat, reads into one buffer): with
    /// thousands of small files, Foundation's file handles and attribute dictionaries cost more
    /// than the writing. A file of at most 1 MiB is written in one call, a larger one streamed.
    ///
    /// With a `pack`, a file of at most `PackWriter.largestPackedBlob` bytes goes into it
    /// instead of a loose object (unless `skipExisting` and the repository already has it);
    /// a larger one is still streamed into a loose object.
    ///
    /// - Returns: the blob id and the number of bytes written.
    public func writeBlob(fromFile url: URL, into pack: PackWriter? = nil, skipExisting: Bool = false,
                          observe: (UnsafeRawBufferPointer) -> Void = { _ in }) throws -> (id: ObjectID, size: UInt64) {
        try writeBlob(fromPath: url.path, into: pack, skipExisting: skipExisting, observe: observe)
    }

    /// `writeBlob(fromFile:into:skipExisting:observe:)` for a path, which saves building a
    /// `URL` per file when there are thousands.
    public func writeBlob(fromPath path: String, into pack: PackWriter? = nil, skipExisting: Bool = false,
                          observe: (UnsafeRawBufferPointer) -> Void = { _ in }) throws -> (id: ObjectID, size: UInt64) {
        let descriptor = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw GitError(function: "open", message: "cannot read \(path): \(String(cString: strerror(errno)))")
        }
        defer { Glibc.close(descriptor) }
        var info = stat()
        guard fstat(descriptor, &info) == 0 else {
            throw GitError(function: "fstat", message: "cannot read \(path): \(String(cString: strerror(errno)))")
        }
        let size = UInt64(max(0, info.st_size))
        let chunkSize = 1 << 20
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkSize, alignment: 16)
        defer { buffer.deallocate() }
        /// Fills the buffer as far as the file goes; 0 at its end.
        func fill() throws -> Int {
            var filled = 0
            while filled < chunkSize {
                let count = Glibc.read(descriptor, buffer.baseAddress! + filled, chunkSize - filled)
                if count < 0 {
                    if errno == EINTR { continue }
                    throw GitError(function: "read", message: "cannot read \(path): \(String(cString: strerror(errno)))")
                }
                if count == 0 { break }
                filled += count
            }
            return filled
        }
        if let pack, size <= UInt64(PackWriter.largestPackedBlob) {
            let count = try fill()
            if UInt64(count) != size {
                throw GitError(function: "read", message: "\(path) changed size while it was being read")
            }
            if count == chunkSize, try fill() > 0 {
                throw GitError(function: "read", message: "\(path) grew while it was being read")
            }
            let bytes = UnsafeRawBufferPointer(rebasing: buffer[..<count])
            observe(bytes)
            let id = try pack.addBlob(bytes) { skipExisting && self.hasObjectWithoutRefresh($0) }
            return (id, UInt64(count))
        }
        return try withODB { odb in
            if size <= UInt64(chunkSize) {
                let count = try fill()
                if UInt64(count) != size {
                    throw GitError(function: "git_odb_write", message: "\(path) changed size while it was being read")
                }
                if count == chunkSize, try fill() > 0 {
                    throw GitError(function: "git_odb_write", message: "\(path) grew while it was being read")
                }
                let bytes = UnsafeRawBufferPointer(rebasing: buffer[..<count])
                observe(bytes)
                var oid = git_oid()
                try check("git_odb_write", git_odb_write(&oid, odb, bytes.baseAddress, count, GIT_OBJECT_BLOB))
                return (ObjectID(oid), UInt64(count))
            }
            var stream: UnsafeMutablePointer<git_odb_stream>?
            try check("git_odb_open_wstream", git_odb_open_wstream(&stream, odb, git_object_size_t(size), GIT_OBJECT_BLOB))
            defer { git_odb_stream_free(stream) }
            var written: UInt64 = 0
            while true {
                let count = try fill()
                if count == 0 { break }
                written += UInt64(count)
                if written > size {
                    throw GitError(function: "git_odb_stream_write", message: "\(path) grew while it was being read")
                }
                let bytes = UnsafeRawBufferPointer(rebasing: buffer[..<count])
                observe(bytes)
                try check("git_odb_stream_write", git_odb_stream_write(stream, bytes.baseAddress!.assumingMemoryBound(to: CChar.self), count))
            }
            if written != size {
                throw GitError(function: "git_odb_stream_finalize_write", message: "\(path) changed size while it was being read")
            }
            var oid = git_oid()
            try check("git_odb_stream_finalize_write", git_odb_stream_finalize_write(&oid, stream))
            return (ObjectID(oid), written)
        }
    }

    /// True when the object database has `id`, asking only the packs and loose objects it
    /// already knows about (no rescan of the pack folder on a miss, which costs a directory
    /// read per lookup).
    func hasObjectWithoutRefresh(_ id: ObjectID) -> Bool {
        var odb: OpaquePointer?
        guard git_repository_odb(&odb, pointer) == 0 else { return false }
        defer { git_odb_free(odb) }
        var oid = id.oid
        return git_odb_exists_ext(odb, &oid, GIT_ODB_LOOKUP_NO_REFRESH.rawValue) == 1
    }

    /// Makes objects written behind libgit2's back (a pack from `PackWriter`) visible to
    /// this handle.
    public func refreshObjects() throws {
        try withODB { odb in _ = try check("git_odb_refresh", git_odb_refresh(odb)) }
    }

    /// Writes `data` as a blob.
    public func writeBlob(_ data: Data) throws -> ObjectID {
        var oid = git_oid()
        try data.withUnsafeBytes { raw in
            _ = try check("git_blob_create_from_buffer", git_blob_create_from_buffer(&oid, pointer, raw.baseAddress, raw.count))
        }
        return ObjectID(oid)
    }

    /// The size of blob `id` in bytes, read from its header without loading it.
    public func blobSize(_ id: ObjectID) throws -> UInt64 {
        try withODB { odb in
            var oid = id.oid
            var size = 0
            var type = GIT_OBJECT_INVALID
            try check("git_odb_read_header", git_odb_read_header(&size, &type, odb, &oid))
            return UInt64(size)
        }
    }

    /// Reads blob `id` whole. Use `readBlob(_:chunk:)` for content that may be large.
    public func readBlob(_ id: ObjectID) throws -> Data {
        var blob: OpaquePointer?
        var oid = id.oid
        try check("git_blob_lookup", git_blob_lookup(&blob, pointer, &oid))
        defer { git_blob_free(blob) }
        let size = Int(git_blob_rawsize(blob))
        guard size > 0, let content = git_blob_rawcontent(blob) else { return Data() }
        return Data(bytes: content, count: size)
    }

    /// Reads blob `id` in chunks. Loose objects are streamed; packed objects are read whole
    /// by libgit2 (its pack backend has no read stream) and handed over in chunks.
    public func readBlob(_ id: ObjectID, chunk: (UnsafeRawBufferPointer) throws -> Void) throws {
        let streamed: Bool = try withODB { odb in
            var stream: UnsafeMutablePointer<git_odb_stream>?
            var length = 0
            var type = GIT_OBJECT_INVALID
            var oid = id.oid
            guard git_odb_open_rstream(&stream, &length, &type, odb, &oid) == 0, let stream else {
                git_error_clear()
                return false
            }
            defer { git_odb_stream_free(stream) }
            var buffer = [CChar](repeating: 0, count: 1 << 20)
            var total = 0
            while total < length {
                let count = buffer.withUnsafeMutableBufferPointer { git_odb_stream_read(stream, $0.baseAddress, $0.count) }
                try check("git_odb_stream_read", count)
                if count == 0 { break }
                total += Int(count)
                try buffer.withUnsafeBytes { try chunk(UnsafeRawBufferPointer(rebasing: $0.prefix(Int(count)))) }
            }
            return true
        }
        if streamed { return }
        var blob: OpaquePointer?
        var oid = id.oid
        try check("git_blob_lookup", git_blob_lookup(&blob, pointer, &oid))
        defer { git_blob_free(blob) }
        let size = Int(git_blob_rawsize(blob))
        guard size > 0, let content = git_blob_rawcontent(blob) else { return }
        var offset = 0
        while offset < size {
            let count = min(1 << 20, size - offset)
            try chunk(UnsafeRawBufferPointer(start: content + offset, count: count))
            offset += count
        }
    }

    /// True when libgit2 judges blob `id` binary (a NUL byte or too many non-printable bytes
    /// near its start), the same heuristic git uses.
    public func isBinaryBlob(_ id: ObjectID) throws -> Bool {
        var blob: OpaquePointer?
        var oid = id.oid
        try check("git_blob_lookup", git_blob_lookup(&blob, pointer, &oid))
        defer { git_blob_free(blob) }
        return git_blob_is_binary(blob) == 1
    }

    // MARK: Trees

    /// Every file of tree `id`, recursively, with paths relative to the tree's root, in git's order.
    public func files(inTree id: ObjectID) throws -> [TreeFile] {
        var result: [TreeFile] = []
        try collectFiles(inTree: id, prefix: "", into: &result)
        return result
    }

    private func collectFiles(inTree id: ObjectID, prefix: String, into result: inout [TreeFile]) throws {
        var tree: OpaquePointer?
        var oid = id.oid
        try check("git_tree_lookup", git_tree_lookup(&tree, pointer, &oid))
        defer { git_tree_free(tree) }
        let count = git_tree_entrycount(tree)
        for index in 0..<count {
            guard let entry = git_tree_entry_byindex(tree, index) else { continue }
            let name = String(cString: git_tree_entry_name(entry))
            let entryID = ObjectID(git_tree_entry_id(entry))
            let rawMode = git_tree_entry_filemode(entry).rawValue
            let path = prefix.isEmpty ? name : prefix + "/" + name
            if rawMode == FileMode.tree.rawValue {
                try collectFiles(inTree: entryID, prefix: path, into: &result)
            } else {
                result.append(TreeFile(path: path, id: entryID, mode: FileMode(rawValue: rawMode) ?? .blob))
            }
        }
    }

    /// The blob at `path` in tree `id`, or nil if there is none.
    public func blob(atPath path: String, inTree id: ObjectID) throws -> ObjectID? {
        var tree: OpaquePointer?
        var oid = id.oid
        try check("git_tree_lookup", git_tree_lookup(&tree, pointer, &oid))
        defer { git_tree_free(tree) }
        var entry: OpaquePointer?
        let result = git_tree_entry_bypath(&entry, tree, path)
        if result == GIT_ENOTFOUND.rawValue { return nil }
        try check("git_tree_entry_bypath", result)
        defer { git_tree_entry_free(entry) }
        guard git_tree_entry_type(entry) == GIT_OBJECT_BLOB else { return nil }
        return ObjectID(git_tree_entry_id(entry))
    }

    // MARK: Commits

    /// Reads commit `id`.
    public func commit(_ id: ObjectID) throws -> Commit {
        var commit: OpaquePointer?
        var oid = id.oid
        try check("git_commit_lookup", git_commit_lookup(&commit, pointer, &oid))
        defer { git_commit_free(commit) }
        let parents = (0..<git_commit_parentcount(commit)).map { ObjectID(git_commit_parent_id(commit, $0)) }
        return Commit(
            id: id,
            tree: ObjectID(git_commit_tree_id(commit)),
            parents: parents,
            author: Signature(git_commit_author(commit)),
            committer: Signature(git_commit_committer(commit)),
            message: git_commit_message(commit).map { String(cString: $0) } ?? ""
        )
    }

    /// Writes a commit object without moving any reference; the caller moves the branch.
    public func createCommit(tree: ObjectID, parents: [ObjectID], author: Signature, committer: Signature, message: String) throws -> ObjectID {
        var treeObject: OpaquePointer?
        var treeOID = tree.oid
        try check("git_tree_lookup", git_tree_lookup(&treeObject, pointer, &treeOID))
        defer { git_tree_free(treeObject) }
        var parentObjects: [OpaquePointer?] = []
        defer { parentObjects.forEach { git_commit_free($0) } }
        for parent in parents {
            var object: OpaquePointer?
            var oid = parent.oid
            try check("git_commit_lookup", git_commit_lookup(&object, pointer, &oid))
            parentObjects.append(object)
        }
        var out = git_oid()
        try author.withGitSignature { authorSig in
            try committer.withGitSignature { committerSig in
                try parentObjects.withUnsafeMutableBufferPointer { buffer in
                    _ = try check("git_commit_create", git_commit_create(
                        &out, pointer, nil, authorSig, committerSig, nil, message, treeObject,
                        buffer.count, buffer.baseAddress))
                }
            }
        }
        return ObjectID(out)
    }

    // MARK: History

    /// Visits the commits reachable from `tips` but not from `hiding`, newest first in
    /// topological order (as `git log` lists them). Return false from `body` to stop early.
    public func walkHistory(from tips: [ObjectID], hiding: [ObjectID] = [], _ body: (ObjectID) throws -> Bool) throws {
        var walk: OpaquePointer?
        try check("git_revwalk_new", git_revwalk_new(&walk, pointer))
        defer { git_revwalk_free(walk) }
        try check("git_revwalk_sorting", git_revwalk_sorting(walk, GIT_SORT_TOPOLOGICAL.rawValue | GIT_SORT_TIME.rawValue))
        for tip in tips {
            var oid = tip.oid
            try check("git_revwalk_push", git_revwalk_push(walk, &oid))
        }
        for hidden in hiding {
            var oid = hidden.oid
            try check("git_revwalk_hide", git_revwalk_hide(walk, &oid))
        }
        var oid = git_oid()
        while true {
            let result = git_revwalk_next(&oid, walk)
            if result == GIT_ITEROVER.rawValue { return }
            try check("git_revwalk_next", result)
            if try !body(ObjectID(oid)) { return }
        }
    }

    /// The commits reachable from `tips` but not from `hiding`, newest first.
    public func history(from tips: [ObjectID], hiding: [ObjectID] = []) throws -> [ObjectID] {
        var ids: [ObjectID] = []
        try walkHistory(from: tips, hiding: hiding) { ids.append($0); return true }
        return ids
    }

    // MARK: Fetch

    /// Fetches `refspecs` from `url` (a path, `file://` URL or any transport libgit2 supports).
    /// `progress` sees the objects received so far and the total the remote announced.
    public func fetch(from url: String, refspecs: [String], progress: ((_ received: Int, _ total: Int) -> Void)? = nil) throws {
        var remote: OpaquePointer?
        try check("git_remote_create_anonymous", git_remote_create_anonymous(&remote, pointer, url))
        defer { git_remote_free(remote) }
        var options = git_fetch_options()
        try check("git_fetch_options_init", provenance_git_fetch_options_init(&options))
        options.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE
        let box = progress.map { FetchProgress($0) }
        if let box {
            options.callbacks.payload = Unmanaged.passUnretained(box).toOpaque()
            options.callbacks.transfer_progress = { stats, payload in
                guard let stats, let payload else { return 0 }
                let box = Unmanaged<FetchProgress>.fromOpaque(payload).takeUnretainedValue()
                box.report(Int(stats.pointee.received_objects), Int(stats.pointee.total_objects))
                return 0
            }
        }
        defer { withExtendedLifetime(box) {} }
        var cStrings = refspecs.map { strdup($0) }
        defer { cStrings.forEach { free($0) } }
        try cStrings.withUnsafeMutableBufferPointer { buffer in
            var array = git_strarray(strings: buffer.baseAddress, count: buffer.count)
            try check("git_remote_fetch", git_remote_fetch(remote, &array, &options, "provenance fetch"))
        }
    }
}

/// Carries a fetch's progress closure through libgit2's C callback.
private final class FetchProgress {
    let report: (Int, Int) -> Void
    init(_ report: @escaping (Int, Int) -> Void) { self.report = report }
}

extension Repository {
    /// The object database folder (shared by linked worktrees).
    var objectsDirectory: URL {
        let common = git_repository_commondir(pointer).map { String(cString: $0) } ?? path.path
        return URL(fileURLWithPath: common, isDirectory: true).appendingPathComponent("objects", isDirectory: true)
    }

    /// Copies every object of `source` into this repository as files, the way `git clone` does
    /// for a local path: packs and loose objects are hard-linked where the file system allows
    /// (they are immutable) and copied otherwise, with no pack to build and no delta search.
    ///
    /// - Returns: false, having copied nothing, when `source` borrows objects from elsewhere
    ///   (alternates) or is shallow; the caller then fetches instead.
    public func copyObjects(from source: Repository) throws -> Bool {
        let from = source.objectsDirectory
        let manager = FileManager.default
        if git_repository_is_shallow(source.pointer) == 1 { return false }
        if manager.fileExists(atPath: from.appendingPathComponent("info/alternates").path) { return false }
        let to = objectsDirectory
        func place(_ file: URL, at destination: URL) throws {
            if manager.fileExists(atPath: destination.path) { return }
            try manager.createDirectory(at: destination.deletingLastPathComponent(), withIntermediateDirectories: true)
            // Written under a temporary name, then renamed: a reader never sees half a file.
            let temporary = destination.deletingLastPathComponent().appendingPathComponent(".tmp-\(destination.lastPathComponent)")
            try? manager.removeItem(at: temporary)
            if link(file.path, temporary.path) != 0 {
                try manager.copyItem(at: file, to: temporary)
            }
            if rename(temporary.path, destination.path) != 0 {
                throw GitError(function: "rename", message: "cannot place \(destination.path): \(String(cString: strerror(errno)))")
            }
        }
        // Packs: each .pack before its .idx, since the index is what makes a pack visible.
        let packs = from.appendingPathComponent("pack")
        let names = (try? manager.contentsOfDirectory(atPath: packs.path)) ?? []
        for name in names.sorted() where name.hasSuffix(".pack") {
            let index = String(name.dropLast(".pack".count)) + ".idx"
            guard names.contains(index) else { continue }
            try place(packs.appendingPathComponent(name), at: to.appendingPathComponent("pack/\(name)"))
            try place(packs.appendingPathComponent(index), at: to.appendingPathComponent("pack/\(index)"))
        }
        // Loose objects: objects/XX/YYYY....
        for folder in (try? manager.contentsOfDirectory(atPath: from.path)) ?? [] where folder.utf8.count == 2 && folder.allSatisfy(\.isHexDigit) {
            for object in (try? manager.contentsOfDirectory(atPath: from.appendingPathComponent(folder).path)) ?? []
            where object.utf8.count == 38 && object.allSatisfy(\.isHexDigit) {
                try place(from.appendingPathComponent("\(folder)/\(object)"), at: to.appendingPathComponent("\(folder)/\(object)"))
            }
        }
        var odb: OpaquePointer?
        try check("git_repository_odb", git_repository_odb(&odb, pointer))
        defer { git_odb_free(odb) }
        try check("git_odb_refresh", git_odb_refresh(odb))
        return true
    }
}
