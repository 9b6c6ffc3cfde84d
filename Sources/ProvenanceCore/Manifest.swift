public import Foundation
import Crypto

/// The SHA-256 manifest of a dataset commit: path, size and SHA-256 of every file in its tree.
///
/// Git names objects by SHA-1; the manifest is what makes a dataset commit's content
/// collision-resistant. It describes content only (no commit id, no author), so two commits
/// with the same files have the same manifest, as they have the same git tree.
public struct Manifest: Codable, Sendable, Equatable {
    public static let format = "provenance-manifest/1"

    public struct Entry: Codable, Sendable, Equatable {
        public var path: String
        public var size: UInt64
        public var sha256: String

        public init(path: String, size: UInt64, sha256: String) {
            self.path = path
            self.size = size
            self.sha256 = sha256
        }
    }

    public var format: String
    /// Sorted by path (byte order), so the encoding is canonical.
    public var files: [Entry]

    public init(files: [Entry]) {
        self.format = Manifest.format
        self.files = files.sorted { $0.path.utf8.lexicographicallyPrecedes($1.path.utf8) }
    }

    /// Canonical JSON: sorted keys, no insignificant whitespace.
    ///
    /// Written directly when every path is printable ASCII without `"` or `\\` (nothing to
    /// escape), which gives the bytes `CanonicalJSON.encode` gives at a fraction of the cost
    /// for many files; otherwise encoded by `CanonicalJSON`.
    public func canonicalJSON() throws -> Data {
        guard format == Manifest.format, let data = plainJSON() else { return try CanonicalJSON.encode(self) }
        return data
    }

    /// The canonical JSON written byte by byte, or nil when a path needs escaping.
    func plainJSON() -> Data? {
        var out: [UInt8] = []
        out.reserveCapacity(files.count * 120 + 64)
        out += Array(#"{"files":["#.utf8)
        for (index, file) in files.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            out += Array(#"{"path":""#.utf8)
            for byte in file.path.utf8 {
                guard byte >= 0x20, byte < 0x7f, byte != UInt8(ascii: "\""), byte != UInt8(ascii: "\\") else { return nil }
                out.append(byte)
            }
            guard file.sha256.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7f && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\") }) else { return nil }
            out += Array(#"","sha256":""#.utf8)
            out += Array(file.sha256.utf8)
            out += Array(#"","size":"#.utf8)
            out += Array(String(file.size).utf8)
            out.append(UInt8(ascii: "}"))
        }
        out += Array(#"],"format":""#.utf8)
        out += Array(format.utf8)
        out += Array(#""}"#.utf8)
        return Data(out)
    }

    /// The SHA-256 of the canonical JSON, in lowercase hex.
    public func sha256() throws -> String {
        SHA256Digest.hex(of: try canonicalJSON())
    }

    public var totalBytes: UInt64 { files.reduce(0) { $0 + $1.size } }
}

/// JSON with sorted keys and no insignificant whitespace, so equal values give equal bytes.
public enum CanonicalJSON {
    public static func encode<T: Encodable>(_ value: T) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(value)
    }
}

/// SHA-256 helpers over swift-crypto.
public enum SHA256Digest {
    public static func hex(of data: Data) -> String {
        hex(SHA256.hash(data: data))
    }

    static func hex(_ digest: SHA256.Digest) -> String {
        digest.withUnsafeBytes { hex(raw: $0) }
    }

    /// Lowercase hex of `bytes` (a table lookup: `String(format:)` was a third of `add`'s CPU time).
    public static func hex<S: Sequence>(bytes: S) -> String where S.Element == UInt8 {
        if let text = bytes.withContiguousStorageIfAvailable({ hex(raw: UnsafeRawBufferPointer($0)) }) { return text }
        return Array(bytes).withUnsafeBytes { hex(raw: $0) }
    }

    /// Written straight into the string's own storage: every call's record digest and every
    /// request's token hash pass through here.
    static func hex(raw: UnsafeRawBufferPointer) -> String {
        String(unsafeUninitializedCapacity: raw.count * 2) { out in
            ("0123456789abcdef" as StaticString).withUTF8Buffer { digits in
                for (index, byte) in raw.enumerated() {
                    out[2 * index] = digits[Int(byte >> 4)]
                    out[2 * index + 1] = digits[Int(byte & 0x0f)]
                }
            }
            return raw.count * 2
        }
    }

    /// Hashes the file at `url` in 1 MiB chunks; memory does not grow with its size.
    public static func hex(ofFileAt url: URL) throws -> (sha256: String, size: UInt64) {
        let handle = try FileHandle(forReadingFrom: url)
        defer { try? handle.close() }
        var hasher = SHA256()
        var size: UInt64 = 0
        while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty {
            hasher.update(data: chunk)
            size += UInt64(chunk.count)
        }
        return (hex(hasher.finalize()), size)
    }
}

/// An incremental SHA-256 that callers outside the core can feed chunk by chunk.
struct StreamingSHA256 {
    private var hasher = SHA256()

    mutating func update(_ bytes: UnsafeRawBufferPointer) { hasher.update(bufferPointer: bytes) }

    mutating func finalizeHex() -> String { SHA256Digest.hex(hasher.finalize()) }
}
