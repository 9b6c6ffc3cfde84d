import Foundation

/// A run of a call's output that reproduces training data verbatim, and who wrote it: the
/// evidence a per-call plugin (span-match) records in the invoice.
///
/// `text` is the reproduced bytes; they are the output's bytes at `outputOffset` and the
/// file's bytes at `fileOffset` of `path` in dataset `commit`, which covers lines
/// `lineStart...lineEnd` (1-based), all written by `contributor` (git blame's author after
/// mailmap). Anyone can check it with `git show COMMIT:PATH`.
public struct AttributedSpan: Sendable, Equatable, Codable {
    public var dataset: String
    public var commit: String
    public var path: String
    public var lineStart: Int
    public var lineEnd: Int
    public var fileOffset: UInt64
    public var outputOffset: UInt64
    public var length: UInt64
    public var contributor: String
    public var text: String

    public init(dataset: String, commit: String, path: String, lineStart: Int, lineEnd: Int, fileOffset: UInt64,
                outputOffset: UInt64, length: UInt64, contributor: String, text: String) {
        self.dataset = dataset
        self.commit = commit
        self.path = path
        self.lineStart = lineStart
        self.lineEnd = lineEnd
        self.fileOffset = fileOffset
        self.outputOffset = outputOffset
        self.length = length
        self.contributor = contributor
        self.text = text
    }

    enum CodingKeys: String, CodingKey {
        case dataset, commit, path, length, contributor, text
        case lineStart = "line_start"
        case lineEnd = "line_end"
        case fileOffset = "file_offset"
        case outputOffset = "output_offset"
    }

    var canonical: CanonicalValue {
        .object([
            "dataset": .string(dataset), "commit": .string(commit), "path": .string(path),
            "line_start": .integer(UInt64(lineStart)), "line_end": .integer(UInt64(lineEnd)),
            "file_offset": .integer(fileOffset), "output_offset": .integer(outputOffset), "length": .integer(length),
            "contributor": .string(contributor), "text": .string(text),
        ])
    }

    init(canonical value: CanonicalValue) throws {
        func string(_ key: String) throws -> String {
            guard let text = value[key]?.stringValue else { throw ProvenanceError.invalid("invoice span has no \(key)") }
            return text
        }
        func number(_ key: String) throws -> UInt64 {
            guard let number = UInt64(try string(key)) else { throw ProvenanceError.invalid("invoice span \(key) is not a number") }
            return number
        }
        self.init(dataset: try string("dataset"), commit: try string("commit"), path: try string("path"),
                  lineStart: Int(try number("line_start")), lineEnd: Int(try number("line_end")), fileOffset: try number("file_offset"),
                  outputOffset: try number("output_offset"), length: try number("length"), contributor: try string("contributor"),
                  text: try string("text"))
    }

    /// Raw weights: the bytes each contributor's spans earned, in order of first appearance.
    public static func weights(of spans: [AttributedSpan]) -> [ContributorWeight] {
        var order: [String] = []
        var bytes: [String: UInt64] = [:]
        for span in spans {
            if bytes[span.contributor] == nil { order.append(span.contributor) }
            bytes[span.contributor, default: 0] += span.length
        }
        return order.map { ContributorWeight(contributor: $0, weight: Double(bytes[$0]!)) }
    }
}

/// How one level of a call's lineage was attributed for this call by a plugin that depends on
/// the call.
///
/// `basis` says where the weights come from: `spans` — what the output's spans earned (the
/// bytes of each contributor's spans, normalised to ppb exactly as any plugin's weights are),
/// which anyone can re-derive from the spans and hold against git; `fallback` — the output
/// reproduced nothing and the version's own weights (the settlement terms') apply; `plugin` —
/// an external plugin's answer for this call, which only the plugin can re-derive.
public struct LevelCallAttribution: Sendable, Equatable {
    public enum Basis: String, Sendable, Codable { case spans, fallback, plugin }

    /// `MODEL@VERSION`.
    public var level: String
    public var basis: Basis
    public var spans: [AttributedSpan]
    /// Sorted by contributor id, summing to 10^9.
    public var weights: [InvoiceLevel.Weight]

    public init(level: String, basis: Basis, spans: [AttributedSpan], weights: [InvoiceLevel.Weight]) {
        self.level = level
        self.basis = basis
        self.spans = spans
        self.weights = weights
    }

    var canonical: CanonicalValue {
        .object([
            "level": .string(level), "basis": .string(basis.rawValue),
            "spans": .array(spans.map(\.canonical)),
            "weights": .array(weights.map { .object(["contributor": .string($0.contributor), "ppb": .integer($0.ppb)]) }),
        ])
    }

    init(canonical value: CanonicalValue) throws {
        guard let level = value["level"]?.stringValue, let basis = value["basis"]?.stringValue.flatMap(Basis.init(rawValue:)) else {
            throw ProvenanceError.invalid("invoice call attribution has no level or basis")
        }
        self.level = level
        self.basis = basis
        spans = try (value["spans"]?.arrayValue ?? []).map(AttributedSpan.init(canonical:))
        weights = try (value["weights"]?.arrayValue ?? []).map {
            guard let contributor = $0["contributor"]?.stringValue, let ppb = $0["ppb"]?.stringValue.flatMap({ UInt64($0) }) else {
                throw ProvenanceError.invalid("invoice call attribution holds a malformed weight")
            }
            return InvoiceLevel.Weight(contributor: contributor, ppb: ppb)
        }
    }

    /// The weights spans earn, in ppb sorted by contributor, as settlement and `verify` derive them.
    public static func weights(of spans: [AttributedSpan], plugin: String) throws -> [InvoiceLevel.Weight] {
        let raw = AttributedSpan.weights(of: spans)
        return InvoiceLevel.weights(try PartsPerBillion.normalize(raw, known: Set(raw.map(\.contributor)), plugin: plugin))
    }

    /// `levels` with this call's weights in place of the version's, for every level attributed per call.
    public static func apply(_ attributions: [LevelCallAttribution], to levels: [InvoiceLevel]) -> [InvoiceLevel] {
        guard !attributions.isEmpty else { return levels }
        var byLevel: [String: LevelCallAttribution] = [:]
        for attribution in attributions { byLevel[attribution.level] = attribution }
        return levels.map { level in
            var level = level
            if let attribution = byLevel["\(level.model)@\(level.version)"] { level.weights = attribution.weights }
            return level
        }
    }
}
