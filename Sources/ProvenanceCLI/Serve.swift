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

        @Option(name: .customLong("witness"), help: ArgumentHelp("A witness to cosign each checkpoint: its URL and verifier key (repeat for several).",
                                                                 valueName: "URL=KEY"))
        var witnesses: [String] = []

        @Option(name: .customLong("witness-quorum"), help: ArgumentHelp("How many witnesses must cosign a checkpoint (default: all of them).", valueName: "K"))
        var witnessQuorum: Int?

        func validate() throws {
            for witness in witnesses { _ = try parsedWitness(witness) }
            if let witnessQuorum, !(1...max(1, witnesses.count)).contains(witnessQuorum) || witnesses.isEmpty {
                throw ValidationError("--witness-quorum must be 1 to the number of --witness (\(witnesses.count))")
            }
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
            var logger = Logger.server(label: "provenance.registry")
            logger.logLevel = Logger.Level(rawValue: logLevel) ?? .info
            var configuration = RegistryConfiguration(
                host: host, port: port, allowLocalRemotes: allowLocalRemotes, maxBodyBytes: maxBodyBytes,
                settleEvery: settleEvery.map { .milliseconds(Int64(($0 * 1000).rounded())) })
            configuration.witnesses = try witnesses.map(parsedWitness)
            configuration.witnessQuorum = witnessQuorum ?? witnesses.count
            logger.info("serving store", metadata: ["store": "\(store.root.path)", "host": "\(host)", "port": "\(port)"])
            try await runRegistry(configuration: configuration, store: store, resolver: pluginOptions.registry, logger: logger)
            logger.info("stopped; store closed", metadata: ["store": "\(store.root.path)"])
        }

        func parsedWitness(_ text: String) throws -> WitnessEndpoint {
            do { return try WitnessEndpoint(parsing: text) } catch let error as ProvenanceError { throw ValidationError(error.message) }
        }
    }
}
