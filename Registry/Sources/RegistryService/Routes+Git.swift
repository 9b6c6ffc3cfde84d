import Foundation
import Hummingbird
import ProvenanceCore

/// Every dataset and model repository, read-only over git's "dumb" HTTP protocol, so that the
/// stock git CLI can `git clone http://HOST:PORT/git/datasets/NAME.git` and re-derive
/// attribution with its own tools. No git process runs: `info/refs` and `objects/info/packs`
/// are generated from the repository on each request (what `git update-server-info` would
/// write), and the object files are streamed as they lie on disk. Public, like lineage reads.
///
/// The smart protocol's probe (`info/refs?service=git-upload-pack`) gets the plain `info/refs`
/// with `text/plain`, which is how git tells a dumb server and falls back to it. Pushing is
/// refused at its probe (`?service=git-receive-pack`, 403), and no route writes.
extension RegistryAPI {
    func gitEndpoints() -> [Endpoint] {
        RepositoryKind.allCases.flatMap { kind -> [Endpoint] in
            let base = "/git/\(kind.rawValue)/{repository}"
            // Constant segments first: the router tries siblings in the order they were added.
            return [
                Endpoint(.get, base + "/info/refs") { request, context in
                    switch try request.query("service") {
                    case nil, "git-upload-pack": break
                    case "git-receive-pack":
                        throw RegistryError.forbidden("the registry's git repositories are read-only: add data with `provenance add` or POST /v1/datasets/{dataset}/commits")
                    case let other?:
                        throw RegistryError.invalid("query parameter service '\(other.prefix(100))' must be git-upload-pack")
                    }
                    let repository = try Self.repository(kind, context, store: store)
                    let refs = try await Blocking.run { try repository.infoRefs() }
                    return Self.gitText(refs)
                },
                Endpoint(.get, base + "/HEAD") { _, context in
                    let repository = try Self.repository(kind, context, store: store)
                    return Self.gitText(try await Blocking.run { try repository.head() })
                },
                Endpoint(.get, base + "/objects/info/packs") { _, context in
                    let repository = try Self.repository(kind, context, store: store)
                    return Self.gitText(try await Blocking.run { try repository.infoPacks() })
                },
                Endpoint(.get, base + "/objects/pack/{file}") { _, context in
                    let repository = try Self.repository(kind, context, store: store)
                    let name = try context.path("file")
                    guard Pattern.verdict(Pattern.gitPackFile, name) == .matches, let file = try await Blocking.run({ try repository.packFile(name) }) else {
                        throw RegistryError.notFound("\(kind.rawValue)/\(repository.name).git has no pack file '\(name.prefix(100))'")
                    }
                    let type = name.hasSuffix(".idx") ? "application/x-git-packed-objects-toc" : "application/x-git-packed-objects"
                    return try await Self.stream(file, contentType: type, context: context)
                },
                Endpoint(.get, base + "/objects/{prefix}/{suffix}") { _, context in
                    let repository = try Self.repository(kind, context, store: store)
                    let prefix = try context.path("prefix"), suffix = try context.path("suffix")
                    guard Pattern.verdict(Pattern.gitObjectPrefix, prefix) == .matches, Pattern.verdict(Pattern.gitObjectSuffix, suffix) == .matches,
                          let file = try await Blocking.run({ try repository.looseObject(prefix: prefix, suffix: suffix) }) else {
                        throw RegistryError.notFound("\(kind.rawValue)/\(repository.name).git has no loose object '\(prefix.prefix(2))\(suffix.prefix(38))'")
                    }
                    return try await Self.stream(file, contentType: "application/x-git-loose-object", context: context)
                },
            ]
        }
    }

    /// The repository `{repository}` (`NAME.git`) names, or 404: a malformed name is simply not
    /// there, as git clients expect.
    static func repository(_ kind: RepositoryKind, _ context: RegistryRequestContext, store: Store) throws -> PublishedRepository {
        let segment = try context.path("repository")
        guard Pattern.verdict(Pattern.gitRepository, segment) == .matches, let repository = store.publishedRepository(kind, name: String(segment.dropLast(4))) else {
            throw RegistryError.notFound("no repository \(kind.rawValue)/\(segment.prefix(100)): clone /git/\(kind.rawValue)/NAME.git")
        }
        return repository
    }

    /// A generated file: never cached, since the references move.
    static func gitText(_ data: Data) -> Response {
        var response = JSONResponse.bytes(data, contentType: "text/plain; charset=utf-8")
        response.headers[.cacheControl] = "no-cache, max-age=0, must-revalidate"
        return response
    }

    /// An object file, read in chunks as the client takes them (memory stays flat for any pack),
    /// cacheable for good: its name is its content's hash.
    static func stream(_ file: URL, contentType: String, context: RegistryRequestContext) async throws -> Response {
        let size = try FileManager.default.attributesOfItem(atPath: file.path)[.size] as? Int ?? 0
        let body = try await FileIO().loadFile(path: file.path, context: context)
        return Response(status: .ok, headers: [
            .contentType: contentType, .contentLength: String(size), .cacheControl: "public, max-age=31536000, immutable",
        ], body: body)
    }
}
