import Foundation
import HTTPTypes
import Hummingbird
import ProvenanceCore
import ProvenanceTestSupport
@testable import RegistryService
import Testing

/// The registry's hand-written readers and writers of the call routes give exactly what the
/// general ones give: `CallBodyParser` what `JSONDecoder` decodes (or nothing, leaving the body
/// to it), the direct `CallOutcome` answer what `JSONEncoder` writes, and the byte-by-byte
/// pattern checks what the regular expressions say.
@Suite struct CallBodyParserTests {
    static func decode<T: Decodable>(_ type: T.Type, _ text: String) -> T? {
        try? JSONDecoder().decode(T.self, from: Data(text.utf8))
    }

    static func fast(_ text: String) -> SubmitCallRequest? {
        Array(text.utf8).withUnsafeBytes { CallBodyParser.submitCall($0) }
    }

    static func fastBatch(_ text: String) -> SubmitCallBatchRequest? {
        Array(text.utf8).withUnsafeBytes { CallBodyParser.submitCallBatch($0) }
    }

    /// A random body of the documented shape: fields in any order, optional fields present,
    /// null or absent, any whitespace, non-ASCII strings, numbers up to the type's limit.
    static func body(_ random: inout SplitMix64, batchItem: Bool = false) -> String {
        func space() -> String { ["", " ", "\n  ", "\t", "\r\n"][Int(random.next() % 5)] }
        func pick<T>(_ values: [T]) -> T { values[Int(random.next() % UInt64(values.count))] }
        func object(_ members: [(String, String)?]) -> String {
            var present = members.compactMap { $0 }
            present.shuffle(using: &random)
            return "{" + space() + present.map { "\"\($0.0)\"" + space() + ":" + space() + $0.1 }.joined(separator: space() + "," + space()) + space() + "}"
        }
        func string() -> String { "\"" + pick(["caller7", "m", "1.0+build", "gpu-1", "José", "李雷", "k-\(random.next() % 1000)", "a b/c"]) + "\"" }
        func number() -> String { pick(["0", "7", "1000", "18446744073709551615", String(random.next())]) }
        func optional(_ value: String) -> String? { pick([value, "null", nil]) }
        let record = object([("caller", string()), ("model", string()), ("version", string()), ("node", string()),
                             optional(string()).map { ("router", $0) }, ("input_tokens", number()), ("output_tokens", number()),
                             ("latency_ms", number()), optional(string()).map { ("output_sha256", $0) }, ("idempotency_key", string())])
        // A proof of hashes in canonical base64 (decoded in place), of other strings, or of both.
        func hash() -> String {
            "\"" + Data((0..<32).map { _ in UInt8(truncatingIfNeeded: random.next()) }).base64EncodedString() + "\""
        }
        let proofKind = random.next() % 3
        let proof = "[" + (0..<Int(random.next() % 4)).map { _ in
            proofKind == 0 ? string() : proofKind == 1 ? hash() : pick([string(), hash()])
        }.joined(separator: "," + space()) + space() + "]"
        let signature = object([("kind", pick(["\"single\"", "\"batch\""])), ("signature", string()),
                                optional(string()).map { ("batch_root", $0) }, optional(pick(["0", "3", "9223372036854775807"])).map { ("index", $0) },
                                optional("5").map { ("size", $0) }, optional(proof).map { ("proof", $0) }])
        var members: [(String, String)?] = [("record", record), ("signature", signature),
                                            optional(string()).map { ("output_text", $0) }]
        if !batchItem { members.append(optional(pick(["true", "false"])).map { ("deferred", $0) }) }
        return object(members)
    }

    @Test func documentedBodiesDecodeAsJSONDecoderDecodesThem() throws {
        var random = SplitMix64(state: 42)
        for _ in 0..<2_000 {
            let text = Self.body(&random)
            let fast = try #require(Self.fast(text), "\(text)")
            #expect(fast == Self.decode(SubmitCallRequest.self, text), "\(text)")
        }
        for _ in 0..<200 {
            let items = (0..<Int(random.next() % 4) + 1).map { _ in Self.body(&random, batchItem: true) }
            let text = "{\"calls\": [" + items.joined(separator: ", ") + "], \"deferred\": true}"
            let fast = try #require(Self.fastBatch(text), "\(text)")
            #expect(fast == Self.decode(SubmitCallBatchRequest.self, text), "\(text)")
        }
    }

    /// A body changed at random — a byte dropped or added, a key repeated or unknown, an escape,
    /// a fraction — is either read exactly as JSONDecoder reads it or left to JSONDecoder.
    @Test func anyOtherBodyIsLeftToJSONDecoder() {
        var random = SplitMix64(state: 7)
        let inserts = ["{", "}", "[", "]", ",", ":", "\"", "\\", "\\n", "\\u00e9", "0", "-", ".5", "e3", " ", "null", "true",
                       "\"extra\": 1,", "\"caller\": \"x\",", "\u{0}", "\u{1f}"].map { Array($0.utf8) }
        var leftToDecoder = 0
        for round in 0..<3_000 {
            var bytes = Array(Self.body(&random).utf8)
            for _ in 0...(round % 3) {
                let at = Int(random.next() % UInt64(bytes.count))
                if random.next() % 2 == 0 { bytes.remove(at: at) } else { bytes.insert(contentsOf: inserts[Int(random.next() % UInt64(inserts.count))], at: at) }
            }
            let fast = bytes.withUnsafeBytes { CallBodyParser.submitCall($0) }
            let slow = try? JSONDecoder().decode(SubmitCallRequest.self, from: Data(bytes))
            if let fast { #expect(fast == slow, "\(String(decoding: bytes, as: UTF8.self))") } else { leftToDecoder += 1 }
        }
        #expect(leftToDecoder > 1_000)
        // Invalid UTF-8 inside a string, and a number past UInt64, are JSONDecoder's to refuse.
        var invalid = Array(#"{"record":{"caller":"#.utf8)
        invalid += [0x22, 0xC3, 0x28, 0x22]
        #expect(invalid.withUnsafeBytes { CallBodyParser.submitCall($0) } == nil)
        let largest = #"{"record":{"caller":"c","model":"m","version":"1","node":"n","input_tokens":18446744073709551615,"output_tokens":0,"latency_ms":0,"idempotency_key":"k"},"signature":{"kind":"single","signature":"s"}}"#
        #expect(Self.fast(largest)?.record.inputTokens == UInt64.max)
        let tooBig = largest.replacingOccurrences(of: "18446744073709551615", with: "18446744073709551616")
        #expect(Self.fast(tooBig) == nil)
        #expect(Self.decode(SubmitCallRequest.self, tooBig) == nil)
    }

    @Test func outcomeAnswersAreTheEncodersBytes() throws {
        let outcomes = [
            CallOutcome(status: .settled, replayed: false, idempotencyKey: "k-1", record: String(repeating: "ab", count: 32), invoice: 12, fee: "0.001"),
            CallOutcome(status: .pending, replayed: true, idempotencyKey: "key/with/slashes", record: "00", invoice: nil, fee: "5"),
            CallOutcome(status: .settled, replayed: false, idempotencyKey: #"quote"and\backslash"#, record: "ff", invoice: 0, fee: "1"),
            CallOutcome(status: .settled, replayed: false, idempotencyKey: "tab\there", record: "ff", invoice: 3, fee: "1"),
        ]
        for outcome in outcomes.prefix(2) {
            #expect(JSONResponse.json(outcome) == (try JSONResponse.encoder.encode(outcome)))
        }
        #expect(JSONResponse.json(outcomes: Array(outcomes.prefix(2))) == (try JSONResponse.encoder.encode(ListPayload(key: "outcomes", items: Array(outcomes.prefix(2))))))
        #expect(JSONResponse.json(outcomes: []) == (try JSONResponse.encoder.encode(ListPayload(key: "outcomes", items: [CallOutcome]()))))
        // A key that needs an escape is the encoder's to write.
        for outcome in outcomes.suffix(2) { #expect(JSONResponse.json(outcome) == nil) }
        // Written after what a buffer holds, the answer appends exactly its bytes; refused, nothing.
        for outcome in outcomes {
            var buffer = ByteBuffer(string: "before")
            let written = JSONResponse.write(outcome, into: &buffer)
            let expected = JSONResponse.json(outcome).map { Data("before".utf8) + $0 } ?? Data("before".utf8)
            #expect(written == (JSONResponse.json(outcome) != nil))
            #expect(Data(buffer.readableBytesView) == expected)
        }
    }

    /// A batch signature's proof, decoded into one buffer (from the texts `JSONDecoder` gives, or
    /// in place by the body reader), is what Foundation decodes hash by hash; anything but the
    /// canonical base64 of 32 bytes is refused, or left as text by the reader.
    @Test func proofHashesDecodeAsFoundationDecodesThem() throws {
        var random = SplitMix64(state: 23)
        for count in [0, 1, 8, 64, 65] {
            let hashes = (0..<count).map { _ in Data((0..<32).map { _ in UInt8(truncatingIfNeeded: random.next()) }) }
            let texts = hashes.map { $0.base64EncodedString() }
            let decoded = try CallSignaturePayload.Proof.texts(texts).hashes()
            #expect(decoded == hashes)
            #expect(decoded.allSatisfy { $0.count == 32 })
            let body = #"{"record":{"caller":"c","model":"m","version":"1","node":"n","input_tokens":1,"output_tokens":2,"latency_ms":3,"idempotency_key":"k"},"signature":{"kind":"batch","signature":"s","proof":["#
                + texts.map { "\"\($0)\"" }.joined(separator: ", ") + "]}}"
            let fast = try #require(Self.fast(body)?.signature.proof)
            // More than 64 is for `checkFields` to refuse, with its message: the reader leaves them as text.
            switch fast {
            case .hashes(let read): #expect(count <= 64 && read == hashes)
            case .texts(let read): #expect(count > 64 && read == texts)
            }
            #expect(fast == Self.decode(SubmitCallRequest.self, body)?.signature.proof)
        }
        let good = Data(repeating: 0xab, count: 32).base64EncodedString()
        let bad = [
            String(good.dropLast()),                                   // 43 characters
            good + "A",                                                // 45
            String(good.dropLast()) + "A",                             // no padding
            "!" + good.dropFirst(),                                     // outside the alphabet
            "-" + good.dropFirst(),                                     // base64url, not base64
            String(good.dropLast(2)) + "t=",                           // the two dropped bits not zero
            Data(repeating: 1, count: 31).base64EncodedString(),       // 31 bytes
            Data(repeating: 1, count: 33).base64EncodedString(),       // 33 bytes
        ]
        for text in bad {
            #expect(Data(base64Encoded: text).map { $0.count == 32 && $0.base64EncodedString() == text } != true, "\(text)")
            #expect(throws: RegistryError.self, "\(text)") { try CallSignaturePayload.Proof.texts([good, text]).hashes() }
            let body = #"{"record":{"caller":"c","model":"m","version":"1","node":"n","input_tokens":1,"output_tokens":2,"latency_ms":3,"idempotency_key":"k"},"signature":{"kind":"batch","signature":"s","proof":[""#
                + good + #"",""# + text + #""]}}"#
            #expect(Self.fast(body)?.signature.proof == .texts([good, text]), "\(text)")
            if case .hashes = Self.fast(body)?.signature.proof { Issue.record("\(text) was decoded") }
        }
    }

    @Test func bearerTokensReadTheSameEitherWay() throws {
        for header in ["Bearer prov_abc", "bearer prov_abc", "BEARER   prov_abc", "Bearer prov_abc  ", "Bearer \tprov_abc"] {
            #expect(try AuthenticationMiddleware.secret(header) == "prov_abc", "\(header)")
        }
        for header in ["Basic prov_abc", "Bearer", "Bearer ", "prov_abc"] {
            #expect(throws: RegistryError.self, "\(header)") { try AuthenticationMiddleware.secret(header) }
        }
    }

    /// A header read without joining gives what the subscript gives: one value as it is, several
    /// joined, none nil.
    @Test func headerValuesReadAsTheSubscriptReadsThem() {
        let name = HTTPField.Name("Idempotency-Key")!
        let cases: [HTTPFields] = [
            [:],
            [name: "k1"],
            HTTPFields([HTTPField(name: name, value: "k1"), HTTPField(name: .contentType, value: "application/json"),
                        HTTPField(name: name, value: "k2")]),
        ]
        for fields in cases { #expect(fields.value(name) == fields[name]) }
        #expect(cases[2].value(name) == "k1, k2")
    }

    /// Every pattern read byte by byte agrees with its regular expression wherever it answers.
    @Test func fastPatternChecksAgreeWithTheRegularExpressions() {
        var random = SplitMix64(state: 99)
        let alphabet = Array("abcxyzAZ09._+-:@/=\n lockAQgw".utf8) + [0xC3, 0xA9]
        let patterns = [Pattern.account, Pattern.idempotencyKey, Pattern.sha256Hex, Pattern.version, Pattern.name,
                        Pattern.base64Bytes32, Pattern.base64Bytes64]
        var matched = 0
        for pattern in patterns {
            var samples = ["1", "1.0", "v1.lock", "1..2", "a.", "x", String(repeating: "a", count: 64), String(repeating: "a", count: 65),
                           Data(repeating: 9, count: 32).base64EncodedString(), Data(repeating: 9, count: 64).base64EncodedString(),
                           String(repeating: "0f", count: 32)]
            for _ in 0..<3_000 {
                let length = Int(random.next() % 90)
                samples.append(String(decoding: (0..<length).map { _ in alphabet[Int(random.next() % UInt64(alphabet.count))] }, as: UTF8.self))
            }
            for text in samples {
                let regex = Pattern.regexVerdict(pattern, text)
                if Pattern.fastMatch(pattern, text) {
                    matched += 1
                    #expect(regex == .matches, "\(pattern) \(text)")
                } else if pattern != Pattern.name || !text.isEmpty {
                    // Where the fast check has an answer, a regular expression match is one it gives too.
                    #expect(regex != .matches || ![Pattern.version, Pattern.account, Pattern.sha256Hex].contains(pattern), "\(pattern) \(text)")
                }
            }
        }
        #expect(matched > 100)
    }
}
