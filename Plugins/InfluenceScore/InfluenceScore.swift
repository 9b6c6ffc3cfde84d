public import ProvenanceCore
import Foundation
import GitKit

/// Per-sample influence scores from the model version's training logs, each sample paid to
/// the contributor who authored that line of the dataset commit; only positive scores earn.
///
/// A record is a JSON Lines object with a `score`:
/// `{"dataset": "web", "path": "a.txt", "line": 3, "score": 0.25}` (`line` is 1-based; add
/// `"commit"` when the model uses two commits of one dataset). Other lines of a log (plain
/// text, JSON without `score`) are left alone, so scores can share a log with loss curves.
public struct InfluenceScore: AttributionStrategy {
    public static let name = "influence-score"
    public static let version = "1"

    public init() {}

    public func weights(for input: AttributionInput) async throws -> [ContributorWeight] {
        let modelRepository = try Repository.open(at: input.modelRepository)
        var totals: [String: Double] = [:]
        var authorships: [String: DatasetAuthorship] = [:]
        var lineAuthors: [String: [String]] = [:]
        var records = 0
        for log in input.trainingLogs {
            guard let blob = ObjectID(hex: log.blob) else { continue }
            let text = String(decoding: try modelRepository.readBlob(blob), as: UTF8.self)
            for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                let trimmed = line.trimmingCharacters(in: .whitespaces)
                guard trimmed.hasPrefix("{"),
                      let object = try? JSONSerialization.jsonObject(with: Data(trimmed.utf8)) as? [String: Any],
                      object["score"] != nil
                else { continue }
                let here = "\(log.path) line \(index + 1)"
                records += 1
                guard let score = (object["score"] as? NSNumber)?.doubleValue, score.isFinite else {
                    throw AttributionError(plugin: Self.name, message: "\(here): score is not a finite number")
                }
                guard let datasetName = object["dataset"] as? String, let path = object["path"] as? String,
                      let sampleLine = (object["line"] as? NSNumber)?.intValue
                else {
                    throw AttributionError(plugin: Self.name, message: "\(here): a record needs \"dataset\" (string), \"path\" (string), \"line\" (number) and \"score\"")
                }
                var candidates = input.datasets.filter { $0.dataset == datasetName }
                if let commit = object["commit"] as? String { candidates = candidates.filter { $0.commit.hasPrefix(commit.lowercased()) } }
                guard candidates.count == 1, let dataset = candidates.first else {
                    let reason = candidates.isEmpty ? "names dataset '\(datasetName)', which this model version was not trained on"
                                                    : "names dataset '\(datasetName)', used at several commits; add \"commit\""
                    throw AttributionError(plugin: Self.name, message: "\(here) \(reason)")
                }
                let key = dataset.commit + "\0" + path
                if lineAuthors[key] == nil {
                    if authorships[dataset.commit] == nil {
                        authorships[dataset.commit] = try DatasetAuthorship(repository: dataset.repository, commit: dataset.commit)
                    }
                    do { lineAuthors[key] = try authorships[dataset.commit]!.lineAuthors(path: path) } catch let error as ProvenanceError where error.code == .notFound {
                        throw AttributionError(plugin: Self.name, message: "\(here): dataset '\(datasetName)' has no file '\(path)' at \(dataset.commit.prefix(7))")
                    }
                }
                let authors = lineAuthors[key]!
                guard sampleLine >= 1, sampleLine <= authors.count else {
                    throw AttributionError(plugin: Self.name, message: "\(here): '\(path)' in dataset '\(datasetName)' has \(authors.count) lines, so there is no line \(sampleLine)")
                }
                if score > 0 { totals[authors[sampleLine - 1], default: 0] += score }
            }
        }
        guard records > 0 else {
            throw AttributionError(plugin: Self.name, message: "the training logs of \(input.model)@\(input.version) hold no influence records ({\"dataset\", \"path\", \"line\", \"score\"})")
        }
        return input.contributors.map { ContributorWeight(contributor: $0.id, weight: totals[$0.id] ?? 0) }
    }
}
