public import Foundation
import Crypto

/// Why a Merkle proof could not be produced.
public enum MerkleError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A tree size (or old tree size) was negative.
    case negativeSize(Int)
    /// The leaf index is not inside a tree of the given size (`0 <= index < size` is required).
    case indexOutOfRange(index: Int, size: Int)
    /// The tree size asks for more leaves than were supplied.
    case sizeExceedsLeafCount(size: Int, leafCount: Int)
    /// A consistency proof was asked from a larger tree to a smaller one.
    case oldSizeExceedsNewSize(oldSize: Int, newSize: Int)

    public var description: String {
        switch self {
        case .negativeSize(let size):
            "Merkle tree size \(size) is negative"
        case .indexOutOfRange(let index, let size):
            "leaf index \(index) is outside a Merkle tree of size \(size) (need 0 <= index < size)"
        case .sizeExceedsLeafCount(let size, let leafCount):
            "Merkle tree size \(size) exceeds the \(leafCount) leaf hashes available"
        case .oldSizeExceedsNewSize(let oldSize, let newSize):
            "consistency proof asked from size \(oldSize) to the smaller size \(newSize)"
        }
    }
}

/// RFC 9162 (Certificate Transparency v2) Merkle tree hashing with SHA-256.
///
/// Leaves are hashed as `SHA-256(0x00 ‖ data)` and interior nodes as `SHA-256(0x01 ‖ left ‖ right)`;
/// a tree of `n > 1` leaves splits at `k`, the largest power of two smaller than `n` (RFC 9162 §2.1.1).
///
/// Generation (`root`, `inclusionProof`, `consistencyProof`) works on an array of leaf hashes and is
/// O(n) per call: it hashes each sibling subtree on the path once and never builds the whole tree.
/// Verification follows the RFC 9162 §2.1.3.2 and §2.1.4.2 algorithms step by step.
public enum MerkleTree {
    /// Size in bytes of every hash in the tree (SHA-256).
    public static let hashSize = 32

    /// SHA-256 of the empty string: the root of the empty tree, MTH({}).
    public static let emptyRoot: Data = Data(SHA256.hash(data: Data()))

    /// `SHA-256(0x00 ‖ data)`, the hash of a leaf (RFC 9162 §2.1.1).
    public static func leafHash(_ data: Data) -> Data {
        hash(prefix: 0x00, data, Data())
    }

    /// `SHA-256(0x01 ‖ left ‖ right)`, the hash of an interior node (RFC 9162 §2.1.1).
    public static func nodeHash(_ left: Data, _ right: Data) -> Data {
        hash(prefix: 0x01, left, right)
    }

    /// `SHA-256(prefix ‖ first ‖ second)`, hashed from one buffer: a call's inclusion proof is
    /// nine of these, and three `update`s through `DataProtocol`, with an array for the prefix,
    /// cost more than the hashing.
    private static func hash(prefix: UInt8, _ first: Data, _ second: Data) -> Data {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 1 + first.count + second.count) { buffer in
            buffer[0] = prefix
            _ = first.copyBytes(to: UnsafeMutableBufferPointer(rebasing: buffer[1..<(1 + first.count)]))
            _ = second.copyBytes(to: UnsafeMutableBufferPointer(rebasing: buffer[(1 + first.count)...]))
            var hasher = SHA256()
            hasher.update(bufferPointer: UnsafeRawBufferPointer(buffer))
            return hasher.finalize().withUnsafeBytes { Data($0) }
        }
    }

    /// MTH(D[n]) over already-hashed leaves; the empty list gives ``emptyRoot``. Iterative, O(n).
    public static func root(ofLeafHashes leaves: [Data]) -> Data {
        subtreeRoot(leaves, leaves.startIndex..<leaves.endIndex)
    }

    /// PATH(m, D[n]) of RFC 9162 §2.1.3.1: the inclusion proof of leaf `index` in the tree made of
    /// the first `size` leaf hashes, ordered from the leaf's sibling up to the root's child.
    public static func inclusionProof(index: Int, size: Int, leafHashes: [Data]) throws -> [Data] {
        guard size >= 0 else { throw MerkleError.negativeSize(size) }
        guard size <= leafHashes.count else {
            throw MerkleError.sizeExceedsLeafCount(size: size, leafCount: leafHashes.count)
        }
        guard index >= 0, index < size else { throw MerkleError.indexOutOfRange(index: index, size: size) }

        // Walk down from the root, collecting the sibling subtree at every split; the proof lists
        // them bottom-up. Sibling subtrees are disjoint, so all the hashing is O(size) in total.
        var siblings: [Data] = []
        var low = leafHashes.startIndex
        var high = low + size
        var m = index
        while high - low > 1 {
            let k = largestPowerOfTwo(below: high - low)
            if m < k {
                siblings.append(subtreeRoot(leafHashes, (low + k)..<high))
                high = low + k
            } else {
                siblings.append(subtreeRoot(leafHashes, low..<(low + k)))
                low += k
                m -= k
            }
        }
        return siblings.reversed()
    }

    /// PROOF(m, D[n]) of RFC 9162 §2.1.4.1 between the trees made of the first `oldSize` and the
    /// first `newSize` leaf hashes. It is empty when `oldSize == newSize` (as RFC 9162 specifies)
    /// and when `oldSize == 0` (every tree extends the empty tree; there is nothing to prove).
    public static func consistencyProof(oldSize: Int, newSize: Int, leafHashes: [Data]) throws -> [Data] {
        guard oldSize >= 0 else { throw MerkleError.negativeSize(oldSize) }
        guard oldSize <= newSize else { throw MerkleError.oldSizeExceedsNewSize(oldSize: oldSize, newSize: newSize) }
        guard newSize <= leafHashes.count else {
            throw MerkleError.sizeExceedsLeafCount(size: newSize, leafCount: leafHashes.count)
        }
        if oldSize == 0 || oldSize == newSize { return [] }

        // SUBPROOF(m, D[n], b), unrolled: walk down while m < n, collecting siblings; when m == n the
        // subtree is the old tree's own node, which is included unless it is the whole old tree (b).
        var siblings: [Data] = []
        var low = leafHashes.startIndex
        var high = low + newSize
        var m = oldSize
        var wholeOldTree = true
        while m != high - low {
            let k = largestPowerOfTwo(below: high - low)
            if m <= k {
                siblings.append(subtreeRoot(leafHashes, (low + k)..<high))
                high = low + k
            } else {
                siblings.append(subtreeRoot(leafHashes, low..<(low + k)))
                low += k
                m -= k
                wholeOldTree = false
            }
        }
        var proof: [Data] = []
        proof.reserveCapacity(siblings.count + 1)
        if !wholeOldTree {
            proof.append(subtreeRoot(leafHashes, low..<high))
        }
        proof.append(contentsOf: siblings.reversed())
        return proof
    }

    /// RFC 9162 §2.1.3.2: whether `proof` shows the leaf with hash `leafHash` at `index` in the tree of
    /// `size` leaves whose root is `root`.
    ///
    /// Beyond the RFC's steps, hashes that are not 32 bytes long (leaf, root or proof element) are
    /// rejected, as transparency-dev/merkle rejects a leaf hash of the wrong size: an empty leaf hash
    /// would otherwise "verify" against an empty root in a one-leaf tree.
    public static func verifyInclusion(leafHash: Data, index: Int, size: Int, proof: [Data], root: Data) -> Bool {
        // The steps are `verifyInclusion(leafHash:index:size:proof:root:sharing:)`'s, on inline hashes.
        guard leafHash.count == hashSize else { return false }
        return verifyInclusion(leafHash: InlineHash(leafHash), index: index, size: size, proof: proof, root: root, sharing: nil) != nil
    }

    /// RFC 9162 §2.1.4.2: whether `proof` shows that the tree of `newSize` leaves with root `newRoot`
    /// extends the tree of `oldSize` leaves with root `oldRoot`.
    ///
    /// The special cases follow RFC 9162 and the transparency-dev/merkle test vectors:
    /// - `oldSize > newSize` (or a negative size) is rejected;
    /// - `oldSize == 0` is rejected, whatever the proof: the RFC algorithm requires `0 < first`, and
    ///   a consistency check from the empty tree proves nothing (this includes `0 == 0`);
    /// - `oldSize == newSize > 0` holds exactly when the proof is empty and the roots are equal bytes
    ///   (RFC 9162 §2.1.4.1: PROOF(m, D[m]) is empty);
    /// - otherwise the proof must be non-empty (step 1) and every root and proof hash 32 bytes long.
    public static func verifyConsistency(oldSize: Int, newSize: Int, oldRoot: Data, newRoot: Data, proof: [Data]) -> Bool {
        guard oldSize >= 0, newSize >= 0, oldSize <= newSize else { return false }
        guard oldSize > 0 else { return false }
        if oldSize == newSize {
            return proof.isEmpty && oldRoot == newRoot
        }
        // Step 1.
        guard !proof.isEmpty else { return false }
        guard oldRoot.count == hashSize, newRoot.count == hashSize,
              proof.allSatisfy({ $0.count == hashSize }) else { return false }

        // Step 2: if first is an exact power of 2, prepend first_hash.
        var path = proof
        if oldSize & (oldSize - 1) == 0 {
            path.insert(oldRoot, at: 0)
        }
        // Step 3.
        var fn = oldSize - 1
        var sn = newSize - 1
        // Step 4.
        if fn & 1 == 1 {
            while fn & 1 == 1 {
                fn >>= 1
                sn >>= 1
            }
        }
        // Step 5.
        var fr = path[0]
        var sr = path[0]
        // Step 6.
        for c in path.dropFirst() {
            if sn == 0 { return false }
            if fn & 1 == 1 || fn == sn {
                fr = nodeHash(c, fr)
                sr = nodeHash(c, sr)
                if fn & 1 == 0 {
                    while fn & 1 == 0 && fn != 0 {
                        fn >>= 1
                        sn >>= 1
                    }
                }
            } else {
                sr = nodeHash(sr, c)
            }
            fn >>= 1
            sn >>= 1
        }
        // Step 7.
        return fr == oldRoot && sr == newRoot && sn == 0
    }

    // MARK: - Internals

    /// The largest power of two strictly smaller than `n` (requires `n > 1`).
    /// Every leaf's inclusion proof in the tree of all `leafHashes`, in O(n log n): what a node
    /// needs to sign a batch of call records with one signature.
    public static func allInclusionProofs(leafHashes: [Data]) -> (root: Data, proofs: [[Data]]) {
        guard !leafHashes.isEmpty else { return (emptyRoot, []) }
        var proofs = Array(repeating: [Data](), count: leafHashes.count)
        func build(_ range: Range<Int>) -> Data {
            if range.count == 1 { return leafHashes[range.lowerBound] }
            let split = range.lowerBound + largestPowerOfTwo(below: range.count)
            let left = build(range.lowerBound..<split)
            let right = build(split..<range.upperBound)
            // PATH(m, D[n]) = PATH(m, D[0:k]) : MTH(D[k:n]) for m < k, and the mirror for m >= k.
            for index in range.lowerBound..<split { proofs[index].append(right) }
            for index in split..<range.upperBound { proofs[index].append(left) }
            return nodeHash(left, right)
        }
        let root = build(0..<leafHashes.count)
        return (root, proofs)
    }

    static func largestPowerOfTwo(below n: Int) -> Int {
        precondition(n > 1, "a split needs at least two leaves")
        return 1 << (Int.bitWidth - 1 - (n - 1).leadingZeroBitCount)
    }

    /// MTH of the leaf hashes in `range`, level by level: pair neighbours and carry an odd last node
    /// up unchanged, which yields exactly RFC 9162's left-balanced tree. O(n) time, n/2 scratch.
    static func subtreeRoot(_ leaves: [Data], _ range: Range<Int>) -> Data {
        switch range.count {
        case 0: return emptyRoot
        case 1: return leaves[range.lowerBound]
        default: break
        }
        var level: [Data] = []
        level.reserveCapacity((range.count + 1) / 2)
        var i = range.lowerBound
        while i + 1 < range.upperBound {
            level.append(nodeHash(leaves[i], leaves[i + 1]))
            i += 2
        }
        if i < range.upperBound { level.append(leaves[i]) }

        while level.count > 1 {
            var write = 0
            var read = 0
            while read + 1 < level.count {
                level[write] = nodeHash(level[read], level[read + 1])
                write += 1
                read += 2
            }
            if read < level.count {
                level[write] = level[read]
                write += 1
            }
            level.removeLast(level.count - write)
        }
        return level[0]
    }
}

/// The Merkle "frontier" of a log: the roots of the perfect subtrees that cover its leaves, left to
/// right and largest first (one per set bit of `size`). Appending a leaf and computing the root are
/// both O(log n), without the leaves themselves.
public struct CompactRange: Codable, Sendable, Equatable {
    /// Number of leaves appended so far.
    public var size: Int
    /// Roots of the perfect subtrees, left to right, largest first.
    public var hashes: [Data]

    /// The empty range (no leaves).
    public init() {
        size = 0
        hashes = []
    }

    /// Adds the next leaf (by its leaf hash) and merges the equal-sized subtrees this completes.
    public mutating func append(leafHash: Data) {
        hashes.append(leafHash)
        size += 1
        // Each trailing zero bit of the new size is one pair of equal perfect subtrees to merge.
        for _ in 0..<size.trailingZeroBitCount {
            let right = hashes.removeLast()
            let left = hashes.removeLast()
            hashes.append(MerkleTree.nodeHash(left, right))
        }
    }

    /// MTH of all the leaves appended so far; ``MerkleTree/emptyRoot`` when there are none.
    public var root: Data {
        guard var accumulator = hashes.last else { return MerkleTree.emptyRoot }
        for hash in hashes.dropLast().reversed() {
            accumulator = MerkleTree.nodeHash(hash, accumulator)
        }
        return accumulator
    }

    private enum CodingKeys: String, CodingKey {
        case size
        case hashes
    }

    /// Decodes a range and checks its shape: a non-negative size, one 32-byte hash per set bit.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let size = try container.decode(Int.self, forKey: .size)
        let hashes = try container.decode([Data].self, forKey: .hashes)
        guard size >= 0, hashes.count == size.nonzeroBitCount,
              hashes.allSatisfy({ $0.count == MerkleTree.hashSize }) else {
            throw DecodingError.dataCorrupted(DecodingError.Context(
                codingPath: decoder.codingPath,
                debugDescription: "compact range of size \(size) needs \(max(size, 0).nonzeroBitCount) hashes of \(MerkleTree.hashSize) bytes, got \(hashes.count)"
            ))
        }
        self.size = size
        self.hashes = hashes
    }
}
