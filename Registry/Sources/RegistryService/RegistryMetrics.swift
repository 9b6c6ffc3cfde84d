import Foundation
import Hummingbird
import Logging
public import Prometheus
import ProvenanceCore

/// The registry's Prometheus metrics, in a registry of its own so every app (and every test)
/// counts for itself: requests by route and status, request latency, calls settled, the
/// ledger's size and pending calls, and each group commit's calls and time.
public final class RegistryMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    let callsSettled: Counter
    let ledgerSize: Gauge
    let pendingCalls: Gauge
    let groupCommitCalls: ValueHistogram
    let groupCommitDuration: DurationHistogram
    let groupCommitFailures: Counter

    static let latencyBuckets: [Duration] = [
        .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
        .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5), .seconds(10),
    ]

    /// Calls a group commit took: one when idle, tens under 64 busy clients, at most 8,192.
    static let groupSizeBuckets: [Double] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 1_024, 8_192]
    /// A group's transaction, its fsync included: well under a millisecond to tens of them.
    static let groupDurationBuckets: [Duration] = [
        .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10),
        .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .seconds(1),
    ]

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        callsSettled = registry.makeCounter(descriptor: MetricNameDescriptor(
            namespace: "provenance", metricName: "calls_settled", unitName: "total",
            helpText: "Calls settled into invoices (real-time and batch)."))
        ledgerSize = registry.makeGauge(descriptor: MetricNameDescriptor(
            namespace: "provenance", metricName: "ledger_size", unitName: "invoices",
            helpText: "Invoices in the Merkle ledger."))
        pendingCalls = registry.makeGauge(descriptor: MetricNameDescriptor(
            namespace: "provenance", metricName: "calls_pending", unitName: "calls",
            helpText: "Deferred calls whose fee is reserved, waiting for settlement."))
        groupCommitCalls = registry.makeValueHistogram(descriptor: MetricNameDescriptor(
            namespace: "provenance", subsystem: "group_commit", metricName: "size", unitName: "calls",
            helpText: "Calls written by each group commit (real-time and deferred submissions coalesced into one transaction)."),
            buckets: Self.groupSizeBuckets)
        groupCommitDuration = registry.makeDurationHistogram(descriptor: MetricNameDescriptor(
            namespace: "provenance", subsystem: "group_commit", metricName: "duration", unitName: "seconds",
            helpText: "Time of each group commit's transaction, its fsync included."),
            buckets: Self.groupDurationBuckets)
        groupCommitFailures = registry.makeCounter(descriptor: MetricNameDescriptor(
            namespace: "provenance", subsystem: "group_commit", metricName: "failed_submissions", unitName: "total",
            helpText: "Submissions that failed inside a group commit (insufficient funds, a reused key, a price changed meanwhile: retried); the rest of the group committed."))
    }

    /// One group commit, reported by the store's committer thread (`Store.observeGroupCommits`).
    func groupCommitted(_ group: GroupCommit) {
        groupCommitCalls.record(Double(group.calls))
        groupCommitDuration.record(group.duration)
        if group.failedSubmissions > 0 { groupCommitFailures.increment(by: Int64(group.failedSubmissions)) }
    }

    private struct RequestKey: Hashable {
        let method: String
        let route: String
        let status: Int
    }

    /// Each label set's counter and histogram, made once: the registry builds a name and label
    /// list to look one up, which cost more than the counting.
    private let requestMetrics = Locked<[RequestKey: (Counter, DurationHistogram)]>([:])

    func recordRequest(method: String, route: String, status: Int, duration: Duration) {
        let key = RequestKey(method: method, route: route, status: status)
        let (counter, histogram) = requestMetrics.write { known in
            if let metrics = known[key] { return metrics }
            let made = (
                registry.makeCounter(
                    descriptor: MetricNameDescriptor(namespace: "provenance", subsystem: "http", metricName: "requests", unitName: "total",
                                                     helpText: "HTTP requests by method, route and status."),
                    labels: [("method", method), ("route", route), ("status", String(status))]),
                registry.makeDurationHistogram(
                    descriptor: MetricNameDescriptor(namespace: "provenance", subsystem: "http", metricName: "request_duration",
                                                     unitName: "seconds", helpText: "HTTP request latency by method and route."),
                    labels: [("method", method), ("route", route)],
                    buckets: Self.latencyBuckets)
            )
            known[key] = made
            return made
        }
        counter.increment()
        histogram.record(duration)
    }

    func settled(_ count: Int) {
        if count > 0 { callsSettled.increment(by: Int64(count)) }
    }

    /// Reads the ledger's figures from the store, then renders every metric in the text format.
    func exposition(store: Store) -> String {
        if let (size, pending) = try? store.ledger.readLedger({ (try $0.frontier().size, try $0.pendingCallCount()) }) {
            ledgerSize.set(Int64(size))
            pendingCalls.set(Int64(pending))
        }
        return registry.emitToString()
    }
}

/// Counts and times every request, and writes one structured access-log line for it.
struct RequestMetricsMiddleware<Context: RequestContext>: RouterMiddleware {
    let metrics: RegistryMetrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        var status = 500
        defer {
            let duration = ContinuousClock.now - start
            // The route template, not the path, keeps the label set small.
            let route = context.endpointPath ?? "NotFound"
            metrics.recordRequest(method: request.method.rawValue, route: route, status: status, duration: duration)
            let milliseconds = Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
            context.logger.info("request", metadata: [
                "http.method": "\(request.method.rawValue)", "http.route": "\(route)", "http.path": "\(request.uri.path)",
                "http.status": "\(status)", "duration_ms": "\(String(format: "%.2f", milliseconds))",
            ])
        }
        let response = try await next(request, context)
        status = response.status.code
        return response
    }
}
