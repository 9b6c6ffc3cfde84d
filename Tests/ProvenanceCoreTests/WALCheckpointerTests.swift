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
        func databaseBytes() throws -> Int { try FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int ?? 0 }
        // About 2 MB in one commit: some 500 pages, far below the 10,000 at which a commit checkpoints.
        try await index.pool.write { db in
            try db.execute(sql: "CREATE TABLE filler (bytes BLOB)")
            for _ in 0..<2_000 { try db.execute(sql: "INSERT INTO filler VALUES (randomblob(1000))") }
        }
        var copied = false
        for _ in 0..<50 where !copied {
            try await Task.sleep(for: .milliseconds(100))
            copied = try databaseBytes() >= 2_000_000
        }
        let bytes = try databaseBytes()
        #expect(copied, "the database file holds \(bytes) bytes 5 s after the commit")
        _ = index
    }

    @Test func stoppingTwiceReturns() {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("wal-\(UUID().uuidString).sqlite").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let checkpointer = WALCheckpointer(path: path)
        checkpointer.stop()
        checkpointer.stop()
    }
}
