import Foundation
import ProvenanceCore

/// Reads the bodies of `POST /v1/calls` and `POST /v1/calls/batch` without `JSONDecoder`, which
/// cost about a tenth of the server's time per call under load (it builds a map of the whole
/// document, then a keyed container per object, boxing every value).
///
/// It reads only the plain shape a node sends: the documented keys, each once; strings without
/// escapes or control characters, in valid UTF-8; whole numbers without sign, fraction or
/// exponent; `null` for absent optionals. Anything else — an escape, an unknown or repeated key,
/// a wrong type, a missing field, malformed JSON — makes it answer nil, and the body goes to
/// `JSONDecoder`, whose answer (or error message) stands. So a body either decodes here to
/// exactly what `JSONDecoder` gives, or is decoded by `JSONDecoder` itself (a test holds both).
enum CallBodyParser {
    static func submitCall(_ bytes: UnsafeRawBufferPointer) -> SubmitCallRequest? {
        var reader = Reader(bytes)
        var record: CallRecordPayload?
        var signature: CallSignaturePayload?
        var deferred: Bool?
        var outputText: String?
        var seen: UInt32 = 0
        let ok = reader.object { key, reader in
            guard seen & key.bit == 0 else { return false }
            seen |= key.bit
            switch key {
            case .record: record = reader.record(); return record != nil
            case .signature: signature = reader.signature(); return signature != nil
            case .deferred: return reader.optionalBool(&deferred)
            case .outputText: return reader.optionalString(&outputText)
            default: return false
            }
        }
        guard ok, reader.atEnd, let record, let signature else { return nil }
        return SubmitCallRequest(record: record, signature: signature, deferred: deferred, outputText: outputText)
    }

    static func submitCallBatch(_ bytes: UnsafeRawBufferPointer) -> SubmitCallBatchRequest? {
        var reader = Reader(bytes)
        var calls: [SubmitCallBatchRequest.Item]?
        var deferred: Bool?
        var seen: UInt32 = 0
        let ok = reader.object { key, reader in
            guard seen & key.bit == 0 else { return false }
            seen |= key.bit
            switch key {
            case .calls:
                var items: [SubmitCallBatchRequest.Item] = []
                guard reader.array({ reader in
                    guard let item = reader.batchItem() else { return false }
                    items.append(item)
                    return true
                }) else { return false }
                calls = items
                return true
            case .deferred: return reader.optionalBool(&deferred)
            default: return false
            }
        }
        guard ok, reader.atEnd, let calls else { return nil }
        return SubmitCallBatchRequest(calls: calls, deferred: deferred)
    }

    /// The keys of the call bodies; any other key sends the body to `JSONDecoder`.
    enum Key: String, CaseIterable {
        case record, signature, deferred, calls
        case outputText = "output_text"
        case caller, model, version, node, router
        case inputTokens = "input_tokens"
        case outputTokens = "output_tokens"
        case latencyMs = "latency_ms"
        case outputSHA256 = "output_sha256"
        case idempotencyKey = "idempotency_key"
        case kind, index, size, proof
        case batchRoot = "batch_root"

        /// The key's own bit, to tell a key given twice.
        var bit: UInt32 {
            switch self {
            case .record: 1 << 0
            case .signature: 1 << 1
            case .deferred: 1 << 2
            case .calls: 1 << 3
            case .outputText: 1 << 4
            case .caller: 1 << 5
            case .model: 1 << 6
            case .version: 1 << 7
            case .node: 1 << 8
            case .router: 1 << 9
            case .inputTokens: 1 << 10
            case .outputTokens: 1 << 11
            case .latencyMs: 1 << 12
            case .outputSHA256: 1 << 13
            case .idempotencyKey: 1 << 14
            case .kind: 1 << 15
            case .index: 1 << 16
            case .size: 1 << 17
            case .proof: 1 << 18
            case .batchRoot: 1 << 19
            }
        }

        /// The keys by the length of their names, to tell one from the bytes of a member's name
        /// without making a `String` of them and matching it against every name.
        static let byLength: [[(key: Key, name: [UInt8])]] = {
            var table = [[(key: Key, name: [UInt8])]](repeating: [], count: allCases.map(\.rawValue.utf8.count).max()! + 1)
            for key in allCases { table[key.rawValue.utf8.count].append((key, Array(key.rawValue.utf8))) }
            return table
        }()

        init?(name: UnsafeRawBufferPointer) {
            guard name.count < Self.byLength.count,
                  let found = Self.byLength[name.count].first(where: { $0.name.elementsEqual(name) })
            else { return nil }
            self = found.key
        }
    }

    struct Reader {
        let bytes: UnsafeRawBufferPointer
        var position = 0

        init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

        var atEnd: Bool {
            mutating get {
                skipSpace()
                return position == bytes.count
            }
        }

        mutating func skipSpace() {
            while position < bytes.count {
                switch bytes[position] {
                case 0x20, 0x09, 0x0A, 0x0D: position += 1
                default: return
                }
            }
        }

        mutating func take(_ byte: UInt8) -> Bool {
            skipSpace()
            guard position < bytes.count, bytes[position] == byte else { return false }
            position += 1
            return true
        }

        mutating func literal(_ text: StaticString) -> Bool {
            skipSpace()
            let count = text.utf8CodeUnitCount
            guard position + count <= bytes.count else { return false }
            let start = text.utf8Start
            for offset in 0..<count where bytes[position + offset] != start[offset] { return false }
            position += count
            return true
        }

        /// `{ "key": value, … }`, calling `member` with the reader at each value.
        mutating func object(_ member: (Key, inout Reader) -> Bool) -> Bool {
            guard take(UInt8(ascii: "{")) else { return false }
            if take(UInt8(ascii: "}")) { return true }
            while true {
                guard let key = key(), take(UInt8(ascii: ":")), member(key, &self) else { return false }
                if take(UInt8(ascii: ",")) { continue }
                return take(UInt8(ascii: "}"))
            }
        }

        /// `[ value, … ]`, calling `element` with the reader at each value.
        mutating func array(_ element: (inout Reader) -> Bool) -> Bool {
            guard take(UInt8(ascii: "[")) else { return false }
            if take(UInt8(ascii: "]")) { return true }
            while true {
                guard element(&self) else { return false }
                if take(UInt8(ascii: ",")) { continue }
                return take(UInt8(ascii: "]"))
            }
        }

        /// A member's name, when it is one of the keys (a name with an escape is not).
        mutating func key() -> Key? {
            skipSpace()
            guard let (range, _) = PlainJSONString.span(bytes, at: &position) else { return nil }
            return Key(name: UnsafeRawBufferPointer(rebasing: bytes[range]))
        }

        /// A string without escapes or control characters, in valid UTF-8.
        mutating func string() -> String? {
            skipSpace()
            return PlainJSONString.read(bytes, at: &position)
        }

        /// A whole number without sign, fraction, exponent or leading zero, at most `limit`.
        mutating func unsigned(limit: UInt64 = .max) -> UInt64? {
            skipSpace()
            let start = position
            var value: UInt64 = 0
            while position < bytes.count, bytes[position] >= 0x30, bytes[position] <= 0x39 {
                let (times, overflow1) = value.multipliedReportingOverflow(by: 10)
                let (sum, overflow2) = times.addingReportingOverflow(UInt64(bytes[position] - 0x30))
                guard !overflow1, !overflow2 else { return nil }
                value = sum
                position += 1
            }
            let digits = position - start
            guard digits > 0, digits == 1 || bytes[start] != 0x30, value <= limit else { return nil }
            // A fraction or an exponent is a number JSONDecoder reads its own way.
            if position < bytes.count, [UInt8(ascii: "."), UInt8(ascii: "e"), UInt8(ascii: "E")].contains(bytes[position]) { return nil }
            return value
        }

        mutating func integer() -> Int? { unsigned(limit: UInt64(Int.max)).map { Int($0) } }

        mutating func isNull() -> Bool { literal("null") }

        mutating func optionalString(_ value: inout String?) -> Bool {
            if isNull() { return true }
            value = string()
            return value != nil
        }

        mutating func optionalBool(_ value: inout Bool?) -> Bool {
            if isNull() { return true }
            if literal("true") { value = true; return true }
            if literal("false") { value = false; return true }
            return false
        }

        mutating func optionalInteger(_ value: inout Int?) -> Bool {
            if isNull() { return true }
            value = integer()
            return value != nil
        }

        mutating func record() -> CallRecordPayload? {
            var caller, model, version, node, router, outputSHA256, idempotencyKey: String?
            var inputTokens, outputTokens, latencyMs: UInt64?
            var seen: UInt32 = 0
            let ok = object { key, reader in
                guard seen & key.bit == 0 else { return false }
                seen |= key.bit
                switch key {
                case .caller: caller = reader.string(); return caller != nil
                case .model: model = reader.string(); return model != nil
                case .version: version = reader.string(); return version != nil
                case .node: node = reader.string(); return node != nil
                case .router: return reader.optionalString(&router)
                case .inputTokens: inputTokens = reader.unsigned(); return inputTokens != nil
                case .outputTokens: outputTokens = reader.unsigned(); return outputTokens != nil
                case .latencyMs: latencyMs = reader.unsigned(); return latencyMs != nil
                case .outputSHA256: return reader.optionalString(&outputSHA256)
                case .idempotencyKey: idempotencyKey = reader.string(); return idempotencyKey != nil
                default: return false
                }
            }
            guard ok, let caller, let model, let version, let node, let inputTokens, let outputTokens, let latencyMs,
                  let idempotencyKey else { return nil }
            return CallRecordPayload(caller: caller, model: model, version: version, node: node, router: router,
                                     inputTokens: inputTokens, outputTokens: outputTokens, latencyMs: latencyMs,
                                     outputSHA256: outputSHA256, idempotencyKey: idempotencyKey)
        }

        mutating func signature() -> CallSignaturePayload? {
            var kind, signature, batchRoot: String?
            var index, size: Int?
            var proof: CallSignaturePayload.Proof?
            var seen: UInt32 = 0
            let ok = object { key, reader in
                guard seen & key.bit == 0 else { return false }
                seen |= key.bit
                switch key {
                case .kind: kind = reader.string(); return kind != nil
                case .signature: signature = reader.string(); return signature != nil
                case .batchRoot: return reader.optionalString(&batchRoot)
                case .index: return reader.optionalInteger(&index)
                case .size: return reader.optionalInteger(&size)
                case .proof:
                    if reader.isNull() { return true }
                    proof = reader.proof()
                    return proof != nil
                default: return false
                }
            }
            guard ok, let kind, let signature else { return nil }
            return CallSignaturePayload(kind: kind, signature: signature, batchRoot: batchRoot, index: index, size: size, proof: proof)
        }

        /// A proof's array: its hashes decoded in place when each is the canonical base64 of 32
        /// bytes and there are at most 64 (what `checkFields` accepts), its strings otherwise.
        mutating func proof() -> CallSignaturePayload.Proof? {
            let start = position
            var spans: [Range<Int>] = []
            let plain = array { reader in
                reader.skipSpace()
                guard let (range, _) = PlainJSONString.span(reader.bytes, at: &reader.position), range.count == 44 else { return false }
                spans.append(range)
                return true
            }
            if plain, spans.count <= 64, let hashes = CallSignaturePayload.proofHashes(count: spans.count, decode: { index, out, table in
                CallSignaturePayload.decodeHash(UnsafeRawBufferPointer(rebasing: bytes[spans[index]]), into: out, table: table)
            }) {
                return .hashes(hashes)
            }
            position = start
            var texts: [String] = []
            guard array({ reader in
                guard let text = reader.string() else { return false }
                texts.append(text)
                return true
            }) else { return nil }
            return .texts(texts)
        }

        mutating func batchItem() -> SubmitCallBatchRequest.Item? {
            var record: CallRecordPayload?
            var signature: CallSignaturePayload?
            var outputText: String?
            var seen: UInt32 = 0
            let ok = object { key, reader in
                guard seen & key.bit == 0 else { return false }
                seen |= key.bit
                switch key {
                case .record: record = reader.record(); return record != nil
                case .signature: signature = reader.signature(); return signature != nil
                case .outputText: return reader.optionalString(&outputText)
                default: return false
                }
            }
            guard ok, let record, let signature else { return nil }
            return SubmitCallBatchRequest.Item(record: record, signature: signature, outputText: outputText)
        }
    }
}
