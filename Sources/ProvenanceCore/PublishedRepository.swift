public import Foundation
import GitKit

/// The two kinds of repository a store keeps, by the folder (and URL segment) that holds them.
public enum RepositoryKind: String, Sendable, CaseIterable {
    case datasets, models
}

/// A dataset or model repository as git's "dumb" HTTP protocol reads it: the few files
/// `git update-server-info` would write (`info/refs`, `objects/info/packs`), generated from the
/// repository itself on every request, plus the files of the object database, which are
/// immutable once written. Read-only: nothing here writes to the repository.
///
/// Paths are never taken from a client as they are: a loose object is named by its 40 hex
/// digits and a pack by `pack-<40 hex>.pack|idx`, and anything else is not there (nil).
public struct PublishedRepository: Sendable {
    public let kind: RepositoryKind
    public let name: String
    /// The bare repository.
    public let url: URL

    /// `info/refs`: one `<id>\t<ref>` line per reference, sorted, with `<id>\t<ref>^{}` after an
    /// annotated tag, as `git update-server-info` writes it.
    public func infoRefs() throws -> Data {
        let repository = try open()
        var text = ""
        for reference in try repository.advertisedReferences() {
            text += "\(reference.target.hex)\t\(reference.name)\n"
            if let peeled = reference.peeled { text += "\(peeled.hex)\t\(reference.name)^{}\n" }
        }
        return Data(text.utf8)
    }

    /// `HEAD`: the symbolic reference of the default branch (`ref: refs/heads/main`).
    public func head() throws -> Data {
        let name = try open().headReferenceName()
        guard name.hasPrefix("refs/") else {
            throw ProvenanceError(.git, "the HEAD of \(kind.rawValue)/\(name).git is detached")
        }
        return Data("ref: \(name)\n".utf8)
    }

    /// `objects/info/packs`: a `P pack-….pack` line per complete pack (one with its index),
    /// then a blank line, as `git update-server-info` writes it.
    public func infoPacks() throws -> Data {
        let folder = try open().objectDatabaseDirectory.appendingPathComponent("pack", isDirectory: true)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        let present = Set(names)
        let packs = names.filter { Self.isPackName($0) && $0.hasSuffix(".pack") && present.contains(String($0.dropLast(5)) + ".idx") }
        return Data((packs.sorted().map { "P \($0)\n" }.joined() + "\n").utf8)
    }

    /// The file of loose object `prefix` + `suffix` (2 and 38 lowercase hex digits), or nil.
    public func looseObject(prefix: String, suffix: String) throws -> URL? {
        guard prefix.utf8.count == 2, suffix.utf8.count == 38, (prefix + suffix).utf8.allSatisfy(Self.isLowerHex) else { return nil }
        let file = try open().objectDatabaseDirectory.appendingPathComponent(prefix, isDirectory: true).appendingPathComponent(suffix)
        return Self.isRegularFile(file) ? file : nil
    }

    /// The file of `pack-<40 hex>.pack` or `.idx`, or nil.
    public func packFile(_ fileName: String) throws -> URL? {
        guard Self.isPackName(fileName) else { return nil }
        let file = try open().objectDatabaseDirectory.appendingPathComponent("pack", isDirectory: true).appendingPathComponent(fileName)
        return Self.isRegularFile(file) ? file : nil
    }

    private func open() throws -> Repository {
        do { return try Repository.open(at: url) } catch {
            throw ProvenanceError(.git, "cannot open the repository of \(kind.rawValue)/\(name): \(error)")
        }
    }

    /// `pack-` + 40 lowercase hex digits + `.pack` or `.idx`.
    static func isPackName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        let stem: ArraySlice<UInt8>
        if name.hasSuffix(".pack") { stem = bytes.dropLast(5)[...] } else if name.hasSuffix(".idx") { stem = bytes.dropLast(4)[...] } else { return false }
        guard stem.count == 45, stem.starts(with: Array("pack-".utf8)) else { return false }
        return stem.dropFirst(5).allSatisfy(isLowerHex)
    }

    static func isLowerHex(_ byte: UInt8) -> Bool { (byte >= 48 && byte <= 57) || (byte >= 97 && byte <= 102) }

    /// A regular file, not a link or folder: the object database holds nothing else worth serving.
    static func isRegularFile(_ url: URL) -> Bool {
        var status = stat()
        guard lstat(url.path, &status) == 0 else { return false }
        return (status.st_mode & S_IFMT) == S_IFREG
    }
}

extension Store {
    /// Repository `name` of `kind`, if the store has it; nil for a malformed name or none.
    public func publishedRepository(_ kind: RepositoryKind, name: String) -> PublishedRepository? {
        guard Names.isValidName(name) else { return nil }
        let url = kind == .datasets ? datasetRepositoryURL(name) : modelRepositoryURL(name)
        guard FileManager.default.fileExists(atPath: url.appendingPathComponent("HEAD").path) else { return nil }
        return PublishedRepository(kind: kind, name: name, url: url)
    }
}
