// span-match against naive baselines on one generated corpus (Benchmarks/span-match.sh builds
// the store): index size per text byte, span search for 2,000-byte outputs with the index
// warm, and settlement of calls with 2 KB outputs, each next to its baseline.
import AttributionPlugins
import Foundation
import ProvenanceCore
import SpanMatch
#if canImport(Glibc)
import Glibc
#endif

let arguments = CommandLine.arguments
guard arguments.count == 3 else {
    FileHandle.standardError.write(Data("usage: span-benchmark STORE MODEL@VERSION\n".utf8))
    exit(2)
}
let environment = ProcessInfo.processInfo.environment
let outputsMeasured = Int(environment["OUTPUTS"] ?? "") ?? 40
let settleCalls = Int(environment["SETTLE_CALLS"] ?? "") ?? 2_000

func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
func median(_ values: [Double]) -> Double { let sorted = values.sorted(); return sorted[sorted.count / 2] }

let store = try Store.open(at: URL(fileURLWithPath: arguments[1]))
let reference = try Names.parseModelVersion(arguments[2])
let input = try store.attributionInput(for: reference)
let opened = now()
let index = try SpanMatch.index(for: input)
print(String(format: "index: %d text files, %.1f MB of text, %.1f MB on disk: %.2f bytes per text byte (opened in %.1f ms)",
             index.fileCount, Double(index.textBytes) / 1e6, Double(index.diskBytes) / 1e6,
             Double(index.diskBytes) / Double(index.textBytes), (now() - opened) * 1000))

// Outputs of 2,000 bytes: a third quoting the corpus in pieces of 100-400 bytes, the rest new words.
struct Generator: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
func makeOutput(_ random: inout Generator) -> Data {
    var output = Data()
    while output.count < 2_000 {
        if Int.random(in: 0..<3, using: &random) == 0 {
            let length = Int.random(in: 100...400, using: &random)
            let position = Int.random(in: 0..<(index.corpusBytes - length), using: &random)
            var piece = index.text(at: position, length: length)
            piece.removeAll { $0 == 0 }
            output.append(piece)
        } else {
            for _ in 0..<Int.random(in: 5...30, using: &random) {
                let letters = (0..<Int.random(in: 2...9, using: &random)).map { _ in UInt8.random(in: 97...122, using: &random) }
                output.append(contentsOf: letters + [32])
            }
        }
    }
    var text = String(decoding: output.prefix(2_000), as: UTF8.self)
    while text.utf8.count > 2_000 { text.removeLast() }
    return Data(text.utf8)
}
var random = Generator(state: 42)
var outputs: [Data] = []
for _ in 0..<outputsMeasured { outputs.append(makeOutput(&random)) }

// Span search, warm: every output once, then timed five times each.
for output in outputs { _ = index.attribute(output: output, minimumBytes: SpanMatch.defaultMinimumBytes) }
var times: [Double] = []
var spansFound = 0
for _ in 0..<5 {
    for output in outputs {
        let start = now()
        let result = index.attribute(output: output, minimumBytes: SpanMatch.defaultMinimumBytes)
        times.append(now() - start)
        spansFound += result.spans.count
    }
}
print(String(format: "span search, 2,000-byte output, index warm: median %.3f ms, p99 %.3f ms (%d outputs x 5; %.1f earning spans per output)",
             median(times) * 1000, times.sorted()[times.count * 99 / 100] * 1000, outputs.count, Double(spansFound) / Double(times.count)))

// Naive baseline: the longest match at an output position by scanning the corpus with memmem,
// growing the pattern while it is found. Timed on 8 positions of one output, scaled to 2,000.
let corpus = index.text(at: 0, length: index.corpusBytes)
func naiveFind(_ haystack: UnsafeRawBufferPointer, _ needle: UnsafeRawBufferPointer) -> Bool {
    guard needle.count > 0, haystack.count >= needle.count else { return needle.count == 0 }
    let first = Int32(needle[0])
    var at = haystack.baseAddress!
    let last = haystack.baseAddress! + (haystack.count - needle.count)
    while at <= last, let hit = memchr(at, first, last - at + 1) {
        if memcmp(hit, needle.baseAddress!, needle.count) == 0 { return true }
        at = UnsafeRawPointer(hit) + 1
    }
    return false
}
func naiveLongest(_ output: Data, from start: Int) -> Int {
    var length = 0
    corpus.withUnsafeBytes { haystack in
        output.withUnsafeBytes { needle in
            while start + length < needle.count,
                  naiveFind(haystack, UnsafeRawBufferPointer(rebasing: needle[start..<(start + length + 1)])) {
                length += 1
            }
        }
    }
    return length
}
let naiveStart = now()
let positions = 8
for position in 0..<positions { _ = naiveLongest(outputs[0], from: position * 250) }
let naivePerPosition = (now() - naiveStart) / Double(positions)
print(String(format: "naive scan (memchr+memcmp over the corpus per position and length): %.1f ms per position, so %.1f s for a 2,000-byte output: %.0fx the index",
             naivePerPosition * 1000, naivePerPosition * 2000, naivePerPosition * 2000 / median(times)))

// Settlement of calls with 2 KB outputs: span-match (each call searched) against the same calls
// under the version's cached weights (no output given), in groups of 100.
let resolver = PluginRegistry()
try store.setPrice(Price(inputPer1k: try TokenAmount(parsing: "0.001"), outputPer1k: try TokenAmount(parsing: "0.002"),
                         minFee: .zero, split: .standard, sloMilliseconds: nil, sloPenaltyBps: 0), model: reference.model)
_ = try store.deposit(try TokenAmount(parsing: "1000000000"), to: "bench-caller")
let node = "bench-\(UInt32.random(in: 0...UInt32.max))"
_ = try store.addNode(node, stake: .zero)
@MainActor func settle(_ count: Int, withOutputs: Bool, tag: String) async throws -> Double {
    let nodeKey = try store.keyStore.nodeKey(node)
    var calls: [(CallRecord, CallSignature)] = []
    var texts: [String?] = []
    for number in 0..<count {
        let text = String(decoding: outputs[number % outputs.count], as: UTF8.self)
        let record = CallRecord(caller: "bench-caller", model: reference.model, version: reference.version, node: node, router: nil,
                                inputTokens: 500, outputTokens: 500, latencyMilliseconds: 100,
                                outputSHA256: SHA256Digest.hex(of: Data(text.utf8)), idempotencyKey: "\(tag)-\(number)")
        calls.append((record, try CallSignature.sign(record, with: nodeKey)))
        texts.append(withOutputs ? text : nil)
    }
    let start = now()
    for first in stride(from: 0, to: count, by: 100) {
        let end = min(count, first + 100)
        _ = try await store.submit(Array(calls[first..<end]), outputs: Array(texts[first..<end]), deferred: false, resolver: resolver)
    }
    return Double(count) / (now() - start)
}
let tag = UUID().uuidString.prefix(8)
_ = try await settle(100, withOutputs: true, tag: "warm-\(tag)")
let perCall = try await settle(settleCalls, withOutputs: true, tag: "span-\(tag)")
let cached = try await settle(settleCalls, withOutputs: false, tag: "plain-\(tag)")
print(String(format: "settlement, 2 KB outputs, groups of 100: span-match %.0f calls/s; same calls under the version's cached weights %.0f calls/s (ratio %.2f)",
             perCall, cached, perCall / cached))
