import Foundation
import ProvenanceTestSupport
import Testing
import ProvenanceCore

/// One RFC 9162 vector file from transparency-dev/merkle's testdata (Fixtures/rfc9162).
private struct InclusionVector: Decodable {
    var leafIdx: UInt64
    var treeSize: UInt64
    var root: String?
    var leafHash: String?
    var proof: [String]?
    var desc: String?
    var wantErr: Bool
}

private struct ConsistencyVector: Decodable {
    var size1: UInt64
    var size2: UInt64
    var root1: String?
    var root2: String?
    var proof: [String]?
    var desc: String?
    var wantErr: Bool
}

private enum Vectors {
    static var folder: URL {
        Bundle.module.resourceURL!
            .appendingPathComponent("Fixtures", isDirectory: true)
            .appendingPathComponent("rfc9162", isDirectory: true)
    }

    /// Paths (relative to the rfc9162 folder) of every .json file under `subfolder`, sorted.
    static func jsonFiles(under subfolder: String) -> [String] {
        let base = folder.appendingPathComponent(subfolder, isDirectory: true)
        guard let enumerator = FileManager.default.enumerator(at: base, includingPropertiesForKeys: nil) else { return [] }
        var paths: [String] = []
        for case let url as URL in enumerator where url.pathExtension == "json" {
            let components = url.standardizedFileURL.pathComponents
            guard let start = components.lastIndex(of: subfolder) else { continue }
            paths.append(components[start...].joined(separator: "/"))
        }
        return paths.sorted()
    }

    static func load<T: Decodable>(_ type: T.Type, _ relativePath: String) throws -> T {
        let data = try Data(contentsOf: folder.appendingPathComponent(relativePath))
        return try JSONDecoder().decode(type, from: data)
    }

    /// Missing or null hashes are empty; anything else must be valid base64.
    static func hash(_ text: String?, _ context: String) throws -> Data {
        guard let text else { return Data() }
        return try #require(Data(base64Encoded: text), "\(context): \(text) is not base64")
    }

    /// Sizes are uint64 in the vectors; one is 2^64 - 1 (index 0 minus one). It is passed on with the
    /// same bit pattern (-1), which the verifier must reject like any out-of-range value.
    static func int(_ value: UInt64) -> Int {
        Int(exactly: value) ?? Int(truncatingIfNeeded: value)
    }

    /// Leaf data of the 8-leaf reference tree (RFC 6962 test data, as used by transparency-dev/merkle).
    static let referenceLeaves: [Data] = [
        Data(),
        Data([0x00]),
        Data([0x10]),
        Data([0x20, 0x21]),
        Data([0x30, 0x31]),
        Data([0x40, 0x41, 0x42, 0x43]),
        Data([0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57]),
        Data([0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d, 0x6e, 0x6f]),
    ]
    static var referenceLeafHashes: [Data] { referenceLeaves.map(MerkleTree.leafHash) }
}

/// A straight transcription of RFC 9162's recursive definitions, to check the iterative code against.
private enum Reference {
    static func k(_ n: Int) -> Int {
        var k = 1
        while k * 2 < n { k *= 2 }
        return k
    }

    static func mth(_ d: ArraySlice<Data>) -> Data {
        switch d.count {
        case 0: return MerkleTree.emptyRoot
        case 1: return d[d.startIndex]
        default:
            let split = d.startIndex + k(d.count)
            return MerkleTree.nodeHash(mth(d[..<split]), mth(d[split...]))
        }
    }

    static func path(_ m: Int, _ d: ArraySlice<Data>) -> [Data] {
        guard d.count > 1 else { return [] }
        let k = k(d.count)
        let split = d.startIndex + k
        return m < k ? path(m, d[..<split]) + [mth(d[split...])] : path(m - k, d[split...]) + [mth(d[..<split])]
    }

    static func subproof(_ m: Int, _ d: ArraySlice<Data>, _ b: Bool) -> [Data] {
        if m == d.count { return b ? [] : [mth(d)] }
        let k = k(d.count)
        let split = d.startIndex + k
        return m <= k ? subproof(m, d[..<split], b) + [mth(d[split...])] : subproof(m - k, d[split...], false) + [mth(d[..<split])]
    }
}

private func leaves(_ count: Int, salt: String = "leaf") -> [Data] {
    (0..<count).map { MerkleTree.leafHash(Data("\(salt) \($0)".utf8)) }
}

@Suite struct MerkleTreeTests {
    // MARK: Hashing

    @Test func hashingFollowsRFC9162Prefixes() {
        #expect(MerkleTree.emptyRoot.base64EncodedString() == "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=")
        #expect(MerkleTree.root(ofLeafHashes: []) == MerkleTree.emptyRoot)
        // leaf hash of the empty string, SHA-256(0x00)
        #expect(MerkleTree.leafHash(Data()).base64EncodedString() == "bjQLnP+zepicpUTmu3gKLHiQHT+zNzh2hRGjBhevoB0=")
        let a = MerkleTree.leafHash(Data("a".utf8))
        let b = MerkleTree.leafHash(Data("b".utf8))
        #expect(MerkleTree.nodeHash(a, b) != MerkleTree.nodeHash(b, a))
        #expect(MerkleTree.root(ofLeafHashes: [a]) == a)
        #expect(MerkleTree.root(ofLeafHashes: [a, b]) == MerkleTree.nodeHash(a, b))
    }

    @Test func referenceTreeRootMatchesTheVectors() throws {
        let hashes = Vectors.referenceLeafHashes
        #expect(MerkleTree.root(ofLeafHashes: hashes).base64EncodedString() == "XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=")
        let happy = try Vectors.load(InclusionVector.self, "inclusion/1/happy-path.json")
        #expect(MerkleTree.root(ofLeafHashes: hashes) == (try Vectors.hash(happy.root, "root")))
        // The single-entry vectors use the leaf "data", as transparency-dev/merkle's test does.
        let single = try Vectors.load(InclusionVector.self, "inclusion/single-entry/matching-root-and-leaf.json")
        #expect(MerkleTree.leafHash(Data("data".utf8)) == (try Vectors.hash(single.leafHash, "leafHash")))
    }

    @Test func rootMatchesTheRecursiveDefinition() {
        for n in 0...130 {
            let hashes = leaves(n)
            #expect(MerkleTree.root(ofLeafHashes: hashes) == Reference.mth(hashes[...]), "size \(n)")
        }
    }

    // MARK: RFC 9162 vectors

    @Test func everyInclusionVectorGivesItsVerdict() throws {
        let files = Vectors.jsonFiles(under: "inclusion")
        var checked = 0
        var accepted = 0
        for file in files {
            let v = try Vectors.load(InclusionVector.self, file)
            let verdict = MerkleTree.verifyInclusion(
                leafHash: try Vectors.hash(v.leafHash, file),
                index: Vectors.int(v.leafIdx),
                size: Vectors.int(v.treeSize),
                proof: try (v.proof ?? []).map { try Vectors.hash($0, file) },
                root: try Vectors.hash(v.root, file)
            )
            #expect(verdict == !v.wantErr, "\(file) (\(v.desc ?? "")): verify returned \(verdict), wantErr is \(v.wantErr)")
            checked += 1
            if verdict { accepted += 1 }
        }
        #expect(checked == files.count)
        #expect(checked == 98, "inclusion vector files present: \(files.count)")
        #expect(accepted == 6)
    }

    @Test func everyConsistencyVectorGivesItsVerdict() throws {
        let files = Vectors.jsonFiles(under: "consistency")
        var checked = 0
        var accepted = 0
        for file in files {
            let v = try Vectors.load(ConsistencyVector.self, file)
            let verdict = MerkleTree.verifyConsistency(
                oldSize: Vectors.int(v.size1),
                newSize: Vectors.int(v.size2),
                oldRoot: try Vectors.hash(v.root1, file),
                newRoot: try Vectors.hash(v.root2, file),
                proof: try (v.proof ?? []).map { try Vectors.hash($0, file) }
            )
            #expect(verdict == !v.wantErr, "\(file) (\(v.desc ?? "")): verify returned \(verdict), wantErr is \(v.wantErr)")
            checked += 1
            if verdict { accepted += 1 }
        }
        #expect(checked == files.count)
        #expect(checked == 98, "consistency vector files present: \(files.count)")
        #expect(accepted == 6)
    }

    @Test func allVectorFilesAreChecked() {
        // Every .json under the fixture folder is an inclusion or a consistency vector: none is skipped.
        let enumerator = FileManager.default.enumerator(at: Vectors.folder, includingPropertiesForKeys: nil)
        let all = (enumerator?.allObjects ?? []).compactMap { $0 as? URL }.filter { $0.pathExtension == "json" }
        let inclusion = Vectors.jsonFiles(under: "inclusion")
        let consistency = Vectors.jsonFiles(under: "consistency")
        #expect(all.count == inclusion.count + consistency.count)
        #expect(all.count == 196)
    }

    @Test func happyPathProofsEqualGeneratedProofs() throws {
        let hashes = Vectors.referenceLeafHashes
        let inclusionHappy = Vectors.jsonFiles(under: "inclusion").filter { $0.hasSuffix("/happy-path.json") }
        let consistencyHappy = Vectors.jsonFiles(under: "consistency").filter { $0.hasSuffix("/happy-path.json") }
        #expect(inclusionHappy.count == 5)
        #expect(consistencyHappy.count == 5)

        for file in inclusionHappy {
            let v = try Vectors.load(InclusionVector.self, file)
            let index = Vectors.int(v.leafIdx), size = Vectors.int(v.treeSize)
            try #require(size <= hashes.count, "\(file) is not on the 8-leaf reference tree")
            #expect(hashes[index] == (try Vectors.hash(v.leafHash, file)), "\(file): leaf hash")
            #expect(MerkleTree.root(ofLeafHashes: Array(hashes[..<size])) == (try Vectors.hash(v.root, file)), "\(file): root")
            let generated = try MerkleTree.inclusionProof(index: index, size: size, leafHashes: hashes)
            #expect(generated == (try (v.proof ?? []).map { try Vectors.hash($0, file) }), "\(file): proof")
        }
        for file in consistencyHappy {
            let v = try Vectors.load(ConsistencyVector.self, file)
            let m = Vectors.int(v.size1), n = Vectors.int(v.size2)
            try #require(n <= hashes.count, "\(file) is not on the 8-leaf reference tree")
            #expect(MerkleTree.root(ofLeafHashes: Array(hashes[..<m])) == (try Vectors.hash(v.root1, file)), "\(file): root1")
            #expect(MerkleTree.root(ofLeafHashes: Array(hashes[..<n])) == (try Vectors.hash(v.root2, file)), "\(file): root2")
            let generated = try MerkleTree.consistencyProof(oldSize: m, newSize: n, leafHashes: hashes)
            #expect(generated == (try (v.proof ?? []).map { try Vectors.hash($0, file) }), "\(file): proof")
        }
    }

    // MARK: Generation against verification

    @Test func everyInclusionProofUpTo64Verifies() throws {
        let all = leaves(64)
        for size in 1...64 {
            let root = MerkleTree.root(ofLeafHashes: Array(all[..<size]))
            for index in 0..<size {
                let proof = try MerkleTree.inclusionProof(index: index, size: size, leafHashes: all)
                #expect(proof == Reference.path(index, all[..<size]), "PATH(\(index), D[\(size)])")
                #expect(MerkleTree.verifyInclusion(leafHash: all[index], index: index, size: size, proof: proof, root: root),
                        "inclusion of \(index) in \(size)")
            }
        }
    }

    @Test func everyConsistencyProofUpTo64Verifies() throws {
        let all = leaves(64)
        let roots = (0...64).map { MerkleTree.root(ofLeafHashes: Array(all[..<$0])) }
        for n in 1...64 {
            for m in 1...n {
                let proof = try MerkleTree.consistencyProof(oldSize: m, newSize: n, leafHashes: all)
                #expect(proof == (m == n ? [] : Reference.subproof(m, all[..<n], true)), "PROOF(\(m), D[\(n)])")
                #expect(MerkleTree.verifyConsistency(oldSize: m, newSize: n, oldRoot: roots[m], newRoot: roots[n], proof: proof),
                        "consistency \(m) -> \(n)")
            }
        }
    }

    @Test func tamperedProofsAreRejected() throws {
        let all = leaves(33)
        let roots = (0...33).map { MerkleTree.root(ofLeafHashes: Array(all[..<$0])) }
        for size in 1...33 {
            for index in 0..<size {
                let proof = try MerkleTree.inclusionProof(index: index, size: size, leafHashes: all)
                func accepts(_ p: [Data], index i: Int = index, size s: Int = size, leaf: Data? = nil) -> Bool {
                    MerkleTree.verifyInclusion(leafHash: leaf ?? all[index], index: i, size: s, proof: p, root: roots[size])
                }
                for position in proof.indices {
                    var bad = proof
                    bad[position][0] ^= 0x08
                    #expect(!accepts(bad), "flipped element \(position) of inclusion \(index)/\(size)")
                }
                #expect(!accepts(proof + [roots[size]]), "extended inclusion \(index)/\(size)")
                #expect(!accepts([roots[size]] + proof), "prefixed inclusion \(index)/\(size)")
                if !proof.isEmpty { #expect(!accepts(Array(proof.dropLast())), "truncated inclusion \(index)/\(size)") }
                #expect(!accepts(proof, index: index ^ 1) || size == 1, "wrong index \(index ^ 1)/\(size)")
                #expect(!accepts(proof, leaf: MerkleTree.leafHash(Data("other".utf8))), "wrong leaf \(index)/\(size)")
                #expect(!accepts(proof, index: -1), "negative index")
            }
            for old in 1..<size {
                let proof = try MerkleTree.consistencyProof(oldSize: old, newSize: size, leafHashes: all)
                func accepts(_ p: [Data], old o: Int = old, new n: Int = size) -> Bool {
                    MerkleTree.verifyConsistency(oldSize: o, newSize: n, oldRoot: roots[old], newRoot: roots[size], proof: p)
                }
                for position in proof.indices {
                    var bad = proof
                    bad[position][0] ^= 0x10
                    #expect(!accepts(bad), "flipped element \(position) of consistency \(old)->\(size)")
                }
                #expect(!accepts(proof + [roots[size]]), "extended consistency \(old)->\(size)")
                #expect(!accepts([roots[old]] + proof), "prefixed consistency \(old)->\(size)")
                #expect(!accepts(Array(proof.dropLast())), "truncated consistency \(old)->\(size)")
                #expect(!accepts([]), "empty consistency \(old)->\(size)")
                #expect(!accepts(proof, old: old + 1) || old + 1 == size, "wrong old size \(old + 1)->\(size)")
                #expect(!MerkleTree.verifyConsistency(oldSize: old, newSize: size, oldRoot: roots[size], newRoot: roots[old], proof: proof),
                        "swapped roots \(old)->\(size)")
            }
        }
    }

    /// A proof binds the leaf (or old root) to the root, not to the tree size: two sizes whose paths
    /// have the same shape accept the same proof (RFC 9162 verifies exactly this way, and the vectors'
    /// size mutations, x2 and /2, change the shape). The size must come from the signed checkpoint.
    @Test func proofsDoNotBindTheSizeOnTheirOwn() throws {
        let all = leaves(4)
        let root3 = MerkleTree.root(ofLeafHashes: Array(all[..<3]))
        let proof = try MerkleTree.inclusionProof(index: 0, size: 3, leafHashes: all)
        #expect(MerkleTree.verifyInclusion(leafHash: all[0], index: 0, size: 3, proof: proof, root: root3))
        #expect(MerkleTree.verifyInclusion(leafHash: all[0], index: 0, size: 4, proof: proof, root: root3))
        #expect(!MerkleTree.verifyInclusion(leafHash: all[0], index: 0, size: 6, proof: proof, root: root3))
        #expect(!MerkleTree.verifyInclusion(leafHash: all[0], index: 0, size: 1, proof: proof, root: root3))
    }

    @Test func consistencySpecialCases() {
        let root = MerkleTree.leafHash(Data("x".utf8))
        // m == n: empty proof and equal roots only.
        #expect(MerkleTree.verifyConsistency(oldSize: 5, newSize: 5, oldRoot: root, newRoot: root, proof: []))
        #expect(!MerkleTree.verifyConsistency(oldSize: 5, newSize: 5, oldRoot: root, newRoot: MerkleTree.emptyRoot, proof: []))
        #expect(!MerkleTree.verifyConsistency(oldSize: 5, newSize: 5, oldRoot: root, newRoot: root, proof: [root]))
        // From the empty tree: rejected, as the vectors require.
        #expect(!MerkleTree.verifyConsistency(oldSize: 0, newSize: 0, oldRoot: MerkleTree.emptyRoot, newRoot: MerkleTree.emptyRoot, proof: []))
        #expect(!MerkleTree.verifyConsistency(oldSize: 0, newSize: 3, oldRoot: MerkleTree.emptyRoot, newRoot: root, proof: []))
        // Negative and backwards sizes.
        #expect(!MerkleTree.verifyConsistency(oldSize: -1, newSize: 3, oldRoot: root, newRoot: root, proof: [root]))
        #expect(!MerkleTree.verifyConsistency(oldSize: 4, newSize: 3, oldRoot: root, newRoot: root, proof: [root]))
    }

    @Test func generationErrors() throws {
        let all = leaves(10)
        #expect(throws: MerkleError.indexOutOfRange(index: 10, size: 10)) {
            try MerkleTree.inclusionProof(index: 10, size: 10, leafHashes: all)
        }
        #expect(throws: MerkleError.indexOutOfRange(index: -1, size: 10)) {
            try MerkleTree.inclusionProof(index: -1, size: 10, leafHashes: all)
        }
        #expect(throws: MerkleError.indexOutOfRange(index: 0, size: 0)) {
            try MerkleTree.inclusionProof(index: 0, size: 0, leafHashes: all)
        }
        #expect(throws: MerkleError.sizeExceedsLeafCount(size: 11, leafCount: 10)) {
            try MerkleTree.inclusionProof(index: 0, size: 11, leafHashes: all)
        }
        #expect(throws: MerkleError.oldSizeExceedsNewSize(oldSize: 5, newSize: 4)) {
            try MerkleTree.consistencyProof(oldSize: 5, newSize: 4, leafHashes: all)
        }
        #expect(throws: MerkleError.sizeExceedsLeafCount(size: 11, leafCount: 10)) {
            try MerkleTree.consistencyProof(oldSize: 5, newSize: 11, leafHashes: all)
        }
        #expect(throws: MerkleError.negativeSize(-2)) {
            try MerkleTree.consistencyProof(oldSize: -2, newSize: 4, leafHashes: all)
        }
        #expect(try MerkleTree.consistencyProof(oldSize: 0, newSize: 10, leafHashes: all).isEmpty)
        #expect(try MerkleTree.consistencyProof(oldSize: 0, newSize: 0, leafHashes: all).isEmpty)
        #expect(try MerkleTree.consistencyProof(oldSize: 7, newSize: 7, leafHashes: all).isEmpty)
        #expect(try MerkleTree.inclusionProof(index: 0, size: 1, leafHashes: all).isEmpty)

        let descriptions = [
            MerkleError.indexOutOfRange(index: 10, size: 10), .sizeExceedsLeafCount(size: 11, leafCount: 10),
            .oldSizeExceedsNewSize(oldSize: 5, newSize: 4), .negativeSize(-2),
        ].map(\.description)
        for description in descriptions {
            #expect(!description.isEmpty && !description.contains("\n"))
        }
        #expect(MerkleError.indexOutOfRange(index: 10, size: 10).description.contains("10"))
    }

    @Test(.timeLimit(.minutes(2)))
    func twoHundredThousandLeaves() throws {
        let count = 200_000
        var generator = SplitMix64(state: 2024)
        let all = (0..<count).map { i in
            withUnsafeBytes(of: UInt64(i).bigEndian) { MerkleTree.leafHash(Data($0)) }
        }
        // Old roots come from the compact range as it grows, so no prefix tree is rebuilt.
        let oldSizes = [1, 131_072, 131_073, count - 1, Int.random(in: 2..<count, using: &generator)]
        var oldRoots: [Int: Data] = [:]
        var range = CompactRange()
        for hash in all {
            range.append(leafHash: hash)
            if oldSizes.contains(range.size) { oldRoots[range.size] = range.root }
        }
        let root = MerkleTree.root(ofLeafHashes: all)
        #expect(range.root == root)
        #expect(range.hashes.count == count.nonzeroBitCount)

        let indices = [0, 131_072, count - 1, Int.random(in: 0..<count, using: &generator)]
        for index in indices {
            let proof = try MerkleTree.inclusionProof(index: index, size: count, leafHashes: all)
            #expect(proof.count <= 18)
            #expect(MerkleTree.verifyInclusion(leafHash: all[index], index: index, size: count, proof: proof, root: root), "index \(index)")
        }
        for old in oldSizes {
            let proof = try MerkleTree.consistencyProof(oldSize: old, newSize: count, leafHashes: all)
            let oldRoot = try #require(oldRoots[old])
            #expect(MerkleTree.verifyConsistency(oldSize: old, newSize: count, oldRoot: oldRoot, newRoot: root, proof: proof), "\(old) -> \(count)")
        }
    }

    // MARK: Compact range

    @Test func compactRangeRootMatchesAfterEveryAppendUpTo300() {
        let all = leaves(300)
        var range = CompactRange()
        #expect(range.size == 0)
        #expect(range.root == MerkleTree.emptyRoot)
        #expect(range.root == MerkleTree.root(ofLeafHashes: []))
        for n in 1...300 {
            range.append(leafHash: all[n - 1])
            #expect(range.size == n)
            #expect(range.hashes.count == n.nonzeroBitCount)
            #expect(range.root == MerkleTree.root(ofLeafHashes: Array(all[..<n])), "size \(n)")
        }
    }

    @Test func compactRangeRootMatchesForRandomLargerSizes() {
        var generator = SplitMix64(state: 9162)
        var sizes = [511, 512, 513, 1024, 4097]
        for _ in 0..<4 { sizes.append(Int.random(in: 301...20_000, using: &generator)) }
        for n in sizes {
            let all = leaves(n, salt: "large")
            var range = CompactRange()
            for hash in all { range.append(leafHash: hash) }
            #expect(range.size == n)
            #expect(range.root == MerkleTree.root(ofLeafHashes: all), "size \(n)")
        }
    }

    @Test func compactRangeCodableRoundTripAndValidation() throws {
        var range = CompactRange()
        for hash in leaves(13) { range.append(leafHash: hash) }
        let encoded = try JSONEncoder().encode(range)
        let decoded = try JSONDecoder().decode(CompactRange.self, from: encoded)
        #expect(decoded == range)
        #expect(decoded.root == range.root)

        var broken = range
        broken.hashes.removeLast()
        let brokenData = try JSONEncoder().encode(broken)
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(CompactRange.self, from: brokenData) }

        var shortHash = range
        shortHash.hashes[0] = Data([1, 2, 3])
        let shortData = try JSONEncoder().encode(shortHash)
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(CompactRange.self, from: shortData) }
    }
}

@Suite struct AllInclusionProofsTests {
    @Test func batchProofsEqualSingleProofs() throws {
        for size in 1...70 {
            let leaves = (0..<size).map { MerkleTree.leafHash(Data("leaf \($0)".utf8)) }
            let (root, proofs) = MerkleTree.allInclusionProofs(leafHashes: leaves)
            #expect(root == MerkleTree.root(ofLeafHashes: leaves))
            for index in 0..<size {
                #expect(proofs[index] == (try MerkleTree.inclusionProof(index: index, size: size, leafHashes: leaves)), "size \(size) index \(index)")
            }
        }
    }
}
