import Foundation
import ProvenanceCore
import Testing

@Suite struct NamesTests {
    @Test(arguments: ["a", "corpus", "c0rpus.v2_final-1", String(repeating: "z", count: 64)])
    func validNames(_ name: String) {
        #expect(Names.isValidName(name))
    }

    @Test(arguments: ["", "A", "-a", ".a", "_a", "a/b", "a b", "a@b", String(repeating: "z", count: 65), "é"])
    func invalidNames(_ name: String) {
        #expect(!Names.isValidName(name))
    }

    @Test func versions() {
        #expect(Names.isValidVersion("1.0.0+build.7"))
        #expect(Names.isValidVersion("V2-rc_1"))
        #expect(!Names.isValidVersion("-1"))
        #expect(!Names.isValidVersion("1 0"))
        #expect(!Names.isValidVersion(""))
    }

    @Test func identities() throws {
        let identity = try Identity(parsing: "  Ada King, Countess <Ada@Example.org> ")
        #expect(identity.name == "Ada King, Countess")
        #expect(identity.email == "Ada@Example.org")
        #expect(identity.id == "ada@example.org")
        for bad in ["Ada", "Ada <>", "<a@b.c>", "Ada <a@>", "Ada <@b>", "Ada <a@b@c>", "A<b <a@b.c>", "Ada <a b@c.d>"] {
            #expect(throws: ProvenanceError.self) { try Identity(parsing: bad) }
        }
    }

    @Test func references() {
        #expect(RevisionReference(parsing: "corpus") == RevisionReference(parsing: "corpus@"))
        let ref = RevisionReference(parsing: "corpus@v1@{0}")
        #expect(ref.name == "corpus")
        #expect(ref.revision == "v1@{0}")
    }

    @Test func manifestsAreCanonical() throws {
        let a = Manifest(files: [.init(path: "b", size: 1, sha256: "x"), .init(path: "a", size: 2, sha256: "y")])
        let b = Manifest(files: [.init(path: "a", size: 2, sha256: "y"), .init(path: "b", size: 1, sha256: "x")])
        #expect(try a.canonicalJSON() == b.canonicalJSON())
        #expect(String(decoding: try a.canonicalJSON(), as: UTF8.self)
                == #"{"files":[{"path":"a","sha256":"y","size":2},{"path":"b","sha256":"x","size":1}],"format":"provenance-manifest/1"}"#)
        #expect(try a.sha256() == SHA256Digest.hex(of: try a.canonicalJSON()))
    }
}
