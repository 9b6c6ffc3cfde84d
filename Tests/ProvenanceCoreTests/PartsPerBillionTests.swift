import Foundation
import ProvenanceCore
import Testing

@Suite struct PartsPerBillionTests {
    func normalize(_ weights: [(String, Double)]) throws -> [String: UInt64] {
        let shares = try PartsPerBillion.normalize(weights.map { ContributorWeight(contributor: $0.0, weight: $0.1) },
                                                   known: Set(weights.map(\.0)), plugin: "test")
        #expect(shares.reduce(0) { $0 + $1.ppb } == PartsPerBillion.whole)
        return Dictionary(uniqueKeysWithValues: shares.map { ($0.contributor, $0.ppb) })
    }

    @Test func thirdsGiveTheExtraPartToTheSmallestId() throws {
        #expect(try normalize([("c", 1), ("a", 1), ("b", 1)]) == ["a": 333_333_334, "b": 333_333_333, "c": 333_333_333])
    }

    @Test func largestRemainderWinsBeforeIdOrder() throws {
        // 1/7, 2/7, 4/7 of 10^9: remainders 6/7 (b: 2/7 → .714…), a gets .857…, c gets .428…
        let parts = try normalize([("a", 1), ("b", 2), ("c", 4)])
        #expect(parts == ["a": 142_857_143, "b": 285_714_286, "c": 571_428_571])
    }

    @Test func integerWeightsAreExact() throws {
        #expect(try normalize([("a", 3), ("b", 1)]) == ["a": 750_000_000, "b": 250_000_000])
        // Huge byte counts stay exact up to 2^53.
        #expect(try normalize([("a", 9_007_199_254_740_992), ("b", 9_007_199_254_740_992)]) == ["a": 500_000_000, "b": 500_000_000])
    }

    @Test func fractionalAndTinyWeights() throws {
        let parts = try normalize([("a", 0.1), ("b", 0.2), ("c", 1e-300), ("d", 0)])
        #expect(parts["d"] == 0)
        #expect(parts["c"] == 0)
        #expect(parts["a"] == 333_333_333 && parts["b"] == 666_666_667)
    }

    @Test func manyContributorsSumExactly() throws {
        let weights = (0..<10_007).map { ("c\($0)", Double(($0 * 7919) % 97 + 1)) }
        _ = try normalize(weights)
    }

    @Test func refusals() {
        let known: Set = ["a", "b"]
        func refuse(_ weights: [ContributorWeight], _ fragment: String) {
            do {
                _ = try PartsPerBillion.normalize(weights, known: known, plugin: "p")
                Issue.record("accepted \(weights)")
            } catch let error as AttributionError {
                #expect(error.description.hasPrefix("attribution plugin 'p': "))
                #expect(error.description.contains(fragment), "\(error)")
            } catch {
                Issue.record("unexpected \(error)")
            }
        }
        refuse([.init(contributor: "a", weight: .nan)], "not a finite number")
        refuse([.init(contributor: "a", weight: .infinity)], "not a finite number")
        refuse([.init(contributor: "a", weight: -1)], "negative")
        refuse([.init(contributor: "x", weight: 1)], "'x' is not a contributor")
        refuse([.init(contributor: "a", weight: 0), .init(contributor: "b", weight: 0)], "every weight is zero")
        refuse([], "every weight is zero")
        refuse([.init(contributor: "a", weight: 1), .init(contributor: "a", weight: 2)], "weighted twice")
    }

    @Test func mixingWithABaseIsExact() {
        let own = [PartsPerBillion.Share(contributor: "a", ppb: 600_000_000, raw: 6), .init(contributor: "b", ppb: 400_000_000, raw: 4)]
        let base = [PartsPerBillion.Share(contributor: "b", ppb: 500_000_000, raw: 0), .init(contributor: "c", ppb: 500_000_000, raw: 0)]
        let mixed = PartsPerBillion.mix(own: own, base: base, basePPB: 250_000_000)
        #expect(mixed.map(\.contributor) == ["a", "b", "c"])
        #expect(mixed.map(\.ppb) == [450_000_000, 425_000_000, 125_000_000])
        #expect(PartsPerBillion.mix(own: own, base: base, basePPB: 0).map(\.ppb) == [600_000_000, 400_000_000, 0])
    }

    @Test func percentUsesIntegersOnly() {
        #expect(LineageRenderer.percent(1_000_000_000) == "100.0000%")
        #expect(LineageRenderer.percent(333_333_334) == "33.3333%")
        #expect(LineageRenderer.percent(500) == "0.0001%")
        #expect(LineageRenderer.percent(0) == "0.0000%")
    }
}
