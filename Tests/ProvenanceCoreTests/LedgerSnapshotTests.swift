import Crypto
import Foundation
@testable import ProvenanceCore
import Testing

/// A group commit starts from what the group before it left (balances, last transfer, frontier,
/// prices) only while nothing else has written to the store: a deposit or a withdrawal made in
/// between, through this store or through another connection as another process would, is seen
/// by the next call, which is charged against the balance the ledger holds, never a remembered one.
@Suite struct LedgerSnapshotTests {
    static func call(_ store: Store, _ caller: String, _ key: String, inputTokens: UInt64 = 100, deferred: Bool,
                     nodeKey: Curve25519.Signing.PrivateKey, resolver: any AttributionPluginResolver) async throws -> CallOutcome {
        let record = GroupCommitWriteTests.call(caller, key, inputTokens: inputTokens)
        return try await store.submit([(record, try CallSignature.sign(record, with: nodeKey))], deferred: deferred, resolver: resolver)[0]
    }

    static func balance(_ store: Store, _ account: String) throws -> TokenAmount? {
        try store.ledger.readLedger { try $0.balance(of: account) }
    }

    /// Calls one after the other, reserved and settled, a refused one among them: every group
    /// after the first starts from the snapshot, and the ledger it leaves verifies (its
    /// transfers' hash chain, its frontier and checkpoints, the balances against the transfers).
    @Test func groupsOneAfterAnotherStartFromTheLastOneAndTheLedgerVerifies() async throws {
        let root = try SQLiteLayoutTests.folder()
        defer { try? FileManager.default.removeItem(at: root) }
        let (store, resolver, nodeKey) = try DeferredStore.make(in: root)
        let start = try #require(try Self.balance(store, "alice"))
        var fees = TokenAmount.zero
        for number in 0..<12 {
            let outcome = try await Self.call(store, "alice", "k\(number)", deferred: number % 3 != 0, nodeKey: nodeKey, resolver: resolver)
            #expect(outcome.status == (number % 3 != 0 ? .pending : .settled))
            fees = try fees.adding(try TokenAmount(parsing: outcome.fee))
        }
        // A caller with no account is refused; the group wrote nothing and its snapshot still holds.
        await #expect(throws: ProvenanceError.self) {
            _ = try await Self.call(store, "nobody", "n0", deferred: true, nodeKey: nodeKey, resolver: resolver)
        }
        let last = try await Self.call(store, "alice", "k12", deferred: false, nodeKey: nodeKey, resolver: resolver)
        fees = try fees.adding(try TokenAmount(parsing: last.fee))

        #expect(store.caches.ledgerSnapshotsTaken == 13, "every group after the first")
        // Settled calls paid out of alice's balance; reserved ones are held in escrow until settled.
        #expect(try Self.balance(store, "alice") == (try start.subtracting(fees)))
        let report = try store.verify()
        #expect(report.ok, "\(report.failure ?? "")")
        #expect(try await store.settlePending(resolver: resolver).settled == 8)
        let settled = try store.verify()
        #expect(settled.ok, "\(settled.failure ?? "")")
    }

    /// A deposit and a withdrawal through the same store, between two groups: the next group
    /// reads the balance anew. With the remembered balance, bob's second call would have been
    /// refused, and his third would have overdrawn him.
    @Test func aMoneyMovementOfThisStoreBetweenGroupsIsSeen() async throws {
        let root = try SQLiteLayoutTests.folder()
        defer { try? FileManager.default.removeItem(at: root) }
        let (store, resolver, nodeKey) = try DeferredStore.make(in: root)
        // A call of 1,000 input tokens costs 0.001: bob can pay one, not two.
        _ = try store.deposit(try TokenAmount(parsing: "0.0015"), to: "bob")
        _ = try await Self.call(store, "alice", "a0", deferred: true, nodeKey: nodeKey, resolver: resolver)
        #expect(try await Self.call(store, "bob", "b0", inputTokens: 1000, deferred: true, nodeKey: nodeKey, resolver: resolver).status == .pending)
        let taken = store.caches.ledgerSnapshotsTaken
        _ = try store.deposit(try TokenAmount(parsing: "0.001"), to: "bob")
        #expect(try await Self.call(store, "bob", "b1", inputTokens: 1000, deferred: true, nodeKey: nodeKey, resolver: resolver).status == .pending)
        #expect(store.caches.ledgerSnapshotsTaken == taken, "the deposit wrote in between")

        let left = try #require(try Self.balance(store, "bob"))
        #expect(left == (try TokenAmount(parsing: "0.0005")))
        _ = try store.withdraw(left, from: "bob")
        let before = try store.ledger.readLedger { (try $0.lastTransfer().sequence, try $0.pendingCallKeys()) }
        await #expect(throws: ProvenanceError.self) {
            _ = try await Self.call(store, "bob", "b2", inputTokens: 1000, deferred: true, nodeKey: nodeKey, resolver: resolver)
        }
        let after = try store.ledger.readLedger { (try $0.lastTransfer().sequence, try $0.pendingCallKeys()) }
        #expect(after.0 == before.0 && after.1 == before.1, "the refused call moved nothing")
        #expect(try Self.balance(store, "bob") == .zero)
        let report = try store.verify()
        #expect(report.ok, "\(report.failure ?? "")")
    }

    /// Another connection to the same store (another process, say) withdraws, deposits and
    /// changes the price between this store's groups: each next group sees it.
    @Test func aWriteOfAnotherConnectionBetweenGroupsIsSeen() async throws {
        let root = try SQLiteLayoutTests.folder()
        defer { try? FileManager.default.removeItem(at: root) }
        let (store, resolver, nodeKey) = try DeferredStore.make(in: root)
        let other = try Store.open(at: store.root)
        _ = try store.deposit(try TokenAmount(parsing: "0.002"), to: "bob")
        #expect(try await Self.call(store, "bob", "b0", inputTokens: 1000, deferred: true, nodeKey: nodeKey, resolver: resolver).status == .pending)
        #expect(try await Self.call(store, "alice", "a0", deferred: true, nodeKey: nodeKey, resolver: resolver).status == .pending)
        let taken = store.caches.ledgerSnapshotsTaken
        #expect(taken >= 1)

        // bob holds 0.001, what one more call costs; the other connection takes it all.
        _ = try other.withdraw(try TokenAmount(parsing: "0.001"), from: "bob")
        let refused = await #expect(throws: ProvenanceError.self) {
            _ = try await Self.call(store, "bob", "b1", inputTokens: 1000, deferred: true, nodeKey: nodeKey, resolver: resolver)
        }
        #expect(refused?.message.contains("insufficient balance: bob") == true, "\(String(describing: refused))")
        #expect(try Self.balance(store, "bob") == .zero)

        _ = try other.deposit(try TokenAmount(parsing: "0.001"), to: "bob")
        #expect(try await Self.call(store, "bob", "b2", inputTokens: 1000, deferred: true, nodeKey: nodeKey, resolver: resolver).status == .pending)
        #expect(try Self.balance(store, "bob") == .zero)
        #expect(store.caches.ledgerSnapshotsTaken == taken, "each of those groups read the ledger anew")

        // The price doubles through the other connection: the next call is charged the new one.
        try other.setPrice(Price(inputPer1k: try TokenAmount(parsing: "0.002"), outputPer1k: .zero, minFee: .zero, split: .standard,
                                 sloMilliseconds: nil, sloPenaltyBps: 0), model: "m")
        let repriced = try await Self.call(store, "alice", "a1", inputTokens: 1000, deferred: false, nodeKey: nodeKey, resolver: resolver)
        #expect(try TokenAmount(parsing: repriced.fee) == (try TokenAmount(parsing: "0.002")))
        // Its first try read the new price and failed as stale, writing nothing; the second try
        // (priced anew) started from the snapshot the first left.
        #expect(store.caches.ledgerSnapshotsTaken == taken + 1)
        let report = try store.verify()
        #expect(report.ok, "\(report.failure ?? "")")
    }
}
