import Foundation
import GRDB
import GRDBSQLite

/// One of GRDB's cached statements, bound and stepped through SQLite's C API. The ledger's
/// hottest statements run six or so times for every deferred call of a group commit, and in
/// perf of a deferred run 29% of the committer thread's samples were GRDB frames inside the
/// group commit (10.5% after): argument boxing, `DatabaseValue` conversions, rows read by name.
///
/// The statement stays GRDB's: it is prepared and cached by `Database.cachedStatement`, used
/// only inside GRDB's transaction on its connection, and left reset with no bindings, so that
/// GRDB may run it again. A statement that fails throws `DatabaseError` like GRDB's, and the
/// transaction it ran in is rolled back by GRDB's `write` as for any error.
struct SQLiteStep {
    private let handle: OpaquePointer

    init(_ db: Database, sql: String) throws {
        handle = try db.cachedStatement(sql: sql).sqliteStatement
        sqlite3_reset(handle)
    }

    /// SQLite copies what it is given: the Swift buffers need not outlive the call.
    private static let transient = unsafeBitCast(OpaquePointer(bitPattern: -1), to: sqlite3_destructor_type.self)

    func bind(_ index: Int32, _ text: String) throws {
        // An empty string is text, not NULL (a nil base address would bind NULL).
        guard !text.isEmpty else { return try check(sqlite3_bind_text(handle, index, "", 0, Self.transient)) }
        var text = text
        try check(text.withUTF8 { utf8 in
            utf8.withMemoryRebound(to: CChar.self) { sqlite3_bind_text(handle, index, $0.baseAddress, Int32($0.count), Self.transient) }
        })
    }

    func bind(_ index: Int32, _ text: String?) throws {
        guard let text else { return try check(sqlite3_bind_null(handle, index)) }
        try bind(index, text)
    }

    func bind(_ index: Int32, _ data: Data) throws {
        try check(data.withUnsafeBytes { bytes in
            // An empty blob is a blob, not NULL (a nil base address would bind NULL).
            bytes.isEmpty ? sqlite3_bind_zeroblob(handle, index, 0)
                : sqlite3_bind_blob(handle, index, bytes.baseAddress, Int32(bytes.count), Self.transient)
        })
    }

    func bind(_ index: Int32, _ value: Int64) throws {
        try check(sqlite3_bind_int64(handle, index, value))
    }

    func bind(_ index: Int32, _ value: Int64?) throws {
        guard let value else { return try check(sqlite3_bind_null(handle, index)) }
        try bind(index, value)
    }

    /// Runs the bound statement to its end; returns the rows it changed.
    @discardableResult
    func run() throws -> Int {
        defer { clear() }
        while true {
            switch sqlite3_step(handle) {
            case SQLITE_DONE: return Int(sqlite3_changes(sqlite3_db_handle(handle)))
            case SQLITE_ROW: continue
            case let code: throw failure(code)
            }
        }
    }

    /// The first row the bound statement yields, read by `read` (nil: no row).
    func first<T>(_ read: (Columns) throws -> T) throws -> T? {
        defer { clear() }
        switch sqlite3_step(handle) {
        case SQLITE_DONE: return nil
        case SQLITE_ROW: return try read(Columns(handle: handle))
        case let code: throw failure(code)
        }
    }

    /// The current row's columns, by position.
    struct Columns {
        fileprivate let handle: OpaquePointer

        func isNull(_ index: Int32) -> Bool { sqlite3_column_type(handle, index) == SQLITE_NULL }

        func text(_ index: Int32) -> String? {
            guard let bytes = sqlite3_column_text(handle, index) else { return nil }
            let count = Int(sqlite3_column_bytes(handle, index))
            return String(decoding: UnsafeBufferPointer(start: bytes, count: count), as: UTF8.self)
        }

        func int64(_ index: Int32) -> Int64? {
            isNull(index) ? nil : sqlite3_column_int64(handle, index)
        }
    }

    private func clear() {
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
    }

    private func check(_ code: Int32) throws {
        guard code == SQLITE_OK else { throw failure(code) }
    }

    private func failure(_ code: Int32) -> DatabaseError {
        let message = String(cString: sqlite3_errmsg(sqlite3_db_handle(handle)))
        return DatabaseError(resultCode: ResultCode(rawValue: code), message: message,
                             sql: sqlite3_sql(handle).map { String(cString: $0) })
    }
}
