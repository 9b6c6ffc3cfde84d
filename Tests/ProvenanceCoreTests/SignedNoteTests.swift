import Crypto
import Foundation
import Testing
import ProvenanceCore

@Suite struct SignedNoteTests {
    // golang.org/x/mod/sumdb/note's documented example key and note.
    static let goSignerKey = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
    static let goVerifierKey = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
    static let goText = "If you think cryptography is the answer to your problem,\n"
        + "then you don't know what your problem is.\n"
    static let goNote = goText + "\n"
        + "\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"

    static func goSigner() throws -> NoteSigner {
        let encoded = try #require(goSignerKey.split(separator: "+", maxSplits: 4).last)
        let typeAndSeed = try #require(Data(base64Encoded: String(encoded)))
        try #require(typeAndSeed.count == 33 && typeAndSeed.first == 0x01)
        let key = try Curve25519.Signing.PrivateKey(rawRepresentation: typeAndSeed.dropFirst())
        return NoteSigner(name: "PeterNeumann", privateKey: key)
    }

    static func checkpoint(size: Int = 5, origin: String = "example.com/provenance") -> Checkpoint {
        let leaves = (0..<size).map { MerkleTree.leafHash(Data("entry \($0)".utf8)) }
        return Checkpoint(origin: origin, size: size, rootHash: MerkleTree.root(ofLeafHashes: leaves))
    }

    static func signer(_ name: String = "example.com/provenance") throws -> NoteSigner {
        NoteSigner(name: name, privateKey: Curve25519.Signing.PrivateKey())
    }

    // MARK: Format

    @Test func checkpointBodyMatchesTheC2SPExample() throws {
        let root = try #require(Data(base64Encoded: "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I="))
        let checkpoint = Checkpoint(origin: "example.com/behind-the-sofa", size: 20852163, rootHash: root)
        #expect(checkpoint.body == "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n")
    }

    @Test func goReferenceKeyAndNote() throws {
        let signer = try Self.goSigner()
        #expect(signer.keyID == 0xc74f_20a3)
        #expect(signer.verifierKey == Self.goVerifierKey)

        let verifier = try NoteVerifier(verifierKey: Self.goVerifierKey)
        #expect(verifier.name == "PeterNeumann")
        #expect(verifier.keyID == 0xc74f_20a3)
        #expect(verifier.publicKey.rawRepresentation == signer.publicKey.rawRepresentation)
        #expect(try verifier.verifiedText(of: Self.goNote) == Self.goText)
        // It verifies, but it is no checkpoint.
        #expect(throws: SignedNoteError.self) { try verifier.verify(Self.goNote) }

        let signed = try signer.sign(text: Self.goText)
        #expect(try verifier.verifiedText(of: signed) == Self.goText)
        #if !canImport(Darwin)
        // BoringSSL's Ed25519 is deterministic, so the bytes match Go's (CryptoKit randomizes signatures).
        #expect(signed == Self.goNote)
        #endif
    }

    @Test func signedNoteShape() throws {
        let signer = try Self.signer()
        let checkpoint = Self.checkpoint()
        let note = try signer.sign(checkpoint)
        let prefix = checkpoint.body + "\n\u{2014} " + signer.name + " "
        #expect(note.hasPrefix(prefix))
        #expect(note.hasSuffix("\n"))
        let encoded = note.utf8.dropFirst(prefix.utf8.count).dropLast()
        let blob = try #require(Data(base64Encoded: String(decoding: encoded, as: UTF8.self)))
        #expect(blob.count == 4 + 64)
        #expect(blob.prefix(4) == withUnsafeBytes(of: signer.keyID.bigEndian) { Data($0) })
        #expect(signer.publicKey.isValidSignature(blob.dropFirst(4), for: Data(checkpoint.body.utf8)))

        // keyID = SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key)[0..<4]
        var input = Data(signer.name.utf8)
        input.append(contentsOf: [0x0A, 0x01])
        input.append(signer.publicKey.rawRepresentation)
        #expect(Data(SHA256.hash(data: input).prefix(4)) == blob.prefix(4))
        let hexID = String(signer.keyID, radix: 16)
        #expect(signer.verifierKey == "\(signer.name)+\(String(repeating: "0", count: 8 - hexID.count) + hexID)+"
            + (Data([0x01]) + signer.publicKey.rawRepresentation).base64EncodedString())
    }

    // MARK: Round trip and refusal

    @Test func signVerifyRoundTrip() throws {
        let signer = try Self.signer()
        for size in [0, 1, 2, 7, 1000] {
            let checkpoint = Self.checkpoint(size: size)
            let note = try signer.sign(checkpoint)
            #expect(try signer.verifier.verify(note) == checkpoint)
            #expect(try signer.verifier.verify(Data(note.utf8)) == checkpoint)
            let parsed = try NoteVerifier(verifierKey: signer.verifierKey)
            #expect(try parsed.verify(note) == checkpoint)
        }
        #expect(try signer.verifier.verify(try signer.sign(Self.checkpoint(size: 0))).rootHash == MerkleTree.emptyRoot)
    }

    @Test func everySingleBitFlipIsRefused() throws {
        let signer = try Self.signer("log.example/flip")
        let checkpoint = Self.checkpoint(size: 12345, origin: "log.example/flip")
        let note = Array(try signer.sign(checkpoint).utf8)
        let verifier = signer.verifier
        var flips = 0
        var refused = 0
        var sameCheckpoint: [String] = []
        for index in note.indices {
            for bit in 0..<8 {
                var flipped = note
                flipped[index] ^= UInt8(1 << bit)
                flips += 1
                do {
                    let result = try verifier.verify(Data(flipped))
                    if result == checkpoint { sameCheckpoint.append("byte \(index) bit \(bit)") }
                } catch is SignedNoteError {
                    refused += 1
                }
                // The String entry point must agree wherever the flipped bytes are still UTF-8.
                let string = String(decoding: flipped, as: UTF8.self)
                if string.utf8.elementsEqual(flipped), let result = try? verifier.verify(string), result == checkpoint {
                    sameCheckpoint.append("string: byte \(index) bit \(bit)")
                }
            }
        }
        #expect(flips == note.count * 8)
        #expect(sameCheckpoint.isEmpty, "flipped notes that still verified to the same checkpoint: \(sameCheckpoint)")
        #expect(refused == flips, "every flip should be refused outright; \(flips - refused) were not")
    }

    @Test func wrongKeyIsRefused() throws {
        let signer = try Self.signer()
        let note = try signer.sign(Self.checkpoint())

        let otherKey = NoteVerifier(name: signer.name, publicKey: Curve25519.Signing.PrivateKey().publicKey)
        #expect(throws: SignedNoteError.unknownKey(name: otherKey.name, keyID: otherKey.keyID)) { try otherKey.verify(note) }

        let otherName = NoteVerifier(name: "example.com/other", publicKey: signer.publicKey)
        #expect(throws: SignedNoteError.unknownKey(name: otherName.name, keyID: otherName.keyID)) { try otherName.verify(note) }
    }

    @Test func signatureOverAnotherBodyIsABadSignature() throws {
        let signer = try Self.signer()
        let noteA = try signer.sign(Self.checkpoint(size: 5))
        let noteB = try signer.sign(Self.checkpoint(size: 6))
        // Body of B with the signature line of A: right key name and ID, wrong signature.
        let splitA = try #require(noteA.range(of: "\n\n")).upperBound
        let splitB = try #require(noteB.range(of: "\n\n")).upperBound
        let bodyB = String(noteB[..<splitB])
        let signatureA = String(noteA[splitA...])
        #expect(throws: SignedNoteError.badSignature(name: signer.name, keyID: signer.keyID)) {
            try signer.verifier.verify(bodyB + signatureA)
        }
    }

    @Test func otherSignaturesAreIgnored() throws {
        let log = try Self.signer("example.com/log")
        let witness = try Self.signer("witness.example")
        let checkpoint = Self.checkpoint()
        let logNote = try log.sign(checkpoint)
        let witnessLine = String(try witness.sign(checkpoint).split(separator: "\n", omittingEmptySubsequences: false).dropLast().last!) + "\n"
        let cosigned = logNote + witnessLine
        #expect(try log.verifier.verify(cosigned) == checkpoint)
        #expect(try witness.verifier.verify(cosigned) == checkpoint)

        let body = checkpoint.body + "\n"
        let witnessFirst = body + witnessLine + String(logNote.dropFirst(body.count))
        #expect(try log.verifier.verify(witnessFirst) == checkpoint)
    }

    // MARK: Malformed input

    @Test func malformedNotesAreRefused() throws {
        let signer = try Self.signer()
        let verifier = signer.verifier
        let note = try signer.sign(Self.checkpoint())
        let signatureLine = String(note[try #require(note.range(of: "\n\n")).upperBound...])
        let body = Self.checkpoint().body

        let cases: [(String, String)] = [
            ("", "empty"),
            (body, "no signatures"),
            (body + "\n", "blank line but no signature lines"),
            (String(note.dropLast()), "no final newline"),
            (note + "\n", "trailing blank line"),
            (body + signatureLine, "no blank line"),
            (body + "\n" + signatureLine.replacingOccurrences(of: "\u{2014} ", with: "- "), "hyphen instead of em dash"),
            (body + "\n" + signatureLine.replacingOccurrences(of: "\u{2014} ", with: "\u{2014}"), "no space after em dash"),
            (body + "\n" + signatureLine.replacingOccurrences(of: "\(signer.name) ", with: "\(signer.name)\u{0009}"), "tab separator"),
            (body + "\n" + signatureLine.replacingOccurrences(of: "=\n", with: "\n"), "unpadded base64"),
            (note.replacingOccurrences(of: "\n\n", with: "\n\r\n"), "carriage return"),
            (body + "\n" + String(repeating: "\u{2014} x AAAAAAAA\n", count: 101), "too many signature lines"),
            (body + "\n" + "\u{2014} x AAAA\n" + signatureLine, "signature too short"),
        ]
        for (text, label) in cases {
            #expect(throws: SignedNoteError.self, "\(label)") { try verifier.verify(text) }
            do {
                _ = try verifier.verify(text)
            } catch let error as SignedNoteError {
                if case .malformedNote = error {} else {
                    Issue.record("\(label): expected a malformed-note error, got \(error)")
                }
            }
        }
        #expect(throws: SignedNoteError.malformedNote("it is not valid UTF-8")) {
            try verifier.verify(Data([0xFF]) + Data(note.utf8))
        }
    }

    @Test func malformedCheckpointBodiesAreRefused() throws {
        let signer = try Self.signer()
        let root = Self.checkpoint().rootHash.base64EncodedString()
        // Same 32 bytes' worth of characters, but with the unused low bits of the last one set.
        var nonCanonical = Array(root.utf8)
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
        let last = try #require(alphabet.firstIndex(of: nonCanonical[42]))
        nonCanonical[42] = alphabet[last ^ 0b01]
        let nonCanonicalRoot = String(decoding: nonCanonical, as: UTF8.self)

        let cases: [(String, SignedNoteError?)] = [
            ("origin\n", nil),
            ("origin\n5\n", nil),
            ("\n5\n\(root)\n", nil),
            ("origin\n5\n\(root)\nextension line\n", nil),
            ("origin\n007\n\(root)\n", .malformedSize("007")),
            ("origin\n00\n\(root)\n", .malformedSize("00")),
            ("origin\n-1\n\(root)\n", .malformedSize("-1")),
            ("origin\n+5\n\(root)\n", .malformedSize("+5")),
            ("origin\n 5\n\(root)\n", .malformedSize(" 5")),
            ("origin\n5x\n\(root)\n", .malformedSize("5x")),
            ("origin\n\n\(root)\n", nil),
            ("origin\n99999999999999999999\n\(root)\n", .malformedSize("99999999999999999999")),
            ("origin\n5\n\(Data(repeating: 1, count: 31).base64EncodedString())\n", nil),
            ("origin\n5\n\(nonCanonicalRoot)\n", nil),
            ("origin\n5\nnot base64!\n", nil),
        ]
        for (body, expected) in cases {
            let note = try signer.sign(text: body)
            do {
                let checkpoint = try signer.verifier.verify(note)
                Issue.record("body \(body.debugDescription) verified as \(checkpoint)")
            } catch let error as SignedNoteError {
                if let expected {
                    #expect(error == expected, "body \(body.debugDescription)")
                } else {
                    switch error {
                    case .malformedCheckpoint, .malformedRootHash, .malformedSize: break
                    default: Issue.record("body \(body.debugDescription): unexpected \(error)")
                    }
                }
            }
        }
        // The bounds that are fine.
        let zero = try signer.verifier.verify(try signer.sign(text: "origin\n0\n\(root)\n"))
        #expect(zero.size == 0)
        let big = try signer.verifier.verify(try signer.sign(text: "origin\n\(Int.max)\n\(root)\n"))
        #expect(big.size == Int.max)
    }

    @Test func invalidInputsToSigningAreRefused() throws {
        let signer = try Self.signer()
        let root = Self.checkpoint().rootHash
        let bad = [
            Checkpoint(origin: "", size: 1, rootHash: root),
            Checkpoint(origin: "a\nb", size: 1, rootHash: root),
            Checkpoint(origin: "a\tb", size: 1, rootHash: root),
            Checkpoint(origin: "log", size: -1, rootHash: root),
            Checkpoint(origin: "log", size: 1, rootHash: root.dropLast()),
        ]
        for checkpoint in bad {
            #expect(throws: SignedNoteError.self, "\(checkpoint)") { try signer.sign(checkpoint) }
        }
        #expect(throws: SignedNoteError.self) { try signer.sign(text: "no newline") }
        #expect(throws: SignedNoteError.self) { try signer.sign(text: "") }
        #expect(throws: SignedNoteError.self) { try signer.sign(text: "bell\u{7}\n") }

        let key = Curve25519.Signing.PrivateKey()
        let note = try signer.sign(Self.checkpoint())
        for name in ["", "a b", "a+b", "a\tb", "a\nb", "no\u{00A0}break"] {
            #expect(throws: SignedNoteError.invalidKeyName(name)) {
                try NoteSigner(name: name, privateKey: key).sign(Self.checkpoint())
            }
            #expect(throws: SignedNoteError.invalidKeyName(name)) {
                try NoteSigner(name: name, privateKey: key).sign(text: "text\n")
            }
            #expect(throws: SignedNoteError.invalidKeyName(name)) {
                try NoteVerifier(name: name, publicKey: key.publicKey).verify(note)
            }
        }
    }

    @Test func verifierKeyParsing() throws {
        let signer = try Self.signer()
        let parsed = try NoteVerifier(verifierKey: signer.verifierKey)
        #expect(parsed.verifierKey == signer.verifierKey)
        #expect(parsed.keyID == signer.keyID)

        // As in Go's TestNewVerifier: no proper substring and no single-byte change is accepted.
        let bytes = Array(Self.goVerifierKey.utf8)
        for start in 0..<bytes.count {
            for end in (start + 1)...bytes.count where start != 0 || end != bytes.count {
                let text = String(decoding: bytes[start..<end], as: UTF8.self)
                #expect(throws: SignedNoteError.self, "\(text)") { try NoteVerifier(verifierKey: text) }
            }
        }
        for index in bytes.indices {
            var changed = bytes
            changed[index] &+= 1
            let text = String(decoding: changed, as: UTF8.self)
            #expect(throws: SignedNoteError.self, "\(text)") { try NoteVerifier(verifierKey: text) }
        }
        // Wrong-length key and unknown algorithm, each with a key ID computed for it.
        #expect(throws: SignedNoteError.self) {
            try NoteVerifier(verifierKey: "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==")
        }
        #expect(throws: SignedNoteError.self) {
            try NoteVerifier(verifierKey: "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")
        }
    }

    @Test func errorDescriptionsAreOneLine() {
        let errors: [SignedNoteError] = [
            .invalidKeyName("bad\nname"), .malformedVerifierKey("x"), .invalidNoteText("x"), .invalidCheckpoint("x"),
            .malformedNote("x"), .unknownKey(name: "n\n", keyID: 0xab), .badSignature(name: "n", keyID: 1),
            .malformedCheckpoint("x"), .malformedSize("1\n2"), .malformedRootHash("x"),
        ]
        for error in errors {
            #expect(!error.description.isEmpty)
            #expect(!error.description.contains("\n"), "\(error.description)")
        }
        #expect(SignedNoteError.unknownKey(name: "log", keyID: 0xab).description.contains("000000ab"))
        #expect(SignedNoteError.badSignature(name: "log", keyID: 1).description.hasPrefix("bad signature"))
        #expect(SignedNoteError.malformedSize("007").description.contains("size"))
    }

    @Test func checkpointsCompareByBytes() {
        let root = Self.checkpoint().rootHash
        let composed = Checkpoint(origin: "caf\u{E9}", size: 1, rootHash: root)
        let decomposed = Checkpoint(origin: "cafe\u{301}", size: 1, rootHash: root)
        #expect(composed.origin == decomposed.origin) // Swift's String equality is canonical equivalence...
        #expect(composed != decomposed) // ...but these are two different signed bodies.
        #expect(composed == Checkpoint(origin: "caf\u{E9}", size: 1, rootHash: root))
    }
}
