import Foundation

/// Validation of the names and references DESIGN.md §3 defines.
public enum Names {
    /// Dataset and model names: `[a-z0-9][a-z0-9._-]{0,63}`.
    public static func isValidName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard (1...64).contains(bytes.count), isLowerAlnum(bytes[0]) else { return false }
        return bytes.dropFirst().allSatisfy { isLowerAlnum($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") }
    }

    /// Model versions: `[0-9A-Za-z][0-9A-Za-z._+-]{0,63}`.
    public static func isValidVersion(_ version: String) -> Bool {
        let bytes = Array(version.utf8)
        guard (1...64).contains(bytes.count), isAlnum(bytes[0]) else { return false }
        guard bytes.dropFirst().allSatisfy({ isAlnum($0) || [UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "+"), UInt8(ascii: "-")].contains($0) })
        else { return false }
        // Each version is a git tag, so it must also be a valid reference name.
        return !version.contains("..") && !version.hasSuffix(".") && !version.hasSuffix(".lock")
    }

    /// Throws a clear error unless `name` is a valid model name.
    public static func validateModelName(_ name: String) throws {
        try validateName(name, of: "model")
    }

    /// Parses and validates `MODEL@VERSION`.
    public static func parseModelVersion(_ text: String) throws -> ModelVersionReference {
        let reference = RevisionReference(parsing: text)
        try validateModelName(reference.name)
        guard let version = reference.revision else {
            throw ProvenanceError.invalid("'\(text)' names no version: write MODEL@VERSION, e.g. \(reference.name)@1.0")
        }
        guard isValidVersion(version) else {
            throw ProvenanceError.invalid("invalid version '\(version)': use 1-64 characters A-Z a-z 0-9 . _ + -, starting with a letter or digit (no '..', no trailing '.' or '.lock')")
        }
        return ModelVersionReference(model: reference.name, version: version)
    }

    /// Throws a clear error unless `name` is a valid dataset name.
    public static func validateDatasetName(_ name: String) throws {
        try validateName(name, of: "dataset")
    }

    /// Throws a clear error unless `name` is a valid node name (the same form as a dataset's).
    public static func validateNodeName(_ name: String) throws {
        try validateName(name, of: "node")
    }

    static func validateName(_ name: String, of kind: String) throws {
        guard isValidName(name) else {
            throw ProvenanceError.invalid("invalid \(kind) name '\(name)': use 1-64 characters a-z 0-9 . _ -, starting with a letter or digit")
        }
    }

    private static func isLowerAlnum(_ b: UInt8) -> Bool { (b >= 48 && b <= 57) || (b >= 97 && b <= 122) }
    private static func isAlnum(_ b: UInt8) -> Bool { isLowerAlnum(b) || (b >= 65 && b <= 90) }
}

/// A reference `NAME@REV`, or `NAME` alone (REV defaults to the head).
public struct RevisionReference: Sendable, Equatable, CustomStringConvertible {
    public var name: String
    public var revision: String?

    /// Splits at the first `@`; names never contain one.
    public init(parsing text: String) {
        if let at = text.firstIndex(of: "@") {
            name = String(text[..<at])
            let rev = String(text[text.index(after: at)...])
            revision = rev.isEmpty ? nil : rev
        } else {
            name = text
            revision = nil
        }
    }

    public var description: String { revision.map { "\(name)@\($0)" } ?? name }
}

/// A contributor's git identity, `Name <email>`.
public struct Identity: Sendable, Hashable, CustomStringConvertible {
    public var name: String
    public var email: String

    public init(name: String, email: String) {
        self.name = name
        self.email = email
    }

    /// Parses `Name <email>`, refusing anything git would not record faithfully.
    public init(parsing text: String) throws {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let example = "expected \"Name <email>\", e.g. \"Ada Lovelace <ada@example.org>\""
        guard trimmed.hasSuffix(">"), let open = trimmed.lastIndex(of: "<") else {
            throw ProvenanceError.invalid("malformed identity '\(text)': \(example)")
        }
        let name = trimmed[..<open].trimmingCharacters(in: .whitespaces)
        let email = String(trimmed[trimmed.index(after: open)..<trimmed.index(before: trimmed.endIndex)])
        let forbidden: (Character) -> Bool = { $0 == "<" || $0 == ">" || $0 == "\n" || $0 == "\r" || $0 == "\0" }
        guard !name.isEmpty, !name.contains(where: forbidden) else {
            throw ProvenanceError.invalid("malformed identity '\(text)': the name is empty or contains <, > or a newline; \(example)")
        }
        let parts = email.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty,
              !email.contains(where: { forbidden($0) || $0.isWhitespace })
        else {
            throw ProvenanceError.invalid("malformed identity '\(text)': '\(email)' is not an email address; \(example)")
        }
        self.name = name
        self.email = email
    }

    /// The contributor id: the email, lowercased (after mailmap, when it came from a commit).
    public var id: String { email.lowercased() }

    public var description: String { "\(name) <\(email)>" }
}

/// A model version, `MODEL@VERSION`.
public struct ModelVersionReference: Sendable, Hashable, Codable, CustomStringConvertible {
    public var model: String
    public var version: String

    public init(model: String, version: String) {
        self.model = model
        self.version = version
    }

    public var description: String { "\(model)@\(version)" }
}
