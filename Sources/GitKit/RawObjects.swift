internal import CGit2
internal import Foundation

/// The 20 bytes of a git object id, held as integers so hashing and comparing cost nothing in
/// the blame walk's hot loops (`ObjectID` keeps the hex text, which is what callers want).
struct RawOID: Hashable {
    var a: UInt64
    var b: UInt64
    var c: UInt32

    init(_ oid: git_oid) {
        var copy = oid
        (a, b, c) = withUnsafeBytes(of: &copy.id) { raw in
            (raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self),
             raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self),
             raw.loadUnaligned(fromByteOffset: 16, as: UInt32.self))
        }
    }

    init(_ pointer: UnsafePointer<git_oid>) { self.init(pointer.pointee) }

    init(_ id: ObjectID) { self.init(id.oid) }

    var oid: git_oid {
        var oid = git_oid()
        withUnsafeMutableBytes(of: &oid.id) { raw in
            raw.storeBytes(of: a, toByteOffset: 0, as: UInt64.self)
            raw.storeBytes(of: b, toByteOffset: 8, as: UInt64.self)
            raw.storeBytes(of: c, toByteOffset: 16, as: UInt32.self)
        }
        return oid
    }

    var objectID: ObjectID { ObjectID(oid) }
}

/// A file (blob, symbolic link or submodule) that differs between two trees.
struct TreeChange {
    var path: String
    /// The entry in the old tree; nil when the path was added.
    var old: (id: RawOID, mode: UInt32)?
    /// The entry in the new tree; nil when the path was deleted.
    var new: (id: RawOID, mode: UInt32)?
}

/// git's kinds of tree entry as `S_IFMT` tells them apart: a mode change between 100644 and
/// 100755 is a modification, a change between a file, a link and a submodule is a type change.
func fileType(_ mode: UInt32) -> UInt32 { mode & 0o170000 }

let regularFileType: UInt32 = 0o100000

extension Repository {
    /// Every file that differs between tree `old` and tree `new` (nil: an empty tree), without
    /// rename detection, in git's path order. Subtrees with the same id are skipped unread, so
    /// the cost follows the size of the change rather than of the trees.
    func treeChanges(from old: RawOID?, to new: RawOID?) throws -> [TreeChange] {
        var changes: [TreeChange] = []
        try collectChanges(old: old, new: new, prefix: [], into: &changes)
        return changes
    }

    private func collectChanges(old: RawOID?, new: RawOID?, prefix: [UInt8], into changes: inout [TreeChange]) throws {
        if old == new { return }
        // Entries are read in place from libgit2's trees: names are compared as C strings, and
        // only changed entries get a path.
        var oldTree: OpaquePointer?
        var newTree: OpaquePointer?
        if let old {
            var oid = old.oid
            try check("git_tree_lookup", git_tree_lookup(&oldTree, pointer, &oid))
        }
        defer { git_tree_free(oldTree) }
        if let new {
            var oid = new.oid
            try check("git_tree_lookup", git_tree_lookup(&newTree, pointer, &oid))
        }
        defer { git_tree_free(newTree) }
        let oldCount = oldTree.map { git_tree_entrycount($0) } ?? 0
        let newCount = newTree.map { git_tree_entrycount($0) } ?? 0

        func path(_ entry: OpaquePointer) -> [UInt8] {
            let name = git_tree_entry_name(entry)!
            let length = strlen(name)
            let bytes = name.withMemoryRebound(to: UInt8.self, capacity: length) { UnsafeBufferPointer(start: $0, count: length) }
            return prefix.isEmpty ? Array(bytes) : prefix + [0x2F] + bytes
        }
        func isTree(_ entry: OpaquePointer) -> Bool { git_tree_entry_filemode(entry).rawValue == 0o040000 }
        func side(_ entry: OpaquePointer) -> (id: RawOID, mode: UInt32) {
            (RawOID(git_tree_entry_id(entry)), git_tree_entry_filemode(entry).rawValue)
        }
        func removed(_ entry: OpaquePointer) throws {
            if isTree(entry) {
                try collectChanges(old: RawOID(git_tree_entry_id(entry)), new: nil, prefix: path(entry), into: &changes)
            } else {
                changes.append(TreeChange(path: String(decoding: path(entry), as: UTF8.self), old: side(entry), new: nil))
            }
        }
        func added(_ entry: OpaquePointer) throws {
            if isTree(entry) {
                try collectChanges(old: nil, new: RawOID(git_tree_entry_id(entry)), prefix: path(entry), into: &changes)
            } else {
                changes.append(TreeChange(path: String(decoding: path(entry), as: UTF8.self), old: nil, new: side(entry)))
            }
        }
        var i = 0
        var j = 0
        while i < oldCount || j < newCount {
            if i == oldCount { try added(git_tree_entry_byindex(newTree, j)); j += 1; continue }
            if j == newCount { try removed(git_tree_entry_byindex(oldTree, i)); i += 1; continue }
            let a = git_tree_entry_byindex(oldTree, i)!
            let b = git_tree_entry_byindex(newTree, j)!
            let order = Self.compareTreeNames(git_tree_entry_name(a), isTree(a), git_tree_entry_name(b), isTree(b))
            if order < 0 {
                try removed(a); i += 1
            } else if order > 0 {
                try added(b); j += 1
            } else {
                let oldSide = side(a)
                let newSide = side(b)
                if isTree(a) {
                    if oldSide.id != newSide.id { try collectChanges(old: oldSide.id, new: newSide.id, prefix: path(a), into: &changes) }
                } else if oldSide.id != newSide.id || oldSide.mode != newSide.mode {
                    changes.append(TreeChange(path: String(decoding: path(a), as: UTF8.self), old: oldSide, new: newSide))
                }
                i += 1
                j += 1
            }
        }
    }

    /// git's `base_name_compare` on C strings: bytewise, a tree as if its name ended in '/'.
    static func compareTreeNames(_ a: UnsafePointer<CChar>, _ aIsTree: Bool, _ b: UnsafePointer<CChar>, _ bIsTree: Bool) -> Int {
        var k = 0
        while true {
            let ca = UInt8(bitPattern: a[k])
            let cb = UInt8(bitPattern: b[k])
            if ca == 0 || cb == 0 || ca != cb {
                let x: UInt8 = ca != 0 ? ca : (aIsTree ? 0x2F : 0)
                let y: UInt8 = cb != 0 ? cb : (bIsTree ? 0x2F : 0)
                if ca != 0 && cb != 0 { return ca < cb ? -1 : 1 }
                return x < y ? -1 : (x > y ? 1 : 0)
            }
            k += 1
        }
    }

    /// git's `base_name_compare`: names compare bytewise, a tree as if its name ended in '/'.
    static func compareTreeNames(_ a: [UInt8], _ aIsTree: Bool, _ b: [UInt8], _ bIsTree: Bool) -> Int {
        let common = min(a.count, b.count)
        for k in 0..<common where a[k] != b[k] { return a[k] < b[k] ? -1 : 1 }
        let ca: UInt8 = a.count > common ? a[common] : (aIsTree ? 0x2F : 0)
        let cb: UInt8 = b.count > common ? b[common] : (bIsTree ? 0x2F : 0)
        return ca < cb ? -1 : (ca > cb ? 1 : 0)
    }

    /// Runs `body` over the bytes of blob `id`, without copying them.
    func withBlobBytes<T>(_ id: RawOID, _ body: (UnsafeRawBufferPointer) throws -> T) throws -> T {
        var blob: OpaquePointer?
        var oid = id.oid
        try check("git_blob_lookup", git_blob_lookup(&blob, pointer, &oid))
        defer { git_blob_free(blob) }
        let size = Int(git_blob_rawsize(blob))
        return try body(UnsafeRawBufferPointer(start: git_blob_rawcontent(blob), count: size))
    }

    /// The changed regions between `old` and `new` content, as `git blame` sees them: xdiff's
    /// Myers diff with the indent heuristic, no context, everything treated as text.
    /// Starts are 0-based line numbers.
    static func lineHunks(from old: Data, to new: Data) throws -> [LineHunk] {
        var options = git_diff_options()
        try check("git_diff_options_init", provenance_git_diff_options_init(&options))
        options.context_lines = 0
        options.interhunk_lines = 0
        options.flags = GIT_DIFF_FORCE_TEXT.rawValue | GIT_DIFF_INDENT_HEURISTIC.rawValue
        var hunks: [LineHunk] = []
        var empty: UInt8 = 0
        try old.withUnsafeBytes { oldBytes in
            try new.withUnsafeBytes { newBytes in
                try withUnsafeMutablePointer(to: &empty) { nothing in
                    _ = try withUnsafeMutablePointer(to: &hunks) { box in
                        try check("git_diff_buffers", git_diff_buffers(
                            oldBytes.baseAddress ?? UnsafeRawPointer(nothing), oldBytes.count, nil,
                            newBytes.baseAddress ?? UnsafeRawPointer(nothing), newBytes.count, nil,
                            &options, nil, nil, { _, hunk, payload in
                                guard let hunk, let payload else { return 0 }
                                let h = hunk.pointee
                                // A header's start names the line before an empty range (unified diff's rule).
                                let oldStart = Int(h.old_lines > 0 ? h.old_start - 1 : h.old_start)
                                let newStart = Int(h.new_lines > 0 ? h.new_start - 1 : h.new_start)
                                payload.assumingMemoryBound(to: [LineHunk].self).pointee.append(
                                    LineHunk(oldStart: oldStart, oldCount: Int(h.old_lines), newStart: newStart, newCount: Int(h.new_lines)))
                                return 0
                            }, nil, box))
                    }
                }
            }
        }
        return hunks
    }
}

/// Blob contents the walk will likely diff again (the parent's side of one diff is the child's
/// side of the next), kept up to a byte budget, oldest dropped first.
final class BlobContents {
    private var cache: [RawOID: Data] = [:]
    private var order: [RawOID] = []
    private var head = 0
    private var bytes = 0
    private let budget: Int

    init(budget: Int = 64 << 20) { self.budget = budget }

    func content(of id: RawOID, in repository: Repository) throws -> Data {
        if let known = cache[id] { return known }
        let data = try repository.withBlobBytes(id) { Data($0) }
        cache[id] = data
        order.append(id)
        bytes += data.count
        while bytes > budget, head < order.count {
            if let dropped = cache.removeValue(forKey: order[head]) { bytes -= dropped.count }
            head += 1
        }
        if head > 4096 && head * 2 > order.count {
            order.removeFirst(head)
            head = 0
        }
        return data
    }
}

/// One changed region of a line diff (0-based starts).
struct LineHunk {
    var oldStart: Int
    var oldCount: Int
    var newStart: Int
    var newCount: Int
}
