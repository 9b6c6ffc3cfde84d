import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import HTTPTypes
import OpenAPIRuntime
import OpenAPIURLSession
import RegistryAPI

/// The registry's API as the client generated from `Registry/openapi.yaml` sees it
/// (`Sources/RegistryAPI/Generated`, `make openapi`), over Foundation's URLSession.
///
/// URLSession rather than AsyncHTTPClient: the `provenance` executable then needs no NIO-SSL
/// (BoringSSL) of its own, and the transport is a few files. Its one limit is that on Linux it
/// buffers request bodies (the transport throws `streamingNotSupported` for streaming there), so
/// file uploads (`PUT /v1/uploads/{sha256}`) keep `RegistryClient.upload`, which streams from
/// disk; so do the raw reads whose exact bytes are checked (an invoice's canonical bytes, a
/// terms block), which a typed decode would re-serialise.
extension RegistryClient {
    /// The generated client, sending this client's bearer token.
    var api: Client {
        get throws {
            guard let url = URL(string: base) else { throw AuditError("'\(base)' is not a registry URL") }
            return Client(serverURL: url, transport: URLSessionTransport(), middlewares: [RegistryAnswerMiddleware(base: base, token: token)])
        }
    }

    /// Runs `operation` on the generated client. A refusal becomes the registry's one-line error
    /// (RegistryAnswerMiddleware); an answer that does not match the spec names what was wrong.
    func call<T>(_ what: String, _ operation: (Client) async throws -> T) async throws -> T {
        do {
            return try await operation(try api)
        } catch let error as ClientError {
            if let cause = error.underlyingError as? AuditError { throw cause }
            throw AuditError("the registry's answer to \(what) is not what the API documents: \(Self.firstLine(error.underlyingError))")
        }
    }

    /// A domain value from the generated type that carried it: the answer was checked against the
    /// spec by the generated decoder, and is read here with the domain's own `Decodable`, so a
    /// remote command prints exactly what the local one does.
    static func domain<T: Decodable>(_ answer: some Encodable, as type: T.Type, _ what: String) throws -> T {
        do { return try JSONDecoder().decode(T.self, from: try JSONEncoder().encode(answer)) } catch {
            throw AuditError("the registry's answer to \(what) is not what the API documents: \(firstLine(error))")
        }
    }

    static func firstLine(_ error: any Error) -> String {
        String(describing: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
    }
}

/// Adds the bearer token to every request, and turns every answer that is not a success into
/// one line naming the request, the status and the registry's own message, as
/// `RegistryClient.must` does; a registry that cannot be reached is said so in one line too.
struct RegistryAnswerMiddleware: ClientMiddleware {
    let base: String
    let token: String?

    func intercept(_ request: HTTPRequest, body: HTTPBody?, baseURL: URL, operationID: String,
                   next: @Sendable (HTTPRequest, HTTPBody?, URL) async throws -> (HTTPResponse, HTTPBody?)) async throws -> (HTTPResponse, HTTPBody?) {
        var request = request
        if let token { request.headerFields[.authorization] = "Bearer \(token)" }
        let response: HTTPResponse
        let responseBody: HTTPBody?
        do {
            (response, responseBody) = try await next(request, body, baseURL)
        } catch {
            throw AuditError("cannot reach the registry at \(base): \((error as? URLError)?.localizedDescription ?? RegistryClient.firstLine(error))")
        }
        guard response.status.kind == .successful else {
            var data: Data?
            if let responseBody { data = try? await Data(collecting: responseBody, upTo: 1 << 20) }
            let message = data.flatMap { try? JSONSerialization.jsonObject(with: $0) as? [String: Any] }
                .flatMap { ($0["error"] as? [String: Any])?["message"] as? String }
                ?? String(decoding: (data ?? Data()).prefix(200), as: UTF8.self)
            throw AuditError("the registry answered \(request.method) \(request.path ?? "/") with \(response.status.code): \(message)")
        }
        return (response, responseBody)
    }
}
