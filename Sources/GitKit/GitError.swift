internal import CGit2

/// A failed libgit2 call: which function failed, its return code and libgit2's own message.
///
/// The description is one line, suitable for a command-line error.
public struct GitError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The libgit2 function that failed, e.g. `git_repository_open_bare`.
    public let function: String
    /// The negative code libgit2 returned (`GIT_ENOTFOUND` is -3, and so on).
    public let code: Int32
    /// `git_error_last()`'s message at the time of failure, or a description of the code.
    public let message: String

    public var description: String { "\(function) failed: \(message)" }

    /// True when libgit2 reported that the object or reference does not exist.
    public var isNotFound: Bool { code == GIT_ENOTFOUND.rawValue }

    init(function: String, code: Int32) {
        self.function = function
        self.code = code
        if let last = git_error_last(), let text = last.pointee.message {
            self.message = String(cString: text).trimmingTrailingNewlines()
        } else {
            self.message = "error code \(code)"
        }
    }

    init(function: String, message: String) {
        self.function = function
        self.code = -1
        self.message = message
    }
}

/// Runs a libgit2 call and turns a negative result into a `GitError` naming the call.
@discardableResult
func check(_ function: String, _ result: Int32) throws -> Int32 {
    if result < 0 { throw GitError(function: function, code: result) }
    return result
}

extension String {
    func trimmingTrailingNewlines() -> String {
        var s = Substring(self)
        while let last = s.last, last == "\n" || last == "\r" { s = s.dropLast() }
        return String(s)
    }
}

/// libgit2's global state is initialised exactly once per process, before any handle is made.
let libgit2Initialised: Bool = {
    git_libgit2_init()
    return true
}()
