/// An amount of the settlement token in its smallest unit (18 decimals, like wei).
///
/// Always an integer: parsing, printing and arithmetic never touch floating point, and every
/// operation checks for overflow. Balances may be negative (the external account's is).
public struct TokenAmount: Sendable, Hashable, Comparable, CustomStringConvertible {
    public static let decimals = 18
    public static let unit: Int128 = 1_000_000_000_000_000_000
    public static let zero = TokenAmount(raw: 0)

    /// Base units.
    public var raw: Int128

    public init(raw: Int128) { self.raw = raw }

    /// Parses a non-negative amount: a decimal token amount (`12.5`, at most 18 decimals), or
    /// with `raw`, an integer of base units.
    public init(parsing text: String, raw: Bool = false) throws {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let what = raw ? "a whole number of base units" : "a token amount like 12.5 (at most \(Self.decimals) decimals)"
        guard !trimmed.isEmpty else { throw ProvenanceError.invalid("an empty amount: give \(what)") }
        if trimmed.hasPrefix("-") { throw ProvenanceError.invalid("amount '\(text)' is negative: give \(what)") }
        let parts = trimmed.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        let digits: (Substring) -> Bool = { !$0.isEmpty && $0.utf8.allSatisfy { $0 >= 48 && $0 <= 57 } }
        if raw {
            guard parts.count == 1, digits(parts[0]) else { throw ProvenanceError.invalid("amount '\(text)' is not \(what)") }
            guard let value = Int128(parts[0]) else { throw ProvenanceError.invalid("amount '\(text)' is too large") }
            self.raw = value
            return
        }
        guard digits(parts[0]), parts.count == 1 || digits(parts[1]) else {
            throw ProvenanceError.invalid("amount '\(text)' is not \(what)")
        }
        let fraction = parts.count == 2 ? parts[1] : ""
        guard fraction.count <= Self.decimals else {
            throw ProvenanceError.invalid("amount '\(text)' has \(fraction.count) decimals; the token has \(Self.decimals)")
        }
        guard let whole = Int128(parts[0]),
              let fractional = Int128(fraction + String(repeating: "0", count: Self.decimals - fraction.count))
        else { throw ProvenanceError.invalid("amount '\(text)' is too large") }
        let (scaled, overflow) = whole.multipliedReportingOverflow(by: Self.unit)
        guard !overflow else { throw ProvenanceError.invalid("amount '\(text)' is too large") }
        let (sum, overflow2) = scaled.addingReportingOverflow(fractional)
        guard !overflow2 else { throw ProvenanceError.invalid("amount '\(text)' is too large") }
        self.raw = sum
    }

    /// Parses a base-unit integer as written in invoices and the ledger (may be negative).
    public init?(rawString: String) {
        guard let value = Int128(rawString) else { return nil }
        raw = value
    }

    /// An amount read back from storage, where a malformed one means the store was damaged.
    public init(stored text: String, in what: @autoclosure () -> String) throws {
        guard let amount = TokenAmount(rawString: text) else {
            throw ProvenanceError(.storage, "the ledger holds a malformed amount '\(text)' in \(what())")
        }
        self = amount
    }

    /// Tokens with as few decimals as needed: `12.5`, `0.000000000000000001`, `-3`.
    public var description: String {
        let magnitude = raw.magnitude
        // One 128-bit division at most: an amount under 2^64 base units (18 tokens) takes 64-bit ones.
        let whole: String
        var fraction: UInt64
        if let small = UInt64(exactly: magnitude) {
            whole = String(small / 1_000_000_000_000_000_000)
            fraction = small % 1_000_000_000_000_000_000
        } else {
            let (quotient, remainder) = magnitude.quotientAndRemainder(dividingBy: UInt128(Self.unit))
            whole = String(quotient)
            fraction = UInt64(remainder)
        }
        var text = raw < 0 ? "-" + whole : whole
        guard fraction != 0 else { return text }
        var digits = Self.decimals
        while fraction % 10 == 0 {
            fraction /= 10
            digits -= 1
        }
        let significant = String(fraction)
        text += "."
        text += String(repeating: "0", count: digits - significant.count)
        text += significant
        return text
    }

    /// Base units as a decimal integer string.
    public var rawString: String { String(raw) }

    public static func < (lhs: TokenAmount, rhs: TokenAmount) -> Bool { lhs.raw < rhs.raw }

    public func adding(_ other: TokenAmount) throws -> TokenAmount {
        let (value, overflow) = raw.addingReportingOverflow(other.raw)
        guard !overflow else { throw ProvenanceError.invalid("amount overflow: \(self) + \(other) does not fit") }
        return TokenAmount(raw: value)
    }

    public func subtracting(_ other: TokenAmount) throws -> TokenAmount {
        let (value, overflow) = raw.subtractingReportingOverflow(other.raw)
        guard !overflow else { throw ProvenanceError.invalid("amount overflow: \(self) - \(other) does not fit") }
        return TokenAmount(raw: value)
    }
}

import Foundation
