public import Foundation
public import Crypto

/// What an inference node reports about one call, signed with the node's Ed25519 key.
public struct CallRecord: Sendable, Equatable {
    public static let format = "provenance-call/1"

    public var caller: String
    public var model: String
    public var version: String
    public var node: String
    public var router: String?
    public var inputTokens: UInt64
    public var outputTokens: UInt64
    public var latencyMilliseconds: UInt64
    /// SHA-256 of the output text, when the node reports it.
    public var outputSHA256: String?
    /// Replaying a key with the same record returns the same invoice; with another, it is refused.
    public var idempotencyKey: String

    public init(caller: String, model: String, version: String, node: String, router: String?, inputTokens: UInt64,
                outputTokens: UInt64, latencyMilliseconds: UInt64, outputSHA256: String?, idempotencyKey: String) {
        self.caller = caller
        self.model = model
        self.version = version
        self.node = node
        self.router = router
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
        self.latencyMilliseconds = latencyMilliseconds
        self.outputSHA256 = outputSHA256
        self.idempotencyKey = idempotencyKey
    }

    public var canonical: CanonicalValue {
        .object([
            "format": .string(Self.format), "caller": .string(caller), "model": .string(model), "version": .string(version),
            "node": .string(node), "router": .optional(router), "input_tokens": .integer(inputTokens),
            "output_tokens": .integer(outputTokens), "latency_ms": .integer(latencyMilliseconds),
            "output_sha256": .optional(outputSHA256), "idempotency_key": .string(idempotencyKey),
        ])
    }

    /// The bytes the node signs: `canonical.encoded()`, written directly with the keys in their
    /// sorted order (a test holds the two equal); every call is encoded at least once.
    public var canonicalBytes: Data {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        func raw(_ text: StaticString) { text.withUTF8Buffer { out.append(contentsOf: $0) } }
        func string(_ text: String) { CanonicalValue.writeString(text, into: &out) }
        func optional(_ text: String?) { if let text { string(text) } else { raw("null") } }
        func integer(_ value: UInt64) {
            out.append(UInt8(ascii: "\""))
            out.append(contentsOf: String(value).utf8)
            out.append(UInt8(ascii: "\""))
        }
        raw(#"{"caller":"#)
        string(caller)
        raw(#","format":"#)
        string(Self.format)
        raw(#","idempotency_key":"#)
        string(idempotencyKey)
        raw(#","input_tokens":"#)
        integer(inputTokens)
        raw(#","latency_ms":"#)
        integer(latencyMilliseconds)
        raw(#","model":"#)
        string(model)
        raw(#","node":"#)
        string(node)
        raw(#","output_sha256":"#)
        optional(outputSHA256)
        raw(#","output_tokens":"#)
        integer(outputTokens)
        raw(#","router":"#)
        optional(router)
        raw(#","version":"#)
        string(version)
        raw("}")
        return Data(out)
    }

    /// Reads canonical record bytes. Bytes laid out exactly as `canonicalBytes` writes them,
    /// with no escape in any string, are read directly; anything else is parsed the general way
    /// (`init(canonical:)`), which gives the same record for the former (a test holds both).
    public init(canonicalBytes bytes: Data) throws {
        if let record = bytes.withUnsafeBytes({ Self.readDirectly($0) }) {
            self = record
        } else {
            try self.init(canonical: try CanonicalValue(parsing: bytes))
        }
    }

    private static func readDirectly(_ bytes: UnsafeRawBufferPointer) -> CallRecord? {
        var position = 0
        func expect(_ text: StaticString) -> Bool {
            let count = text.utf8CodeUnitCount
            guard position + count <= bytes.count, memcmp(bytes.baseAddress! + position, text.utf8Start, count) == 0 else { return false }
            position += count
            return true
        }
        func string() -> String? { PlainJSONString.read(bytes, at: &position) }
        func optional() -> String?? {
            if expect("null") { return .some(nil) }
            return string().map { .some($0) }
        }
        func integer() -> UInt64? {
            // A decimal string as String(value) writes it: no sign, no leading zero.
            guard let text = string(), let value = UInt64(text), String(value) == text else { return nil }
            return value
        }
        guard bytes.count > 0, expect(#"{"caller":"#), let caller = string(),
              expect(#","format":"#), string() == format,
              expect(#","idempotency_key":"#), let idempotencyKey = string(),
              expect(#","input_tokens":"#), let inputTokens = integer(),
              expect(#","latency_ms":"#), let latency = integer(),
              expect(#","model":"#), let model = string(),
              expect(#","node":"#), let node = string(),
              expect(#","output_sha256":"#), let outputSHA256 = optional(),
              expect(#","output_tokens":"#), let outputTokens = integer(),
              expect(#","router":"#), let router = optional(),
              expect(#","version":"#), let version = string(),
              expect("}"), position == bytes.count
        else { return nil }
        return CallRecord(caller: caller, model: model, version: version, node: node, router: router, inputTokens: inputTokens,
                          outputTokens: outputTokens, latencyMilliseconds: latency, outputSHA256: outputSHA256, idempotencyKey: idempotencyKey)
    }

    /// SHA-256 of the canonical bytes, hex: how a record is compared and referred to.
    public var digest: String { SHA256Digest.hex(of: canonicalBytes) }

    public init(canonical value: CanonicalValue) throws {
        func string(_ key: String) throws -> String {
            guard let text = value[key]?.stringValue else { throw ProvenanceError.invalid("call record has no \(key)") }
            return text
        }
        func integer(_ key: String) throws -> UInt64 {
            guard let number = UInt64(try string(key)) else { throw ProvenanceError.invalid("call record's \(key) is not a whole number") }
            return number
        }
        guard try string("format") == Self.format else { throw ProvenanceError.invalid("call record format is not \(Self.format)") }
        self.init(caller: try string("caller"), model: try string("model"), version: try string("version"), node: try string("node"),
                  router: value["router"]?.stringValue, inputTokens: try integer("input_tokens"),
                  outputTokens: try integer("output_tokens"), latencyMilliseconds: try integer("latency_ms"),
                  outputSHA256: value["output_sha256"]?.stringValue, idempotencyKey: try string("idempotency_key"))
    }
}

/// How a node vouched for a call: its signature over the record, or over the RFC 9162 root of
/// a batch of records, with this record's inclusion proof in that batch.
public enum CallSignature: Sendable, Equatable {
    case single(signature: Data)
    case batch(root: Data, signature: Data, index: Int, size: Int, proof: [Data])

    /// `canonical.encoded()`, written directly with the keys in their sorted order (a test holds
    /// the two equal): every call's signature is encoded into its invoice.
    public var canonicalBytes: Data {
        var out: [UInt8] = []
        func raw(_ text: StaticString) { text.withUTF8Buffer { out.append(contentsOf: $0) } }
        func base64(_ data: Data) {
            out.append(UInt8(ascii: "\""))
            out.append(contentsOf: data.base64EncodedString().utf8)
            out.append(UInt8(ascii: "\""))
        }
        func integer(_ value: Int) {
            out.append(UInt8(ascii: "\""))
            out.append(contentsOf: String(value).utf8)
            out.append(UInt8(ascii: "\""))
        }
        switch self {
        case .single(let signature):
            out.reserveCapacity(128)
            raw(#"{"kind":"single","signature":"#)
            base64(signature)
        case .batch(let root, let signature, let index, let size, let proof):
            out.reserveCapacity(256 + 48 * proof.count)
            raw(#"{"batch_root":"#)
            base64(root)
            raw(#","index":"#)
            integer(index)
            raw(#","kind":"batch","proof":["#)
            for (position, hash) in proof.enumerated() {
                if position > 0 { out.append(UInt8(ascii: ",")) }
                base64(hash)
            }
            raw(#"],"signature":"#)
            base64(signature)
            raw(#","size":"#)
            integer(size)
        }
        out.append(UInt8(ascii: "}"))
        return Data(out)
    }

    public var canonical: CanonicalValue {
        switch self {
        case .single(let signature):
            return .object(["kind": .string("single"), "signature": .string(signature.base64EncodedString())])
        case .batch(let root, let signature, let index, let size, let proof):
            return .object([
                "kind": .string("batch"), "batch_root": .string(root.base64EncodedString()),
                "signature": .string(signature.base64EncodedString()), "index": .integer(index), "size": .integer(size),
                "proof": .array(proof.map { .string($0.base64EncodedString()) }),
            ])
        }
    }

    public init(canonical value: CanonicalValue) throws {
        func data(_ key: String) throws -> Data {
            guard let text = value[key]?.stringValue, let data = Data(base64Encoded: text) else {
                throw ProvenanceError.invalid("call signature has no valid \(key)")
            }
            return data
        }
        switch value["kind"]?.stringValue {
        case "single": self = .single(signature: try data("signature"))
        case "batch":
            guard let index = value["index"]?.stringValue.flatMap({ Int($0) }), let size = value["size"]?.stringValue.flatMap({ Int($0) }),
                  let proof = value["proof"]?.arrayValue
            else { throw ProvenanceError.invalid("batch call signature is incomplete") }
            self = .batch(root: try data("batch_root"), signature: try data("signature"), index: index, size: size,
                          proof: try proof.map {
                              guard let text = $0.stringValue, let data = Data(base64Encoded: text) else {
                                  throw ProvenanceError.invalid("batch proof holds a malformed hash")
                              }
                              return data
                          })
        default: throw ProvenanceError.invalid("call signature has an unknown kind")
        }
    }

    /// Checks the signature against the node's public key. `verifiedBatches` remembers batch
    /// signatures already checked, so a batch costs one Ed25519 verification, not one per record.
    public func verify(record: CallRecord, publicKey: Curve25519.Signing.PublicKey, verifiedBatches: inout Set<Data>) -> Bool {
        verify(recordBytes: record.canonicalBytes, publicKey: publicKey, verifiedBatches: &verifiedBatches)
    }

    /// Checks the signature over a record's canonical bytes. A batch signature already in
    /// `verifiedBatches` (by `batchMemo`) is not checked again; one that holds is added.
    public func verify(recordBytes: Data, publicKey: Curve25519.Signing.PublicKey, verifiedBatches: inout Set<Data>) -> Bool {
        switch self {
        case .single(let signature):
            return publicKey.isValidSignature(signature, for: recordBytes)
        case .batch(let root, let signature, let index, let size, let proof):
            let memo = Self.batchMemo(root: root, signature: signature, size: size, publicKey: publicKey)
            if !verifiedBatches.contains(memo) {
                guard publicKey.isValidSignature(signature, for: Self.batchMessage(root: root, size: size)) else { return false }
                verifiedBatches.insert(memo)
            }
            return MerkleTree.verifyInclusion(leafHash: MerkleTree.leafHash(recordBytes), index: index, size: size,
                                              proof: proof, root: root)
        }
    }

    /// What identifies a checked batch signature: its root, size, signature and key (the
    /// signed message is a function of the root and size).
    public static func batchMemo(root: Data, signature: Data, size: Int, publicKey: Curve25519.Signing.PublicKey) -> Data {
        var memo = Data(capacity: root.count + signature.count + 40)
        memo.append(root)
        memo.append(signature)
        withUnsafeBytes(of: UInt64(size).littleEndian) { memo.append(contentsOf: $0) }
        memo.append(publicKey.rawRepresentation)
        return memo
    }

    public func verify(record: CallRecord, publicKey: Curve25519.Signing.PublicKey) -> Bool {
        var once = Set<Data>()
        return verify(record: record, publicKey: publicKey, verifiedBatches: &once)
    }

    /// What a node signs for a batch: a domain-separated statement of the batch's size and root.
    public static func batchMessage(root: Data, size: Int) -> Data {
        Data("provenance-call-batch/1\n\(size)\n\(root.base64EncodedString())\n".utf8)
    }

    /// Signs one record.
    public static func sign(_ record: CallRecord, with key: Curve25519.Signing.PrivateKey) throws -> CallSignature {
        .single(signature: try key.signature(for: record.canonicalBytes))
    }

    /// Signs a batch of records with one signature; returns each record's signature.
    public static func signBatch(_ records: [CallRecord], with key: Curve25519.Signing.PrivateKey) throws -> [CallSignature] {
        let leaves = records.map { MerkleTree.leafHash($0.canonicalBytes) }
        let (root, proofs) = MerkleTree.allInclusionProofs(leafHashes: leaves)
        let signature = try key.signature(for: batchMessage(root: root, size: leaves.count))
        return leaves.indices.map { index in
            .batch(root: root, signature: signature, index: index, size: leaves.count, proof: proofs[index])
        }
    }
}
