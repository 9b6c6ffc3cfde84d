import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import ProvenanceCore
import ProvenanceTestSupport
import Testing

/// `provenance serve` and `provenance token`, as an operator runs them.
@Suite struct ServeTests {
    @Test func tokensArePrintedOnceListedWithoutSecretsAndRevoked() throws {
        let cli = try CLIHarness()
        let created = try cli.must("token", "create", "--role", "developer", "--subject", "dev@example.org")
        #expect(created.lines.count == 1 && created.output.hasPrefix("prov_"))
        #expect(created.stderr.contains("tok_") && created.stderr.contains("shown only now"))
        let listed = try cli.must("token", "list", "--json")
        #expect(!listed.stdout.contains(created.output))
        let tokens = try JSONDecoder().decode([AccessToken].self, from: Data(listed.stdout.utf8))
        #expect(tokens.count == 1 && tokens[0].role == .developer && tokens[0].subject == "dev@example.org" && tokens[0].revokedAt == nil)
        #expect(try cli.must("token", "revoke", tokens[0].id).output.hasPrefix("revoked \(tokens[0].id)"))
        try cli.expectRefusal(["token", "revoke", created.output], mentioning: "already revoked")
        try cli.expectRefusal(["token", "create", "--role", "root", "--subject", "x"], mentioning: "root")
        try cli.expectRefusal(["token", "create", "--role", "node", "--subject", "Bad Name"], mentioning: "node subject")
        try cli.expectRefusal(["serve", "--port", "70000"], mentioning: "--port")
        try cli.expectRefusal(["serve", "--settle-every", "0"], mentioning: "--settle-every")
    }

    /// The server answers on loopback and stops cleanly on SIGTERM: exit 0, store intact.
    @Test func serveRunsLiveAndStopsGracefullyOnSIGTERM() async throws {
        let cli = try CLIHarness()
        let token = try cli.must("token", "create", "--role", "admin", "--subject", "ops").output
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CLIHarness.binary)
        process.arguments = ["serve", "--store", cli.store.path, "--host", "127.0.0.1", "--port", "0", "--settle-every", "1"]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        defer { if process.isRunning { process.terminate() } }

        // The log says where it listens.
        let log = LogReader(output.fileHandleForReading)
        let line = try #require(log.waitForLine(containing: "listening on", timeout: 30), "\(log.text)")
        let port = try #require(line.split(separator: ":").last.flatMap { Int($0.trimmingCharacters(in: .whitespaces)) }, "\(line)")
        let base = "http://127.0.0.1:\(port)"

        let (health, healthStatus) = try await Self.get("\(base)/healthz")
        #expect(healthStatus == 200 && health.contains("\"status\":\"ok\""))
        let (_, anonymous) = try await Self.get("\(base)/v1/verify")
        #expect(anonymous == 401)
        let (verify, verified) = try await Self.get("\(base)/v1/verify", token: token)
        #expect(verified == 200 && verify.contains("\"ok\":true"))
        // One access-log line a request, with the request logger's metadata (its id) beside the
        // line's own, sorted by key.
        let access = try #require(log.waitForLine(containing: "http.route=/v1/verify http.status=200", timeout: 10), "\(log.text)")
        #expect(access.contains(" info provenance.registry: duration_ms=") && access.contains(" hb.request.id=")
                    && access.contains(" http.method=GET http.path=/v1/verify ") && access.hasSuffix("] request"), "\(access)")
        let (metrics, _) = try await Self.get("\(base)/metrics")
        #expect(metrics.contains(#"provenance_http_requests_total{method="GET",route="/v1/verify",status="401"} 1"#))

        process.interrupt()  // SIGINT, like ^C; SIGTERM takes the same path
        let stopped = try #require(log.waitForLine(containing: "store closed", timeout: 30), "\(log.text)")
        #expect(stopped.contains("stopped"))
        process.waitUntilExit()
        #expect(process.terminationReason == .exit && process.terminationStatus == 0, "\(log.text)")
        #expect(try cli.must("verify").output.hasPrefix("verified"))
    }

    static func get(_ url: String, token: String? = nil) async throws -> (String, Int) {
        var request = URLRequest(url: URL(string: url)!)
        if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        let (data, response) = try await URLSession.shared.data(for: request)
        return (String(decoding: data, as: UTF8.self), (response as? HTTPURLResponse)?.statusCode ?? 0)
    }
}

/// Collects a process's output as it comes, so a test can wait for a line.
final class LogReader: @unchecked Sendable {
    private let lock = NSCondition()
    private var buffer = ""

    init(_ handle: FileHandle) {
        handle.readabilityHandler = { [weak self] handle in
            let data = handle.availableData
            guard let self else { return }
            self.lock.lock()
            if data.isEmpty { handle.readabilityHandler = nil } else { self.buffer += String(decoding: data, as: UTF8.self) }
            self.lock.broadcast()
            self.lock.unlock()
        }
    }

    var text: String {
        lock.lock()
        defer { lock.unlock() }
        return buffer
    }

    func waitForLine(containing needle: String, timeout: TimeInterval) -> String? {
        let deadline = Date().addingTimeInterval(timeout)
        lock.lock()
        defer { lock.unlock() }
        while true {
            if let line = buffer.split(separator: "\n").first(where: { $0.contains(needle) }) { return String(line) }
            guard lock.wait(until: deadline) else { return nil }
        }
    }
}
