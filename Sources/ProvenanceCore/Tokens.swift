import Foundation
import Crypto
import GRDB

/// What a bearer token lets its holder do on the registry service (DESIGN.md §11).
///
/// The role says which routes a token may call; the token's subject says on whose behalf:
/// a developer changes only the models they develop, a node submits only its own calls, a
/// caller, contributor or node reads only its own account.
public enum AccessRole: String, Sendable, CaseIterable, Codable {
    /// Everything, including deposits, settlement and any account.
    case admin
    /// Registers dataset commits; the subject is the contributor id (their email, lowercased).
    case contributor
    /// Registers, prices and re-plugs the models they develop; the subject is the developer id.
    case developer
    /// Registers itself with its public key and submits the calls it signed; the subject is the node name.
    case node
    /// Reads its own balance and statement; the subject is the paying account.
    case caller
}

/// A bearer token as the store keeps it: never the secret, only its SHA-256.
public struct AccessToken: Sendable, Equatable, Codable {
    /// A public handle (`tok_` and 16 hex digits) to list and revoke the token by.
    public var id: String
    public var role: AccessRole
    public var subject: String
    public var createdAt: Int64
    public var revokedAt: Int64?

    public init(id: String, role: AccessRole, subject: String, createdAt: Int64, revokedAt: Int64?) {
        self.id = id
        self.role = role
        self.subject = subject
        self.createdAt = createdAt
        self.revokedAt = revokedAt
    }

    public var isRevoked: Bool { revokedAt != nil }

    /// The ledger account this token's subject owns, if any: a node owns `node:NAME`, every
    /// other role but admin owns the account named by its subject.
    public var ownAccount: String? {
        switch role {
        case .admin: return nil
        case .node: return Accounts.node(subject)
        case .contributor, .developer, .caller: return subject
        }
    }

    enum CodingKeys: String, CodingKey {
        case id, role, subject
        case createdAt = "created_at"
        case revokedAt = "revoked_at"
    }
}

/// A token just created: the only moment its secret exists outside its holder's hands.
public struct IssuedToken: Sendable {
    public var token: AccessToken
    /// `prov_` and 43 base64url characters (256 random bits). Shown once, stored only hashed.
    public var secret: String
}

/// Where tokens live: beside the registry index, so a PostgreSQL backend can keep them too.
public protocol TokenStorage: Sendable {
    func insertToken(_ token: AccessToken, secretSHA256: String) throws
    /// The token whose secret hashes to `secretSHA256`, revoked or not.
    func token(secretSHA256: String) throws -> AccessToken?
    func token(id: String) throws -> AccessToken?
    /// Every token, oldest first.
    func tokens() throws -> [AccessToken]
    /// Marks the token revoked; false when it was unknown or already revoked.
    func revokeToken(id: String, at time: Int64) throws -> Bool
}

extension Store {
    public static let tokenPrefix = "prov_"

    public var tokenStorage: any TokenStorage {
        guard let storage = index as? any TokenStorage else { preconditionFailure("the index has no token storage") }
        return storage
    }

    /// Creates a bearer token for `role` on behalf of `subject`; only its SHA-256 is stored.
    ///
    /// - Throws: `invalidArgument` when the subject is not a valid id for the role.
    public func createToken(role: AccessRole, subject: String) throws -> IssuedToken {
        try Self.validateSubject(subject, for: role)
        let secret = Self.tokenPrefix + Self.base64URL(SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) })
        let id = "tok_" + SHA256Digest.hex(bytes: SymmetricKey(size: SymmetricKeySize(bitCount: 64)).withUnsafeBytes { Data($0) })
        let token = AccessToken(id: id, role: role, subject: subject, createdAt: Self.now(), revokedAt: nil)
        try tokenStorage.insertToken(token, secretSHA256: Self.tokenHash(secret))
        return IssuedToken(token: token, secret: secret)
    }

    /// The live token whose secret is `secret`; nil for an unknown, malformed or revoked one.
    ///
    /// A live token is remembered for up to `authenticationCacheSeconds`, so a busy registry
    /// does not read the database on every request: a revocation made by this process applies
    /// at once, one made by another process (`provenance token revoke` beside `serve`) within
    /// that time.
    public func authenticate(secret: String) throws -> AccessToken? {
        guard secret.hasPrefix(Self.tokenPrefix), secret.utf8.count <= 128 else { return nil }
        let hash = Self.tokenHash(secret)
        let now = DispatchTime.now().uptimeNanoseconds
        if let known = caches.tokens.token(hash, at: now) { return known }
        let generation = caches.tokens.generation
        guard let token = try tokenStorage.token(secretSHA256: hash), !token.isRevoked else { return nil }
        caches.tokens.remember(token, hash: hash, at: now, ifStill: generation)
        return token
    }

    /// How long a live token is trusted without reading the database again.
    public static let authenticationCacheSeconds: UInt64 = 1

    /// Revokes the token given by its secret or its id; revoking twice is refused.
    public func revokeToken(_ secretOrID: String) throws -> AccessToken {
        let found = secretOrID.hasPrefix(Self.tokenPrefix)
            ? try tokenStorage.token(secretSHA256: Self.tokenHash(secretOrID))
            : try tokenStorage.token(id: secretOrID)
        guard var token = found else {
            throw ProvenanceError.notFound("no token '\(secretOrID.hasPrefix(Self.tokenPrefix) ? "prov_…" : secretOrID)': `provenance token list` shows the ids")
        }
        let time = Self.now()
        defer { caches.tokens.forgetAll() }
        guard try tokenStorage.revokeToken(id: token.id, at: time) else {
            throw ProvenanceError.conflict("token \(token.id) is already revoked")
        }
        token.revokedAt = time
        return token
    }

    public func accessTokens() throws -> [AccessToken] { try tokenStorage.tokens() }

    /// Subjects are ids the rest of the store uses: node names for nodes, account ids otherwise.
    public static func validateSubject(_ subject: String, for role: AccessRole) throws {
        switch role {
        case .node:
            guard Names.isValidName(subject) else {
                throw ProvenanceError.invalid("invalid node subject '\(subject)': a node token's subject is the node name (1-64 characters a-z 0-9 . _ -)")
            }
        case .admin, .contributor, .developer, .caller:
            try Accounts.validate(subject)
            if role != .admin { try refuseInternal(subject) }
        }
    }

    /// The stored form of a secret, hashed from its UTF-8 in place: `Data(secret.utf8)` took the
    /// generic path for any sequence, with a dynamic cast and a copy, on every request (0.7%).
    static func tokenHash(_ secret: String) -> String {
        var secret = secret
        return secret.withUTF8 { SHA256Digest.hex(SHA256.hash(data: UnsafeRawBufferPointer($0))) }
    }

    static func base64URL(_ data: Data) -> String {
        data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
}

extension SQLiteRegistryIndex: TokenStorage {
    static func registerTokenMigration(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("v5-access-tokens") { db in
            try db.create(table: "access_tokens") { t in
                t.primaryKey("id", .text)
                t.column("secret_sha256", .text).notNull().unique()
                t.column("role", .text).notNull()
                t.column("subject", .text).notNull()
                t.column("created_at", .integer).notNull()
                t.column("revoked_at", .integer)
            }
        }
    }

    static func accessToken(_ row: Row) throws -> AccessToken {
        guard let role = AccessRole(rawValue: row["role"]) else {
            throw ProvenanceError(.storage, "access token \(row["id"] as String) has an unknown role '\(row["role"] as String)'")
        }
        return AccessToken(id: row["id"], role: role, subject: row["subject"], createdAt: row["created_at"], revokedAt: row["revoked_at"])
    }

    public func insertToken(_ token: AccessToken, secretSHA256: String) throws {
        try write { db in
            try db.execute(sql: """
                INSERT INTO access_tokens (id, secret_sha256, role, subject, created_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?)
                """, arguments: [token.id, secretSHA256, token.role.rawValue, token.subject, token.createdAt, token.revokedAt])
        }
    }

    public func token(secretSHA256: String) throws -> AccessToken? {
        try read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM access_tokens WHERE secret_sha256 = ?", arguments: [secretSHA256])
        }.map(Self.accessToken)
    }

    public func token(id: String) throws -> AccessToken? {
        try read { db in try Row.fetchOne(db, sql: "SELECT * FROM access_tokens WHERE id = ?", arguments: [id]) }.map(Self.accessToken)
    }

    public func tokens() throws -> [AccessToken] {
        try read { db in try Row.fetchAll(db, sql: "SELECT * FROM access_tokens ORDER BY created_at, id") }.map(Self.accessToken)
    }

    public func revokeToken(id: String, at time: Int64) throws -> Bool {
        try write { db in
            try db.execute(sql: "UPDATE access_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", arguments: [time, id])
            return db.changesCount == 1
        }
    }
}
