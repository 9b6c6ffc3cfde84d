public import Foundation

/// The idempotency keys Provenance makes for a call whose caller names none: UUIDv7 (RFC 9562,
/// section 5.7), lowercase. Its first 48 bits are the Unix time in milliseconds, so keys made
/// one after the other sort one after the other, and the store's unique index of keys takes
/// each new one on its last pages. A random key (UUIDv4) lands on a random page of that index:
/// once the index has far more pages than a group commit has calls (60,000 calls are enough),
/// every call dirties a page of its own, which the commit writes to the log and the
/// checkpointer to the database again: 15,651 log bytes a call against 7,999 for UUIDv7
/// (`Benchmarks/wal-frames.sh`, `KEYS=uuid` against `KEYS=uuid7`).
///
/// Keys made by one process are strictly increasing: within a millisecond (or when the clock
/// steps back) the 12 bits after the version count up from the last key's, and when they run
/// out the time field moves one millisecond ahead (RFC 9562 section 6.2, methods 1 and 3). The
/// last 62 bits are random.
public enum IdempotencyKey {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var last: (milliseconds: UInt64, counter: UInt16) = (0, 0)

    /// A new UUIDv7, later than every key this process made before.
    public static func make(now: Date = Date()) -> String {
        var generator = SystemRandomNumberGenerator()
        let clock = UInt64(max(0, now.timeIntervalSince1970 * 1000)) & 0xFFFF_FFFF_FFFF
        let (milliseconds, counter): (UInt64, UInt16) = lock.withLock {
            if clock > last.milliseconds {
                // A fresh millisecond starts its counter at a random value in the lower half,
                // which leaves room for at least 2,048 more keys within it.
                last = (clock, UInt16.random(in: 0..<0x800, using: &generator))
            } else if last.counter < 0xFFF {
                last.counter += 1
            } else {
                last = (last.milliseconds + 1, 0)
            }
            return last
        }
        let random = generator.next() as UInt64
        var bytes = [UInt8](repeating: 0, count: 16)
        for index in 0..<6 { bytes[index] = UInt8(truncatingIfNeeded: milliseconds >> (8 * (5 - index))) }
        bytes[6] = 0x70 | UInt8(counter >> 8)          // version 7, then the counter's top 4 bits
        bytes[7] = UInt8(truncatingIfNeeded: counter)
        bytes[8] = 0x80 | (UInt8(truncatingIfNeeded: random >> 56) & 0x3F)   // variant 0b10
        for index in 9..<16 { bytes[index] = UInt8(truncatingIfNeeded: random >> (8 * (15 - index))) }
        let hex = bytes.map { String(format: "%02x", $0) }.joined()
        let characters = Array(hex)
        return [0..<8, 8..<12, 12..<16, 16..<20, 20..<32].map { String(characters[$0]) }.joined(separator: "-")
    }

    /// The Unix time in milliseconds a UUIDv7 key carries, or nil when the key is not one
    /// (another version, another variant, or not a UUID at all).
    public static func milliseconds(of key: String) -> UInt64? {
        let hex = key.replacingOccurrences(of: "-", with: "")
        guard key.count == 36, hex.count == 32, [8, 13, 18, 23].allSatisfy({ key[key.index(key.startIndex, offsetBy: $0)] == "-" }),
              hex.allSatisfy({ $0.isHexDigit && !$0.isUppercase }),
              hex[hex.index(hex.startIndex, offsetBy: 12)] == "7",
              let variant = hex[hex.index(hex.startIndex, offsetBy: 16)].hexDigitValue, variant & 0xC == 0x8 else { return nil }
        return UInt64(hex.prefix(12), radix: 16)
    }
}
