import Crypto
import Foundation
import ProvenanceCore

/// What one audit saw and remembers for the next: the pinned checkpoint key and the last
/// checkpoint it verified, with the leaf hashes up to it (so a later rewrite can be named).
struct AuditState: Codable {
    static let format = "provenance-audit/1"
    var format: String = Self.format
    var registry: String
    var verifierKey: String
    var size: Int
    /// Base64 of the root hash at `size`.
    var rootHash: String
    /// The signed note of that checkpoint: evidence, if the registry later signs another history.
    var note: String
    /// Base64 of the `size` leaf hashes, 32 bytes each, in ledger order.
    var leafHashes: String
    var auditedAt: String

    enum CodingKeys: String, CodingKey {
        case format, registry, size, note
        case verifierKey = "verifier_key"
        case rootHash = "root_hash"
        case leafHashes = "leaf_hashes"
        case auditedAt = "audited_at"
    }

    static func load(_ url: URL) throws -> AuditState? {
        guard FileManager.default.fileExists(atPath: url.path) else { return nil }
        let state: AuditState
        do { state = try JSONDecoder().decode(AuditState.self, from: Data(contentsOf: url)) } catch {
            throw AuditError("the audit state \(url.path) cannot be read: move it away to start over (\(error))")
        }
        guard state.format == format, let leaves = Data(base64Encoded: state.leafHashes), leaves.count == 32 * state.size,
              Data(base64Encoded: state.rootHash)?.count == 32 else {
            throw AuditError("the audit state \(url.path) is not a \(format) state: move it away to start over")
        }
        return state
    }

    /// Written whole to a temporary file, then renamed: an interrupted audit leaves the old state.
    func save(_ url: URL) throws {
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        let temporary = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).\(UUID().uuidString)")
        try encoder.encode(self).write(to: temporary)
        guard rename(temporary.path, url.path) == 0 else {
            try? FileManager.default.removeItem(at: temporary)
            throw AuditError("cannot write the audit state \(url.path): \(String(cString: strerror(errno)))")
        }
    }

    var leaves: [Data] {
        let bytes = Data(base64Encoded: leafHashes) ?? Data()
        return stride(from: 0, to: bytes.count, by: 32).map { bytes.subdata(in: $0..<($0 + 32)) }
    }
}

/// What an audit checked.
struct AuditSummary: Encodable {
    var registry: String
    var verifierKey: String
    var pinned: Bool
    var previousSize: Int
    var size: Int
    var rootHash: String
    var invoicesChecked: Int
    var levelsCheckedInGit: Int
    var repositoriesCloned: Int
    /// The witnesses (of those required) whose cosignatures on the checkpoint verified.
    var cosignedBy: [String] = []

    enum CodingKeys: String, CodingKey {
        case registry, pinned, size
        case cosignedBy = "cosigned_by"
        case verifierKey = "verifier_key"
        case previousSize = "previous_size"
        case rootHash = "root_hash"
        case invoicesChecked = "invoices_checked"
        case levelsCheckedInGit = "levels_checked_in_git"
        case repositoriesCloned = "repositories_cloned"
    }
}

/// A monitor that trusts nothing the registry says: every answer is checked against the
/// pinned checkpoint key, the last checkpoint it verified, RFC 9162 proofs, the invoices' own
/// recorded inputs and, with `git`, the repositories themselves.
struct Auditor {
    let client: RegistryClient
    let stateURL: URL
    /// `--key`: the verifier key to require (else the pinned one, else pin on first use).
    let key: String?
    let git: Bool
    /// `--witness`: with them, only a checkpoint cosigned by `quorum` of them is accepted.
    var witnesses: [CosignatureVerifier] = []
    var quorum = 0

    struct Checkpoint: Decodable {
        var note: String
        var verifierKey: String
        enum CodingKeys: String, CodingKey {
            case note
            case verifierKey = "verifier_key"
        }
    }

    func run() async throws -> AuditSummary {
        let state = try AuditState.load(stateURL)
        if let key, let state, key != state.verifierKey {
            throw AuditError("--key \(key.prefix(80)) differs from the key pinned in \(stateURL.path) (\(state.verifierKey)): the registry's key does not change; move the state away only if you trust the new key")
        }
        if let key { _ = try verifier(key, what: "--key") }

        let path = witnesses.isEmpty ? "/v1/ledger/checkpoint" : "/v1/ledger/cosigned-checkpoint"
        let (status, body) = try await client.get(path)
        if status == 404, !witnesses.isEmpty {
            throw AuditError("quorum not met: the registry serves no checkpoint cosigned by its witnesses")
        }
        if status == 404 {
            if let state, state.size > 0 {
                throw AuditError("truncated: the registry serves no checkpoint, but the last audit verified one of \(state.size) invoices")
            }
            return AuditSummary(registry: client.base, verifierKey: key ?? state?.verifierKey ?? "", pinned: false, previousSize: 0, size: 0,
                                rootHash: "", invoicesChecked: 0, levelsCheckedInGit: 0, repositoriesCloned: 0)
        }
        guard status == 200, let served = try? JSONDecoder().decode(Checkpoint.self, from: body) else {
            throw AuditError("the registry answered GET \(path) with \(status): \(String(decoding: body.prefix(200), as: UTF8.self))")
        }
        let pinnedKey = key ?? state?.verifierKey ?? served.verifierKey
        let pinning = key == nil && state == nil
        let verifier = try verifier(pinnedKey, what: pinning ? "the registry's verifier key" : "the pinned key")
        let checkpoint: ProvenanceCore.Checkpoint
        do { checkpoint = try verifier.verify(served.note) } catch {
            throw AuditError("the registry's checkpoint is not signed by \(pinning ? "its own verifier key" : "the pinned key \(pinnedKey)"): \(error)")
        }
        let cosigners = witnesses.filter { $0.cosignedTime(of: served.note) != nil }.map(\.name)
        guard cosigners.count >= quorum else {
            throw AuditError("quorum not met: checkpoint \(checkpoint.size) carries \(cosigners.count) valid cosignature(s) of the \(quorum) required from the given witnesses\(cosigners.isEmpty ? "" : " (\(cosigners.joined(separator: ", ")))")")
        }
        let previousSize = state?.size ?? 0
        let previousRoot = state.flatMap { Data(base64Encoded: $0.rootHash) } ?? MerkleTree.emptyRoot
        var leaves = state?.leaves ?? []

        // The new checkpoint must extend the last one verified.
        if checkpoint.size < previousSize {
            throw AuditError("truncated: the registry's signed checkpoint holds \(checkpoint.size) invoices, but the last audit verified \(previousSize) (root \(state?.rootHash ?? ""))")
        }
        if checkpoint.size == previousSize, checkpoint.rootHash != previousRoot {
            guard let state else { throw AuditError("the registry signed a checkpoint of 0 invoices whose root is not the empty tree's") }
            throw try await divergence(checkpoint, seen: leaves, state: state)
        }
        if checkpoint.size > previousSize, previousSize > 0, let state {
            let proof = try await client.json("/v1/ledger/consistency-proof?old_size=\(previousSize)&new_size=\(checkpoint.size)", as: ConsistencyProofInfo.self)
            guard let hashes = Self.hashes(proof.proof),
                  MerkleTree.verifyConsistency(oldSize: previousSize, newSize: checkpoint.size, oldRoot: previousRoot,
                                               newRoot: checkpoint.rootHash, proof: hashes) else {
                throw try await divergence(checkpoint, seen: leaves, state: state)
            }
        }

        // Every invoice added since: its bytes, its inclusion proof, and everything it claims.
        var terms: [String: SettlementTerms] = [:]
        var nodeKeys: [String: Curve25519.Signing.PublicKey?] = [:]
        var levels: [String: InvoiceLevel] = [:]
        var withSpans: [(index: Int, invoice: Invoice)] = []
        for index in previousSize..<checkpoint.size {
            let name = "invoice \(index)"
            let bytes = try await client.must("/v1/invoices/\(index)/canonical")
            let leaf = MerkleTree.leafHash(bytes)
            let proof = try await client.json("/v1/ledger/inclusion-proof?index=\(index)&size=\(checkpoint.size)", as: InclusionProofInfo.self)
            guard let path = Self.hashes(proof.proof),
                  MerkleTree.verifyInclusion(leafHash: leaf, index: index, size: checkpoint.size, proof: path, root: checkpoint.rootHash) else {
                throw AuditError("\(name): its bytes are not in the signed checkpoint of \(checkpoint.size) invoices (the inclusion proof does not verify)")
            }
            // What the invoice refers to, fetched before it is read: its terms block and its node's key.
            let document = (try? JSONSerialization.jsonObject(with: bytes)) as? [String: Any]
            if let sha = (document?["traceability"] as? [String: Any])?["terms_sha256"] as? String, terms[sha] == nil {
                guard sha.utf8.count == 64, sha.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }) else {
                    throw AuditError("\(name): its terms_sha256 '\(sha.prefix(80))' is not a SHA-256")
                }
                let block = try await client.must("/v1/terms/\(sha)")
                guard SHA256Digest.hex(of: block) == sha else {
                    throw AuditError("\(name): the terms block the registry serves as \(sha.prefix(12))… hashes to something else")
                }
                do { terms[sha] = try SettlementTerms(canonicalBytes: block) } catch {
                    throw AuditError("\(name): its terms block \(sha.prefix(12))… cannot be read (\(error))")
                }
            }
            if let node = ((document?["call"] as? [String: Any])?["record"] as? [String: Any])?["node"] as? String, nodeKeys[node] == nil {
                nodeKeys[node] = try await nodeKey(node)
            }
            let invoice: Invoice
            switch Invoice.rederive(bytes: bytes, index: index, terms: { terms[$0] }, nodeKey: { invoice in
                guard let registered = nodeKeys[invoice.record.node] ?? nil,
                      registered.rawRepresentation.base64EncodedString() == invoice.nodeKey else { return nil }
                return registered
            }) {
            case .success(let value): invoice = value
            case .failure(let problem): throw AuditError("\(name): \(problem)")
            }
            for level in invoice.levels { levels["\(level.model)@\(level.version) \(level.modelCommit)"] = level }
            if invoice.callAttribution.contains(where: { !$0.spans.isEmpty }) { withSpans.append((index, invoice)) }
            leaves.append(leaf)
        }

        // The lineage, against git alone.
        var cloned = 0
        if git, !levels.isEmpty {
            cloned = try checkInGit(Array(levels.values), spans: withSpans)
        }

        try AuditState(registry: client.base, verifierKey: pinnedKey, size: checkpoint.size, rootHash: checkpoint.rootHash.base64EncodedString(),
                       note: served.note, leafHashes: leaves.reduce(Data(), +).base64EncodedString(),
                       auditedAt: ISO8601DateFormatter().string(from: Date())).save(stateURL)
        return AuditSummary(registry: client.base, verifierKey: pinnedKey, pinned: pinning, previousSize: previousSize, size: checkpoint.size,
                            rootHash: checkpoint.rootHash.base64EncodedString(), invoicesChecked: checkpoint.size - previousSize,
                            levelsCheckedInGit: git ? levels.count : 0, repositoriesCloned: cloned, cosignedBy: cosigners)
    }

    func verifier(_ key: String, what: String) throws -> NoteVerifier {
        do { return try NoteVerifier(verifierKey: key) } catch {
            throw AuditError("\(what) '\(key.prefix(80))' is not a signed-note verifier key (NAME+HEXID+BASE64): \(error)")
        }
    }

    /// The node's registered public key; nil when the registry does not know it (or serves junk).
    func nodeKey(_ node: String) async throws -> Curve25519.Signing.PublicKey? {
        guard Names.isValidName(node) else { return nil }
        struct Node: Decodable { var public_key: String }
        let (status, body) = try await client.get("/v1/nodes/\(node)")
        guard status == 200, let answer = try? JSONDecoder().decode(Node.self, from: body),
              let raw = Data(base64Encoded: answer.public_key) else { return nil }
        return try? Curve25519.Signing.PublicKey(rawRepresentation: raw)
    }

    static func hashes(_ base64: [String]) -> [Data]? {
        let decoded = base64.compactMap { Data(base64Encoded: $0) }
        guard decoded.count == base64.count, decoded.allSatisfy({ $0.count == 32 }) else { return nil }
        return decoded
    }

    /// Names how the registry's log left the one the last audit verified: a rewrite (an invoice
    /// changed while a later one it saw is unchanged) or a fork (the log differs from some
    /// invoice on, through the last one it saw). Both are proven by two signed checkpoints that
    /// cannot both be true; the leaves only tell which.
    func divergence(_ checkpoint: ProvenanceCore.Checkpoint, seen: [Data], state: AuditState) async throws -> AuditError {
        let evidence = "the registry signed \(checkpoint.size) invoices with root \(checkpoint.rootHash.base64EncodedString()), which does not extend the \(state.size) with root \(state.rootHash) verified on \(state.auditedAt)"
        struct Page: Decodable {
            struct Entry: Decodable { var index: Int; var leaf_hash: String }
            var invoices: [Entry]
        }
        var current: [Int: Data] = [:]
        var offset = 0
        let end = min(seen.count, checkpoint.size)
        while offset < end {
            guard let page = try? await client.json("/v1/invoices?offset=\(offset)&limit=1000", as: Page.self), !page.invoices.isEmpty else { break }
            for entry in page.invoices { current[entry.index] = Data(base64Encoded: entry.leaf_hash) }
            offset += page.invoices.count
        }
        let changed = (0..<end).filter { current[$0] != seen[$0] }
        guard let first = changed.first else { return AuditError("forked: \(evidence), though it serves the same invoices") }
        if changed.count == end - first {
            return AuditError("forked: the log differs from invoice \(first) on from the one the last audit verified; \(evidence)")
        }
        return AuditError("rewritten: invoice \(first) is not the invoice the last audit verified (leaf \(current[first]?.base64EncodedString() ?? "missing"), was \(seen[first].base64EncodedString())) while later ones are unchanged; \(evidence)")
    }

    /// Clones every repository the levels name over the registry's git routes (the stock git
    /// CLI: libgit2 does not speak git's dumb HTTP protocol) and holds each level against them.
    func checkInGit(_ levels: [InvoiceLevel], spans: [(index: Int, invoice: Invoice)]) throws -> Int {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("provenance-audit-\(UUID().uuidString.lowercased())")
        defer { try? FileManager.default.removeItem(at: folder) }
        var clones: [String: URL] = [:]
        func clone(_ kind: String, _ name: String) throws -> URL {
            let key = "\(kind)/\(name)"
            if let known = clones[key] { return known }
            let destination = folder.appendingPathComponent(kind).appendingPathComponent("\(name).git")
            try FileManager.default.createDirectory(at: destination.deletingLastPathComponent(), withIntermediateDirectories: true)
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["git", "clone", "--bare", "--quiet", "\(client.base)/git/\(kind)/\(name).git", destination.path]
            var environment = ProcessInfo.processInfo.environment
            environment["GIT_TERMINAL_PROMPT"] = "0"
            process.environment = environment
            let errors = Pipe()
            process.standardError = errors
            process.standardOutput = FileHandle.nullDevice
            do { try process.run() } catch { throw AuditError("--git needs the git CLI on PATH: \(error.localizedDescription)") }
            let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            guard process.terminationStatus == 0 else {
                let line = message.split(separator: "\n").last.map(String.init) ?? "exit \(process.terminationStatus)"
                throw AuditError("git clone of \(key) from the registry failed: \(line)")
            }
            clones[key] = destination
            return destination
        }
        for level in levels.sorted(by: { ($0.model, $0.version) < ($1.model, $1.version) }) {
            let model = try clone("models", level.model)
            var datasets: [String: URL] = [:]
            for input in level.datasets { datasets[input.dataset] = try clone("datasets", input.dataset) }
            if let problem = level.problemInGit(model: model, dataset: { datasets[$0]! }) {
                throw AuditError("git: \(problem)")
            }
        }
        // Spans cite only the levels' dataset commits (checked on their face), so those clones have them.
        for (index, invoice) in spans {
            var datasets: [String: URL] = [:]
            for span in invoice.callAttribution.flatMap(\.spans) where datasets[span.dataset] == nil {
                datasets[span.dataset] = try clone("datasets", span.dataset)
            }
            let clonesOfDatasets = datasets
            if let problem = invoice.spanProblemInGit(dataset: { clonesOfDatasets[$0]! }) {
                throw AuditError("git: invoice \(index): \(problem)")
            }
        }
        return clones.count
    }
}
