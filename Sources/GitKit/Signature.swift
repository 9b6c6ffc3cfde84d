internal import CGit2

/// A git identity with the moment it acted: the author or committer of a commit.
public struct Signature: Hashable, Sendable {
    public var name: String
    public var email: String
    /// Seconds since the Unix epoch.
    public var time: Int64
    /// Offset from UTC in minutes.
    public var offsetMinutes: Int32

    public init(name: String, email: String, time: Int64, offsetMinutes: Int32 = 0) {
        self.name = name
        self.email = email
        self.time = time
        self.offsetMinutes = offsetMinutes
    }

    init(_ pointer: UnsafePointer<git_signature>) {
        let sig = pointer.pointee
        self.name = sig.name.map { String(cString: $0) } ?? ""
        self.email = sig.email.map { String(cString: $0) } ?? ""
        self.time = Int64(sig.when.time)
        self.offsetMinutes = sig.when.offset
    }

    /// Makes a libgit2 signature for the duration of `body`; libgit2 validates the name and email.
    func withGitSignature<T>(_ body: (UnsafePointer<git_signature>) throws -> T) throws -> T {
        var sig: UnsafeMutablePointer<git_signature>?
        try check("git_signature_new", git_signature_new(&sig, name, email, git_time_t(time), Int32(offsetMinutes)))
        defer { git_signature_free(sig) }
        guard let sig else { throw GitError(function: "git_signature_new", message: "no signature returned") }
        return try body(sig)
    }
}
