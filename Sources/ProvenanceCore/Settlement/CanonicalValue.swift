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

    /// Parses JSON made only of the kinds above (numbers are refused: canonical values have none).
    public init(parsing data: Data) throws {
        let object: Any
        do { object = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]) } catch {
            throw ProvenanceError.invalid("not valid JSON: \(error.localizedDescription)")
        }
        self = try Self.convert(object)
    }

    static func convert(_ object: Any) throws -> CanonicalValue {
        switch object {
        case let text as String: return .string(text)
        case is NSNull: return .null
        case let list as [Any]: return .array(try list.map(convert))
        case let map as [String: Any]: return .object(try map.mapValues(convert))
        case let number as NSNumber:
            // JSON true/false arrive as NSNumber; integers are always strings in canonical values.
            if String(describing: type(of: number)).contains("Bool") || number === kCFBooleanTrueCompat || number === kCFBooleanFalseCompat {
                return .bool(number.boolValue)
            }
            throw ProvenanceError.invalid("canonical JSON holds no numbers; found \(number)")
        default: throw ProvenanceError.invalid("unexpected JSON value \(object)")
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
    public var isNull: Bool { self == .null }
}

nonisolated(unsafe) private let kCFBooleanTrueCompat = NSNumber(value: true)
nonisolated(unsafe) private let kCFBooleanFalseCompat = NSNumber(value: false)
