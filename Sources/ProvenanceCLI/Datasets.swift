import ArgumentParser
import ProvenanceCore
import RegistryAPI

extension Provenance {
    struct Datasets: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the datasets with their head, commits, contributors and size.")

        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var remote: RegistryOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            let summaries: [DatasetSummary]
            if let client = try remote.client(storeOptions) {
                let answer = try await client.call("the datasets") { try await $0.listDatasets().ok.body.json }
                summaries = try RegistryClient.domain(answer.datasets, as: [DatasetSummary].self, "the datasets")
            } else {
                summaries = try storeOptions.open().datasetSummaries()
            }
            if output.json { return try Output.json(summaries) }
            if summaries.isEmpty {
                print("No datasets yet: `provenance add DATASET PATH... --contributor \"Name <email>\"` creates one.")
                return
            }
            Output.table(["DATASET", "HEAD", "COMMITS", "CONTRIBUTORS", "FILES", "SIZE"], summaries.map {
                [$0.name, String(($0.head ?? "-").prefix(7)), "\($0.commits)", "\($0.contributors)", "\($0.files)", formatByteCount($0.bytes)]
            }, rightAligned: [2, 3, 4, 5])
        }
    }

    struct Contributors: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List who contributed to a dataset's history (mailmap applied), most commits first.")

        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var remote: RegistryOptions
        @OptionGroup var output: OutputOptions

        @Argument(help: "DATASET or DATASET@REV (a commit id, branch or tag; default the head).")
        var reference: String

        struct Entry: Codable {
            var contributor: String
            var id: String
            var commits: Int
        }

        func run() async throws {
            let entries: [Entry]
            if let client = try remote.client(storeOptions) {
                let parsed = RevisionReference(parsing: reference)
                try Names.validateDatasetName(parsed.name)
                let answer = try await client.call("the contributors") {
                    try await $0.datasetContributors(path: .init(dataset: parsed.name), query: .init(rev: parsed.revision)).ok.body.json
                }
                entries = try RegistryClient.domain(answer.contributors, as: [Entry].self, "the contributors")
            } else {
                let contributors = try storeOptions.open().contributors(of: RevisionReference(parsing: reference))
                entries = contributors.map { Entry(contributor: $0.identity, id: $0.id, commits: $0.commits) }
            }
            if output.json { return try Output.json(entries) }
            Output.table(["CONTRIBUTOR", "ID", "COMMITS"], entries.map { [$0.contributor, $0.id, "\($0.commits)"] }, rightAligned: [2])
        }
    }

    struct Log: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show a dataset's contribution history, newest first, like `git log --oneline` with authors.")

        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var remote: RegistryOptions
        @OptionGroup var output: OutputOptions

        @Argument(help: "DATASET or DATASET@REV.")
        var reference: String

        @Option(name: [.customShort("n"), .long], help: "Show at most this many commits.")
        var limit: Int?

        func validate() throws {
            if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
        }

        func run() async throws {
            let entries: [LogEntry]
            if let client = try remote.client(storeOptions) {
                let parsed = RevisionReference(parsing: reference)
                try Names.validateDatasetName(parsed.name)
                let answer = try await client.call("the log") {
                    try await $0.datasetLog(path: .init(dataset: parsed.name), query: .init(rev: parsed.revision, limit: limit)).ok.body.json
                }
                entries = try RegistryClient.domain(answer.entries, as: [LogEntry].self, "the log")
            } else {
                entries = try storeOptions.open().log(of: RevisionReference(parsing: reference), limit: limit)
            }
            if output.json { return try Output.json(entries) }
            for entry in entries {
                print("\(entry.commit.prefix(7)) \(entry.author) \(entry.summary)")
            }
        }
    }

    struct ManifestCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "manifest",
            abstract: "Print the canonical SHA-256 manifest of a registered dataset commit.")

        @OptionGroup var storeOptions: StoreOptions

        @Argument(help: "DATASET or DATASET@REV.")
        var reference: String

        func run() throws {
            let (_, data) = try storeOptions.open().manifest(of: RevisionReference(parsing: reference))
            print(String(decoding: data, as: UTF8.self))
        }
    }
}
