import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import HTTPTypes
import HummingbirdTesting
import PostgresStorage
import ProvenanceCore
import ProvenanceTestSupport
import Testing

/// Several `provenance serve` replicas on one PostgreSQL database: one ledger, exact money,
/// idempotency across replicas, and nothing acknowledged lost when one is killed mid-load.
@Suite(.serialized) struct ReplicaTests {
    /// A call POSTed to a live replica with its Idempotency-Key: status (0 when the replica is
    /// gone), body and Retry-After header.
    static func post(_ base: String, token: String, json: Data, key: String) async -> (status: Int, body: String, retryAfter: String?) {
        var request = URLRequest(url: URL(string: base + "/v1/calls")!)
        request.httpMethod = "POST"
        request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.setValue(key, forHTTPHeaderField: "Idempotency-Key")
        request.timeoutInterval = 30
        request.httpBody = json
        guard let (data, response) = try? await URLSession.shared.data(for: request), let http = response as? HTTPURLResponse else {
            return (0, "", nil)
        }
        return (http.statusCode, String(decoding: data, as: UTF8.self), http.value(forHTTPHeaderField: "Retry-After"))
    }

    @Test(.enabled(if: TestPostgres.available, "needs PostgreSQL (initdb in /usr/lib/postgresql/15/bin)"))
    func threeReplicasShareOneLedgerAndSurviveAKill() async throws {
        let database = try TestPostgres.newDatabaseURL()
        let fixture = try RegistryFixture(database: database)
        let signer = NodeSigner()
        let callers = (0..<8).map { "caller\($0)" }
        // The last two callers can pay for 5 calls only: some of their calls are refused.
        try await fixture.app().test(.router) { client in
            try await fixture.market(client)
            try await fixture.priceAndFund(client, key: signer, callers: Array(callers.prefix(6)), deposit: "1000")
            for caller in callers.suffix(2) {
                try await client.send(.post, "/v1/accounts/\(caller)/deposits", token: fixture.admin, json: ["amount": "5"]).expect(.created)
            }
        }
        let store = fixture.store.root
        var replicas = [
            try LiveRegistry(store: store, arguments: ["--settle-every", "0.3"]),
            try LiveRegistry(store: store, arguments: ["--settle-every", "0.3"]),
            try LiveRegistry(store: store),
        ]
        let bases = replicas.map(\.base)

        // 8 callers × 40 calls, spread over the replicas; every fifth key is sent twice at once
        // to two different replicas; every third call is deferred.
        struct Sent: Sendable { let key: String; let caller: String; let status: Int; let body: String }
        let victim = replicas[1]
        let results = try await withThrowingTaskGroup(of: [Sent].self) { group in
            for (c, caller) in callers.enumerated() {
                group.addTask {
                    var sent: [Sent] = []
                    for n in 0..<40 {
                        let key = "\(caller)-\(n)"
                        let call = try SignedCall(caller: caller, key: key, signer: signer)
                        let body = try JSONSerialization.data(withJSONObject: call.body(deferred: n % 3 == 0))
                        let first = bases[(c + n) % 3]
                        if n % 5 == 0 {
                            let second = bases[(c + n + 1) % 3]
                            async let a = Self.post(first, token: fixture.node, json: body, key: key)
                            async let b = Self.post(second, token: fixture.node, json: body, key: key)
                            for answer in await [a, b] { sent.append(Sent(key: key, caller: caller, status: answer.status, body: answer.body)) }
                        } else {
                            let answer = await Self.post(first, token: fixture.node, json: body, key: key)
                            sent.append(Sent(key: key, caller: caller, status: answer.status, body: answer.body))
                        }
                    }
                    return sent
                }
            }
            // Mid-load, replica 1 dies without a chance to finish anything.
            group.addTask {
                try await Task.sleep(for: .milliseconds(700))
                kill(victim.process.processIdentifier, SIGKILL)
                return []
            }
            var all: [Sent] = []
            for try await part in group { all += part }
            return all
        }
        #expect(results.contains { $0.status == 0 }, "no request met the killed replica: the kill was not mid-load")
        replicas[1].process.waitUntilExit()
        #expect(replicas[1].process.terminationReason == .uncaughtSignal)

        // Whatever the survivors left pending is settled by one of them on schedule.
        let deadline = Date().addingTimeInterval(30)
        let reader = try Store.open(at: store)
        while try reader.ledger.readLedger({ try $0.pendingCallKeys() }).count > 0, Date() < deadline {
            try await Task.sleep(for: .milliseconds(200))
        }
        for replica in replicas { replica.stop() }
        replicas.removeAll()

        let acknowledged = Set(results.filter { $0.status == 200 || $0.status == 201 || $0.status == 202 }.map(\.key))
        let refusedForFunds = Set(results.filter { $0.status == 402 }.map(\.key))
        #expect(results.contains { $0.status == 402 }, "the short callers were never refused")
        #expect(!acknowledged.isEmpty)
        #expect(acknowledged.isDisjoint(with: refusedForFunds), "a key both settled and refused")
        for sent in results where ![0, 200, 201, 202, 402, 409, 503].contains(sent.status) {
            Issue.record("unexpected answer \(sent.status) for \(sent.key): \(sent.body)")
        }

        // Every acknowledged call has exactly one invoice; nothing else has one.
        let invoices = try reader.ledger.readLedger { try $0.allInvoices() }.map { try Invoice(canonicalBytes: $0.bytes, terms: reader.terms(sha256:)) }
        var perKey: [String: Int] = [:]
        for invoice in invoices { perKey[invoice.record.idempotencyKey, default: 0] += 1 }
        #expect(perKey.values.allSatisfy { $0 == 1 }, "a call was charged twice")
        #expect(acknowledged.isSubset(of: Set(perKey.keys)), "acknowledged calls without an invoice: \(acknowledged.subtracting(perKey.keys).sorted())")
        #expect(Set(perKey.keys).isDisjoint(with: refusedForFunds))
        #expect(try reader.ledger.readLedger { try $0.pendingCallKeys() }.isEmpty)

        // Balances follow from the invoices alone: each caller paid exactly its invoices' fees.
        var paid: [String: TokenAmount] = [:]
        for invoice in invoices { paid[invoice.record.caller] = try (paid[invoice.record.caller] ?? .zero).adding(invoice.computation.fee) }
        for caller in callers {
            let deposit = try TokenAmount(parsing: caller == "caller6" || caller == "caller7" ? "5" : "1000")
            let expected = try deposit.subtracting(paid[caller] ?? .zero)
            #expect(try reader.balance(of: caller) == expected, "\(caller)")
        }
        var payouts: [String: TokenAmount] = [:]
        for invoice in invoices {
            for payout in invoice.computation.payouts { payouts[payout.account] = try (payouts[payout.account] ?? .zero).adding(payout.amount) }
        }
        for (account, amount) in payouts where !account.hasPrefix("caller") {
            #expect(try reader.balance(of: account) == amount, "\(account)")
        }

        // One ledger: invoices 0..<n with no gap, a chain of consistent checkpoints, and verify passes.
        #expect(invoices.map(\.ledgerIndex) == Array(0..<invoices.count))
        let report = try reader.verify()
        #expect(report.ok, "\(report.failure ?? "")")
        #expect(report.invoices == invoices.count)
    }

    /// PostgreSQL going away under load: calls get a clear 503 (JSON, with Retry-After), the
    /// replica keeps serving, and calls settle again once the database is back, by themselves.
    @Test(.enabled(if: PostgresServer.isAvailable, "needs PostgreSQL (initdb in /usr/lib/postgresql/15/bin)"))
    func aDatabaseRestartUnderLoadAnswers503AndRecovers() async throws {
        let server = try PostgresServer()
        try server.start()
        defer { server.stop() }
        try server.createDatabase("store")
        PostgresRegistryIndex.register()
        let fixture = try RegistryFixture(database: server.url(database: "store"))
        let signer = NodeSigner()
        try await fixture.app().test(.router) { client in
            try await fixture.market(client)
            try await fixture.priceAndFund(client, key: signer, callers: ["alice"], deposit: "1000")
        }
        let replica = try LiveRegistry(store: fixture.store.root)
        var answers: [(phase: Int, key: String, status: Int, body: String, retryAfter: String?)] = []
        var n = 0
        func call(_ phase: Int) async throws {
            n += 1
            let key = "k\(n)"
            let body = try JSONSerialization.data(withJSONObject: try SignedCall(caller: "alice", key: key, signer: signer).body())
            let answer = await Self.post(replica.base, token: fixture.node, json: body, key: key)
            answers.append((phase, key, answer.status, answer.body, answer.retryAfter))
        }
        for _ in 0..<20 { try await call(0) }
        try server.pause()
        for _ in 0..<10 { try await call(1) }
        try server.resume()
        // The replica reconnects by itself: within a few seconds calls settle again.
        let deadline = Date().addingTimeInterval(20)
        repeat {
            try await call(2)
        } while answers.last?.status != 201 && Date() < deadline
        for _ in 0..<20 { try await call(3) }

        #expect(answers.filter { $0.phase == 0 }.allSatisfy { $0.status == 201 }, "\(answers.filter { $0.phase == 0 }.map(\.status))")
        let down = answers.filter { $0.phase == 1 }
        #expect(down.allSatisfy { $0.status == 503 }, "\(down.map { "\($0.status) \($0.body)" })")
        for answer in down where answer.status == 503 {
            #expect(answer.retryAfter != nil)
            #expect(answer.body.hasPrefix(#"{"error":{"code":"unavailable","message":"#), "\(answer.body)")
        }
        #expect(answers.filter { $0.phase == 3 }.allSatisfy { $0.status == 201 }, "\(answers.filter { $0.phase == 3 }.map(\.body))")
        replica.stop()

        // Exactly the acknowledged calls are in the ledger, and it verifies.
        let store = try Store.open(at: fixture.store.root)
        let invoices = try store.ledger.readLedger { try $0.allInvoices() }.map { try Invoice(canonicalBytes: $0.bytes, terms: store.terms(sha256:)) }
        #expect(Set(invoices.map(\.record.idempotencyKey)) == Set(answers.filter { $0.status == 201 }.map(\.key)))
        #expect(invoices.count == answers.filter { $0.status == 201 }.count)
        let report = try store.verify()
        #expect(report.ok, "\(report.failure ?? "")")
    }
}
