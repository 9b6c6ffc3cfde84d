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
    /// The call's output, for a per-call plugin (span-match); its SHA-256 is the record's `output_sha256`.
    public var outputText: String?

    public init(reference: ModelVersionReference, caller: String, node: String, router: String?, inputTokens: UInt64,
                outputTokens: UInt64, latencyMilliseconds: UInt64, outputSHA256: String?, idempotencyKey: String?,
                outputText: String? = nil) {
        self.outputText = outputText
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

    public init(status: Status, replayed: Bool, idempotencyKey: String, record: String, invoice: Int?, fee: String) {
        self.status = status
        self.replayed = replayed
        self.idempotencyKey = idempotencyKey
        self.record = record
        self.invoice = invoice
        self.fee = fee
    }

    enum CodingKeys: String, CodingKey {
        case status, replayed, record, invoice, fee
        case idempotencyKey = "idempotency_key"
    }
}

/// A deposit or withdrawal, and whether it was a retry of one already made.
public struct MoneyMovement: Sendable {
    public var transfer: Transfer
    public var replayed: Bool

    public init(transfer: Transfer, replayed: Bool) {
        self.transfer = transfer
        self.replayed = replayed
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
    ///
    /// With `idempotencyKey`, a retry with the same account and amount returns the first
    /// transfer (`replayed`) instead of crediting twice; the same key for another movement is
    /// refused.
    public func deposit(_ amount: TokenAmount, to account: String) throws -> Transfer {
        try deposit(amount, to: account, idempotencyKey: nil).transfer
    }

    public func deposit(_ amount: TokenAmount, to account: String, idempotencyKey: String?) throws -> MoneyMovement {
        try Accounts.validate(account)
        try Self.refuseInternal(account)
        guard amount.raw > 0 else { throw ProvenanceError.invalid("deposit of \(amount): the amount must be more than zero") }
        return try moveMoney(kind: "deposit", account: account, amount: amount, idempotencyKey: idempotencyKey) { book in
            try book.move(amount, from: Accounts.external, to: account, cause: .deposit)
        }
    }

    /// Moves `amount` out of `account` to the external account; refused beyond the balance.
    public func withdraw(_ amount: TokenAmount, from account: String) throws -> Transfer {
        try withdraw(amount, from: account, idempotencyKey: nil).transfer
    }

    public func withdraw(_ amount: TokenAmount, from account: String, idempotencyKey: String?) throws -> MoneyMovement {
        try Accounts.validate(account)
        try Self.refuseInternal(account)
        guard amount.raw > 0 else { throw ProvenanceError.invalid("withdrawal of \(amount): the amount must be more than zero") }
        return try moveMoney(kind: "withdrawal", account: account, amount: amount, idempotencyKey: idempotencyKey) { book in
            guard try book.ledger.balance(of: account) != nil else { throw Self.unknownAccount(account) }
            try book.requireFunds(amount, in: account, for: "withdraw \(amount)")
            return try book.move(amount, from: account, to: Accounts.external, cause: .withdrawal)
        }
    }

    /// One deposit or withdrawal in one transaction, remembered under its idempotency key.
    private func moveMoney(kind: String, account: String, amount: TokenAmount, idempotencyKey: String?,
                           _ move: (inout Book) throws -> Transfer) throws -> MoneyMovement {
        if let key = idempotencyKey {
            guard !key.isEmpty, key.utf8.count <= 200 else { throw ProvenanceError.invalid("an idempotency key must be 1-200 bytes") }
        }
        let digest = SHA256Digest.hex(of: Data("\(kind)\n\(account)\n\(amount.rawString)".utf8))
        return try ledger.writeLedger { ledger in
            if let key = idempotencyKey, let earlier = try ledger.moneyRequest(key: key) {
                guard earlier.digest == digest, let transfer = try ledger.transfer(sequence: earlier.transfer) else {
                    throw ProvenanceError.conflict("idempotency key '\(key)' was already used for a different deposit or withdrawal; a key names one movement")
                }
                return MoneyMovement(transfer: transfer, replayed: true)
            }
            var book = try Book(ledger)
            let transfer = try move(&book)
            if let key = idempotencyKey { try ledger.insertMoneyRequest(MoneyRequest(key: key, digest: digest, transfer: transfer.sequence)) }
            try book.commit()
            return MoneyMovement(transfer: transfer, replayed: false)
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
        return try withWriteLock("nodes/\(name)") {
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
        caches.forget(model: model)
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
                                outputSHA256: request.outputSHA256 ?? request.outputText.map { SHA256Digest.hex(of: Data($0.utf8)) },
                                idempotencyKey: request.idempotencyKey ?? IdempotencyKey.make())
        // submit checks the parties; the node's key must exist before it can sign.
        let signature = try CallSignature.sign(record, with: try keyStore.nodeKey(request.node))
        return try await submit([(record, signature)], outputs: [request.outputText], deferred: deferred, resolver: resolver)[0]
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

    /// Settles signed calls (or, `deferred`, reserves their fees) all or nothing: every call
    /// is charged and paid out, or none is.
    ///
    /// Concurrent submissions (the registry's requests, or tasks of one process) are coalesced
    /// into one ledger transaction, one fsync and one signed checkpoint per group (see
    /// `SettlementCommitter`); each submission still succeeds or fails on its own, and each
    /// call is its own invoice in ledger order.
    ///
    /// `outputs`, when given, holds each call's output text (or nil), for models attributed per
    /// call (span-match): its SHA-256 must be the signed record's `output_sha256`, and it may not
    /// hold U+0000, which PostgreSQL's text refuses and SQLite's text reads end at: a deferred
    /// call would fail its whole group, or be attributed on less than its output.
    public func submit(_ calls: [(CallRecord, CallSignature)], outputs: [String?] = [], deferred: Bool,
                       resolver: any AttributionPluginResolver) async throws -> [CallOutcome] {
        guard !calls.isEmpty else { return [] }
        precondition(outputs.isEmpty || outputs.count == calls.count, "one output (or nil) per call")
        for (index, output) in outputs.enumerated() {
            guard let output else { continue }
            guard let signed = calls[index].0.outputSHA256 else {
                throw ProvenanceError.invalid("output_text given for the call '\(calls[index].0.idempotencyKey)', whose signed record has no output_sha256")
            }
            let actual = SHA256Digest.hex(of: Data(output.utf8))
            guard actual == signed else {
                throw ProvenanceError.invalid("output_text of the call '\(calls[index].0.idempotencyKey)' hashes to \(actual.prefix(12))…, not the signed output_sha256 \(signed.prefix(12))…")
            }
            guard !output.utf8.contains(0) else {
                throw ProvenanceError.invalid("output_text of the call '\(calls[index].0.idempotencyKey)' holds a NUL character (U+0000), which no store keeps as text; submit the call without output_text")
            }
        }
        var attempt = 0
        while true {
            var prepared: [PreparedCall] = []
            prepared.reserveCapacity(calls.count)
            for (index, (record, signature)) in calls.enumerated() {
                prepared.append(try await prepare(record, signature, output: outputs.isEmpty ? nil : outputs[index], deferred: deferred,
                                                  resolver: resolver))
            }
            // Calls whose output decides who is paid (span-match) are searched on every core.
            let searched = prepared.indices.filter { prepared[$0].output != nil && prepared[$0].terms != nil }
            let attributions = try await attributeCalls(searched.map { (prepared[$0].terms!, prepared[$0].record, prepared[$0].output!) },
                                                        resolver: resolver)
            for (index, attribution) in zip(searched, attributions) { prepared[index].attribution = attribution }
            if attempt == 0 { try verifySignatures(prepared) }
            // Priced only once the node's signature holds: an unsigned record learns nothing.
            for index in prepared.indices { try prepared[index].computeFee() }
            do {
                return try await committer.submit(prepared, to: self)
            } catch let stale as StaleTerms {
                // A price or plugin changed since the call was prepared: prepare it again, a few
                // times; a model whose terms change faster than that is a conflict to retry later.
                for model in stale.models { caches.forget(model: model) }
                attempt += 1
                guard attempt <= 3 else {
                    throw ProvenanceError.conflict("the price or attribution plugin of \(stale.models.sorted().joined(separator: ", ")) changed while the call was being settled, \(attempt) times; retry the call")
                }
            }
        }
    }

    /// Everything about a call that needs no transaction: its parties, version, price, fee,
    /// node and (when settled now) its terms.
    func prepare(_ record: CallRecord, _ signature: CallSignature, output: String?, deferred: Bool,
                 resolver: any AttributionPluginResolver) async throws -> PreparedCall {
        try validateParties(record)
        let reference = ModelVersionReference(model: record.model, version: record.version)
        _ = try modelVersion(reference)
        let price = try caches.price(record.model) { try self.price(model: record.model) }
        let node = try node(named: record.node)
        var terms: SettlementTerms?
        var plugins: [(model: String, plugin: String)] = []
        if !deferred {
            for version in try baseChain(from: reference) {
                plugins.append((version.model, try caches.plugin(version.model) { try index.model(named: version.model)?.plugin ?? "" }))
            }
            terms = try await settlementTerms(for: reference, price: price, plugins: plugins.map(\.plugin), resolver: resolver)
        }
        let recordBytes = record.canonicalBytes
        return PreparedCall(record: record, recordBytes: recordBytes, digest: SHA256Digest.hex(of: recordBytes), signature: signature,
                            signatureBytes: signature.canonicalBytes,
                            node: node, price: price, fee: .zero,
                            terms: terms, plugins: plugins, deferred: deferred, output: output, attribution: [])
    }

    /// Checks every call's node signature, on every core: Ed25519 costs about 60 µs, so a
    /// thousand single signatures take 30 ms on two cores instead of 60. A batch signature is
    /// checked once for all its records (and remembered across submissions).
    func verifySignatures(_ calls: [PreparedCall]) throws {
        let results = Slots(count: calls.count, repeating: false)
        let verify: (Int) -> Void = { [caches] index in
            let call = calls[index]
            results[index] = caches.verifiedBatches.verify(call.signature, of: call.recordBytes,
                                                           nodeKey: caches.verifiedBatches.key(call.node.publicKey))
        }
        if calls.count < 8 {
            for index in calls.indices { verify(index) }
        } else {
            Parallel.forEach(calls.count, verify)
        }
        for (index, call) in calls.enumerated() where !results[index] {
            throw ProvenanceError.invalid("bad signature: the call record for key '\(call.record.idempotencyKey)' is not signed by node '\(call.record.node)'")
        }
    }

    /// A node by name, from memory once seen: nodes are never changed or removed.
    func node(named name: String) throws -> NodeRecord {
        if let known = caches.node(name) { return known }
        guard let node = try ledger.readLedger({ try $0.node(named: name) }) else {
            throw ProvenanceError.notFound("unknown node '\(name)': `provenance node add \(name)` creates it")
        }
        caches.setNode(node)
        return node
    }

    /// Writes one group of submissions in one transaction. Each submission is decided in memory
    /// (the book journals it): one that fails (insufficient funds, a reused key, an unknown
    /// account) is undone alone and the others commit; nothing is written until all are decided.
    func commitGroup(_ submissions: [[PreparedCall]]) -> [Result<[CallOutcome], any Error>] {
        do {
            let signer = submissions.contains { $0.contains { !$0.deferred } } ? try noteSigner() : nil
            var kept: LedgerSnapshot?
            let results = try ledger.writeLedger { ledger in
                // What the last group left, if nothing has written to the ledger since.
                let mark = try ledger.changeMark()
                let snapshot = mark.flatMap { caches.takeLedgerSnapshot(ifStill: $0) }
                var book = try Book(ledger, snapshot: snapshot)
                try book.prefetch(submissions)
                var results: [Result<[CallOutcome], any Error>] = []
                results.reserveCapacity(submissions.count)
                // The prices and plugins calls were prepared with, checked once per model per group.
                var prices: [String: Price?] = snapshot?.prices ?? [:]
                var plugins: [String: String?] = snapshot?.plugins ?? [:]
                func stale(_ call: PreparedCall) throws -> Set<String> {
                    var models = Set<String>()
                    if prices[call.record.model] == nil { prices[call.record.model] = try ledger.price(model: call.record.model) }
                    if prices[call.record.model]! != call.price { models.insert(call.record.model) }
                    for (model, plugin) in call.plugins {
                        if plugins[model] == nil { plugins[model] = try ledger.activePlugin(model: model) }
                        if plugins[model]! != plugin { models.insert(model) }
                    }
                    return models
                }
                for calls in submissions {
                    let mark = book.mark()
                    do {
                        let models = try calls.reduce(into: Set<String>()) { $0.formUnion(try stale($1)) }
                        guard models.isEmpty else { throw StaleTerms(models: models) }
                        // Decided in memory: the group's writes all happen at its commit.
                        let outcomes = try calls.map { try book.process($0) }
                        results.append(.success(outcomes))
                    } catch {
                        book.rollback(to: mark)
                        results.append(.failure(error))
                    }
                }
                // A group whose every call failed or replayed leaves the store as it was.
                guard book.changed else {
                    if let mark { kept = book.snapshot(mark: mark, prices: prices, plugins: plugins) }
                    return results
                }
                if book.invoicesAppended > 0, let signer { try book.checkpoint(signer) }
                CrashPoint.insideGroupCommit.hit()
                try book.commit()
                // The mark after this group's own writes: the next group finds it unchanged
                // only if nothing else wrote in between.
                if mark != nil, let after = try ledger.changeMark() {
                    kept = book.snapshot(mark: after, prices: prices, plugins: plugins)
                }
                return results
            }
            // Kept only once the transaction has committed.
            if let kept { caches.keepLedgerSnapshot(kept) }
            return results
        } catch {
            return submissions.map { _ in .failure(error) }
        }
    }

    static func keyReused(_ key: String) -> ProvenanceError {
        .conflict("idempotency key '\(key)' was already used for a different call record; a key names one call")
    }

    /// The name a batch goes by in invoices and statements.
    public static func batchName(_ id: Int64) -> String { "batch-\(id)" }

    /// Settles every pending call as one batch, with one checkpoint and one transfer per
    /// account and cause.
    public func settlePending(resolver: any AttributionPluginResolver) async throws -> SettlementReport {
        try settle(try await readPending(resolver: resolver))
    }

    /// Pending calls as read, before the transaction that settles them, with all the work that
    /// needs no transaction done: each call's terms, attribution, split and record digest.
    struct PendingBatch {
        let pending: [PendingCall]
        /// The ledger's size when they were read: a call stops being pending only when an
        /// invoice settles it, so while the ledger has not grown, every call read is still pending.
        let sizeRead: Int
        let callTerms: [SettlementTerms]
        let attributions: [[LevelCallAttribution]]
        let prepared: Slots<Result<(SettlementComputation, String), any Error>>
    }

    func readPending(resolver: any AttributionPluginResolver) async throws -> PendingBatch {
        let (pending, sizeRead) = try ledger.readLedger { (try $0.pendingCalls(), try $0.frontier().size) }
        // Each call settles under the terms of its version and the price it reserved at.
        // Calls come in runs of one version and price: a call like the one before shares its terms
        // without a lookup (building and hashing a key per call was a fifth of settling).
        struct TermsKey: Hashable {
            let model: String
            let version: String
            let price: Price
        }
        var termsByKey: [TermsKey: SettlementTerms] = [:]
        var callTerms: [SettlementTerms] = []
        callTerms.reserveCapacity(pending.count)
        for (position, call) in pending.enumerated() {
            if position > 0, call.record.model == pending[position - 1].record.model, call.record.version == pending[position - 1].record.version,
               call.price == pending[position - 1].price {
                callTerms.append(callTerms[position - 1])
                continue
            }
            let key = TermsKey(model: call.record.model, version: call.record.version, price: call.price)
            if let known = termsByKey[key] {
                callTerms.append(known)
                continue
            }
            let terms = try await settlementTerms(for: ModelVersionReference(model: call.record.model, version: call.record.version),
                                                  price: call.price, resolver: resolver)
            termsByKey[key] = terms
            callTerms.append(terms)
        }
        // Calls with an output, under a plugin that reads it, are attributed one by one, on every core.
        var attributions: [[LevelCallAttribution]] = Array(repeating: [], count: pending.count)
        let searched = pending.indices.filter { pending[$0].outputText != nil }
        let found = try await attributeCalls(searched.map { (callTerms[$0], pending[$0].record, pending[$0].outputText!) },
                                             resolver: resolver)
        for (position, attribution) in zip(searched, found) { attributions[position] = attribution }
        // Each call's split and record digest depend on nothing the transaction holds: work
        // them out on every core before it, so that it only moves money and writes.
        let prepared = Slots<Result<(SettlementComputation, String), any Error>>(count: pending.count,
                                                                               repeating: .failure(ProvenanceError(.storage, "not computed")))
        let chunk = 256
        Parallel.forEach((pending.count + chunk - 1) / chunk) { part in
            for position in (part * chunk)..<min(pending.count, (part + 1) * chunk) {
                let call = pending[position]
                prepared[position] = Result {
                    (try SettlementComputation.compute(record: call.record, price: callTerms[position].price,
                                                       levels: LevelCallAttribution.apply(attributions[position], to: callTerms[position].levels)),
                     SHA256Digest.hex(of: call.recordBytes))
                }
            }
        }
        return PendingBatch(pending: pending, sizeRead: sizeRead, callTerms: callTerms, attributions: attributions, prepared: prepared)
    }

    /// Settles the calls of `batch` that are still pending, as one batch.
    func settle(_ batch: PendingBatch) throws -> SettlementReport {
        let (pending, callTerms, attributions, prepared) = (batch.pending, batch.callTerms, batch.attributions, batch.prepared)
        let signer = try noteSigner()
        return try ledger.writeLedger { ledger in
            var book = try Book(ledger)
            // Only calls still pending now are settled (another process may have settled some,
            // and then the ledger has grown); calls reserved since the read wait for the next batch.
            let stillPending = book.treeSize == batch.sizeRead ? nil : try ledger.pendingCallKeys()
            var nodes: [String: NodeRecord] = [:]
            var invoices: [Int] = []
            invoices.reserveCapacity(pending.count)
            for (position, call) in pending.enumerated() where stillPending?.contains(call.record.idempotencyKey) ?? true {
                if position % 1024 == 0 { ProgressReport.report("Settling", done: position, total: pending.count, unit: "calls") }
                if nodes[call.record.node] == nil { nodes[call.record.node] = try ledger.node(named: call.record.node) }
                guard let node = nodes[call.record.node] else { continue }
                let (computation, digest) = try prepared[position].get()
                invoices.append(try book.settle(record: call.record, recordBytes: call.recordBytes, pendingRow: call.storageRow,
                                                digest: digest, signatureBytes: call.signatureBytes, node: node,
                                                terms: callTerms[position], attribution: attributions[position], computation: computation,
                                                from: Accounts.escrow, mode: .batch))
            }
            if !invoices.isEmpty {
                ProgressReport.report("Writing invoices", done: 0, total: invoices.count, unit: "invoices")
                try book.checkpoint(signer)
            }
            try book.commit()
            CrashPoint.insideNetBatch.hit()
            return SettlementReport(batch: book.batchID.map(Self.batchName), settled: invoices.count, invoices: invoices,
                                    treeSize: book.treeSize)
        }
    }

    /// The terms every call of `reference` at `price` shares: the lineage levels a call pays
    /// (the version, then its bases while a share flows) and the price, with their SHA-256.
    ///
    /// Cached per version, active plugins and price for the life of the store: model versions
    /// and the dataset commits they name are immutable, and a plugin swap or a new price
    /// changes the key.
    func settlementTerms(for reference: ModelVersionReference, price: Price,
                         resolver: any AttributionPluginResolver) async throws -> SettlementTerms {
        let plugins = try baseChain(from: reference).map { try index.model(named: $0.model)?.plugin ?? "" }
        return try await settlementTerms(for: reference, price: price, plugins: plugins, resolver: resolver)
    }

    /// The same, given the active plugins along the version's base chain.
    func settlementTerms(for reference: ModelVersionReference, price: Price, plugins: [String],
                         resolver: any AttributionPluginResolver) async throws -> SettlementTerms {
        let key = ([reference.description] + plugins).joined(separator: "|")
        let termsKey = key + "|" + price.cacheKey
        if let cached = caches.terms(termsKey) { return cached }
        let levels: [InvoiceLevel]
        if let cached = caches.levels(key) { levels = cached } else {
            levels = try await computeInvoiceLevels(for: reference, resolver: resolver)
            caches.setLevels(levels, for: key)
        }
        let terms = SettlementTerms(levels: levels, price: price)
        caches.setTerms(terms, for: termsKey)
        return terms
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
                weights: InvoiceLevel.weights(own.shares)))
            next = share > 0 ? manifest.base?.reference : nil
        }
        return levels
    }
}

extension Store {
    /// The call's own attribution at every level of `terms` whose plugin depends on the call:
    /// the spans its output reproduced and the weights they earn, or the level's own weights
    /// (`fallback`) when it reproduced nothing. Empty when no level's plugin depends on calls.
    /// `callAttribution` of many calls, on every core, in their order.
    func attributeCalls(_ calls: [(SettlementTerms, CallRecord, String)],
                        resolver: any AttributionPluginResolver) async throws -> [[LevelCallAttribution]] {
        guard calls.count > 1 else {  // one call (a real-time request): no task to spawn
            guard let (terms, record, output) = calls.first else { return [] }
            return [try await callAttribution(terms: terms, record: record, output: output, resolver: resolver)]
        }
        return try await withThrowingTaskGroup(of: (Int, [LevelCallAttribution]).self) { group in
            let workers = max(1, ProcessInfo.processInfo.activeProcessorCount)
            var next = 0
            var results = [[LevelCallAttribution]](repeating: [], count: calls.count)
            func start() {
                guard next < calls.count else { return }
                let index = next
                let (terms, record, output) = calls[index]
                group.addTask { (index, try await self.callAttribution(terms: terms, record: record, output: output, resolver: resolver)) }
                next += 1
            }
            for _ in 0..<workers { start() }
            while let (index, attribution) = try await group.next() {
                results[index] = attribution
                start()
            }
            return results
        }
    }

    func callAttribution(terms: SettlementTerms, record: CallRecord, output: String,
                         resolver: any AttributionPluginResolver) async throws -> [LevelCallAttribution] {
        var result: [LevelCallAttribution] = []
        let call = AttributionInput.Call(inputTokens: record.inputTokens, outputTokens: record.outputTokens, outputText: output)
        for level in terms.levels where !level.weights.isEmpty {
            let spec = try PluginSpec(parsing: level.plugin)
            let plugin = try resolver.plugin(named: spec.name, store: self)
            guard plugin.dependsOnCall else { continue }
            let reference = ModelVersionReference(model: level.model, version: level.version)
            let own = try await ownShares(reference, override: spec, resolver: resolver, call: call)
            // Spans found: their shares are what they earned; none: the version's own weights;
            // no spans at all: an external plugin weighed the call.
            switch own.spans {
            case .some(let spans) where spans.isEmpty:
                result.append(LevelCallAttribution(level: reference.description, basis: .fallback, spans: [], weights: level.weights))
            case .some(let spans):
                result.append(LevelCallAttribution(level: reference.description, basis: .spans, spans: spans,
                                                   weights: InvoiceLevel.weights(own.shares)))
            case .none:
                result.append(LevelCallAttribution(level: reference.description, basis: .plugin, spans: [],
                                                   weights: InvoiceLevel.weights(own.shares)))
            }
        }
        return result
    }
}

/// The price or a plugin a call was prepared with is no longer the model's: prepare it again.
struct StaleTerms: Error {
    let models: Set<String>
}

/// A call checked and priced, ready for the ledger transaction.
struct PreparedCall: Sendable {
    let record: CallRecord
    let recordBytes: Data
    let digest: String
    let signature: CallSignature
    let signatureBytes: Data
    let node: NodeRecord
    let price: Price
    private(set) var fee: TokenAmount
    /// The terms it settles under; nil for a deferred call, which settles under the terms of
    /// the day it is settled.
    let terms: SettlementTerms?
    /// The active plugin of each model along the base chain that `terms` were computed under.
    let plugins: [(model: String, plugin: String)]
    let deferred: Bool
    /// The call's output text, for a per-call plugin.
    let output: String?
    /// What the output earned at each level attributed per call (settled now).
    var attribution: [LevelCallAttribution]

    mutating func computeFee() throws {
        fee = try price.fee(inputTokens: record.inputTokens, outputTokens: record.outputTokens)
    }
}

extension NodeRecord {
    var verificationKey: Curve25519.Signing.PublicKey? {
        Data(base64Encoded: publicKey).flatMap { try? Curve25519.Signing.PublicKey(rawRepresentation: $0) }
    }
}

extension Price {
    /// Distinguishes prices in cache keys.
    var cacheKey: String {
        "\(inputPer1k.rawString)/\(outputPer1k.rawString)/\(minFee.rawString)/\(split.description)/\(sloMilliseconds.map(String.init) ?? "-")/\(sloPenaltyBps)"
    }
}

/// One group commit, as `Store.observeGroupCommits` reports it.
public struct GroupCommit: Sendable, Equatable {
    /// Submissions in the group: a request's call, or a batch of calls submitted together.
    public let submissions: Int
    /// Calls in the group, of every submission.
    public let calls: Int
    /// Submissions that failed alone (insufficient funds, a reused key...); the others
    /// committed. All of them when the transaction itself failed. A submission whose price or
    /// plugin changed while it waited fails here too, and `submit` prepares it again and retries
    /// it: counted once for each try.
    public let failedSubmissions: Int
    /// From the transaction's start to its commit (or failure), the group's fsync included.
    public let duration: Duration
}

extension Store {
    /// Calls `observer` after every group commit, on the committer's thread, just before the
    /// group's callers get their answers: what the group held and how long its transaction took.
    /// One observer at a time (a later call replaces it); it must be quick, since the answers
    /// and the next group wait for it. The registry's metrics are fed from it.
    public func observeGroupCommits(_ observer: @escaping @Sendable (GroupCommit) -> Void) {
        committer.observe(observer)
    }
}

/// Group commit: concurrent submissions that arrive while a transaction is being written wait
/// for the next one and are written together, so a group pays one fsync and one checkpoint
/// signature instead of one per call.
///
/// A submission to an idle committer never waits for company: when nothing is being written and
/// the last group was a lone submission, it starts a transaction at once. Under load (the last
/// group held several submissions) the committer lingers up to `linger` before taking the next
/// group, or until `lingerCalls` calls wait, whichever comes first. The pages every group rewrites
/// (its batch, the balances, the transfers' last page) are then paid by more calls: under 64
/// clients a deferred group commit wrote 13.0 pages of 8 KB for 8.5 calls without lingering and
/// 20.2 for 24.0 calls with it (12,457 against 6,923 log bytes a call, `Benchmarks/wal-frames.sh`),
/// and every page is written twice, to the log and by the checkpointer. A group holds at most
/// `maxGroupCalls`.
/// The transaction runs on a thread of its own, never on the caller's executor.
final class SettlementCommitter: @unchecked Sendable {
    private struct Submission {
        let calls: [PreparedCall]
        let finish: @Sendable (Result<[CallOutcome], any Error>) -> Void
    }

    static let maxGroupCalls = 8_192
    /// The longest a busy committer waits for a group to fill.
    static let linger: TimeInterval = 0.001
    /// Calls that end the wait at once: as many as 64 clients keep in flight.
    static let lingerCalls = 64

    private let condition = NSCondition()
    private var waiting: [Submission] = []
    private var waitingCalls = 0
    private var writing = false
    /// Whether the last group held more than one submission: the sign of concurrent load.
    private var busy = false
    private let queue = DispatchQueue(label: "provenance.settlement.group-commit", qos: .userInitiated)
    /// Told of every group (`Store.observeGroupCommits`); read and set under `condition`.
    private var observer: (@Sendable (GroupCommit) -> Void)?

    func observe(_ observer: @escaping @Sendable (GroupCommit) -> Void) {
        condition.lock()
        self.observer = observer
        condition.unlock()
    }

    func submit(_ calls: [PreparedCall], to store: Store) async throws -> [CallOutcome] {
        try await withCheckedThrowingContinuation { continuation in
            condition.lock()
            waiting.append(Submission(calls: calls) { continuation.resume(with: $0) })
            waitingCalls += calls.count
            let start = !writing
            writing = true
            if !start, waitingCalls >= Self.lingerCalls { condition.signal() }
            condition.unlock()
            if start { queue.async { self.drain(store) } }
        }
    }

    private func drain(_ store: Store) {
        while true {
            condition.lock()
            if busy {
                let deadline = Date(timeIntervalSinceNow: Self.linger)
                while waitingCalls < Self.lingerCalls, condition.wait(until: deadline) {}
            }
            guard !waiting.isEmpty else {
                writing = false
                busy = false
                condition.unlock()
                return
            }
            var taken = 0
            var calls = 0
            while taken < waiting.count, taken == 0 || calls + waiting[taken].calls.count <= Self.maxGroupCalls {
                calls += waiting[taken].calls.count
                taken += 1
            }
            let group = Array(waiting.prefix(taken))
            waiting.removeFirst(taken)
            waitingCalls -= calls
            busy = taken > 1
            let observer = observer
            condition.unlock()
            let start = ContinuousClock.now
            let results = store.commitGroup(group.map(\.calls))
            let duration = ContinuousClock.now - start
            // Told before the answers go out, so that a caller who has its answer finds its
            // group counted (a scrape right after a call sees it).
            if let observer {
                let failed = results.count { if case .failure = $0 { true } else { false } }
                observer(GroupCommit(submissions: taken, calls: calls, failedSubmissions: failed, duration: duration))
            }
            for (submission, result) in zip(group, results) { submission.finish(result) }
        }
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
/// memory, and written back on `commit`.
///
/// Deposits, withdrawals and stakes are single transfers (`move`). Settlement is netted
/// (`post`): a batch — a group commit or a settlement of deferred calls — writes one transfer
/// per (from, to, cause) with the batch's id, while every invoice lists its own payouts;
/// `verify` checks that the two agree. Every transfer is hash-chained to the one before.
struct Book {
    struct NetKey: Hashable {
        let from: String
        let to: String
        let cause: Transfer.Cause
    }

    let ledger: any LedgerWriter
    let time: Int64
    private var balances: [String: TokenAmount] = [:]
    /// Accounts whose balance this book changed (or opened), written back on commit.
    private var touched = Set<String>()
    private var sequence: Int64
    private var lastHash: String
    var frontier: CompactRange
    private let firstInvoice: Int
    /// Whether this book's calls form a batch (its netted transfers, its reservations, its
    /// invoices' `batch`): set by the first call, undone with it if it fails.
    private var batchOpened = false
    /// The batch's row, written with the book's first write (`writeBatch`): nothing is written
    /// while a group's submissions are decided, so a failing one needs no savepoint.
    private(set) var batchID: Int64?
    /// Deferred calls reserved in this book, written at commit.
    private var reservations: [(call: PendingCall, digest: String)] = []
    private var net: [NetKey: TokenAmount] = [:]
    /// A batch settlement's movements, summed per account before they are posted (`postTotals`):
    /// posting each call's seven or so movements one by one, each a handful of lookups by account
    /// name, was most of the book's time. The result is the same: the batch's transfers are netted
    /// anyway, and it settles all or nothing.
    private struct Totals {
        var released = TokenAmount.zero
        var payouts: [String: TokenAmount] = [:]
        var refunds: [String: TokenAmount] = [:]
    }
    private var totals = Totals()
    /// Calls settled or reserved in this book, by idempotency key (a key twice in one group).
    private var seen: [String: (digest: String, outcome: CallOutcome)] = [:]
    private var termsWritten = Set<String>()

    /// What the changes since a `mark` replaced, newest last: a submission that fails is undone
    /// from it. It wrote nothing to the database: a group's calls are decided in memory and
    /// written together at commit. Copying the book instead cost a copy of every dictionary for
    /// each call of a group; a savepoint around each submission (two statements compiled for
    /// every call) took 18% of the committer thread's samples with the work inside it, about 7%
    /// without.
    private enum Undo {
        case balance(String, TokenAmount?)
        case touched(String)
        case net(NetKey, TokenAmount?)
        case seen(String)
        case batchOpened
    }
    private var journal: [Undo] = []
    /// Whether changes are journaled: from the first `mark` on (a batch settlement never marks).
    private var journaling = false

    private mutating func remember(_ undo: Undo) {
        if journaling { journal.append(undo) }
    }

    struct Mark {
        fileprivate let journal: Int
        fileprivate let drafts: Int
        fileprivate let reservations: Int
        fileprivate let sequence: Int64
        fileprivate let lastHash: String
    }

    /// Where `rollback` returns to. Only the newest mark may be rolled back to.
    mutating func mark() -> Mark {
        journaling = true
        journal.removeAll(keepingCapacity: true)
        return Mark(journal: 0, drafts: drafts.count, reservations: reservations.count, sequence: sequence, lastHash: lastHash)
    }

    /// Undoes everything since `mark`.
    mutating func rollback(to mark: Mark) {
        while journal.count > mark.journal {
            switch journal.removeLast() {
            case .balance(let account, let old): balances[account] = old
            case .touched(let account): touched.remove(account)
            case .net(let key, let old): net[key] = old
            case .seen(let key): seen[key] = nil
            case .batchOpened: batchOpened = false
            }
        }
        drafts.removeLast(drafts.count - mark.drafts)
        reservations.removeLast(reservations.count - mark.reservations)
        sequence = mark.sequence
        lastHash = mark.lastHash
    }

    private mutating func setBalance(_ amount: TokenAmount, of account: String) {
        remember(.balance(account, balances.updateValue(amount, forKey: account)))
        if touched.insert(account).inserted { remember(.touched(account)) }
    }

    /// A book that starts from `snapshot` (what the last group commit left, still current)
    /// instead of reading the ledger's last transfer, frontier and balances again.
    init(_ ledger: any LedgerWriter, snapshot: LedgerSnapshot? = nil) throws {
        self.ledger = ledger
        time = Store.now()
        if let snapshot {
            (sequence, lastHash) = snapshot.lastTransfer
            frontier = snapshot.frontier
            balances = snapshot.balances
        } else {
            (sequence, lastHash) = try ledger.lastTransfer()
            frontier = try ledger.frontier()
        }
        firstInvoice = frontier.size
    }

    /// Accounts read and found absent: their zero balance in `balances` is this book's, not
    /// the ledger's, until the book opens them.
    private var absent = Set<String>()

    /// What this book knows of the ledger once its writes are in it: the last transfer, the
    /// frontier and the balance of every account it read or wrote that exists. Nil for a book
    /// with writes still to make: only one whose writes are done (`commit`), or that wrote
    /// nothing, knows what the ledger holds.
    func snapshot(mark: LedgerChangeMark, prices: [String: Price?], plugins: [String: String?]) -> LedgerSnapshot? {
        guard drafts.isEmpty, reservations.isEmpty, net.isEmpty else { return nil }
        var known = balances
        for account in absent where !touched.contains(account) { known[account] = nil }
        if known.count > LedgerSnapshot.maxAccounts { known = [:] }
        return LedgerSnapshot(mark: mark, lastTransfer: (sequence, lastHash), frontier: frontier, balances: known,
                              prices: prices, plugins: plugins)
    }

    /// Invoices settled in this book whose bytes are not written yet (see `writeInvoices`).
    private var drafts: [InvoiceDraft] = []
    var invoicesAppended: Int { frontier.size + drafts.count - firstInvoice }
    var treeSize: Int { frontier.size + drafts.count }
    /// Whether anything is to be written.
    var changed: Bool { !touched.isEmpty || batchOpened || invoicesAppended > 0 }

    mutating func balance(_ account: String) throws -> TokenAmount {
        if let cached = balances[account] { return cached }
        guard let stored = try ledger.balance(of: account) else {
            absent.insert(account)
            balances[account] = .zero
            return .zero
        }
        balances[account] = stored
        return stored
    }

    mutating func open(_ account: String) throws {
        _ = try balance(account)
        if touched.insert(account).inserted { remember(.touched(account)) }
    }

    /// `purpose` is only made for the refusal: a call's ("a call costing ...") was formatted for
    /// every call, about 0.2% of a deferred run's samples.
    mutating func requireFunds(_ amount: TokenAmount, in account: String, for purpose: @autoclosure () -> String) throws {
        let available = try balance(account)
        guard available >= amount else {
            throw ProvenanceError(.invalidArgument, "insufficient balance: \(account) holds \(available), \(purpose()) needs \(amount)")
                .withCode(.insufficientFunds)
        }
    }

    /// One transfer, written now.
    @discardableResult
    mutating func move(_ amount: TokenAmount, from: String, to: String, cause: Transfer.Cause) throws -> Transfer {
        let newFrom = try balance(from).subtracting(amount)
        setBalance(newFrom, of: from)
        setBalance(try balance(to).adding(amount), of: to)
        return try append(Transfer(sequence: 0, from: from, to: to, amount: amount, cause: cause, invoice: nil, call: nil, batch: nil,
                                   createdAt: time, hash: ""))
    }

    private mutating func append(_ transfer: Transfer) throws -> Transfer {
        let transfer = chain(transfer)
        try ledger.insert(transfer)
        return transfer
    }

    /// `transfer` numbered and hash-chained after the last one.
    private mutating func chain(_ transfer: Transfer) -> Transfer {
        var transfer = transfer
        sequence += 1
        transfer.sequence = sequence
        transfer.hash = transfer.computeHash(previous: lastHash)
        lastHash = transfer.hash
        return transfer
    }

    /// A movement netted into the batch's transfer for (from, to, cause).
    mutating func post(_ amount: TokenAmount, from: String, to: String, cause: Transfer.Cause) throws {
        guard amount.raw > 0 else { return }
        let newFrom = try balance(from).subtracting(amount)
        let newTo = try balance(to).adding(amount)
        let key = NetKey(from: from, to: to, cause: cause)
        let total = try (net[key] ?? .zero).adding(amount)
        setBalance(newFrom, of: from)
        setBalance(newTo, of: to)
        remember(.net(key, net.updateValue(total, forKey: key)))
    }

    /// Makes this book's calls a batch; its row is written with the book (`writeBatch`).
    mutating func openBatch() {
        guard !batchOpened else { return }
        batchOpened = true
        remember(.batchOpened)
    }

    /// The batch's row, written on first use once the book writes.
    private mutating func writeBatch() throws -> Int64? {
        guard batchOpened else { return nil }
        if let batchID { return batchID }
        let id = try ledger.insertBatch(firstInvoice: firstInvoice, at: time)
        batchID = id
        return id
    }

    /// Statuses of the calls about to be processed, read in one go (`prefetch`); a key not
    /// among them has none.
    private var prefetched: [String: CallStatus]?
    private var prefetchedKeys = Set<String>()

    /// Reads what a group's calls will need — their statuses, their callers' balances — in two
    /// reads instead of two per call (a database server's round trips are what a group pays).
    /// The calls are read where they lie: gathering a group's calls into one array first copied
    /// every `PreparedCall` (0.35% of a deferred run's samples).
    mutating func prefetch(_ submissions: [[PreparedCall]]) throws {
        var keys = Set<String>()
        var callers = Set<String>()
        for calls in submissions {
            for index in calls.indices {
                keys.insert(calls[index].record.idempotencyKey)
                if balances[calls[index].record.caller] == nil { callers.insert(calls[index].record.caller) }
            }
        }
        prefetched = try ledger.callStatuses(idempotencyKeys: Array(keys))
        prefetchedKeys = keys
        for (account, amount) in try ledger.balances(of: Array(callers)) where balances[account] == nil { balances[account] = amount }
    }

    private func status(of key: String) throws -> CallStatus? {
        if prefetchedKeys.contains(key) { return prefetched?[key] }
        return try ledger.callStatus(idempotencyKey: key)
    }

    /// Settles, reserves or replays one prepared call.
    mutating func process(_ call: PreparedCall) throws -> CallOutcome {
        let record = call.record
        let key = record.idempotencyKey
        if let earlier = seen[key] {
            guard earlier.digest == call.digest else { throw Store.keyReused(key) }
            return earlier.outcome.replay()
        }
        if let status = try status(of: key) {
            guard status.digest == call.digest else { throw Store.keyReused(key) }
            switch status {
            case .settled(_, let invoice):
                return CallOutcome(status: .settled, replayed: true, idempotencyKey: key, record: call.digest, invoice: invoice,
                                   fee: call.fee.description)
            case .pending:
                return CallOutcome(status: .pending, replayed: true, idempotencyKey: key, record: call.digest, invoice: nil,
                                   fee: call.fee.description)
            }
        }
        guard try balances[record.caller] != nil || ledger.balance(of: record.caller) != nil else { throw Store.unknownAccount(record.caller) }
        try requireFunds(call.fee, in: record.caller, for: "a call costing \(call.fee)")
        let outcome: CallOutcome
        if let terms = call.terms, !call.deferred {
            let index = try settle(record: record, recordBytes: call.recordBytes, digest: call.digest, signatureBytes: call.signatureBytes,
                                   node: call.node, terms: terms, attribution: call.attribution,
                                   from: record.caller, mode: .realtime)
            outcome = CallOutcome(status: .settled, replayed: false, idempotencyKey: key, record: call.digest, invoice: index,
                                  fee: call.fee.description)
        } else {
            try post(call.fee, from: record.caller, to: Accounts.escrow, cause: .reserve)
            openBatch()
            reservations.append((PendingCall(record: record, signatureBytes: call.signatureBytes, price: call.price, fee: call.fee,
                                             recordBytes: call.recordBytes, outputText: call.output), call.digest))
            outcome = CallOutcome(status: .pending, replayed: false, idempotencyKey: key, record: call.digest, invoice: nil,
                                  fee: call.fee.description)
        }
        if seen.updateValue((call.digest, outcome), forKey: key) == nil { remember(.seen(key)) }
        return outcome
    }

    /// An invoice decided but not yet encoded: everything it holds is fixed.
    struct InvoiceDraft {
        let index: Int
        let record: CallRecord
        /// The record's canonical bytes, as the node signed them.
        let recordBytes: Data
        let digest: String
        let signatureBytes: Data
        let node: NodeRecord
        let terms: SettlementTerms
        let attribution: [LevelCallAttribution]
        let mode: Invoice.Mode
        let computation: SettlementComputation
        /// A reserved call's row in storage (`PendingCall.storageRow`).
        let pendingRow: Int64?
    }

    /// Charges `from` (the caller, or escrow for a reserved call), pays everyone, refunds any
    /// SLO penalty to the caller, and appends the invoice to the ledger. Returns its index.
    ///
    /// The movements happen now; the invoice's bytes are encoded and hashed later for the
    /// whole batch at once, on every core (`writeInvoices`).
    mutating func settle(record: CallRecord, recordBytes: Data, pendingRow: Int64? = nil, digest: String, signatureBytes: Data, node: NodeRecord,
                         terms: SettlementTerms, attribution: [LevelCallAttribution] = [], computation: SettlementComputation? = nil,
                         from: String, mode: Invoice.Mode) throws -> Int {
        // `computation`, when given, is this call's split under `terms` and `attribution`, worked out beforehand.
        let computation = try computation ?? SettlementComputation.compute(record: record, price: terms.price,
                                                                           levels: LevelCallAttribution.apply(attribution, to: terms.levels))
        let index = treeSize
        openBatch()
        if mode == .batch && from == Accounts.escrow && !journaling {
            try totals.released = totals.released.adding(computation.fee)
            for payout in computation.payouts {
                try totals.payouts[payout.account] = (totals.payouts[payout.account] ?? .zero).adding(payout.amount)
            }
            try totals.refunds[record.caller] = (totals.refunds[record.caller] ?? .zero).adding(computation.penalty)
        } else {
            try post(computation.fee, from: from, to: Accounts.clearing, cause: from == Accounts.escrow ? .release : .charge)
            for payout in computation.payouts {
                try post(payout.amount, from: Accounts.clearing, to: payout.account, cause: .payout)
            }
            try post(computation.penalty, from: Accounts.clearing, to: record.caller, cause: .refund)
        }
        drafts.append(InvoiceDraft(index: index, record: record, recordBytes: recordBytes, digest: digest, signatureBytes: signatureBytes, node: node, terms: terms, attribution: attribution, mode: mode,
                                   computation: computation, pendingRow: pendingRow))
        return index
    }

    /// Encodes and hashes the settled invoices on every core and writes them, marks their calls
    /// settled and appends their leaves, in ledger order: each run of invoices is written as
    /// soon as it is encoded, while the cores encode the next (for a batch of ten thousand, the
    /// writes used to wait for all of the encoding first: about 60 ms before 115 ms of writes).
    mutating func writeInvoices() throws {
        guard !drafts.isEmpty else { return }
        guard let batchID = try writeBatch() else { preconditionFailure("an invoice settled outside a batch") }
        let batch = Store.batchName(batchID)
        let drafts = self.drafts
        let encoded = Slots<(bytes: Data, leaf: Data)>(count: drafts.count, repeating: (Data(), Data()))
        let chunk = 64
        var lastTerms = ""
        try Parallel.stream((drafts.count + chunk - 1) / chunk) { part in
            for position in (part * chunk)..<min(drafts.count, (part + 1) * chunk) {
                let draft = drafts[position]
                let bytes = InvoiceWriter.canonicalBytes(ledgerIndex: draft.index, record: draft.record, recordBytes: draft.recordBytes,
                                                         signatureBytes: draft.signatureBytes, nodeKey: draft.node.publicKey, terms: draft.terms,
                                                         nodeStake: draft.node.stake, mode: draft.mode, batch: batch,
                                                         computation: draft.computation, callAttribution: draft.attribution)
                encoded[position] = (bytes, MerkleTree.leafHash(bytes))
            }
        } consume: { parts in
            var rows: [InvoiceRow] = []
            let positions = (parts.lowerBound * chunk)..<min(drafts.count, parts.upperBound * chunk)
            rows.reserveCapacity(positions.count)
            for position in positions {
                let draft = drafts[position]
                // Calls come in runs under the same terms: only a change is looked up.
                if draft.terms.sha256 != lastTerms {
                    lastTerms = draft.terms.sha256
                    if termsWritten.insert(lastTerms).inserted { try ledger.insertTerms(sha256: lastTerms, bytes: draft.terms.bytes) }
                }
                rows.append(InvoiceRow(invoice: StoredInvoice(index: draft.index, bytes: encoded[position].bytes, leafHash: encoded[position].leaf,
                                                              settledAt: time),
                                       caller: draft.record.caller, model: draft.record.model, batch: batch,
                                       idempotencyKey: draft.record.idempotencyKey, digest: draft.digest, reserved: draft.mode == .batch,
                                       pendingRow: draft.pendingRow))
                frontier.append(leafHash: encoded[position].leaf)
            }
            // In ledger order, a run at a time: a database server gets one statement for each.
            try ledger.insertInvoices(rows, at: time)
        }
        self.drafts = []
    }

    /// Signs a checkpoint of the tree as it now stands.
    mutating func checkpoint(_ signer: NoteSigner) throws {
        try writeInvoices()
        let checkpoint = Checkpoint(origin: signer.name, size: frontier.size, rootHash: frontier.root)
        let note = try signer.sign(checkpoint)
        try ledger.insertCheckpoint(StoredCheckpoint(size: frontier.size, root: frontier.root, note: note), at: time)
        CrashPoint.afterCheckpointSigned.hit()
    }

    /// Posts a batch settlement's summed movements: the fees out of escrow first, then what
    /// clearing pays out, then the refunds, each account in a fixed order.
    private mutating func postTotals() throws {
        let totals = self.totals
        self.totals = Totals()
        try post(totals.released, from: Accounts.escrow, to: Accounts.clearing, cause: .release)
        for (account, amount) in totals.payouts.sorted(by: { $0.key < $1.key }) {
            try post(amount, from: Accounts.clearing, to: account, cause: .payout)
        }
        for (account, amount) in totals.refunds.sorted(by: { $0.key < $1.key }) {
            try post(amount, from: Accounts.clearing, to: account, cause: .refund)
        }
    }

    /// Writes the batch's netted transfers, in a fixed order, the balances and the frontier.
    mutating func commit() throws {
        try postTotals()
        try writeInvoices()
        if let batchID = try writeBatch() {
            if !reservations.isEmpty {
                try ledger.insertPending(reservations, batch: batchID, at: time)
                reservations = []
            }
            let lines = net.sorted { ($0.key.from, $0.key.to, $0.key.cause.rawValue) < ($1.key.from, $1.key.to, $1.key.cause.rawValue) }
            var transfers: [Transfer] = []
            transfers.reserveCapacity(lines.count)
            for (key, amount) in lines {
                transfers.append(chain(Transfer(sequence: 0, from: key.from, to: key.to, amount: amount, cause: key.cause, invoice: nil,
                                                call: nil, batch: batchID, createdAt: time, hash: "")))
            }
            try ledger.insert(transfers)
            net = [:]
            try ledger.closeBatch(batchID, invoiceCount: invoicesAppended)
        }
        try ledger.setBalances(touched.sorted().map { ($0, balances[$0]!) })
        if invoicesAppended > 0 { try ledger.saveFrontier(frontier) }
        CrashPoint.beforeLedgerCommit.hit()
    }
}
