public import ArgumentParser
import Foundation
import PostgresStorage

/// The `provenance` command: a provenance tracker and revenue-attribution ledger for AI models.
public struct Provenance: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "provenance",
        abstract: "Track which data and people made an AI model, and prove it.",
        discussion: """
            The store is found like git finds .git: --store DIR, else $PROVENANCE_STORE, else the \
            nearest .provenance/ from the current directory upwards.
            """,
        version: "0.1.0",
        subcommands: [Init.self, Add.self, Datasets.self, Contributors.self, Log.self, ManifestCommand.self,
                      Model.self, Trace.self, ExportAttestation.self, Reindex.self, Plugins.self, Attribute.self, Index.self,
                      Account.self, Node.self, Call.self, Settle.self, InvoiceCommand.self, LedgerCommand.self, Verify.self,
                      Serve.self, Token.self, Audit.self, WitnessCommand.self, Migrate.self]
    )

    public init() {}
}

extension Provenance {
    /// Parses the command line and runs the command. Errors print as one line, `Error: …`,
    /// with a non-zero exit: bad input never shows a usage dump or a stack trace. `--help`
    /// and `--version` behave as usual.
    public static func main() async {
        PostgresRegistryIndex.register()
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            let code = exitCode(for: error)
            if code == .success { exit(withError: error) }
            var message = self.message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
            // A command without --registry works only on a local store: say that, not "unknown option".
            for option in ["--registry", "--token-file"] where message.hasPrefix("Unknown option '\(option)") {
                let command = CommandLine.arguments.dropFirst().prefix { !$0.hasPrefix("-") }.joined(separator: " ")
                message = "provenance \(command) works only on a local store: drop \(option) (remote so far: add, trace, attribute, datasets, log, contributors, model list, invoice show, ledger proof, ledger consistency, account balance)"
            }
            FileHandle.standardError.write(Data("Error: \(message)\n".utf8))
            Foundation.exit(code.rawValue)
        }
    }
}
