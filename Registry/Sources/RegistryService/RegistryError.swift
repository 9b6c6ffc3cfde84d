import Logging
import Foundation
public import Hummingbird
import ProvenanceCore

/// Every error the registry answers with: an HTTP status and one JSON shape,
/// `{"error": {"code": "...", "message": "..."}}`, whose `code` is stable.
///
/// | status | code | when |
/// | --- | --- | --- |
/// | 400 | `malformed_request` | the body is not JSON of the documented shape, or a header or query parameter is missing or unreadable |
/// | 400 | `invalid_argument` | a field or path parameter is malformed (a name, account, amount, identity, reference) |
/// | 401 | `unauthorized` | no bearer token, or one that is unknown or revoked |
/// | 402 | `insufficient_funds` | the account cannot pay |
/// | 403 | `forbidden` | the token's role or subject may not do this |
/// | 404 | `not_found` | no such route, dataset, model, account, node, invoice… |
/// | 405 | `method_not_allowed` | the path exists, the method does not |
/// | 409 | `conflict`, `idempotency_conflict` | the thing exists already; an idempotency key reused for another call record |
/// | 413 | `payload_too_large` | the body is over the server's limit |
/// | 415 | `unsupported_media_type` | a body that is not `application/json` |
/// | 422 | `refused` | well-formed input the domain refuses (a bad signature, a zero deposit, an unfetchable remote…) |
/// | 500 | `internal_error` | a failure of the server itself, never bad input |
public struct RegistryError: HTTPResponseError, CustomStringConvertible {
    public var status: HTTPResponse.Status
    public var code: String
    public var message: String
    public var headers: HTTPFields

    public init(_ status: HTTPResponse.Status, code: String, _ message: String, headers: HTTPFields = [:]) {
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers
    }

    public var description: String { "\(status.code) \(code): \(message)" }

    static func malformed(_ message: String) -> RegistryError { .init(.badRequest, code: "malformed_request", message) }
    static func invalid(_ message: String) -> RegistryError { .init(.badRequest, code: "invalid_argument", message) }
    static func unauthorized(_ message: String) -> RegistryError {
        .init(.unauthorized, code: "unauthorized", message, headers: [.wwwAuthenticate: "Bearer realm=\"provenance\""])
    }
    static func forbidden(_ message: String) -> RegistryError { .init(.forbidden, code: "forbidden", message) }
    static func notFound(_ message: String) -> RegistryError { .init(.notFound, code: "not_found", message) }
    static func refused(_ message: String) -> RegistryError { .init(.unprocessableContent, code: "refused", message) }

    struct Body: Encodable {
        struct Detail: Encodable {
            var code: String
            var message: String
        }
        var error: Detail
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var response = JSONResponse.make(Body(error: .init(code: code, message: message)), status: status)
        response.headers.append(contentsOf: headers)
        return response
    }

    /// The registry error for anything a handler or the core threw. Core errors keep their
    /// message; their code picks the status.
    static func from(_ error: any Error) -> RegistryError {
        switch error {
        case let error as RegistryError:
            return error
        case let error as ProvenanceError:
            return from(error)
        case let error as any HTTPResponseError:
            switch error.status {
            case .contentTooLarge: return .init(.contentTooLarge, code: "payload_too_large", "the request body is over the server's limit")
            case .notFound: return .notFound("no such route")
            case .badRequest: return .malformed("\(error)")
            default:
                return .init(error.status, code: error.status.code >= 500 ? "internal_error" : "malformed_request",
                             error.status.reasonPhrase)
            }
        default:
            return .init(.internalServerError, code: "internal_error", "internal error: \(String(describing: error).prefix(300))")
        }
    }

    static func from(_ error: ProvenanceError) -> RegistryError {
        switch error.code {
        case .invalidArgument: return .refused(error.message)
        case .notFound: return .notFound(error.message)
        case .conflict: return .init(.conflict, code: "conflict", error.message)
        case .insufficientFunds: return .init(.init(code: 402, reasonPhrase: "Payment Required"), code: "insufficient_funds", error.message)
        case .noStore, .storage, .git: return .init(.internalServerError, code: "internal_error", error.message)
        case .unavailable:
            return .init(.serviceUnavailable, code: "unavailable", error.message, headers: [.retryAfter: "1"])
        }
    }
}

/// Catches every error a route throws and answers in the one JSON shape; logs server failures.
struct ErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    /// The routes, to tell "no such path" (404) from "no such method on this path" (405).
    let routes: RouteTable

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch {
            var registryError = RegistryError.from(error)
            if registryError.status == .notFound, context.endpointPath == "NotFound" {
                let allowed = routes.methods(matching: request.uri.path)
                if !allowed.isEmpty {
                    registryError = RegistryError(.methodNotAllowed, code: "method_not_allowed",
                                                  "\(request.method.rawValue) is not allowed on \(request.uri.path); use \(allowed.joined(separator: ", "))",
                                                  headers: [.allow: allowed.joined(separator: ", ")])
                }
            }
            if registryError.status.code >= 500 {
                context.logger.error("request failed", metadata: ["error": "\(String(reflecting: error))"])
            } else {
                context.logger.debug("request refused", metadata: ["error.code": "\(registryError.code)", "error.message": "\(registryError.message)"])
            }
            return try registryError.response(from: request, context: context)
        }
    }
}

/// The router's paths, matched the way the router matches them, for 405 answers and for the
/// test that the OpenAPI file documents every route.
public struct RouteTable: Sendable {
    public struct Route: Sendable, Hashable {
        public var method: String
        /// As the router and OpenAPI write it: `/v1/models/{model}`.
        public var path: String
    }

    public private(set) var routes: [Route] = []

    mutating func add(_ method: HTTPRequest.Method, _ path: String) {
        routes.append(Route(method: method.rawValue, path: path))
    }

    /// The methods registered for a path matching `path`, sorted.
    func methods(matching path: String) -> [String] {
        let components = path.split(separator: "/", omittingEmptySubsequences: true)
        var methods = Set<String>()
        for route in routes {
            let pattern = route.path.split(separator: "/", omittingEmptySubsequences: true)
            guard pattern.count == components.count else { continue }
            if zip(pattern, components).allSatisfy({ $0.hasPrefix("{") || $0 == $1 }) { methods.insert(route.method) }
        }
        return methods.sorted()
    }
}
