public import Foundation
public import Crypto

/// Ed25519 keys in the store's `keys/` folder: the registry's (it signs checkpoints) and each
/// node's (they sign call records). Private keys are files of mode 0600.
public struct KeyStore {
    public let folder: URL

    public init(folder: URL) { self.folder = folder }

    func file(_ name: String) -> URL { folder.appendingPathComponent("\(name).ed25519") }

    /// The registry's signing key, created on first use.
    public func registryKey() throws -> Curve25519.Signing.PrivateKey {
        if let key = try load("registry") { return key }
        let key = Curve25519.Signing.PrivateKey()
        try save(key, as: "registry")
        return key
    }

    /// Creates node `name`'s key pair; refuses to replace one.
    public func createNodeKey(_ name: String) throws -> Curve25519.Signing.PrivateKey {
        guard try load("node-\(name)") == nil else {
            throw ProvenanceError.conflict("a key for node '\(name)' already exists in \(folder.path)")
        }
        let key = Curve25519.Signing.PrivateKey()
        try save(key, as: "node-\(name)")
        return key
    }

    public func nodeKey(_ name: String) throws -> Curve25519.Signing.PrivateKey {
        guard let key = try load("node-\(name)") else {
            throw ProvenanceError.notFound("no private key for node '\(name)' in \(folder.path): only the node itself can sign its calls")
        }
        return key
    }

    /// Node `name`'s public key (raw, base64), made with its key pair first when this folder has
    /// none yet (a node registering with a registry, which never sees the private key); and
    /// whether it was made now.
    public func nodePublicKey(_ name: String, creatingIfMissing create: Bool) throws -> (publicKey: String, created: Bool) {
        if let key = try load("node-\(name)") { return (key.publicKey.rawRepresentation.base64EncodedString(), false) }
        guard create else { return try (nodeKey(name).publicKey.rawRepresentation.base64EncodedString(), false) }
        return (try createNodeKey(name).publicKey.rawRepresentation.base64EncodedString(), true)
    }

    public func removeNodeKey(_ name: String) {
        try? FileManager.default.removeItem(at: file("node-\(name)"))
    }

    func load(_ name: String) throws -> Curve25519.Signing.PrivateKey? {
        let url = file(name)
        guard FileManager.default.fileExists(atPath: url.path) else { return nil }
        let text = try String(contentsOf: url, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        guard let raw = Data(base64Encoded: text), let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: raw) else {
            throw ProvenanceError(.storage, "key file \(url.path) is not a base64 Ed25519 private key")
        }
        return key
    }

    func save(_ key: Curve25519.Signing.PrivateKey, as name: String) throws {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let url = file(name)
        let temporary = folder.appendingPathComponent(".\(name).\(UUID().uuidString)")
        let fd = open(temporary.path, O_CREAT | O_EXCL | O_WRONLY, 0o600)
        guard fd >= 0 else { throw ProvenanceError(.storage, "cannot write \(temporary.path): \(String(cString: strerror(errno)))") }
        let text = key.rawRepresentation.base64EncodedString() + "\n"
        let written = text.withCString { write(fd, $0, strlen($0)) }
        fsync(fd)
        close(fd)
        guard written == text.utf8.count, rename(temporary.path, url.path) == 0 else {
            unlink(temporary.path)
            throw ProvenanceError(.storage, "cannot write \(url.path)")
        }
    }
}
