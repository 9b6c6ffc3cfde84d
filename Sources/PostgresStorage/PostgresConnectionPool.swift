import Foundation
import Logging
import NIOCore
import NIOPosix
import PostgresNIO
import ProvenanceCore

/// Connections to one PostgreSQL database, used synchronously by the store, whose storage
/// protocols are synchronous: each statement's future is waited for on the calling thread.
///
/// The connections run on an event loop group of their own, never the HTTP server's, so a
/// caller that blocks here never blocks the loop its answer arrives on.
final class PostgresConnectionPool: @unchecked Sendable {
    /// Shared by every pool of the process; its threads live as long as the process.
    static let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)

    let configuration: PostgresConnection.Configuration
    let description: String
    private let lock = NSLock()
    private var idle: [PostgresConnection] = []
    private var nextID = 0
    static let maxIdle = 32
    let logger: Logger = {
        var logger = Logger(label: "provenance.postgres")
        logger.logLevel = .critical
        return logger
    }()

    init(configuration: PostgresConnection.Configuration, description: String) {
        self.configuration = configuration
        self.description = description
    }

    deinit {
        for connection in idle { closeQuietly(connection) }
    }

    /// Runs `body` on a connection of its own, returned to the pool afterwards unless it broke.
    func withSession<T>(_ body: (PostgresSession) throws -> T) throws -> T {
        let session = PostgresSession(connection: try take(), pool: self)
        do {
            let result = try body(session)
            give(session)
            return result
        } catch {
            give(session)
            throw error
        }
    }

    private func take() throws -> PostgresConnection {
        lock.lock()
        while let connection = idle.popLast() {
            if !connection.isClosed {
                lock.unlock()
                return connection
            }
        }
        nextID += 1
        let id = nextID
        lock.unlock()
        do {
            return try PostgresConnection.connect(on: Self.group.next(), configuration: configuration, id: id, logger: logger).block()
        } catch {
            throw PostgresErrors.translate(error, doing: "connect to \(description)")
        }
    }

    private func give(_ session: PostgresSession) {
        let connection = session.connection
        guard !connection.isClosed, !session.broken else {
            closeQuietly(connection)
            return
        }
        lock.lock()
        if idle.count < Self.maxIdle {
            idle.append(connection)
            lock.unlock()
        } else {
            lock.unlock()
            closeQuietly(connection)
        }
    }
}

/// One connection, with statements run one after another. Writes may be sent without waiting
/// for their answers (`send`); `flush` waits for them all and throws the first failure, so a
/// transaction of many inserts pays one round trip of latency instead of one per insert.
final class PostgresSession: @unchecked Sendable {
    let connection: PostgresConnection
    unowned let pool: PostgresConnectionPool
    private var pending: [EventLoopFuture<PostgresQueryResult>] = []
    /// Set when the connection is in a state nobody should reuse (a transaction left open).
    var broken = false

    init(connection: PostgresConnection, pool: PostgresConnectionPool) {
        self.connection = connection
        self.pool = pool
    }

    /// Runs `query` and returns its rows.
    @discardableResult
    func query(_ query: PostgresQuery, _ what: @autoclosure () -> String = "query the database") throws -> [PostgresRow] {
        try result(query, what()).rows
    }

    /// Runs `query` and returns its rows and the count of rows it changed.
    func result(_ query: PostgresQuery, _ what: @autoclosure () -> String = "query the database") throws -> PostgresQueryResult {
        do {
            try flush()
            return try connection.query(query, logger: pool.logger).block()
        } catch {
            throw PostgresErrors.translate(error, doing: what())
        }
    }

    /// Sends `query` without waiting for it: its failure shows at the next `flush` or query.
    func send(_ query: PostgresQuery) {
        pending.append(connection.query(query, logger: pool.logger))
    }

    /// Waits for every statement sent, and throws the first failure among them.
    func flush() throws {
        guard !pending.isEmpty else { return }
        let futures = pending
        pending.removeAll(keepingCapacity: true)
        var failure: (any Error)?
        for future in futures {
            do { _ = try future.block() } catch { failure = failure ?? error }
        }
        if let failure { throw PostgresErrors.translate(failure, doing: "write to the database") }
    }

    /// Runs `body` in a transaction that commits when it returns and rolls back when it throws.
    func transaction<T>(_ begin: String = "BEGIN", _ body: () throws -> T) throws -> T {
        try query(PostgresQuery(unsafeSQL: begin), "begin a transaction")
        let result: T
        do {
            result = try body()
            try flush()
        } catch {
            rollback()
            throw error
        }
        do {
            try query("COMMIT", "commit")
        } catch {
            // A commit whose answer was lost may or may not have happened: never reuse this connection.
            broken = true
            throw error
        }
        return result
    }

    func rollback() {
        pending.removeAll()
        do { _ = try connection.query("ROLLBACK", logger: pool.logger).block() } catch { broken = true }
    }
}

extension EventLoopFuture {
    /// The future's value, waited for on this thread (never an event loop of `PostgresConnectionPool.group`).
    func block() throws -> Value {
        let box = ResultBox<Value>()
        whenComplete { box.set($0) }
        return try box.wait()
    }
}

private final class ResultBox<Value>: @unchecked Sendable {
    private let semaphore = DispatchSemaphore(value: 0)
    private var result: Result<Value, any Error>?

    func set(_ result: Result<Value, any Error>) {
        self.result = result
        semaphore.signal()
    }

    func wait() throws -> Value {
        semaphore.wait()
        return try result!.get()
    }
}

/// PostgreSQL failures as one-line store errors: a server that cannot be reached is
/// `unavailable` (the registry answers 503 and the caller may retry), anything else a storage error.
enum PostgresErrors {
    static func translate(_ error: any Error, doing what: String) -> any Error {
        if error is ProvenanceError { return error }
        guard let error = error as? PSQLError else {
            return ProvenanceError(.unavailable, "cannot \(what): the database is not reachable (\(error))")
        }
        switch error.code {
        case .server:
            let state = error.serverInfo?[.sqlState] ?? ""
            let message = error.serverInfo?[.message] ?? "server error"
            // Class 08 (connection exception), 57P01-57P03 (shutting down, cannot connect now),
            // 53300 (too many connections): come back later.
            if state.hasPrefix("08") || state.hasPrefix("57P") || state == "53300" {
                return ProvenanceError(.unavailable, "cannot \(what): the database is not available (\(message))")
            }
            return ProvenanceError(.storage, "cannot \(what): \(message) (SQLSTATE \(state))")
        case .connectionError, .serverClosedConnection, .clientClosedConnection, .uncleanShutdown, .poolClosed:
            let detail = error.underlying.map { "\($0)" } ?? "\(error.code)"
            return ProvenanceError(.unavailable, "cannot \(what): the database is not reachable (\(detail))")
        default:
            return ProvenanceError(.storage, "cannot \(what): \(error.code)")
        }
    }
}

/// Closes `connection`, ignoring a failure (the connection may be dead already). It waits for
/// the close: PostgresNIO requires a connection to be closed before it is released.
func closeQuietly(_ connection: PostgresConnection) {
    let closing: EventLoopFuture<Void> = connection.close()
    _ = try? closing.block()
}
