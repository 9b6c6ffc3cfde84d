import Foundation
import Logging
public import Hummingbird
public import ProvenanceCore

/// The request context of the registry: Hummingbird's core storage plus who is calling.
public struct RegistryRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The bearer token's record, once `AuthenticationMiddleware` has checked it; nil for an
    /// anonymous request (which may still read the public routes).
    public var principal: AccessToken?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        principal = nil
    }

    /// The caller's token, if its role is one of `roles` (admin may do everything).
    ///
    /// - Throws: 401 without a token, 403 for a token of another role.
    func require(_ roles: AccessRole...) throws -> AccessToken {
        guard let principal else {
            throw RegistryError.unauthorized("this route needs a bearer token (Authorization: Bearer prov_…)")
        }
        guard principal.role == .admin || roles.contains(principal.role) else {
            let allowed = ([AccessRole.admin] + roles).map(\.rawValue).joined(separator: ", ")
            throw RegistryError.forbidden("a \(principal.role.rawValue) token may not do this; it needs one of: \(allowed)")
        }
        return principal
    }

    /// Requires a token allowed to read `account`: admin, or the account's own holder.
    func requireOwner(of account: String) throws {
        let principal = try require(.contributor, .developer, .node, .caller)
        guard principal.role == .admin || principal.ownAccount == account else {
            throw RegistryError.forbidden("a \(principal.role.rawValue) token for '\(principal.subject)' reads only its own account (\(principal.ownAccount ?? "none")), not '\(account)'")
        }
    }
}

/// Resolves `Authorization: Bearer …` to a token record. A request without the header goes on
/// anonymously; one with an unknown, revoked or malformed token is refused with 401 on every
/// route, so a client never mistakes a broken token for anonymous access.
struct AuthenticationMiddleware: RouterMiddleware {
    let store: Store

    func handle(_ request: Request, context: RegistryRequestContext,
                next: (Request, RegistryRequestContext) async throws -> Response) async throws -> Response {
        guard let header = request.headers.value(.authorization) else { return try await next(request, context) }
        guard let token = try store.authenticate(secret: try Self.secret(header)) else {
            throw RegistryError.unauthorized("the bearer token is unknown or revoked")
        }
        var context = context
        context.principal = token
        // Only a logger that writes request lines needs to know the token (setting metadata copies it).
        if context.logger.logLevel <= .info { context.logger[metadataKey: "auth.token"] = "\(token.id)" }
        return try await next(request, context)
    }

    /// The token of `Bearer TOKEN` (the scheme in any case, spaces around the token ignored).
    static func secret(_ header: String) throws -> String {
        // The common spelling, read without Foundation's case mapping and trimming.
        if header.utf8.starts(with: "Bearer ".utf8) {
            let rest = header.utf8.dropFirst(7)
            if !rest.isEmpty, rest.allSatisfy({ $0 > 0x20 && $0 < 0x7f }) { return String(Substring(rest)) }
        }
        let parts = header.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else {
            throw RegistryError.unauthorized("the Authorization header must be 'Bearer TOKEN'")
        }
        return parts[1].trimmingCharacters(in: .whitespaces)
    }
}
