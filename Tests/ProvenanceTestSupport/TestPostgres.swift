public import Foundation
import PostgresStorage
import ProvenanceCore

/// A PostgreSQL server for tests that need one whatever the tests' backend: the one
/// `PROVENANCE_TEST_POSTGRES` names, else one `PostgresServer` of this test process's own,
/// started on first use and stopped when the process exits.
public enum TestPostgres {
    /// Whether a server can be had: one is named, or PostgreSQL is installed.
    public static var available: Bool { TestBackend.postgresServer != nil || PostgresServer.isAvailable }

    private static let own = Locked<PostgresServer?>(nil)

    /// The server's URL (`postgres://USER@HOST:PORT`).
    public static func server() throws -> String {
        if let server = TestBackend.postgresServer { return server }
        return try own.write { server in
            if server == nil {
                let started = try PostgresServer()
                try started.start()
                server = started
                atexit { TestPostgres.stopOwn() }
            }
            return server!.url(database: "").replacingOccurrences(of: #"/$"#, with: "", options: .regularExpression)
        }
    }

    static func stopOwn() { own.read { $0 }?.stop() }

    /// A new empty database on the server, as a URL for `init --database`.
    public static func newDatabaseURL() throws -> String {
        let server = try server()
        PostgresRegistryIndex.register()
        let name = "r_\(getpid())_\(UUID().uuidString.prefix(8).lowercased())"
        try TestBackend.psql(server: server, database: "postgres", "CREATE DATABASE \(name)")
        return "\(server)/\(name)"
    }
}
