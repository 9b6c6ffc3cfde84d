import Foundation
import Crypto
import GitKit

/// A call as `provenance call` describes it, before the node signs it.
public struct CallRequest: Sendable {
    public var reference: ModelVersionReference
    public var caller: String
    public var node: String
    public var router: String?
    public var inputTokens: UInt64
    public var outputTokens: UInt64
    public var latencyMilliseconds: UInt64
    public var outputSHA256: String?
    public var idempotencyKey: String?

    public init(reference: ModelVersionReference, caller: String, node: String, router: String?, inputTokens: UInt64,
                outputTokens: UInt64, latencyMilliseconds: UInt64, outputSHA256: String?, idempotencyKey: String?) {
        self.reference = reference
        self.caller = caller
        self.node = node
        self.router = router
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
        self.latencyMilliseconds = latencyMilliseconds
        self.outputSHA256 = outputSHA256
        self.idempotencyKey = idempotencyKey
    }
}

/// What happened to one submitted call.
public struct CallOutcome: Codable, Sendable, Equatable {
    public enum Status: String, Codable, Sendable { case settled, pending }

    public var status: Status
    /// True when the idempotency key had been seen with the same record: nothing new happened.
    public var replayed: Bool
    public var idempotencyKey: String
    public var record: String
    public var invoice: Int?
    public var fee: String

    enum CodingKeys: String, CodingKey {
        case status, replayed, record, invoice, fee
        case idempotencyKey = "idempotency_key"
    }
}

/// What `settle` did.
public struct SettlementReport: Codable, Sendable, Equatable {
    public var batch: String?
    public var settled: Int
    public var invoices: [Int]
    public var treeSize: Int

    enum CodingKeys: String, CodingKey {
        case batch, settled, invoices
        case treeSize = "tree_size"
    }
}

extension Store {
    public var keyStore: KeyStore { KeyStore(folder: keysURL) }
    public var ledger: any LedgerStorage {
        guard let storage = index as? any LedgerStorage else { preconditionFailure("the index has no ledger storage") }
        return storage
    }

    /// The checkpoint origin: names this store's log, derived from the registry's public key.
    public func ledgerOrigin() throws -> String {
        let key = try keyStore.registryKey().publicKey.rawRepresentation
        return "provenance.ledger/" + String(SHA256Digest.hex(of: key).prefix(16))
    }

    public func noteSigner() throws -> NoteSigner {
        try caches.signer { NoteSigner(name: try ledgerOrigin(), privateKey: try keyStore.registryKey()) }
    }

    static func now() -> Int64 { Int64(Date().timeIntervalSince1970) }

    // MARK: Accounts

    /// Moves `amount` from the external account into `account` (created on first deposit).
    public func deposit(_ amount: TokenAmount, to account: String) throws -> Transfer {
        try Accounts.validate(account)
        try Self.refuseInternal(account)
        guard amount.raw > 0 else { throw ProvenanceError.invalid("deposit of \(amount): the amount must be more than zero") }
        return try ledger.writeLedger { ledger in
            var book = try Book(ledger)
            let transfer = try book.move(amount, from: Accounts.external, to: account, cause: .deposit)
            try book.commit()
            return transfer
        }
    }

    /// Moves `amount` out of `account` to the external account; refused beyond the balance.
    public func withdraw(_ amount: TokenAmount, from account: String) throws -> Transfer {
        try Accounts.validate(account)
        try Self.refuseInternal(account)
        guard amount.raw > 0 else { throw ProvenanceError.invalid("withdrawal of \(amount): the amount must be more than zero") }
        return try ledger.writeLedger { ledger in
            var book = try Book(ledger)
            guard try ledger.balance(of: account) != nil else { throw Self.unknownAccount(account) }
            try book.requireFunds(amount, in: account, for: "withdraw \(amount)")
            let transfer = try book.move(amount, from: account, to: Accounts.external, cause: .withdrawal)
            try book.commit()
            return transfer
        }
    }

    static func refuseInternal(_ account: String) throws {
        if [Accounts.external, Accounts.clearing, Accounts.escrow].contains(account) || account.hasPrefix("stake:") {
            throw ProvenanceError.invalid("'\(account)' is an internal account; money reaches it only through the ledger")
        }
    }

    static func unknownAccount(_ account: String) -> ProvenanceError {
        .notFound("unknown account '\(account)': an account exists once money reaches it (`provenance account deposit \(account) AMOUNT`)")
    }

    public func balance(of account: String) throws -> TokenAmount {
        try Accounts.validate(account)
        guard let balance = try ledger.readLedger({ try $0.balance(of: account) }) else { throw Self.unknownAccount(account) }
        return balance
    }

    /// Every transfer in or out of `account`, oldest first.
    public func statement(of account: String) throws -> [Transfer] {
        try Accounts.validate(account)
        return try ledger.readLedger { ledger in
            guard try ledger.balance(of: account) != nil else { throw Self.unknownAccount(account) }
            return try ledger.transfers(account: account)
        }
    }

    // MARK: Nodes and prices

    /// Creates node `name`: its Ed25519 key pair in `keys/` and its account; `stake` moves from
    /// the node's account (which must hold it) into `stake:NAME`.
    public func addNode(_ name: String, stake: TokenAmount) throws -> NodeRecord {
        try Names.validateNodeName(name)
        return try withWriteLock {
            if try ledger.readLedger({ try $0.node(named: name) }) != nil {
                throw ProvenanceError.conflict("node '\(name)' already exists")
            }
            keyStore.removeNodeKey(name)  // a key left by an add that never committed
            let key = try keyStore.createNodeKey(name)
            do {
                return try ledger.writeLedger { ledger in
                    var book = try Book(ledger)
                    let node = NodeRecord(name: name, publicKey: key.publicKey.rawRepresentation.base64EncodedString(), stake: stake)
                    try ledger.insert(node)
                    let account = Accounts.node(name)
                    if try ledger.balance(of: account) == nil { try book.open(account) }
                    if stake.raw > 0 {
                        try book.requireFunds(stake, in: account, for: "stake \(stake)")
                        _ = try book.move(stake, from: account, to: Accounts.stake(name), cause: .stake)
                    }
                    try book.commit()
                    return node
                }
            } catch {
                keyStore.removeNodeKey(name)
                throw error
            }
        }
    }

    public func setPrice(_ price: Price, model: String) throws {
        try Names.validateModelName(model)
        guard try index.model(named: model) != nil else {
            throw ProvenanceError.notFound("unknown model '\(model)': `provenance model list` shows the registered models")
        }
        if let slo = price.sloMilliseconds, slo == 0 || slo > UInt64(Int64.max) {
            throw ProvenanceError.invalid("--slo-ms must be between 1 and \(Int64.max)")
        }
        guard price.sloPenaltyBps <= RoleSplit.basisPoints else {
            throw ProvenanceError.invalid("--slo-penalty-bps \(price.sloPenaltyBps) is more than 10000 (the whole node share)")
        }
        _ = try price.fee(inputTokens: 0, outputTokens: 0)
        try ledger.writeLedger { try $0.setPrice(price, model: model, at: Self.now()) }
    }

    public func price(model: String) throws -> Price {
        guard let price = try ledger.readLedger({ try $0.price(model: model) }) else {
            throw ProvenanceError.notFound("model '\(model)' has no price: set one with `provenance model price \(model) --input-per-1k AMOUNT --output-per-1k AMOUNT`")
        }
        return price
    }

    // MARK: Calls

    /// Builds the call record, has the node sign it with its key from `keys/`, and submits it.
    public func call(_ request: CallRequest, deferred: Bool, resolver: any AttributionPluginResolver) async throws -> CallOutcome {
        let record = CallRecord(caller: request.caller, model: request.reference.model, version: request.reference.version,
                                node: request.node, router: request.router, inputTokens: request.inputTokens,
                                outputTokens: request.outputTokens, latencyMilliseconds: request.latencyMilliseconds,
                                outputSHA256: request.outputSHA256, idempotencyKey: request.idempotencyKey ?? UUID().uuidString.lowercased())
        // submit checks the parties; the node's key must exist before it can sign.
        let signature = try CallSignature.sign(record, with: try keyStore.nodeKey(request.node))
        return try await submit([(record, signature)], deferred: deferred, resolver: resolver)[0]
    }

    func validateParties(_ record: CallRecord) throws {
        try Accounts.validate(record.caller)
        try Self.refuseInternal(record.caller)
        if let router = record.router {
            try Accounts.validate(router)
            try Self.refuseInternal(router)
        }
        guard !record.idempotencyKey.isEmpty, record.idempotencyKey.utf8.count <= 200 else {
            throw ProvenanceError.invalid("an idempotency key must be 1-200 bytes")
        }
    }

    /// Settles signed calls (or, `deferred`, reserves their fees) in one transaction: every
    /// call is charged and paid out, or none is.
    public func submit(_ calls: [(CallRecord, CallSignature)], deferred: Bool,
                       resolver: any AttributionPluginResolver) async throws -> [CallOutcome] {
        guard !calls.isEmpty else { return [] }
        var levelsByVersion: [ModelVersionReference: [InvoiceLevel]] = [:]
        var prices: [String: Price] = [:]
        var nodes: [String: NodeRecord] = [:]
        var keys: [String: Curve25519.Signing.PublicKey] = [:]
        var verifiedBatches = Set<Data>()
        for (record, signature) in calls {
            try validateParties(record)
            let reference = ModelVersionReference(model: record.model, version: record.version)
            if levelsByVersion[reference] == nil {
                _ = try modelVersion(reference)
                if prices[record.model] == nil { prices[record.model] = try price(model: record.model) }
                if !deferred { levelsByVersion[reference] = try await invoiceLevels(for: reference, resolver: resolver) }
                else { levelsByVersion[reference] = [] }
            }
            if nodes[record.node] == nil {
                guard let node = try ledger.readLedger({ try $0.node(named: record.node) }) else {
                    throw ProvenanceError.notFound("unknown node '\(record.node)': `provenance node add \(record.node)` creates it")
                }
                nodes[record.node] = node
            }
            if keys[record.node] == nil, let keyData = Data(base64Encoded: nodes[record.node]!.publicKey) {
                keys[record.node] = try? Curve25519.Signing.PublicKey(rawRepresentation: keyData)
            }
            guard let key = keys[record.node], signature.verify(record: record, publicKey: key, verifiedBatches: &verifiedBatches) else {
                throw ProvenanceError.invalid("bad signature: the call record for key '\(record.idempotencyKey)' is not signed by node '\(record.node)'")
            }
        }
        let signer = deferred ? nil : try noteSigner()
        return try ledger.writeLedger { ledger in
            var book = try Book(ledger)
            var outcomes: [CallOutcome] = []
            var seen: [String: String] = [:]
            for (record, signature) in calls {
                let digest = record.digest
                if let earlier = seen[record.idempotencyKey] {
                    guard earlier == digest else { throw Self.keyReused(record.idempotencyKey) }
                    outcomes.append(outcomes.first { $0.idempotencyKey == record.idempotencyKey }!.replay())
                    continue
                }
                seen[record.idempotencyKey] = digest
                if let status = try ledger.callStatus(idempotencyKey: record.idempotencyKey) {
                    guard status.digest == digest else { throw Self.keyReused(record.idempotencyKey) }
                    let price = prices[record.model]!
                    let fee = try price.fee(inputTokens: record.inputTokens, outputTokens: record.outputTokens)
                    switch status {
                    case .settled(_, let invoice):
                        outcomes.append(CallOutcome(status: .settled, replayed: true, idempotencyKey: record.idempotencyKey,
                                                    record: digest, invoice: invoice, fee: fee.description))
                    case .pending:
                        outcomes.append(CallOutcome(status: .pending, replayed: true, idempotencyKey: record.idempotencyKey,
                                                    record: digest, invoice: nil, fee: fee.description))
                    }
                    continue
                }
                let price = prices[record.model]!
                let fee = try price.fee(inputTokens: record.inputTokens, outputTokens: record.outputTokens)
                guard try ledger.balance(of: record.caller) != nil || book.knows(record.caller) else {
                    throw Self.unknownAccount(record.caller)
                }
                try book.requireFunds(fee, in: record.caller, for: "a call costing \(fee)")
                if deferred {
                    _ = try book.move(fee, from: record.caller, to: Accounts.escrow, cause: .reserve, call: digest)
                    try ledger.insertPending(PendingCall(record: record, signature: signature, price: price, fee: fee), at: book.time)
                    outcomes.append(CallOutcome(status: .pending, replayed: false, idempotencyKey: record.idempotencyKey,
                                                record: digest, invoice: nil, fee: fee.description))
                } else {
                    let reference = ModelVersionReference(model: record.model, version: record.version)
                    let index = try book.settle(record: record, signature: signature, node: nodes[record.node]!, price: price,
                                                levels: levelsByVersion[reference]!, from: record.caller, mode: .realtime, batch: nil)
                    outcomes.append(CallOutcome(status: .settled, replayed: false, idempotencyKey: record.idempotencyKey,
                                                record: digest, invoice: index, fee: fee.description))
                }
            }
            if let signer { try book.checkpoint(signer) }
            try book.commit()
            return outcomes
        }
    }

    static func keyReused(_ key: String) -> ProvenanceError {
        .conflict("idempotency key '\(key)' was already used for a different call record; a key names one call")
    }

    /// Settles every pending call as one batch, with one checkpoint.
    public func settlePending(resolver: any AttributionPluginResolver) async throws -> SettlementReport {
        let pending = try ledger.readLedger { try $0.pendingCalls() }
        var levelsByVersion: [ModelVersionReference: [InvoiceLevel]] = [:]
        for call in pending {
            let reference = ModelVersionReference(model: call.record.model, version: call.record.version)
            if levelsByVersion[reference] == nil { levelsByVersion[reference] = try await invoiceLevels(for: reference, resolver: resolver) }
        }
        let signer = try noteSigner()
        return try ledger.writeLedger { ledger in
            var book = try Book(ledger)
            // Re-read inside the transaction: only calls still pending now are settled.
            let current = try ledger.pendingCalls()
            let batch = current.isEmpty ? nil : "batch-\(book.frontier.size)"
            var invoices: [Int] = []
            for call in current {
                let reference = ModelVersionReference(model: call.record.model, version: call.record.version)
                guard let levels = levelsByVersion[reference], let node = try ledger.node(named: call.record.node) else { continue }
                invoices.append(try book.settle(record: call.record, signature: call.signature, node: node, price: call.price,
                                                levels: levels, from: Accounts.escrow, mode: .batch, batch: batch))
            }
            if !invoices.isEmpty { try book.checkpoint(signer) }
            try book.commit()
            return SettlementReport(batch: invoices.isEmpty ? nil : batch, settled: invoices.count, invoices: invoices,
                                    treeSize: book.frontier.size)
        }
    }

    /// The lineage levels a call of `reference` pays: the version, then its bases while a share flows.
    ///
    /// Cached per version and active plugins for the life of the store: model versions and the
    /// dataset commits they name are immutable, and a plugin swap changes the key.
    func invoiceLevels(for reference: ModelVersionReference, resolver: any AttributionPluginResolver) async throws -> [InvoiceLevel] {
        var key = reference.description
        for version in try baseChain(from: reference) { key += "|" + (try index.model(named: version.model)?.plugin ?? "") }
        if let cached = caches.levels(key) { return cached }
        let levels = try await computeInvoiceLevels(for: reference, resolver: resolver)
        caches.setLevels(levels, for: key)
        return levels
    }

    private func computeInvoiceLevels(for reference: ModelVersionReference, resolver: any AttributionPluginResolver) async throws -> [InvoiceLevel] {
        var levels: [InvoiceLevel] = []
        var next: ModelVersionReference? = reference
        var visited = Set<ModelVersionReference>()
        while let current = next, visited.insert(current).inserted {
            let (record, manifest) = try modelVersion(current)
            let own = try await ownShares(current, override: nil, resolver: resolver, call: nil)
            let share: UInt64 = manifest.base == nil ? 0 : (manifest.datasets.isEmpty ? PartsPerBillion.whole : manifest.baseSharePPB ?? 0)
            levels.append(InvoiceLevel(
                model: current.model, version: current.version, modelCommit: record.commit, developer: manifest.developer.id,
                plugin: own.plugin, pluginVersion: own.pluginVersion, baseSharePPB: share,
                datasets: manifest.datasets.map { .init(dataset: $0.dataset, commit: $0.commit, manifestSHA256: $0.manifestSHA256) },
                trainingLogSHA256: manifest.trainingLogs.map(\.sha256),
                weights: own.shares.filter { $0.ppb > 0 }.sorted { $0.contributor < $1.contributor }
                    .map { InvoiceLevel.Weight(contributor: $0.contributor, ppb: $0.ppb) }))
            next = share > 0 ? manifest.base?.reference : nil
        }
        return levels
    }
}

extension CallOutcome {
    func replay() -> CallOutcome {
        var copy = self
        copy.replayed = true
        return copy
    }
}

/// Double-entry bookkeeping inside one ledger transaction: balances are read once, changed in
/// memory, and written back on `commit`; every move is a hash-chained transfer.
struct Book {
    let ledger: any LedgerWriter
    let time: Int64
    private var balances: [String: TokenAmount] = [:]
    private var opened = Set<String>()
    private var sequence: Int64
    private var lastHash: String
    var frontier: CompactRange

    init(_ ledger: any LedgerWriter) throws {
        self.ledger = ledger
        time = Store.now()
        (sequence, lastHash) = try ledger.lastTransfer()
        frontier = try ledger.frontier()
    }

    func knows(_ account: String) -> Bool { opened.contains(account) || balances[account] != nil }

    mutating func balance(_ account: String) throws -> TokenAmount {
        if let cached = balances[account] { return cached }
        let stored = try ledger.balance(of: account) ?? .zero
        balances[account] = stored
        return stored
    }

    mutating func open(_ account: String) throws {
        _ = try balance(account)
        opened.insert(account)
    }

    mutating func requireFunds(_ amount: TokenAmount, in account: String, for purpose: String) throws {
        let available = try balance(account)
        guard available >= amount else {
            throw ProvenanceError(.invalidArgument, "insufficient balance: \(account) holds \(available), \(purpose) needs \(amount)")
                .withCode(.insufficientFunds)
        }
    }

    @discardableResult
    mutating func move(_ amount: TokenAmount, from: String, to: String, cause: Transfer.Cause, invoice: Int? = nil,
                       call: String? = nil) throws -> Transfer {
        balances[from] = try balance(from).subtracting(amount)
        balances[to] = try balance(to).adding(amount)
        sequence += 1
        var transfer = Transfer(sequence: sequence, from: from, to: to, amount: amount, cause: cause, invoice: invoice, call: call,
                                createdAt: time, hash: "")
        transfer.hash = transfer.computeHash(previous: lastHash)
        lastHash = transfer.hash
        try ledger.insert(transfer)
        return transfer
    }

    /// Charges `from` (the caller, or escrow for a reserved call), pays everyone, refunds any
    /// SLO penalty to the caller, and appends the invoice to the ledger. Returns its index.
    mutating func settle(record: CallRecord, signature: CallSignature, node: NodeRecord, price: Price, levels: [InvoiceLevel],
                         from: String, mode: Invoice.Mode, batch: String?) throws -> Int {
        let computation = try SettlementComputation.compute(record: record, price: price, levels: levels)
        let index = frontier.size
        let invoice = Invoice(ledgerIndex: index, record: record, signature: signature, nodeKey: node.publicKey, levels: levels,
                              price: price, nodeStake: node.stake, mode: mode, batch: batch, computation: computation)
        let digest = record.digest
        try move(computation.fee, from: from, to: Accounts.clearing, cause: from == Accounts.escrow ? .release : .charge,
                 invoice: index, call: digest)
        for payout in computation.payouts {
            try move(payout.amount, from: Accounts.clearing, to: payout.account, cause: .payout, invoice: index)
        }
        if computation.penalty.raw > 0 {
            try move(computation.penalty, from: Accounts.clearing, to: record.caller, cause: .refund, invoice: index)
        }
        let bytes = invoice.canonicalBytes
        let leaf = MerkleTree.leafHash(bytes)
        try ledger.insertInvoice(StoredInvoice(index: index, bytes: bytes, leafHash: leaf, settledAt: time),
                                 caller: record.caller, model: record.model, batch: batch)
        try ledger.markSettled(idempotencyKey: record.idempotencyKey, digest: digest, invoice: index, at: time)
        frontier.append(leafHash: leaf)
        return index
    }

    /// Signs a checkpoint of the tree as it now stands.
    mutating func checkpoint(_ signer: NoteSigner) throws {
        let checkpoint = Checkpoint(origin: signer.name, size: frontier.size, rootHash: frontier.root)
        let note = try signer.sign(checkpoint)
        try ledger.insertCheckpoint(StoredCheckpoint(size: frontier.size, root: frontier.root, note: note), at: time)
        CrashPoint.afterCheckpointSigned.hit()
    }

    func commit() throws {
        for (account, balance) in balances { try ledger.setBalance(balance, of: account) }
        try ledger.saveFrontier(frontier)
        CrashPoint.beforeLedgerCommit.hit()
    }
}
