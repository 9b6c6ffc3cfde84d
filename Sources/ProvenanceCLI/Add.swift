import ArgumentParser
import Foundation
import ProvenanceCore
import RegistryAPI

extension Provenance {
    struct Add: AsyncParsableCommand {
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

                With --registry URL (or $PROVENANCE_REGISTRY) and a contributor token ($PROVENANCE_TOKEN or \
                --token-file FILE), the files are streamed to the registry, which writes the commit: the \
                contributor must be the token's subject, and the SHA-256 of every file computed here is \
                checked against the registry's manifest. --from asks the registry to fetch a network remote.
                """)

        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var registry: RegistryOptions
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

        func run() async throws {
            if let client = try registry.client(storeOptions) {
                return try await runRemote(client)
            }
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

        /// Uploads the files one per request (each streamed from disk under the SHA-256 computed
        /// here, which the registry checks), then asks the registry to commit them, and checks
        /// the manifest entries it answers against those SHA-256s.
        func runRemote(_ client: RegistryClient) async throws {
            guard client.token != nil else {
                throw ValidationError("adding to a registry needs a contributor token: set $PROVENANCE_TOKEN or give --token-file FILE")
            }
            let dataset = self.dataset
            if let source {
                let answer = try await client.call("the import") { client in
                    switch try await client.importDatasetCommit(path: .init(dataset: dataset), body: .json(.init(source: source, rev: rev, force: force))) {
                    case .created(let created): try created.body.json
                    case .ok(let unchanged): try unchanged.body.json
                    default: throw AuditError("the registry answered the import with a status the API does not document for it")
                    }
                }
                let result = try RegistryClient.domain(answer, as: ImportResult.self, "the import")
                if output.json { return try Output.json(result) }
                if !result.changed {
                    print("\(dataset) is already at \(result.commit)")
                    return
                }
                FileHandle.standardError.write(Data("Imported \(result.newCommits) new commit(s) by \(result.contributors.count) contributor(s) into \(dataset)\(result.forced ? " (head replaced)" : "")\n".utf8))
                print(result.commit)
                return
            }
            let identity = try Identity(parsing: contributor ?? "")
            let token = try await client.call("the token") { try await $0.currentToken().ok.body.json }
            if token.role != .admin, identity.id != token.subject {
                throw ValidationError("--contributor \(identity) is not this token's subject '\(token.subject)': a registry records data only in its token holder's name")
            }
            let files = try Store.uploadableFiles(paths: paths, workingDirectory: storeOptions.workingDirectory, destination: destination)
            var uploaded = Set<String>()
            for file in files where uploaded.insert(file.sha256).inserted {
                struct Uploaded: Decodable { var sha256: String; var size: UInt64 }
                let answer = try RegistryClient.decode(Uploaded.self, try RegistryClient.expect(
                    try await client.upload("/v1/uploads/\(file.sha256)", file: URL(fileURLWithPath: file.sourcePath)), [201], "the upload of \(file.sourcePath)"),
                    "the upload")
                guard answer.sha256 == file.sha256, answer.size == file.size else {
                    throw AuditError("the registry stored \(answer.size) bytes with SHA-256 \(answer.sha256) for \(file.sourcePath), which has \(file.size) bytes with SHA-256 \(file.sha256)")
                }
            }
            let staged = files.map { Components.Schemas.AddFilesRequest.FilesPayloadPayload(path: $0.treePath, sha256: $0.sha256, executable: $0.executable) }
            let answer = try await client.call("the commit") {
                try await $0.addDatasetFiles(path: .init(dataset: dataset), body: .json(.init(contributor: identity.description, message: message,
                                                                                             files: staged))).created.body.json
            }
            let result = try RegistryClient.domain(answer.result, as: AddResult.self, "the commit")
            try Self.checkManifest(try RegistryClient.domain(answer.added, as: [Manifest.Entry].self, "the commit"), against: files, commit: result.commit)
            if output.json { return try Output.json(result) }
            print(result.commit)
        }

        /// Every file sent must be in the registry's manifest with the size and SHA-256 computed here.
        static func checkManifest(_ added: [Manifest.Entry], against files: [UploadableFile], commit: String) throws {
            let byPath = Dictionary(added.map { ($0.path, $0) }, uniquingKeysWith: { first, _ in first })
            for file in files {
                guard let entry = byPath[file.treePath] else {
                    throw AuditError("the registry's manifest of commit \(commit) does not list \(file.treePath), which was sent")
                }
                guard entry.sha256 == file.sha256, entry.size == file.size else {
                    throw AuditError("the registry's manifest of commit \(commit) has \(file.treePath) as \(entry.size) bytes with SHA-256 \(entry.sha256), but \(file.size) bytes with SHA-256 \(file.sha256) were sent")
                }
            }
        }
    }
}
