import Foundation
import ProvenanceCore

// The JSON bodies of the API, as `Registry/openapi.yaml` describes them. Amounts travel as
// decimal strings: token amounts (`"12.5"`) in requests; both the token amount and the base
// units (`…_raw`) in answers.

// MARK: Requests

struct ImportCommitRequest: Decodable {
    /// A git URL (`https://`, `http://`, `git://`, `ssh://`); `file://` and paths only when
    /// the server allows local remotes.
    var source: String
    var rev: String?
    var force: Bool?
}

struct TrainingLogUpload: Decodable {
    var name: String
    /// The log as UTF-8 text…
    var content: String?
    /// …or as base64 bytes.
    var contentBase64: String?

    enum CodingKeys: String, CodingKey {
        case name, content
        case contentBase64 = "content_base64"
    }
}

struct RegisterModelVersionRequest: Decodable {
    var version: String
    /// `Name <email>`.
    var developer: String
    /// `DATASET` or `DATASET@REV`.
    var datasets: [String]?
    /// `MODEL@VERSION`.
    var base: String?
    /// `NAME` or `NAME:key=value,...`.
    var plugin: String?
    var baseSharePPB: UInt64?
    var trainingLogs: [TrainingLogUpload]?

    enum CodingKeys: String, CodingKey {
        case version, developer, datasets, base, plugin
        case baseSharePPB = "base_share_ppb"
        case trainingLogs = "training_logs"
    }
}

struct SetPluginRequest: Decodable {
    /// `NAME` or `NAME:key=value,...`.
    var plugin: String
    var options: [String: String]?
    /// `Name <email>` recorded as the author of the change (default: the model's latest developer).
    var by: String?
}

struct SetPriceRequest: Decodable {
    var inputPer1k: String
    var outputPer1k: String
    var minFee: String?
    /// Basis points per role, summing to 10000; default developer 2000, data 5000, node 2000, platform 1000.
    var split: [String: UInt32]?
    var sloMs: UInt64?
    var sloPenaltyBps: UInt32?

    enum CodingKeys: String, CodingKey {
        case split
        case inputPer1k = "input_per_1k"
        case outputPer1k = "output_per_1k"
        case minFee = "min_fee"
        case sloMs = "slo_ms"
        case sloPenaltyBps = "slo_penalty_bps"
    }
}

struct DepositRequest: Decodable {
    var amount: String
}

struct RegisterNodeRequest: Decodable {
    var name: String
    /// The raw 32-byte Ed25519 public key, base64.
    var publicKey: String
    var stake: String?

    enum CodingKeys: String, CodingKey {
        case name, stake
        case publicKey = "public_key"
    }
}

/// A call record as the node signed it (DESIGN.md §8); the signature covers its canonical form.
struct CallRecordPayload: Codable, Equatable {
    var caller: String
    var model: String
    var version: String
    var node: String
    var router: String?
    var inputTokens: UInt64
    var outputTokens: UInt64
    var latencyMs: UInt64
    var outputSHA256: String?
    var idempotencyKey: String

    enum CodingKeys: String, CodingKey {
        case caller, model, version, node, router
        case inputTokens = "input_tokens"
        case outputTokens = "output_tokens"
        case latencyMs = "latency_ms"
        case outputSHA256 = "output_sha256"
        case idempotencyKey = "idempotency_key"
    }

    var record: CallRecord {
        CallRecord(caller: caller, model: model, version: version, node: node, router: router, inputTokens: inputTokens,
                   outputTokens: outputTokens, latencyMilliseconds: latencyMs, outputSHA256: outputSHA256,
                   idempotencyKey: idempotencyKey)
    }
}

struct CallSignaturePayload: Decodable, Equatable {
    /// `single` (a signature over the record) or `batch` (over a batch root, with this record's inclusion proof).
    var kind: String
    var signature: String
    var batchRoot: String?
    var index: Int?
    var size: Int?
    var proof: Proof?

    enum CodingKeys: String, CodingKey {
        case kind, signature, index, size, proof
        case batchRoot = "batch_root"
    }

    /// A batch signature's proof: base64 texts as `JSONDecoder` reads them, or hashes `CallBodyParser`
    /// decoded in place from the body (it does so only when every one is the canonical base64 of
    /// 32 bytes and there are at most 64; otherwise it gives texts, for `checkFields` to refuse).
    /// A batch of 256 sends eight: as texts each was a string made, checked, decoded and freed.
    enum Proof: Decodable, Equatable {
        case texts([String])
        case hashes([Data])

        init(from decoder: any Decoder) throws {
            self = .texts(try decoder.singleValueContainer().decode([String].self))
        }

        /// The proof as the body wrote it.
        var texts: [String] {
            switch self {
            case .texts(let texts): texts
            case .hashes(let hashes): hashes.map { $0.base64EncodedString() }
            }
        }

        /// The hashes; 422 for a text that is not base64 (`checkFields` refuses it first).
        func hashes() throws -> [Data] {
            switch self {
            case .hashes(let hashes):
                return hashes
            case .texts(let texts):
                let decoded = CallSignaturePayload.proofHashes(count: texts.count) { index, out, table in
                    var text = texts[index]
                    return text.withUTF8 { CallSignaturePayload.decodeHash(UnsafeRawBufferPointer($0), into: out, table: table) }
                }
                guard let decoded else { throw RegistryError.refused("signature.proof is not base64") }
                return decoded
            }
        }

        /// Equal when the body said the same: decoded hashes equal the texts they came from.
        static func == (lhs: Proof, rhs: Proof) -> Bool {
            switch (lhs, rhs) {
            case (.hashes(let left), .hashes(let right)): left == right
            default: lhs.texts == rhs.texts
            }
        }
    }

    /// The checks the contract states (400); what only the whole signature can tell is 422.
    func checkFields() throws {
        guard kind == "single" || kind == "batch" else {
            throw RegistryError.invalid("signature.kind must be 'single' or 'batch', not '\(kind.prefix(100))'")
        }
        try Pattern.check(signature, Pattern.base64Bytes64, "signature.signature", "give the 64-byte Ed25519 signature in base64")
        if let batchRoot { try Pattern.check(batchRoot, Pattern.base64Bytes32, "signature.batch_root", "give the 32-byte root in base64") }
        if let index, index < 0 { throw RegistryError.invalid("signature.index must be at least 0") }
        if let size, size < 1 { throw RegistryError.invalid("signature.size must be at least 1") }
        if case .texts(let proof) = proof {
            guard proof.count <= 64 else { throw RegistryError.invalid("signature.proof holds at most 64 hashes") }
            for hash in proof { try Pattern.check(hash, Pattern.base64Bytes32, "signature.proof[]", "give each 32-byte hash in base64") }
        }
    }

    func callSignature() throws -> CallSignature {
        func bytes(_ text: String, _ what: String) throws -> Data {
            guard let data = Data(base64Encoded: text) else { throw RegistryError.refused("signature.\(what) is not base64") }
            return data
        }
        switch kind {
        case "single":
            return .single(signature: try bytes(signature, "signature"))
        default:
            guard let batchRoot, let index, let size, let proof else {
                throw RegistryError.refused("a batch signature needs batch_root, index, size and proof")
            }
            guard index < size else {
                throw RegistryError.refused("a batch signature's index \(index) must be less than its size \(size)")
            }
            return .batch(root: try bytes(batchRoot, "batch_root"), signature: try bytes(signature, "signature"), index: index,
                          size: size, proof: try proof.hashes())
        }
    }

    /// `count` hashes, each decoded by `decode` (given its index, where its 32 bytes go and the
    /// `Pattern.base64Value` table) from the canonical base64 of 32 bytes; nil when one is not that.
    ///
    /// They are decoded into one buffer and handed out as slices of it: one allocation for the
    /// whole proof instead of one per hash, and one to free.
    static func proofHashes(count: Int, decode: (Int, UnsafeMutableRawBufferPointer, UnsafeBufferPointer<UInt8>) -> Bool) -> [Data]? {
        let size = MerkleTree.hashSize
        var all = Data(count: count * size)
        let decoded = all.withUnsafeMutableBytes { out in
            // The table is read through one pointer: reaching the global for every character
            // (its once-check) cost more than the decoding.
            Pattern.base64Value.withUnsafeBufferPointer { table in
                (0..<count).allSatisfy { decode($0, UnsafeMutableRawBufferPointer(rebasing: out[($0 * size)..<(($0 + 1) * size)]), table) }
            }
        }
        guard decoded else { return nil }
        return (0..<count).map { all[($0 * size)..<(($0 + 1) * size)] }
    }

    /// Decodes 44 characters of canonical base64 (the last a `=`, the bits it drops zero) into
    /// the first 32 bytes of `out`; false for anything else. `table` is `Pattern.base64Value`.
    static func decodeHash(_ text: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer,
                           table: UnsafeBufferPointer<UInt8>) -> Bool {
        guard text.count == 44, out.count >= 32, text[43] == UInt8(ascii: "=") else { return false }
        var written = 0
        var group: UInt32 = 0
        for position in 0..<43 {
            let value = table[Int(text[position])]
            guard value < 64 else { return false }
            group = group << 6 | UInt32(value)
            if position % 4 == 3 {
                out[written] = UInt8(truncatingIfNeeded: group >> 16)
                out[written + 1] = UInt8(truncatingIfNeeded: group >> 8)
                out[written + 2] = UInt8(truncatingIfNeeded: group)
                written += 3
                group = 0
            }
        }
        // The last three characters hold 18 bits: two bytes and two bits that must be zero.
        guard group & 0b11 == 0 else { return false }
        out[30] = UInt8(truncatingIfNeeded: group >> 10)
        out[31] = UInt8(truncatingIfNeeded: group >> 2)
        return true
    }

}

struct SubmitCallRequest: Decodable, Equatable {
    var record: CallRecordPayload
    var signature: CallSignaturePayload
    /// Reserve the fee now and settle with the next batch (`POST /v1/settlements` or `--settle-every`).
    var deferred: Bool?
    /// The call's output, for models attributed per call (span-match); its SHA-256 must be
    /// `record.output_sha256` (422 otherwise).
    var outputText: String?

    enum CodingKeys: String, CodingKey {
        case record, signature, deferred
        case outputText = "output_text"
    }
}

struct SubmitCallBatchRequest: Decodable, Equatable {
    struct Item: Decodable, Equatable {
        var record: CallRecordPayload
        var signature: CallSignaturePayload
        var outputText: String?

        enum CodingKeys: String, CodingKey {
            case record, signature
            case outputText = "output_text"
        }
    }
    var calls: [Item]
    var deferred: Bool?
}

// MARK: Answers

struct BalancePayload: Encodable {
    var account: String
    var balance: String
    var balanceRaw: String

    enum CodingKeys: String, CodingKey {
        case account, balance
        case balanceRaw = "balance_raw"
    }
}

struct StatementPayload: Encodable {
    var account: String
    var transfers: [StatementLine]
}

struct NodePayload: Encodable {
    var name: String
    var publicKey: String
    var stake: String
    var stakeRaw: String
    var account: String

    init(_ node: NodeRecord) {
        name = node.name
        publicKey = node.publicKey
        stake = node.stake.description
        stakeRaw = node.stake.rawString
        account = Accounts.node(node.name)
    }

    enum CodingKeys: String, CodingKey {
        case name, stake, account
        case publicKey = "public_key"
        case stakeRaw = "stake_raw"
    }
}

struct PricePayload: Encodable {
    var model: String
    var inputPer1k: String
    var inputPer1kRaw: String
    var outputPer1k: String
    var outputPer1kRaw: String
    var minFee: String
    var minFeeRaw: String
    var split: [String: UInt32]
    var sloMs: UInt64?
    var sloPenaltyBps: UInt32

    init(model: String, price: Price) {
        self.model = model
        inputPer1k = price.inputPer1k.description
        inputPer1kRaw = price.inputPer1k.rawString
        outputPer1k = price.outputPer1k.description
        outputPer1kRaw = price.outputPer1k.rawString
        minFee = price.minFee.description
        minFeeRaw = price.minFee.rawString
        split = Dictionary(uniqueKeysWithValues: price.split.bps.map { ($0.key.rawValue, $0.value) })
        sloMs = price.sloMilliseconds
        sloPenaltyBps = price.sloPenaltyBps
    }

    enum CodingKeys: String, CodingKey {
        case model, split
        case inputPer1k = "input_per_1k"
        case inputPer1kRaw = "input_per_1k_raw"
        case outputPer1k = "output_per_1k"
        case outputPer1kRaw = "output_per_1k_raw"
        case minFee = "min_fee"
        case minFeeRaw = "min_fee_raw"
        case sloMs = "slo_ms"
        case sloPenaltyBps = "slo_penalty_bps"
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(model, forKey: .model)
        try container.encode(inputPer1k, forKey: .inputPer1k)
        try container.encode(inputPer1kRaw, forKey: .inputPer1kRaw)
        try container.encode(outputPer1k, forKey: .outputPer1k)
        try container.encode(outputPer1kRaw, forKey: .outputPer1kRaw)
        try container.encode(minFee, forKey: .minFee)
        try container.encode(minFeeRaw, forKey: .minFeeRaw)
        try container.encode(split, forKey: .split)
        try container.encode(sloMs, forKey: .sloMs)
        try container.encode(sloPenaltyBps, forKey: .sloPenaltyBps)
    }
}

struct ContributorPayload: Encodable {
    var contributor: String
    var id: String
    var commits: Int
}

struct InvoicePayload: Encodable {
    var index: Int
    var leafHash: String
    var settledAt: Int64
    var invoice: JSONValue

    init(_ entry: InvoiceEntry) throws {
        index = entry.index
        leafHash = entry.leafHash
        settledAt = entry.settledAt
        invoice = try JSONValue.parse(entry.invoice.expanded.encoded())
    }

    enum CodingKeys: String, CodingKey {
        case index, invoice
        case leafHash = "leaf_hash"
        case settledAt = "settled_at"
    }
}

struct BundlePayload: Encodable {
    struct Item: Encodable {
        var index: Int
        var leafHash: String
        var proof: [String]
        var received: String
        var receivedRaw: String
        var paid: String
        var paidRaw: String
        var invoice: JSONValue

        enum CodingKeys: String, CodingKey {
            case index, proof, received, paid, invoice
            case leafHash = "leaf_hash"
            case receivedRaw = "received_raw"
            case paidRaw = "paid_raw"
        }
    }

    var account: String
    var received: String
    var receivedRaw: String
    var paid: String
    var paidRaw: String
    var checkpoint: CheckpointInfo
    var invoices: [Item]
    /// The settlement terms the invoices refer to, by SHA-256, so the bundle re-derives offline.
    var terms: [String: JSONValue]

    init(_ bundle: InvoiceBundle) throws {
        account = bundle.account
        received = bundle.received.description
        receivedRaw = bundle.received.rawString
        paid = bundle.paid.description
        paidRaw = bundle.paid.rawString
        checkpoint = bundle.checkpoint
        invoices = try bundle.items.map {
            Item(index: $0.index, leafHash: $0.leafHash, proof: $0.proof, received: $0.received.description,
                 receivedRaw: $0.received.rawString, paid: $0.paid.description, paidRaw: $0.paid.rawString,
                 invoice: try JSONValue.parse($0.bytes))
        }
        terms = try bundle.terms.mapValues { try JSONValue.parse($0) }
    }

    enum CodingKeys: String, CodingKey {
        case account, received, paid, checkpoint, invoices, terms
        case receivedRaw = "received_raw"
        case paidRaw = "paid_raw"
    }
}

/// An answer that is a list under one key, so the answer can grow fields later.
struct ListPayload<Item: Encodable>: Encodable {
    var key: String
    var items: [Item]

    struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        try container.encode(items, forKey: Key(stringValue: key))
    }
}
