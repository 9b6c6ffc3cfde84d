import AttributionPlugins
import ArgumentParser
import Foundation
import Logging
import ProvenanceCore
import RegistryService

extension Provenance {
    struct Serve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run the registry HTTP service on the store (Registry/openapi.yaml describes its API).",
            discussion: """
                Serves the store to many contributors, developers and inference nodes over HTTP. Clients \
                authenticate with bearer tokens from `provenance token create`. SIGINT or SIGTERM stops the \
                server gracefully: requests in flight finish, then the store is closed.
                """)

        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var pluginOptions: PluginOptions

        @Option(help: ArgumentHelp("The address to listen on.", valueName: "HOST"))
        var host = "127.0.0.1"

        @Option(help: ArgumentHelp("The port to listen on (0: any free port).", valueName: "PORT"))
        var port = 8080

        @Option(name: .customLong("settle-every"), help: ArgumentHelp("Settle pending (deferred) calls as one batch this often.", valueName: "SECONDS"))
        var settleEvery: Double?

        @Flag(name: .customLong("allow-local-remotes"), help: "Let dataset imports fetch from file:// URLs and local paths (off: network remotes only).")
        var allowLocalRemotes = false

        @Option(name: .customLong("max-body-bytes"), help: ArgumentHelp("Refuse request bodies larger than this with 413.", valueName: "BYTES"))
        var maxBodyBytes = 4 * 1024 * 1024

        @Option(name: .customLong("log-level"), help: ArgumentHelp("trace, debug, info, notice, warning, error or critical.", valueName: "LEVEL"))
        var logLevel = "info"

        func validate() throws {
            guard (0...65535).contains(port) else { throw ValidationError("--port must be 0 to 65535") }
            if let settleEvery, !(settleEvery > 0 && settleEvery.isFinite) {
                throw ValidationError("--settle-every must be a positive number of seconds")
            }
            guard maxBodyBytes >= 1024 else { throw ValidationError("--max-body-bytes must be at least 1024") }
            guard Logger.Level(rawValue: logLevel) != nil else {
                throw ValidationError("--log-level must be trace, debug, info, notice, warning, error or critical")
            }
        }

        func run() async throws {
            let store = try storeOptions.open()
            var logger = Logger(label: "provenance.registry")
            logger.logLevel = Logger.Level(rawValue: logLevel) ?? .info
            let configuration = RegistryConfiguration(
                host: host, port: port, allowLocalRemotes: allowLocalRemotes, maxBodyBytes: maxBodyBytes,
                settleEvery: settleEvery.map { .milliseconds(Int64(($0 * 1000).rounded())) })
            logger.info("serving store", metadata: ["store": "\(store.root.path)", "host": "\(host)", "port": "\(port)"])
            try await runRegistry(configuration: configuration, store: store, resolver: pluginOptions.registry, logger: logger)
            logger.info("stopped; store closed", metadata: ["store": "\(store.root.path)"])
        }
    }
}
