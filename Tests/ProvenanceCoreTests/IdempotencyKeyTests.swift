import Foundation
import ProvenanceCore
import Testing

/// The keys Provenance makes for calls that name none: UUIDv7 (RFC 9562), read back with
/// Foundation's UUID parser as the oracle for the layout, and increasing in the order made.
@Suite struct IdempotencyKeyTests {
    /// Version 7 and variant 0b10, read from the bytes Foundation's parser gives.
    static func isVersion7(_ key: String) -> Bool {
        guard let uuid = UUID(uuidString: key) else { return false }
        return uuid.uuid.6 >> 4 == 7 && uuid.uuid.8 >> 6 == 0b10 && key == key.lowercased()
    }

    @Test func keysAreVersion7UUIDsCarryingTheTimeAndIncrease() {
        let before = UInt64(Date().timeIntervalSince1970 * 1000)
        let keys = (0..<10_000).map { _ in IdempotencyKey.make() }
        let after = UInt64(Date().timeIntervalSince1970 * 1000)
        #expect(keys.allSatisfy(Self.isVersion7))
        // Strictly increasing as text, which is the order the store's index keeps.
        #expect(zip(keys, keys.dropFirst()).allSatisfy { $0 < $1 })
        let times = keys.compactMap(IdempotencyKey.milliseconds(of:))
        #expect(times.count == keys.count)
        // Another test making keys at once can move the counter's overflow a few ms ahead.
        #expect(times.allSatisfy { $0 >= before && $0 <= after + 1_000 })
        // The 62 random bits differ from key to key.
        #expect(Set(keys.map { $0.suffix(12) }).count > 9_990)
    }

    /// Thousands of keys in one millisecond, and a clock that steps back: still increasing, the
    /// time field moving ahead when the 12-bit counter runs out, never behind the clock given.
    @Test func oneMillisecondAndAClockSteppingBackStillIncrease() {
        let instant = Date(timeIntervalSince1970: 1_600_000_000.123)
        let keys = (0..<5_000).map { _ in IdempotencyKey.make(now: instant) }
            + [IdempotencyKey.make(now: instant.addingTimeInterval(-3_600))]
        #expect(keys.allSatisfy(Self.isVersion7))
        #expect(zip(keys, keys.dropFirst()).allSatisfy { $0 < $1 })
        #expect(keys.compactMap(IdempotencyKey.milliseconds(of:)).allSatisfy { $0 >= 1_600_000_000_123 })
    }

    @Test func keysMadeAtOnceAreAllDistinct() async {
        let keys = await withTaskGroup(of: [String].self) { group in
            for _ in 0..<4 { group.addTask { (0..<2_000).map { _ in IdempotencyKey.make() } } }
            return await group.reduce(into: []) { $0 += $1 }
        }
        #expect(Set(keys).count == 8_000)
    }

    @Test func otherKeysCarryNoTime() {
        #expect(IdempotencyKey.milliseconds(of: "k1") == nil)
        #expect(IdempotencyKey.milliseconds(of: UUID().uuidString.lowercased()) == nil)  // version 4
        let key = IdempotencyKey.make()
        #expect(IdempotencyKey.milliseconds(of: key.uppercased()) == nil)
        #expect(IdempotencyKey.milliseconds(of: String(key.dropLast())) == nil)
        // The variant bits 0b11 (reserved) are not RFC 9562's.
        var characters = Array(key)
        characters[19] = "c"
        #expect(IdempotencyKey.milliseconds(of: String(characters)) == nil)
    }
}
