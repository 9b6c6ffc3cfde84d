public import Foundation

/// A parsed `.mailmap`: maps the names and emails found in commits to canonical ones.
///
/// This follows git's own `mailmap.c` rather than libgit2's: git matches emails and names
/// case-insensitively, while libgit2 1.5 compares them byte for byte, so
/// `<ada@example.org> <ADA@old.example>` would map under `git log` but not under libgit2.
/// The git CLI is the reference, so the rules are implemented here:
///
/// ```
/// Proper Name <commit@email>
/// <proper@email> <commit@email>
/// Proper Name <proper@email> <commit@email>
/// Proper Name <proper@email> Commit Name <commit@email>
/// ```
public struct Mailmap: Sendable {
    private struct Replacement: Sendable {
        var name: String?
        var email: String?
    }

    private struct Entry: Sendable {
        var replacement = Replacement()
        /// Replacements that apply only to a commit name (keyed lowercased).
        var byName: [String: Replacement] = [:]
    }

    /// Keyed by the commit email, lowercased.
    private var entries: [String: Entry] = [:]

    /// An empty mailmap that maps every identity to itself.
    public init() {}

    /// Parses mailmap text, e.g. the contents of a `.mailmap` blob. Lines git would ignore
    /// (comments, lines without an email) are ignored here too.
    public init(contents: Data) {
        let text = String(decoding: contents, as: UTF8.self)
        for line in text.split(omittingEmptySubsequences: true, whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            if line.hasPrefix("#") { continue }
            guard let (name1, email1, rest) = Self.parseNameAndEmail(Substring(line), allowEmptyEmail: false) else { continue }
            var name2: String?
            var email2: String?
            if let rest, let (n, e, _) = Self.parseNameAndEmail(rest, allowEmptyEmail: true) {
                name2 = n
                email2 = e
            }
            add(newName: name1, newEmail: email1, oldName: name2, oldEmail: email2)
        }
    }

    private mutating func add(newName: String?, newEmail: String?, oldName: String?, oldEmail: String?) {
        var newEmail = newEmail
        var oldEmail = oldEmail
        if oldEmail == nil {
            oldEmail = newEmail
            newEmail = nil
        }
        guard let key = oldEmail?.lowercased() else { return }
        var entry = entries[key] ?? Entry()
        if let oldName {
            var replacement = entry.byName[oldName.lowercased()] ?? Replacement()
            if let newName { replacement.name = newName }
            if let newEmail { replacement.email = newEmail }
            entry.byName[oldName.lowercased()] = replacement
        } else {
            if let newName { entry.replacement.name = newName }
            if let newEmail { entry.replacement.email = newEmail }
        }
        entries[key] = entry
    }

    /// git's `parse_name_and_email`: the trimmed text before `<` (nil if empty), the text
    /// between `<` and `>`, and what follows (nil if nothing).
    private static func parseNameAndEmail(_ text: Substring, allowEmptyEmail: Bool) -> (String?, String, Substring?)? {
        guard let left = text.firstIndex(of: "<") else { return nil }
        guard let right = text[text.index(after: left)...].firstIndex(of: ">") else { return nil }
        let email = text[text.index(after: left)..<right]
        if !allowEmptyEmail && email.isEmpty { return nil }
        let name = text[..<left].trimmingCharacters(in: .whitespaces)
        let rest = text[text.index(after: right)...]
        return (name.isEmpty ? nil : name, String(email), rest.isEmpty ? nil : rest)
    }

    /// The canonical name and email for an identity as it appears in a commit.
    public func resolve(name: String, email: String) -> (name: String, email: String) {
        guard let entry = entries[email.lowercased()] else { return (name, email) }
        var replacement = entry.replacement
        if !entry.byName.isEmpty, let specific = entry.byName[name.lowercased()] {
            replacement = specific
        }
        return (replacement.name ?? name, replacement.email ?? email)
    }
}
