import Foundation
public import Testing

extension CLIHarness {
    /// Runs `arguments` and checks the refusal: a non-zero exit (no crash), one `Error:` line
    /// mentioning `mentioning`, nothing on stdout, and a store identical to before.
    public func expectRefusal(_ arguments: [String], mentioning: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let before = try snapshot()
        let result = try run(arguments)
        #expect(!result.signalled, "crashed: \(result)", sourceLocation: sourceLocation)
        #expect(result.status != 0, "succeeded: \(result)", sourceLocation: sourceLocation)
        #expect(result.errorLines.count == 1, "not one line: \(result.stderr)", sourceLocation: sourceLocation)
        #expect(result.errorLines.first?.hasPrefix("Error: ") == true, "\(result.stderr)", sourceLocation: sourceLocation)
        #expect(result.stderr.contains(mentioning), "\(result.stderr)", sourceLocation: sourceLocation)
        #expect(result.stdout.isEmpty, sourceLocation: sourceLocation)
        #expect(try snapshot() == before, "the store changed", sourceLocation: sourceLocation)
    }
}
