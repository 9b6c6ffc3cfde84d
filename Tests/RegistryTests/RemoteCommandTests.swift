import Foundation
import ProvenanceCore
import ProvenanceTestSupport
import Testing

/// Commands run with `--registry URL` against a real `provenance serve` print byte for byte
/// what they print on the store the registry serves.
@Suite struct RemoteCommandTests {
    /// A store with two contributors' data, a model `m@1` trained on it and `m@2` on top, served.
    static func served() throws -> (CLIHarness, LiveRegistry) {
        let cli = try seeded()
        return (cli, try LiveRegistry(store: cli.store))
    }

    /// The store `served` serves, not yet served.
    static func seeded() throws -> CLIHarness {
        let cli = try CLIHarness()
        try cli.write("poems/a.txt", "first poem\nline two\n")
        try cli.must("add", "poems", "poems", "--contributor", "Ada Lovelace <ada@example.org>", "-m", "poems")
        try cli.write("notes.txt", "a note\nanother line\nthird\n")
        try cli.must("add", "poems", "notes.txt", "--contributor", "Grace Hopper <grace@example.org>")
        try cli.write("train.log", "step 1 loss 2.0\n")
        try cli.must("model", "register", "m@1", "--developer", "Dev <dev@example.org>", "--dataset", "poems", "--training-log", "train.log")
        try cli.must("model", "register", "m@2", "--developer", "Dev <dev@example.org>", "--base", "m@1", "--base-share", "250000000", "--dataset", "poems", "--training-log", "train.log")
        // Two settled calls, so the ledger has invoices to prove.
        try cli.must("model", "price", "m", "--input-per-1k", "1", "--output-per-1k", "2")
        try cli.must("account", "deposit", "alice", "100")
        try cli.must("node", "add", "gpu1")
        for key in ["k1", "k2", "k3"] {
            try cli.must("call", "m@2", "--caller", "alice", "--node", "gpu1", "--input-tokens", "1000", "--output-tokens", "10",
                         "--latency-ms", "50", "--idempotency-key", key)
        }
        return cli
    }

    /// Runs `arguments` on the store, then from another folder against the registry, and
    /// requires both to succeed with identical stdout.
    static func expectSame(_ cli: CLIHarness, _ registry: LiveRegistry, _ arguments: [String], environment: [String: String] = [:],
                           sourceLocation: SourceLocation = #_sourceLocation) throws {
        let local = try cli.run(arguments.filter { !$0.hasPrefix("--token-file") && !$0.hasSuffix("/token") })
        let elsewhere = try TemporaryDirectory("provenance-remote-client")
        let remote = try cli.run(arguments + ["--registry", registry.base], in: elsewhere.url, environment: environment)
        #expect(local.succeeded, "\(local)", sourceLocation: sourceLocation)
        #expect(remote.succeeded, "\(remote)", sourceLocation: sourceLocation)
        #expect(!local.stdout.isEmpty, sourceLocation: sourceLocation)
        #expect(remote.stdout == local.stdout, "\(arguments): remote\n\(remote.stdout)\nlocal\n\(local.stdout)", sourceLocation: sourceLocation)
    }

    @Test func traceIsTheSameRemotelyInEveryFormat() throws {
        let (cli, registry) = try Self.served()
        for format in ["tree", "json", "dot"] {
            try Self.expectSame(cli, registry, ["trace", "m@2", "--format", format])
        }
        try Self.expectSame(cli, registry, ["trace", "m@1"])
    }

    @Test func attributeIsTheSameRemotelyAsTableAndJSON() throws {
        let (cli, registry) = try Self.served()
        for extra in [[], ["--json"], ["--plugin", "data-volume"], ["--plugin", "data-volume", "--json"], ["--plugin", "data-volume", "--unit", "lines"], ["--unit", "lines", "--json", "--plugin", "data-volume:unit=bytes"]] {
            try Self.expectSame(cli, registry, ["attribute", "m@2"] + extra)
        }
    }

    @Test func datasetListingsAndLogsAreTheSameRemotely() throws {
        let (cli, registry) = try Self.served()
        let head = try cli.json([LogEntry].self, "log", "poems")[1].commit
        for json in [[], ["--json"]] {
            try Self.expectSame(cli, registry, ["datasets"] + json)
            try Self.expectSame(cli, registry, ["log", "poems"] + json)
            try Self.expectSame(cli, registry, ["log", "poems", "-n", "1"] + json)
            try Self.expectSame(cli, registry, ["log", "poems@\(head)"] + json)
            try Self.expectSame(cli, registry, ["contributors", "poems"] + json)
            try Self.expectSame(cli, registry, ["contributors", "poems@\(head)"] + json)
        }
    }

    @Test func inclusionAndConsistencyProofsAreTheSameRemotely() throws {
        let (cli, registry) = try Self.served()
        for json in [[], ["--json"]] {
            try Self.expectSame(cli, registry, ["ledger", "proof", "0"] + json)
            try Self.expectSame(cli, registry, ["ledger", "proof", "1", "--size", "2"] + json)
            try Self.expectSame(cli, registry, ["ledger", "consistency", "1"] + json)
            try Self.expectSame(cli, registry, ["ledger", "consistency", "1", "2"] + json)
        }
    }

    @Test func invoicesAreTheSameRemotely() throws {
        let (cli, registry) = try Self.served()
        for index in ["0", "2"] {
            try Self.expectSame(cli, registry, ["invoice", "show", index])
            try Self.expectSame(cli, registry, ["invoice", "show", index, "--json"])
            try Self.expectSame(cli, registry, ["invoice", "show", index, "--canonical"])
        }
        let elsewhere = try TemporaryDirectory("provenance-remote-client")
        let missing = try cli.run(["invoice", "show", "9", "--registry", registry.base], in: elsewhere.url)
        #expect(missing.status != 0 && missing.stdout.isEmpty && missing.errorLines.count == 1 && missing.stderr.contains("no invoice 9"), "\(missing.stderr)")
    }

    @Test func modelsAndBalancesAreTheSameRemotely() throws {
        let (cli, registry) = try Self.served()
        try Self.expectSame(cli, registry, ["model", "list"])
        try Self.expectSame(cli, registry, ["model", "list", "--json"])
        // Balances are read with a token: the admin's any account, a caller's its own.
        let admin = try cli.must("token", "create", "--role", "admin", "--subject", "ops").output
        let caller = try cli.must("token", "create", "--role", "caller", "--subject", "alice").output
        for account in ["alice", "dev@example.org"] {
            for extra in [[], ["--json"], ["--raw"]] {
                try Self.expectSame(cli, registry, ["account", "balance", account] + extra, environment: ["PROVENANCE_TOKEN": admin])
            }
        }
        let tokens = try TemporaryDirectory("provenance-token")
        let tokenFile = try tokens.write("token", caller + "\n")
        try Self.expectSame(cli, registry, ["account", "balance", "alice", "--token-file", tokenFile.path])
        let elsewhere = try TemporaryDirectory("provenance-remote-client")
        let other = try cli.run(["account", "balance", "dev@example.org", "--registry", registry.base, "--token-file", tokenFile.path], in: elsewhere.url)
        #expect(other.status != 0 && other.stdout.isEmpty && other.errorLines.count == 1 && other.stderr.contains("403"), "\(other.stderr)")
        let anonymous = try cli.run(["account", "balance", "alice", "--registry", registry.base], in: elsewhere.url)
        #expect(anonymous.status != 0 && anonymous.stdout.isEmpty && anonymous.errorLines.count == 1 && anonymous.stderr.contains("401"), "\(anonymous.stderr)")
    }

    @Test func remoteRefusalsAreOneLine() throws {
        let (cli, registry) = try Self.served()
        let elsewhere = try TemporaryDirectory("provenance-remote-client")
        try elsewhere.write("out.txt", "first poem\n")
        // A local-only option.
        let local = try cli.run(["attribute", "m@2", "--output-file", "out.txt", "--registry", registry.base], in: elsewhere.url)
        #expect(local.status != 0 && !local.signalled && local.stdout.isEmpty)
        #expect(local.errorLines.count == 1 && local.stderr.contains("works only on a local store"), "\(local.stderr)")
        // A command that works only locally.
        let reindex = try cli.run(["reindex", "--registry", registry.base], in: elsewhere.url)
        #expect(reindex.status != 0 && reindex.stdout.isEmpty && reindex.errorLines.count == 1, "\(reindex.stderr)")
        #expect(reindex.stderr.contains("provenance reindex works only on a local store"), "\(reindex.stderr)")
        // What the registry does not have.
        let missing = try cli.run(["trace", "nope@1", "--registry", registry.base], in: elsewhere.url)
        #expect(missing.status != 0 && !missing.signalled && missing.stdout.isEmpty)
        #expect(missing.errorLines.count == 1 && missing.stderr.contains("404"), "\(missing.stderr)")
        // Nobody listening.
        let closed = try cli.run(["trace", "m@1", "--registry", "http://127.0.0.1:9"], in: elsewhere.url)
        #expect(closed.status != 0 && closed.errorLines.count == 1 && closed.stderr.contains("cannot reach the registry"), "\(closed.stderr)")
        // Both a store and a registry.
        let both = try cli.run(["trace", "m@1", "--registry", registry.base, "--store", cli.store.path])
        #expect(both.status != 0 && both.errorLines.count == 1 && both.stderr.contains("not both"), "\(both.stderr)")
    }
}
