public import Foundation

/// A PostgreSQL server of a test's own: a cluster made by `initdb` in a temporary folder, run by
/// `pg_ctl` on a free loopback port with trust authentication, stopped (`-m immediate`) and
/// removed by `stop()` or when released. As root, the cluster belongs to the `postgres` user
/// (PostgreSQL refuses to run as root) and its commands run through `runuser -u postgres --`.
///
/// ```swift
/// guard PostgresServer.isAvailable else { return }   // no PostgreSQL installed: skip
/// let server = try PostgresServer()
/// try server.start()
/// defer { server.stop() }
/// try server.createDatabase("store")
/// try cli.must("init", "--database", server.url(database: "store"))
/// ```
public final class PostgresServer: @unchecked Sendable {
    public static let binaries = "/usr/lib/postgresql/15/bin"
    public static let psqlBinary = "/usr/bin/psql"
    /// The superuser `initdb` creates, which `url(database:)` names.
    public static let user = "postgres"

    /// Whether PostgreSQL is installed; tests that need it skip without it.
    public static var isAvailable: Bool { FileManager.default.isExecutableFile(atPath: "\(binaries)/initdb") }

    /// The temporary folder holding the cluster (`data/`), its log and its socket.
    public let folder: URL
    public private(set) var port = 0
    private let lock = NSLock()
    private var running = false
    private var removed = false

    private static var isRoot: Bool { getuid() == 0 }

    public init() throws {
        // A short path: the Unix socket's name must fit in 107 bytes.
        folder = URL(fileURLWithPath: "/tmp/pg-\(UUID().uuidString.prefix(8).lowercased())", isDirectory: true)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        if Self.isRoot {
            let chown = try runProcess("/bin/chown", ["\(Self.user):", folder.path])
            guard chown.succeeded else { throw FixtureError("chown \(folder.path) failed: \(chown.stderr)") }
        }
    }

    deinit { stop() }

    var dataDirectory: String { folder.appendingPathComponent("data").path }
    var logFile: String { folder.appendingPathComponent("server.log").path }

    /// Runs a PostgreSQL server program, as `postgres` when this process is root, through a shell
    /// that closes every inherited descriptor and sends the output to a file: the server
    /// `pg_ctl start` leaves running would otherwise keep the test's pipes (its own, and those of
    /// other processes the test process is running) open, and whoever reads them waiting, for as
    /// long as it runs.
    private func server(_ program: String, _ arguments: [String]) throws -> ProcessResult {
        let path = "\(Self.binaries)/\(program)"
        let output = folder.appendingPathComponent("\(program).out").path
        let command = #"for fd in /proc/$$/fd/*; do n=${fd##*/}; [ "$n" -gt 2 ] && eval "exec $n>&-" 2>/dev/null; done; exec "#
            + ((Self.isRoot ? ["/usr/sbin/runuser", "-u", Self.user, "--"] : []) + [path] + arguments).map(Self.shellQuoted)
            .joined(separator: " ") + " > \(Self.shellQuoted(output)) 2>&1 < /dev/null"
        let result = try runProcess("/bin/bash", ["-c", command], in: folder)
        let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
        return ProcessResult(status: result.status, signalled: result.signalled, stdout: text, stderr: result.stderr)
    }

    static func shellQuoted(_ text: String) -> String { "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'" }

    /// Creates the cluster and starts the server on a free loopback port.
    public func start() throws {
        let initdb = try server("initdb", ["-D", dataDirectory, "-U", Self.user, "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"])
        guard initdb.succeeded else { throw FixtureError("initdb failed: \(initdb)") }
        var lastFailure = ""
        // Another process may take the free port between our look and the server's bind: try again.
        for _ in 0..<3 {
            port = try Self.freePort()
            let options = "-p \(port) -c listen_addresses=127.0.0.1 -k \(folder.path) -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            let started = try server("pg_ctl", ["-D", dataDirectory, "-l", logFile, "-w", "-t", "60", "-o", options, "start"])
            if started.succeeded {
                lock.withLock { running = true }
                return
            }
            lastFailure = "\(started)\n\((try? String(contentsOfFile: logFile, encoding: .utf8)) ?? "")"
        }
        throw FixtureError("pg_ctl start failed: \(lastFailure)")
    }

    /// `postgres://postgres@127.0.0.1:PORT/DATABASE`, with `password` if given (trust
    /// authentication ignores it).
    public func url(database: String, password: String? = nil) -> String {
        "postgres://\(Self.user)\(password.map { ":\($0)" } ?? "")@127.0.0.1:\(port)/\(database)"
    }

    /// Creates an empty database.
    public func createDatabase(_ name: String) throws {
        _ = try psql("CREATE DATABASE \"\(name)\"", database: "postgres")
    }

    /// Runs `sql` with `psql -At` (unaligned, tuples only) and returns what it printed.
    @discardableResult
    public func psql(_ sql: String, database: String = "postgres") throws -> String {
        let result = try runProcess(Self.psqlBinary, ["-At", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", String(port),
                                                      "-U", Self.user, "-d", database, "-c", sql],
                                    environment: ["PGPASSWORD": "", "PGCONNECT_TIMEOUT": "10"])
        guard result.succeeded else { throw FixtureError("psql \(sql) failed: \(result)") }
        return result.output
    }

    /// The database's schema and rows as `pg_dump` prints them, so tests
    /// can check that a refused command changed nothing.
    public func dump(database: String) throws -> String {
        let result = try runProcess("\(Self.binaries)/pg_dump", ["--no-comments", "-h", "127.0.0.1", "-p", String(port), "-U", Self.user, database],
                                    environment: ["PGPASSWORD": ""])
        guard result.succeeded else { throw FixtureError("pg_dump \(database) failed: \(result)") }
        return result.stdout.split(separator: "\n", omittingEmptySubsequences: false)
            // Comments, and the random key of `\restrict` lines (pg_dump 15.14 and later).
            .filter { !$0.hasPrefix("--") && !$0.hasPrefix("\\restrict") && !$0.hasPrefix("\\unrestrict") }.joined(separator: "\n")
    }

    /// Stops the server (`pg_ctl stop -m fast`: sessions are cut, the data stays) until `resume`.
    public func pause() throws {
        let stopped = try server("pg_ctl", ["-D", dataDirectory, "-m", "fast", "-w", "stop"])
        guard stopped.succeeded else { throw FixtureError("pg_ctl stop failed: \(stopped)") }
    }

    /// Starts a paused server again on the same port.
    public func resume() throws {
        let options = "-p \(port) -c listen_addresses=127.0.0.1 -k \(folder.path) -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        let started = try server("pg_ctl", ["-D", dataDirectory, "-l", logFile, "-w", "-t", "60", "-o", options, "start"])
        guard started.succeeded else { throw FixtureError("pg_ctl start failed: \(started)") }
    }

    /// Stops the server at once (`pg_ctl stop -m immediate`) and removes its folder. Safe to call twice.
    public func stop() {
        let wasRunning = lock.withLock { () -> Bool in
            defer { running = false }
            return running
        }
        if wasRunning {
            _ = try? server("pg_ctl", ["-D", dataDirectory, "-m", "immediate", "-w", "stop"])
        }
        let remove = lock.withLock { () -> Bool in
            defer { removed = true }
            return !removed
        }
        if remove { try? FileManager.default.removeItem(at: folder) }
    }

    /// A loopback TCP port nobody listens on right now.
    public static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw FixtureError("socket() failed") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { throw FixtureError("bind() failed") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard named == 0 else { throw FixtureError("getsockname() failed") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
