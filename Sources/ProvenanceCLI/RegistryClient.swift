import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A small HTTP client for a registry's public reads, over Foundation's URLSession (the client
/// the tests already use; no new package). Every answer is returned as bytes with its status:
/// the callers trust none of it until they have checked it.
struct RegistryClient: Sendable {
    /// The registry's base URL, without a trailing slash.
    let base: String
    /// The bearer token sent with every request, when one was given.
    var token: String?

    /// Parses `http(s)://HOST[:PORT][/PREFIX]`; throws one line for anything else.
    init(_ url: String) throws {
        guard let parsed = URL(string: url), let scheme = parsed.scheme?.lowercased(), ["http", "https"].contains(scheme),
              parsed.host != nil, parsed.query == nil, parsed.fragment == nil else {
            throw AuditError("'\(url)' is not a registry URL: give http://HOST:PORT or https://HOST")
        }
        var text = url
        while text.hasSuffix("/") { text.removeLast() }
        base = text
    }

    /// GET `path` (which starts with `/`).
    func get(_ path: String) async throws -> (status: Int, body: Data) {
        let request = authorized(path)
        do {
            let (data, response) = try await URLSession.shared.data(for: request)
            return ((response as? HTTPURLResponse)?.statusCode ?? 0, data)
        } catch {
            throw AuditError("cannot reach the registry at \(base): \(error.localizedDescription)")
        }
    }

    /// A request for `path` with the bearer token, if any.
    func authorized(_ path: String) -> URLRequest {
        var request = URLRequest(url: URL(string: base + path)!)
        request.timeoutInterval = 60
        if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        return request
    }

    /// Decodes the registry's answer to `what` as `T`, or says it is not what the API documents.
    static func decode<T: Decodable>(_ type: T.Type, _ body: Data, _ what: String) throws -> T {
        do { return try JSONDecoder().decode(T.self, from: body) } catch {
            throw AuditError("the registry's answer to \(what) is not what the API documents: \(error)")
        }
    }

    /// GET `path`, which must answer 200.
    func must(_ path: String) async throws -> Data {
        let (status, body) = try await get(path)
        guard status == 200 else {
            let message = (try? JSONSerialization.jsonObject(with: body) as? [String: Any])
                .flatMap { ($0["error"] as? [String: Any])?["message"] as? String } ?? String(decoding: body.prefix(200), as: UTF8.self)
            throw AuditError("the registry answered GET \(path) with \(status): \(message)")
        }
        return body
    }

    /// GET `path` as JSON of type `T`.
    func json<T: Decodable>(_ path: String, as type: T.Type) async throws -> T {
        let body = try await must(path)
        do { return try JSONDecoder().decode(T.self, from: body) } catch {
            throw AuditError("the registry's answer to GET \(path) is not what the API documents: \(error)")
        }
    }
}

/// Why an audit stopped: one line, naming the problem.
struct AuditError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
