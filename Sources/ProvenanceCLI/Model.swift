import AttributionPlugins
import ArgumentParser
import Foundation
import ProvenanceCore
import RegistryAPI
import SpanMatch

extension Provenance {
    struct Model: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Register model versions and read them back.",
            subcommands: [Register.self, List.self, Show.self, SetPlugin.self, PluginHistory.self, PriceCommand.self])
    }
}

extension Provenance.Model {
    struct Register: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Register a model version with the exact dataset commits and training logs it came from.",
            discussion: """
                Writes one commit to the model's repository holding the training logs and a provenance.json \
                manifest (dataset commits with their manifest SHA-256, training-log SHA-256s, the base version, \
                the weights file's SHA-256 and size; weights are hashed, not stored), tagged with the version. \
                Versions are immutable. With --registry URL (and a developer token) the training logs are sent \
                with the request and the registry writes the commit; --weights needs a local store.
                """)

        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var remote: RegistryOptions
        @OptionGroup var output: OutputOptions

        @Argument(help: "MODEL@VERSION to register.")
        var reference: String

        @Option(help: ArgumentHelp("Who trained the model, as \"Name <email>\".", valueName: "identity"))
        var developer: String

        @Option(name: .customLong("dataset"), help: ArgumentHelp("A dataset commit it was trained on: DS, or DS@REV (commit id, tag or branch). Repeatable.", valueName: "DS@REV"))
        var datasets: [String] = []

        @Option(name: .customLong("training-log"), help: ArgumentHelp("A training log to store and hash. Repeatable.", valueName: "FILE"))
        var trainingLogs: [String] = []

        @Option(help: ArgumentHelp("The model version this one was fine-tuned from.", valueName: "MODEL@VERSION"))
        var base: String?

        @Option(help: ArgumentHelp("The weights file (hashed, not stored).", valueName: "FILE"))
        var weights: String?

        @Option(help: ArgumentHelp("The attribution plugin, NAME[:key=value,...] (default: the model's current one, else equal-share).", valueName: "NAME"))
        var plugin: String?

        @Option(name: .customLong("base-share"), help: ArgumentHelp("Parts per billion of this version's attribution that flow to the base version's own attribution (default 0).", valueName: "PPB"))
        var baseShare: UInt64?

        func run() async throws {
            if let client = try remote.client(storeOptions) { return try await register(at: client) }
            let store = try storeOptions.open()
            let cwd = storeOptions.workingDirectory
            let request = ModelRegistrationRequest(
                reference: try Names.parseModelVersion(reference),
                developer: try Identity(parsing: developer),
                datasets: datasets.map(RevisionReference.init(parsing:)),
                trainingLogs: trainingLogs.map { URL(fileURLWithPath: $0, relativeTo: cwd).standardizedFileURL },
                base: try base.map(Names.parseModelVersion),
                weights: weights.map { URL(fileURLWithPath: $0, relativeTo: cwd).standardizedFileURL },
                plugin: try plugin.map(PluginSpec.init(parsing:)),
                baseSharePPB: baseShare)
            let info = try store.registerModel(request, resolver: PluginRegistry())
            if output.json { return try Output.json(info) }
            print(info.commit)
        }

        /// `POST /v1/models/{model}/versions`, the training logs carried in the request (base64).
        func register(at client: RegistryClient) async throws {
            guard weights == nil else {
                throw ValidationError("--weights works only on a local store: the registry's API records no weights file (register without it, or on the store)")
            }
            let reference = try Names.parseModelVersion(self.reference)
            let developer = try Identity(parsing: developer)
            let logs = try trainingLogs.map { path -> Components.Schemas.TrainingLogUpload in
                let url = URL(fileURLWithPath: path, relativeTo: storeOptions.workingDirectory).standardizedFileURL
                guard let data = FileManager.default.contents(atPath: url.path) else { throw ValidationError("--training-log '\(path)' cannot be read") }
                return .init(name: url.lastPathComponent, contentBase64: data.base64EncodedString())
            }
            let answer = try await client.call("the registration") {
                try await $0.registerModelVersion(path: .init(model: reference.model), body: .json(.init(
                    version: reference.version, developer: developer.description, datasets: datasets.isEmpty ? nil : datasets,
                    base: base, plugin: plugin, baseSharePpb: baseShare, trainingLogs: logs.isEmpty ? nil : logs))).created.body.json
            }
            let info = try RegistryClient.domain(answer, as: ModelVersionInfo.self, "the registration")
            if output.json { return try Output.json(info) }
            print(info.commit)
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the models with their versions and active plugin.")

        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var remote: RegistryOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            let models: [ModelSummary]
            if let client = try remote.client(storeOptions) {
                let answer = try await client.call("the models") { try await $0.listModels().ok.body.json }
                models = try RegistryClient.domain(answer.models, as: [ModelSummary].self, "the models")
            } else {
                models = try storeOptions.open().modelSummaries()
            }
            if output.json { return try Output.json(models) }
            if models.isEmpty {
                print("No models yet: `provenance model register MODEL@VERSION --developer \"Name <email>\" --dataset DS` registers one.")
                return
            }
            Output.table(["MODEL", "LATEST", "VERSIONS", "PLUGIN"], models.map {
                [$0.model, $0.latest ?? "-", $0.versions.joined(separator: ", "), $0.plugin]
            })
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show what a model version was made from.")

        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var remote: RegistryOptions
        @OptionGroup var output: OutputOptions

        @Argument(help: "MODEL@VERSION.")
        var reference: String

        func run() async throws {
            let reference = try Names.parseModelVersion(self.reference)
            let info: ModelVersionInfo
            if let client = try remote.client(storeOptions) {
                let answer = try await client.call("the model version") {
                    try await $0.showModelVersion(path: .init(model: reference.model, version: reference.version)).ok.body.json
                }
                info = try RegistryClient.domain(answer, as: ModelVersionInfo.self, "the model version")
            } else {
                info = try storeOptions.open().showModel(reference)
            }
            if output.json { return try Output.json(info) }
            print("model      \(info.model)@\(info.version)")
            print("commit     \(info.commit)")
            print("developer  \(info.developer)")
            print("plugin     \(info.plugin)")
            if let base = info.base { print("base       \(base.model)@\(base.version) (\(base.commit.prefix(7)))") }
            if let weights = info.weights { print("weights    \(weights.name)  sha256 \(weights.sha256)  \(formatByteCount(weights.size))") }
            for dataset in info.datasets {
                print("dataset    \(dataset.dataset)@\(dataset.commit.prefix(7))  manifest sha256 \(dataset.manifestSHA256)  \(dataset.files) files, \(formatByteCount(dataset.bytes))")
            }
            for log in info.trainingLogs {
                print("log        \(log.path)  sha256 \(log.sha256)  \(formatByteCount(log.size))")
            }
        }
    }
}

extension Provenance {
    struct Trace: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Trace a model version back through its base models to every dataset commit and contributor.")

        enum Format: String, ExpressibleByArgument, CaseIterable { case tree, json, dot }

        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var remote: RegistryOptions

        @Argument(help: "MODEL@VERSION.")
        var reference: String

        @Option(help: "tree (for people), json (for scripts) or dot (Graphviz).")
        var format: Format = .tree

        @OptionGroup var pluginOptions: PluginOptions
        @OptionGroup var progress: ProgressOptions

        func run() async throws {
            let reference = try Names.parseModelVersion(self.reference)
            if let client = try remote.client(storeOptions) {
                let answer = try await client.call("the trace") {
                    try await $0.traceModelVersion(path: .init(model: reference.model, version: reference.version)).ok.body.json
                }
                return show(try RegistryClient.domain(answer, as: Lineage.self, "the trace"))
            }
            let store = try storeOptions.open()
            let registry = pluginOptions.registry
            let lineage = try await progress.run {
                // The two stages; a plugin's own work (a cold blame) reports inside the first.
                ProgressReport.report("Tracing \(reference): attribution", done: 0, total: 2, unit: "stages")
                let attribution = try await store.attribute(reference, resolver: registry)
                ProgressReport.report("Tracing \(reference): lineage", done: 1, total: 2, unit: "stages")
                return try store.lineage(of: reference, attribution: attribution)
            }
            show(lineage)
        }

        /// Prints the lineage, the same for a local store and a registry.
        func show(_ lineage: Lineage) {
            switch format {
            case .tree:
                FileHandle.standardOutput.write(LineageRenderer.treeBytes(lineage))
                FileHandle.standardOutput.write(Data("\n".utf8))
            case .json: FileHandle.standardOutput.write(LineageRenderer.json(lineage))
            case .dot: print(LineageRenderer.dot(lineage))
            }
        }
    }

    struct ExportAttestation: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print an in-toto Statement v1 with an SLSA Provenance v1 predicate for a model version.")

        @OptionGroup var storeOptions: StoreOptions

        @Argument(help: "MODEL@VERSION.")
        var reference: String

        func run() throws {
            try Output.json(try storeOptions.open().attestation(of: try Names.parseModelVersion(reference)))
        }
    }

    struct Reindex: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Rebuild the registry index of datasets and models from the git repositories alone.")

        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var output: OutputOptions

        func run() throws {
            let store = try storeOptions.open()
            var report = try store.reindex()
            // Span indexes are derived from git too: rebuilt for models that use span-match.
            report.spanIndexes = try SpanMatch.rebuildIndexes(store: store)
            if output.json { return try Output.json(report) }
            print("Reindexed \(report.datasets) dataset(s) with \(report.registeredCommits) registered commit(s), \(report.models) model(s) with \(report.modelVersions) version(s)\(report.spanIndexes! > 0 ? ", \(report.spanIndexes!) span index(es)" : "")")
        }
    }
}
