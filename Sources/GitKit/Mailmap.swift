internal import CGit2
public import Foundation

/// A parsed `.mailmap`: maps the names and emails found in commits to canonical ones,
/// with git's own rules (libgit2 implements them).
public final class Mailmap {
    private let pointer: OpaquePointer

    /// An empty mailmap that maps every identity to itself.
    public convenience init() throws {
        try self.init(contents: Data())
    }

    /// Parses mailmap text, e.g. the contents of a `.mailmap` blob.
    public init(contents: Data) throws {
        precondition(libgit2Initialised)
        var mm: OpaquePointer?
        try contents.withUnsafeBytes { raw in
            try check("git_mailmap_from_buffer", git_mailmap_from_buffer(
                &mm, raw.baseAddress?.assumingMemoryBound(to: CChar.self), raw.count))
        }
        guard let mm else { throw GitError(function: "git_mailmap_from_buffer", message: "no mailmap returned") }
        self.pointer = mm
    }

    deinit { git_mailmap_free(pointer) }

    /// The canonical name and email for an identity as it appears in a commit.
    public func resolve(name: String, email: String) throws -> (name: String, email: String) {
        var realName: UnsafePointer<CChar>?
        var realEmail: UnsafePointer<CChar>?
        return try name.withCString { cName in
            try email.withCString { cEmail in
                try check("git_mailmap_resolve", git_mailmap_resolve(&realName, &realEmail, pointer, cName, cEmail))
                return (realName.map { String(cString: $0) } ?? name, realEmail.map { String(cString: $0) } ?? email)
            }
        }
    }
}
