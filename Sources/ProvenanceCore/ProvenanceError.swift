/// An error a person can act on: what was refused or failed, and, where it helps, how to fix it.
///
/// Its description is always one line, which the CLI prints as is.
public struct ProvenanceError: Error, CustomStringConvertible, Sendable, Equatable {
    /// A stable, machine-readable code (the registry service's error code, too).
    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }

    public enum Code: String, Sendable {
        case invalidArgument = "invalid_argument"
        case notFound = "not_found"
        case conflict = "conflict"
        case noStore = "no_store"
        case storage = "storage_error"
        case git = "git_error"
        case insufficientFunds = "insufficient_funds"
        /// The store's database server cannot be reached now; retrying later may succeed.
        case unavailable = "unavailable"
    }

    /// The same message under another code.
    public func withCode(_ code: Code) -> ProvenanceError { ProvenanceError(code, message) }

    public static func invalid(_ message: String) -> ProvenanceError { .init(.invalidArgument, message) }
    public static func notFound(_ message: String) -> ProvenanceError { .init(.notFound, message) }
    public static func conflict(_ message: String) -> ProvenanceError { .init(.conflict, message) }
}
