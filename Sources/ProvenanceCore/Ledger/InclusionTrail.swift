import Foundation
import Crypto

/// A SHA-256 value held inline, without an allocation: the running hash of an inclusion check,
/// which builds one per level (a `Data` each was a heap block made and freed per level).
struct InlineHash: Equatable, Sendable {
    private var words: (UInt64, UInt64, UInt64, UInt64)

    init(_ digest: SHA256.Digest) {
        words = digest.withUnsafeBytes(Self.words)
    }

    /// The hash in `data`, which must be 32 bytes long.
    init(_ data: Data) {
        precondition(data.count == MerkleTree.hashSize, "a SHA-256 hash is 32 bytes")
        words = data.withUnsafeBytes(Self.words)
    }

    private static func words(_ raw: UnsafeRawBufferPointer) -> (UInt64, UInt64, UInt64, UInt64) {
        (raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self), raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self),
         raw.loadUnaligned(fromByteOffset: 16, as: UInt64.self), raw.loadUnaligned(fromByteOffset: 24, as: UInt64.self))
    }

    static func == (lhs: InlineHash, rhs: InlineHash) -> Bool {
        lhs.words.0 == rhs.words.0 && lhs.words.1 == rhs.words.1 && lhs.words.2 == rhs.words.2 && lhs.words.3 == rhs.words.3
    }

    /// Whether `data` holds these 32 bytes.
    func equals(_ data: Data) -> Bool {
        data.count == MerkleTree.hashSize && self == InlineHash(data)
    }

    var data: Data { Swift.withUnsafeBytes(of: words) { Data($0) } }

    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try Swift.withUnsafeBytes(of: words, body)
    }
}

/// The states an RFC 9162 inclusion check of one leaf went through, kept once the check held so
/// that the next leaf of the same tree can stop hashing where it joins this one's path.
///
/// The check (RFC 9162 §2.1.3.2) is a function of its state — `fn`, `sn` and the running hash
/// `r` — and the proof elements still to use. A second leaf that reaches, after the same step,
/// the state this one had, with the same proof elements left, ends where this one ended: at the
/// root. So it may stop there. It still compares every proof element it skips: a call's proof is
/// stored in its invoice, and one with a wrong upper element must be refused, not accepted
/// because its lower part met a path that holds.
///
/// Records of one signed batch arrive mostly in order, and neighbours share all but their lowest
/// levels: in order, the records of a batch of 256 after the first cost 1.97 node hashes each
/// instead of eight (502 for 255, as `InclusionTrailTests` counts them).
struct InclusionTrail: Sendable {
    struct State: Equatable {
        let fn: Int
        let sn: Int
        let r: InlineHash
    }

    let root: Data
    let size: Int
    let proof: [Data]
    /// The state after each step, one per proof element.
    let states: [State]
}

extension MerkleTree {
    /// `SHA-256(0x00 ‖ data)` held inline.
    static func inlineLeafHash(_ data: Data) -> InlineHash {
        var hasher = SHA256()
        withUnsafeBytes(of: UInt8(0x00)) { hasher.update(bufferPointer: $0) }
        data.withUnsafeBytes { hasher.update(bufferPointer: $0) }
        return InlineHash(hasher.finalize())
    }

    /// `SHA-256(0x01 ‖ left ‖ right)` from one 65-byte stack buffer.
    private static func inlineNodeHash(_ left: UnsafeRawBufferPointer, _ right: UnsafeRawBufferPointer) -> InlineHash {
        withUnsafeTemporaryAllocation(byteCount: 1 + 2 * hashSize, alignment: 8) { buffer in
            buffer[0] = 0x01
            UnsafeMutableRawBufferPointer(rebasing: buffer[1...hashSize]).copyMemory(from: left)
            UnsafeMutableRawBufferPointer(rebasing: buffer[(1 + hashSize)...]).copyMemory(from: right)
            return InlineHash(SHA256.hash(data: UnsafeRawBufferPointer(buffer)))
        }
    }

    /// RFC 9162 §2.1.3.2: the inclusion check itself (`verifyInclusion(leafHash: Data, …)` calls
    /// it with no trail), which stops early where it meets `trail` (the states of a leaf of the
    /// same tree already checked; see `InclusionTrail`). Returns this leaf's trail when the proof
    /// holds, nil when it does not.
    static func verifyInclusion(leafHash: InlineHash, index: Int, size: Int, proof: [Data], root: Data,
                                sharing trail: InclusionTrail?) -> InclusionTrail? {
        // Step 1: leaf_index must be below tree_size (negative values are out of range too).
        guard index >= 0, size > 0, index < size else { return nil }
        guard root.count == hashSize, proof.allSatisfy({ $0.count == hashSize }) else { return nil }
        let known = trail.flatMap { $0.size == size && $0.proof.count == proof.count && $0.root == root ? $0 : nil }
        // Steps 2 and 3.
        var fn = index
        var sn = size - 1
        var r = leafHash
        var states: [InclusionTrail.State] = []
        states.reserveCapacity(proof.count)
        // Step 4.
        for (step, p) in proof.enumerated() {
            // 4a.
            if sn == 0 { return nil }
            // 4b.
            if fn & 1 == 1 || fn == sn {
                r = p.withUnsafeBytes { left in r.withUnsafeBytes { right in inlineNodeHash(left, right) } }
                if fn & 1 == 0 {
                    while fn & 1 == 0 && fn != 0 {
                        fn >>= 1
                        sn >>= 1
                    }
                }
            } else {
                r = r.withUnsafeBytes { left in p.withUnsafeBytes { right in inlineNodeHash(left, right) } }
            }
            // 4c.
            fn >>= 1
            sn >>= 1
            let state = InclusionTrail.State(fn: fn, sn: sn, r: r)
            states.append(state)
            // Met the known path, with the same elements left: the rest would repeat its steps.
            if let known, known.states[step] == state,
               (step + 1..<proof.count).allSatisfy({ InlineHash(proof[$0]) == InlineHash(known.proof[$0]) }) {
                states.append(contentsOf: known.states[(step + 1)...])
                return InclusionTrail(root: root, size: size, proof: proof, states: states)
            }
        }
        // Step 5.
        guard sn == 0, r.equals(root) else { return nil }
        return InclusionTrail(root: root, size: size, proof: proof, states: states)
    }
}
