import Crypto
import Foundation
import ProvenanceCore
import ProvenanceTestSupport
import Testing

/// Witnesses (C2SP tlog-witness) as real `provenance witness serve` processes: the protocol's
/// answers, a registry that collects cosignatures after each checkpoint, and an audit that
/// accepts only a checkpoint a quorum of given witnesses cosigned.
@Suite struct WitnessTests {
    /// `provenance witness serve` on a free port, witnessing the logs of `logs` (verifier keys).
    static func witness(_ cli: CLIHarness, _ folder: String, name: String, logs: [String]) throws -> (LiveRegistry, key: String) {
        let dir = cli.directory.path(folder).path
        let key = try cli.must("witness", "key", "--dir", dir, "--name", name).output
        let server = try LiveRegistry(command: ["witness", "serve", "--dir", dir, "--name", name, "--port", "0"] + logs.flatMap { ["--log", $0] })
        return (server, key)
    }

    /// A log of our own: a signer and leaves, to drive a witness by hand.
    struct TestLog {
        let signer = NoteSigner(name: "log.example.org/test", privateKey: Curve25519.Signing.PrivateKey())
        var leaves: [Data]

        init(_ count: Int, seed: String = "leaf") { leaves = (0..<count).map { MerkleTree.leafHash(Data("\(seed) \($0)".utf8)) } }

        func note(_ size: Int, signer other: NoteSigner? = nil) throws -> String {
            let signer = other ?? self.signer
            return try signer.sign(Checkpoint(origin: signer.name, size: size, rootHash: MerkleTree.root(ofLeafHashes: Array(leaves.prefix(size)))))
        }

        func request(old: Int, size: Int, proof: [Data]? = nil, signer: NoteSigner? = nil) throws -> String {
            let proof = try proof ?? (old > 0 && old < size ? MerkleTree.consistencyProof(oldSize: old, newSize: size, leafHashes: leaves) : [])
            return "old \(old)\n" + proof.map { $0.base64EncodedString() + "\n" }.joined() + "\n" + (try note(size, signer: signer))
        }
    }

    @Test func theWitnessAnswersAddCheckpointWithTheSpecsStatusCodes() async throws {
        let cli = try CLIHarness(initialize: false)
        let log = TestLog(6)
        var (witness, key) = try Self.witness(cli, "w", name: "witness.example.org/w1", logs: [log.signer.verifierKey])
        let verifier = try CosignatureVerifier(verifierKey: key)

        // First contact: old 0, and a cosignature that verifies over the checkpoint.
        let first = try await witness.post("/add-checkpoint", try log.request(old: 0, size: 2))
        #expect(first.status == 200, "\(first)")
        let note2 = try log.note(2), note4 = try log.note(4)
        #expect(verifier.cosignedTime(of: note2 + first.body) != nil)
        #expect(first.body.hasPrefix("\u{2014} witness.example.org/w1 ") && first.body.hasSuffix("\n"))

        // A stale old size: 409 with the size held, as text/x.tlog.size.
        let stale = try await witness.post("/add-checkpoint", try log.request(old: 0, size: 4))
        #expect(stale.status == 409 && stale.body == "2\n" && stale.contentType == "text/x.tlog.size", "\(stale)")
        // A proof that does not verify: 422, and nothing cosigned.
        let bogus = try await witness.post("/add-checkpoint", try log.request(old: 2, size: 4, proof: [MerkleTree.emptyRoot]))
        #expect(bogus.status == 422, "\(bogus)")
        let grown = try await witness.post("/add-checkpoint", try log.request(old: 2, size: 4))
        #expect(grown.status == 200 && verifier.cosignedTime(of: note4 + grown.body) != nil, "\(grown)")

        // A fork of the log (same key, other leaves from index 3 on) cannot be cosigned too.
        var fork = TestLog(6)
        fork.leaves = Array(log.leaves.prefix(3)) + TestLog(3, seed: "fork").leaves
        let forkRequest = "old 4\n" + (try MerkleTree.consistencyProof(oldSize: 4, newSize: 6, leafHashes: fork.leaves)).map { $0.base64EncodedString() + "\n" }.joined()
            + "\n" + (try log.signer.sign(Checkpoint(origin: log.signer.name, size: 6, rootHash: MerkleTree.root(ofLeafHashes: fork.leaves))))
        let forkAnswer = try await witness.post("/add-checkpoint", forkRequest)
        #expect(forkAnswer.status == 422, "\(forkAnswer)")
        let sameSizeOtherRoot = "old 4\n\n" + (try log.signer.sign(Checkpoint(origin: log.signer.name, size: 4, rootHash: MerkleTree.root(ofLeafHashes: Array(fork.leaves.prefix(4))))))
        let conflict = try await witness.post("/add-checkpoint", sameSizeOtherRoot)
        #expect(conflict.status == 409 && conflict.body == "4\n", "\(conflict)")

        // Unknown log: 404; the log's name with another key: 403; old beyond the size: 400; junk: 400.
        let stranger = NoteSigner(name: "other.example.org/log", privateKey: Curve25519.Signing.PrivateKey())
        let unknownLog = try log.request(old: 0, size: 1, signer: stranger)
        #expect(try await witness.post("/add-checkpoint", unknownLog).status == 404)
        let impostor = NoteSigner(name: log.signer.name, privateKey: Curve25519.Signing.PrivateKey())
        let impostorRequest = try log.request(old: 0, size: 1, signer: impostor)
        #expect(try await witness.post("/add-checkpoint", impostorRequest).status == 403)
        #expect(try await witness.post("/add-checkpoint", "old 9\n\n" + note4).status == 400)
        #expect(try await witness.post("/add-checkpoint", "hello").status == 400)
        #expect(try await witness.post("/add-checkpoint", "old 04\n\n" + note4).status == 400)

        // The state survives a restart: the witness still holds 4.
        witness.stop()
        (witness, _) = try Self.witness(cli, "w", name: "witness.example.org/w1", logs: [log.signer.verifierKey])
        let after = try await witness.post("/add-checkpoint", try log.request(old: 0, size: 5))
        #expect(after.status == 409 && after.body == "4\n", "\(after)")
        let extended = try await witness.post("/add-checkpoint", try log.request(old: 4, size: 6))
        #expect(extended.status == 200, "\(extended)")
    }

    /// Polls the registry until it serves a checkpoint of `size` cosigned by its witnesses.
    static func cosigned(_ registry: LiveRegistry, size: Int) async throws -> [String: Any] {
        for _ in 0..<150 {
            let answer = try await registry.get("/v1/ledger/cosigned-checkpoint")
            if answer.status == 200, let object = try JSONSerialization.jsonObject(with: answer.body) as? [String: Any], object["size"] as? Int == size {
                return object
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw FixtureError("no cosigned checkpoint of size \(size)")
    }

    /// tlog-cosignature/v1 checked by an independent implementation (Python's cryptography):
    /// the key ID from type 0x04, the timestamp, and the signature over the header, the time line
    /// and the checkpoint text.
    static let oracle = """
        import base64, hashlib, struct, sys
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
        note, vkey = sys.stdin.read(), sys.argv[1]
        name, keyid, key = vkey.split("+", 2)
        raw = base64.b64decode(key)
        assert raw[0] == 4 and hashlib.sha256(name.encode() + b"\\n\\x04" + raw[1:]).digest()[:4].hex() == keyid
        text, _, sigs = note.rpartition("\\n\\n")
        text += "\\n"
        for line in sigs.strip().split("\\n"):
            dash, who, blob = line.split(" ")
            blob = base64.b64decode(blob)
            if who != name or blob[:4].hex() != keyid: continue
            (time,) = struct.unpack(">Q", blob[4:12])
            Ed25519PublicKey.from_public_bytes(raw[1:]).verify(blob[12:], ("cosignature/v1\\ntime %d\\n" % time + text).encode())
            print("ok"); sys.exit(0)
        print("none")
        """

    static func python(note: String, key: String) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", oracle, key]
        let input = Pipe(), output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = output
        try process.run()
        input.fileHandleForWriting.write(Data(note.utf8))
        try input.fileHandleForWriting.close()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test func theRegistryCollectsCosignaturesAndTheAuditRequiresAQuorum() async throws {
        let cli = try AuditTests.market(calls: 1)
        let logKey = try #require(try JSONSerialization.jsonObject(with: Data(cli.must("ledger", "checkpoint", "--json").stdout.utf8)) as? [String: Any])["verifier_key"] as? String
        let logKeyText = try #require(logKey)
        let (w1, key1) = try Self.witness(cli, "w1", name: "w1.example.org/w", logs: [logKeyText])
        let (w2, key2) = try Self.witness(cli, "w2", name: "w2.example.org/w", logs: [logKeyText])
        let registry = try LiveRegistry(store: cli.store, arguments: ["--witness", "\(w1.base)=\(key1)", "--witness", "\(w2.base)=\(key2)",
                                                                       "--witness-quorum", "2"])
        let first = try await Self.cosigned(registry, size: 1)
        #expect((first["witnesses"] as? [String])?.sorted() == ["w1.example.org/w", "w2.example.org/w"])
        try AuditTests.call(cli, keys: ["call-1", "call-2"])
        let third = try await Self.cosigned(registry, size: 3)
        let note = try #require(third["note"] as? String)
        for key in [key1, key2] {
            let verifier = try CosignatureVerifier(verifierKey: key)
            #expect(verifier.cosignedTime(of: note) != nil)
        }
        for key in [key1, key2] { #expect(try Self.python(note: note, key: key) == "ok") }
        let logVerifier = try NoteVerifier(verifierKey: logKeyText)
        #expect(try logVerifier.verify(note).size == 3)

        // The explorer's ledger page shows the cosignatures with the registry's own signature.
        let page = String(decoding: try await registry.get("/ledger").body, as: UTF8.self)
        #expect(page.contains("w1.example.org/w") && page.contains("w2.example.org/w") && page.contains("cosignature (witness)"))

        let state = cli.directory.path("state.json")
        let passed = try AuditTests.audit(cli, registry, state: state, "--witness", key1, "--witness", key2)
        #expect(passed.succeeded && passed.stdout.contains("cosigned by w1.example.org/w, w2.example.org/w (quorum 2)"), "\(passed)")
        let one = try AuditTests.audit(cli, registry, state: state, "--witness", key1, "--quorum", "1")
        #expect(one.succeeded, "\(one)")

        // A witness the registry does not use cannot make up a quorum.
        let absent = try CosignatureSigner(name: "w3.example.org/w", privateKey: Curve25519.Signing.PrivateKey()).verifierKey
        let before = try Data(contentsOf: state)
        AuditTests.expectFailure(try AuditTests.audit(cli, registry, state: state, "--witness", key1, "--witness", absent),
                                 "quorum not met: checkpoint 3 carries 1 valid cosignature(s) of the 2 required", state: state, before: before)
        // Bad options: one line each.
        for (arguments, problem) in [(["--witness", key1, "--quorum", "2"], "--quorum must be 1 to the number of --witness keys (1)"),
                                     (["--witness", "junk"], "--witness 'junk' is not a witness key")] {
            let result = try cli.run(["audit", registry.base, "--state", state.path] + arguments)
            #expect(!result.signalled && result.status != 0 && result.errorLines.count == 1 && result.stderr.contains(problem), "\(result)")
        }
        _ = (w1, w2)
    }

    /// A registry whose witnesses are too few for its quorum serves no cosigned checkpoint, and
    /// the audit that asks for one fails.
    @Test func aQuorumNotMetIsNeverServedAndFailsTheAudit() async throws {
        let cli = try AuditTests.market(calls: 1)
        let logKey = try #require(try JSONSerialization.jsonObject(with: Data(cli.must("ledger", "checkpoint", "--json").stdout.utf8)) as? [String: Any])["verifier_key"] as? String
        let (w1, key1) = try Self.witness(cli, "w1", name: "w1.example.org/w", logs: [try #require(logKey)])
        // The second witness does not witness this log: it answers 404 and never cosigns.
        let (w2, key2) = try Self.witness(cli, "w2", name: "w2.example.org/w", logs: [NoteSigner(name: "other/log", privateKey: .init()).verifierKey])
        let registry = try LiveRegistry(store: cli.store, arguments: ["--witness", "\(w1.base)=\(key1)", "--witness", "\(w2.base)=\(key2)"])
        #expect(registry.log.waitForLine(containing: "witness refused the checkpoint", timeout: 30) != nil, "\(registry.log.text)")
        #expect(try await registry.get("/v1/ledger/cosigned-checkpoint").status == 404)
        let state = cli.directory.path("state.json")
        AuditTests.expectFailure(try AuditTests.audit(cli, registry, state: state, "--witness", key1, "--witness", key2),
                                 "quorum not met: the registry serves no checkpoint cosigned by its witnesses", state: state, before: nil)
        // Bad registry options are refused in one line.
        for (arguments, problem) in [(["--witness", "nope"], "--witness 'nope' must be URL=KEY"),
                                     (["--witness", "\(w1.base)=\(key1)", "--witness-quorum", "2"], "--witness-quorum must be 1 to the number of --witness (1)")] {
            let result = try cli.run(["serve", "--port", "0"] + arguments)
            #expect(!result.signalled && result.status != 0 && result.errorLines.count == 1 && result.stderr.contains(problem), "\(result)")
        }
        let noLog = try cli.run(["witness", "serve", "--dir", cli.directory.path("w3").path, "--name", "w3"])
        #expect(noLog.status != 0 && noLog.errorLines.count == 1 && noLog.stderr.contains("--log"), "\(noLog)")
        _ = (w1, w2)
    }

    /// A registry that forks its log cannot get the witness that cosigned one side to cosign
    /// the other: the witness answers 422, the fork serves no cosigned checkpoint, and an audit
    /// that requires the witness fails.
    @Test func aForkedRegistryCannotGetItsForkCosigned() async throws {
        let cli = try AuditTests.market(calls: 1)
        let logKey = try #require(try JSONSerialization.jsonObject(with: Data(cli.must("ledger", "checkpoint", "--json").stdout.utf8)) as? [String: Any])["verifier_key"] as? String
        let (w1, key1) = try Self.witness(cli, "w1", name: "w1.example.org/w", logs: [try #require(logKey)])
        let fork = cli.directory.path("fork/.provenance")
        try FileManager.default.createDirectory(at: fork.deletingLastPathComponent(), withIntermediateDirectories: true)
        try TestBackend.copyStore(cli.store, to: fork)
        try AuditTests.call(cli, keys: ["a-1", "a-2"])
        try AuditTests.call(cli, keys: ["b-1", "b-2", "b-3"], store: fork)

        var registry = try LiveRegistry(store: cli.store, arguments: ["--witness", "\(w1.base)=\(key1)"])
        _ = try await Self.cosigned(registry, size: 3)
        registry.stop()
        registry = try LiveRegistry(store: fork, arguments: ["--witness", "\(w1.base)=\(key1)"])
        let refused = try #require(registry.log.waitForLine(containing: "witness refused the checkpoint", timeout: 30), "\(registry.log.text)")
        #expect(refused.contains("422"), "\(refused)")
        #expect(try await registry.get("/v1/ledger/cosigned-checkpoint").status == 404)
        let state = try JSONSerialization.jsonObject(with: Data(contentsOf: cli.directory.path("w1/state.json"))) as? [String: [String: Any]]
        #expect(state?.values.first?["size"] as? Int == 3)
        AuditTests.expectFailure(try AuditTests.audit(cli, registry, state: cli.directory.path("audit.json"), "--witness", key1),
                                 "quorum not met", state: cli.directory.path("audit.json"), before: nil)
        _ = w1
    }
}
