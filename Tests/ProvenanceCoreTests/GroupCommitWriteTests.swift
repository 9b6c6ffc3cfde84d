import Crypto
import Foundation
@testable import ProvenanceCore
import Testing

/// A group commit decides every submission in memory and writes only at its end: a submission
/// refused part-way (its second call short of funds) leaves no row, no reservation and no
/// balance change of its own, while the submissions beside it in the same transaction commit.
@Suite struct GroupCommitWriteTests {
    static func prepared(_ store: Store, _ records: [CallRecord], key: Curve25519.Signing.PrivateKey, deferred: Bool,
                         resolver: any AttributionPluginResolver) async throws -> [PreparedCall] {
        var calls: [PreparedCall] = []
        for record in records {
            var call = try await store.prepare(record, try CallSignature.sign(record, with: key), output: nil, deferred: deferred,
                                               resolver: resolver)
            try call.computeFee()
            calls.append(call)
        }
        return calls
    }

    static func call(_ caller: String, _ key: String, inputTokens: UInt64 = 100) -> CallRecord {
        CallRecord(caller: caller, model: "m", version: "1", node: "gpu", router: nil, inputTokens: inputTokens, outputTokens: 0,
                   latencyMilliseconds: 10, outputSHA256: nil, idempotencyKey: key)
    }

    @Test func aRefusedSubmissionWritesNothingAndItsGroupCommits() async throws {
        let root = try SQLiteLayoutTests.folder()
        defer { try? FileManager.default.removeItem(at: root) }
        let (store, resolver, nodeKey) = try DeferredStore.make(in: root)
        // A call of 1,000 input tokens costs 0.001: bob can pay one, not two.
        _ = try store.deposit(try TokenAmount(parsing: "0.0015"), to: "bob")
        let before = try store.ledger.readLedger { (try $0.lastTransfer().sequence, try $0.batches().count, try $0.balances()) }

        let reserved = try await Self.prepared(store, [Self.call("alice", "a0")], key: nodeKey, deferred: true, resolver: resolver)
        let refused = try await Self.prepared(store, [Self.call("bob", "b0", inputTokens: 1000), Self.call("bob", "b1", inputTokens: 1000)],
                                              key: nodeKey, deferred: true, resolver: resolver)
        let settled = try await Self.prepared(store, [Self.call("alice", "a1")], key: nodeKey, deferred: false, resolver: resolver)
        let results = store.commitGroup([reserved, refused, settled])

        let reservedStatus = try results[0].get().map { $0.status }
        let settledStatus = try results[2].get().map { $0.status }
        #expect(reservedStatus == [CallOutcome.Status.pending])
        #expect(settledStatus == [CallOutcome.Status.settled])
        guard case .failure(let error as ProvenanceError) = results[1] else {
            Issue.record("bob's submission was not refused: \(results[1])")
            return
        }
        #expect(error.message.contains("insufficient balance: bob"))

        try store.ledger.readLedger { ledger in
            // b0 was reserved in memory before b1 was refused: neither has a row, nothing of bob's moved.
            #expect(try ledger.callStatus(idempotencyKey: "b0") == nil)
            #expect(try ledger.callStatus(idempotencyKey: "b1") == nil)
            #expect(try ledger.pendingCallKeys() == ["a0"])
            #expect(try ledger.balance(of: "bob") == before.2["bob"])
            #expect(try ledger.transfers(account: "bob").count == 1, "only the deposit")
            // One batch for the group, holding the one invoice.
            let batches = try ledger.batches()
            #expect(batches.count == before.1 + 1)
            #expect(batches.last?.invoiceCount == 1)
        }
        let report = try store.verify()
        #expect(report.ok, "\(report.failure ?? "")")
    }

    @Test func aGroupWhoseEverySubmissionIsRefusedWritesNothing() async throws {
        let root = try SQLiteLayoutTests.folder()
        defer { try? FileManager.default.removeItem(at: root) }
        let (store, resolver, nodeKey) = try DeferredStore.make(in: root)
        let snapshot = { try store.ledger.readLedger { (try $0.lastTransfer().sequence, try $0.batches().count, try $0.balances(), try $0.frontier().size) } }
        let before = try snapshot()
        let broke = try await Self.prepared(store, [Self.call("carol", "c0")], key: nodeKey, deferred: true, resolver: resolver)
        let tooDear = try await Self.prepared(store, [Self.call("alice", "a0"), Self.call("alice", "a1", inputTokens: 10_000_000_000)],
                                              key: nodeKey, deferred: false, resolver: resolver)
        let results = store.commitGroup([broke, tooDear])
        #expect(results.allSatisfy { if case .failure = $0 { true } else { false } })
        let after = try snapshot()
        #expect(after.0 == before.0 && after.1 == before.1 && after.2 == before.2 && after.3 == before.3)
        #expect(try store.ledger.readLedger { try $0.callStatus(idempotencyKey: "a0") } == nil)
    }

    /// Submissions that arrive together are written together; once the load is gone, the
    /// committer goes idle, and the next lone submission is written on its own.
    @Test func concurrentSubmissionsShareGroupsAndALoneOneIsWrittenAlone() async throws {
        let root = try SQLiteLayoutTests.folder()
        defer { try? FileManager.default.removeItem(at: root) }
        let (store, resolver, nodeKey) = try DeferredStore.make(in: root)
        let batchesBefore = try store.ledger.readLedger { try $0.batches().count }
        var submissions: [[PreparedCall]] = []
        for index in 0..<64 {
            submissions.append(try await Self.prepared(store, [Self.call("alice", "k\(index)")], key: nodeKey, deferred: true, resolver: resolver))
        }
        let statuses = try await withThrowingTaskGroup(of: [CallOutcome.Status].self) { group in
            for calls in submissions {
                group.addTask { try await store.committer.submit(calls, to: store).map(\.status) }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        #expect(statuses == Array(repeating: .pending, count: 64))
        let batchesAfterLoad = try store.ledger.readLedger { try $0.batches().count }
        #expect(batchesAfterLoad - batchesBefore < 64, "64 concurrent submissions were written in \(batchesAfterLoad - batchesBefore) groups")

        let lone = try await Self.prepared(store, [Self.call("alice", "lone")], key: nodeKey, deferred: true, resolver: resolver)
        #expect(try await store.committer.submit(lone, to: store).map(\.status) == [.pending])
        let (batches, pending) = try store.ledger.readLedger { (try $0.batches().count, try $0.pendingCallKeys().count) }
        #expect(batches == batchesAfterLoad + 1)
        #expect(pending == 65)
        let report = try store.verify()
        #expect(report.ok, "\(report.failure ?? "")")
    }

    /// Every group is told to the store's observer, before its callers have their answers: the
    /// submissions and calls it took (all of them, once each), the ones that failed alone, and
    /// its transaction's time. The calls pending are counted by the database.
    @Test func everyGroupIsToldToTheObserverBeforeItsAnswers() async throws {
        let root = try SQLiteLayoutTests.folder()
        defer { try? FileManager.default.removeItem(at: root) }
        let (store, resolver, nodeKey) = try DeferredStore.make(in: root)
        let told = Locked<[GroupCommit]>([])
        store.observeGroupCommits { group in told.write { $0.append(group) } }
        let batchesBefore = try store.ledger.readLedger { try $0.batches().count }

        var submissions: [[PreparedCall]] = []
        for index in 0..<64 {
            let calls = index % 8 == 0 ? [Self.call("alice", "k\(index)"), Self.call("alice", "k\(index)b")] : [Self.call("alice", "k\(index)")]
            submissions.append(try await Self.prepared(store, calls, key: nodeKey, deferred: true, resolver: resolver))
        }
        let answered = Locked(0)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for calls in submissions {
                group.addTask {
                    _ = try await store.committer.submit(calls, to: store)
                    // Every call answered so far was in a group told before its answer.
                    let soFar = answered.write { $0 += calls.count; return $0 }
                    #expect(told.read { $0.reduce(0) { $0 + $1.calls } } >= soFar)
                }
            }
            try await group.waitForAll()
        }
        let groups = told.read { $0 }
        #expect(groups.reduce(0) { $0 + $1.submissions } == 64)
        #expect(groups.reduce(0) { $0 + $1.calls } == 72)
        #expect(groups.allSatisfy { $0.failedSubmissions == 0 && $0.calls >= $0.submissions && $0.duration > .zero })
        let batches = try store.ledger.readLedger { try $0.batches().count } - batchesBefore
        #expect(groups.count == batches, "one group, one batch: \(groups.count) groups, \(batches) batches")
        #expect(groups.count < 64, "concurrent submissions shared groups")

        // A lone submission refused inside its group (bob has no money) is told as failed, and
        // told before its answer even by an observer that takes its time (a later call replaces it).
        store.observeGroupCommits { group in
            Thread.sleep(forTimeInterval: 0.05)
            told.write { $0.append(group) }
        }
        _ = try store.deposit(try TokenAmount(parsing: "0.00001"), to: "bob")
        let refused = try await Self.prepared(store, [Self.call("bob", "b0", inputTokens: 1000)], key: nodeKey, deferred: true, resolver: resolver)
        await #expect(throws: ProvenanceError.self) { _ = try await store.committer.submit(refused, to: store) }
        let last = try #require(told.read { $0.last })
        #expect(last.submissions == 1 && last.calls == 1 && last.failedSubmissions == 1)
        #expect(told.read { $0.count } == groups.count + 1)

        let (count, keys) = try store.ledger.readLedger { (try $0.pendingCallCount(), try $0.pendingCallKeys()) }
        #expect(count == 72 && keys.count == 72)
        _ = try await store.settlePending(resolver: resolver)
        #expect(try store.ledger.readLedger { try $0.pendingCallCount() } == 0)
        #expect(told.read { $0.count } == groups.count + 1, "a batch settlement is not a group commit")
    }
}
