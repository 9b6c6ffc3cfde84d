public import Foundation

/// Where a store's state lives: the embedded SQLite file beside the repositories (the default),
/// or a database server that several registry replicas share.
///
/// A store on a server keeps `database.json` instead of `registry.sqlite`; it names the database
/// as a URL without a password. A password comes the way the server's own tools take it
/// (`PGPASSWORD`, `PGPASSFILE` or `~/.pgpass` for PostgreSQL), or from `keys/database-password`
/// (mode 0600) when `init` was given one in the URL.
public struct DatabaseLocation: Sendable, Equatable, Codable {
    /// The URL as written in `database.json`: scheme, user, host, port, database; never a password.
    public var url: String

    public init(url: String) { self.url = url }

    /// The URL's scheme, lowercased (`postgres`).
    public var scheme: String { URLComponents(string: url)?.scheme?.lowercased() ?? "" }

    static let fileName = "database.json"
    static let passwordFileName = "database-password"

    /// Splits `text` (given to `init --database`) into the URL to keep and its password, if any.
    ///
    /// - Throws: `invalidArgument` for anything but a `postgres://` or `postgresql://` URL with a
    ///   host and a database name.
    public static func parse(_ text: String) throws -> (location: DatabaseLocation, password: String?) {
        guard var components = URLComponents(string: text), let scheme = components.scheme?.lowercased() else {
            throw ProvenanceError.invalid("'\(Self.redacted(text))' is not a database URL: give postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE")
        }
        guard scheme == "postgres" || scheme == "postgresql" else {
            throw ProvenanceError.invalid("unsupported database '\(scheme)://': only postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE is supported (SQLite is the default without --database)")
        }
        guard let host = components.host, !host.isEmpty else {
            throw ProvenanceError.invalid("the database URL '\(Self.redacted(text))' names no host: give postgres://USER@HOST[:PORT]/DATABASE")
        }
        let database = String(components.path.drop(while: { $0 == "/" }))
        guard !database.isEmpty, !database.contains("/") else {
            throw ProvenanceError.invalid("the database URL '\(Self.redacted(text))' names no database: give postgres://USER@HOST[:PORT]/DATABASE")
        }
        guard components.user?.isEmpty == false else {
            throw ProvenanceError.invalid("the database URL '\(Self.redacted(text))' names no user: give postgres://USER@HOST[:PORT]/DATABASE")
        }
        guard components.queryItems?.isEmpty ?? true, components.fragment == nil else {
            throw ProvenanceError.invalid("the database URL '\(Self.redacted(text))' has options Provenance does not read: give postgres://USER@HOST[:PORT]/DATABASE")
        }
        let password = components.password
        components.password = nil
        components.scheme = "postgres"
        return (DatabaseLocation(url: components.string ?? text), password)
    }

    /// `text` with any password replaced by `***`, for messages.
    public static func redacted(_ text: String) -> String {
        guard var components = URLComponents(string: text), components.password != nil else { return text }
        components.password = "***"
        return components.string ?? text
    }

    static func read(from root: URL) throws -> DatabaseLocation? {
        let file = root.appendingPathComponent(fileName)
        guard FileManager.default.fileExists(atPath: file.path) else { return nil }
        do {
            return try JSONDecoder().decode(DatabaseLocation.self, from: Data(contentsOf: file))
        } catch {
            throw ProvenanceError(.storage, "cannot read \(file.path): \(error.localizedDescription)")
        }
    }

    func write(to root: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try (encoder.encode(self) + Data("\n".utf8)).write(to: root.appendingPathComponent(Self.fileName), options: .atomic)
    }
}

/// An index whose state lives on a database server.
public protocol DatabaseBacked {
    var location: DatabaseLocation { get }
    /// Records `verifierKey` as the key that signs this database's ledger, or checks that it is
    /// the one recorded: a second store folder (with other keys) must not write the same ledger.
    func claimLedger(verifierKey: String) throws
}

/// Opens the registry index of a store whose state lives on a database server. A backend
/// (PostgreSQL) registers one at startup; ProvenanceCore itself only knows SQLite.
public typealias DatabaseOpener = @Sendable (_ location: DatabaseLocation, _ password: String?) throws -> any RegistryIndex

public enum StoreBackends {
    private static let openers = Locked<[String: DatabaseOpener]>([:])

    /// Makes stores whose `database.json` has `scheme` openable in this process.
    public static func register(scheme: String, _ opener: @escaping DatabaseOpener) {
        openers.write { $0[scheme] = opener }
    }

    static func open(_ location: DatabaseLocation, password: String?) throws -> any RegistryIndex {
        guard let opener = openers.read({ $0[location.scheme] }) else {
            throw ProvenanceError(.storage, "this build of provenance cannot open \(location.scheme):// databases")
        }
        return try opener(location, password)
    }
}

/// Locks that every process using the store's state honours. The SQLite store uses a file lock
/// in the store directory; a database server's backend uses the database's own locks, so that
/// replicas on several machines are serialised too.
public protocol StoreLocking: Sendable {
    /// Runs `body` holding the exclusive lock named `scope` (a repository, say `datasets/NAME`).
    func withExclusiveLock<T>(_ scope: String, _ body: () throws -> T) throws -> T
    /// Takes the lock named `scope` for as long as this process lives, if nobody holds it;
    /// returns whether this process holds it now. Used for work one replica at a time should do.
    func holdLock(_ scope: String) throws -> Bool
}
