public import Foundation
public import ProvenanceCore
import GitKit

/// Runs an external attribution plugin: an executable `provenance-attribution-<name>` that
/// reads one JSON request on stdin and writes one JSON response on stdout, with its logs on
/// stderr (passed through) and its exit status as the verdict, within a time limit.
///
/// The protocol is `provenance-attribution/2`, documented in `Plugins/README.md`: as version 1,
/// and a plugin may answer `"per_call": true`, after which every call settled under it is sent
/// to it (with its output text) and its answer weighs that call alone.
public struct ExternalPlugin: Sendable {
    public static let protocolVersion = "provenance-attribution/2"
    /// Responses may still name the first version, which had no `per_call`.
    public static let acceptedVersions: Set<String> = ["provenance-attribution/1", protocolVersion]
    public static let executablePrefix = "provenance-attribution-"

    public var name: String
    public var executable: URL
    /// Seconds the plugin may take before it is stopped.
    public var timeout: Double

    public init(name: String, executable: URL, timeout: Double) {
        self.name = name
        self.executable = executable
        self.timeout = timeout
    }

    /// Looks for `provenance-attribution-<name>` in the store's `plugins/` folder, then on `PATH`.
    public static func find(named name: String, storePlugins: URL, path: String?) -> URL? {
        candidates(storePlugins: storePlugins, path: path).first { $0.name == name }?.url
    }

    /// Every external plugin found, store first; a name found twice is the first one's.
    public static func candidates(storePlugins: URL, path: String?) -> [(name: String, url: URL)] {
        var folders = [storePlugins]
        for entry in (path ?? "").split(separator: ":") where !entry.isEmpty {
            folders.append(URL(fileURLWithPath: String(entry), isDirectory: true))
        }
        var seen = Set<String>()
        var found: [(String, URL)] = []
        for folder in folders {
            let entries = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
            for entry in entries.sorted() where entry.hasPrefix(executablePrefix) {
                let name = String(entry.dropFirst(executablePrefix.count))
                let url = folder.appendingPathComponent(entry)
                guard !name.isEmpty, FileManager.default.isExecutableFile(atPath: url.path), seen.insert(name).inserted else { continue }
                found.append((name, url))
            }
        }
        return found
    }

    // MARK: The wire format

    struct Request: Encodable {
        struct Dataset: Encodable {
            var dataset: String
            var commit: String
            var manifestSHA256: String
            var repository: String
            var contributors: [Contributor]
            enum CodingKeys: String, CodingKey {
                case dataset, commit, repository, contributors
                case manifestSHA256 = "manifest_sha256"
            }
        }
        struct Contributor: Encodable { var id: String; var name: String; var email: String; var commits: Int }
        struct TrainingLog: Encodable { var path: String; var sha256: String; var size: UInt64; var file: String }

        var `protocol`: String
        var plugin: String
        var model: String
        var version: String
        var modelCommit: String
        var modelRepository: String
        var datasets: [Dataset]
        var trainingLogs: [TrainingLog]
        var options: [String: String]
        var call: AttributionInput.Call?

        enum CodingKeys: String, CodingKey {
            case `protocol`, plugin, model, version, datasets, options, call
            case modelCommit = "model_commit"
            case modelRepository = "model_repository"
            case trainingLogs = "training_logs"
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(`protocol`, forKey: .protocol)
            try container.encode(plugin, forKey: .plugin)
            try container.encode(model, forKey: .model)
            try container.encode(version, forKey: .version)
            try container.encode(modelCommit, forKey: .modelCommit)
            try container.encode(modelRepository, forKey: .modelRepository)
            try container.encode(datasets, forKey: .datasets)
            try container.encode(trainingLogs, forKey: .trainingLogs)
            try container.encode(options, forKey: .options)
            if let call { try container.encode(call, forKey: .call) } else { try container.encodeNil(forKey: .call) }
        }
    }

    // MARK: Running

    /// Runs the plugin on `input`; every failure is an `AttributionError` naming the plugin.
    public func weights(for input: AttributionInput) throws -> [ContributorWeight] {
        // Training logs are handed over as plain files, so plugins in any language can read them.
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("provenance-plugin-\(UUID().uuidString.lowercased())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        var logs: [Request.TrainingLog] = []
        if !input.trainingLogs.isEmpty {
            let repository = try Repository.open(at: input.modelRepository)
            for (index, log) in input.trainingLogs.enumerated() {
                guard let blob = ObjectID(hex: log.blob) else { continue }
                let file = folder.appendingPathComponent("\(index)-\((log.path as NSString).lastPathComponent)")
                try repository.readBlob(blob).write(to: file)
                logs.append(.init(path: log.path, sha256: log.sha256, size: log.size, file: file.path))
            }
        }
        let request = Request(
            protocol: Self.protocolVersion, plugin: name, model: input.model, version: input.version,
            modelCommit: input.modelCommit, modelRepository: input.modelRepository.path,
            datasets: input.datasets.map { dataset in
                .init(dataset: dataset.dataset, commit: dataset.commit, manifestSHA256: dataset.manifestSHA256,
                      repository: dataset.repository.path,
                      contributors: dataset.contributors.map { .init(id: $0.id, name: $0.name, email: $0.email, commits: $0.commits) })
            },
            trainingLogs: logs, options: input.options, call: input.call)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let body = try encoder.encode(request)
        let output = try run(body)
        return try parse(output)
    }

    func fail(_ message: String) -> AttributionError { AttributionError(plugin: name, message: message) }

    /// Runs the executable with `body` on stdin; returns stdout. Stderr goes to our stderr.
    ///
    /// The plugin runs in a process group of its own, so that when it overruns its time limit
    /// (or exits leaving children behind) the whole group is killed and nothing it started
    /// keeps our output streams open.
    func run(_ body: Data) throws -> Data {
        let process: ChildProcess
        do { process = try ChildProcess.spawn(executable.path) } catch {
            throw fail("cannot start \(executable.path): \(error)")
        }
        defer { process.killGroup() }
        let output = OutputBuffer()
        let readDone = DispatchSemaphore(value: 0)
        let stdout = process.stdout
        DispatchQueue.global().async {
            output.data = ChildProcess.readAll(stdout)
            readDone.signal()
        }
        let stdin = process.stdin
        DispatchQueue.global().async {
            ChildProcess.writeAll(body, to: stdin)
        }
        guard let status = process.wait(timeout: timeout) else {
            process.killGroup()
            _ = process.wait(timeout: 5)
            throw fail("did not answer within \(Self.seconds(timeout)) and was stopped (raise --plugin-timeout if it needs longer)")
        }
        process.killGroup()
        guard readDone.wait(timeout: .now() + 5) == .success else {
            throw fail("exited but left its standard output open (a process outside its group still holds it)")
        }
        switch status {
        case .signalled(let signal): throw fail("crashed (signal \(signal)); its log is above")
        case .exited(let code) where code != 0: throw fail("failed with exit status \(code); its log is above")
        case .exited: return output.data
        }
    }

    func parse(_ output: Data) throws -> [ContributorWeight] {
        guard let object = try? JSONSerialization.jsonObject(with: output) as? [String: Any] else {
            let text = String(decoding: output.prefix(80), as: UTF8.self).replacingOccurrences(of: "\n", with: " ")
            throw fail(output.isEmpty ? "printed nothing; it must print one JSON response on stdout"
                                      : "printed something that is not a JSON object: \"\(text)\"")
        }
        if let version = object["protocol"] as? String, !Self.acceptedVersions.contains(version) {
            throw fail("speaks protocol \(version), this host speaks \(Self.protocolVersion) (and reads answers of version 1)")
        }
        if let perCall = object["per_call"] {
            guard let flag = perCall as? Bool else { throw fail("its \"per_call\" must be true or false") }
            PerCallDeclarations.shared.set(flag, for: executable.path)
        }
        guard object["weights"] is [Any] else {
            throw fail("its response has no \"weights\" array")
        }
        // Typed decoding refuses strings and booleans where a number belongs.
        struct Response: Decodable {
            struct Entry: Decodable {
                var contributor: String?
                var weight: Double?
                init(from decoder: any Decoder) throws {
                    let container = try? decoder.container(keyedBy: CodingKeys.self)
                    contributor = try? container?.decode(String.self, forKey: .contributor)
                    weight = try? container?.decode(Double.self, forKey: .weight)
                }
                enum CodingKeys: String, CodingKey { case contributor, weight }
            }
            var weights: [Entry]
        }
        let response: Response
        do { response = try JSONDecoder().decode(Response.self, from: output) } catch {
            throw fail("its response cannot be read: \(error)")
        }
        return try response.weights.enumerated().map { index, entry in
            guard let contributor = entry.contributor, let weight = entry.weight else {
                throw fail("weights[\(index)] must be {\"contributor\": ID, \"weight\": NUMBER}")
            }
            return ContributorWeight(contributor: contributor, weight: weight)
        }
    }

    /// Whether the plugin said (in its last answer in this process) that each call needs its own answer.
    public var declaresPerCall: Bool { PerCallDeclarations.shared.get(executable.path) }

    static func seconds(_ value: Double) -> String {
        value == value.rounded() ? "\(Int(value)) s" : "\(value) s"
    }
}

final class OutputBuffer: @unchecked Sendable {
    private let lock = NSLock()
    private var _data = Data()
    var data: Data {
        get { lock.lock(); defer { lock.unlock() }; return _data }
        set { lock.lock(); _data = newValue; lock.unlock() }
    }
}

/// What external plugins said about `per_call`, by executable, for the life of the process.
final class PerCallDeclarations: @unchecked Sendable {
    static let shared = PerCallDeclarations()
    private let lock = NSLock()
    private var flags: [String: Bool] = [:]

    func set(_ flag: Bool, for path: String) {
        lock.lock()
        flags[path] = flag
        lock.unlock()
    }

    func get(_ path: String) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        return flags[path] ?? false
    }
}
