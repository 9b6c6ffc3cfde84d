public import Foundation
public import Crypto

/// The latest checkpoint that a quorum of the registry's witnesses cosigned: the registry's
/// signed note with the witnesses' cosignature lines after its own. Kept beside the index
/// (`witnessed-checkpoint.json`), written whole and renamed into place.
public struct CosignedCheckpoint: Codable, Sendable, Equatable {
    public var size: Int
    public var rootHash: String
    /// The note with every signature line: the registry's, then each witness's.
    public var note: String
    /// The names of the witnesses whose cosignatures it carries.
    public var witnesses: [String]

    public init(size: Int, rootHash: String, note: String, witnesses: [String]) {
        self.size = size
        self.rootHash = rootHash
        self.note = note
        self.witnesses = witnesses
    }

    enum CodingKeys: String, CodingKey {
        case size, note, witnesses
        case rootHash = "root_hash"
    }
}

extension Store {
    var cosignedCheckpointURL: URL { root.appendingPathComponent("witnessed-checkpoint.json") }

    /// The latest checkpoint a quorum of witnesses cosigned, if any.
    public func cosignedCheckpoint() throws -> CosignedCheckpoint? {
        guard FileManager.default.fileExists(atPath: cosignedCheckpointURL.path) else { return nil }
        do { return try JSONDecoder().decode(CosignedCheckpoint.self, from: Data(contentsOf: cosignedCheckpointURL)) } catch {
            throw ProvenanceError(.storage, "the cosigned checkpoint \(cosignedCheckpointURL.path) cannot be read: \(error)")
        }
    }

    /// Records a cosigned checkpoint, unless one at least as large is recorded.
    public func record(_ cosigned: CosignedCheckpoint) throws {
        if let current = try cosignedCheckpoint(), current.size > cosigned.size { return }
        let temporary = root.appendingPathComponent(".witnessed-checkpoint.\(UUID().uuidString)")
        do {
            try JSONEncoder().encode(cosigned).write(to: temporary)
            guard rename(temporary.path, cosignedCheckpointURL.path) == 0 else { throw ProvenanceError(.storage, String(cString: strerror(errno))) }
        } catch {
            try? FileManager.default.removeItem(at: temporary)
            throw ProvenanceError(.storage, "cannot record the cosigned checkpoint: \(error)")
        }
    }
}

extension Witness {
    /// The witness's Ed25519 key in `folder` (`witness.ed25519`, mode 0600), created on first use.
    public static func key(in folder: URL) throws -> Curve25519.Signing.PrivateKey {
        let keys = KeyStore(folder: folder)
        if let key = try keys.load("witness") { return key }
        let key = Curve25519.Signing.PrivateKey()
        try keys.save(key, as: "witness")
        return key
    }
}
