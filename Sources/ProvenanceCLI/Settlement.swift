import AttributionPlugins
import ArgumentParser
import Foundation
import ProvenanceCore

/// `--raw`: amounts in base units instead of tokens.
struct AmountOptions: ParsableArguments {
    @Flag(help: "Read and print amounts as whole base units (10^-18 token) instead of token decimals.")
    var raw = false

    func parse(_ text: String) throws -> TokenAmount { try TokenAmount(parsing: text, raw: raw) }
    func show(_ amount: TokenAmount) -> String { raw ? amount.rawString : amount.description }
}

extension Provenance {
    struct Account: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Move money in and out, and read balances and statements.",
            subcommands: [Deposit.self, Withdraw.self, Balance.self, Statement.self])
    }
}

extension Provenance.Account {
    struct Deposit: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Move tokens from outside into an account (creating it).")
        @OptionGroup var movement: Movement

        func run() throws {
            try movement.run(verb: "deposited", preposition: "to") { store, amount, account, key in
                try store.deposit(amount, to: account, idempotencyKey: key)
            }
        }
    }

    struct Withdraw: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Move tokens out of an account; never beyond its balance.")
        @OptionGroup var movement: Movement

        func run() throws {
            try movement.run(verb: "withdrew", preposition: "from") { store, amount, account, key in
                try store.withdraw(amount, from: account, idempotencyKey: key)
            }
        }
    }

    /// What deposit and withdraw share: the account, the amount, and how the transfer is shown.
    struct Movement: ParsableArguments {
        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var amounts: AmountOptions
        @OptionGroup var output: OutputOptions
        @Argument(help: "The account, e.g. alice@example.org or node:gpu1.") var account: String
        @Argument(help: "The amount, e.g. 12.5 (or base units with --raw).") var amount: String
        @Option(name: .customLong("idempotency-key"),
                help: ArgumentHelp("Retrying with the same key, account and amount moves the money once.", valueName: "KEY"))
        var idempotencyKey: String?

        func run(verb: String, preposition: String, _ move: (Store, TokenAmount, String, String?) throws -> MoneyMovement) throws {
            let movement = try move(try storeOptions.open(), try amounts.parse(amount), account, idempotencyKey)
            if output.json { return try Output.json(movement.transfer) }
            print("\(verb) \(amounts.show(movement.transfer.amount)) \(preposition) \(account)\(movement.replayed ? " (already done under this key)" : "")")
        }
    }

    struct Balance: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print an account's balance.")
        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var remote: RegistryOptions
        @OptionGroup var amounts: AmountOptions
        @OptionGroup var output: OutputOptions
        @Argument(help: "The account.") var account: String

        func run() async throws {
            let balance: TokenAmount
            if let client = try remote.client(storeOptions) {
                try Accounts.validate(account)
                struct Answer: Decodable { var balance_raw: String }
                let answer = try await client.json("/v1/accounts/\(try RegistryClient.queryValue(account))/balance", as: Answer.self)
                guard let amount = TokenAmount(rawString: answer.balance_raw) else {
                    throw AuditError("the registry's balance '\(answer.balance_raw.prefix(80))' is not an amount")
                }
                balance = amount
            } else {
                balance = try storeOptions.open().balance(of: account)
            }
            if output.json {
                struct JSON: Encodable { var account: String; var balance: String; var balance_raw: String }
                return try Output.json(JSON(account: account, balance: balance.description, balance_raw: balance.rawString))
            }
            print(amounts.show(balance))
        }
    }

    struct Statement: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Every transfer in or out of an account, with the batch or invoice it came from.",
            discussion: """
                Settlement writes one transfer per account and cause for each batch (a group of real-time calls, or a \
                settlement of deferred calls); --invoices lists under each such line the invoices it adds up (or, for a \
                reservation, the calls), so every call that paid the account shows.
                """)
        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var amounts: AmountOptions
        @OptionGroup var output: OutputOptions
        @Argument(help: "The account.") var account: String
        @Flag(name: .customLong("invoices"), help: "Expand each batch line into the invoices (or reserved calls) it sums.")
        var expand = false

        func run() throws {
            let lines = try storeOptions.open().statement(of: account, expand: expand)
            if output.json { return try Output.json(lines) }
            var rows: [[String]] = []
            for line in lines {
                let transfer = line.transfer
                let sign = transfer.to == account ? "+" : "-"
                rows.append(["\(transfer.sequence)", transfer.cause.rawValue, transfer.from, transfer.to, sign + amounts.show(transfer.amount),
                             transfer.batch.map(Store.batchName) ?? transfer.invoice.map { "invoice \($0)" } ?? "-"])
                for item in line.items ?? [] {
                    rows.append(["", "", "", "", sign + amounts.show(item.amount), item.invoice.map { "  invoice \($0)" } ?? "  call \(item.call ?? "")"])
                }
            }
            Output.table(["#", "CAUSE", "FROM", "TO", "AMOUNT", "SOURCE"], rows, rightAligned: [0, 4])
        }
    }
}

extension Provenance {
    struct Node: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Register inference nodes.", subcommands: [AddNode.self])
    }

    struct AddNode: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "add",
            abstract: "Create a node: its Ed25519 key pair in keys/ (private key mode 0600) and its account node:NAME.")
        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var amounts: AmountOptions
        @OptionGroup var output: OutputOptions
        @Argument(help: "The node's name.") var name: String
        @Option(help: ArgumentHelp("Move this much from node:NAME (deposit it first) into stake:NAME.", valueName: "AMOUNT"))
        var stake: String?

        func run() throws {
            let node = try storeOptions.open().addNode(name, stake: try stake.map(amounts.parse) ?? .zero)
            if output.json {
                struct JSON: Encodable { var name: String; var public_key: String; var stake: String; var account: String }
                return try Output.json(JSON(name: node.name, public_key: node.publicKey, stake: node.stake.description, account: "node:\(node.name)"))
            }
            print("node \(node.name): public key \(node.publicKey), stake \(amounts.show(node.stake))")
        }
    }
}

extension Provenance.Model {
    struct PriceCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "price",
            abstract: "Set a model's price, the split of every fee over the roles, and its latency SLO.",
            discussion: """
                fee = max(min fee, ceil((input tokens × input rate + output tokens × output rate) / 1000)). The split is in \
                basis points and must sum to 10000 (default developer=2000,data=5000,node=2000,platform=1000); without a \
                router on a call, its share goes to the platform. When a call's latency exceeds --slo-ms, --slo-penalty-bps \
                of the node's share is refunded to the caller.
                """)
        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var amounts: AmountOptions
        @Argument(help: "The model.") var model: String
        @Option(name: .customLong("input-per-1k"), help: ArgumentHelp("Price of 1,000 input tokens.", valueName: "AMOUNT")) var inputPer1k: String
        @Option(name: .customLong("output-per-1k"), help: ArgumentHelp("Price of 1,000 output tokens.", valueName: "AMOUNT")) var outputPer1k: String
        @Option(name: .customLong("min-fee"), help: ArgumentHelp("The least a call costs.", valueName: "AMOUNT")) var minFee: String = "0"
        @Option(help: ArgumentHelp("developer=BPS,data=BPS,node=BPS,platform=BPS[,router=BPS]", valueName: "SPLIT")) var split: String?
        @Option(name: .customLong("slo-ms"), help: ArgumentHelp("Latency target in milliseconds.", valueName: "N")) var sloMs: UInt64?
        @Option(name: .customLong("slo-penalty-bps"), help: ArgumentHelp("Basis points of the node's share refunded when the SLO is missed.", valueName: "N"))
        var sloPenaltyBps: UInt32 = 0

        func validate() throws {
            if sloPenaltyBps > 0 && sloMs == nil { throw ValidationError("--slo-penalty-bps needs --slo-ms") }
        }

        func run() throws {
            let price = Price(inputPer1k: try amounts.parse(inputPer1k), outputPer1k: try amounts.parse(outputPer1k),
                              minFee: try amounts.parse(minFee), split: try split.map(RoleSplit.init(parsing:)) ?? .standard,
                              sloMilliseconds: sloMs, sloPenaltyBps: sloPenaltyBps)
            try storeOptions.open().setPrice(price, model: model)
            print("\(model): \(amounts.show(price.inputPer1k)) per 1k input, \(amounts.show(price.outputPer1k)) per 1k output, min fee \(amounts.show(price.minFee)), split \(price.split.description)\(price.sloMilliseconds.map { ", SLO \($0) ms (penalty \(price.sloPenaltyBps) bps)" } ?? "")")
        }
    }
}

extension Provenance {
    struct Call: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Report a call of a model version, signed by the node, and settle it (or reserve its fee with --defer).")
        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var output: OutputOptions
        @OptionGroup var pluginOptions: PluginOptions
        @Argument(help: "MODEL@VERSION.") var reference: String
        @Option(help: ArgumentHelp("The paying account.", valueName: "ACCOUNT")) var caller: String
        @Option(help: ArgumentHelp("The node that served the call (its key signs the record).", valueName: "NAME")) var node: String
        @Option(help: ArgumentHelp("The router's account, if a router placed the call.", valueName: "ACCOUNT")) var router: String?
        @Option(name: .customLong("input-tokens"), help: ArgumentHelp("Input tokens.", valueName: "N")) var inputTokens: UInt64
        @Option(name: .customLong("output-tokens"), help: ArgumentHelp("Output tokens.", valueName: "N")) var outputTokens: UInt64
        @Option(name: .customLong("latency-ms"), help: ArgumentHelp("Latency in milliseconds.", valueName: "N")) var latencyMs: UInt64
        @Option(name: .customLong("output-file"), help: ArgumentHelp("The output text; its SHA-256 goes into the record.", valueName: "FILE")) var outputFile: String?
        @Option(name: .customLong("idempotency-key"), help: ArgumentHelp("Retrying with the same key and record returns the same invoice.", valueName: "KEY")) var idempotencyKey: String?
        @Flag(name: .customLong("defer"), help: "Reserve the fee now and settle later with `provenance settle`.") var deferred = false

        func run() async throws {
            let store = try storeOptions.open()
            var outputSHA256: String?
            var outputText: String?
            if let outputFile {
                let url = URL(fileURLWithPath: outputFile, relativeTo: storeOptions.workingDirectory)
                guard FileManager.default.fileExists(atPath: url.path) else { throw ValidationError("--output-file '\(outputFile)' does not exist") }
                outputSHA256 = try SHA256Digest.hex(ofFileAt: url).sha256
                // A text output (UTF-8, at most 1 MiB) goes along for a per-call plugin such as span-match.
                outputText = OutputText.read(url)
            }
            let request = CallRequest(reference: try Names.parseModelVersion(reference), caller: caller, node: node, router: router,
                                      inputTokens: inputTokens, outputTokens: outputTokens, latencyMilliseconds: latencyMs,
                                      outputSHA256: outputSHA256, idempotencyKey: idempotencyKey, outputText: outputText)
            let outcome = try await store.call(request, deferred: deferred, resolver: pluginOptions.registry)
            if output.json { return try Output.json(outcome) }
            switch outcome.status {
            case .settled: print("invoice \(outcome.invoice!): fee \(outcome.fee)\(outcome.replayed ? " (already settled)" : "")")
            case .pending: print("pending: fee \(outcome.fee) reserved\(outcome.replayed ? " (already reserved)" : ""); `provenance settle` settles it")
            }
        }
    }

    struct Settle: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Settle every pending (deferred) call as one batch.")
        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var output: OutputOptions
        @OptionGroup var pluginOptions: PluginOptions
        @OptionGroup var progress: ProgressOptions

        func run() async throws {
            let store = try storeOptions.open()
            let report = try await progress.run { try await store.settlePending(resolver: pluginOptions.registry) }
            if output.json { return try Output.json(report) }
            if report.settled == 0 { return print("nothing to settle") }
            print("settled \(report.settled) call(s) as \(report.batch!): invoices \(report.invoices.first!)-\(report.invoices.last!), ledger size \(report.treeSize)")
        }
    }
}

/// A call's output file as text, when it is UTF-8 of at most 1 MiB (the bytes round-trip, so
/// their SHA-256 is the file's).
enum OutputText {
    static let maxBytes = 1 << 20

    static func read(_ url: URL) -> String? {
        guard let data = try? Data(contentsOf: url), data.count <= maxBytes, let text = String(data: data, encoding: .utf8),
              Data(text.utf8) == data
        else { return nil }
        return text
    }
}
