public import Foundation

/// The whole lineage of a model version: its developer, training logs and dataset commits
/// with their contributors, then the same for its base, recursively.
public final class Lineage: Codable, Sendable {
    public let model: String
    public let version: String
    public let commit: String
    public let developer: String
    public let developerID: String
    /// The model's active attribution plugin.
    public let plugin: String
    public let weights: ModelManifest.Weights?
    public let trainingLogs: [ModelManifest.TrainingLog]
    public let datasets: [DatasetLineage]
    public let base: Lineage?
    /// The traced version's weights under its active plugin (set on the top version only).
    public let attribution: AttributionResult?

    init(manifest: ModelManifest, commit: String, plugin: String, datasets: [DatasetLineage], base: Lineage?,
         attribution: AttributionResult? = nil) {
        self.attribution = attribution
        model = manifest.model
        version = manifest.version
        self.commit = commit
        developer = manifest.developer.identity
        developerID = manifest.developer.id
        self.plugin = plugin
        weights = manifest.weights
        trainingLogs = manifest.trainingLogs
        self.datasets = datasets
        self.base = base
    }

    enum CodingKeys: String, CodingKey {
        case model, version, commit, developer, plugin, weights, datasets, base, attribution
        case developerID = "developer_id"
        case trainingLogs = "training_logs"
    }

    /// This version, then its base, then the base's base…
    public var chain: [Lineage] {
        var result: [Lineage] = [self]
        while let next = result.last?.base { result.append(next) }
        return result
    }
}

/// A dataset commit in a lineage, with everyone whose commits it holds.
public struct DatasetLineage: Codable, Sendable, Equatable {
    public var dataset: String
    public var commit: String
    public var manifestSHA256: String
    public var files: Int
    public var bytes: UInt64
    public var contributors: [TraceContributor]

    enum CodingKeys: String, CodingKey {
        case dataset, commit, files, bytes, contributors
        case manifestSHA256 = "manifest_sha256"
    }
}

public struct TraceContributor: Codable, Sendable, Equatable {
    public var name: String
    public var email: String
    public var id: String
    public var commits: Int

    /// `Name <email>` after mailmap. Built on demand: a large trace has tens of thousands of
    /// rows, and the JSON writer writes the parts directly.
    public var contributor: String { "\(name) <\(email)>" }

    init(_ summary: ContributorSummary) {
        name = summary.name
        email = summary.email
        id = summary.id
        commits = summary.commits
    }

    enum CodingKeys: String, CodingKey { case contributor, id, commits }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(contributor, forKey: .contributor)
        try container.encode(id, forKey: .id)
        try container.encode(commits, forKey: .commits)
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let identity = try container.decode(String.self, forKey: .contributor)
        let open = identity.lastIndex(of: "<") ?? identity.endIndex
        name = identity[..<open].trimmingCharacters(in: .whitespaces)
        email = open < identity.endIndex ? String(identity[identity.index(after: open)...].dropLast()) : ""
        id = try container.decode(String.self, forKey: .id)
        commits = try container.decode(Int.self, forKey: .commits)
    }
}

extension Store {
    /// Traces `reference` back through its base models to every dataset commit and contributor.
    public func lineage(of reference: ModelVersionReference, attribution: AttributionResult? = nil) throws -> Lineage {
        _ = try modelVersion(reference)
        // Walk the chain first so a cycle (possible only in a corrupted index) is an error, not a hang.
        let chain = try baseChain(from: reference)
        let versions = try chain.map { try modelVersion($0) }
        let keys = versions.flatMap { $0.1.datasets.map { DatasetCommitKey(dataset: $0.dataset, commit: $0.commit) } }
        let contributors = try contributors(of: keys)
        var below: Lineage?
        for (current, (record, manifest)) in zip(chain, versions).reversed() {
            let datasets = manifest.datasets.map { input in
                DatasetLineage(dataset: input.dataset, commit: input.commit, manifestSHA256: input.manifestSHA256,
                               files: input.files, bytes: input.bytes,
                               contributors: (contributors[DatasetCommitKey(dataset: input.dataset, commit: input.commit)] ?? []).map {
                                   TraceContributor($0)
                               })
            }
            let plugin = try index.model(named: current.model)?.plugin ?? manifest.plugin
            below = Lineage(manifest: manifest, commit: record.commit, plugin: plugin, datasets: datasets, base: below,
                            attribution: current == reference ? attribution : nil)
        }
        guard let top = below else { throw ProvenanceError.notFound("model version \(reference) does not exist") }
        return top
    }
}

/// Renders a lineage for people (`tree`) and for Graphviz (`dot`); `json` is its Codable form.
public enum LineageRenderer {
    public static func tree(_ lineage: Lineage) -> String {
        String(decoding: treeBytes(lineage), as: UTF8.self)
    }

    /// The tree, for people: indented and aligned. Written into one byte buffer, since a large
    /// lineage has tens of thousands of contributor rows.
    public static func treeBytes(_ lineage: Lineage) -> Data {
        var out: [UInt8] = []
        out.reserveCapacity(4096 + lineage.chain.reduce(0) { $0 + $1.datasets.reduce(0) { $0 + $1.contributors.count } } * 100)
        let weights = Dictionary(uniqueKeysWithValues: (lineage.attribution?.weights ?? []).map { ($0.id, $0.ppb) })
        render(lineage, prefix: "", label: "model", weights: weights, into: &out)
        if let attribution = lineage.attribution {
            let share = attribution.baseSharePPB > 0 ? ", \(percent(attribution.baseSharePPB)) to \(attribution.base ?? "the base")" : ""
            out.append(contentsOf: "\nweights of \(attribution.model)@\(attribution.version) under \(attribution.plugin)\(share):\n".utf8)
            let width = attribution.weights.map { displayWidth($0.contributor) }.max() ?? 0
            for weight in attribution.weights {
                let ppb = String(weight.ppb)
                out.append(contentsOf: "  ".utf8)
                out.append(contentsOf: weight.contributor.utf8)
                spaces(width - displayWidth(weight.contributor) + 2 + max(0, 10 - ppb.count), &out)
                out.append(contentsOf: "\(ppb) ppb  \(percent(weight.ppb))\n".utf8)
            }
        }
        if out.last == 0x0A { out.removeLast() }
        return Data(out)
    }

    /// Characters on screen: the UTF-8 length for ASCII text (the common case, and cheap),
    /// else the count of characters.
    static func displayWidth(_ text: String) -> Int {
        let ascii = text.utf8.withContiguousStorageIfAvailable { buffer in !buffer.contains { $0 >= 0x80 } }
        return ascii == true ? text.utf8.count : text.count
    }

    private static func spaces(_ count: Int, _ out: inout [UInt8]) {
        if count > 0 { out.append(contentsOf: repeatElement(0x20, count: count)) }
    }

    /// Parts per billion as a percentage with four decimals, from integers only.
    public static func percent(_ ppb: UInt64) -> String {
        let units = (ppb + 500) / 1000  // in 10^-4 percent, rounded half up
        let fraction = String(units % 10_000)
        return "\(units / 10_000)." + String(repeating: "0", count: 4 - fraction.count) + fraction + "%"
    }

    private static func render(_ node: Lineage, prefix: String, label: String, weights: [String: UInt64], into out: inout [UInt8]) {
        out.append(contentsOf: "\(prefix)\(label) \(node.model)@\(node.version)  commit \(node.commit.prefix(7))  developer \(node.developer)  plugin \(node.plugin)\n".utf8)
        let childPrefix = prefix.replacingOccurrences(of: "├─ ", with: "│  ").replacingOccurrences(of: "└─ ", with: "   ")
        var items: [(String, DatasetLineage?)] = []
        if let weights = node.weights {
            items.append(("weights  \(weights.name)  sha256 \(weights.sha256)  \(formatByteCount(weights.size))", nil))
        }
        for log in node.trainingLogs {
            items.append(("training log  \(log.path)  sha256 \(log.sha256)  \(formatByteCount(log.size))", nil))
        }
        for dataset in node.datasets {
            items.append(("dataset \(dataset.dataset)@\(dataset.commit.prefix(7))  manifest sha256 \(dataset.manifestSHA256)  \(dataset.files) file\(dataset.files == 1 ? "" : "s"), \(formatByteCount(dataset.bytes))", dataset))
        }
        let hasBase = node.base != nil
        for (index, item) in items.enumerated() {
            let last = index == items.count - 1 && !hasBase
            out.append(contentsOf: (childPrefix + (last ? "└─ " : "├─ ") + item.0 + "\n").utf8)
            guard let dataset = item.1 else { continue }
            let inner = Array((childPrefix + (last ? "   " : "│  ")).utf8)
            let names = dataset.contributors.map { displayWidth($0.name) + displayWidth($0.email) + 3 }
            let nameWidth = names.max() ?? 0
            let idWidth = dataset.contributors.map { displayWidth($0.id) }.max() ?? 0
            for (row, contributor) in dataset.contributors.enumerated() {
                out.append(contentsOf: inner)
                out.append(contentsOf: (row == dataset.contributors.count - 1 ? "└─ " : "├─ ").utf8)
                out.append(contentsOf: contributor.name.utf8)
                out.append(contentsOf: [0x20, 0x3C])
                out.append(contentsOf: contributor.email.utf8)
                out.append(0x3E)
                spaces(nameWidth - names[row] + 2, &out)
                out.append(contentsOf: contributor.id.utf8)
                spaces(idWidth - displayWidth(contributor.id) + 2, &out)
                out.append(contentsOf: "\(contributor.commits) commit\(contributor.commits == 1 ? "" : "s")".utf8)
                if let ppb = weights[contributor.id] { out.append(contentsOf: "  weight \(percent(ppb))".utf8) }
                out.append(0x0A)
            }
        }
        if let base = node.base {
            render(base, prefix: childPrefix + "└─ ", label: "base", weights: weights, into: &out)
        }
    }

    /// Graphviz: models, dataset commits, training logs and contributors as nodes.
    public static func dot(_ lineage: Lineage) -> String {
        let weights = Dictionary(uniqueKeysWithValues: (lineage.attribution?.weights ?? []).map { ($0.id, $0.ppb) })
        var lines = ["digraph provenance {", "  rankdir=LR;", "  node [fontname=\"Helvetica\"];"]
        var declared = Set<String>()
        func node(_ id: String, _ attributes: String) {
            if declared.insert(id).inserted { lines.append("  \(quote(id)) [\(attributes)];") }
        }
        for model in lineage.chain {
            let modelID = "model:\(model.model)@\(model.version)"
            node(modelID, "shape=box, style=bold, label=\(quote("\(model.model)@\(model.version)\n\(model.developer)\nplugin \(model.plugin)"))")
            if let base = model.base {
                lines.append("  \(quote(modelID)) -> \(quote("model:\(base.model)@\(base.version)")) [label=\"base\"];")
            }
            for log in model.trainingLogs {
                let logID = "log:\(log.sha256)"
                node(logID, "shape=note, label=\(quote("\(log.path)\nsha256 \(log.sha256.prefix(12))…"))")
                lines.append("  \(quote(modelID)) -> \(quote(logID)) [label=\"training log\"];")
            }
            for dataset in model.datasets {
                let datasetID = "dataset:\(dataset.dataset)@\(dataset.commit)"
                node(datasetID, "shape=folder, label=\(quote("\(dataset.dataset)@\(dataset.commit.prefix(7))\nmanifest \(dataset.manifestSHA256.prefix(12))…"))")
                lines.append("  \(quote(modelID)) -> \(quote(datasetID));")
                let edgeStart = "  \(quote(datasetID)) -> \"contributor:"
                for contributor in dataset.contributors {
                    // Contributor ids are emails (no quote, backslash or newline); the edge is
                    // the hot path of a large lineage, so it is built without quote().
                    if declared.insert("contributor:" + contributor.id).inserted {
                        let weight = weights[contributor.id].map { "\n" + percent($0) } ?? ""
                        lines.append("  \(quote("contributor:" + contributor.id)) [shape=ellipse, label=\(quote(contributor.contributor + weight))];")
                    }
                    lines.append(edgeStart + (needsQuoting(contributor.id) ? String(quote(contributor.id).dropFirst().dropLast()) : contributor.id)
                                 + "\" [label=\"\(contributor.commits)\"];")
                }
            }
        }
        lines.append("}")
        return lines.joined(separator: "\n")
    }

    /// True when `text` holds a quote, backslash or newline that DOT needs escaped.
    static func needsQuoting(_ text: String) -> Bool {
        let special: (UInt8) -> Bool = { $0 == 0x22 || $0 == 0x5C || $0 == 0x0A }
        return text.utf8.withContiguousStorageIfAvailable { $0.contains(where: special) } ?? text.utf8.contains(where: special)
    }

    /// A DOT double-quoted string: quotes and backslashes escaped, newlines as `\n`.
    static func quote(_ text: String) -> String {
        if !needsQuoting(text) {
            return "\"" + text + "\""
        }
        var escaped = ""
        for character in text {
            switch character {
            case "\"": escaped += "\\\""
            case "\\": escaped += "\\\\"
            case "\n": escaped += "\\n"
            default: escaped.append(character)
            }
        }
        return "\"\(escaped)\""
    }
}

/// A byte count for people: `232 B`, `1.5 MiB`.
public func formatByteCount(_ count: UInt64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var value = Double(count)
    var unit = 0
    while value >= 1024, unit < units.count - 1 {
        value /= 1024
        unit += 1
    }
    return unit == 0 ? "\(count) B" : String(format: "%.1f %@", value, units[unit])
}

extension LineageRenderer {
    /// The lineage as compact JSON with sorted keys, written directly: a trace of thousands of
    /// dataset commits is megabytes, which `JSONEncoder` builds slowly as a tree first.
    public static func json(_ lineage: Lineage) -> Data {
        var out: [UInt8] = []
        let entries = lineage.chain.reduce(0) { $0 + $1.datasets.reduce(0) { $0 + $1.contributors.count } }
        out.reserveCapacity(4096 + entries * 120)
        write(lineage, into: &out)
        out.append(0x0A)
        return Data(out)
    }

    private static func write(_ node: Lineage, into out: inout [UInt8]) {
        var object = JSONObjectWriter(&out)
        if let attribution = node.attribution {
            object.key("attribution", &out)
            var a = JSONObjectWriter(&out)
            a.key("base", &out); if let base = attribution.base { JSONObjectWriter.string(base, &out) } else { JSONObjectWriter.raw("null", &out) }
            a.key("base_share_ppb", &out); JSONObjectWriter.raw(String(attribution.baseSharePPB), &out)
            a.key("model", &out); JSONObjectWriter.string(attribution.model, &out)
            a.key("plugin", &out); JSONObjectWriter.string(attribution.plugin, &out)
            a.key("plugin_version", &out); JSONObjectWriter.string(attribution.pluginVersion, &out)
            a.key("version", &out); JSONObjectWriter.string(attribution.version, &out)
            a.key("weights", &out)
            JSONObjectWriter.array(attribution.weights, &out) { weight, out in
                var w = JSONObjectWriter(&out)
                w.key("contributor", &out); JSONObjectWriter.string(weight.contributor, &out)
                w.key("id", &out); JSONObjectWriter.string(weight.id, &out)
                w.key("ppb", &out); JSONObjectWriter.raw(String(weight.ppb), &out)
                w.key("raw", &out); JSONObjectWriter.raw(weight.raw.map { $0 == $0.rounded() && abs($0) < 1e15 ? String(Int64($0)) : String($0) } ?? "null", &out)
                w.close(&out)
            }
            a.close(&out)
        }
        object.key("base", &out)
        if let base = node.base { write(base, into: &out) } else { JSONObjectWriter.raw("null", &out) }
        object.key("commit", &out); JSONObjectWriter.string(node.commit, &out)
        object.key("datasets", &out)
        JSONObjectWriter.array(node.datasets, &out) { dataset, out in
            var d = JSONObjectWriter(&out)
            d.key("bytes", &out); JSONObjectWriter.raw(String(dataset.bytes), &out)
            d.key("commit", &out); JSONObjectWriter.string(dataset.commit, &out)
            d.key("contributors", &out)
            JSONObjectWriter.array(dataset.contributors, &out) { contributor, out in
                var c = JSONObjectWriter(&out)
                c.key("commits", &out); JSONObjectWriter.raw(String(contributor.commits), &out)
                c.key("contributor", &out); JSONObjectWriter.identity(contributor.name, contributor.email, &out)
                c.key("id", &out); JSONObjectWriter.string(contributor.id, &out)
                c.close(&out)
            }
            d.key("dataset", &out); JSONObjectWriter.string(dataset.dataset, &out)
            d.key("files", &out); JSONObjectWriter.raw(String(dataset.files), &out)
            d.key("manifest_sha256", &out); JSONObjectWriter.string(dataset.manifestSHA256, &out)
            d.close(&out)
        }
        object.key("developer", &out); JSONObjectWriter.string(node.developer, &out)
        object.key("developer_id", &out); JSONObjectWriter.string(node.developerID, &out)
        object.key("model", &out); JSONObjectWriter.string(node.model, &out)
        object.key("plugin", &out); JSONObjectWriter.string(node.plugin, &out)
        object.key("training_logs", &out)
        JSONObjectWriter.array(node.trainingLogs, &out) { log, out in
            var l = JSONObjectWriter(&out)
            l.key("path", &out); JSONObjectWriter.string(log.path, &out)
            l.key("sha256", &out); JSONObjectWriter.string(log.sha256, &out)
            l.key("size", &out); JSONObjectWriter.raw(String(log.size), &out)
            l.close(&out)
        }
        object.key("version", &out); JSONObjectWriter.string(node.version, &out)
        object.key("weights", &out)
        if let weights = node.weights {
            var w = JSONObjectWriter(&out)
            w.key("name", &out); JSONObjectWriter.string(weights.name, &out)
            w.key("sha256", &out); JSONObjectWriter.string(weights.sha256, &out)
            w.key("size", &out); JSONObjectWriter.raw(String(weights.size), &out)
            w.close(&out)
        } else {
            JSONObjectWriter.raw("null", &out)
        }
        object.close(&out)
    }
}

/// Writes one JSON object member by member; callers give keys in sorted order.
struct JSONObjectWriter {
    private var first = true

    init(_ out: inout [UInt8]) {
        out.append(UInt8(ascii: "{"))
    }

    mutating func key(_ name: String, _ out: inout [UInt8]) {
        if !first { out.append(UInt8(ascii: ",")) }
        first = false
        Self.string(name, &out)
        out.append(UInt8(ascii: ":"))
    }

    func close(_ out: inout [UInt8]) { out.append(UInt8(ascii: "}")) }

    static func string(_ text: String, _ out: inout [UInt8]) { CanonicalValue.writeString(text, into: &out) }
    static func raw(_ text: String, _ out: inout [UInt8]) { out.append(contentsOf: text.utf8) }

    /// `"Name <email>"` without building the string first.
    static func identity(_ name: String, _ email: String, _ out: inout [UInt8]) {
        var quoted: [UInt8] = []
        CanonicalValue.writeString(name, into: &quoted)
        out.append(contentsOf: quoted.dropLast())
        out.append(contentsOf: [0x20, 0x3C])
        quoted.removeAll(keepingCapacity: true)
        CanonicalValue.writeString(email, into: &quoted)
        out.append(contentsOf: quoted.dropFirst().dropLast())
        out.append(contentsOf: [0x3E, 0x22])
    }

    static func array<T>(_ items: [T], _ out: inout [UInt8], _ element: (T, inout [UInt8]) -> Void) {
        out.append(UInt8(ascii: "["))
        for (index, item) in items.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            element(item, &out)
        }
        out.append(UInt8(ascii: "]"))
    }
}
