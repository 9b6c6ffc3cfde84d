import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import ProvenanceTestSupport
import Testing

/// Headless Chromium from Debian's packages (`apt-get install chromium`), driven from the
/// command line: `--dump-dom` after a virtual-time budget (scripts, fetches and WebCrypto run
/// to completion first) and `--screenshot` at a window size.
enum Chromium {
    static let path: String? = {
        for candidate in ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"]
        where FileManager.default.isExecutableFile(atPath: candidate) {
            return candidate
        }
        return nil
    }()

    static var isInstalled: Bool { path != nil }

    static func arguments(profile: URL) -> [String] {
        ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--disable-extensions",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
         "--user-data-dir=\(profile.path)"]
    }

    /// The page's DOM once its scripts have run (up to `budget` ms of virtual time). Virtual
    /// time waits for fetches but not for WebCrypto's worker, so on a loaded machine a
    /// verification may still be running when the budget ends: then the page is loaded again
    /// with a larger budget.
    static func dom(_ url: String, budget: Int = 10_000, width: Int = 1280) throws -> String {
        var budget = budget
        for _ in 0..<3 {
            let page = try dumpDOM(url, budget: budget, width: width)
            guard page.contains("id=\"verify-result\" role=\"status\" aria-live=\"polite\" data-status=\"running\"") else { return page }
            budget *= 3
        }
        return try dumpDOM(url, budget: budget, width: width)
    }

    static func dumpDOM(_ url: String, budget: Int, width: Int) throws -> String {
        let profile = try TemporaryDirectory("provenance-chromium")
        guard let path else { throw FixtureError("chromium is not installed") }
        let result = try runProcess(path, arguments(profile: profile.url) + [
            "--window-size=\(width),1000", "--virtual-time-budget=\(budget)", "--dump-dom", url,
        ])
        guard result.succeeded, result.stdout.contains("</html>") else { throw FixtureError("chromium --dump-dom \(url) failed: \(result)") }
        return result.stdout
    }

    /// A PNG of the page at `width` × `height` CSS pixels.
    static func screenshot(_ url: String, to file: URL, width: Int, height: Int, budget: Int = 10_000) throws {
        let profile = try TemporaryDirectory("provenance-chromium")
        try? FileManager.default.removeItem(at: file)
        guard let path else { throw FixtureError("chromium is not installed") }
        let result = try runProcess(path, arguments(profile: profile.url) + [
            "--window-size=\(width),\(height)", "--virtual-time-budget=\(budget)", "--screenshot=\(file.path)", url,
        ])
        guard result.succeeded, FileManager.default.fileExists(atPath: file.path) else {
            throw FixtureError("chromium --screenshot \(url) failed: \(result)")
        }
    }
}

/// The store `scripts/demo.sh` leaves behind: datasets poems, wiki, law and dialogue, models
/// base@1.0, chat@1.0 and chat-legal@0.1, and 14 settled invoices (the last under span-match). Made once per test run;
/// each test serves its own copy.
enum DemoStore {
    static let made: Result<URL, any Error> = Result {
        let folder = try TemporaryDirectory("provenance-explorer-demo")
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("scripts/demo.sh")
        let result = try runProcess("/bin/bash", [script.path, CLIHarness.binary], environment: ["DEMO_DIR": folder.url.path])
        guard result.succeeded else { throw FixtureError("scripts/demo.sh failed: \(result)") }
        keep.append(folder)
        return folder.url.appendingPathComponent(".provenance")
    }
    nonisolated(unsafe) static var keep: [TemporaryDirectory] = []

    /// A fresh copy of the demo's store, in `folder`.
    static func copy(into folder: TemporaryDirectory) throws -> URL {
        let target = folder.url.appendingPathComponent(".provenance")
        try FileManager.default.copyItem(at: try made.get(), to: target)
        return target
    }
}

/// `provenance serve` on a loopback port, as an operator starts it; stopped with SIGINT.
final class LiveServer: @unchecked Sendable {
    let process = Process()
    let log: LogReader
    let port: Int
    var base: String { "http://127.0.0.1:\(port)" }

    init(store: URL) throws {
        process.executableURL = URL(fileURLWithPath: CLIHarness.binary)
        process.arguments = ["serve", "--store", store.path, "--host", "127.0.0.1", "--port", "0"]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        log = LogReader(output.fileHandleForReading)
        try process.run()
        guard let line = log.waitForLine(containing: "listening on", timeout: 60),
              let port = line.split(separator: ":").last.flatMap({ Int($0.trimmingCharacters(in: .whitespaces)) }) else {
            process.terminate()
            throw FixtureError("provenance serve did not say where it listens: \(log.text)")
        }
        self.port = port
    }

    /// Stops the server and checks it stopped cleanly.
    func stop() {
        guard process.isRunning else { return }
        process.interrupt()
        process.waitUntilExit()
    }

    deinit { stop() }

    func get(_ path: String) async throws -> (body: String, status: Int) {
        let (data, response) = try await URLSession.shared.data(from: URL(string: base + path)!)
        return (String(decoding: data, as: UTF8.self), (response as? HTTPURLResponse)?.statusCode ?? 0)
    }
}

/// A small HTTP proxy in front of the server that alters one kind of answer, as a dishonest or
/// broken registry would: the invoice's canonical bytes, the inclusion proof, or the checkpoint's
/// signature. Everything else passes through unchanged.
final class TamperingProxy: @unchecked Sendable {
    enum Alteration: String, CaseIterable { case invoice, proof, signature }

    let process = Process()
    let port: Int
    var base: String { "http://127.0.0.1:\(port)" }

    static let script = #"""
    import base64, http.server, json, sys, urllib.error, urllib.request
    upstream, mode = int(sys.argv[1]), sys.argv[2]

    def flip_last_byte(text):
        raw = bytearray(base64.b64decode(text)); raw[-1] ^= 1
        return base64.b64encode(bytes(raw)).decode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{upstream}{self.path}") as answer:
                    status, headers, body = answer.status, answer.headers, answer.read()
            except urllib.error.HTTPError as error:
                status, headers, body = error.code, error.headers, error.read()
            path = self.path.split("?")[0]
            if mode == "invoice" and path.endswith("/canonical"):
                # One more digit of input tokens: still JSON, still invoice N, not the bytes the ledger hashed.
                assert b'"input_tokens":"' in body
                body = body.replace(b'"input_tokens":"', b'"input_tokens":"9', 1)
            elif mode == "proof" and path == "/v1/ledger/inclusion-proof":
                doc = json.loads(body); doc["proof"][0] = flip_last_byte(doc["proof"][0]); body = json.dumps(doc).encode()
            elif mode == "signature" and path == "/v1/ledger/checkpoint":
                doc = json.loads(body)
                line = doc["note"].split("\n\n", 1)[1].split("\n")[0]
                signature = line.split(" ")[2]
                doc["note"] = doc["note"].replace(signature, flip_last_byte(signature)); body = json.dumps(doc).encode()
            self.send_response(status)
            if headers.get("Content-Type"): self.send_header("Content-Type", headers.get("Content-Type"))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()
    """#

    init(upstream: Int, altering alteration: Alteration, folder: TemporaryDirectory) throws {
        let script = try folder.write("tamper.py", Self.script)
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = [script.path, String(upstream), alteration.rawValue]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        let log = LogReader(output.fileHandleForReading)
        try process.run()
        let deadline = Date().addingTimeInterval(30)
        while !log.text.contains("\n"), Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        guard let port = Int(log.text.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            process.terminate()
            throw FixtureError("the tampering proxy did not start: \(log.text)")
        }
        self.port = port
    }

    deinit {
        // SIGKILL: the test runner's children may inherit an ignored SIGTERM, which python keeps.
        if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
    }
}

extension String {
    /// The text of the element with this id (tags stripped, entities left as written), for
    /// checking what a page says.
    func element(id: String) -> String? {
        guard let start = range(of: "id=\"\(id)\"") else { return nil }
        guard let open = self[start.upperBound...].firstIndex(of: ">") else { return nil }
        let rest = self[index(after: open)...]
        guard let close = rest.range(of: "</") else { return nil }
        return String(rest[..<close.lowerBound])
    }

    /// The value of `attribute` on the element with this id.
    func attribute(_ attribute: String, ofElement id: String) -> String? {
        guard let start = range(of: "id=\"\(id)\"") else { return nil }
        let tagStart = self[..<start.lowerBound].lastIndex(of: "<") ?? start.lowerBound
        guard let tagEnd = self[start.upperBound...].firstIndex(of: ">") else { return nil }
        let tag = self[tagStart..<tagEnd]
        guard let attr = tag.range(of: " \(attribute)=\"") else { return nil }
        let value = tag[attr.upperBound...]
        return value.firstIndex(of: "\"").map { String(value[..<$0]) }
    }

    /// The attributes of the `li` of verification step `step`.
    func verificationStep(_ step: Int) -> (status: String, detail: String)? {
        guard let start = range(of: "data-step=\"\(step)\"") else { return nil }
        let tail = self[start.upperBound...]
        guard let status = tail.range(of: "data-status=\""), let end = tail[status.upperBound...].firstIndex(of: "\"") else { return nil }
        guard let detail = tail.range(of: "class=\"detail\">"), let close = tail[detail.upperBound...].range(of: "</p>") else { return nil }
        return (String(tail[status.upperBound..<end]), String(tail[detail.upperBound..<close.lowerBound]))
    }
}
