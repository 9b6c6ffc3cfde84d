import Foundation
import GRDB
@testable import ProvenanceCore
import Testing

/// The registry index's write-ahead log reaches the database file through the checkpointer
/// thread: a commit below the fallback size never copies it itself.
@Suite struct WALCheckpointerTests {
    @Test func theLogIsCopiedIntoTheDatabaseByItsOwnThread() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("wal-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let url = folder.appendingPathComponent("registry.sqlite")
        let index = try SQLiteRegistryIndex(url: url)
        // About 2 MB in one commit: some 500 pages, far below the 10,000 at which a commit checkpoints.
        try await index.pool.write { db in
            try db.execute(sql: "CREATE TABLE filler (bytes BLOB)")
            for _ in 0..<2_000 { try db.execute(sql: "INSERT INTO filler VALUES (randomblob(1000))") }
        }
        let bytes = try await Self.bytesOnceCopied(url.path)
        #expect(bytes >= 2_000_000, "the database file holds \(bytes) bytes 5 s after the commit")
        _ = index
    }

    /// A commit the thread is told of is copied at once, not at the next interval: with an
    /// interval of an hour, only `committed()` can wake it.
    @Test func aCommitWakesTheThread() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("wal-\(UUID().uuidString).sqlite").path
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
        var configuration = Configuration()
        configuration.prepareDatabase { db in try db.execute(sql: "PRAGMA wal_autocheckpoint = \(WALCheckpointer.fallbackPages)") }
        let pool = try DatabasePool(path: path, configuration: configuration)
        let checkpointer = WALCheckpointer(path: path, interval: 3_600)
        defer { checkpointer.stop() }
        func databaseBytes() throws -> Int { try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int ?? 0 }
        func fill() throws {
            try pool.write { db in
                try db.execute(sql: "CREATE TABLE IF NOT EXISTS filler (bytes BLOB)")
                for _ in 0..<2_000 { try db.execute(sql: "INSERT INTO filler VALUES (randomblob(1000))") }
            }
        }
        // Not told: after half a second the log is still where the commit left it.
        try fill()
        try await Task.sleep(for: .milliseconds(500))
        let untold = try databaseBytes()
        #expect(untold < 1_000_000, "the database file holds \(untold) bytes though no checkpoint was asked for")
        // Told: copied within seconds (at once on an idle machine).
        checkpointer.committed()
        let bytes = try await Self.bytesOnceCopied(path)
        #expect(bytes >= 2_000_000, "the database file holds \(bytes) bytes 5 s after committed()")
    }

    /// The database file's size once it holds the 2 MB a test committed, or after 5 s.
    static func bytesOnceCopied(_ path: String) async throws -> Int {
        func bytes() throws -> Int { try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int ?? 0 }
        var size = try bytes()
        for _ in 0..<50 where size < 2_000_000 {
            try await Task.sleep(for: .milliseconds(100))
            size = try bytes()
        }
        return size
    }

    @Test func stoppingTwiceReturns() {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("wal-\(UUID().uuidString).sqlite").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let checkpointer = WALCheckpointer(path: path)
        checkpointer.stop()
        checkpointer.stop()
    }
}
