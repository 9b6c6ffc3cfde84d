import Foundation
import ProvenanceCore
import Testing

/// The manifest's canonical JSON, written directly for plain paths, is byte for byte what the
/// generic canonical encoder (`JSONEncoder`, sorted keys) gives, for every path.
@Suite struct ManifestTests {
    static let digest = String(repeating: "0123456789abcdef", count: 4)

    @Test(arguments: [
        ["a.txt"],
        ["data/d000/f00000.txt", "data/d001/f00001.txt", "top"],
        ["with space/and-dash_under.score/~tilde!#$%&'()*+,;=?@[]^`{|}"],
        ["slash/es/are/not/escaped/"],
        [#"quote"inside"#, "plain"],
        [#"back\slash"#],
        ["tab\there", "new\nline", "bell\u{07}", "del\u{7f}"],
        ["café/ünïcödé/日本語.txt", "emoji/😀.bin"],
        ["\u{2028}line separator"],
    ])
    func directJSONEqualsTheEncoder(paths: [String]) throws {
        let manifest = Manifest(files: paths.enumerated().map { index, path in
            Manifest.Entry(path: path, size: UInt64(index) * 1_000_003 + (index == 0 ? UInt64.max - 7 : 0), sha256: Self.digest)
        })
        let direct = try manifest.canonicalJSON()
        let encoded = try CanonicalJSON.encode(manifest)
        #expect(direct == encoded, "\(String(decoding: direct, as: UTF8.self)) != \(String(decoding: encoded, as: UTF8.self))")
        #expect(try JSONDecoder().decode(Manifest.self, from: direct) == manifest)
    }

    @Test func emptyManifest() throws {
        let manifest = Manifest(files: [])
        #expect(try manifest.canonicalJSON() == CanonicalJSON.encode(manifest))
    }

    /// Hex is `%02x` of each byte, from contiguous bytes, a digest and any other sequence; the
    /// SHA-256 of "abc" is FIPS 180-2's example.
    @Test func hexIsEachBytesTwoLowercaseDigits() {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        for length in 0...70 {
            let bytes = (0..<length).map { _ -> UInt8 in
                state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                return UInt8(truncatingIfNeeded: state >> 56)
            }
            let expected = bytes.map { String(format: "%02x", $0) }.joined()
            #expect(SHA256Digest.hex(bytes: bytes) == expected)
            #expect(SHA256Digest.hex(bytes: Data(bytes)) == expected)
            #expect(SHA256Digest.hex(bytes: bytes.lazy.map { $0 }) == expected)
        }
        #expect(SHA256Digest.hex(of: Data("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }
}
