import Foundation
@testable import ProvenanceCore
import Testing

/// `Parallel.stream`: work on every core, consumed in order on the calling thread as it finishes
/// (how a batch's invoices are encoded while the ones before them are written).
@Suite struct ParallelTests {
    @Test(arguments: [0, 1, 2, 7, 500])
    func everyIndexIsConsumedOnceInOrderAfterItsWork(count: Int) throws {
        let results = Slots(count: max(count, 1), repeating: -1)
        var consumed: [Int] = []
        var runs = 0
        try Parallel.stream(count) { index in
            if index % 5 == 0 { usleep(200) }  // some finish out of order
            results[index] = index * index
        } consume: { run in
            runs += 1
            #expect(run.lowerBound == consumed.count && !run.isEmpty)
            // Every index handed over is already worked out.
            consumed.append(contentsOf: run.map { results[$0] })
        }
        #expect(consumed == (0..<count).map { $0 * $0 })
        #expect(runs <= count)
    }

    /// With no pool thread to help (all busy, say), the calling thread does the work itself.
    @Test func theCallingThreadWorksWhenNoWorkerStarts() throws {
        let results = Slots(count: 300, repeating: -1)
        var consumed: [Int] = []
        try Parallel.stream(300, workers: 0) { index in
            results[index] = index + 1
        } consume: { run in
            consumed.append(contentsOf: run.map { results[$0] })
        }
        #expect(consumed == Array(1...300))
    }

    struct Stop: Error {}

    /// A consumer that throws stops the stream: the error comes out once every work that started
    /// has returned, and what had not started never runs.
    @Test func aThrowingConsumerEndsTheStreamAfterTheWorkInFlight() throws {
        let count = 2_000
        let started = Locked(0)
        let running = Locked(0)
        let finished = Locked(0)
        #expect(throws: Stop.self) {
            try Parallel.stream(count) { _ in
                started.write { $0 += 1 }
                running.write { $0 += 1 }
                usleep(100)
                running.write { $0 -= 1 }
                finished.write { $0 += 1 }
            } consume: { run in
                if run.upperBound >= 10 { throw Stop() }
            }
        }
        let (startedNow, runningNow, finishedNow) = (started.read { $0 }, running.read { $0 }, finished.read { $0 })
        #expect(runningNow == 0 && finishedNow == startedNow)
        #expect(startedNow < count, "all \(count) ran though the consumer stopped at 10")
        // Nothing starts after the stream returned.
        usleep(20_000)
        let startedLater = started.read { $0 }
        #expect(startedLater == startedNow)
    }
}
