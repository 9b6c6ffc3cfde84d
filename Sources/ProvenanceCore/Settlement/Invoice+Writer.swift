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
        var out = CanonicalWriter(capacity: 1024 + recordBytes.count + computation.payouts.count * 128)
        // Keys of every object in UTF-8 byte order.
        out.raw(#"{"call":{"node_key":"#)
        out.string(nodeKey)
        out.raw(#","record":"#)
        out.raw(recordBytes)
        out.raw(#","signature":"#)
        out.raw(signatureBytes)
        out.raw(#"},"format":"#)
        out.string(Invoice.format)
        out.raw(#","metering":{"input_tokens":"#)
        out.integer(record.inputTokens)
        out.raw(#","latency_ms":"#)
        out.integer(record.latencyMilliseconds)
        out.raw(#","output_sha256":"#)
        out.optional(record.outputSHA256)
        out.raw(#","output_tokens":"#)
        out.integer(record.outputTokens)
        out.raw(#","slo_met":"#)
        if computation.sloMet { out.raw("true") } else { out.raw("false") }
        out.raw(#","slo_ms":"#)
        if let slo { out.integer(slo) } else { out.raw("null") }
        out.raw(#"},"parties":{"caller":"#)
        out.string(record.caller)
        out.raw(#","model":"#)
        out.string(record.model)
        out.raw(#","model_commit":"#)
        out.string(top.modelCommit)
        out.raw(#","node":"#)
        out.string(record.node)
        out.raw(#","router":"#)
        out.optional(record.router)
        out.raw(#","version":"#)
        out.string(record.version)
        out.raw(#"},"pricing":{"fee":"#)
        out.string(computation.fee.rawString)
        out.raw(#","node_stake":"#)
        out.string(nodeStake.rawString)
        out.raw(#","penalty":"#)
        out.string(computation.penalty.rawString)
        out.raw(#"},"settlement":{"batch":"#)
        out.optional(batch)
        out.raw(#","ledger_index":"#)
        out.integer(ledgerIndex)
        out.raw(#","mode":"#)
        out.string(mode.rawValue)
        out.raw(#","payouts":["#)
        for (index, payout) in computation.payouts.enumerated() {
            if index > 0 { out.byte(UInt8(ascii: ",")) }
            out.raw(#"{"account":"#)
            out.string(payout.account)
            out.raw(#","amount":"#)
            out.string(payout.amount.rawString)
            out.raw(#","level":"#)
            out.optional(payout.level)
            out.raw(#","role":"#)
            out.string(payout.role.rawValue)
            out.byte(UInt8(ascii: "}"))
        }
        out.raw(#"],"refund":"#)
        out.string(computation.penalty.rawString)
        out.raw(#"},"traceability":{"#)
        if !callAttribution.isEmpty {
            out.raw(#""call_attribution":"#)
            out.raw(CanonicalValue.array(callAttribution.map(\.canonical)).encoded())
            out.byte(UInt8(ascii: ","))
        }
        out.raw(#""plugin":"#)
        out.string(top.plugin)
        out.raw(#","plugin_version":"#)
        out.string(top.pluginVersion)
        out.raw(#","terms_sha256":"#)
        out.string(termsSHA256)
        out.raw("}}")
        return out.data
    }
}
