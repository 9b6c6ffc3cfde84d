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
            for option in ["--registry", "--token-file", "--keys"] where message.hasPrefix("Unknown option '\(option)") {
                message = localOnly(invokedCommand, dropping: option)
            }
            FileHandle.standardError.write(Data("Error: \(message)\n".utf8))
            Foundation.exit(code.rawValue)
        }
    }
}

extension Provenance {
    /// The commands that run against a registry with --registry URL, for the line that refuses the others.
    static let remoteCommands = "add, datasets, contributors, log, model register/list/show/set-plugin/plugin-history/price, trace, attribute, account deposit/withdraw/balance/statement, node add, call, settle, invoice show/list/bundle, ledger checkpoint/proof/consistency, verify"

    /// `provenance SUBCOMMAND…` as invoked: the subcommand names, without arguments or options.
    static var invokedCommand: String {
        var names: [String] = []
        var commands = configuration.subcommands
        for argument in CommandLine.arguments.dropFirst() {
            guard let next = commands.first(where: { $0._commandName == argument }) else { break }
            names.append(argument)
            commands = next.configuration.subcommands
        }
        return names.joined(separator: " ")
    }

    /// The one line that refuses a registry to a command that works only here.
    static func localOnly(_ command: String, dropping option: String) -> String {
        if command.hasPrefix("witness") {
            return "provenance \(command) runs a witness on this machine, not against a registry: drop \(option)"
        }
        return "provenance \(command) works only on a local store: drop \(option) (against a registry: \(remoteCommands))"
    }
}
