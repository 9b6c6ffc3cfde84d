import Foundation

/// An in-toto Statement v1 carrying an SLSA Provenance v1 predicate: how supply-chain tools
/// read a model version's lineage.
///
/// - subject: the weights file by SHA-256, or the model commit when no weights were given;
/// - resolvedDependencies: each dataset commit (git commit id) and its SHA-256 manifest, and
///   the base model version's commit;
/// - byproducts: the training logs by SHA-256;
/// - builder: the developer.
public struct Attestation: Codable, Sendable, Equatable {
    public static let statementType = "https://in-toto.io/Statement/v1"
    public static let predicateType = "https://slsa.dev/provenance/v1"
    public static let buildType = "urn:provenance:buildtype:model-registration:v1"

    public struct ResourceDescriptor: Codable, Sendable, Equatable {
        public var name: String?
        public var uri: String?
        public var digest: [String: String]
        public var annotations: [String: String]?
    }

    public struct Predicate: Codable, Sendable, Equatable {
        public struct BuildDefinition: Codable, Sendable, Equatable {
            public var buildType: String
            public var externalParameters: [String: String]
            public var resolvedDependencies: [ResourceDescriptor]
        }

        public struct RunDetails: Codable, Sendable, Equatable {
            public struct Builder: Codable, Sendable, Equatable { public var id: String }
            public struct Metadata: Codable, Sendable, Equatable { public var invocationId: String }
            public var builder: Builder
            public var metadata: Metadata
            public var byproducts: [ResourceDescriptor]
        }

        public var buildDefinition: BuildDefinition
        public var runDetails: RunDetails
    }

    public var type: String
    public var subject: [ResourceDescriptor]
    public var predicateType: String
    public var predicate: Predicate

    enum CodingKeys: String, CodingKey {
        case type = "_type"
        case subject, predicateType, predicate
    }
}

extension Store {
    /// The in-toto/SLSA attestation of a registered model version.
    public func attestation(of reference: ModelVersionReference) throws -> Attestation {
        let (record, manifest) = try modelVersion(reference)
        let subject: Attestation.ResourceDescriptor
        if let weights = manifest.weights {
            subject = .init(name: weights.name, uri: nil, digest: ["sha256": weights.sha256],
                            annotations: ["model": reference.description, "size": "\(weights.size)"])
        } else {
            subject = .init(name: reference.description, uri: nil, digest: ["gitCommit": record.commit], annotations: nil)
        }
        var dependencies: [Attestation.ResourceDescriptor] = []
        for input in manifest.datasets {
            let uri = "provenance:dataset/\(input.dataset)@\(input.commit)"
            dependencies.append(.init(name: input.dataset, uri: uri, digest: ["gitCommit": input.commit],
                                      annotations: ["manifest_sha256": input.manifestSHA256]))
            dependencies.append(.init(name: "\(input.dataset) manifest", uri: uri + "#manifest",
                                      digest: ["sha256": input.manifestSHA256],
                                      annotations: ["files": "\(input.files)", "bytes": "\(input.bytes)"]))
        }
        if let base = manifest.base {
            dependencies.append(.init(name: base.reference.description, uri: "provenance:model/\(base.model)@\(base.version)",
                                      digest: ["gitCommit": base.commit], annotations: ["role": "base-model"]))
        }
        let byproducts = manifest.trainingLogs.map {
            Attestation.ResourceDescriptor(name: $0.path, uri: nil, digest: ["sha256": $0.sha256], annotations: ["size": "\($0.size)"])
        }
        var parameters = ["model": manifest.model, "version": manifest.version, "plugin": manifest.plugin]
        if let base = manifest.base { parameters["base"] = base.reference.description }
        return Attestation(
            type: Attestation.statementType, subject: [subject], predicateType: Attestation.predicateType,
            predicate: .init(
                buildDefinition: .init(buildType: Attestation.buildType, externalParameters: parameters,
                                       resolvedDependencies: dependencies),
                runDetails: .init(builder: .init(id: "mailto:\(manifest.developer.email)"),
                                  metadata: .init(invocationId: "provenance:model/\(reference)@\(record.commit)"),
                                  byproducts: byproducts)))
    }
}
