/// Exact normalisation of weights to integer parts per billion.
///
/// Raw weights are validated (finite, non-negative, known contributors, not all zero), turned
/// into integers (kept exact when they already are; otherwise scaled against the largest by
/// 2^53, one correctly rounded division each, so every IEEE 754 machine gets the same
/// integers), then split with the largest-remainder method in 128-bit integer arithmetic:
/// the parts sum to exactly 1,000,000,000 and ties go to the smaller contributor id.
public enum PartsPerBillion {
    public static let whole: UInt64 = 1_000_000_000

    /// One contributor's normalised share.
    public struct Share: Sendable, Equatable, Codable {
        public var contributor: String
        public var ppb: UInt64
        /// The strategy's own figure, before normalisation.
        public var raw: Double

        public init(contributor: String, ppb: UInt64, raw: Double) {
            self.contributor = contributor
            self.ppb = ppb
            self.raw = raw
        }
    }

    /// Validates `weights` and normalises them.
    ///
    /// - Parameters:
    ///   - known: the contributor ids the input had; any other id is refused.
    ///   - plugin: named in every error.
    public static func normalize(_ weights: [ContributorWeight], known: Set<String>, plugin: String) throws -> [Share] {
        var merged: [String: Double] = [:]
        for weight in weights {
            guard weight.weight.isFinite else {
                throw AttributionError(plugin: plugin, message: "weight for '\(weight.contributor)' is not a finite number")
            }
            guard weight.weight >= 0 else {
                throw AttributionError(plugin: plugin, message: "weight for '\(weight.contributor)' is negative (\(weight.weight))")
            }
            guard known.contains(weight.contributor) else {
                throw AttributionError(plugin: plugin, message: "'\(weight.contributor)' is not a contributor of this model version")
            }
            guard merged[weight.contributor] == nil else {
                throw AttributionError(plugin: plugin, message: "'\(weight.contributor)' is weighted twice")
            }
            merged[weight.contributor] = weight.weight
        }
        let ids = merged.keys.sorted()
        guard let largest = merged.values.max(), largest > 0 else {
            throw AttributionError(plugin: plugin, message: "every weight is zero, so nobody can be paid")
        }
        let exact = merged.values.allSatisfy { $0 == $0.rounded(.towardZero) } && largest <= 9_007_199_254_740_992
        let integers: [UInt64] = ids.map { id in
            let value = merged[id]!
            if exact { return UInt64(value) }
            return UInt64((value / largest * 9_007_199_254_740_992).rounded(.toNearestOrEven))
        }
        let parts = try split(integers, ids: ids, plugin: plugin)
        return ids.indices.map { Share(contributor: ids[$0], ppb: parts[$0], raw: merged[ids[$0]]!) }
    }

    /// Largest remainder over integer weights `values` (aligned with sorted `ids`).
    static func split(_ values: [UInt64], ids: [String], plugin: String) throws -> [UInt64] {
        guard let parts = largestRemainder(values.map { UInt128($0) }) else {
            throw AttributionError(plugin: plugin, message: "every weight is zero, so nobody can be paid")
        }
        return parts
    }

    /// Splits `whole` in proportion to `values`; remainders go to the largest fractions, ties
    /// to the lower index (callers keep values in contributor-id order). Nil if all are zero.
    static func largestRemainder(_ values: [UInt128]) -> [UInt64]? {
        let total = values.reduce(UInt128(0), +)
        guard total > 0 else { return nil }
        var parts: [UInt64] = []
        var remainders: [(UInt128, Int)] = []
        var assigned: UInt64 = 0
        for (index, value) in values.enumerated() {
            let scaled = value * UInt128(whole)
            let part = UInt64(scaled / total)
            parts.append(part)
            assigned += part
            remainders.append((scaled % total, index))
        }
        remainders.sort { $0.0 != $1.0 ? $0.0 > $1.0 : $0.1 < $1.1 }
        for position in 0..<Int(whole - assigned) { parts[remainders[position].1] += 1 }
        return parts
    }

    /// Mixes a version's own shares with its base's: `basePPB` of the weight goes to the base's
    /// shares, the rest to `own`, per contributor, re-normalised exactly.
    public static func mix(own: [Share], base: [Share], basePPB: UInt64) -> [Share] {
        var combined: [String: UInt128] = [:]
        var raw: [String: Double] = [:]
        for share in own {
            combined[share.contributor, default: 0] += UInt128(share.ppb) * UInt128(whole - basePPB)
            raw[share.contributor] = share.raw
        }
        for share in base {
            combined[share.contributor, default: 0] += UInt128(share.ppb) * UInt128(basePPB)
            if raw[share.contributor] == nil { raw[share.contributor] = 0 }
        }
        let ids = combined.keys.sorted()
        let parts = largestRemainder(ids.map { combined[$0]! }) ?? Array(repeating: 0, count: ids.count)
        return ids.indices.map { Share(contributor: ids[$0], ppb: parts[$0], raw: raw[ids[$0]] ?? 0) }
    }
}
