import Foundation
import ProvenanceCore
import ProvenanceTestSupport
import Testing

/// The money side of the CLI against a real `provenance serve`: reads print byte for byte what
/// they print on the store the registry serves; writes print what the same command prints on a
/// byte-for-byte copy of that store (its twin), so both sides start from the same state.
@Suite struct RemoteSettlementTests {
    struct Twins {
        let cli: CLIHarness
        /// A copy of `cli.store`, taken before the registry started, in a folder of its own.
        let twin: TemporaryDirectory
        let registry: LiveRegistry
        /// A folder without a store, where the remote commands run.
        let elsewhere: TemporaryDirectory
        let admin: String
        let node: String

        /// Runs `arguments` on the twin store and against the registry (with `token`); both must
        /// succeed. Returns (local, remote).
        func both(_ arguments: [String], token: String, remoteExtra: [String] = []) throws -> (ProcessResult, ProcessResult) {
            let local = try cli.run(arguments, in: twin.url)
            let remote = try cli.run(arguments + remoteExtra + ["--registry", registry.base], in: elsewhere.url,
                                     environment: ["PROVENANCE_TOKEN": token])
            #expect(local.succeeded, "\(arguments) locally: \(local)")
            #expect(remote.succeeded, "\(arguments) remotely: \(remote)")
            return (local, remote)
        }

        /// `both`, requiring identical stdout.
        func same(_ arguments: [String], token: String, remoteExtra: [String] = [], sourceLocation: SourceLocation = #_sourceLocation) throws {
            let (local, remote) = try both(arguments, token: token, remoteExtra: remoteExtra)
            #expect(!local.stdout.isEmpty, sourceLocation: sourceLocation)
            #expect(remote.stdout == local.stdout, "\(arguments): remote\n\(remote.stdout)\nlocal\n\(local.stdout)", sourceLocation: sourceLocation)
        }
    }

    static func twins() throws -> Twins {
        let cli = try RemoteCommandTests.seeded()
        let admin = try cli.must("token", "create", "--role", "admin", "--subject", "ops").output
        let node = try cli.must("token", "create", "--role", "node", "--subject", "gpu1").output
        let twin = try TemporaryDirectory("provenance-twin")
        try TestBackend.copyStore(cli.store, to: twin.path(".provenance"))
        return Twins(cli: cli, twin: twin, registry: try LiveRegistry(store: cli.store), elsewhere: try TemporaryDirectory("provenance-remote-client"),
                     admin: admin, node: node)
    }

    /// A JSON object without its `created_at` (a transfer's time is the second it was made).
    static func timeless(_ text: String) throws -> NSDictionary {
        var object = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        object["created_at"] = nil
        return object as NSDictionary
    }

    @Test func depositsWithdrawalsCallsAndSettlementPrintWhatTheyPrintLocally() throws {
        let t = try Self.twins()
        let keys = ["--keys", t.cli.store.appendingPathComponent("keys").path]
        try t.same(["account", "deposit", "bob", "50", "--idempotency-key", "d1"], token: t.admin)
        try t.same(["account", "deposit", "bob", "50", "--idempotency-key", "d1"], token: t.admin)  // a retry: moved once
        try t.same(["account", "withdraw", "bob", "5000000000000000000", "--raw"], token: t.admin)
        let (local, remote) = try t.both(["account", "deposit", "carol", "1.5", "--json"], token: t.admin)
        #expect(try Self.timeless(remote.stdout) == Self.timeless(local.stdout), "remote \(remote.stdout) local \(local.stdout)")

        try t.same(["model", "price", "m", "--input-per-1k", "2", "--output-per-1k", "3", "--min-fee", "0.5",
                    "--split", "developer=1000,data=6000,node=2000,platform=1000", "--slo-ms", "100", "--slo-penalty-bps", "500"], token: t.admin)
        let call = ["call", "m@2", "--caller", "alice", "--node", "gpu1", "--input-tokens", "1000", "--output-tokens", "10", "--latency-ms", "150"]
        try t.same(call + ["--idempotency-key", "r1"], token: t.node, remoteExtra: keys)
        try t.same(call + ["--idempotency-key", "r1"], token: t.node, remoteExtra: keys)  // a replay: the same invoice
        try t.same(call + ["--idempotency-key", "r2", "--json"], token: t.node, remoteExtra: keys)
        try t.elsewhere.write("out.txt", "a note\nanother line\n")
        try t.twin.write("out.txt", "a note\nanother line\n")
        try t.same(call + ["--idempotency-key", "r3", "--output-file", "out.txt", "--json"], token: t.node, remoteExtra: keys)
        try t.same(call + ["--idempotency-key", "p1", "--defer"], token: t.node, remoteExtra: keys)
        try t.same(call + ["--idempotency-key", "p2", "--defer", "--json"], token: t.node, remoteExtra: keys)
        try t.same(["settle"], token: t.admin)
        try t.same(["settle", "--json"], token: t.admin)  // nothing left

        // A node's key pair is made where the node runs: the twin's, used by the remote add.
        let added = try t.cli.run(["node", "add", "gpu2"], in: t.twin.url)
        #expect(added.succeeded, "\(added)")
        let twinKeys = t.twin.path(".provenance/keys").path
        let remoteAdd = try t.cli.run(["node", "add", "gpu2", "--keys", twinKeys, "--registry", t.registry.base], in: t.elsewhere.url,
                                   environment: ["PROVENANCE_TOKEN": t.admin])
        #expect(remoteAdd.succeeded && remoteAdd.stdout == added.stdout, "remote \(remoteAdd) local \(added)")

        // With a stake, moved from the node's account: deposited first on both sides.
        try t.same(["account", "deposit", "node:gpu3", "5"], token: t.admin)
        let staked = try t.cli.run(["node", "add", "gpu3", "--stake", "2", "--json"], in: t.twin.url)
        let remoteStaked = try t.cli.run(["node", "add", "gpu3", "--stake", "2", "--json", "--keys", twinKeys, "--registry", t.registry.base],
                                         in: t.elsewhere.url, environment: ["PROVENANCE_TOKEN": t.admin])
        #expect(staked.succeeded && remoteStaked.succeeded && remoteStaked.stdout == staked.stdout, "remote \(remoteStaked) local \(staked)")
        try t.same(["account", "balance", "stake:gpu3", "--raw"], token: t.admin)

        try t.same(["model", "price", "m", "--raw", "--input-per-1k", "2000", "--output-per-1k", "1", "--min-fee", "7"], token: t.admin)
        try t.same(call + ["--idempotency-key", "r4"], token: t.node, remoteExtra: keys)
        try t.same(["model", "set-plugin", "m", "data-volume", "--unit", "lines"], token: t.admin)
        // After all that, both ledgers verify, and their statements and invoices agree.
        try t.same(["verify"], token: t.admin)
        // (The statement's table has no time column; its JSON has the seconds each store wrote.)
        for account in ["alice", "bob", "platform", "dev@example.org"] {
            try t.same(["account", "statement", account, "--invoices"], token: t.admin)
        }
        try t.same(["invoice", "list"], token: t.admin)
        try t.same(["invoice", "list", "--model", "m", "--account", "alice"], token: t.admin)
    }

    @Test func readsOfTheLedgerAreTheSameRemotely() throws {
        let (cli, registry) = try RemoteCommandTests.served()
        let admin = try cli.must("token", "create", "--role", "admin", "--subject", "ops").output
        let caller = ["PROVENANCE_TOKEN": try cli.must("token", "create", "--role", "caller", "--subject", "alice").output]
        let env = ["PROVENANCE_TOKEN": admin]
        for account in ["alice", "platform", "dev@example.org", "node:gpu1"] {
            for extra in [[], ["--invoices"], ["--json"], ["--invoices", "--json"], ["--raw"]] {
                try RemoteCommandTests.expectSame(cli, registry, ["account", "statement", account] + extra, environment: env)
            }
        }
        try RemoteCommandTests.expectSame(cli, registry, ["account", "statement", "alice", "--invoices"], environment: caller)
        for extra in [[], ["--json"], ["--account", "alice"], ["--account", "ada@example.org", "--json"], ["--model", "m"]] {
            try RemoteCommandTests.expectSame(cli, registry, ["invoice", "list"] + extra)
        }
        for extra in [[], ["--from", "2000-01-01"], ["--to", "1000"]] {
            try RemoteCommandTests.expectSame(cli, registry, ["invoice", "bundle", "--account", "alice"] + extra)
            try RemoteCommandTests.expectSame(cli, registry, ["invoice", "bundle", "--account", "grace@example.org"] + extra)
        }
        for json in [[], ["--json"]] {
            try RemoteCommandTests.expectSame(cli, registry, ["ledger", "checkpoint"] + json)
            try RemoteCommandTests.expectSame(cli, registry, ["model", "show", "m@2"] + json)
            try RemoteCommandTests.expectSame(cli, registry, ["model", "show", "m@1"] + json)
            try RemoteCommandTests.expectSame(cli, registry, ["model", "plugin-history", "m"] + json)
            try RemoteCommandTests.expectSame(cli, registry, ["verify"] + json, environment: env)
        }
    }

    @Test func aModelVersionRegisteredRemotelyIsTheOneTheStoreShows() throws {
        let (cli, registry) = try RemoteCommandTests.served()
        let developer = try cli.must("token", "create", "--role", "developer", "--subject", "dev@example.org").output
        let elsewhere = try TemporaryDirectory("provenance-remote-client")
        try elsewhere.write("logs/train.log", "step 1 loss 2.0\n")
        let registered = try cli.run(["model", "register", "m@3", "--developer", "Dev <dev@example.org>", "--dataset", "poems",
                                      "--base", "m@2", "--training-log", "logs/train.log", "--registry", registry.base],
                                     in: elsewhere.url, environment: ["PROVENANCE_TOKEN": developer])
        #expect(registered.succeeded && registered.output.count == 40, "\(registered)")
        #expect(try cli.json(ModelVersionInfo.self, "model", "show", "m@3").commit == registered.output)
        try RemoteCommandTests.expectSame(cli, registry, ["model", "show", "m@3", "--json"])
        try RemoteCommandTests.expectSame(cli, registry, ["trace", "m@3"])
        // Weights are hashed into a local store's manifest; the API takes none: one line, nothing written.
        try elsewhere.write("w.bin", "weights")
        let before = try cli.snapshot()
        let weights = try cli.run(["model", "register", "m@4", "--developer", "Dev <dev@example.org>", "--weights", "w.bin", "--registry", registry.base],
                                  in: elsewhere.url, environment: ["PROVENANCE_TOKEN": developer])
        #expect(weights.status != 0 && weights.stdout.isEmpty && weights.errorLines.count == 1 && weights.stderr.contains("--weights works only on a local store"),
                "\(weights)")
        #expect(try cli.snapshot() == before)
    }

    @Test func remoteWritesAreRefusedInOneLineAndChangeNothing() throws {
        let t = try Self.twins()
        let elsewhere = t.elsewhere
        let before = try t.cli.snapshot()
        func refused(_ arguments: [String], token: String?, mentioning text: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
            let result = try t.cli.run(arguments + ["--registry", t.registry.base], in: elsewhere.url,
                                       environment: token.map { ["PROVENANCE_TOKEN": $0] } ?? [:])
            #expect(result.status != 0 && !result.signalled && result.stdout.isEmpty, "\(arguments): \(result)", sourceLocation: sourceLocation)
            #expect(result.errorLines.count == 1 && result.stderr.contains(text), "\(arguments): \(result.stderr)", sourceLocation: sourceLocation)
        }
        let call = ["call", "m@2", "--caller", "alice", "--node", "gpu1", "--input-tokens", "1", "--output-tokens", "1", "--latency-ms", "1"]
        try refused(call, token: t.node, mentioning: "give --keys DIR")
        try refused(call + ["--keys", elsewhere.url.path], token: t.node, mentioning: "no private key for node 'gpu1'")
        try refused(call + ["--keys", t.cli.store.appendingPathComponent("keys").path], token: nil, mentioning: "401")
        try refused(["account", "deposit", "bob", "5"], token: t.node, mentioning: "403")
        try refused(["account", "withdraw", "alice", "1000000"], token: t.admin, mentioning: "402")
        try refused(["account", "statement", "alice"], token: nil, mentioning: "401")
        try refused(["settle"], token: t.node, mentioning: "403")
        try refused(["model", "price", "m", "--input-per-1k", "1", "--output-per-1k", "1"], token: t.node, mentioning: "403")
        try refused(["node", "add", "gpu9", "--keys", elsewhere.path("keys").path], token: t.node, mentioning: "403")
        // The key made for a registration the registry refused is not left behind.
        #expect(!FileManager.default.fileExists(atPath: elsewhere.path("keys/node-gpu9.ed25519").path))
        try refused(["invoice", "list", "--account", "Not An Account"], token: nil, mentioning: "account")
        #expect(try t.cli.snapshot() == before)
        // --keys belongs to --registry.
        let local = try t.cli.run(call + ["--keys", "/tmp"], in: t.twin.url)
        #expect(local.status != 0 && local.errorLines.count == 1 && local.stderr.contains("--keys is for --registry"), "\(local)")
    }

    /// Commands that only make sense on this machine refuse a registry in one line, with a
    /// non-zero exit, and touch nothing.
    @Test func localOnlyCommandsRefuseARegistry() throws {
        let (cli, registry) = try RemoteCommandTests.served()
        let elsewhere = try TemporaryDirectory("provenance-remote-client")
        let before = try cli.snapshot()
        let localOnly: [(command: String, arguments: [String])] = [
            ("init", []), ("reindex", []), ("index build", ["m@1"]), ("serve", []), ("plugins", []), ("manifest", ["poems"]),
            ("export-attestation", ["m@1"]), ("token create", ["--role", "admin", "--subject", "x"]), ("token list", []),
            ("token revoke", ["tok_x"]),
        ]
        for (command, rest) in localOnly {
            let arguments = command.split(separator: " ").map(String.init) + rest
            for option in [["--registry", registry.base], ["--token-file", "/nonexistent"]] {
                let result = try cli.run(arguments + option, in: elsewhere.url)
                #expect(result.status != 0 && !result.signalled && result.stdout.isEmpty, "\(arguments): \(result)")
                #expect(result.errorLines.count == 1 && result.stderr.contains("provenance \(command) works only on a local store: drop \(option[0])"),
                        "\(arguments): \(result.stderr)")
            }
            // $PROVENANCE_REGISTRY means the registry too: the store found here is not used…
            let implicit = try cli.run(arguments, environment: ["PROVENANCE_REGISTRY": registry.base])
            #expect(implicit.status != 0 && implicit.stdout.isEmpty && implicit.errorLines.count == 1, "\(arguments): \(implicit)")
            #expect(implicit.stderr.contains("works only on a local store, and $PROVENANCE_REGISTRY names"), "\(arguments): \(implicit.stderr)")
        }
        #expect(try cli.snapshot() == before)
        #expect(!FileManager.default.fileExists(atPath: elsewhere.path(".provenance").path))
        // …unless --store names it.
        let explicit = try cli.run(["token", "list", "--store", cli.store.path], environment: ["PROVENANCE_REGISTRY": registry.base])
        #expect(explicit.succeeded, "\(explicit)")
        let datasets = try cli.run(["datasets", "--store", cli.store.path], environment: ["PROVENANCE_REGISTRY": registry.base])
        #expect(datasets.succeeded && datasets.stdout.contains("poems"), "\(datasets)")

        let witness = try cli.run(["witness", "key", "--dir", elsewhere.path("w").path, "--name", "w", "--registry", registry.base], in: elsewhere.url)
        #expect(witness.status != 0 && witness.errorLines.count == 1 && witness.stderr.contains("provenance witness key runs a witness on this machine"), "\(witness)")
        #expect(!FileManager.default.fileExists(atPath: elsewhere.path("w").path))

        // audit takes the registry as --registry or $PROVENANCE_REGISTRY too.
        let audited = try cli.run(["audit", "--state", elsewhere.path("audit.json").path], in: elsewhere.url,
                                  environment: ["PROVENANCE_REGISTRY": registry.base])
        #expect(audited.succeeded && audited.stdout.contains("audited  \(registry.base): ok"), "\(audited)")
        let auditedAgain = try cli.run(["audit", "--registry", registry.base, "--state", elsewhere.path("audit.json").path], in: elsewhere.url)
        #expect(auditedAgain.succeeded && auditedAgain.stdout.contains("unchanged since the last audit"), "\(auditedAgain)")
    }
}
