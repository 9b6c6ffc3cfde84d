import Foundation
@testable import ProvenanceCore
import Testing

/// Two processes settling one store at once (each its own `Store`), while calls are reserved.
/// A settlement reads the pending calls before its transaction; only those still pending when
/// it writes are settled, so every call is settled exactly once and neither settlement fails.
@Suite struct TwoSettlersTests {
    /// One settlement reads; another settles everything and more calls are reserved; then the
    /// first writes: it settles nothing it read, and leaves the new calls for the next batch.
    @Test func aSettlementAfterAnotherSettlesOnlyWhatIsStillPending() async throws {
        let root = try SQLiteLayoutTests.folder()
        defer { try? FileManager.default.removeItem(at: root) }
        let (first, resolver, nodeKey) = try DeferredStore.make(in: root)
        let second = try Store.open(at: first.root)
        let records = DeferredStore.records(0..<300)
        _ = try await first.submit(Array(zip(records, try CallSignature.signBatch(records, with: nodeKey))), deferred: true, resolver: resolver)

        let read = try await first.readPending(resolver: resolver)
        #expect(read.pending.count == 300)
        #expect(try await second.settlePending(resolver: resolver).settled == 300)
        let later = DeferredStore.records(300..<320)
        _ = try await second.submit(Array(zip(later, try CallSignature.signBatch(later, with: nodeKey))), deferred: true, resolver: resolver)
        let late = try first.settle(read)
        #expect(late.settled == 0 && late.invoices.isEmpty)
        #expect(try first.ledger.readLedger { try $0.pendingCallKeys() } == Set(later.map(\.idempotencyKey)))

        #expect(try await first.settlePending(resolver: resolver).settled == 20)
        try expectEachCallSettledOnce(first, calls: 320)
    }

    /// The same at random: two settlers and reservations running at once, round after round.
    @Test func concurrentSettlementsSettleEveryCallOnce() async throws {
        let root = try SQLiteLayoutTests.folder()
        defer { try? FileManager.default.removeItem(at: root) }
        let (first, resolver, nodeKey) = try DeferredStore.make(in: root)
        let second = try Store.open(at: first.root)
        var submitted = 0
        var settled = 0
        for round in 0..<6 {
            let records = DeferredStore.records((round * 500)..<(round * 500 + 400))
            _ = try await first.submit(Array(zip(records, try CallSignature.signBatch(records, with: nodeKey))), deferred: true, resolver: resolver)
            let more = DeferredStore.records((round * 500 + 400)..<(round * 500 + 500))
            let moreSigned = Array(zip(more, try CallSignature.signBatch(more, with: nodeKey)))
            async let a = first.settlePending(resolver: resolver)
            async let b = second.settlePending(resolver: resolver)
            async let c = second.submit(moreSigned, deferred: true, resolver: resolver)
            let (reportA, reportB, outcomes) = try await (a, b, c)
            #expect(outcomes.count == 100 && outcomes.allSatisfy { $0.status == .pending && !$0.replayed })
            submitted += 500
            settled += reportA.settled + reportB.settled
            // Each settles what it read and is still pending: never a call the other settled.
            #expect(Set(reportA.invoices).isDisjoint(with: reportB.invoices))
        }
        settled += try await first.settlePending(resolver: resolver).settled
        #expect(settled == submitted)
        try expectEachCallSettledOnce(first, calls: submitted)
    }

    /// Calls d0..<calls each have an invoice of their own, the ledger holds no other, nothing is
    /// pending, and the store verifies.
    func expectEachCallSettledOnce(_ store: Store, calls: Int) throws {
        let keys = DeferredStore.records(0..<calls).map(\.idempotencyKey)
        let statuses = try store.ledger.readLedger { try $0.callStatuses(idempotencyKeys: keys) }
        var invoiceOf: [Int: String] = [:]
        for (key, status) in statuses {
            guard case .settled(_, let invoice) = status else {
                Issue.record("\(key) is not settled")
                continue
            }
            #expect(invoiceOf.updateValue(key, forKey: invoice) == nil, "invoice \(invoice) settles two calls")
        }
        let invoices = try store.ledger.readLedger { try $0.allInvoices() }
        #expect(statuses.count == calls && invoiceOf.count == calls && invoices.count == calls)
        #expect(try store.ledger.readLedger { try $0.pendingCallKeys() }.isEmpty)
        let verified = try store.verify()
        #expect(verified.ok, "\(verified.failure ?? "")")
    }
}
