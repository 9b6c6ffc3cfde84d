public import ArgumentParser

/// The `provenance` command: a provenance tracker and revenue-attribution ledger for AI models.
public struct Provenance: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "provenance",
        abstract: "Track which data and people made an AI model, and prove it.",
        discussion: """
            The store is found like git finds .git: --store DIR, else $PROVENANCE_STORE, else the \
            nearest .provenance/ from the current directory upwards.
            """,
        version: "0.1.0",
        subcommands: [Init.self, Add.self, Datasets.self, Contributors.self, Log.self, ManifestCommand.self]
    )

    public init() {}
}
