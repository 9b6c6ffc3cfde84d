public import ProvenanceCore

/// Every contributor of every input dataset commit counts the same.
public struct EqualShare: AttributionStrategy {
    public static let name = "equal-share"
    public static let version = "1"

    public init() {}

    public func weights(for input: AttributionInput) async throws -> [ContributorWeight] {
        input.contributors.map { ContributorWeight(contributor: $0.id, weight: 1) }
    }
}
