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
        let clock = UInt64(max(0, now.timeIntervalSince1970 * 1000)) & 0xFFFF_FFFF_FFFF
        let (milliseconds, counter): (UInt64, UInt16) = lock.withLock {
            if clock > last.milliseconds {
                // A fresh millisecond starts its counter at a random value in the lower half,
                // which leaves room for at least 2,048 more keys within it.
                last = (clock, UInt16.random(in: 0..<0x800))
            } else if last.counter < 0xFFF {
                last.counter += 1
            } else {
                last = (last.milliseconds + 1, 0)
            }
            return last
        }
        // A version 4 UUID's last 8 bytes are already the variant (0b10) and 62 random bits;
        // the first 8 become the time, the version (7) and the counter.
        var uuid = UUID().uuid
        withUnsafeMutableBytes(of: &uuid) { bytes in
            for index in 0..<6 { bytes[index] = UInt8(truncatingIfNeeded: milliseconds >> (8 * (5 - index))) }
            bytes[6] = 0x70 | UInt8(counter >> 8)
            bytes[7] = UInt8(truncatingIfNeeded: counter)
        }
        return UUID(uuid: uuid).uuidString.lowercased()
    }

    /// The Unix time in milliseconds a UUIDv7 key carries, or nil when the key is not one
    /// (another version, another variant, not lowercase, or not a UUID at all).
    public static func milliseconds(of key: String) -> UInt64? {
        guard key == key.lowercased(), let uuid = UUID(uuidString: key) else { return nil }
        return withUnsafeBytes(of: uuid.uuid) { bytes in
            guard bytes[6] >> 4 == 7, bytes[8] >> 6 == 0b10 else { return nil }
            return bytes.prefix(6).reduce(0) { $0 << 8 | UInt64($1) }
        }
    }
}
