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
        var out = CanonicalWriter(capacity: 256)
        out.raw(#"{"caller":"#)
        out.string(caller)
        out.raw(#","format":"#)
        out.string(Self.format)
        out.raw(#","idempotency_key":"#)
        out.string(idempotencyKey)
        out.raw(#","input_tokens":"#)
        out.integer(inputTokens)
        out.raw(#","latency_ms":"#)
        out.integer(latencyMilliseconds)
        out.raw(#","model":"#)
        out.string(model)
        out.raw(#","node":"#)
        out.string(node)
        out.raw(#","output_sha256":"#)
        out.optional(outputSHA256)
        out.raw(#","output_tokens":"#)
        out.integer(outputTokens)
        out.raw(#","router":"#)
        out.optional(router)
        out.raw(#","version":"#)
        out.string(version)
        out.raw("}")
        return out.data
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
        var out = CanonicalWriter(capacity: 384)
        switch self {
        case .single(let signature):
            out.raw(#"{"kind":"single","signature":"#)
            out.base64(signature)
        case .batch(let root, let signature, let index, let size, let proof):
            out.raw(#"{"batch_root":"#)
            out.base64(root)
            out.raw(#","index":"#)
            out.integer(index)
            out.raw(#","kind":"batch","proof":["#)
            for (position, hash) in proof.enumerated() {
                if position > 0 { out.byte(UInt8(ascii: ",")) }
                out.base64(hash)
            }
            out.raw(#"],"signature":"#)
            out.base64(signature)
            out.raw(#","size":"#)
            out.integer(size)
        }
        out.byte(UInt8(ascii: "}"))
        return out.data
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

    /// Checks the signature against the node's public key: a single signature over the record,
    /// or the record's inclusion proof against the batch root and the node's signature of that
    /// root. A server checking many records of one batch uses `VerifiedBatchSignatures`, which
    /// checks each batch's signature once.
    public func verify(record: CallRecord, publicKey: Curve25519.Signing.PublicKey) -> Bool {
        verify(recordBytes: record.canonicalBytes, publicKey: publicKey)
    }

    /// The same, over a record's canonical bytes.
    public func verify(recordBytes: Data, publicKey: Curve25519.Signing.PublicKey) -> Bool {
        switch self {
        case .single(let signature):
            return publicKey.isValidSignature(signature, for: recordBytes)
        case .batch(let root, let signature, let index, let size, let proof):
            return MerkleTree.verifyInclusion(leafHash: MerkleTree.inlineLeafHash(recordBytes), index: index, size: size, proof: proof,
                                              root: root, sharing: nil) != nil
                && publicKey.isValidSignature(signature, for: Self.batchMessage(root: root, size: size))
        }
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
