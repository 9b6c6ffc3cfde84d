public import Foundation
public import Crypto

/// A transparency-log witness (https://c2sp.org/tlog-witness): for each log it is configured
/// with (origin and verifier key) it keeps the latest checkpoint it cosigned, and cosigns a new
/// one only if the log signed it and it is consistent with that one. So a log that forks cannot
/// get one witness to cosign both sides.
///
/// The state is a JSON file written whole and renamed into place, under a lock held from the
/// check to the write, so two requests cannot roll the state back.
public final class Witness: @unchecked Sendable {
    public let signer: CosignatureSigner
    /// The logs, by origin.
    public let logs: [String: NoteVerifier]
    let stateURL: URL
    private let lock = NSLock()

    /// What a witness answers: an HTTP status, a content type and a body.
    public struct Answer: Sendable, Equatable {
        public var status: Int
        public var contentType: String
        public var body: String
    }

    struct Cosigned: Codable {
        var size: Int
        var rootHash: String
        enum CodingKeys: String, CodingKey {
            case size
            case rootHash = "root_hash"
        }
    }

    /// - Parameters:
    ///   - logs: the logs' verifier keys; a log's origin is its key's name.
    ///   - stateURL: where the latest cosigned checkpoint of each log is kept.
    public init(signer: CosignatureSigner, logs: [NoteVerifier], stateURL: URL) {
        self.signer = signer
        var table: [String: NoteVerifier] = [:]
        for log in logs { table[log.name] = log }
        self.logs = table
        self.stateURL = stateURL
    }

    /// The latest cosigned size of each log.
    public func cosignedSizes() throws -> [String: Int] {
        lock.lock()
        defer { lock.unlock() }
        return try load().mapValues(\.size)
    }

    func load() throws -> [String: Cosigned] {
        guard FileManager.default.fileExists(atPath: stateURL.path) else { return [:] }
        do { return try JSONDecoder().decode([String: Cosigned].self, from: Data(contentsOf: stateURL)) } catch {
            throw ProvenanceError(.storage, "the witness state \(stateURL.path) cannot be read: \(error)")
        }
    }

    func save(_ state: [String: Cosigned]) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        let temporary = stateURL.deletingLastPathComponent().appendingPathComponent(".\(stateURL.lastPathComponent).\(UUID().uuidString)")
        let data = try encoder.encode(state)
        let fd = open(temporary.path, O_CREAT | O_EXCL | O_WRONLY, 0o600)
        guard fd >= 0 else { throw ProvenanceError(.storage, "cannot write \(temporary.path): \(String(cString: strerror(errno)))") }
        let written = data.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        fsync(fd)
        close(fd)
        guard written == data.count, rename(temporary.path, stateURL.path) == 0 else {
            unlink(temporary.path)
            throw ProvenanceError(.storage, "cannot write the witness state \(stateURL.path)")
        }
    }

    /// Answers one `add-checkpoint` request body: an `old N` line, up to 63 consistency-proof
    /// lines, a blank line and the signed checkpoint. 200 with a cosignature line; 400 for a
    /// malformed request or an old size beyond the checkpoint; 403 when the log's signature
    /// does not verify; 404 for an unknown origin; 409 (`text/x.tlog.size`, the size cosigned)
    /// when the old size is not the one cosigned, or the same size has another root; 422 when
    /// the consistency proof does not verify.
    public func addCheckpoint(_ body: Data, now: Date = Date()) -> Answer {
        func answer(_ status: Int, _ text: String) -> Answer { Answer(status: status, contentType: "text/plain; charset=utf-8", body: text + "\n") }
        let bytes = Array(body)
        guard let blank = bytes.indices.dropLast().first(where: { bytes[$0] == 0x0A && bytes[$0 + 1] == 0x0A }) else {
            return answer(400, "the request is not an old size line, proof lines, a blank line and a checkpoint")
        }
        let header = String(decoding: bytes[...blank], as: UTF8.self).split(separator: "\n").map(String.init)
        let note = String(decoding: bytes[(blank + 2)...], as: UTF8.self)
        guard let first = header.first, first.hasPrefix("old "), let old = Self.decimal(first.dropFirst(4)) else {
            return answer(400, "the first line must be 'old SIZE' (a decimal without leading zeros)")
        }
        let proofLines = header.dropFirst()
        guard proofLines.count <= 63 else { return answer(400, "more than 63 consistency proof lines") }
        let proof = proofLines.compactMap { SignedNoteFormat.decodeCanonicalBase64(Array($0.utf8)) }.filter { $0.count == 32 }
        guard proof.count == proofLines.count else { return answer(400, "a consistency proof line is not the base64 of a 32-byte hash") }
        guard let origin = note.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init), !origin.isEmpty else {
            return answer(400, "the checkpoint has no origin line")
        }
        guard let log = logs[origin] else { return answer(404, "this witness does not witness the log '\(origin.prefix(100))'") }
        let checkpoint: Checkpoint
        do { checkpoint = try log.verify(note) } catch let error as SignedNoteError {
            switch error {
            case .unknownKey, .badSignature: return answer(403, "the checkpoint is not signed by the log's key: \(error)")
            default: return answer(400, "\(error)")
            }
        } catch { return answer(400, "\(error)") }
        guard old <= checkpoint.size else { return answer(400, "old size \(old) is larger than the checkpoint's \(checkpoint.size)") }

        lock.lock()
        defer { lock.unlock() }
        var state: [String: Cosigned]
        do { state = try load() } catch { return answer(500, "\(error)") }
        let known = state[origin]
        let knownSize = known?.size ?? 0
        guard old == knownSize else { return Answer(status: 409, contentType: "text/x.tlog.size", body: "\(knownSize)\n") }
        let knownRoot = known.flatMap { Data(base64Encoded: $0.rootHash) } ?? MerkleTree.emptyRoot
        if old == checkpoint.size {
            guard checkpoint.rootHash == knownRoot, proof.isEmpty else {
                return Answer(status: 409, contentType: "text/x.tlog.size", body: "\(knownSize)\n")
            }
        } else if old == 0 {
            guard proof.isEmpty else { return answer(422, "the proof must be empty from size 0") }
        } else {
            guard MerkleTree.verifyConsistency(oldSize: old, newSize: checkpoint.size, oldRoot: knownRoot, newRoot: checkpoint.rootHash, proof: proof) else {
                return answer(422, "the checkpoint of \(checkpoint.size) is not consistent with the \(old) this witness cosigned")
            }
        }
        state[origin] = Cosigned(size: checkpoint.size, rootHash: checkpoint.rootHash.base64EncodedString())
        do {
            try save(state)
            let line = try signer.cosign(checkpoint, timestamp: UInt64(max(0, now.timeIntervalSince1970)))
            return Answer(status: 200, contentType: "text/plain; charset=utf-8", body: line)
        } catch { return answer(500, "\(error)") }
    }

    static func decimal(_ text: Substring) -> Int? {
        guard !text.isEmpty, text.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }), text == "0" || text.first != "0" else { return nil }
        return Int(text)
    }
}
