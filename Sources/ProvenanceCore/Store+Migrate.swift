public import Foundation
import GRDB

/// The store-directory side of `provenance migrate`: which file holds the state now, and the
/// switch from `registry.sqlite` to a database once a backend has copied the rows.
extension Store {
    /// The SQLite file of the store at `root` (which may not exist).
    public static func sqliteFile(at root: URL) -> URL { root.appendingPathComponent("registry.sqlite") }

    /// The database the store at `root` keeps its state in, from `database.json`; nil for SQLite.
    public static func databaseLocation(at root: URL) throws -> DatabaseLocation? {
        try DatabaseLocation.read(from: root)
    }

    /// Where `registry.sqlite` goes once its rows live in a database.
    public static func migratedSQLiteFile(at root: URL) -> URL { root.appendingPathComponent("registry.sqlite.migrated") }

    /// Makes the store at `root` open `location` from now on: the password (if any) goes to
    /// `keys/database-password` (mode 0600), then `database.json` is written atomically, then
    /// `registry.sqlite` (with its `-wal` and `-shm`) is moved aside to `registry.sqlite.migrated`.
    ///
    /// A crash at any point leaves a store that opens: before `database.json` exists it opens
    /// SQLite as before; from then on it opens the database (`database.json` wins over
    /// `registry.sqlite`), whether or not the old file has been moved yet. The log is
    /// checkpointed into the old file before it moves, so the kept copy is whole on its own.
    public static func switchToDatabase(at root: URL, location: DatabaseLocation, password: String?) throws {
        if let password { try writeDatabasePassword(password, in: root) }
        CrashPoint.beforeDatabaseMarker.hit()
        do {
            try location.write(to: root)
        } catch {
            throw ProvenanceError(.storage, "cannot write \(root.appendingPathComponent(DatabaseLocation.fileName).path): \(error.localizedDescription)")
        }
        CrashPoint.afterDatabaseMarker.hit()
        let old = sqliteFile(at: root)
        let aside = migratedSQLiteFile(at: root)
        // Fold the write-ahead log into the file, so the copy kept aside needs no -wal beside it.
        do {
            let queue = try DatabaseQueue(path: old.path)
            try queue.writeWithoutTransaction { try $0.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)") }
            try queue.close()
        } catch {
            // Not fatal: the -wal moves along with the file below.
        }
        let fm = FileManager.default
        for suffix in ["", "-wal", "-shm"] {
            let from = URL(fileURLWithPath: old.path + suffix)
            let to = URL(fileURLWithPath: aside.path + suffix)
            guard fm.fileExists(atPath: from.path) else { continue }
            if rename(from.path, to.path) != 0 {
                throw ProvenanceError(.storage, "the store now uses \(location.url), but \(from.path) could not be moved to \(to.path) (\(String(cString: strerror(errno)))): move or delete it by hand")
            }
        }
    }
}
