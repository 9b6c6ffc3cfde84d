import Foundation

/// Writes a format-2 invoice's canonical bytes directly, keys already in sorted order, without
/// building a `CanonicalValue` tree of dictionaries: settlement writes tens of thousands of
/// invoices a second, and sorting and hashing every object's keys was most of its time. The
/// result is byte for byte what `Invoice.canonicalBytes` gives (a test holds the two equal), and
/// `verify` re-encodes every stored invoice the general way.
enum InvoiceWriter {
    static func canonicalBytes(ledgerIndex: Int, record: CallRecord, recordBytes: Data, signatureBytes: Data, nodeKey: String,
                               terms: SettlementTerms, nodeStake: TokenAmount, mode: Invoice.Mode, batch: String?,
                               computation: SettlementComputation, callAttribution: [LevelCallAttribution]) -> Data {
        canonicalBytes(ledgerIndex: ledgerIndex, record: record, recordBytes: recordBytes, signatureBytes: signatureBytes, nodeKey: nodeKey,
                       top: terms.levels[0], slo: terms.price.sloMilliseconds, termsSHA256: terms.sha256, nodeStake: nodeStake, mode: mode,
                       batch: batch, computation: computation, callAttribution: callAttribution)
    }

    static func canonicalBytes(ledgerIndex: Int, record: CallRecord, recordBytes: Data, signatureBytes: Data, nodeKey: String,
                               top: InvoiceLevel, slo: UInt64?, termsSHA256: String, nodeStake: TokenAmount, mode: Invoice.Mode,
                               batch: String?, computation: SettlementComputation, callAttribution: [LevelCallAttribution]) -> Data {
        var out: [UInt8] = []
        out.reserveCapacity(1024 + recordBytes.count + computation.payouts.count * 128)
        func raw(_ text: StaticString) { text.withUTF8Buffer { out.append(contentsOf: $0) } }
        func string(_ text: String) { CanonicalValue.writeString(text, into: &out) }
        func optional(_ text: String?) { if let text { string(text) } else { raw("null") } }
        func integer<I: BinaryInteger>(_ value: I) {
            out.append(UInt8(ascii: "\""))
            out.append(contentsOf: String(value).utf8)
            out.append(UInt8(ascii: "\""))
        }
        // Keys of every object in UTF-8 byte order.
        raw(#"{"call":{"node_key":"#)
        string(nodeKey)
        raw(#","record":"#)
        out.append(contentsOf: recordBytes)
        raw(#","signature":"#)
        out.append(contentsOf: signatureBytes)
        raw(#"},"format":"#)
        string(Invoice.format)
        raw(#","metering":{"input_tokens":"#)
        integer(record.inputTokens)
        raw(#","latency_ms":"#)
        integer(record.latencyMilliseconds)
        raw(#","output_sha256":"#)
        optional(record.outputSHA256)
        raw(#","output_tokens":"#)
        integer(record.outputTokens)
        raw(#","slo_met":"#)
        if computation.sloMet { raw("true") } else { raw("false") }
        raw(#","slo_ms":"#)
        if let slo { integer(slo) } else { raw("null") }
        raw(#"},"parties":{"caller":"#)
        string(record.caller)
        raw(#","model":"#)
        string(record.model)
        raw(#","model_commit":"#)
        string(top.modelCommit)
        raw(#","node":"#)
        string(record.node)
        raw(#","router":"#)
        optional(record.router)
        raw(#","version":"#)
        string(record.version)
        raw(#"},"pricing":{"fee":"#)
        string(computation.fee.rawString)
        raw(#","node_stake":"#)
        string(nodeStake.rawString)
        raw(#","penalty":"#)
        string(computation.penalty.rawString)
        raw(#"},"settlement":{"batch":"#)
        optional(batch)
        raw(#","ledger_index":"#)
        integer(ledgerIndex)
        raw(#","mode":"#)
        string(mode.rawValue)
        raw(#","payouts":["#)
        for (index, payout) in computation.payouts.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            raw(#"{"account":"#)
            string(payout.account)
            raw(#","amount":"#)
            string(payout.amount.rawString)
            raw(#","level":"#)
            optional(payout.level)
            raw(#","role":"#)
            string(payout.role.rawValue)
            out.append(UInt8(ascii: "}"))
        }
        raw(#"],"refund":"#)
        string(computation.penalty.rawString)
        raw(#"},"traceability":{"#)
        if !callAttribution.isEmpty {
            raw(#""call_attribution":"#)
            out.append(contentsOf: CanonicalValue.array(callAttribution.map(\.canonical)).encoded())
            out.append(UInt8(ascii: ","))
        }
        raw(#""plugin":"#)
        string(top.plugin)
        raw(#","plugin_version":"#)
        string(top.pluginVersion)
        raw(#","terms_sha256":"#)
        string(termsSHA256)
        raw("}}")
        return Data(out)
    }
}
