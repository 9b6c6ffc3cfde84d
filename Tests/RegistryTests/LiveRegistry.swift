import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import ProvenanceTestSupport
import Testing

/// A real `provenance serve` process on a free loopback port, over a CLI harness's store,
/// stopped (SIGTERM) when released.
final class LiveRegistry: @unchecked Sendable {
    let process: Process
    let log: LogReader
    let port: Int
    var base: String { "http://127.0.0.1:\(port)" }

    convenience init(store: URL, arguments: [String] = []) throws {
        try self.init(command: ["serve", "--store", store.path, "--host", "127.0.0.1", "--port", "0"] + arguments)
    }

    /// Any `provenance` server command that logs "listening on HOST:PORT" (the registry, a witness).
    init(command: [String]) throws {
        process = Process()
        process.executableURL = URL(fileURLWithPath: CLIHarness.binary)
        process.arguments = command
        var environment = ProcessInfo.processInfo.environment
        environment.removeValue(forKey: "PROVENANCE_STORE")
        process.environment = environment
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        log = LogReader(output.fileHandleForReading)
        guard let line = log.waitForLine(containing: "listening on", timeout: 60),
              let port = line.split(separator: ":").last.flatMap({ Int($0.trimmingCharacters(in: .whitespaces)) }) else {
            process.terminate()
            throw FixtureError("provenance serve did not start: \(log.text)")
        }
        self.port = port
    }

    deinit { stop() }

    func stop() {
        guard process.isRunning else { return }
        process.terminate()
        process.waitUntilExit()
    }

    /// GET `path` (raw, not normalised), with its status, body and content type.
    func get(_ path: String, token: String? = nil) async throws -> (status: Int, body: Data, contentType: String?) {
        var request = URLRequest(url: URL(string: base + path)!)
        if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        let (data, response) = try await URLSession.shared.data(for: request)
        let http = response as? HTTPURLResponse
        return (http?.statusCode ?? 0, data, http?.value(forHTTPHeaderField: "Content-Type"))
    }

    /// POSTs `body` to `path`: status, body, content type.
    func post(_ path: String, _ body: String) async throws -> (status: Int, body: String, contentType: String?) {
        var request = URLRequest(url: URL(string: base + path)!)
        request.httpMethod = "POST"
        request.httpBody = Data(body.utf8)
        let (data, response) = try await URLSession.shared.data(for: request)
        let http = response as? HTTPURLResponse
        return (http?.statusCode ?? 0, String(decoding: data, as: UTF8.self), http?.value(forHTTPHeaderField: "Content-Type"))
    }

    /// Sends `method` to `path` with no body.
    func send(_ method: String, _ path: String) async throws -> Int {
        var request = URLRequest(url: URL(string: base + path)!)
        request.httpMethod = method
        let (_, response) = try await URLSession.shared.data(for: request)
        return (response as? HTTPURLResponse)?.statusCode ?? 0
    }
}
