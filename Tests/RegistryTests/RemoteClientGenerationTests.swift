import Foundation
import ProvenanceCore
import Testing

/// The CLI's registry client is generated from `Registry/openapi.yaml` and committed
/// (`Sources/RegistryAPI/Generated`, `make openapi`): it must have been generated from the spec
/// as it is now.
@Suite struct RemoteClientGenerationTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test func theGeneratedClientWasGeneratedFromTheCurrentSpec() throws {
        let spec = try Data(contentsOf: Self.root.appendingPathComponent("Registry/openapi.yaml"))
        let sha256 = SHA256Digest.hex(of: spec)
        let folder = Self.root.appendingPathComponent("Sources/RegistryAPI/Generated")
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".swift") }.sorted()
        #expect(files.contains("Client.swift") && files.contains("Types.swift"), "\(files)")
        for file in files {
            let text = try String(contentsOf: folder.appendingPathComponent(file), encoding: .utf8)
            let header = text.split(separator: "\n").prefix(10).first { $0.hasPrefix("// openapi.yaml SHA-256: ") }.map(String.init)
            #expect(header == "// openapi.yaml SHA-256: \(sha256)",
                    "\(file) was generated from another Registry/openapi.yaml (\(header ?? "no SHA-256 header")): run `make openapi` and commit the result")
        }
    }

    /// The generator cannot read an integer bound above 2^63-1, so the UInt64 bound sits in an
    /// `allOf` (scripts/openapi.sh maps the schema to Swift's UInt64): it must still be there.
    @Test func theUInt64BoundIsStillInTheSpec() throws {
        let spec = try String(contentsOf: Self.root.appendingPathComponent("Registry/openapi.yaml"), encoding: .utf8)
        let schema = try #require(spec.range(of: "\n    UInt64:\n"))
        let body = spec[schema.upperBound...].prefix { _ in true }.split(separator: "\n", omittingEmptySubsequences: false)
            .prefix { $0.hasPrefix("      ") }.joined(separator: "\n")
        #expect(body.contains("type: integer") && body.contains("minimum: 0") && body.contains("- maximum: 18446744073709551615"), "\(body)")
    }
}
