import Foundation
import HTTPTypes
import Hummingbird
import ProvenanceCore

/// JSON responses: sorted keys, so equal answers are equal bytes.
enum JSONResponse {
    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    static func make(_ value: some Encodable, status: HTTPResponse.Status = .ok) -> Response {
        encoded(value, status: status)
    }

    private static func encoded(_ value: some Encodable, status: HTTPResponse.Status) -> Response {
        do {
            return bytes(try encoder.encode(value), status: status)
        } catch {
            // Only a non-finite Double could fail to encode; say so rather than send half a body.
            let body = Data(#"{"error":{"code":"internal_error","message":"the response could not be encoded as JSON"}}"#.utf8)
            return bytes(body, status: .internalServerError)
        }
    }

    /// A call's outcome (the answer to every `POST /v1/calls`).
    static func make(_ outcome: CallOutcome, status: HTTPResponse.Status) -> Response {
        var body = ByteBuffer()
        guard write(outcome, into: &body) else { return encoded(outcome, status: status) }
        return response(body, status: status)
    }

    /// The fields appended, not set (setting searches the fields for the name first), into room
    /// for the ones added after: a call's `Idempotency-Replayed`, Hummingbird's `Date` and
    /// `Server`. Built from a literal, the fields had room for two, and growing them was 0.6%
    /// of a deferred run's samples.
    private static func response(_ body: ByteBuffer, status: HTTPResponse.Status) -> Response {
        var headers = HTTPFields()
        headers.reserveCapacity(5)
        headers.append(HTTPField(name: .contentType, value: "application/json"))
        headers.append(HTTPField(name: .contentLength, value: String(body.readableBytes)))
        return Response(status: status, headers: headers, body: .init(byteBuffer: body))
    }

    /// The outcomes of a batch of calls, `{"outcomes":[…]}`, written directly like `json(_:)`.
    static func make(outcomes: [CallOutcome]) -> Response {
        var body = ByteBuffer()
        guard write(outcomes: outcomes, into: &body) else { return encoded(ListPayload(key: "outcomes", items: outcomes), status: .ok) }
        return response(body, status: .ok)
    }

    static func json(outcomes: [CallOutcome]) -> Data? {
        var buffer = ByteBuffer()
        guard write(outcomes: outcomes, into: &buffer) else { return nil }
        return Data(buffer.readableBytesView)
    }

    /// Writes `{"outcomes":[…]}` into `buffer`, each outcome by `write(_:into:)`, in place (each
    /// was written into a `Data` of its own, appended to another, then copied into the buffer);
    /// false when one needs an escape (what was written is then for the caller to drop).
    static func write(outcomes: [CallOutcome], into buffer: inout ByteBuffer) -> Bool {
        buffer.reserveCapacity(minimumWritableBytes: 16 + outcomes.count * 200)
        buffer.writeStaticString(#"{"outcomes":["#)
        for (index, outcome) in outcomes.enumerated() {
            if index > 0 { buffer.writeStaticString(",") }
            guard write(outcome, into: &buffer) else { return false }
        }
        buffer.writeStaticString("]}")
        return true
    }

    /// A call's outcome written directly: byte for byte what `JSONEncoder` writes (a test holds
    /// the two equal); nil for a string that would need an escape, which the encoder writes.
    static func json(_ outcome: CallOutcome) -> Data? {
        var buffer = ByteBuffer()
        guard write(outcome, into: &buffer) else { return nil }
        return Data(buffer.readableBytesView)
    }

    /// Appends `json(outcome)` to `buffer`, false (having appended nothing) where a string would
    /// need an escape. The answer to a call is written straight into the buffer NIO sends: built
    /// as a `String` piece by piece, then copied into `Data`, then into a `ByteBuffer`, it was
    /// 2.0% of a deferred call's CPU in perf; written here, 1.0-1.3%.
    static func write(_ outcome: CallOutcome, into buffer: inout ByteBuffer) -> Bool {
        func plain(_ text: String) -> Bool {
            text.utf8.allSatisfy { $0 >= 0x20 && $0 <= 0x7e && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\") }
        }
        guard plain(outcome.idempotencyKey), plain(outcome.record), plain(outcome.fee) else { return false }
        buffer.reserveCapacity(minimumWritableBytes: 112 + outcome.fee.utf8.count + outcome.idempotencyKey.utf8.count + outcome.record.utf8.count)
        buffer.writeStaticString(#"{"fee":""#)
        buffer.writeString(outcome.fee)
        buffer.writeStaticString(#"","idempotency_key":""#)
        buffer.writeString(outcome.idempotencyKey)
        buffer.writeStaticString("\"")
        if let invoice = outcome.invoice {
            buffer.writeStaticString(#","invoice":"#)
            buffer.writeString(String(invoice))
        }
        buffer.writeStaticString(#","record":""#)
        buffer.writeString(outcome.record)
        buffer.writeStaticString(outcome.replayed ? #"","replayed":true"# : #"","replayed":false"#)
        buffer.writeStaticString(#","status":""#)
        buffer.writeString(outcome.status.rawValue)
        buffer.writeStaticString(#""}"#)
        return true
    }

    static func bytes(_ data: Data, status: HTTPResponse.Status = .ok, contentType: String = "application/json") -> Response {
        Response(status: status,
                 headers: [.contentType: contentType, .contentLength: String(data.count)],
                 body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}

extension HTTPFields {
    /// The field's value, as `self[name]` gives it (several fields joined with ", "), without
    /// building a joined string for the one field a request mostly has: `self[name]` joins
    /// even one value, a lazy join over the field storage, for each of a call's three lookups.
    func value(_ name: HTTPField.Name) -> String? {
        var found: String?
        for field in self where field.name == name {
            guard found == nil else { return self[name] }
            found = field.value
        }
        return found
    }
}

/// Reads request bodies: at most `limit` bytes (413 beyond), JSON of the expected shape (400 otherwise).
struct BodyReader: Sendable {
    let limit: Int

    static let decoder = JSONDecoder()

    /// Decodes the body as `type`. `fast`, when given, reads the body first; when it answers
    /// nil, `JSONDecoder` decides (see `CallBodyParser`).
    func decode<T: Decodable>(_ type: T.Type, from request: Request,
                              fast: ((UnsafeRawBufferPointer) -> T?)? = nil) async throws -> T {
        if let contentType = request.headers.value(.contentType), contentType != "application/json",
           !contentType.lowercased().trimmingCharacters(in: .whitespaces).hasPrefix("application/json") {
            throw RegistryError(.unsupportedMediaType, code: "unsupported_media_type", "send the body as application/json, not \(contentType.prefix(100))")
        }
        if let length = request.headers.value(.contentLength).flatMap({ Int($0) }), length > limit {
            throw Self.tooLarge(limit)
        }
        var request = request
        let buffer: ByteBuffer
        do {
            buffer = try await request.collectBody(upTo: limit)
        } catch let error as any HTTPResponseError where error.status == .contentTooLarge {
            throw Self.tooLarge(limit)
        }
        guard buffer.readableBytes > 0 else { throw RegistryError.malformed("the request needs a JSON body") }
        if let fast, let value = buffer.withUnsafeReadableBytes(fast) { return value }
        do {
            return try Self.decoder.decode(T.self, from: Data(buffer.readableBytesView))
        } catch let error as DecodingError {
            throw RegistryError.malformed(Self.describe(error))
        } catch let error as RegistryError {
            throw error
        } catch {
            throw RegistryError.malformed("the body is not valid JSON")
        }
    }

    static func tooLarge(_ limit: Int) -> RegistryError {
        RegistryError(.contentTooLarge, code: "payload_too_large", "the request body is over the server's limit of \(limit) bytes")
    }

    /// One line naming the field that did not fit.
    static func describe(_ error: DecodingError) -> String {
        func path(_ keys: [any CodingKey]) -> String {
            let text = keys.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
            return text.isEmpty ? "the body" : String(text.drop(while: { $0 == "." }))
        }
        switch error {
        case .keyNotFound(let key, let context):
            return "\(path(context.codingPath + [key])) is required"
        case .typeMismatch(let type, let context):
            return "\(path(context.codingPath)) must be \(describe(type))"
        case .valueNotFound(let type, let context):
            return "\(path(context.codingPath)) must be \(describe(type)), not null"
        case .dataCorrupted(let context):
            if context.codingPath.isEmpty { return "the body is not valid JSON" }
            return "\(path(context.codingPath)): \(context.debugDescription)"
        @unknown default:
            return "the body does not have the documented shape"
        }
    }

    static func describe(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: return "a string"
        case is Bool.Type: return "true or false"
        case is UInt64.Type, is UInt32.Type, is Int.Type, is Int64.Type: return "a whole number in range"
        case is [Any].Type: return "an array"
        default: return "an object"
        }
    }
}

/// Any JSON value: how the registry embeds canonical documents (invoices) in its answers.
enum JSONValue: Codable, Sendable, Equatable {
    case string(String)
    case number(Double)
    case bool(Bool)
    case null
    case array([JSONValue])
    case object([String: JSONValue])

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() { self = .null }
        else if let value = try? container.decode(Bool.self) { self = .bool(value) }
        else if let value = try? container.decode(String.self) { self = .string(value) }
        else if let value = try? container.decode(Double.self) { self = .number(value) }
        else if let value = try? container.decode([JSONValue].self) { self = .array(value) }
        else { self = .object(try container.decode([String: JSONValue].self)) }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .string(let value): try container.encode(value)
        case .number(let value): try container.encode(value)
        case .bool(let value): try container.encode(value)
        case .null: try container.encodeNil()
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }

    /// Parses a stored JSON document (an invoice's canonical bytes).
    static func parse(_ data: Data) throws -> JSONValue {
        do { return try BodyReader.decoder.decode(JSONValue.self, from: data) } catch {
            throw RegistryError(.internalServerError, code: "internal_error", "a stored document is not valid JSON")
        }
    }
}
