public import Foundation
public import Crypto

/// A witness's Ed25519 key for tlog-cosignature/v1 (https://c2sp.org/tlog-cosignature):
/// timestamped cosignatures over checkpoints, key ID from signature type 0x04.
public struct CosignatureSigner: Sendable {
    /// The witness's name, on every signature line (a schema-less URL by convention).
    public let name: String
    private let privateKeyBytes: Data

    public init(name: String, privateKey: Curve25519.Signing.PrivateKey) throws {
        try SignedNoteFormat.checkKeyName(name)
        self.name = name
        privateKeyBytes = privateKey.rawRepresentation
    }

    var privateKey: Curve25519.Signing.PrivateKey { try! Curve25519.Signing.PrivateKey(rawRepresentation: privateKeyBytes) }

    /// The verifier: name, key ID and public key.
    public var verifier: CosignatureVerifier { CosignatureVerifier(name: name, publicKey: privateKey.publicKey) }

    /// `<name>+<hex key ID>+<base64(0x04 ‖ public key)>`.
    public var verifierKey: String { verifier.verifierKey }

    /// The signature line `— <name> base64(key ID ‖ timestamp ‖ Ed25519 signature)\n` over
    /// `cosignature/v1\ntime <timestamp>\n` followed by the checkpoint's note text.
    public func cosign(_ checkpoint: Checkpoint, timestamp: UInt64) throws -> String {
        let signature = try privateKey.signature(for: CosignatureVerifier.message(checkpoint.body, timestamp: timestamp))
        var blob = withUnsafeBytes(of: verifier.keyID.bigEndian) { Data($0) }
        blob.append(withUnsafeBytes(of: timestamp.bigEndian) { Data($0) })
        blob.append(signature)
        return SignedNoteFormat.signaturePrefix + name + " " + blob.base64EncodedString() + "\n"
    }
}

/// Checks tlog-cosignature/v1 Ed25519 cosignatures by one witness.
public struct CosignatureVerifier: Sendable, Equatable {
    static let signatureType: UInt8 = 0x04
    public let name: String
    private let publicKeyBytes: Data

    public init(name: String, publicKey: Curve25519.Signing.PublicKey) {
        self.name = name
        publicKeyBytes = publicKey.rawRepresentation
    }

    /// Parses `<name>+<hex key ID>+<base64(0x04 ‖ Ed25519 public key)>`.
    public init(verifierKey: String) throws {
        let parts = verifierKey.split(separator: "+", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3 else { throw SignedNoteError.malformedVerifierKey("expected <name>+<key ID>+<key>") }
        let name = String(parts[0])
        try SignedNoteFormat.checkKeyName(name)
        guard let key = SignedNoteFormat.decodeCanonicalBase64(Array(parts[2].utf8)), key.count == 33, key.first == Self.signatureType,
              let publicKey = try? Curve25519.Signing.PublicKey(rawRepresentation: key.dropFirst()) else {
            throw SignedNoteError.malformedVerifierKey("a witness key is base64 of 0x04 and a 32-byte Ed25519 public key")
        }
        self.init(name: name, publicKey: publicKey)
        guard parts[1] == Substring(SignedNoteFormat.hex(keyID)) else {
            throw SignedNoteError.malformedVerifierKey("the key ID \(parts[1].prefix(16)) does not match the name and key")
        }
    }

    public var publicKey: Curve25519.Signing.PublicKey { try! Curve25519.Signing.PublicKey(rawRepresentation: publicKeyBytes) }

    /// SHA-256(name ‖ "\n" ‖ 0x04 ‖ public key)[:4].
    public var keyID: UInt32 {
        var hasher = SHA256()
        hasher.update(data: Array(name.utf8) + [0x0A, Self.signatureType])
        hasher.update(data: publicKeyBytes)
        return hasher.finalize().prefix(4).reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
    }

    public var verifierKey: String {
        "\(name)+\(SignedNoteFormat.hex(keyID))+\((Data([Self.signatureType]) + publicKeyBytes).base64EncodedString())"
    }

    static func message(_ body: String, timestamp: UInt64) -> Data {
        Data("cosignature/v1\ntime \(timestamp)\n\(body)".utf8)
    }

    /// The timestamp of this witness's valid cosignature on `note` (a checkpoint with its
    /// signature lines), or nil when the note carries none that verifies.
    public func cosignedTime(of note: String) -> UInt64? {
        guard let (text, lines) = SignedNoteFormat.split(note) else { return nil }
        let prefix = SignedNoteFormat.signaturePrefix + name + " "
        for line in lines where line.hasPrefix(prefix) {
            guard let blob = SignedNoteFormat.decodeCanonicalBase64(Array(line.dropFirst(prefix.count).utf8)), blob.count == 76,
                  blob.prefix(4).reduce(UInt32(0), { $0 << 8 | UInt32($1) }) == keyID else { continue }
            let timestamp = blob.dropFirst(4).prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            guard timestamp < 1 << 63 else { continue }
            if publicKey.isValidSignature(blob.suffix(64), for: Self.message(text, timestamp: timestamp)) { return timestamp }
        }
        return nil
    }
}

extension SignedNoteFormat {
    /// A note's text (with its final newline) and its signature lines (without newlines); nil
    /// when it has no blank line before a signature block.
    static func split(_ note: String) -> (text: String, signatures: [String])? {
        let bytes = Array(note.utf8)
        guard let blank = lastBlankLine(in: bytes), bytes.last == 0x0A else { return nil }
        let text = String(decoding: bytes[..<(blank + 1)], as: UTF8.self)
        let lines = String(decoding: bytes[(blank + 2)...], as: UTF8.self).split(separator: "\n").map(String.init)
        return lines.isEmpty ? nil : (text, lines)
    }
}
