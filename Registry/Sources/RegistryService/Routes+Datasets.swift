import Foundation
import Hummingbird
import ProvenanceCore

extension RegistryAPI {
    func datasetEndpoints() -> [Endpoint] {
        [
            Endpoint(.get, "/v1/datasets") { _, _ in
                let summaries = try await Blocking.run { [store] in try store.datasetSummaries() }
                return JSONResponse.make(ListPayload(key: "datasets", items: summaries))
            },
            Endpoint(.get, "/v1/datasets/{dataset}") { _, context in
                let name = try Self.datasetName(context)
                let summaries = try await Blocking.run { [store] in try store.datasetSummaries() }
                guard let summary = summaries.first(where: { $0.name == name }) else {
                    throw RegistryError.notFound("unknown dataset '\(name)'")
                }
                return JSONResponse.make(summary)
            },
            Endpoint(.get, "/v1/datasets/{dataset}/contributors") { request, context in
                let reference = try Self.revisionReference(context, request)
                let contributors = try await Blocking.run { [store] in try store.contributors(of: reference) }
                struct Answer: Encodable { var dataset: String; var rev: String?; var contributors: [ContributorPayload] }
                return JSONResponse.make(Answer(dataset: reference.name, rev: reference.revision, contributors: contributors.map {
                    ContributorPayload(contributor: $0.identity, id: $0.id, commits: $0.commits)
                }))
            },
            Endpoint(.get, "/v1/datasets/{dataset}/log") { request, context in
                let reference = try Self.revisionReference(context, request)
                let limit = try request.integerQuery("limit", in: 1...Int.max)
                let entries = try await Blocking.run { [store] in try store.log(of: reference, limit: limit) }
                struct Answer: Encodable { var dataset: String; var rev: String?; var entries: [LogEntry] }
                return JSONResponse.make(Answer(dataset: reference.name, rev: reference.revision, entries: entries))
            },
            Endpoint(.post, "/v1/datasets/{dataset}/commits") { request, context in
                let principal = try context.require(.contributor)
                let name = try Self.datasetName(context)
                let body = try await body.decode(ImportCommitRequest.self, from: request)
                if let rev = body.rev { try Pattern.checkRevision(rev, "rev") }
                let force = body.force ?? false
                if force, principal.role != .admin {
                    throw RegistryError.forbidden("only an admin token may force a dataset's head to a commit that does not descend from it")
                }
                try checkRemote(body.source)
                let workingDirectory = URL(fileURLWithPath: FileManager.default.currentDirectoryPath, isDirectory: true)
                let result = try await Blocking.run { [store] in
                    try store.importCommit(dataset: name, source: body.source, revision: body.rev, force: force,
                                           workingDirectory: workingDirectory)
                }
                return JSONResponse.make(result, status: result.changed ? .created : .ok)
            },
        ]
    }

    static func datasetName(_ context: RegistryRequestContext) throws -> String {
        let name = try context.path("dataset")
        try Pattern.checkName(name, "dataset")
        return name
    }

    /// `{dataset}` with the optional `?rev=` query parameter (a commit id, branch or tag: no
    /// revision syntax such as `@{…}`, `^` or `:/…` reaches git from the network).
    static func revisionReference(_ context: RegistryRequestContext, _ request: Request) throws -> RevisionReference {
        let name = try datasetName(context)
        guard let rev = try request.query("rev") else { return RevisionReference(parsing: name) }
        try Pattern.checkRevision(rev, "query parameter rev")
        return RevisionReference(parsing: "\(name)@\(rev)")
    }

    /// Network remotes always; `file://` URLs and paths only with `--allow-local-remotes`.
    func checkRemote(_ source: String) throws {
        guard !source.isEmpty, source.utf8.count <= 4096 else {
            throw RegistryError.refused("source must be a git URL of at most 4096 bytes")
        }
        let lowered = source.lowercased()
        if ["https://", "http://", "git://", "ssh://"].contains(where: { lowered.hasPrefix($0) }) { return }
        guard configuration.allowLocalRemotes else {
            throw RegistryError.refused("source '\(source)' is not a network git URL: this server fetches only https://, http://, git:// and ssh:// remotes (file:// URLs and paths need `provenance serve --allow-local-remotes`)")
        }
        if lowered.contains("://"), !lowered.hasPrefix("file://") {
            throw RegistryError.refused("source '\(source)' uses an unsupported transport: use https://, http://, git://, ssh:// or file://")
        }
    }
}
