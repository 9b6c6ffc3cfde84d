import Foundation

/// The roles a fee is split between.
public enum Role: String, Sendable, CaseIterable, Codable, Comparable {
    case developer, data, node, platform, router

    public static func < (lhs: Role, rhs: Role) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }
}

/// A split of every fee over the roles, in basis points summing to 10,000.
public struct RoleSplit: Sendable, Hashable, Codable {
    public var bps: [Role: UInt32]

    public static let basisPoints: UInt32 = 10_000
    /// Used when `model price` is given no `--split`.
    public static let standard = RoleSplit(bps: [.developer: 2_000, .data: 5_000, .node: 2_000, .platform: 1_000])

    public init(bps: [Role: UInt32]) { self.bps = bps }

    /// Parses `developer=BPS,data=BPS,node=BPS,platform=BPS[,router=BPS]`; the sum must be 10,000.
    public init(parsing text: String) throws {
        var bps: [Role: UInt32] = [:]
        for pair in text.split(separator: ",") {
            let kv = pair.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard kv.count == 2, let role = Role(rawValue: kv[0]) else {
                throw ProvenanceError.invalid("malformed split '\(pair)': write developer=BPS,data=BPS,node=BPS,platform=BPS[,router=BPS]")
            }
            guard let value = UInt32(kv[1]) else {
                throw ProvenanceError.invalid("split for \(role.rawValue) '\(kv[1])' is not a whole number of basis points")
            }
            guard bps[role] == nil else { throw ProvenanceError.invalid("split names \(role.rawValue) twice") }
            bps[role] = value
        }
        for role in [Role.developer, .data, .node, .platform] where bps[role] == nil {
            throw ProvenanceError.invalid("split '\(text)' has no \(role.rawValue)= part; developer, data, node and platform are required")
        }
        let total = bps.values.reduce(UInt64(0)) { $0 + UInt64($1) }
        guard total == UInt64(Self.basisPoints) else {
            throw ProvenanceError.invalid("split '\(text)' sums to \(total) basis points; it must sum to 10000")
        }
        self.bps = bps
    }

    public subscript(role: Role) -> UInt32 { bps[role] ?? 0 }

    public var description: String { Role.allCases.filter { bps[$0] != nil }.map { "\($0.rawValue)=\(bps[$0]!)" }.joined(separator: ",") }
}

/// A model's price list.
public struct Price: Sendable, Hashable {
    public var inputPer1k: TokenAmount
    public var outputPer1k: TokenAmount
    public var minFee: TokenAmount
    public var split: RoleSplit
    /// The latency target; nil: no SLO.
    public var sloMilliseconds: UInt64?
    /// Basis points of the node's share refunded to the caller when the SLO is missed.
    public var sloPenaltyBps: UInt32

    public init(inputPer1k: TokenAmount, outputPer1k: TokenAmount, minFee: TokenAmount, split: RoleSplit,
                sloMilliseconds: UInt64?, sloPenaltyBps: UInt32) {
        self.inputPer1k = inputPer1k
        self.outputPer1k = outputPer1k
        self.minFee = minFee
        self.split = split
        self.sloMilliseconds = sloMilliseconds
        self.sloPenaltyBps = sloPenaltyBps
    }

    /// `max(min fee, ceil((input × rate_in + output × rate_out) / 1000))`, overflow-checked.
    public func fee(inputTokens: UInt64, outputTokens: UInt64) throws -> TokenAmount {
        let overflow = ProvenanceError.invalid("fee overflow: \(inputTokens) input and \(outputTokens) output tokens at these rates do not fit")
        let (a, o1) = Int128(inputTokens).multipliedReportingOverflow(by: inputPer1k.raw)
        let (b, o2) = Int128(outputTokens).multipliedReportingOverflow(by: outputPer1k.raw)
        let (sum, o3) = a.addingReportingOverflow(b)
        guard !o1, !o2, !o3, sum <= Int128.max - 999 else { throw overflow }
        let metered = (sum + 999) / 1000
        return TokenAmount(raw: max(metered, minFee.raw))
    }
}

/// Splits integer amounts exactly: every base unit is accounted for.
public enum ExactSplit {
    /// Splits `amount` in proportion to `weights` (over `scale`), flooring each part and giving
    /// the units left over, one each, to the largest remainders; ties go to the earlier entry
    /// (callers order entries by role order or account id).
    public static func split(_ amount: Int128, weights: [UInt64], scale: UInt64) -> [Int128] {
        precondition(amount >= 0)
        let total = UInt128(scale)
        var parts: [Int128] = []
        var remainders: [(UInt128, Int)] = []
        var assigned: Int128 = 0
        let magnitude = UInt128(amount)
        for (index, weight) in weights.enumerated() {
            // amount < 2^127 and weight <= scale <= 2^64: split the product to avoid overflow.
            let (quotient, remainder) = mulDiv(magnitude, UInt128(weight), total)
            parts.append(Int128(quotient))
            assigned += Int128(quotient)
            remainders.append((remainder, index))
        }
        var leftover = amount - assigned
        guard leftover > 0 else { return parts }
        remainders.sort { $0.0 != $1.0 ? $0.0 > $1.0 : $0.1 < $1.1 }
        var position = 0
        while leftover > 0 && position < remainders.count {
            if remainders[position].0 > 0 || weights[remainders[position].1] > 0 {
                parts[remainders[position].1] += 1
                leftover -= 1
            }
            position += 1
        }
        return parts
    }

    /// (a × b) / c and (a × b) % c without overflowing 128 bits, for b <= c < 2^64.
    static func mulDiv(_ a: UInt128, _ b: UInt128, _ c: UInt128) -> (UInt128, UInt128) {
        let q1 = a / c, r1 = a % c
        // a × b / c = q1 × b + r1 × b / c, with r1 < c < 2^64 and b <= c, so r1 × b < 2^128.
        let product = r1 * b
        return (q1 * b + product / c, product % c)
    }
}
