public import Foundation
import GitKit

/// A file a client uploaded to the registry (`PUT /v1/uploads/{sha256}`), named in a commit
/// request by its SHA-256 and the path it takes in the dataset's tree.
public struct StagedFile: Codable, Sendable, Equatable {
    public var path: String
    public var sha256: String
    public var executable: Bool?

    public init(path: String, sha256: String, executable: Bool = false) {
        self.path = path
        self.sha256 = sha256
        self.executable = executable
    }
}

/// Writes one uploaded file into the store's `tmp/`, hashing it as it arrives, and
/// puts it in place under its SHA-256 only when the bytes hash to the name the client gave:
/// memory stays flat in the file's size, and a half-sent or altered upload leaves nothing.
public final class UploadStaging {
    public let sha256: String
    private let partial: URL
    private let final: URL
    private let descriptor: Int32
    private var hasher = StreamingSHA256()
    public private(set) var size: UInt64 = 0
    private var closed = false

    /// - Throws: `invalidArgument` when `sha256` is not 64 lowercase hex digits.
    public init(store: Store, sha256: String) throws {
        guard Store.isSHA256Hex(sha256) else {
            throw ProvenanceError.invalid("'\(sha256.prefix(80))' is not a SHA-256 (64 lowercase hex digits)")
        }
        self.sha256 = sha256
        let folder = store.temporaryURL
        final = store.stagedUpload(sha256)
        partial = folder.appendingPathComponent("upload-\(sha256).part-\(UUID().uuidString.lowercased())")
        descriptor = Foundation.open(partial.path, O_CREAT | O_EXCL | O_WRONLY, 0o644)
        guard descriptor >= 0 else {
            throw ProvenanceError(.storage, "cannot stage an upload in \(folder.path): \(String(cString: strerror(errno)))")
        }
    }

    deinit { discard() }

    /// Appends `bytes` to the staged file.
    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        hasher.update(bytes)
        size += UInt64(bytes.count)
        var offset = 0
        while offset < bytes.count {
            let written = Foundation.write(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
            if written < 0 {
                if errno == EINTR { continue }
                throw ProvenanceError(.storage, "cannot write the upload \(sha256): \(String(cString: strerror(errno)))")
            }
            offset += written
        }
    }

    /// Checks the SHA-256 of what was written and renames it into place.
    ///
    /// - Throws: `invalidArgument` naming both hashes when the bytes are not the ones named.
    public func finish() throws {
        let actual = hasher.finalizeHex()
        guard actual == sha256 else {
            discard()
            throw ProvenanceError.invalid("the uploaded bytes hash to \(actual), not \(sha256): upload the file again")
        }
        guard fsync(descriptor) == 0, close(descriptor) == 0 else {
            let message = String(cString: strerror(errno))
            discard()
            throw ProvenanceError(.storage, "cannot write the upload \(sha256): \(message)")
        }
        closed = true
        guard rename(partial.path, final.path) == 0 else {
            let message = String(cString: strerror(errno))
            unlink(partial.path)
            throw ProvenanceError(.storage, "cannot stage the upload \(sha256): \(message)")
        }
    }

    /// Removes the partial file (a failed or abandoned upload).
    public func discard() {
        guard !closed else { return }
        closed = true
        close(descriptor)
        unlink(partial.path)
    }
}

extension Store {
    /// An uploaded file waiting in `tmp/` for the commit request that names it.
    func stagedUpload(_ sha256: String) -> URL { temporaryURL.appendingPathComponent("upload-\(sha256)") }

    static func isSHA256Hex(_ text: String) -> Bool {
        text.utf8.count == 64 && text.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
    }

    /// Commits uploaded files to `dataset` as one commit authored by `contributor`, exactly as
    /// `add(dataset:paths:…)` commits files from disk; the uploads it used are removed after.
    ///
    /// - Throws: `invalidArgument` for a bad path or an upload that is not staged; whatever
    ///   `add` throws. Nothing is written to the dataset when it throws.
    /// - Returns: what `add` returns, and the manifest entries of the files this commit added
    ///   (each SHA-256 computed here from the stored bytes, for the client to check).
    public func add(dataset: String, staged: [StagedFile], contributor: Identity, message: String?,
                    date: Date = Date()) throws -> (AddResult, added: [Manifest.Entry]) {
        try Names.validateDatasetName(dataset)
        guard !staged.isEmpty else { throw ProvenanceError.invalid("nothing to add: the request names no files") }
        var files: [DatasetFile] = []
        var seen = Set<String>()
        for file in staged {
            let treePath = try DatasetFileCollector.treeComponents(of: file.path, what: "path").joined(separator: "/")
            guard !treePath.isEmpty else { throw ProvenanceError.invalid("the path '\(file.path)' names no file") }
            guard seen.insert(treePath).inserted else {
                throw ProvenanceError.invalid("'\(treePath)' is named twice in the request")
            }
            guard Self.isSHA256Hex(file.sha256) else {
                throw ProvenanceError.invalid("'\(file.sha256.prefix(80))' (for '\(treePath)') is not a SHA-256 (64 lowercase hex digits)")
            }
            let source = stagedUpload(file.sha256).path
            var info = stat()
            guard lstat(source, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
                throw ProvenanceError.invalid("'\(treePath)' names upload \(file.sha256), which is not on the registry: PUT it to /v1/uploads/\(file.sha256) first")
            }
            files.append(DatasetFile(sourcePath: source, treePath: treePath, kind: .regular(executable: file.executable ?? false),
                                     size: UInt64(info.st_size)))
        }
        let result = try add(files: files, dataset: dataset, contributor: contributor, message: message, date: date)
        for sha256 in Set(staged.map(\.sha256)) { unlink(stagedUpload(sha256).path) }
        let manifest = try index.manifest(dataset: dataset, commit: result.commit)
            .map { try JSONDecoder().decode(Manifest.self, from: $0) }
        let byPath = Dictionary((manifest?.files ?? []).map { ($0.path, $0) }, uniquingKeysWith: { first, _ in first })
        return (result, files.compactMap { byPath[$0.treePath] })
    }
}

/// A file on this machine that `provenance add --registry` uploads, with its path in the
/// dataset, its size and SHA-256 as read here.
public struct UploadableFile: Sendable {
    public var sourcePath: String
    public var treePath: String
    public var executable: Bool
    public var size: UInt64
    public var sha256: String
}

extension Store {
    /// The files `provenance add DATASET PATH... [--to DIR]` would commit, chosen by the same
    /// rules as a local add, each hashed here in one streaming pass.
    ///
    /// - Throws: `invalidArgument` for what a local add refuses, and for a symbolic link
    ///   (the upload route carries file contents only).
    public static func uploadableFiles(paths: [String], workingDirectory: URL, destination: String?) throws -> [UploadableFile] {
        let nowhere = URL(fileURLWithPath: "/nonexistent-provenance-store-\(UUID().uuidString)")
        return try DatasetFileCollector.collect(paths: paths, workingDirectory: workingDirectory, destination: destination,
                                                storeRoot: nowhere).map { file in
            guard case .regular(let executable) = file.kind else {
                throw ProvenanceError.invalid("'\(file.sourcePath)' is a symbolic link: a registry takes regular files only; add it to a local store")
            }
            let (sha256, size) = try sha256(ofFileAt: file.sourcePath)
            return UploadableFile(sourcePath: file.sourcePath, treePath: file.treePath, executable: executable, size: size, sha256: sha256)
        }
    }

    /// The SHA-256 and size of a file, read in 1 MiB chunks.
    public static func sha256(ofFileAt path: String) throws -> (String, UInt64) {
        let descriptor = Foundation.open(path, O_RDONLY)
        guard descriptor >= 0 else { throw ProvenanceError.invalid("cannot read '\(path)': \(String(cString: strerror(errno)))") }
        defer { close(descriptor) }
        var hasher = StreamingSHA256()
        var size: UInt64 = 0
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            let count = read(descriptor, buffer.baseAddress!, buffer.count)
            if count < 0 {
                if errno == EINTR { continue }
                throw ProvenanceError.invalid("cannot read '\(path)': \(String(cString: strerror(errno)))")
            }
            if count == 0 { break }
            hasher.update(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
            size += UInt64(count)
        }
        return (hasher.finalizeHex(), size)
    }
}
