import Foundation

/// The regular expressions of `Registry/openapi.yaml`, checked here exactly as written there
/// (a test compares the two), so that a value the contract accepts never earns a 400 and a
/// value it refuses always does. Whatever passes its pattern and is still refused by the
/// domain is a 422.
///
/// The patterns use only what ECMA-262, Python's `re` and ICU read alike: explicit classes,
/// `\xHH`/`\uHHHH` escapes, `(?!…)` lookaheads over ASCII classes. A check follows Python's
/// `re.search`, which JSON Schema validators use: `^…$` may match before one final `\n`.
enum Pattern {
    /// Dataset, model and node names (DESIGN.md §3).
    static let name = #"^[a-z0-9][a-z0-9._-]{0,63}$"#
    /// Model versions: also git tag names (no `..`, no trailing `.` or `.lock`).
    static let version = #"^(?!.*\.\.)(?!.*\.$)(?!.*\.lock$)[0-9A-Za-z][0-9A-Za-z._+-]{0,63}$"#
    /// Account ids: contributor and developer ids, `node:NAME`, `platform`, callers.
    static let account = #"^[a-z0-9@._+:-]{1,128}$"#
    /// A token amount: at most 20 whole digits and 18 decimals.
    static let amount = #"^[0-9]{1,20}(\.[0-9]{1,18})?$"#
    /// A commit id, branch or tag: no revision syntax (`@{…}`, `^`, `~`, `:/…`) reaches git.
    static let revision = #"^(?!-)(?!.*\.\.)(?!.*//)[A-Za-z0-9._/+-]{1,255}$"#
    /// `DATASET` or `DATASET@REV`.
    static let datasetReference = #"^[a-z0-9][a-z0-9._-]{0,63}(@(?!-)(?!.*\.\.)(?!.*//)[A-Za-z0-9._/+-]{1,255})?$"#
    /// `MODEL@VERSION`.
    static let modelReference = #"^[a-z0-9][a-z0-9._-]{0,63}@(?!.*\.\.)(?!.*\.$)(?!.*\.lock$)[0-9A-Za-z][0-9A-Za-z._+-]{0,63}$"#
    /// `Name <email>` as git records it faithfully: a name that neither starts nor ends with
    /// space or punctuation git trims, an ASCII email whose lowercase is an account id.
    static let identity = #"^[^\x00-\x20\x7f<>.,:;"'\\\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]([^\x00-\x1f\x7f<>]{0,126}[^\x00-\x20\x7f<>.,:;"'\\\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])? <[A-Za-z0-9_+-][A-Za-z0-9._+-]{0,63}@[A-Za-z0-9.-]{0,62}[A-Za-z0-9]>$"#
    /// `NAME` or `NAME:key=value[,key=value…]`.
    static let pluginSpec = #"^[a-z0-9_-]{1,64}(:[^,=]+=[^,]+(,[^,=]+=[^,]+)*)?$"#
    /// An idempotency key: 1-200 visible ASCII characters (it travels in a header too).
    static let idempotencyKey = #"^[\x21-\x7e]{1,200}$"#
    static let sha256Hex = #"^[0-9a-f]{64}$"#
    /// 32 bytes in canonical base64: an Ed25519 public key, a SHA-256 hash.
    static let base64Bytes32 = #"^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$"#
    /// 64 bytes in canonical base64: an Ed25519 signature.
    static let base64Bytes64 = #"^[A-Za-z0-9+/]{85}[AQgw]==$"#
    /// A training log's file name.
    static let fileName = #"^(?!\.\.?$)[A-Za-z0-9._+-]{1,128}$"#
    /// The paths of git's dumb HTTP protocol (`/git/...`): a repository `NAME.git`, a loose
    /// object's two hex digits and the other 38, a pack or its index. What breaks them is 404.
    static let gitRepository = #"^[a-z0-9][a-z0-9._-]{0,63}\.git$"#
    static let gitObjectPrefix = #"^[0-9a-f]{2}$"#
    static let gitObjectSuffix = #"^[0-9a-f]{38}$"#
    static let gitPackFile = #"^pack-[0-9a-f]{40}\.(pack|idx)$"#

    private static let compiled: [String: NSRegularExpression] = {
        var table: [String: NSRegularExpression] = [:]
        for pattern in all.values { table[pattern] = try! NSRegularExpression(pattern: pattern) }
        return table
    }()

    /// Every pattern by the name `openapi.yaml` gives it under `components/schemas`.
    static let all: [String: String] = [
        "Name": name, "Version": version, "Account": account, "Amount": amount, "Revision": revision,
        "DatasetReference": datasetReference, "ModelReference": modelReference, "Identity": identity,
        "PluginSpec": pluginSpec, "IdempotencyKey": idempotencyKey, "SHA256Hex": sha256Hex,
        "Base64Bytes32": base64Bytes32, "Base64Bytes64": base64Bytes64, "FileName": fileName,
        "GitRepository": gitRepository, "GitObjectPrefix": gitObjectPrefix, "GitObjectSuffix": gitObjectSuffix, "GitPackFile": gitPackFile,
    ]

    enum Verdict { case matches, matchesBeforeFinalNewline, fails }

    /// The patterns that are one character class with a length range, read byte by byte.
    /// NSRegularExpression costs tens of microseconds a match on Linux, and a call carries a
    /// dozen checked fields; a value these accept the regular expression accepts too, and
    /// anything else (including a final newline) still goes to the regular expression.
    private static let accountClass = (allowed: byteSet([97...122, 48...57], "@._+:-"), lengths: 1...128)
    private static let idempotencyKeyClass = (allowed: byteSet([0x21...0x7e]), lengths: 1...200)
    private static let sha256HexClass = (allowed: byteSet([48...57, 97...102]), lengths: 64...64)

    private static func byteSet(_ ranges: [ClosedRange<UInt8>], _ singles: String = "") -> [Bool] {
        var allowed = [Bool](repeating: false, count: 256)
        for range in ranges { for byte in range { allowed[Int(byte)] = true } }
        for byte in singles.utf8 { allowed[Int(byte)] = true }
        return allowed
    }

    /// Each byte's value in the base64 alphabet, 255 for a byte outside it: the digit check here
    /// and the proof decoder (`CallSignaturePayload.decodeHash`) read the same table.
    static let base64Value: [UInt8] = {
        var table = [UInt8](repeating: 255, count: 256)
        for (value, character) in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8.enumerated() {
            table[Int(character)] = UInt8(value)
        }
        return table
    }()

    /// True only when `pattern` matches `text` (false: ask the regular expression).
    static func fastMatch(_ pattern: String, _ text: String) -> Bool {
        // Read in place: copying each value into an array, and finding its class by hashing the
        // pattern, cost more than the match for a call's fifteen checked fields.
        var text = text
        return text.withUTF8 { fastMatch(pattern, $0) }
    }

    private static func fastMatch(_ pattern: String, _ utf8: UnsafeBufferPointer<UInt8>) -> Bool {
        func inClass(_ table: (allowed: [Bool], lengths: ClosedRange<Int>)) -> Bool {
            table.lengths.contains(utf8.count) && utf8.allSatisfy { table.allowed[Int($0)] }
        }
        if pattern == account { return inClass(accountClass) }
        if pattern == idempotencyKey { return inClass(idempotencyKeyClass) }
        if pattern == sha256Hex { return inClass(sha256HexClass) }
        if pattern == version {
            // 1-64 of A-Z a-z 0-9 . _ + -, starting with a letter or digit; no "..", no final "." or ".lock".
            guard (1...64).contains(utf8.count), utf8.last != UInt8(ascii: "."),
                  !(utf8.count >= 5 && utf8[(utf8.count - 5)...].elementsEqual(".lock".utf8)) else { return false }
            for (index, byte) in utf8.enumerated() {
                let alphanumeric = (byte >= 97 && byte <= 122) || (byte >= 65 && byte <= 90) || (byte >= 48 && byte <= 57)
                if alphanumeric { continue }
                guard index > 0, byte == 46 || byte == 95 || byte == 43 || byte == 45 else { return false }
                if byte == 46, utf8[index - 1] == 46 { return false }
            }
            return true
        }
        if pattern == base64Bytes32 || pattern == base64Bytes64 {
            // 42 (or 85) base64 digits, a last digit whose unused bits are zero, and padding.
            let (digits, last, padding) = pattern == base64Bytes32 ? (42, "AEIMQUYcgkosw048", 1) : (85, "AQgw", 2)
            guard utf8.count == digits + 1 + padding else { return false }
            // The table read once: read inside the loop, each byte went through its lazy global's accessor.
            let value = base64Value
            return utf8[0..<digits].allSatisfy { value[Int($0)] < 64 } && last.utf8.contains(utf8[digits])
                && utf8[(digits + 1)...].allSatisfy { $0 == UInt8(ascii: "=") }
        }
        if pattern == name {
            return (1...64).contains(utf8.count) && utf8.enumerated().allSatisfy { index, byte in
                (byte >= 97 && byte <= 122) || (byte >= 48 && byte <= 57) || (index > 0 && (byte == 46 || byte == 95 || byte == 45))
            }
        }
        return false
    }

    static func verdict(_ pattern: String, _ text: String) -> Verdict {
        fastMatch(pattern, text) ? .matches : regexVerdict(pattern, text)
    }

    /// The verdict of the regular expression alone.
    static func regexVerdict(_ pattern: String, _ text: String) -> Verdict {
        let regex = compiled[pattern] ?? (try! NSRegularExpression(pattern: pattern))
        func whole(_ candidate: String) -> Bool {
            let range = NSRange(candidate.startIndex..., in: candidate)
            guard let match = regex.firstMatch(in: candidate, options: [.anchored], range: range) else { return false }
            return match.range == range
        }
        if whole(text) { return .matches }
        var scalars = text.unicodeScalars
        guard scalars.last == "\n" else { return .fails }
        scalars.removeLast()
        return whole(String(scalars)) ? .matchesBeforeFinalNewline : .fails
    }

    /// Throws 400 unless `text` matches `pattern`. A value that matches only because `$` may
    /// match before a final newline is valid by the contract, but no name, key or amount ends
    /// with a newline: that is refused as a 422.
    static func check(_ text: String, _ pattern: String, _ what: String, _ hint: String) throws {
        switch verdict(pattern, text) {
        case .matches: return
        case .matchesBeforeFinalNewline:
            throw RegistryError.refused("\(what) ends with a newline: \(hint)")
        case .fails:
            throw RegistryError.invalid("\(what) '\(text.prefix(300))' is malformed: \(hint)")
        }
    }
}

extension Pattern {
    static func checkName(_ text: String, _ what: String) throws {
        try check(text, name, what, "use 1-64 characters a-z 0-9 . _ -, starting with a letter or digit")
    }
    static func checkVersion(_ text: String, _ what: String) throws {
        try check(text, version, what, "use 1-64 characters A-Z a-z 0-9 . _ + -, starting with a letter or digit (no '..', no trailing '.' or '.lock')")
    }
    static func checkAccount(_ text: String, _ what: String) throws {
        try check(text, account, what, "use 1-128 characters a-z 0-9 @ . _ + : -")
    }
    static func checkAmount(_ text: String, _ what: String) throws {
        try check(text, amount, what, "give a token amount like 12.5 (at most 20 digits and 18 decimals)")
    }
    static func checkRevision(_ text: String, _ what: String) throws {
        try check(text, revision, what, "give a commit id, branch or tag (1-255 characters A-Z a-z 0-9 . _ / + -)")
    }
}
