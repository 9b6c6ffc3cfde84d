public import ProvenanceCore

/// Each byte (or line) of every input dataset commit goes to the contributor who authored it,
/// as `git blame` assigns lines; a binary file goes whole to the last author who changed it.
///
/// Per-file results are cached in the registry index by commit, and a commit whose single
/// parent is cached reuses the parent's results for every file it did not change.
public struct DataVolume: AttributionStrategy {
    public static let name = "data-volume"
    public static let version = "1"
    public static let options = ["unit": "bytes (default) or lines"]

    public init() {}

    public func weights(for input: AttributionInput) async throws -> [ContributorWeight] {
        let unit = input.options["unit"] ?? "bytes"
        guard unit == "bytes" || unit == "lines" else {
            throw AttributionError(plugin: Self.name, message: "unit must be bytes or lines, not '\(unit)'")
        }
        var totals: [String: UInt64] = [:]
        for dataset in input.datasets {
            var authorship = try DatasetAuthorship(repository: dataset.repository, commit: dataset.commit)
            for file in try authorship.files(dataset: dataset.dataset, cache: input.authorshipCache) {
                for (contributor, amount) in file.amounts {
                    totals[contributor, default: 0] += unit == "lines" ? amount.lines : amount.bytes
                }
            }
        }
        return input.contributors.map { ContributorWeight(contributor: $0.id, weight: Double(totals[$0.id] ?? 0)) }
    }
}
