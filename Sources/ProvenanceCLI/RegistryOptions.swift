import ArgumentParser
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import ProvenanceCore

/// `--registry URL` (or `$PROVENANCE_REGISTRY`) with the bearer token (`$PROVENANCE_TOKEN`,
/// or `--token-file FILE`): run the command against a registry instead of a local store.
struct RegistryOptions: ParsableArguments {
    @Option(name: .customLong("registry"), help: ArgumentHelp("Run against this registry (default: $PROVENANCE_REGISTRY) instead of a local store.", valueName: "URL"))
    var registryURL: String?

    @Option(name: .customLong("token-file"), help: ArgumentHelp("Read the registry's bearer token from this file (default: $PROVENANCE_TOKEN).", valueName: "FILE"))
    var tokenFile: String?

    /// The registry this invocation names, if any.
    var url: String? {
        if let registryURL { return registryURL }
        let environment = ProcessInfo.processInfo.environment["PROVENANCE_REGISTRY"]
        return environment?.isEmpty == false ? environment : nil
    }

    /// The bearer token, from `--token-file` or `$PROVENANCE_TOKEN`; nil when neither is given.
    func token() throws -> String? {
        if let tokenFile {
            guard let text = try? String(contentsOfFile: tokenFile, encoding: .utf8) else {
                throw ValidationError("cannot read the token file '\(tokenFile)'")
            }
            let token = text.trimmingCharacters(in: .whitespacesAndNewlines)
            guard !token.isEmpty, !token.contains(where: \.isWhitespace) else {
                throw ValidationError("the token file '\(tokenFile)' does not hold one token (prov_…)")
            }
            return token
        }
        let environment = ProcessInfo.processInfo.environment["PROVENANCE_TOKEN"]?.trimmingCharacters(in: .whitespacesAndNewlines)
        return environment?.isEmpty == false ? environment : nil
    }

    /// The client for the registry, or nil to work on the store; refuses both at once. An
    /// explicit --store DIR wins over $PROVENANCE_REGISTRY, as an option wins over the environment.
    func client(_ storeOptions: StoreOptions) throws -> RegistryClient? {
        if storeOptions.store != nil, registryURL == nil, tokenFile == nil { return nil }
        guard let client = try client() else { return nil }
        guard storeOptions.store == nil else { throw ValidationError("give either --store DIR or --registry URL, not both") }
        return client
    }

    /// The client for the registry this invocation names, or nil to work on the local store.
    func client() throws -> RegistryClient? {
        guard let url else {
            guard tokenFile == nil else { throw ValidationError("--token-file needs --registry URL (or $PROVENANCE_REGISTRY)") }
            return nil
        }
        var client = try RegistryClient(url)
        client.token = try token()
        return client
    }
}

extension RegistryClient {
    /// `value` percent-encoded for a query string (`+`, `&`, `=`, `,` and `:` included).
    static func queryValue(_ value: String) throws -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        guard let encoded = value.addingPercentEncoding(withAllowedCharacters: allowed) else {
            throw ValidationError("'\(value)' cannot be sent to a registry")
        }
        return encoded
    }

    /// PUTs the file at `file` as the body of `path`, streamed from disk.
    func upload(_ path: String, file: URL) async throws -> (status: Int, body: Data) {
        var request = authorized(path)
        request.httpMethod = "PUT"
        request.setValue("application/octet-stream", forHTTPHeaderField: "Content-Type")
        request.timeoutInterval = 3600
        do {
            let (data, response) = try await URLSession.shared.upload(for: request, fromFile: file)
            return ((response as? HTTPURLResponse)?.statusCode ?? 0, data)
        } catch {
            throw AuditError("cannot upload \(file.path) to the registry at \(base): \(error.localizedDescription)")
        }
    }

    /// The answer's body when `status` is one of `expected`; otherwise the registry's one-line error.
    static func expect(_ answer: (status: Int, body: Data), _ expected: Set<Int>, _ what: String) throws -> Data {
        guard expected.contains(answer.status) else {
            let message = (try? JSONSerialization.jsonObject(with: answer.body) as? [String: Any])
                .flatMap { ($0["error"] as? [String: Any])?["message"] as? String }
                ?? String(decoding: answer.body.prefix(200), as: UTF8.self)
            throw AuditError("the registry refused \(what) (\(answer.status)): \(message)")
        }
        return answer.body
    }
}
