public import Foundation

/// Turns a model version (and optionally one call) into contributor weights.
///
/// A strategy returns raw weights in any unit it likes (bytes, scores, counts); the core
/// validates them and normalises them to integer parts per billion (`PartsPerBillion`), which
/// is what settlement uses and invoices record.
public protocol AttributionStrategy: Sendable {
    /// The name models select the strategy by, e.g. `equal-share`.
    static var name: String { get }
    /// Recorded with every attribution, so a result can be recomputed with the same code.
    static var version: String { get }
    /// Options the strategy accepts (`--unit` is `unit`); anything else is refused.
    static var options: [String: String] { get }

    func weights(for input: AttributionInput) async throws -> [ContributorWeight]
    /// Refuses option values the strategy cannot use (an `AttributionError`), before a model
    /// is set to use them.
    static func validate(options: [String: String]) throws
}

/// A strategy whose weights depend on the call: given the call's output text, it returns the
/// spans that earn (empty: the call pays by the version's weights, `weights(for:)`).
public protocol CallAttributionStrategy: AttributionStrategy {
    func spans(for input: AttributionInput, call: AttributionInput.Call) async throws -> [AttributedSpan]
}

extension AttributionStrategy {
    public static func validate(options: [String: String]) throws {}
    public static var version: String { "1" }
    public static var options: [String: String] { [:] }
}

/// A contributor's raw weight, as a strategy computed it.
public struct ContributorWeight: Sendable, Equatable, Codable {
    /// The contributor id (lowercased email after mailmap).
    public var contributor: String
    public var weight: Double

    public init(contributor: String, weight: Double) {
        self.contributor = contributor
        self.weight = weight
    }
}

/// What a strategy sees: the model version, its dataset commits (with their repositories, to
/// read content through GitKit), its training logs, and optionally one call.
public struct AttributionInput: Sendable {
    public struct DatasetCommit: Sendable, Equatable {
        public var dataset: String
        public var commit: String
        public var manifestSHA256: String
        /// The dataset's bare repository.
        public var repository: URL
        /// Everyone with commits in the history reachable from `commit`, after mailmap.
        public var contributors: [ContributorSummary]
    }

    public struct TrainingLog: Sendable, Equatable {
        /// The path in the model repository's tree, e.g. `training-logs/run.jsonl`.
        public var path: String
        public var sha256: String
        public var size: UInt64
        /// The log's blob in the model repository.
        public var blob: String
    }

    /// One metered call, when attribution depends on it.
    public struct Call: Sendable, Equatable, Codable {
        public var inputTokens: UInt64
        public var outputTokens: UInt64
        public var outputText: String?

        public init(inputTokens: UInt64, outputTokens: UInt64, outputText: String?) {
            self.inputTokens = inputTokens
            self.outputTokens = outputTokens
            self.outputText = outputText
        }

        enum CodingKeys: String, CodingKey {
            case inputTokens = "input_tokens"
            case outputTokens = "output_tokens"
            case outputText = "output_text"
        }
    }

    public var model: String
    public var version: String
    public var modelCommit: String
    public var modelRepository: URL
    public var datasets: [DatasetCommit]
    public var trainingLogs: [TrainingLog]
    public var call: Call?
    /// Strategy options, e.g. `["unit": "lines"]` for data-volume.
    public var options: [String: String]
    /// The index's cache of per-file authorship, so repeated attributions are cheap.
    public var authorshipCache: (any AuthorshipCache)?
    /// The store's folder of span indexes (`indexes/`), for plugins that search the text.
    public var indexes: URL?

    /// Every contributor of every dataset commit, one entry per id.
    public var contributors: [ContributorSummary] {
        var seen = Set<String>()
        var result: [ContributorSummary] = []
        for dataset in datasets {
            for contributor in dataset.contributors where seen.insert(contributor.id).inserted {
                result.append(contributor)
            }
        }
        return result
    }
}

/// A strategy refused its input or failed; the message names the strategy and the cause.
public struct AttributionError: Error, CustomStringConvertible, Sendable {
    public var plugin: String
    public var message: String

    public init(plugin: String, message: String) {
        self.plugin = plugin
        self.message = message
    }

    public var description: String { "attribution plugin '\(plugin)': \(message)" }
}
