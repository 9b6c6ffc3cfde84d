import Crypto
import Foundation
import Testing
@testable import ProvenanceCore

/// An inclusion check that stops where it meets the path of a leaf already checked
/// (`MerkleTree.verifyInclusion(leafHash:index:size:proof:root:sharing:)`) must give the verdict
/// of the same check without a trail — the RFC 9162 check, which `MerkleTreeTests` holds to the
/// transparency-dev vectors — for every leaf and every tampered proof, whatever trail it is handed.
@Suite struct InclusionTrailTests {
    private func leafData(_ count: Int) -> [Data] { (0..<count).map { Data("leaf \($0)".utf8) } }

    @Test func sharedChecksGiveTheRFCVerdictAndTheSameStates() throws {
        var random = SystemRandomNumberGenerator()
        for size in 1...40 {
            let data = leafData(size)
            let hashes = data.map(MerkleTree.leafHash)
            let root = MerkleTree.root(ofLeafHashes: hashes)
            let proofs = try (0..<size).map { try MerkleTree.inclusionProof(index: $0, size: size, leafHashes: hashes) }
            // Each leaf alone: the trail it leaves is the reference for its states.
            let alone = try (0..<size).map { index in
                try #require(MerkleTree.verifyInclusion(leafHash: MerkleTree.inlineLeafHash(data[index]), index: index, size: size,
                                                        proof: proofs[index], root: root, sharing: nil),
                             "leaf \(index) of \(size) alone")
            }
            #expect(alone.allSatisfy { $0.states.count == $0.proof.count })
            // In order, in reverse and shuffled, each sharing the last one's trail.
            for order in [Array(0..<size), Array((0..<size).reversed()), Array(0..<size).shuffled(using: &random)] {
                var trail: InclusionTrail?
                for index in order {
                    let shared = MerkleTree.verifyInclusion(leafHash: MerkleTree.inlineLeafHash(data[index]), index: index, size: size,
                                                            proof: proofs[index], root: root, sharing: trail)
                    #expect(shared?.states == alone[index].states, "leaf \(index) of \(size) after \(String(describing: trail?.states.count))")
                    trail = shared
                }
            }
        }
    }

    @Test func aTamperedProofIsRefusedWhateverTrailItMeets() throws {
        for size in 2...33 {
            let data = leafData(size)
            let hashes = data.map(MerkleTree.leafHash)
            let root = MerkleTree.root(ofLeafHashes: hashes)
            let proofs = try (0..<size).map { try MerkleTree.inclusionProof(index: $0, size: size, leafHashes: hashes) }
            for index in 0..<size {
                // Trails of the leaf itself and of its neighbours: they share the most levels.
                let trails = Set([index, max(0, index - 1), min(size - 1, index + 1)]).map { other in
                    MerkleTree.verifyInclusion(leafHash: MerkleTree.inlineLeafHash(data[other]), index: other, size: size,
                                               proof: proofs[other], root: root, sharing: nil)
                }
                for trail in trails {
                    #expect(trail != nil)
                    func accepts(_ proof: [Data], index i: Int = index, size s: Int = size, leaf: Data? = nil) -> Bool {
                        let shared = MerkleTree.verifyInclusion(leafHash: MerkleTree.inlineLeafHash(leaf ?? data[index]), index: i, size: s,
                                                                proof: proof, root: root, sharing: trail) != nil
                        #expect(shared == MerkleTree.verifyInclusion(leafHash: MerkleTree.leafHash(leaf ?? data[index]), index: i, size: s,
                                                                     proof: proof, root: root))
                        return shared
                    }
                    #expect(accepts(proofs[index]))
                    for position in proofs[index].indices {
                        var bad = proofs[index]
                        bad[position][31] ^= 0x01
                        #expect(!accepts(bad), "flipped element \(position) of \(index)/\(size)")
                    }
                    #expect(!accepts(proofs[index] + [root]), "extended \(index)/\(size)")
                    #expect(!accepts(Array(proofs[index].dropLast())), "truncated \(index)/\(size)")
                    #expect(!accepts(proofs[index], index: index ^ 1) || index ^ 1 >= size, "index \(index ^ 1)/\(size)")
                    #expect(!accepts(proofs[index], leaf: Data("other".utf8)), "wrong leaf \(index)/\(size)")
                    #expect(!accepts(proofs[index], index: size), "index past the end \(size)/\(size)")
                }
            }
        }
    }

    /// A leaf stops hashing where its path meets the trail, and takes the trail's states from
    /// there on. Shown by a trail whose states past the meeting point are false: a check that
    /// went on hashing would end in the true ones (and this false trail must never be made
    /// outside a test: trails come only from checks that held). In order, in a batch of 256,
    /// a leaf hashes one node where its path meets its left neighbour's, one for half the leaves,
    /// two for a quarter, and so on: 502 node hashes for the 255 leaves after the first, where a
    /// check without a trail hashes 8 × 255 = 2,040.
    @Test func aLeafStopsHashingWhereItsPathMeetsTheTrail() throws {
        let size = 256
        let data = leafData(size)
        let hashes = data.map(MerkleTree.leafHash)
        let root = MerkleTree.root(ofLeafHashes: hashes)
        let proofs = try (0..<size).map { try MerkleTree.inclusionProof(index: $0, size: size, leafHashes: hashes) }
        let false32 = InlineHash(Data(repeating: 0xee, count: 32))
        var hashed = 0
        for index in 1..<size {
            let left = try #require(MerkleTree.verifyInclusion(leafHash: MerkleTree.inlineLeafHash(data[index - 1]), index: index - 1,
                                                               size: size, proof: proofs[index - 1], root: root, sharing: nil))
            // The two paths meet at the step that hashes their common parent.
            let meet = (Int.bitWidth - (index ^ (index - 1)).leadingZeroBitCount) - 1
            let falseAbove = InclusionTrail(root: root, size: size, proof: left.proof,
                                            states: left.states.enumerated().map { step, state in
                                                step <= meet ? state : InclusionTrail.State(fn: -1, sn: -1, r: false32)
                                            })
            let shared = try #require(MerkleTree.verifyInclusion(leafHash: MerkleTree.inlineLeafHash(data[index]), index: index, size: size,
                                                                 proof: proofs[index], root: root, sharing: falseAbove))
            let alone = try #require(MerkleTree.verifyInclusion(leafHash: MerkleTree.inlineLeafHash(data[index]), index: index, size: size,
                                                                proof: proofs[index], root: root, sharing: nil))
            #expect(Array(shared.states[...meet]) == Array(alone.states[...meet]), "leaf \(index): its own steps")
            #expect(shared.states[(meet + 1)...].allSatisfy { $0.r == false32 }, "leaf \(index) went on hashing past step \(meet)")
            hashed += meet + 1
        }
        #expect(hashed == 502)
    }

    /// A trail of another tree (another root or size) is not used.
    @Test func aTrailOfAnotherTreeIsIgnored() throws {
        let data = leafData(16)
        let hashes = data.map(MerkleTree.leafHash)
        let root = MerkleTree.root(ofLeafHashes: hashes)
        let proof = try MerkleTree.inclusionProof(index: 3, size: 16, leafHashes: hashes)
        let trail = try #require(MerkleTree.verifyInclusion(leafHash: MerkleTree.inlineLeafHash(data[2]), index: 2, size: 16,
                                                            proof: try MerkleTree.inclusionProof(index: 2, size: 16, leafHashes: hashes),
                                                            root: root, sharing: nil))
        // The same proof against another root: the trail (of this root) must not vouch for it.
        var otherRoot = root
        otherRoot[0] ^= 0xff
        #expect(MerkleTree.verifyInclusion(leafHash: MerkleTree.inlineLeafHash(data[3]), index: 3, size: 16, proof: proof,
                                           root: otherRoot, sharing: trail) == nil)
        #expect(MerkleTree.verifyInclusion(leafHash: MerkleTree.inlineLeafHash(data[3]), index: 3, size: 16, proof: proof,
                                           root: root, sharing: trail) != nil)
    }

    @Test func inlineHashesEqualTheirData() {
        for length in [0, 1, 55, 56, 63, 64, 65, 300] {
            let data = Data((0..<length).map { UInt8(truncatingIfNeeded: $0 &* 7) })
            let leaf = MerkleTree.inlineLeafHash(data)
            #expect(leaf.data == MerkleTree.leafHash(data))
            #expect(leaf.equals(MerkleTree.leafHash(data)))
            #expect(!leaf.equals(MerkleTree.leafHash(data + [1])))
            #expect(!leaf.equals(Data()))
        }
    }

    // MARK: Batch signatures

    private func records(_ count: Int, node: String = "gpu1") -> [CallRecord] {
        (0..<count).map {
            CallRecord(caller: "alice", model: "m", version: "v1", node: node, router: nil, inputTokens: UInt64($0), outputTokens: 7,
                       latencyMilliseconds: 120, outputSHA256: nil, idempotencyKey: "key-\($0)")
        }
    }

    @Test func aBatchIsCheckedOnceAndEveryRecordStillAgainstItsProof() throws {
        let key = Curve25519.Signing.PrivateKey()
        let batch = records(100)
        let signatures = try CallSignature.signBatch(batch, with: key)
        let memo = VerifiedBatchSignatures()
        for index in Array(batch.indices).shuffled() {
            #expect(memo.verify(signatures[index], of: batch[index].canonicalBytes, key: key.publicKey))
        }
        guard case .batch(let root, let signature, let index, let size, let proof) = signatures[41] else {
            Issue.record("signBatch made a single signature")
            return
        }
        // Every element of a proof is checked, after the batch is known.
        for position in proof.indices {
            var bad = proof
            bad[position][5] ^= 0x20
            let tampered = CallSignature.batch(root: root, signature: signature, index: index, size: size, proof: bad)
            #expect(!memo.verify(tampered, of: batch[41].canonicalBytes, key: key.publicKey), "element \(position)")
            #expect(!tampered.verify(record: batch[41], publicKey: key.publicKey), "element \(position), without the memo")
        }
        // Another record under this record's proof; the right record under another index.
        #expect(!memo.verify(signatures[41], of: batch[42].canonicalBytes, key: key.publicKey))
        #expect(!memo.verify(.batch(root: root, signature: signature, index: 40, size: size, proof: proof), of: batch[41].canonicalBytes,
                             key: key.publicKey))
        // A known root with another signature, another size or another key is checked anew, and fails.
        var forged = signature
        forged[0] ^= 0x01
        #expect(!memo.verify(.batch(root: root, signature: forged, index: index, size: size, proof: proof), of: batch[41].canonicalBytes,
                             key: key.publicKey))
        #expect(!CallSignature.batch(root: root, signature: forged, index: index, size: size, proof: proof)
            .verify(record: batch[41], publicKey: key.publicKey))
        #expect(!signatures[41].verify(record: batch[41], publicKey: Curve25519.Signing.PrivateKey().publicKey))
        #expect(!memo.verify(signatures[41], of: batch[41].canonicalBytes, key: Curve25519.Signing.PrivateKey().publicKey))
        #expect(!memo.verify(.batch(root: root, signature: signature, index: index, size: size + 1, proof: proof), of: batch[41].canonicalBytes,
                             key: key.publicKey))
        // And the batch is still known afterwards.
        #expect(memo.verify(signatures[41], of: batch[41].canonicalBytes, key: key.publicKey))
    }

    /// The memo is bounded: at its limit it forgets every batch, and a batch seen again is
    /// checked anew, signature and all.
    @Test func theMemoForgetsAtItsLimitAndChecksAgain() throws {
        let key = Curve25519.Signing.PrivateKey()
        let memo = VerifiedBatchSignatures(limit: 3)
        let batches = try (0..<4).map { number in
            let batch = records(5).map { record in
                var record = record
                record.idempotencyKey = "batch-\(number)-\(record.idempotencyKey)"
                return record
            }
            return (batch, try CallSignature.signBatch(batch, with: key))
        }
        var counts: [Int] = []
        for (batch, signatures) in batches {
            for index in batch.indices { #expect(memo.verify(signatures[index], of: batch[index].canonicalBytes, key: key.publicKey)) }
            counts.append(memo.remembered)
        }
        // Three remembered, then the fourth finds the memo full: all are forgotten, it is kept.
        #expect(counts == [1, 2, 3, 1])
        // The first batch, forgotten, still verifies (checked anew) and is remembered again.
        let (first, firstSignatures) = batches[0]
        #expect(memo.verify(firstSignatures[2], of: first[2].canonicalBytes, key: key.publicKey))
        #expect(memo.remembered == 2)
        // And a forged signature of a forgotten batch is refused, not waved through.
        let (second, secondSignatures) = batches[1]
        guard case .batch(let root, var signature, let index, let size, let proof) = secondSignatures[0] else {
            Issue.record("signBatch made a single signature")
            return
        }
        signature[10] ^= 0x04
        #expect(!memo.verify(.batch(root: root, signature: signature, index: index, size: size, proof: proof), of: second[0].canonicalBytes,
                             key: key.publicKey))
    }

    @Test func theMemoAgreesWithTheOneRecordCheckOnEveryRecord() throws {
        let key = Curve25519.Signing.PrivateKey()
        let memo = VerifiedBatchSignatures()
        for count in [1, 2, 3, 7, 64, 257] {
            let batch = records(count)
            let signatures = try CallSignature.signBatch(batch, with: key)
            for index in batch.indices.reversed() {
                #expect(memo.verify(signatures[index], of: batch[index].canonicalBytes, key: key.publicKey)
                        == signatures[index].verify(record: batch[index], publicKey: key.publicKey))
                #expect(memo.verify(signatures[index], of: batch[index].canonicalBytes, key: key.publicKey))
            }
        }
        let single = try CallSignature.sign(records(1)[0], with: key)
        #expect(memo.verify(single, of: records(1)[0].canonicalBytes, key: key.publicKey))
        #expect(!memo.verify(single, of: records(2)[1].canonicalBytes, key: key.publicKey))
        #expect(!memo.verify(single, of: records(1)[0].canonicalBytes, key: nil))
    }
}
