import AttributionPlugins
import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import ProvenanceCore
import ProvenanceTestSupport
import RegistryService
import Testing

/// A store in a fresh temporary directory, a token for every role, and the registry app over it.
final class RegistryFixture: Sendable {
    let directory: TemporaryDirectory
    let store: Store
    let admin: String
    let developer: String
    let contributor: String
    let node: String
    let caller: String
    let configuration: RegistryConfiguration

    static let developerIdentity = "Dev <dev@example.org>"

    /// With `database`, the store keeps its state there; else in the tests' backend.
    init(configuration: RegistryConfiguration = RegistryConfiguration(allowLocalRemotes: true), database: String? = nil) throws {
        directory = try TemporaryDirectory("provenance-registry")
        store = try Store.initialize(at: directory.path(".provenance"), database: try database ?? TestBackend.newDatabaseURL()).store
        admin = try store.createToken(role: .admin, subject: "ops").secret
        developer = try store.createToken(role: .developer, subject: "dev@example.org").secret
        contributor = try store.createToken(role: .contributor, subject: "ann@example.org").secret
        node = try store.createToken(role: .node, subject: "gpu1").secret
        caller = try store.createToken(role: .caller, subject: "alice").secret
        self.configuration = configuration
    }

    /// The app, logging only warnings so a thousand calls do not flood the test output.
    func app(metrics: RegistryMetrics = RegistryMetrics(), configuration: RegistryConfiguration? = nil) -> some ApplicationProtocol {
        var logger = Logger(label: "provenance.registry.test")
        logger.logLevel = .warning
        return buildApplication(configuration: configuration ?? self.configuration, store: store, resolver: PluginRegistry(),
                                metrics: metrics, logger: logger)
    }

    /// A git repository in the fixture's folder with one commit per (author, file, content).
    func remote(_ name: String, commits: [(author: String, file: String, content: String)]) throws -> URL {
        let repo = directory.path("remotes/\(name)")
        try FileManager.default.createDirectory(at: repo, withIntermediateDirectories: true)
        try git(["init", "-q"], in: repo)
        for (offset, commit) in commits.enumerated() {
            try directory.write("remotes/\(name)/\(commit.file)", commit.content)
            try gitCommit(repo, author: commit.author, message: "add \(commit.file)", date: 1_700_000_000 + offset * 60)
        }
        return repo
    }

    /// Datasets `text` (Ann, Bo) and `code` (Cy, Di) imported from local git remotes over HTTP,
    /// then `m@1` trained on both by Dev, under equal-share: four contributors at a quarter each.
    func market(_ client: some TestClientProtocol) async throws {
        let text = try remote("text", commits: [("Ann <ann@example.org>", "a.txt", "a\n"), ("Bo <bo@example.org>", "b.txt", "b\n")])
        let code = try remote("code", commits: [("Cy <cy@example.org>", "c.swift", "c\n"), ("Di <di@example.org>", "d.swift", "d\n")])
        for (name, url) in [("text", text), ("code", code)] {
            let response = try await client.send(.post, "/v1/datasets/\(name)/commits", token: contributor, json: ["source": "file://\(url.path)"])
            try response.expect(.created)
        }
        try await client.send(.post, "/v1/models/m/versions", token: developer, json: [
            "version": "1", "developer": Self.developerIdentity, "datasets": ["text", "code"], "plugin": "equal-share",
        ]).expect(.created)
    }

    /// Prices `m` at 1 token per 1,000 input tokens (standard split), registers node gpu1 with
    /// `key`, and deposits `deposit` tokens to each caller.
    func priceAndFund(_ client: some TestClientProtocol, key: NodeSigner, callers: [String], deposit: String) async throws {
        try await client.send(.put, "/v1/models/m/price", token: developer, json: ["input_per_1k": "1", "output_per_1k": "0"]).expect(.ok)
        try await client.send(.post, "/v1/nodes", token: node, json: ["name": "gpu1", "public_key": key.publicKey])
            .expect(.created)
        for caller in callers {
            try await client.send(.post, "/v1/accounts/\(caller)/deposits", token: admin, json: ["amount": deposit]).expect(.created)
        }
    }
}

/// A node's Ed25519 key, which (unlike swift-crypto's key type) can cross tasks.
struct NodeSigner: Sendable {
    let raw: Data

    init() { raw = Curve25519.Signing.PrivateKey().rawRepresentation }

    var key: Curve25519.Signing.PrivateKey { try! Curve25519.Signing.PrivateKey(rawRepresentation: raw) }
    var publicKey: String { key.publicKey.rawRepresentation.base64EncodedString() }
}

/// One signed call as a node sends it.
struct SignedCall {
    var record: CallRecord
    var signature: CallSignature

    init(caller: String, inputTokens: UInt64 = 1000, key: String, node: String = "gpu1", signer: NodeSigner) throws {
        record = CallRecord(caller: caller, model: "m", version: "1", node: node, router: nil, inputTokens: inputTokens, outputTokens: 0,
                            latencyMilliseconds: 50, outputSHA256: nil, idempotencyKey: key)
        signature = try CallSignature.sign(record, with: signer.key)
    }

    func body(deferred: Bool = false) -> [String: Any] {
        var signatureObject: [String: Any] = [:]
        switch signature {
        case .single(let bytes): signatureObject = ["kind": "single", "signature": bytes.base64EncodedString()]
        case .batch(let root, let bytes, let index, let size, let proof):
            signatureObject = ["kind": "batch", "batch_root": root.base64EncodedString(), "signature": bytes.base64EncodedString(),
                               "index": index, "size": size, "proof": proof.map { $0.base64EncodedString() }]
        }
        var recordObject: [String: Any] = [
            "caller": record.caller, "model": record.model, "version": record.version, "node": record.node,
            "input_tokens": record.inputTokens, "output_tokens": record.outputTokens, "latency_ms": record.latencyMilliseconds,
            "idempotency_key": record.idempotencyKey,
        ]
        if let router = record.router { recordObject["router"] = router }
        return ["record": recordObject, "signature": signatureObject, "deferred": deferred]
    }

    /// Submits the call with its Idempotency-Key header.
    func submit(_ client: some TestClientProtocol, token: String, deferred: Bool = false) async throws -> TestResponse {
        try await client.send(.post, "/v1/calls", token: token, json: body(deferred: deferred),
                              headers: [HTTPField.Name("Idempotency-Key")!: record.idempotencyKey])
    }
}

extension TestClientProtocol {
    /// Sends a request with an optional bearer token and JSON body.
    @discardableResult
    func send(_ method: HTTPRequest.Method, _ uri: String, token: String? = nil, json: Any? = nil, raw: String? = nil,
              headers extra: HTTPFields = [:]) async throws -> TestResponse {
        var headers = extra
        if let token { headers[.authorization] = "Bearer \(token)" }
        var body: ByteBuffer?
        if let json {
            body = ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: json))
        } else if let raw {
            body = ByteBuffer(string: raw)
        }
        if body != nil, headers[.contentType] == nil { headers[.contentType] = "application/json" }
        return try await execute(uri: uri, method: method, headers: headers, body: body)
    }
}

extension TestResponse {
    var text: String { String(buffer: body) }

    /// The body as a JSON object.
    func object() throws -> [String: Any] {
        guard let object = try JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any] else {
            throw FixtureError("not a JSON object: \(text)")
        }
        return object
    }

    /// The error code of an error answer, after checking the one error shape.
    func errorCode() throws -> String {
        let object = try object()
        guard object.count == 1, let error = object["error"] as? [String: Any], error.count == 2,
              let code = error["code"] as? String, let message = error["message"] as? String, !message.isEmpty,
              !message.contains("\n")
        else { throw FixtureError("not the error shape: \(text)") }
        return code
    }

    /// Checks the status, saying what came back otherwise.
    @discardableResult
    func expect(_ status: HTTPResponse.Status, sourceLocation: SourceLocation = #_sourceLocation) throws -> TestResponse {
        #expect(self.status == status, "\(self.status.code): \(text)", sourceLocation: sourceLocation)
        guard self.status == status else { throw FixtureError("expected \(status.code), got \(self.status.code): \(text)") }
        return self
    }

    /// Checks an error answer's status and code.
    func expectError(_ status: HTTPResponse.Status, _ code: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        #expect(self.status == status, "\(self.status.code): \(text)", sourceLocation: sourceLocation)
        #expect(try errorCode() == code, "\(text)", sourceLocation: sourceLocation)
        #expect(headers[.contentType]?.hasPrefix("application/json") == true, sourceLocation: sourceLocation)
    }
}

extension Store {
    /// A balance in base units, as a string ("0" for an account that does not exist).
    func rawBalance(_ account: String) throws -> String {
        (try? balance(of: account))?.rawString ?? "0"
    }
}
