import AttributionPlugins
import ArgumentParser
import Foundation
import ProvenanceCore
import RegistryAPI

/// `--plugin-timeout`, for commands that may run an external plugin.
struct PluginOptions: ParsableArguments {
    @Option(name: .customLong("plugin-timeout"), help: ArgumentHelp("Seconds an external plugin may take.", valueName: "SECONDS"))
    var timeout: Double = 10

    func validate() throws {
        guard timeout > 0, timeout.isFinite else { throw ValidationError("--plugin-timeout must be a positive number of seconds") }
    }

    var registry: PluginRegistry { PluginRegistry(timeout: timeout) }
}

extension Provenance {
    struct Plugins: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the attribution plugins: built in, and external provenance-attribution-<name> executables found.")

        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var output: OutputOptions

        func run() throws {
            let plugins = PluginRegistry().available(store: try storeOptions.open())
            if output.json { return try Output.json(plugins) }
            Output.table(["PLUGIN", "KIND", "VERSION", "OPTIONS / LOCATION"], plugins.map { plugin in
                let detail = plugin.location ?? (plugin.options ?? [:]).keys.sorted().map { "\($0): \(plugin.options![$0]!)" }.joined(separator: "; ")
                return [plugin.name, plugin.kind.rawValue, plugin.version, detail]
            })
        }
    }

    struct Attribute: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Compute a model version's contributor weights in integer parts per billion.")

        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var remote: RegistryOptions
        @OptionGroup var output: OutputOptions
        @OptionGroup var pluginOptions: PluginOptions
        @OptionGroup var progress: ProgressOptions

        @Argument(help: "MODEL@VERSION.")
        var reference: String

        @Option(help: ArgumentHelp("Use this plugin instead of the model's active one (NAME[:key=value,...]).", valueName: "NAME"))
        var plugin: String?

        @Option(help: ArgumentHelp("data-volume's unit: bytes or lines.", valueName: "UNIT"))
        var unit: String?

        @Option(name: .customLong("output-file"),
                help: ArgumentHelp("A model output (UTF-8 text): attribute it as a call would be, showing the spans it reproduced (span-match).",
                                   valueName: "FILE"))
        var outputFile: String?

        func run() async throws {
            if let client = try remote.client(storeOptions) {
                guard outputFile == nil else { throw ValidationError("attribute --output-file works only on a local store: the registry's API attributes a call's output only when the call is submitted") }
                let version = try Names.parseModelVersion(reference)
                var spec = try plugin.map(PluginSpec.init(parsing:))
                if let unit {
                    if spec == nil {
                        let summary = try await client.call("the model") { try await $0.showModelSummary(path: .init(model: version.model)).ok.body.json }
                        spec = try PluginSpec(parsing: summary.plugin)
                    }
                    spec?.options["unit"] = unit
                }
                let answer = try await client.call("the attribution") {
                    try await $0.attributeModelVersion(path: .init(model: version.model, version: version.version),
                                                       query: .init(plugin: spec?.description)).ok.body.json
                }
                return try show(try RegistryClient.domain(answer, as: AttributionResult.self, "the attribution"))
            }
            let store = try storeOptions.open()
            let version = try Names.parseModelVersion(reference)
            var spec = try plugin.map(PluginSpec.init(parsing:))
            if let unit {
                if spec == nil { spec = try store.activePlugin(of: version.model) }
                spec?.options["unit"] = unit
            }
            var call: AttributionInput.Call?
            if let outputFile {
                let url = URL(fileURLWithPath: outputFile, relativeTo: storeOptions.workingDirectory)
                guard FileManager.default.fileExists(atPath: url.path) else { throw ValidationError("--output-file '\(outputFile)' does not exist") }
                guard let text = OutputText.read(url) else {
                    throw ValidationError("--output-file '\(outputFile)' is not UTF-8 text of at most \(OutputText.maxBytes) bytes")
                }
                call = AttributionInput.Call(inputTokens: 0, outputTokens: 0, outputText: text)
            }
            let registry = pluginOptions.registry
            let result = try await progress.run {
                try await store.attribute(version, override: spec, resolver: registry, call: call)
            }
            try show(result)
        }

        /// Prints the result, the same for a local store and a registry.
        func show(_ result: AttributionResult) throws {
            if output.json { return try Output.json(result) }
            print("\(result.model)@\(result.version) under \(result.plugin)\(result.baseSharePPB > 0 ? " (\(LineageRenderer.percent(result.baseSharePPB)) to \(result.base ?? "base"))" : "")")
            if let spans = result.spans {
                if spans.isEmpty {
                    print("The output reproduces no span of the training data: the version's own weights apply.")
                } else {
                    print("\(spans.count) span(s) of the output found verbatim in the training data:")
                    Output.table(["OUTPUT", "BYTES", "CONTRIBUTOR", "SOURCE", "TEXT"], spans.map { span in
                        ["\(span.outputOffset)-\(span.outputOffset + span.length)", String(span.length), span.contributor,
                         "\(span.dataset)@\(span.commit.prefix(7)):\(span.path):\(span.lineStart)\(span.lineEnd > span.lineStart ? "-\(span.lineEnd)" : "")",
                         Self.excerpt(span.text)]
                    }, rightAligned: [1])
                }
                print("")
            }
            Output.table(["CONTRIBUTOR", "ID", "PPB", "SHARE", "RAW"], result.weights.map {
                [$0.contributor, $0.id, String($0.ppb), LineageRenderer.percent($0.ppb), $0.raw.map(Self.format) ?? "-"]
            }, rightAligned: [2, 3, 4])
        }

        /// The span's text on one line, shortened to 40 characters.
        static func excerpt(_ text: String) -> String {
            let flat = text.replacingOccurrences(of: "\n", with: "⏎").replacingOccurrences(of: "\t", with: " ")
            return flat.count <= 40 ? flat : String(flat.prefix(37)) + "..."
        }

        static func format(_ value: Double) -> String {
            value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(value)
        }
    }
}

extension Provenance.Model {
    struct SetPlugin: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "set-plugin",
            abstract: "Swap a model's active attribution plugin; the history of swaps is kept.")

        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var remote: RegistryOptions
        @OptionGroup var output: OutputOptions

        @Argument(help: "The model.")
        var model: String

        @Argument(help: "The plugin: NAME or NAME:key=value,...")
        var plugin: String

        @Option(help: ArgumentHelp("data-volume's unit: bytes or lines.", valueName: "UNIT"))
        var unit: String?

        @Option(help: ArgumentHelp("Who makes the change (default: the model's latest developer).", valueName: "identity"))
        var by: String?

        func run() async throws {
            var spec = try PluginSpec(parsing: plugin)
            if let unit { spec.options["unit"] = unit }
            let by = try by.map(Identity.init(parsing:))
            let change: PluginChange
            if let client = try remote.client(storeOptions) {
                try Names.validateModelName(model)
                let answer = try await client.call("the plugin change") {
                    try await $0.setModelPlugin(path: .init(model: model), body: .json(.init(plugin: spec.description, by: by?.description))).ok.body.json
                }
                change = try RegistryClient.domain(answer, as: PluginChange.self, "the plugin change")
            } else {
                change = try storeOptions.open().setPlugin(model: model, to: spec, by: by, resolver: PluginRegistry())
            }
            if output.json { return try Output.json(change) }
            print("\(model) now uses \(change.plugin)")
        }
    }

    struct PluginHistory: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "plugin-history", abstract: "Show every change of a model's attribution plugin, oldest first.")

        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var remote: RegistryOptions
        @OptionGroup var output: OutputOptions

        @Argument(help: "The model.")
        var model: String

        func run() async throws {
            let history: [PluginChange]
            if let client = try remote.client(storeOptions) {
                try Names.validateModelName(model)
                let answer = try await client.call("the plugin history") { try await $0.showModelPlugin(path: .init(model: model)).ok.body.json }
                history = try RegistryClient.domain(answer.history, as: [PluginChange].self, "the plugin history")
            } else {
                history = try storeOptions.open().pluginHistory(model: model)
            }
            if output.json { return try Output.json(history) }
            let formatter = ISO8601DateFormatter()
            Output.table(["WHEN", "PLUGIN", "BY", "COMMIT"], history.map {
                [formatter.string(from: Date(timeIntervalSince1970: TimeInterval($0.changedAt))), $0.plugin, $0.changedBy, String($0.commit.prefix(7))]
            })
        }
    }
}
