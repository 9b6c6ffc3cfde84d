import ArgumentParser
import Foundation
import ProvenanceCore

extension Provenance {
    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Contribute files to a dataset, or import an existing git history into it.",
            discussion: """
                provenance add DATASET PATH... --contributor "Name <email>" [-m MESSAGE] [--to DIR]
                  commits the files (folders recursively) as one commit authored by the contributor on top \
                of the dataset's head, creating the dataset on first use. Relative paths keep their path \
                in the dataset; an absolute path needs --to and keeps only its last component.

                provenance add DATASET --from URL_OR_PATH [--rev REV] [--force]
                  fetches a commit with its history and registers it as the dataset's head; every author in \
                that history becomes a contributor. The commit must descend from the current head unless --force.
                """)

        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var output: OutputOptions
        @OptionGroup var progress: ProgressOptions

        @Argument(help: "The dataset: 1-64 characters a-z 0-9 . _ -.")
        var dataset: String

        @Argument(help: "Files or folders to add, relative to the current directory.")
        var paths: [String] = []

        @Option(help: ArgumentHelp("Who contributed the files, as \"Name <email>\".", valueName: "identity"))
        var contributor: String?

        @Option(name: .shortAndLong, help: "The commit message.")
        var message: String?

        @Option(name: .customLong("to"), help: ArgumentHelp("Put the files under this folder of the dataset.", valueName: "DIR"))
        var destination: String?

        @Option(name: .customLong("from"), help: ArgumentHelp("Import a commit and its history from this git repository.", valueName: "URL_OR_PATH"))
        var source: String?

        @Option(help: ArgumentHelp("With --from: the branch, tag or commit to import (default: its HEAD).", valueName: "REV"))
        var rev: String?

        @Flag(help: "With --from: replace the head even if the commit does not descend from it.")
        var force = false

        func validate() throws {
            try Names.validateDatasetName(dataset)
            if let source {
                guard paths.isEmpty else { throw ValidationError("give either PATH... or --from \(source), not both") }
                guard contributor == nil, message == nil, destination == nil else {
                    throw ValidationError("--contributor, -m and --to apply to PATH..., not to --from (the imported commits keep their authors)")
                }
            } else {
                guard !paths.isEmpty else { throw ValidationError("give the files to add (PATH...) or --from URL_OR_PATH") }
                guard contributor != nil else { throw ValidationError("--contributor \"Name <email>\" is required to add files") }
                guard rev == nil, !force else { throw ValidationError("--rev and --force apply only to --from") }
            }
        }

        func run() throws {
            let store = try storeOptions.open()
            if let source {
                let result = try progress.run {
                    try store.importCommit(dataset: dataset, source: source, revision: rev, force: force,
                                           workingDirectory: storeOptions.workingDirectory)
                }
                if output.json { return try Output.json(result) }
                if !result.changed {
                    print("\(dataset) is already at \(result.commit)")
                    return
                }
                FileHandle.standardError.write(Data("Imported \(result.newCommits) new commit(s) by \(result.contributors.count) contributor(s) into \(dataset)\(result.forced ? " (head replaced)" : "")\n".utf8))
                print(result.commit)
            } else {
                let identity = try Identity(parsing: contributor ?? "")
                let result = try progress.run {
                    try store.add(dataset: dataset, paths: paths, workingDirectory: storeOptions.workingDirectory,
                                  destination: destination, contributor: identity, message: message)
                }
                if output.json { return try Output.json(result) }
                print(result.commit)
            }
        }
    }
}
