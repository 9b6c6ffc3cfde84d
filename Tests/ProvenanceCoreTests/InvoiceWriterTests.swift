import Foundation
@testable import ProvenanceCore
import Testing

/// The settlement path writes invoices with `InvoiceWriter`; `verify` re-encodes them through
/// `CanonicalValue`. The two must agree byte for byte on every shape an invoice takes.
@Suite struct InvoiceWriterTests {
    static func level(_ model: String, weights: [(String, UInt64)], share: UInt64) -> InvoiceLevel {
        InvoiceLevel(model: model, version: "1.0", modelCommit: String(repeating: "ab", count: 20), developer: "dev@example.org",
                     plugin: "equal-share", pluginVersion: "1", baseSharePPB: share,
                     datasets: [.init(dataset: "text", commit: String(repeating: "cd", count: 20), manifestSHA256: String(repeating: "ef", count: 32))],
                     trainingLogSHA256: [String(repeating: "01", count: 32)],
                     weights: weights.map { InvoiceLevel.Weight(contributor: $0.0, ppb: $0.1) })
    }

    @Test(arguments: [false, true])
    func writerAndCanonicalValueAgree(batchSigned: Bool) throws {
        let key = Curve25519Key()
        let levels = [Self.level("chat", weights: [("ann@example.org", 600_000_000), ("bo@example.org", 400_000_000)], share: 250_000_000),
                      Self.level("base", weights: [("cy@example.org", 1_000_000_000)], share: 0)]
        for (index, (router, output, slo)) in [(nil, nil, nil), ("router1", String(repeating: "9", count: 64), UInt64(100)),
                                                ("r\"q\\\u{1}", nil, UInt64(1))].enumerated() {
            let price = Price(inputPer1k: try TokenAmount(parsing: "0.004"), outputPer1k: try TokenAmount(parsing: "0.012"),
                              minFee: try TokenAmount(parsing: "0.0001"),
                              split: try RoleSplit(parsing: "developer=2500,data=4000,node=2000,platform=500,router=1000"),
                              sloMilliseconds: slo, sloPenaltyBps: slo == nil ? 0 : 5000)
            let terms = SettlementTerms(levels: levels, price: price)
            let records = (0..<3).map { n in
                CallRecord(caller: "alice\(n)", model: "chat", version: "1.0", node: "gpu-1", router: router, inputTokens: UInt64(1200 + n),
                           outputTokens: 400, latencyMilliseconds: 350, outputSHA256: output, idempotencyKey: "k\(index)-\(n) é")
            }
            let signatures = batchSigned ? try CallSignature.signBatch(records, with: key.key) : try records.map { try CallSignature.sign($0, with: key.key) }
            // With and without a per-call attribution (span-match) that replaces the top level's weights.
            let span = AttributedSpan(dataset: "text", commit: String(repeating: "cd", count: 20), path: "a/\"quoted\".txt", lineStart: 3, lineEnd: 4,
                                      fileOffset: 17, outputOffset: 5, length: 13, contributor: "bo@example.org", text: "line é\nnext\u{1}")
            let attributions: [[LevelCallAttribution]] = [
                [],
                [LevelCallAttribution(level: "chat@1.0", basis: .spans, spans: [span], weights: [.init(contributor: "bo@example.org", ppb: 1_000_000_000)])],
                [LevelCallAttribution(level: "chat@1.0", basis: .fallback, spans: [], weights: levels[0].weights)],
                [LevelCallAttribution(level: "chat@1.0", basis: .plugin, spans: [],
                                      weights: [.init(contributor: "ann@example.org", ppb: 1), .init(contributor: "cy@example.org", ppb: 999_999_999)])],
            ]
            for (record, signature) in zip(records, signatures) {
                for attribution in attributions {
                    let computation = try SettlementComputation.compute(record: record, price: price,
                                                                        levels: LevelCallAttribution.apply(attribution, to: levels))
                    for mode in [Invoice.Mode.realtime, .batch] {
                        let invoice = Invoice(ledgerIndex: 12_345, record: record, signature: signature, nodeKey: key.publicKey, terms: terms,
                                              nodeStake: try TokenAmount(parsing: "5"), mode: mode, batch: "batch-7", computation: computation,
                                              callAttribution: attribution)
                        let written = InvoiceWriter.canonicalBytes(ledgerIndex: 12_345, record: record, recordBytes: record.canonicalBytes,
                                                                   signatureBytes: signature.canonical.encoded(), nodeKey: key.publicKey, terms: terms,
                                                                   nodeStake: try TokenAmount(parsing: "5"), mode: mode, batch: "batch-7",
                                                                   computation: computation, callAttribution: attribution)
                        #expect(written == invoice.canonical.encoded())
                        #expect(invoice.canonicalBytes == invoice.canonical.encoded())
                        let read = try Invoice(canonicalBytes: written) { $0 == terms.sha256 ? terms : nil }
                        #expect(read == invoice)
                        #expect(Store.checkCallAttribution(read) == nil)
                    }
                }
            }
        }
    }
}

import Crypto

struct Curve25519Key {
    let key = Curve25519.Signing.PrivateKey()
    var publicKey: String { key.publicKey.rawRepresentation.base64EncodedString() }
}
