public import Foundation

/// The `provenance.json` committed with every model version: exactly what the version was
/// made from. The git commit and tag make it tamper-evident; the SHA-256 digests make the
/// references collision-resistant.
public struct ModelManifest: Codable, Sendable, Equatable {
    public static let format = "provenance-model/1"
    public static let fileName = "provenance.json"
    public static let trainingLogFolder = "training-logs"

    public struct Developer: Codable, Sendable, Equatable {
        public var name: String
        public var email: String
        public var id: String

        public var identity: String { "\(name) <\(email)>" }
    }

    public struct DatasetInput: Codable, Sendable, Equatable {
        public var dataset: String
        public var commit: String
        public var manifestSHA256: String
        public var files: Int
        public var bytes: UInt64

        enum CodingKeys: String, CodingKey {
            case dataset, commit, files, bytes
            case manifestSHA256 = "manifest_sha256"
        }
    }

    public struct TrainingLog: Codable, Sendable, Equatable {
        /// The path in the model repository's tree: `training-logs/<file name>`.
        public var path: String
        public var sha256: String
        public var size: UInt64
    }

    public struct Base: Codable, Sendable, Equatable {
        public var model: String
        public var version: String
        public var commit: String

        public var reference: ModelVersionReference { ModelVersionReference(model: model, version: version) }
    }

    public struct Weights: Codable, Sendable, Equatable {
        /// The weights file's name (weights are hashed, never stored).
        public var name: String
        public var sha256: String
        public var size: UInt64
    }

    public var format: String
    public var model: String
    public var version: String
    public var developer: Developer
    public var datasets: [DatasetInput]
    public var trainingLogs: [TrainingLog]
    public var base: Base?
    public var weights: Weights?
    /// The attribution plugin chosen at registration.
    public var plugin: String
    /// Parts per billion of this version's attribution that flow to the base version's own
    /// attribution (recursively); nil without a base.
    public var baseSharePPB: UInt64?

    enum CodingKeys: String, CodingKey {
        case format, model, version, developer, datasets, base, weights, plugin
        case trainingLogs = "training_logs"
        case baseSharePPB = "base_share_ppb"
    }

    public var reference: ModelVersionReference { ModelVersionReference(model: model, version: version) }

    /// Sorted keys, indented: deterministic bytes that people can read with `git show`.
    public func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return try encoder.encode(self) + Data("\n".utf8)
    }
}
