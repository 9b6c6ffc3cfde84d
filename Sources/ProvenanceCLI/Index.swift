import AttributionPlugins
import ArgumentParser
import Foundation
import ProvenanceCore
import SpanMatch

extension Provenance {
    struct Index: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Span indexes: the suffix arrays span-match searches a call's output in.",
            subcommands: [Build.self])

        struct Build: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Build the span index of a model version's training text (and of its base versions').",
                discussion: """
                    The index covers every text file of every dataset commit the version was trained on, with \
                    git blame's author of every line; it is stored under indexes/ named by those commits, so \
                    versions trained on the same commits share it. span-match builds a missing index on first \
                    use; this builds it ahead of time, or with --force again.
                    """)

            @OptionGroup var storeOptions: StoreOptions
            @OptionGroup var output: OutputOptions
            @OptionGroup var progress: ProgressOptions

            @Argument(help: "MODEL@VERSION.")
            var reference: String

            @Flag(help: "Rebuild even when the index exists.")
            var force = false

            func run() throws {
                let store = try storeOptions.open()
                let version = try Names.parseModelVersion(reference)
                let reports = try progress.run { try SpanMatch.buildIndexes(for: version, store: store, force: force) }
                if output.json { return try Output.json(reports) }
                if reports.isEmpty { return print("\(version) and its base versions have no datasets: nothing to index") }
                for report in reports {
                    let ratio = report.textBytes > 0 ? String(format: "%.2f", Double(report.diskBytes) / Double(report.textBytes)) : "-"
                    print("\(report.version): \(report.files) text file(s), \(report.textBytes) bytes from \(report.sources.count) dataset commit(s); index \(report.key.prefix(12)) holds \(report.diskBytes) bytes (\(ratio) per text byte), \(String(format: "%.2f", report.seconds)) s")
                }
            }
        }
    }
}
