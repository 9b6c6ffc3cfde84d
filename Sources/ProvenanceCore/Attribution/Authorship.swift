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
}

/// Computes which contributor authored each byte of a dataset commit.
///
/// Text files are blamed line by line (a line's bytes include its newline); a binary file
/// (a NUL byte in its first 8,000 bytes, git's own test) goes whole to the last author who
/// changed it and counts no lines. Symbolic links count like binary files; submodules not at
/// all. Authors are mapped through the commit's `.mailmap` to contributor ids.
public struct DatasetAuthorship {
    let repository: Repository
    let commit: ObjectID
    let mailmap: Mailmap
    private var authorCache: [ObjectID: String] = [:]

    public init(repository: URL, commit: String) throws {
        self.repository = try Repository.open(at: repository)
        guard let id = ObjectID(hex: commit) else { throw ProvenanceError.invalid("'\(commit)' is not a commit id") }
        self.commit = id
        self.mailmap = try Store.mailmap(at: id, in: self.repository)
    }

    /// The contributor id of `commit`'s author.
    mutating func contributor(of commit: ObjectID) throws -> String {
        if let id = authorCache[commit] { return id }
        let author = try repository.commit(commit).author
        let id = mailmap.resolve(name: author.name, email: author.email).email.lowercased()
        authorCache[commit] = id
        return id
    }

    /// Every file's authorship, reusing `cache` for this commit, or for unchanged files of its
    /// single parent when the parent is cached (blame of an unchanged file is the parent's).
    public mutating func files(dataset: String, cache: (any AuthorshipCache)?) throws -> [FileAuthorship] {
        if let cached = try cache?.authorship(dataset: dataset, commit: commit.hex) { return cached }
        let read = try repository.commit(commit)
        var reusable: [String: FileAuthorship] = [:]
        if read.parents.count == 1, let parentFiles = try cache?.authorship(dataset: dataset, commit: read.parents[0].hex) {
            for file in parentFiles { reusable[file.path] = file }
        }
        var result: [FileAuthorship] = []
        for file in try repository.files(inTree: read.tree) where file.mode != .submodule {
            if let previous = reusable[file.path], previous.blob == file.id.hex {
                result.append(previous)
            } else {
                result.append(try authorship(of: file))
            }
        }
        try cache?.storeAuthorship(result, dataset: dataset, commit: commit.hex)
        return result
    }

    mutating func authorship(of file: TreeFile) throws -> FileAuthorship {
        let content = try repository.readBlob(file.id)
        if file.mode == .symlink || Self.isBinary(content) {
            let last = try repository.lastCommitChanging(path: file.path, from: commit)
            return FileAuthorship(path: file.path, blob: file.id.hex,
                                  amounts: [try contributor(of: last): .init(bytes: UInt64(content.count), lines: 0)])
        }
        var amounts: [String: FileAuthorship.Amount] = [:]
        let authors = try lineAuthors(path: file.path, content: content)
        let lengths = Self.lineLengths(content)
        for (index, author) in authors.enumerated() {
            amounts[author, default: .init(bytes: 0, lines: 0)].bytes += UInt64(lengths[index])
            amounts[author, default: .init(bytes: 0, lines: 0)].lines += 1
        }
        return FileAuthorship(path: file.path, blob: file.id.hex, amounts: amounts)
    }

    /// The contributor id of each line of `path` (0-based), as git blame assigns them.
    public mutating func lineAuthors(path: String) throws -> [String] {
        guard let blob = try repository.blob(atPath: path, inCommit: commit) else {
            throw ProvenanceError.notFound("no file '\(path)' at \(commit.short)")
        }
        return try lineAuthors(path: path, content: try repository.readBlob(blob))
    }

    private mutating func lineAuthors(path: String, content: Data) throws -> [String] {
        let lineCount = Self.lineLengths(content).count
        var authors: [String] = []
        authors.reserveCapacity(lineCount)
        for hunk in try repository.blame(path: path, at: commit) {
            let id = try contributor(of: hunk.commit)
            authors.append(contentsOf: repeatElement(id, count: hunk.lineCount))
        }
        guard authors.count == lineCount else {
            throw ProvenanceError(.git, "blame of '\(path)' at \(commit.short) covers \(authors.count) lines, the file has \(lineCount)")
        }
        return authors
    }

    /// git's test for binary content: a NUL byte in the first 8,000 bytes.
    public static func isBinary(_ content: Data) -> Bool {
        content.prefix(8000).contains(0)
    }

    /// The length of each line, newline included; a last line without one counts as it is.
    static func lineLengths(_ content: Data) -> [Int] {
        var lengths: [Int] = []
        var start = 0
        content.withUnsafeBytes { raw in
            for (index, byte) in raw.enumerated() where byte == 0x0A {
                lengths.append(index + 1 - start)
                start = index + 1
            }
        }
        if start < content.count { lengths.append(content.count - start) }
        return lengths
    }
}
