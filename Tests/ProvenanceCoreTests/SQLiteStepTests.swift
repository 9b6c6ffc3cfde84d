import Foundation
import GRDB
@testable import ProvenanceCore
import Testing

/// `SQLiteStep` binds through SQLite's C API what GRDB would bind: the same values stored the
/// same way (GRDB reads them back as the oracle), empty text and blobs that stay non-NULL, a
/// failure that throws without spoiling the statement, and the statement left for GRDB.
@Suite struct SQLiteStepTests {
    static func database() throws -> DatabaseQueue {
        let queue = try DatabaseQueue()
        try queue.write { db in
            try db.execute(sql: "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE, bytes BLOB, number INTEGER, note TEXT)")
        }
        return queue
    }

    static let insertSQL = "INSERT INTO t (id, name, bytes, number, note) VALUES (?, ?, ?, ?, ?)"

    @Test func storesWhatGRDBStores() throws {
        let queue = try Self.database()
        let texts = ["", "plain", "naïve — 💸", String(repeating: "x", count: 10_000)]
        let blobs = [Data(), Data([0]), Data((0..<300).map { UInt8($0 % 256) })]
        try queue.write { db in
            let step = try SQLiteStep(db, sql: Self.insertSQL)
            var id: Int64 = 0
            for text in texts {
                for blob in blobs {
                    id += 1
                    try step.bind(1, id)
                    try step.bind(2, "\(text)-\(id)")
                    try step.bind(3, blob)
                    try step.bind(4, id % 2 == 0 ? Int64.min + id : nil)
                    try step.bind(5, id % 3 == 0 ? nil : text)
                    #expect(try step.run() == 1)
                    // The same row through GRDB, for comparison.
                    try db.execute(sql: Self.insertSQL, arguments: [id + 1_000, "\(text)-\(id + 1_000)", blob,
                                                                   id % 2 == 0 ? Int64.min + id : nil, id % 3 == 0 ? nil : text])
                }
            }
        }
        try queue.read { db in
            let rows = try Row.fetchAll(db, sql: "SELECT * FROM t WHERE id < 1000 ORDER BY id")
            #expect(rows.count == texts.count * blobs.count)
            for row in rows {
                let id: Int64 = row["id"]
                let twin = try #require(try Row.fetchOne(db, sql: "SELECT * FROM t WHERE id = ?", arguments: [id + 1_000]))
                #expect((row["name"] as String).dropLast("-\(id)".count) == (twin["name"] as String).dropLast("-\(id + 1_000)".count))
                for column in ["bytes", "number", "note"] {
                    #expect(row[column] as DatabaseValue == twin[column] as DatabaseValue, "column \(column) of row \(id)")
                }
                // Empty text and empty blobs are values, not NULL.
                #expect(!(row["bytes"] as DatabaseValue).isNull)
            }
            #expect(try String.fetchOne(db, sql: "SELECT typeof(bytes) FROM t WHERE id = 1") == "blob")
            #expect(try String.fetchOne(db, sql: "SELECT typeof(note) FROM t WHERE id = 1") == "text")
        }
    }

    @Test func readsFirstRowByPosition() throws {
        let queue = try Self.database()
        try queue.write { db in
            try db.execute(sql: Self.insertSQL, arguments: [1, "a", Data([1]), 42, nil])
            let select = try SQLiteStep(db, sql: "SELECT name, number, note FROM t WHERE id = ?")
            try select.bind(1, Int64(1))
            let row = try select.first { ($0.text(0), $0.int64(1), $0.text(2), $0.isNull(2)) }
            #expect(row?.0 == "a")
            #expect(row?.1 == 42)
            #expect(row?.2 == nil)
            #expect(row?.3 == true)
            try select.bind(1, Int64(2))
            #expect(try select.first { $0.text(0) } == nil)
        }
    }

    @Test func failureThrowsAndLeavesTheStatementUsable() throws {
        let queue = try Self.database()
        try queue.write { db in
            let step = try SQLiteStep(db, sql: Self.insertSQL)
            try step.bind(1, Int64(1))
            try step.bind(2, "same")
            try step.run()
            try step.bind(1, Int64(2))
            try step.bind(2, "same")
            do {
                try step.run()
                Issue.record("a second row named 'same' was inserted")
            } catch let error as DatabaseError {
                #expect(error.resultCode == .SQLITE_CONSTRAINT)
                #expect(error.message?.contains("UNIQUE constraint failed: t.name") == true)
                #expect(error.sql == Self.insertSQL)
            }
            // Bindings were cleared: an unbound parameter is NULL, and the statement runs again.
            try step.bind(1, Int64(3))
            try step.run()
            #expect(try Row.fetchOne(db, sql: "SELECT name, bytes FROM t WHERE id = 3")?["name"] as String? == nil)
            // GRDB runs its cached statement as usual after ours.
            try db.cachedStatement(sql: Self.insertSQL).execute(arguments: [4, "grdb", nil, nil, nil])
            #expect(try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM t") == 3)
        }
    }
}
