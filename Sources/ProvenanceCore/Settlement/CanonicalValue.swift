public import Foundation

/// A JSON value written canonically: object keys sorted by their UTF-8 bytes, no whitespace,
/// strings escaped minimally. Invoices and call records use only strings, booleans, null,
/// arrays and objects (every integer is a decimal string), so equal values give equal bytes on
/// every machine. Written by hand because it sits on the settlement hot path.
public indirect enum CanonicalValue: Sendable, Equatable {
    case string(String)
    case bool(Bool)
    case null
    case array([CanonicalValue])
    case object([String: CanonicalValue])

    public static func integer<I: BinaryInteger>(_ value: I) -> CanonicalValue { .string(String(value)) }
    public static func optional(_ value: String?) -> CanonicalValue { value.map(CanonicalValue.string) ?? .null }

    public func encoded() -> Data {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(1024)
        write(into: &bytes)
        return Data(bytes)
    }

    func write(into bytes: inout [UInt8]) {
        switch self {
        case .string(let text): Self.writeString(text, into: &bytes)
        case .bool(let value): bytes.append(contentsOf: value ? Array("true".utf8) : Array("false".utf8))
        case .null: bytes.append(contentsOf: Array("null".utf8))
        case .array(let items):
            bytes.append(UInt8(ascii: "["))
            for (index, item) in items.enumerated() {
                if index > 0 { bytes.append(UInt8(ascii: ",")) }
                item.write(into: &bytes)
            }
            bytes.append(UInt8(ascii: "]"))
        case .object(let members):
            bytes.append(UInt8(ascii: "{"))
            let keys = members.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
            for (index, key) in keys.enumerated() {
                if index > 0 { bytes.append(UInt8(ascii: ",")) }
                Self.writeString(key, into: &bytes)
                bytes.append(UInt8(ascii: ":"))
                members[key]!.write(into: &bytes)
            }
            bytes.append(UInt8(ascii: "}"))
        }
    }

    static let hex: [UInt8] = Array("0123456789abcdef".utf8)

    static func writeString(_ text: String, into bytes: inout [UInt8]) {
        bytes.append(UInt8(ascii: "\""))
        // Most strings (ids, hashes, names) need no escaping: scan their UTF-8 in place and copy
        // them whole.
        let copied: Bool? = text.utf8.withContiguousStorageIfAvailable { buffer in
            for byte in buffer where byte < 0x20 || byte == 0x22 || byte == 0x5C { return false }
            bytes.append(contentsOf: buffer)
            return true
        }
        if copied == true {
            bytes.append(UInt8(ascii: "\""))
            return
        }
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): bytes.append(contentsOf: [92, 34])
            case UInt8(ascii: "\\"): bytes.append(contentsOf: [92, 92])
            case 0x0A: bytes.append(contentsOf: [92, UInt8(ascii: "n")])
            case 0x0D: bytes.append(contentsOf: [92, UInt8(ascii: "r")])
            case 0x09: bytes.append(contentsOf: [92, UInt8(ascii: "t")])
            case 0..<0x20: bytes.append(contentsOf: [92, UInt8(ascii: "u"), 48, 48, hex[Int(byte >> 4)], hex[Int(byte & 15)]])
            default: bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    /// Parses JSON made only of the kinds above; numbers are refused (canonical values have
    /// none). A byte-level parser: `verify` reads every invoice back, and Foundation's
    /// `JSONSerialization` spent most of its time bridging to Objective-C types.
    public init(parsing data: Data) throws {
        var parser = Parser(bytes: [UInt8](data))
        self = try parser.value()
        parser.skipWhitespace()
        guard parser.position == parser.bytes.count else { throw parser.error("trailing bytes") }
    }

    struct Parser {
        let bytes: [UInt8]
        var position = 0

        init(bytes: [UInt8]) { self.bytes = bytes }

        func error(_ what: String) -> ProvenanceError {
            ProvenanceError.invalid("not canonical JSON: \(what) at byte \(position)")
        }

        mutating func skipWhitespace() {
            while position < bytes.count, [0x20, 0x0A, 0x0D, 0x09].contains(bytes[position]) { position += 1 }
        }

        mutating func expect(_ literal: String) throws {
            for byte in literal.utf8 {
                guard position < bytes.count, bytes[position] == byte else { throw error("expected \(literal)") }
                position += 1
            }
        }

        mutating func value() throws -> CanonicalValue {
            skipWhitespace()
            guard position < bytes.count else { throw error("unexpected end") }
            switch bytes[position] {
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "t"): try expect("true"); return .bool(true)
            case UInt8(ascii: "f"): try expect("false"); return .bool(false)
            case UInt8(ascii: "n"): try expect("null"); return .null
            case UInt8(ascii: "["):
                position += 1
                var items: [CanonicalValue] = []
                skipWhitespace()
                if position < bytes.count, bytes[position] == UInt8(ascii: "]") { position += 1; return .array(items) }
                while true {
                    items.append(try value())
                    skipWhitespace()
                    guard position < bytes.count else { throw error("unterminated array") }
                    if bytes[position] == UInt8(ascii: ",") { position += 1; continue }
                    guard bytes[position] == UInt8(ascii: "]") else { throw error("expected , or ]") }
                    position += 1
                    return .array(items)
                }
            case UInt8(ascii: "{"):
                position += 1
                var members: [String: CanonicalValue] = [:]
                skipWhitespace()
                if position < bytes.count, bytes[position] == UInt8(ascii: "}") { position += 1; return .object(members) }
                while true {
                    skipWhitespace()
                    guard position < bytes.count, bytes[position] == UInt8(ascii: "\"") else { throw error("expected a key") }
                    let key = try string()
                    skipWhitespace()
                    try expect(":")
                    guard members[key] == nil else { throw error("duplicate key \(key)") }
                    members[key] = try value()
                    skipWhitespace()
                    guard position < bytes.count else { throw error("unterminated object") }
                    if bytes[position] == UInt8(ascii: ",") { position += 1; continue }
                    guard bytes[position] == UInt8(ascii: "}") else { throw error("expected , or }") }
                    position += 1
                    return .object(members)
                }
            default:
                throw error("canonical JSON holds only strings, booleans, null, arrays and objects")
            }
        }

        mutating func string() throws -> String {
            position += 1
            var out: [UInt8] = []
            while position < bytes.count {
                let byte = bytes[position]
                position += 1
                switch byte {
                case UInt8(ascii: "\""): 
                    guard let text = String(validating: out, as: UTF8.self) else { throw error("invalid UTF-8") }
                    return text
                case UInt8(ascii: "\\"):
                    guard position < bytes.count else { throw error("unterminated escape") }
                    let escape = bytes[position]
                    position += 1
                    switch escape {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(escape)
                    case UInt8(ascii: "b"): out.append(0x08)
                    case UInt8(ascii: "f"): out.append(0x0C)
                    case UInt8(ascii: "n"): out.append(0x0A)
                    case UInt8(ascii: "r"): out.append(0x0D)
                    case UInt8(ascii: "t"): out.append(0x09)
                    case UInt8(ascii: "u"):
                        var scalar = try hex4()
                        if (0xD800..<0xDC00).contains(scalar) {
                            try expect("\\u")
                            let low = try hex4()
                            guard (0xDC00..<0xE000).contains(low) else { throw error("unpaired surrogate") }
                            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                        }
                        guard let unicode = Unicode.Scalar(scalar) else { throw error("invalid escape") }
                        out.append(contentsOf: Array(String(Character(unicode)).utf8))
                    default: throw error("invalid escape")
                    }
                default:
                    guard byte >= 0x20 else { throw error("control character in a string") }
                    out.append(byte)
                }
            }
            throw error("unterminated string")
        }

        mutating func hex4() throws -> UInt32 {
            guard position + 4 <= bytes.count else { throw error("short \\u escape") }
            var value: UInt32 = 0
            for _ in 0..<4 {
                let byte = bytes[position]
                position += 1
                let digit: UInt32
                switch byte {
                case 48...57: digit = UInt32(byte - 48)
                case 97...102: digit = UInt32(byte - 87)
                case 65...70: digit = UInt32(byte - 55)
                default: throw error("invalid \\u escape")
                }
                value = value << 4 | digit
            }
            return value
        }
    }

    // Accessors for reading stored invoices back.
    public subscript(key: String) -> CanonicalValue? {
        if case .object(let members) = self { return members[key] }
        return nil
    }

    public var stringValue: String? { if case .string(let s) = self { return s }; return nil }
    public var boolValue: Bool? { if case .bool(let b) = self { return b }; return nil }
    public var arrayValue: [CanonicalValue]? { if case .array(let a) = self { return a }; return nil }
}

/// JSON strings read in place, for readers of a fixed plain layout (call records here, call
/// bodies in the registry) that leave anything else to a general parser.
public enum PlainJSONString {
    /// The string whose opening quote is at `position`, if it has no escape or control
    /// character and is valid UTF-8; `position` then follows its closing quote. Nil otherwise
    /// (`position` is then somewhere inside it: the caller gives up on the document).
    public static func read(_ bytes: UnsafeRawBufferPointer, at position: inout Int) -> String? {
        guard let (range, ascii) = span(bytes, at: &position) else { return nil }
        let utf8 = UnsafeRawBufferPointer(rebasing: bytes[range])
        // ASCII is valid UTF-8 as it is: only other bytes need `validating`, whose generic
        // path cost more than the scan.
        return ascii ? String(decoding: utf8, as: UTF8.self) : String(validating: utf8, as: UTF8.self)
    }

    /// Where the bytes of that string lie, between its quotes, and whether all are ASCII,
    /// for a reader that matches them without making a `String`; nil as for `read`, but for
    /// invalid UTF-8, which is not checked here.
    public static func span(_ bytes: UnsafeRawBufferPointer, at position: inout Int) -> (range: Range<Int>, ascii: Bool)? {
        guard position < bytes.count, bytes[position] == UInt8(ascii: "\"") else { return nil }
        position += 1
        let start = position
        var ascii = true
        while position < bytes.count {
            let byte = bytes[position]
            if byte == UInt8(ascii: "\"") {
                position += 1
                return (start..<(position - 1), ascii)
            }
            if byte == UInt8(ascii: "\\") || byte < 0x20 { return nil }
            ascii = ascii && byte < 0x80
            position += 1
        }
        return nil
    }
}

/// Canonical JSON written straight into bytes, for writers that know their keys' sorted order
/// (call records, call signatures, invoices): what `CanonicalValue.encoded()` writes, without
/// building the tree. Each writer's test holds its bytes equal to the general encoding.
struct CanonicalWriter {
    private(set) var bytes: [UInt8] = []

    init(capacity: Int) { bytes.reserveCapacity(capacity) }

    /// Bytes as they are: punctuation, keys, an already canonical document.
    mutating func raw(_ text: StaticString) { text.withUTF8Buffer { bytes.append(contentsOf: $0) } }
    mutating func raw(_ data: Data) { bytes.append(contentsOf: data) }
    mutating func byte(_ value: UInt8) { bytes.append(value) }

    mutating func string(_ text: String) { CanonicalValue.writeString(text, into: &bytes) }
    mutating func optional(_ text: String?) { if let text { string(text) } else { raw("null") } }
    /// An integer as canonical values hold one: a decimal string. Written digit by digit into a
    /// buffer on the stack, then appended at once: `String(value)` allocated a string for every
    /// integer of every record.
    mutating func integer<I: BinaryInteger>(_ value: I) {
        precondition(value.bitWidth <= 128, "an integer of more than 128 bits")
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 2 + 1 + 40) { out in  // quotes, sign, 128-bit digits
            var end = out.count
            out[end - 1] = UInt8(ascii: "\"")
            end -= 1
            var rest = value.magnitude
            repeat {
                let (quotient, digit) = rest.quotientAndRemainder(dividingBy: 10)
                end -= 1
                out[end] = UInt8(ascii: "0") + UInt8(truncatingIfNeeded: digit)
                rest = quotient
            } while rest != 0
            if value < 0 { end -= 1; out[end] = UInt8(ascii: "-") }
            end -= 1
            out[end] = UInt8(ascii: "\"")
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: out[end...]))
        }
    }

    /// Standard base64 with padding (RFC 4648 section 4), what `Data.base64EncodedString()`
    /// writes, encoded on the stack and appended at once: a batch-signed call's signature holds
    /// ten such values.
    mutating func base64(_ data: Data) {
        data.withUnsafeBytes { input in
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: (input.count + 2) / 3 * 4 + 2) { out in
                Self.base64Alphabet.withUTF8Buffer { alphabet in
                    var position = 0, written = 1
                    out[0] = UInt8(ascii: "\"")
                    while position + 3 <= input.count {
                        let group = UInt32(input[position]) << 16 | UInt32(input[position + 1]) << 8 | UInt32(input[position + 2])
                        out[written] = alphabet[Int(group >> 18)]
                        out[written + 1] = alphabet[Int(group >> 12 & 63)]
                        out[written + 2] = alphabet[Int(group >> 6 & 63)]
                        out[written + 3] = alphabet[Int(group & 63)]
                        position += 3
                        written += 4
                    }
                    let left = input.count - position
                    if left > 0 {
                        let group = UInt32(input[position]) << 16 | (left == 2 ? UInt32(input[position + 1]) << 8 : 0)
                        out[written] = alphabet[Int(group >> 18)]
                        out[written + 1] = alphabet[Int(group >> 12 & 63)]
                        out[written + 2] = left == 2 ? alphabet[Int(group >> 6 & 63)] : UInt8(ascii: "=")
                        out[written + 3] = UInt8(ascii: "=")
                        written += 4
                    }
                    out[written] = UInt8(ascii: "\"")
                    bytes.append(contentsOf: UnsafeBufferPointer(rebasing: out[..<(written + 1)]))
                }
            }
        }
    }

    private static let base64Alphabet: StaticString = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

    /// The bytes as `Data`, copied through a buffer pointer: `Data(bytes)` took Foundation's path
    /// for any sequence, which begins with a dynamic cast. The copy itself stays, and is most of
    /// what this costs (0.6-0.8% of a deferred call's CPU in perf, for its two canonical encodings).
    var data: Data { bytes.withUnsafeBufferPointer { Data(buffer: $0) } }
}
