public import Foundation

/// One model version of a call's lineage, as the invoice records it: enough to recompute the
/// split exactly and to find every git object it rests on.
public struct InvoiceLevel: Sendable, Equatable {
    public struct DatasetRef: Sendable, Equatable {
        public var dataset: String
        public var commit: String
        public var manifestSHA256: String
    }

    public struct Weight: Sendable, Equatable {
        public var contributor: String
        public var ppb: UInt64
    }

    /// Normalised shares as an invoice records weights: the non-zero ones, by contributor id.
    static func weights(_ shares: [PartsPerBillion.Share]) -> [Weight] {
        shares.filter { $0.ppb > 0 }.sorted { $0.contributor < $1.contributor }.map { Weight(contributor: $0.contributor, ppb: $0.ppb) }
    }

    public var model: String
    public var version: String
    /// `MODEL@VERSION`, as payouts name their level.
    public var reference: String { model + "@" + version }
    public var modelCommit: String
    /// The developer's account (their id).
    public var developer: String
    public var plugin: String
    public var pluginVersion: String
    /// Parts per billion of the developer and data pools passed on to the next level.
    public var baseSharePPB: UInt64
    public var datasets: [DatasetRef]
    public var trainingLogSHA256: [String]
    /// The version's own weights, sorted by contributor id, summing to 10^9 (empty without datasets).
    public var weights: [Weight]

    var canonical: CanonicalValue {
        .object([
            "model": .string(model), "version": .string(version), "model_commit": .string(modelCommit),
            "developer": .string(developer), "plugin": .string(plugin), "plugin_version": .string(pluginVersion),
            "base_share_ppb": .integer(baseSharePPB),
            "datasets": .array(datasets.map { .object(["dataset": .string($0.dataset), "commit": .string($0.commit),
                                                       "manifest_sha256": .string($0.manifestSHA256)]) }),
            "training_log_sha256": .array(trainingLogSHA256.map(CanonicalValue.string)),
            "weights": .array(weights.map { .object(["contributor": .string($0.contributor), "ppb": .integer($0.ppb)]) }),
        ])
    }

    init(canonical value: CanonicalValue) throws {
        func string(_ v: CanonicalValue?, _ key: String) throws -> String {
            guard let text = v?[key]?.stringValue else { throw ProvenanceError.invalid("invoice lineage entry has no \(key)") }
            return text
        }
        model = try string(value, "model")
        version = try string(value, "version")
        modelCommit = try string(value, "model_commit")
        developer = try string(value, "developer")
        plugin = try string(value, "plugin")
        pluginVersion = try string(value, "plugin_version")
        guard let share = UInt64(try string(value, "base_share_ppb")) else { throw ProvenanceError.invalid("base_share_ppb is not a number") }
        baseSharePPB = share
        datasets = try (value["datasets"]?.arrayValue ?? []).map {
            DatasetRef(dataset: try string($0, "dataset"), commit: try string($0, "commit"), manifestSHA256: try string($0, "manifest_sha256"))
        }
        trainingLogSHA256 = (value["training_log_sha256"]?.arrayValue ?? []).compactMap(\.stringValue)
        weights = try (value["weights"]?.arrayValue ?? []).map {
            guard let ppb = UInt64(try string($0, "ppb")) else { throw ProvenanceError.invalid("weight ppb is not a number") }
            return Weight(contributor: try string($0, "contributor"), ppb: ppb)
        }
    }

    public init(model: String, version: String, modelCommit: String, developer: String, plugin: String, pluginVersion: String,
                baseSharePPB: UInt64, datasets: [DatasetRef], trainingLogSHA256: [String], weights: [Weight]) {
        self.model = model
        self.version = version
        self.modelCommit = modelCommit
        self.developer = developer
        self.plugin = plugin
        self.pluginVersion = pluginVersion
        self.baseSharePPB = baseSharePPB
        self.datasets = datasets
        self.trainingLogSHA256 = trainingLogSHA256
        self.weights = weights
    }
}

/// One amount paid to one account for one role.
public struct Payout: Sendable, Equatable {
    public var account: String
    public var role: Role
    public var amount: TokenAmount
    /// The model version whose pool paid it (`MODEL@VERSION`), for developer and data payouts.
    public var level: String?
}

/// The split of one call's fee: pure arithmetic on the recorded inputs, so `verify` can redo it.
public struct SettlementComputation: Sendable, Equatable {
    public var fee: TokenAmount
    public var sloMet: Bool
    public var penalty: TokenAmount
    public var payouts: [Payout]

    /// Splits the fee: roles by basis points (largest remainder, ties in role order), the router
    /// share to the platform when there is no router, the SLO penalty out of the node's pool
    /// back to the caller, then the developer and data pools down the lineage — at each level
    /// `base_share_ppb` of both pools (floored) passes to the next level, the developer gets the
    /// rest of the developer pool and the data pool is split over the level's weights (largest
    /// remainder, ties by account id).
    public static func compute(record: CallRecord, price: Price, levels: [InvoiceLevel]) throws -> SettlementComputation {
        guard !levels.isEmpty else { throw ProvenanceError.invalid("a call needs a model version to pay") }
        let fee = try price.fee(inputTokens: record.inputTokens, outputTokens: record.outputTokens)
        // The pools in the order of Role.allCases: developer, data, node, platform, router.
        let split = price.split
        var pools = ExactSplit.split(fee.raw, weights: [UInt64(split[.developer]), UInt64(split[.data]), UInt64(split[.node]),
                                                        UInt64(split[.platform]), UInt64(split[.router])],
                                     scale: UInt64(RoleSplit.basisPoints))
        let (developerSlot, dataSlot, nodeSlot, platformSlot, routerSlot) = (0, 1, 2, 3, 4)
        if record.router == nil {
            pools[platformSlot] += pools[routerSlot]
            pools[routerSlot] = 0
        }
        let sloMet = price.sloMilliseconds.map { record.latencyMilliseconds <= $0 } ?? true
        var penalty: Int128 = 0
        if !sloMet {
            penalty = pools[nodeSlot] * Int128(price.sloPenaltyBps) / Int128(RoleSplit.basisPoints)
            pools[nodeSlot] -= penalty
        }
        var payouts: [Payout] = []
        payouts.reserveCapacity(levels.reduce(3) { $0 + $1.weights.count + 1 })
        var developerPool = pools[developerSlot]
        var dataPool = pools[dataSlot]
        for (depth, level) in levels.enumerated() {
            let name = level.reference
            let isLast = depth == levels.count - 1
            // The developer pool passes base_share_ppb on; the data pool too, or all of it when
            // the level has no datasets of its own (as attribution does).
            let developerShare = isLast ? 0 : level.baseSharePPB
            let dataShare = isLast ? 0 : (level.weights.isEmpty ? PartsPerBillion.whole : level.baseSharePPB)
            let developerOnward = developerPool * Int128(developerShare) / Int128(PartsPerBillion.whole)
            let dataOnward = dataPool * Int128(dataShare) / Int128(PartsPerBillion.whole)
            let developerHere = developerPool - developerOnward
            let dataHere = dataPool - dataOnward
            if developerHere > 0 {
                payouts.append(Payout(account: level.developer, role: .developer, amount: TokenAmount(raw: developerHere), level: name))
            }
            if dataHere > 0 {
                if level.weights.isEmpty {
                    // Nobody below to pay (a last level without datasets): the developer keeps it.
                    payouts.append(Payout(account: level.developer, role: .data, amount: TokenAmount(raw: dataHere), level: name))
                } else {
                    let parts = ExactSplit.split(dataHere, weights: level.weights.map(\.ppb), scale: PartsPerBillion.whole)
                    for (index, weight) in level.weights.enumerated() where parts[index] > 0 {
                        payouts.append(Payout(account: weight.contributor, role: .data, amount: TokenAmount(raw: parts[index]), level: name))
                    }
                }
            }
            developerPool = developerOnward
            dataPool = dataOnward
        }
        if pools[nodeSlot] > 0 { payouts.append(Payout(account: "node:\(record.node)", role: .node, amount: TokenAmount(raw: pools[nodeSlot]), level: nil)) }
        if pools[platformSlot] > 0 { payouts.append(Payout(account: Accounts.platform, role: .platform, amount: TokenAmount(raw: pools[platformSlot]), level: nil)) }
        if let router = record.router, pools[routerSlot] > 0 {
            payouts.append(Payout(account: router, role: .router, amount: TokenAmount(raw: pools[routerSlot]), level: nil))
        }
        let paid = payouts.reduce(Int128(0)) { $0 + $1.amount.raw } + penalty
        guard paid == fee.raw else {
            throw ProvenanceError(.storage, "split of \(fee.raw) accounted for \(paid) base units")
        }
        return SettlementComputation(fee: fee, sloMet: sloMet, penalty: TokenAmount(raw: penalty), payouts: payouts)
    }
}

/// Well-known accounts.
public enum Accounts {
    /// Money enters by deposit from here and leaves by withdrawal to here; its balance is minus
    /// everything held inside.
    public static let external = "external"
    public static let platform = "platform"
    /// Fees pass through here within one settlement; its balance is zero between settlements.
    public static let clearing = "clearing"
    /// Funds reserved by deferred calls until they are settled.
    public static let escrow = "escrow"

    public static func node(_ name: String) -> String { "node:\(name)" }
    public static func stake(_ name: String) -> String { "stake:\(name)" }

    /// Account ids: a contributor or developer id (an email), `node:NAME`, `platform`, … 1-128
    /// characters of a-z 0-9 and `@ . _ + : -`, lowercase.
    public static func validate(_ id: String) throws {
        let ok = (1...128).contains(id.utf8.count) && id.utf8.allSatisfy {
            ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || [UInt8(ascii: "@"), UInt8(ascii: "."), UInt8(ascii: "_"),
                                                                   UInt8(ascii: "+"), UInt8(ascii: ":"), UInt8(ascii: "-")].contains($0)
        }
        guard ok else {
            throw ProvenanceError.invalid("invalid account '\(id)': use 1-128 characters a-z 0-9 @ . _ + : - (lowercase)")
        }
    }
}

/// What every call of one model version shares while its plugins and price stay the same: the
/// lineage with its integer weights, and the price. An invoice of format 2 refers to this
/// block by the SHA-256 of its canonical bytes instead of repeating it; the ledger stores each
/// block once (`invoice_terms`), the registry serves it, and bundles carry it, so anyone can
/// expand an invoice and check that the block hashes to what the invoice's leaf commits to.
public struct SettlementTerms: Sendable, Equatable {
    public static let format = "provenance-terms/1"

    public let levels: [InvoiceLevel]
    public let price: Price
    /// The canonical bytes, and their SHA-256 in lowercase hex.
    public let bytes: Data
    public let sha256: String

    public init(levels: [InvoiceLevel], price: Price) {
        self.levels = levels
        self.price = price
        bytes = CanonicalValue.object([
            "format": .string(Self.format),
            "lineage": .array(levels.map(\.canonical)),
            "pricing": .object(Self.priceMembers(price)),
        ]).encoded()
        sha256 = SHA256Digest.hex(of: bytes)
    }

    /// Reads a block back, checking that it is canonical.
    public init(canonicalBytes data: Data) throws {
        let value = try CanonicalValue(parsing: data)
        guard value["format"]?.stringValue == Self.format else { throw ProvenanceError.invalid("not a \(Self.format) document") }
        let levels = try (value["lineage"]?.arrayValue ?? []).map(InvoiceLevel.init(canonical:))
        guard !levels.isEmpty else { throw ProvenanceError.invalid("settlement terms name no model version") }
        self.init(levels: levels, price: try Self.parsePrice(value["pricing"], slo: value["pricing"]?["slo_ms"]))
        guard bytes == data else { throw ProvenanceError.invalid("settlement terms are not in canonical form") }
    }

    /// The rate, split and SLO members of an invoice's pricing group.
    static func priceMembers(_ price: Price) -> [String: CanonicalValue] {
        var split: [String: CanonicalValue] = [:]
        for role in Role.allCases where price.split.bps[role] != nil { split[role.rawValue] = .integer(price.split[role]) }
        return [
            "input_per_1k": .string(price.inputPer1k.rawString), "output_per_1k": .string(price.outputPer1k.rawString),
            "min_fee": .string(price.minFee.rawString), "split_bps": .object(split), "slo_penalty_bps": .integer(price.sloPenaltyBps),
            "slo_ms": price.sloMilliseconds.map { .integer($0) } ?? .null,
        ]
    }

    static func parsePrice(_ pricing: CanonicalValue?, slo: CanonicalValue?) throws -> Price {
        func amount(_ key: String) throws -> TokenAmount {
            guard let amount = pricing?[key]?.stringValue.flatMap(TokenAmount.init(rawString:)) else {
                throw ProvenanceError.invalid("pricing.\(key) is not an amount")
            }
            return amount
        }
        var bps: [Role: UInt32] = [:]
        if case .object(let members)? = pricing?["split_bps"] {
            for (key, entry) in members {
                guard let role = Role(rawValue: key), let number = entry.stringValue.flatMap({ UInt32($0) }) else {
                    throw ProvenanceError.invalid("split_bps holds '\(key)'")
                }
                bps[role] = number
            }
        }
        guard let penaltyBps = pricing?["slo_penalty_bps"]?.stringValue.flatMap({ UInt32($0) }) else {
            throw ProvenanceError.invalid("pricing.slo_penalty_bps is not a number")
        }
        return Price(inputPer1k: try amount("input_per_1k"), outputPer1k: try amount("output_per_1k"), minFee: try amount("min_fee"),
                     split: RoleSplit(bps: bps), sloMilliseconds: slo?.stringValue.flatMap { UInt64($0) }, sloPenaltyBps: penaltyBps)
    }
}

/// The AI invoice: one settled call, as canonical JSON.
///
/// Format 2 (written since net settlement) keeps what differs per call — parties, metering,
/// fee, payouts, the signed record — and refers to the version's lineage and price by the
/// SHA-256 of their `SettlementTerms` block; format 1 (older ledgers) repeats them in every
/// invoice. Both are read and verified.
public struct Invoice: Sendable, Equatable {
    public static let format = "provenance-invoice/2"
    public static let legacyFormat = "provenance-invoice/1"
    public enum Mode: String, Sendable { case realtime = "real-time", batch }

    /// 2, or 1 for an invoice written before terms were stored apart.
    public var formatVersion: Int
    public var ledgerIndex: Int
    public var record: CallRecord
    public var signature: CallSignature
    /// The node's public key (base64) the signature verifies with.
    public var nodeKey: String
    public var levels: [InvoiceLevel]
    public var price: Price
    /// The SHA-256 of the terms block (format 2).
    public var termsSHA256: String?
    public var nodeStake: TokenAmount
    public var mode: Mode
    public var batch: String?
    public var computation: SettlementComputation
    /// For a call attributed per call (span-match): each such level's spans and weights, which
    /// replace the terms' weights of that level in `computation`.
    public var callAttribution: [LevelCallAttribution] = []

    /// The lineage the fee was split over: the terms' levels with this call's weights applied.
    public var effectiveLevels: [InvoiceLevel] { LevelCallAttribution.apply(callAttribution, to: levels) }

    /// The bytes the ledger stores and hashes: for format 2, with the terms by reference.
    public var canonical: CanonicalValue { document(expanded: formatVersion == 1) }

    public var canonicalBytes: Data {
        // Format 2 is written key by key (InvoiceWriter, held equal to `canonical` by a test).
        guard formatVersion >= 2, let termsSHA256 else { return canonical.encoded() }
        return InvoiceWriter.canonicalBytes(ledgerIndex: ledgerIndex, record: record, recordBytes: record.canonicalBytes,
                                            signatureBytes: signature.canonical.encoded(), nodeKey: nodeKey, top: levels[0],
                                            slo: price.sloMilliseconds, termsSHA256: termsSHA256, nodeStake: nodeStake, mode: mode,
                                            batch: batch, computation: computation, callAttribution: callAttribution)
    }

    /// The whole invoice with the terms written out, as `invoice show` prints it.
    public var expanded: CanonicalValue { document(expanded: true) }

    private func document(expanded: Bool) -> CanonicalValue {
        let top = levels[0]
        var traceability: [String: CanonicalValue] = ["plugin": .string(top.plugin), "plugin_version": .string(top.pluginVersion)]
        var pricing: [String: CanonicalValue] = [
            "fee": .string(computation.fee.rawString), "penalty": .string(computation.penalty.rawString),
            "node_stake": .string(nodeStake.rawString),
        ]
        if let termsSHA256, formatVersion >= 2 { traceability["terms_sha256"] = .string(termsSHA256) }
        if !callAttribution.isEmpty { traceability["call_attribution"] = .array(callAttribution.map(\.canonical)) }
        if expanded {
            traceability["lineage"] = .array(levels.map(\.canonical))
            pricing.merge(SettlementTerms.priceMembers(price)) { current, _ in current }
            pricing["slo_ms"] = nil  // the metering group carries it
        }
        return .object([
            "format": .string(formatVersion == 1 ? Self.legacyFormat : Self.format),
            "parties": .object([
                "caller": .string(record.caller), "model": .string(record.model), "version": .string(record.version),
                "model_commit": .string(top.modelCommit), "node": .string(record.node), "router": .optional(record.router),
            ]),
            "metering": .object([
                "input_tokens": .integer(record.inputTokens), "output_tokens": .integer(record.outputTokens),
                "latency_ms": .integer(record.latencyMilliseconds),
                "slo_ms": price.sloMilliseconds.map { .integer($0) } ?? .null, "slo_met": .bool(computation.sloMet),
                "output_sha256": .optional(record.outputSHA256),
            ]),
            "traceability": .object(traceability),
            "pricing": .object(pricing),
            "settlement": .object([
                "mode": .string(mode.rawValue), "batch": .optional(batch), "ledger_index": .integer(ledgerIndex),
                "payouts": .array(computation.payouts.map {
                    .object(["account": .string($0.account), "role": .string($0.role.rawValue), "amount": .string($0.amount.rawString),
                             "level": .optional($0.level)])
                }),
                "refund": .string(computation.penalty.rawString),
            ]),
            "call": .object([
                "record": record.canonical, "signature": signature.canonical, "node_key": .string(nodeKey),
            ]),
        ])
    }

    /// Reads an invoice back from its stored bytes; `terms` finds a format-2 invoice's terms
    /// block by its SHA-256 (nil when unknown).
    public init(canonicalBytes data: Data, terms: (String) throws -> SettlementTerms?) throws {
        let value = try CanonicalValue(parsing: data)
        switch value["format"]?.stringValue {
        case Self.format: formatVersion = 2
        case Self.legacyFormat: formatVersion = 1
        default: throw ProvenanceError.invalid("not a \(Self.format) document")
        }
        func string(_ group: String, _ key: String) throws -> String {
            guard let text = value[group]?[key]?.stringValue else { throw ProvenanceError.invalid("invoice has no \(group).\(key)") }
            return text
        }
        func amount(_ group: String, _ key: String) throws -> TokenAmount {
            guard let amount = TokenAmount(rawString: try string(group, key)) else { throw ProvenanceError.invalid("invoice \(group).\(key) is not an amount") }
            return amount
        }
        guard let call = value["call"], let recordValue = call["record"], let signatureValue = call["signature"],
              let nodeKey = call["node_key"]?.stringValue
        else { throw ProvenanceError.invalid("invoice has no call") }
        record = try CallRecord(canonical: recordValue)
        signature = try CallSignature(canonical: signatureValue)
        self.nodeKey = nodeKey
        if formatVersion == 1 {
            termsSHA256 = nil
            levels = try (value["traceability"]?["lineage"]?.arrayValue ?? []).map(InvoiceLevel.init(canonical:))
            price = try SettlementTerms.parsePrice(value["pricing"], slo: value["metering"]?["slo_ms"])
        } else {
            let sha = try string("traceability", "terms_sha256")
            guard let block = try terms(sha) else {
                throw ProvenanceError.notFound("invoice refers to settlement terms \(sha.prefix(12))… that the ledger does not hold")
            }
            termsSHA256 = sha
            levels = block.levels
            price = block.price
        }
        guard !levels.isEmpty else { throw ProvenanceError.invalid("invoice names no model version") }
        nodeStake = try amount("pricing", "node_stake")
        guard let mode = Mode(rawValue: try string("settlement", "mode")) else { throw ProvenanceError.invalid("invoice mode is unknown") }
        self.mode = mode
        batch = value["settlement"]?["batch"]?.stringValue
        guard let index = Int(try string("settlement", "ledger_index")) else { throw ProvenanceError.invalid("invoice ledger_index is not a number") }
        ledgerIndex = index
        let payouts = try (value["settlement"]?["payouts"]?.arrayValue ?? []).map { entry -> Payout in
            guard let account = entry["account"]?.stringValue, let role = entry["role"]?.stringValue.flatMap(Role.init(rawValue:)),
                  let amount = entry["amount"]?.stringValue.flatMap(TokenAmount.init(rawString:))
            else { throw ProvenanceError.invalid("invoice holds a malformed payout") }
            return Payout(account: account, role: role, amount: amount, level: entry["level"]?.stringValue)
        }
        computation = SettlementComputation(fee: try amount("pricing", "fee"), sloMet: value["metering"]?["slo_met"]?.boolValue ?? false,
                                            penalty: try amount("pricing", "penalty"), payouts: payouts)
        callAttribution = try (value["traceability"]?["call_attribution"]?.arrayValue ?? []).map(LevelCallAttribution.init(canonical:))
    }

    /// A format-2 invoice under `terms`.
    public init(ledgerIndex: Int, record: CallRecord, signature: CallSignature, nodeKey: String, terms: SettlementTerms,
                nodeStake: TokenAmount, mode: Mode, batch: String?, computation: SettlementComputation,
                callAttribution: [LevelCallAttribution] = []) {
        self.callAttribution = callAttribution
        formatVersion = 2
        self.ledgerIndex = ledgerIndex
        self.record = record
        self.signature = signature
        self.nodeKey = nodeKey
        levels = terms.levels
        price = terms.price
        termsSHA256 = terms.sha256
        self.nodeStake = nodeStake
        self.mode = mode
        self.batch = batch
        self.computation = computation
    }
}
