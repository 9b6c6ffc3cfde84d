import AttributionPlugins
import ArgumentParser
import Foundation
import ProvenanceCore
import RegistryAPI

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
    struct Deposit: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Move tokens from outside into an account (creating it).")
        @OptionGroup var movement: Movement

        func run() async throws {
            try await movement.run(verb: "deposited", preposition: "to", remote: { client, amount, account, key in
                switch try await client.deposit(path: .init(account: account), headers: .init(idempotencyKey: key),
                                                 body: .json(.init(amount: amount.description))) {
                case .created(let created): (try created.body.json, false)
                case .ok(let replayed): (try replayed.body.json, true)
                default: throw AuditError("the registry answered the deposit with a status the API does not document for it")
                }
            }) { store, amount, account, key in
                try store.deposit(amount, to: account, idempotencyKey: key)
            }
        }
    }

    struct Withdraw: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Move tokens out of an account; never beyond its balance.")
        @OptionGroup var movement: Movement

        func run() async throws {
            try await movement.run(verb: "withdrew", preposition: "from", remote: { client, amount, account, key in
                switch try await client.withdraw(path: .init(account: account), headers: .init(idempotencyKey: key),
                                                  body: .json(.init(amount: amount.description))) {
                case .created(let created): (try created.body.json, false)
                case .ok(let replayed): (try replayed.body.json, true)
                default: throw AuditError("the registry answered the withdrawal with a status the API does not document for it")
                }
            }) { store, amount, account, key in
                try store.withdraw(amount, from: account, idempotencyKey: key)
            }
        }
    }

    /// What deposit and withdraw share: the account, the amount, and how the transfer is shown.
    struct Movement: ParsableArguments {
        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var remote: RegistryOptions
        @OptionGroup var amounts: AmountOptions
        @OptionGroup var output: OutputOptions
        @Argument(help: "The account, e.g. alice@example.org or node:gpu1.") var account: String
        @Argument(help: "The amount, e.g. 12.5 (or base units with --raw).") var amount: String
        @Option(name: .customLong("idempotency-key"),
                help: ArgumentHelp("Retrying with the same key, account and amount moves the money once.", valueName: "KEY"))
        var idempotencyKey: String?

        func run(verb: String, preposition: String,
                 remote send: (Client, TokenAmount, String, String?) async throws -> (Components.Schemas.Transfer, Bool),
                 _ move: (Store, TokenAmount, String, String?) throws -> MoneyMovement) async throws {
            let movement: MoneyMovement
            if let client = try remote.client(storeOptions) {
                try Accounts.validate(account)
                let amount = try amounts.parse(amount)
                let (transfer, replayed) = try await client.call("the \(verb == "deposited" ? "deposit" : "withdrawal")") {
                    try await send($0, amount, account, idempotencyKey)
                }
                movement = MoneyMovement(transfer: try RegistryAnswers.transfer(transfer), replayed: replayed)
            } else {
                movement = try move(try storeOptions.open(), try amounts.parse(amount), account, idempotencyKey)
            }
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
                let answer = try await client.call("the balance") { try await $0.accountBalance(path: .init(account: account)).ok.body.json }
                balance = try RegistryAnswers.amount(answer.balanceRaw, "balance")
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

    struct Statement: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Every transfer in or out of an account, with the batch or invoice it came from.",
            discussion: """
                Settlement writes one transfer per account and cause for each batch (a group of real-time calls, or a \
                settlement of deferred calls); --invoices lists under each such line the invoices it adds up (or, for a \
                reservation, the calls), so every call that paid the account shows.
                """)
        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var remote: RegistryOptions
        @OptionGroup var amounts: AmountOptions
        @OptionGroup var output: OutputOptions
        @Argument(help: "The account.") var account: String
        @Flag(name: .customLong("invoices"), help: "Expand each batch line into the invoices (or reserved calls) it sums.")
        var expand = false

        func run() async throws {
            let lines: [StatementLine]
            if let client = try remote.client(storeOptions) {
                try Accounts.validate(account)
                let answer = try await client.call("the statement") {
                    try await $0.accountStatement(path: .init(account: account), query: .init(invoices: expand ? ._true : nil)).ok.body.json
                }
                lines = try answer.transfers.map(RegistryAnswers.statementLine)
            } else {
                lines = try storeOptions.open().statement(of: account, expand: expand)
            }
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

    struct AddNode: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "add",
            abstract: "Create a node: its Ed25519 key pair in keys/ (private key mode 0600) and its account node:NAME.",
            discussion: """
                With --registry URL the key pair is made here, in --keys DIR (as node-NAME.ed25519, mode 0600; an \
                existing one is used), and only the public key is sent: the registry never sees the private key.
                """)
        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var remote: RegistryOptions
        @OptionGroup var nodeKeys: NodeKeyOptions
        @OptionGroup var amounts: AmountOptions
        @OptionGroup var output: OutputOptions
        @Argument(help: "The node's name.") var name: String
        @Option(help: ArgumentHelp("Move this much from node:NAME (deposit it first) into stake:NAME.", valueName: "AMOUNT"))
        var stake: String?

        func run() async throws {
            let node: (name: String, publicKey: String, stake: TokenAmount)
            if let client = try remote.client(storeOptions) {
                try Names.validateNodeName(name)
                let stake = try stake.map(amounts.parse)
                let keys = try nodeKeys.keyStore(for: "node add")
                let (publicKey, created) = try keys.nodePublicKey(name, creatingIfMissing: true)
                do {
                    let answer = try await client.call("the node") {
                        try await $0.registerNode(body: .json(.init(name: name, publicKey: publicKey, stake: stake?.description))).created.body.json
                    }
                    node = (answer.name, answer.publicKey, try RegistryAnswers.amount(answer.stakeRaw, "stake"))
                } catch {
                    if created { keys.removeNodeKey(name) }  // a key made for a registration that did not happen
                    throw error
                }
            } else {
                guard nodeKeys.keys == nil else { throw ValidationError("--keys is for --registry: a local store keeps its nodes' keys in its keys/ folder") }
                let added = try storeOptions.open().addNode(name, stake: try stake.map(amounts.parse) ?? .zero)
                node = (added.name, added.publicKey, added.stake)
            }
            if output.json {
                struct JSON: Encodable { var name: String; var public_key: String; var stake: String; var account: String }
                return try Output.json(JSON(name: node.name, public_key: node.publicKey, stake: node.stake.description, account: "node:\(node.name)"))
            }
            print("node \(node.name): public key \(node.publicKey), stake \(amounts.show(node.stake))")
        }
    }
}

/// `--keys DIR`: where a node's private key lives when calls go to a registry, which never
/// holds it. The files are the ones a store keeps in keys/ (node-NAME.ed25519), so a store's
/// keys/ folder serves as well.
struct NodeKeyOptions: ParsableArguments {
    @Option(name: .customLong("keys"), help: ArgumentHelp("With --registry: the folder holding the node's private key, node-NAME.ed25519 (a store's keys/ folder does).",
                                                          valueName: "DIR"))
    var keys: String?

    func keyStore(for command: String) throws -> KeyStore {
        guard let keys else {
            throw ValidationError("provenance \(command) --registry signs with the node's own key, which the registry never holds: give --keys DIR, the folder with node-NAME.ed25519")
        }
        return KeyStore(folder: URL(fileURLWithPath: keys, isDirectory: true))
    }
}

extension Provenance.Model {
    struct PriceCommand: AsyncParsableCommand {
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
        @OptionGroup var remote: RegistryOptions
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

        func run() async throws {
            let price = Price(inputPer1k: try amounts.parse(inputPer1k), outputPer1k: try amounts.parse(outputPer1k),
                              minFee: try amounts.parse(minFee), split: try split.map(RoleSplit.init(parsing:)) ?? .standard,
                              sloMilliseconds: sloMs, sloPenaltyBps: sloPenaltyBps)
            if let client = try remote.client(storeOptions) {
                try Names.validateModelName(model)
                let bps = price.split.bps
                let split = Components.Schemas.SetPriceRequest.SplitPayload(
                    developer: Int(bps[.developer] ?? 0), data: Int(bps[.data] ?? 0), node: Int(bps[.node] ?? 0),
                    platform: Int(bps[.platform] ?? 0), router: bps[.router].map(Int.init))
                guard sloMs.map({ (1...UInt64(Int64.max)).contains($0) }) ?? true else { throw ValidationError("--slo-ms must be between 1 and \(Int64.max)") }
                _ = try await client.call("the price") {
                    try await $0.setModelPrice(path: .init(model: model), body: .json(.init(
                        inputPer1k: price.inputPer1k.description, outputPer1k: price.outputPer1k.description, minFee: price.minFee.description,
                        split: split, sloMs: sloMs.map(Int.init), sloPenaltyBps: Int(sloPenaltyBps)))).ok.body.json
                }
            } else {
                try storeOptions.open().setPrice(price, model: model)
            }
            print("\(model): \(amounts.show(price.inputPer1k)) per 1k input, \(amounts.show(price.outputPer1k)) per 1k output, min fee \(amounts.show(price.minFee)), split \(price.split.description)\(price.sloMilliseconds.map { ", SLO \($0) ms (penalty \(price.sloPenaltyBps) bps)" } ?? "")")
        }
    }
}

extension Provenance {
    struct Call: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Report a call of a model version, signed by the node, and settle it (or reserve its fee with --defer).",
            discussion: """
                With --registry URL (and a node token) the record is signed here with the node's key from --keys DIR \
                and sent to the registry, which checks the signature against the node's registered key.
                """)
        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var remote: RegistryOptions
        @OptionGroup var nodeKeys: NodeKeyOptions
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
        @Option(name: .customLong("idempotency-key"), help: ArgumentHelp("Retrying with the same key and record returns the same invoice (default: a new UUIDv7, time-ordered).", valueName: "KEY")) var idempotencyKey: String?
        @Flag(name: .customLong("defer"), help: "Reserve the fee now and settle later with `provenance settle`.") var deferred = false

        func run() async throws {
            let client = try remote.client(storeOptions)
            if client == nil, nodeKeys.keys != nil {
                throw ValidationError("--keys is for --registry: a local store signs with its nodes' keys in its keys/ folder")
            }
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
            let outcome: CallOutcome
            if let client {
                outcome = try await submit(request, to: client)
            } else {
                outcome = try await storeOptions.open().call(request, deferred: deferred, resolver: pluginOptions.registry)
            }
            if output.json { return try Output.json(outcome) }
            switch outcome.status {
            case .settled: print("invoice \(outcome.invoice!): fee \(outcome.fee)\(outcome.replayed ? " (already settled)" : "")")
            case .pending: print("pending: fee \(outcome.fee) reserved\(outcome.replayed ? " (already reserved)" : ""); `provenance settle` settles it")
            }
        }

        /// Builds the record as a local call does (`Store.call`), signs it with the node's key
        /// from --keys, and submits it (`POST /v1/calls`).
        func submit(_ request: CallRequest, to client: RegistryClient) async throws -> CallOutcome {
            try Names.validateNodeName(request.node)
            let record = CallRecord(caller: request.caller, model: request.reference.model, version: request.reference.version,
                                    node: request.node, router: request.router, inputTokens: request.inputTokens,
                                    outputTokens: request.outputTokens, latencyMilliseconds: request.latencyMilliseconds,
                                    outputSHA256: request.outputSHA256 ?? request.outputText.map { SHA256Digest.hex(of: Data($0.utf8)) },
                                    idempotencyKey: request.idempotencyKey ?? IdempotencyKey.make())
            let signature = try CallSignature.sign(record, with: try nodeKeys.keyStore(for: "call").nodeKey(request.node))
            guard case .single(let signatureBytes) = signature else { throw AuditError("a single call's signature must be single") }
            let body = Components.Schemas.SubmitCallRequest(
                record: .init(caller: record.caller, model: record.model, version: record.version, node: record.node, router: record.router,
                              inputTokens: record.inputTokens, outputTokens: record.outputTokens, latencyMs: record.latencyMilliseconds,
                              outputSha256: record.outputSHA256, idempotencyKey: record.idempotencyKey),
                signature: .init(kind: .single, signature: signatureBytes.base64EncodedString()),
                deferred: deferred ? true : nil, outputText: request.outputText)
            let answer = try await client.call("the call") { client in
                switch try await client.submitCall(headers: .init(idempotencyKey: record.idempotencyKey), body: .json(body)) {
                case .created(let created): try created.body.json
                case .ok(let replayed): try replayed.body.json
                default: throw AuditError("the registry answered the call with a status the API does not document for it")
                }
            }
            return try RegistryClient.domain(answer, as: CallOutcome.self, "the call")
        }
    }

    struct Settle: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Settle every pending (deferred) call as one batch.")
        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var remote: RegistryOptions
        @OptionGroup var output: OutputOptions
        @OptionGroup var pluginOptions: PluginOptions
        @OptionGroup var progress: ProgressOptions

        func run() async throws {
            let report: SettlementReport
            if let client = try remote.client(storeOptions) {
                let answer = try await client.call("the settlement") { try await $0.settlePending().ok.body.json }
                report = try RegistryClient.domain(answer, as: SettlementReport.self, "the settlement")
            } else {
                let store = try storeOptions.open()
                report = try await progress.run { try await store.settlePending(resolver: pluginOptions.registry) }
            }
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
