public import AttributionPlugins
import Foundation
public import Hummingbird
public import Logging
public import ProvenanceCore
import ServiceLifecycle

/// How `provenance serve` runs the registry.
public struct RegistryConfiguration: Sendable {
    public var host: String
    public var port: Int
    /// Lets `POST /v1/datasets/{dataset}/commits` fetch from `file://` URLs and plain paths. Off
    /// by default, so a client cannot make the service read the server's own disk.
    public var allowLocalRemotes: Bool
    /// Request bodies over this many bytes are refused with 413.
    public var maxBodyBytes: Int
    /// Settle pending (deferred) calls as one batch this often; nil: only on `POST /v1/settlements`.
    public var settleEvery: Duration?
    /// The `Server` header.
    public var serverName: String
    /// Witnesses asked to cosign each checkpoint (C2SP tlog-witness); none: checkpoints are not witnessed.
    public var witnesses: [WitnessEndpoint] = []
    /// How many witnesses must cosign a checkpoint before it is served as cosigned.
    public var witnessQuorum: Int = 0

    public init(host: String = "127.0.0.1", port: Int = 8080, allowLocalRemotes: Bool = false,
                maxBodyBytes: Int = 4 * 1024 * 1024, settleEvery: Duration? = nil, serverName: String = "provenance-registry") {
        self.host = host
        self.port = port
        self.allowLocalRemotes = allowLocalRemotes
        self.maxBodyBytes = maxBodyBytes
        self.settleEvery = settleEvery
        self.serverName = serverName
    }
}

/// Builds the registry service over `store`: the one function `provenance serve` and the
/// tests both call.
///
/// - Parameters:
///   - resolver: finds attribution plugins (default: the built-ins and external executables).
///   - metrics: where Prometheus metrics go; a fresh registry by default.
///   - logger: structured logs (swift-log); one line per request at `info`.
public func buildApplication(
    configuration: RegistryConfiguration,
    store: Store,
    resolver: any AttributionPluginResolver = PluginRegistry(),
    metrics: RegistryMetrics = RegistryMetrics(),
    logger: Logger? = nil
) -> some ApplicationProtocol {
    let logger = logger ?? Logger.server(label: "provenance.registry")
    let router = buildRouter(configuration: configuration, store: store, resolver: resolver, metrics: metrics)
    var app = Application(
        router: router,
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: configuration.serverName),
        logger: logger
    )
    if let interval = configuration.settleEvery {
        app.addServices(ScheduledSettlement(store: store, resolver: resolver, metrics: metrics, interval: interval, logger: logger))
    }
    if !configuration.witnesses.isEmpty {
        app.addServices(WitnessCollector(store: store, witnesses: configuration.witnesses,
                                         quorum: max(1, configuration.witnessQuorum), logger: logger))
    }
    return app
}

/// Runs the registry until SIGINT or SIGTERM, then shuts down gracefully: the server stops
/// accepting connections, requests in flight finish, scheduled settlement stops between
/// batches, and the function returns so the caller can release the store.
public func runRegistry(
    configuration: RegistryConfiguration,
    store: Store,
    resolver: any AttributionPluginResolver = PluginRegistry(),
    logger: Logger
) async throws {
    let app = buildApplication(configuration: configuration, store: store, resolver: resolver, logger: logger)
    try await app.runService()  // graceful shutdown on SIGTERM and SIGINT
}

/// The router of every route, with its middleware: metrics and access log outermost, then
/// error rendering, then authentication.
public func buildRouter(
    configuration: RegistryConfiguration,
    store: Store,
    resolver: any AttributionPluginResolver = PluginRegistry(),
    metrics: RegistryMetrics = RegistryMetrics()
) -> Router<RegistryRequestContext> {
    let api = RegistryAPI(store: store, resolver: resolver, configuration: configuration, metrics: metrics)
    store.observeGroupCommits { [metrics] in metrics.groupCommitted($0) }
    let endpoints = api.endpoints()
    var table = RouteTable()
    for endpoint in endpoints { table.add(endpoint.method, endpoint.path) }

    let router = Router(context: RegistryRequestContext.self)
    router.add(middleware: RequestMetricsMiddleware(metrics: metrics))
    router.add(middleware: ErrorMiddleware(routes: table))
    router.add(middleware: AuthenticationMiddleware(store: store))
    for endpoint in endpoints {
        router.on(RouterPath(endpoint.path), method: endpoint.method, use: endpoint.handler)
    }
    // The web explorer at `/`: HTML pages over the same public reads (not part of openapi.yaml).
    for page in ExplorerSite(store: store, resolver: resolver).pages() {
        router.on(RouterPath(page.path), method: page.method, use: page.handler)
    }
    return router
}

/// One route: its method, its path as OpenAPI writes it, and its handler.
struct Endpoint: Sendable {
    let method: HTTPRequest.Method
    let path: String
    let handler: @Sendable (Request, RegistryRequestContext) async throws -> Response

    init(_ method: HTTPRequest.Method, _ path: String, _ handler: @escaping @Sendable (Request, RegistryRequestContext) async throws -> Response) {
        self.method = method
        self.path = path
        self.handler = handler
    }
}

/// The handlers of the API, over one store. Each route file adds its handlers in an extension.
struct RegistryAPI: Sendable {
    let store: Store
    let resolver: any AttributionPluginResolver
    let configuration: RegistryConfiguration
    let metrics: RegistryMetrics
    var body: BodyReader { BodyReader(limit: configuration.maxBodyBytes) }

    func endpoints() -> [Endpoint] {
        let groups: [[Endpoint]] = [
            systemEndpoints(), datasetEndpoints(), modelEndpoints(), contributorEndpoints(), accountEndpoints(), callEndpoints(),
            ledgerEndpoints(), gitEndpoints(), witnessEndpoints(), uploadEndpoints(),
        ]
        return groups.flatMap { $0 }
    }
}

// MARK: Reading requests

extension RegistryRequestContext {
    /// A path parameter, percent-decoded.
    func path(_ name: String) throws -> String {
        guard let raw = parameters.get(name) else { throw RegistryError.malformed("missing path parameter \(name)") }
        guard let decoded = raw.removingPercentEncoding else {
            throw RegistryError.invalid("path parameter \(name) '\(raw.prefix(300))' is not valid percent-encoding")
        }
        return decoded
    }
}

extension Request {
    /// A query parameter as a form decodes it (`+` is a space, then percent-decoding); nil
    /// when absent.
    func query(_ name: String) throws -> String? {
        guard let query = uri.query else { return nil }
        for pair in query.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts[0].removingPercentEncoding == name else { continue }
            let raw = parts.count == 2 ? String(parts[1]) : ""
            guard let value = raw.replacingOccurrences(of: "+", with: " ").removingPercentEncoding else {
                throw RegistryError.invalid("query parameter \(name) is not valid percent-encoding")
            }
            return value
        }
        return nil
    }

    /// A query parameter matching `pattern`; nil when absent.
    func query(_ name: String, pattern: String, hint: String) throws -> String? {
        guard let value = try query(name) else { return nil }
        try Pattern.check(value, pattern, "query parameter \(name)", hint)
        return value
    }

    /// An integer query parameter within `range`; nil when absent.
    func integerQuery(_ name: String, in range: ClosedRange<Int> = 0...Int.max) throws -> Int? {
        guard let text = try query(name) else { return nil }
        guard let value = Self.integer(text), range.contains(value) else {
            let bound = range.upperBound == Int.max ? "at least \(range.lowerBound)" : "\(range.lowerBound) to \(range.upperBound)"
            throw RegistryError.invalid("query parameter \(name) '\(text.prefix(100))' must be a whole number, \(bound)")
        }
        return value
    }

    /// A boolean query parameter (`true` or `false`); nil when absent.
    func booleanQuery(_ name: String) throws -> Bool? {
        guard let text = try query(name) else { return nil }
        switch text {
        case "true": return true
        case "false": return false
        default: throw RegistryError.invalid("query parameter \(name) '\(text.prefix(100))' must be true or false")
        }
    }

    /// A decimal integer as JSON Schema reads one: optional minus, digits, nothing else.
    static func integer(_ text: String) -> Int? {
        let digits = text.hasPrefix("-") ? text.dropFirst() : text[...]
        guard !digits.isEmpty, digits.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) else { return nil }
        return Int(text)
    }
}

/// Runs store work (SQLite transactions with their fsync, git) on threads of its own, not on
/// the cooperative pool that every request's task shares: on a two-core machine that pool has
/// two threads, and a slow fetch or a wait for the write lock must not stall the other requests.
enum Blocking {
    static func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withTaskExecutorPreference(StoreExecutor.shared) { try body() }
    }

    /// The same for the core's async operations (settlement awaits attribution plugins).
    static func run<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async throws -> T {
        try await withTaskExecutorPreference(StoreExecutor.shared) { try await body() }
    }
}

/// A task executor over a concurrent dispatch queue, whose pool grows while its threads block.
final class StoreExecutor: TaskExecutor {
    static let shared = StoreExecutor()
    private let queue = DispatchQueue(label: "provenance.registry.store", qos: .userInitiated, attributes: .concurrent)

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        queue.async { job.runSynchronously(on: executor) }
    }
}

// MARK: System routes

extension RegistryAPI {
    func systemEndpoints() -> [Endpoint] {
        [
            Endpoint(.get, "/healthz") { _, _ in
                do {
                    let size = try await Blocking.run { [store] in try store.ledger.readLedger { try $0.frontier().size } }
                    struct Health: Encodable { var status: String; var ledger_size: Int }
                    return JSONResponse.make(Health(status: "ok", ledger_size: size))
                } catch {
                    throw RegistryError(.serviceUnavailable, code: "unavailable", "the store cannot be read: \(error)")
                }
            },
            Endpoint(.get, "/metrics") { _, _ in
                let text = try await Blocking.run { [store, metrics] in metrics.exposition(store: store) }
                return JSONResponse.bytes(Data(text.utf8), contentType: "text/plain; version=0.0.4; charset=utf-8")
            },
        ]
    }
}

/// Settles pending calls every `interval` as one batch, until the service shuts down.
struct ScheduledSettlement: Service {
    let store: Store
    let resolver: any AttributionPluginResolver
    let metrics: RegistryMetrics
    let interval: Duration
    let logger: Logger

    func run() async throws {
        do {
            try await cancelWhenGracefulShutdown {
                while true {
                    try await Task.sleep(for: interval)
                    await settleOnce()
                }
            }
        } catch is CancellationError {
            // Shutting down: calls still pending stay reserved and settle on the next start.
        }
    }

    func settleOnce() async {
        do {
            // Among replicas sharing a database, one settles on schedule; another takes over
            // when that one stops (its database session ends, and the lock with it).
            guard try store.leadsScheduledSettlement() else { return }
            let report = try await Blocking.run { [store, resolver] in try await store.settlePending(resolver: resolver) }
            metrics.settled(report.settled)
            if report.settled > 0 {
                logger.info("settled pending calls", metadata: [
                    "batch": "\(report.batch ?? "-")", "settled": "\(report.settled)", "ledger.size": "\(report.treeSize)",
                ])
            }
        } catch {
            logger.error("scheduled settlement failed", metadata: ["error": "\(error)"])
        }
    }
}
