import Foundation

/// Named points in multi-step writes where a test may kill the process, to prove that a
/// crash at any of them leaves the store consistent.
///
/// Set `PROVENANCE_CRASH_AT=<point>` to have the process send itself SIGKILL there, which no
/// cleanup code can intercept. Unset, it costs one environment lookup per write.
enum CrashPoint: String {
    case afterObjectsWritten = "after-objects-written"
    case afterRepositoryCreated = "after-repository-created"
    case afterReferenceUpdated = "after-reference-updated"
    case afterIndexCommitted = "after-index-committed"
    case afterCheckpointSigned = "after-checkpoint-signed"
    case beforeLedgerCommit = "before-ledger-commit"
    /// A group commit with its invoices and checkpoint written, not yet committed.
    case insideGroupCommit = "inside-group-commit"
    /// A batch settlement with its netted transfers written, not yet committed.
    case insideNetBatch = "inside-net-batch"
    /// `migrate`: the rows committed to the database, `database.json` not written yet.
    case beforeDatabaseMarker = "before-database-marker"
    /// `migrate`: `database.json` written, `registry.sqlite` not moved aside yet.
    case afterDatabaseMarker = "after-database-marker"

    /// Read once: `ProcessInfo.environment` builds a dictionary of the whole environment, and
    /// settlement passes three crash points per group commit.
    private static let wanted = ProcessInfo.processInfo.environment["PROVENANCE_CRASH_AT"]

    func hit() {
        guard let wanted = Self.wanted, wanted == rawValue else { return }
        kill(getpid(), SIGKILL)
    }
}
