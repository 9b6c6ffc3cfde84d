import ArgumentParser
import Foundation
import Logging
import ProvenanceCore
import RegistryService

extension Provenance {
    struct WitnessCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "witness", abstract: "Run a transparency-log witness (C2SP tlog-witness) that cosigns registries' checkpoints.",
            subcommands: [Serve.self, Key.self])
    }
}

/// The witness's folder and name, shared by its subcommands.
struct WitnessOptions: ParsableArguments {
    @Option(help: ArgumentHelp("The witness's folder: its key (witness.ed25519, created on first use) and state.", valueName: "DIR"))
    var dir: String
    @Option(help: ArgumentHelp("The witness's name on its cosignatures, e.g. witness.example.org/w1.", valueName: "NAME"))
    var name: String

    func signer() throws -> CosignatureSigner {
        let folder = URL(fileURLWithPath: dir, isDirectory: true)
        do { return try CosignatureSigner(name: name, privateKey: try Witness.key(in: folder)) } catch let error as SignedNoteError {
            throw ValidationError("--name '\(name)': \(error)")
        }
    }
}

extension Provenance.WitnessCommand {
    struct Key: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the witness's verifier key (creating its key on first use).")
        @OptionGroup var witness: WitnessOptions

        func run() throws { print(try witness.signer().verifierKey) }
    }

    struct Serve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Serve POST /add-checkpoint: cosign each configured log's checkpoints that extend the last one cosigned.",
            discussion: """
                For each log (--log, its checkpoint verifier key; the key's name is the log's origin, as \
                `GET /v1/ledger/checkpoint` gives it) the witness keeps the latest checkpoint it cosigned in \
                DIR/state.json and cosigns a new one only when the log signed it and an RFC 9162 consistency \
                proof links the two. Answers: 200 with a tlog-cosignature/v1 line, 400, 403 (not signed by the \
                log), 404 (unknown log), 409 with the size it holds, 422 (inconsistent).
                """)
        @OptionGroup var witness: WitnessOptions
        @Option(name: .customLong("log"), help: ArgumentHelp("A log's checkpoint verifier key (repeat for several logs).", valueName: "KEY"))
        var logs: [String] = []
        @Option(help: ArgumentHelp("The address to listen on.", valueName: "HOST")) var host = "127.0.0.1"
        @Option(help: ArgumentHelp("The port to listen on (0: any free port).", valueName: "PORT")) var port = 8090
        @Option(name: .customLong("log-level"), help: ArgumentHelp("trace, debug, info, notice, warning, error or critical.", valueName: "LEVEL"))
        var logLevel = "info"

        func validate() throws {
            guard (0...65535).contains(port) else { throw ValidationError("--port must be 0 to 65535") }
            guard !logs.isEmpty else { throw ValidationError("give at least one --log KEY: the checkpoint verifier key of a log to witness") }
            guard Logger.Level(rawValue: logLevel) != nil else {
                throw ValidationError("--log-level must be trace, debug, info, notice, warning, error or critical")
            }
        }

        func run() async throws {
            let verifiers = try logs.map { key in
                do { return try NoteVerifier(verifierKey: key) } catch { throw ValidationError("--log '\(key.prefix(100))': \(error)") }
            }
            let signer = try witness.signer()
            let state = URL(fileURLWithPath: witness.dir, isDirectory: true).appendingPathComponent("state.json")
            var logger = Logger.server(label: "provenance.witness")
            logger.logLevel = Logger.Level(rawValue: logLevel) ?? .info
            logger.info("witnessing", metadata: ["key": "\(signer.verifierKey)", "logs": "\(verifiers.map(\.name).joined(separator: ","))"])
            try await runWitness(Witness(signer: signer, logs: verifiers, stateURL: state), host: host, port: port, logger: logger)
            logger.info("stopped")
        }
    }
}
