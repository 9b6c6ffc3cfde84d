import Foundation
@testable import ProvenanceCore
import ProvenanceTestSupport
import Testing

/// A call record's bytes are written and read directly on the settlement path; they must be
/// exactly what the general `CanonicalValue` encoding writes and reads.
@Suite struct CallRecordEncodingTests {
    static func record(_ random: inout SplitMix64) -> CallRecord {
        func pick<T>(_ values: [T]) -> T { values[Int(random.next() % UInt64(values.count))] }
        let text = ["caller1", "m", "1.0+b", "gpu-1", "José 李雷", "q\"uote", "back\\slash", "new\nline", "\u{1}", "", "a/b"]
        return CallRecord(caller: pick(text), model: pick(text), version: pick(text), node: pick(text), router: pick([nil, pick(text)]),
                          inputTokens: pick([0, 7, UInt64.max, random.next()]), outputTokens: pick([0, 1000, random.next()]),
                          latencyMilliseconds: pick([0, 20, random.next()]), outputSHA256: pick([nil, String(repeating: "ab", count: 32), pick(text)]),
                          idempotencyKey: pick(text) + String(random.next() % 100))
    }

    @Test func directBytesAreTheCanonicalValuesBytes() throws {
        var random = SplitMix64(state: 11)
        for _ in 0..<3_000 {
            let record = Self.record(&random)
            let bytes = record.canonicalBytes
            #expect(bytes == record.canonical.encoded())
            #expect(try CallRecord(canonicalBytes: bytes) == record)
            #expect(try CallRecord(canonicalBytes: bytes) == CallRecord(canonical: CanonicalValue(parsing: bytes)))
        }
    }

    /// Bytes not laid out canonically — spaces, another key order, an extra key, an integer with
    /// a leading zero, another format — read as the general parser reads them, or fail as it does.
    @Test func otherBytesReadAsTheGeneralParserReadsThem() throws {
        var random = SplitMix64(state: 12)
        let record = CallRecord(caller: "c", model: "m", version: "1", node: "n", router: nil, inputTokens: 7, outputTokens: 8,
                                latencyMilliseconds: 9, outputSHA256: nil, idempotencyKey: "k")
        let text = String(decoding: record.canonicalBytes, as: UTF8.self)
        var variants = [
            text.replacingOccurrences(of: ",", with: ", "),
            text.replacingOccurrences(of: #""7""#, with: #""07""#),
            text.replacingOccurrences(of: #"{"caller":"c","#, with: #"{"extra":"x","caller":"c","#),
            text.replacingOccurrences(of: "provenance-call/1", with: "provenance-call/2"),
            text.replacingOccurrences(of: #""router":null"#, with: #""router":"r""#),
            text.replacingOccurrences(of: #""version":"1"}"#, with: #""version":"1"} "#),
            "{}", "",
        ]
        for _ in 0..<500 {
            var bytes = Array(text.utf8)
            bytes.remove(at: Int(random.next() % UInt64(bytes.count)))
            variants.append(String(decoding: bytes, as: UTF8.self))
        }
        for variant in variants {
            let data = Data(variant.utf8)
            let general = Result { try CallRecord(canonical: try CanonicalValue(parsing: data)) }
            let direct = Result { try CallRecord(canonicalBytes: data) }
            switch (general, direct) {
            case (.success(let a), .success(let b)): #expect(a == b, "\(variant)")
            case (.failure, .failure): break
            default: Issue.record("\(variant): the two readers disagree")
            }
        }
    }

    @Test func directSignatureBytesAreTheCanonicalValuesBytes() throws {
        var random = SplitMix64(state: 13)
        func bytes(_ count: Int) -> Data { Data((0..<count).map { _ in UInt8(truncatingIfNeeded: random.next()) }) }
        var signatures: [CallSignature] = [.single(signature: bytes(64))]
        for proofLength in [0, 1, 8, 20] {
            signatures.append(.batch(root: bytes(32), signature: bytes(64), index: Int(random.next() % 1000), size: 1000 + Int(random.next() % 5000),
                                     proof: (0..<proofLength).map { _ in bytes(32) }))
        }
        for signature in signatures {
            #expect(signature.canonicalBytes == signature.canonical.encoded())
            #expect(try CallSignature(canonical: CanonicalValue(parsing: signature.canonicalBytes)) == signature)
        }
    }

    /// The writer's own base64 and integers are Foundation's: every length of input up to 100
    /// bytes (each remainder modulo 3), and integers at their bounds.
    @Test func writerBase64AndIntegersAreFoundations() {
        var random = SplitMix64(state: 17)
        for length in 0...100 {
            for _ in 0..<20 {
                let data = Data((0..<length).map { _ in UInt8(truncatingIfNeeded: random.next()) })
                var out = CanonicalWriter(capacity: 0)
                out.base64(data)
                #expect(String(decoding: out.bytes, as: UTF8.self) == "\"" + data.base64EncodedString() + "\"")
                #expect(out.data == Data("\"\(data.base64EncodedString())\"".utf8))
            }
        }
        #expect(CanonicalWriter(capacity: 0).data.isEmpty)
        var integers: [Int64] = [0, 1, 9, 10, 99, 100, -1, -9, -10, Int64.max, Int64.min]
        integers += (0..<1_000).map { _ in Int64(bitPattern: random.next()) >> (random.next() % 64) }
        for value in integers {
            var out = CanonicalWriter(capacity: 0)
            out.integer(value)
            #expect(String(decoding: out.bytes, as: UTF8.self) == "\"\(value)\"")
        }
        for value in [UInt64.max, 0, 1_000_000, random.next()] {
            var out = CanonicalWriter(capacity: 0)
            out.integer(value)
            #expect(String(decoding: out.bytes, as: UTF8.self) == "\"\(value)\"")
        }
    }

    /// A transfer's hashed bytes, written directly, are the canonical object of its fields: the
    /// hash every ledger so far was chained with.
    @Test func transferBytesAreTheCanonicalObjectOfItsFields() throws {
        var random = SplitMix64(state: 5)
        func pick<T>(_ values: [T]) -> T { values[Int(random.next() % UInt64(values.count))] }
        let names = ["alice", "escrow", "stake:gpu", "José 李雷", "q\"uote", "back\\slash", "new\nline", "\u{1}", ""]
        let causes: [Transfer.Cause] = [.deposit, .withdrawal, .stake, .charge, .reserve, .release, .payout, .refund]
        for _ in 0..<2_000 {
            let transfer = Transfer(sequence: Int64(random.next() % 1_000_000), from: pick(names), to: pick(names),
                                    amount: TokenAmount(raw: Int128(random.next() % 1_000_000_000_000)), cause: pick(causes),
                                    invoice: pick([nil, 0, Int(random.next() % 100_000)]), call: pick([nil, String(repeating: "cd", count: 32), pick(names)]),
                                    batch: pick([nil, Int64(random.next() % 1000)]), createdAt: Int64(random.next() % 2_000_000_000), hash: "")
            let previous = pick([Transfer.genesisHash, String(repeating: "ef", count: 32)])
            var members: [String: CanonicalValue] = [
                "previous": .string(previous), "sequence": .integer(transfer.sequence), "from": .string(transfer.from),
                "to": .string(transfer.to), "amount": .string(transfer.amount.rawString), "cause": .string(transfer.cause.rawValue),
                "invoice": transfer.invoice.map { .integer($0) } ?? .null, "call": .optional(transfer.call),
                "created_at": .integer(transfer.createdAt),
            ]
            if let batch = transfer.batch { members["batch"] = .integer(batch) }
            let expected = CanonicalValue.object(members).encoded()
            #expect(transfer.canonicalBytes(previous: previous) == expected)
            #expect(transfer.computeHash(previous: previous) == SHA256Digest.hex(of: expected))
        }
    }

    /// Plain strings read in place: ASCII and other valid UTF-8 as they are; invalid UTF-8, an
    /// escape or a control character is left to the general parser (nil).
    @Test func plainStringsReadInPlace() {
        func read(_ bytes: [UInt8]) -> (String?, Int) {
            bytes.withUnsafeBytes { buffer in
                var position = 0
                let text = PlainJSONString.read(buffer, at: &position)
                return (text, position)
            }
        }
        let cases: [([UInt8], String?)] = [
            (Array("\"caller-1\",".utf8), "caller-1"),
            (Array("\"\"".utf8), ""),
            (Array("\"José 李雷\"".utf8), "José 李雷"),
            ([0x22, 0x61, 0xC3, 0x28, 0x22], nil),  // a lead byte without its continuation
            ([0x22, 0xFF, 0x22], nil),
            ([0x22, 0xED, 0xA0, 0x80, 0x22], nil),  // a UTF-16 surrogate, not UTF-8
            (Array("\"a\\nb\"".utf8), nil),
            ([0x22, 0x61, 0x0A, 0x22], nil),
            (Array("\"unterminated".utf8), nil),
        ]
        for (bytes, expected) in cases {
            let (text, position) = read(bytes)
            #expect(text == expected, "\(bytes)")
            if let expected { #expect(position == expected.utf8.count + 2) }
        }
    }

    /// Amounts print as they always have: as few decimals as needed, any sign and size.
    @Test func amountsPrintAsBefore() {
        func reference(_ amount: TokenAmount) -> String {
            let magnitude = amount.raw.magnitude
            let unit = UInt128(TokenAmount.unit)
            var fraction = String(magnitude % unit)
            fraction = String(repeating: "0", count: TokenAmount.decimals - fraction.count) + fraction
            while fraction.hasSuffix("0") { fraction.removeLast() }
            return (amount.raw < 0 ? "-" : "") + String(magnitude / unit) + (fraction.isEmpty ? "" : "." + fraction)
        }
        var random = SplitMix64(state: 14)
        var amounts: [Int128] = [0, 1, -1, 10, 1_000_000_000_000_000_000, -1_000_000_000_000_000_000, 1_500_000_000_000_000_000,
                                 Int128(UInt64.max), Int128(UInt64.max) + 1, Int128.max, Int128.min + 1, 100_000]
        for _ in 0..<5_000 {
            let high = Int128(Int64(bitPattern: random.next())) << 64
            amounts.append(random.next() % 3 == 0 ? high | Int128(random.next()) : Int128(random.next() >> (random.next() % 64)))
        }
        for raw in amounts { #expect(TokenAmount(raw: raw).description == reference(TokenAmount(raw: raw)), "\(raw)") }
    }
}
