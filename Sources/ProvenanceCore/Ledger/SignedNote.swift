public import Foundation
public import Crypto

/// Why a signed note or checkpoint was refused. Every description is a single line.
public enum SignedNoteError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A key name is empty or contains whitespace or '+'.
    case invalidKeyName(String)
    /// A verifier key string is not `<name>+<hex key ID>+<base64(0x01 ‖ Ed25519 public key)>`.
    case malformedVerifierKey(String)
    /// The text to sign is not valid note text.
    case invalidNoteText(String)
    /// The checkpoint to sign cannot be written as a checkpoint body.
    case invalidCheckpoint(String)
    /// The note does not have the signed-note shape.
    case malformedNote(String)
    /// No signature line carries the verifier's key name and key ID.
    case unknownKey(name: String, keyID: UInt32)
    /// The signature line for the verifier's key does not verify over the note text.
    case badSignature(name: String, keyID: UInt32)
    /// The verified note text is not a checkpoint body.
    case malformedCheckpoint(String)
    /// The checkpoint's tree size line is not a decimal size without leading zeros.
    case malformedSize(String)
    /// The checkpoint's root hash line is not the base64 of 32 bytes.
    case malformedRootHash(String)

    public var description: String {
        switch self {
        case .invalidKeyName(let name):
            "invalid note key name \(Self.quoted(name)): it must be non-empty without whitespace or '+'"
        case .malformedVerifierKey(let reason):
            "malformed verifier key: \(reason)"
        case .invalidNoteText(let reason):
            "invalid note text: \(reason)"
        case .invalidCheckpoint(let reason):
            "invalid checkpoint: \(reason)"
        case .malformedNote(let reason):
            "malformed signed note: \(reason)"
        case .unknownKey(let name, let keyID):
            "unknown key: no signature by \(Self.quoted(name)) with key ID \(SignedNoteFormat.hex(keyID))"
        case .badSignature(let name, let keyID):
            "bad signature: the signature by \(Self.quoted(name)) with key ID \(SignedNoteFormat.hex(keyID)) does not verify"
        case .malformedCheckpoint(let reason):
            "malformed checkpoint: \(reason)"
        case .malformedSize(let line):
            "malformed checkpoint size \(Self.quoted(line)): expected a decimal tree size without sign or leading zeros"
        case .malformedRootHash(let reason):
            "malformed checkpoint root hash: \(reason)"
        }
    }

    /// A short, escaped rendering of untrusted text, so a description stays on one line.
    static func quoted(_ text: String) -> String {
        let limit = 64
        let shown = text.unicodeScalars.count > limit
            ? String(String.UnicodeScalarView(text.unicodeScalars.prefix(limit))) + "…"
            : text
        return "\"" + shown.unicodeScalars.map { $0.escaped(asASCII: false) }.joined() + "\""
    }
}

/// A transparency-log checkpoint (https://c2sp.org/tlog-checkpoint): the log's origin, its tree size
/// and its RFC 9162 root hash at that size.
public struct Checkpoint: Sendable, Equatable {
    /// Unique identity of the log, e.g. `example.com/log`.
    public var origin: String
    /// Number of leaves in the tree.
    public var size: Int
    /// MTH of the tree at `size` (32 bytes).
    public var rootHash: Data

    public init(origin: String, size: Int, rootHash: Data) {
        self.origin = origin
        self.size = size
        self.rootHash = rootHash
    }

    /// The note text: origin, decimal size and base64 root hash, each followed by a newline.
    public var body: String {
        "\(origin)\n\(size)\n\(rootHash.base64EncodedString())\n"
    }

    /// Equal when the signed bytes are equal: origins compare by their UTF-8 bytes, not by Swift's
    /// Unicode canonical equivalence (two differently encoded origins are different logs).
    public static func == (lhs: Checkpoint, rhs: Checkpoint) -> Bool {
        lhs.size == rhs.size && lhs.rootHash == rhs.rootHash && lhs.origin.utf8.elementsEqual(rhs.origin.utf8)
    }
}

/// Signs checkpoints (or any note text) as C2SP signed notes (https://c2sp.org/signed-note) with an
/// Ed25519 key.
public struct NoteSigner: Sendable {
    /// The key name written on the signature line (for a log, usually its origin).
    public let name: String
    /// The key's 32-byte seed; kept as bytes because swift-crypto's key types are not `Sendable`.
    private let privateKeyBytes: Data

    /// A key name must be non-empty, without whitespace or '+'; signing with an invalid one throws
    /// ``SignedNoteError/invalidKeyName(_:)``.
    public init(name: String, privateKey: Curve25519.Signing.PrivateKey) {
        self.name = name
        self.privateKeyBytes = privateKey.rawRepresentation
    }

    public var privateKey: Curve25519.Signing.PrivateKey {
        // Cannot fail: the bytes are the raw representation of a key of this very type.
        try! Curve25519.Signing.PrivateKey(rawRepresentation: privateKeyBytes)
    }

    public var publicKey: Curve25519.Signing.PublicKey { privateKey.publicKey }

    /// First four bytes (big-endian) of SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key).
    public var keyID: UInt32 { SignedNoteFormat.keyID(name: name, publicKey: publicKey) }

    /// The standard verifier key text: `<name>+<hex key ID>+<base64(0x01 ‖ public key)>`.
    public var verifierKey: String { SignedNoteFormat.verifierKey(name: name, publicKey: publicKey) }

    /// The verifier for this signer's public key.
    public var verifier: NoteVerifier { NoteVerifier(name: name, publicKey: publicKey) }

    /// The full signed note of `checkpoint`: its body, a blank line and this key's signature line.
    public func sign(_ checkpoint: Checkpoint) throws -> String {
        guard !checkpoint.origin.isEmpty else { throw SignedNoteError.invalidCheckpoint("the origin is empty") }
        guard !checkpoint.origin.utf8.contains(where: { $0 < 0x20 }) else {
            throw SignedNoteError.invalidCheckpoint("the origin \(SignedNoteError.quoted(checkpoint.origin)) contains a newline or control character")
        }
        guard checkpoint.size >= 0 else {
            throw SignedNoteError.invalidCheckpoint("the tree size \(checkpoint.size) is negative")
        }
        guard checkpoint.rootHash.count == MerkleTree.hashSize else {
            throw SignedNoteError.invalidCheckpoint("the root hash has \(checkpoint.rootHash.count) bytes, not \(MerkleTree.hashSize)")
        }
        return try sign(text: checkpoint.body)
    }

    /// Signs arbitrary note text: non-empty UTF-8 ending in a newline, with no control characters but
    /// newlines. Returns text + "\n" + "— <name> <base64(key ID ‖ signature)>\n".
    public func sign(text: String) throws -> String {
        try SignedNoteFormat.checkKeyName(name)
        let bytes = Array(text.utf8)
        guard bytes.last == 0x0A else { throw SignedNoteError.invalidNoteText("it must end with a newline") }
        guard !bytes.contains(where: { $0 < 0x20 && $0 != 0x0A }) else {
            throw SignedNoteError.invalidNoteText("it contains a control character other than newline")
        }
        let signature = try privateKey.signature(for: bytes)
        var blob = withUnsafeBytes(of: keyID.bigEndian) { Data($0) }
        blob.append(contentsOf: signature)
        return text + "\n" + SignedNoteFormat.signaturePrefix + name + " " + blob.base64EncodedString() + "\n"
    }
}

/// Verifies C2SP signed notes made by one Ed25519 key and parses the checkpoints they carry.
public struct NoteVerifier: Sendable {
    /// The key name that signature lines must carry.
    public let name: String
    /// The 32-byte Ed25519 public key; kept as bytes because swift-crypto's key types are not `Sendable`.
    private let publicKeyBytes: Data

    /// A key name must be non-empty, without whitespace or '+'; verifying with an invalid one throws
    /// ``SignedNoteError/invalidKeyName(_:)``.
    public init(name: String, publicKey: Curve25519.Signing.PublicKey) {
        self.name = name
        self.publicKeyBytes = publicKey.rawRepresentation
    }

    public var publicKey: Curve25519.Signing.PublicKey {
        // Cannot fail: the bytes are the raw representation of a key of this very type.
        try! Curve25519.Signing.PublicKey(rawRepresentation: publicKeyBytes)
    }

    /// Parses a verifier key `<name>+<hex key ID>+<base64(0x01 ‖ public key)>` and checks its key ID.
    public init(verifierKey: String) throws {
        let parts = verifierKey.split(separator: "+", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3 else {
            throw SignedNoteError.malformedVerifierKey("expected <name>+<key ID>+<key>")
        }
        let name = String(parts[0])
        try SignedNoteFormat.checkKeyName(name)
        let idText = parts[1]
        let isHexDigit = { (byte: UInt8) in
            (0x30...0x39).contains(byte) || (0x41...0x46).contains(byte) || (0x61...0x66).contains(byte)
        }
        guard idText.utf8.count == 8, idText.utf8.allSatisfy(isHexDigit), let id = UInt32(idText, radix: 16) else {
            throw SignedNoteError.malformedVerifierKey("the key ID \(SignedNoteError.quoted(String(idText))) is not 8 hex digits")
        }
        guard let key = SignedNoteFormat.decodeCanonicalBase64(Array(parts[2].utf8)) else {
            throw SignedNoteError.malformedVerifierKey("the key is not canonical base64")
        }
        guard key.first == SignedNoteFormat.ed25519Type else {
            throw SignedNoteError.malformedVerifierKey("unsupported key type (only 0x01, Ed25519, is supported)")
        }
        guard key.count == 33, let publicKey = try? Curve25519.Signing.PublicKey(rawRepresentation: key.dropFirst()) else {
            throw SignedNoteError.malformedVerifierKey("the Ed25519 public key is not 32 bytes")
        }
        guard SignedNoteFormat.keyID(name: name, publicKey: publicKey) == id else {
            throw SignedNoteError.malformedVerifierKey("the key ID \(String(idText)) does not match the name and key")
        }
        self.init(name: name, publicKey: publicKey)
    }

    /// First four bytes (big-endian) of SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key).
    public var keyID: UInt32 { SignedNoteFormat.keyID(name: name, publicKey: publicKey) }

    /// The standard verifier key text: `<name>+<hex key ID>+<base64(0x01 ‖ public key)>`.
    public var verifierKey: String { SignedNoteFormat.verifierKey(name: name, publicKey: publicKey) }

    /// Verifies `note` and returns the checkpoint in its text.
    public func verify(_ note: String) throws -> Checkpoint {
        try verify(Data(note.utf8))
    }

    /// Verifies the note's bytes (which must be UTF-8) and returns the checkpoint in its text.
    public func verify(_ note: Data) throws -> Checkpoint {
        try SignedNoteFormat.parseCheckpoint(verifiedTextBytes(note))
    }

    /// Verifies `note` and returns its text (everything before the blank line, with its final newline).
    public func verifiedText(of note: String) throws -> String {
        try verifiedText(of: Data(note.utf8))
    }

    /// Verifies the note's bytes and returns its text.
    public func verifiedText(of note: Data) throws -> String {
        String(decoding: try verifiedTextBytes(note), as: UTF8.self)
    }

    private func verifiedTextBytes(_ note: Data) throws -> ArraySlice<UInt8> {
        try SignedNoteFormat.checkKeyName(name)
        let bytes = [UInt8](note)
        // Valid UTF-8 (decoding without repair gives the same bytes back) and no control characters but newline.
        guard String(decoding: bytes, as: UTF8.self).utf8.elementsEqual(bytes) else {
            throw SignedNoteError.malformedNote("it is not valid UTF-8")
        }
        guard !bytes.contains(where: { $0 < 0x20 && $0 != 0x0A }) else {
            throw SignedNoteError.malformedNote("it contains a control character other than newline")
        }
        // The signature block follows the last blank line.
        guard let split = SignedNoteFormat.lastBlankLine(in: bytes) else {
            throw SignedNoteError.malformedNote("no blank line separates the text from the signatures")
        }
        let text = bytes[..<(split + 1)]
        var signatures = bytes[(split + 2)...]
        guard !signatures.isEmpty else { throw SignedNoteError.malformedNote("it has no signature lines") }
        guard signatures.last == 0x0A else {
            throw SignedNoteError.malformedNote("the last signature line does not end with a newline")
        }

        let ownName = Array(name.utf8)
        let ownID = keyID
        var count = 0
        var match: Data?
        while let newline = signatures.firstIndex(of: 0x0A) {
            let line = signatures[..<newline]
            signatures = signatures[(newline + 1)...]
            count += 1
            guard count <= SignedNoteFormat.maxSignatures else {
                throw SignedNoteError.malformedNote("it has more than \(SignedNoteFormat.maxSignatures) signature lines")
            }
            let prefix = SignedNoteFormat.signaturePrefixBytes
            guard line.starts(with: prefix) else {
                throw SignedNoteError.malformedNote("signature line \(count) does not start with an em dash and a space")
            }
            let rest = line.dropFirst(prefix.count)
            guard let space = rest.firstIndex(of: 0x20) else {
                throw SignedNoteError.malformedNote("signature line \(count) has no space between key name and signature")
            }
            let lineName = rest[..<space]
            do {
                try SignedNoteFormat.checkKeyName(String(decoding: lineName, as: UTF8.self))
            } catch {
                throw SignedNoteError.malformedNote("signature line \(count) has an invalid key name")
            }
            guard let blob = SignedNoteFormat.decodeCanonicalBase64(rest[(space + 1)...]), blob.count >= 5 else {
                throw SignedNoteError.malformedNote("signature line \(count) does not carry a canonical base64 key ID and signature")
            }
            let lineID = blob.prefix(4).reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            if match == nil, lineID == ownID, lineName.elementsEqual(ownName) {
                match = blob.dropFirst(4)
            }
        }
        guard let signature = match else { throw SignedNoteError.unknownKey(name: name, keyID: ownID) }
        guard publicKey.isValidSignature(signature, for: text) else {
            throw SignedNoteError.badSignature(name: name, keyID: ownID)
        }
        return text
    }
}

/// Shared pieces of the signed-note and checkpoint formats.
enum SignedNoteFormat {
    /// Signature type byte for Ed25519 in key IDs and verifier keys.
    static let ed25519Type: UInt8 = 0x01
    /// U+2014 EM DASH followed by a space.
    static let signaturePrefix = "\u{2014} "
    static let signaturePrefixBytes: [UInt8] = Array(signaturePrefix.utf8)
    /// Upper bound on signature lines, as in Go's golang.org/x/mod/sumdb/note.
    static let maxSignatures = 100

    static func checkKeyName(_ name: String) throws {
        guard !name.isEmpty, !name.contains("+"),
              !name.unicodeScalars.contains(where: { $0.properties.isWhitespace }),
              !name.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }) else {
            throw SignedNoteError.invalidKeyName(name)
        }
    }

    static func keyID(name: String, publicKey: Curve25519.Signing.PublicKey) -> UInt32 {
        var hasher = SHA256()
        hasher.update(data: Array(name.utf8))
        hasher.update(data: [0x0A, ed25519Type] as [UInt8])
        hasher.update(data: publicKey.rawRepresentation)
        return hasher.finalize().prefix(4).reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
    }

    static func verifierKey(name: String, publicKey: Curve25519.Signing.PublicKey) -> String {
        var key = Data([ed25519Type])
        key.append(publicKey.rawRepresentation)
        return "\(name)+\(hex(keyID(name: name, publicKey: publicKey)))+\(key.base64EncodedString())"
    }

    /// Eight lowercase hex digits.
    static func hex(_ value: UInt32) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 8 - digits.count) + digits
    }

    /// Index of the first newline of the last "\n\n" in `bytes`.
    static func lastBlankLine(in bytes: [UInt8]) -> Int? {
        var i = bytes.count - 2
        while i >= 0 {
            if bytes[i] == 0x0A && bytes[i + 1] == 0x0A { return i }
            i -= 1
        }
        return nil
    }

    /// Standard padded base64 that decodes and re-encodes to the same text; nil otherwise. Refusing
    /// non-canonical text (e.g. non-zero unused bits in the last character) keeps one encoding per value.
    static func decodeCanonicalBase64<Bytes: Collection>(_ text: Bytes) -> Data? where Bytes.Element == UInt8 {
        guard !text.isEmpty else { return nil }
        let string = String(decoding: text, as: UTF8.self)
        guard let data = Data(base64Encoded: string), data.base64EncodedString().utf8.elementsEqual(text) else {
            return nil
        }
        return data
    }

    /// Parses a checkpoint body: exactly origin, size and root hash lines, each ending in a newline.
    static func parseCheckpoint(_ text: ArraySlice<UInt8>) throws -> Checkpoint {
        guard text.last == 0x0A else { throw SignedNoteError.malformedCheckpoint("the text does not end with a newline") }
        let lines = text.dropLast().split(separator: 0x0A, omittingEmptySubsequences: false)
        guard lines.count >= 3 else {
            throw SignedNoteError.malformedCheckpoint("expected origin, size and root hash lines, found \(lines.count) line(s)")
        }
        guard lines.count == 3 else {
            throw SignedNoteError.malformedCheckpoint("it has \(lines.count - 3) extension line(s), which are not supported")
        }
        let originLine = lines[0], sizeLine = lines[1], rootLine = lines[2]
        guard !originLine.isEmpty else { throw SignedNoteError.malformedCheckpoint("the origin line is empty") }

        let sizeText = String(decoding: sizeLine, as: UTF8.self)
        guard !sizeLine.isEmpty, sizeLine.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
              sizeLine.first != 0x30 || sizeLine.count == 1 else {
            throw SignedNoteError.malformedSize(sizeText)
        }
        var size = 0
        for digit in sizeLine {
            let (times10, overflow1) = size.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times10.addingReportingOverflow(Int(digit - 0x30))
            guard !overflow1, !overflow2 else { throw SignedNoteError.malformedSize(sizeText) }
            size = sum
        }

        guard let root = decodeCanonicalBase64(rootLine) else {
            throw SignedNoteError.malformedRootHash("the line is not canonical base64")
        }
        guard root.count == MerkleTree.hashSize else {
            throw SignedNoteError.malformedRootHash("it decodes to \(root.count) bytes, not \(MerkleTree.hashSize)")
        }
        return Checkpoint(origin: String(decoding: originLine, as: UTF8.self), size: size, rootHash: root)
    }
}
