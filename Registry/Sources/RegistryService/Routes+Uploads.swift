import Foundation
import Hummingbird
import ProvenanceCore

/// `provenance add --registry`: files are uploaded one per request, streamed to the store's
/// `tmp/` under the SHA-256 the client computed (and the server checks), then one
/// commit request names them with their paths. Neither side holds a file in memory.
extension RegistryAPI {
    struct AddFilesRequest: Decodable {
        var contributor: String
        var message: String?
        var files: [StagedFile]
    }

    /// `AddResult`, with the manifest entries of the files the commit added, so the client can
    /// check them against the SHA-256s it computed.
    struct AddFilesAnswer: Encodable {
        var result: AddResult
        var added: [Manifest.Entry]
    }

    struct UploadAnswer: Encodable { var sha256: String; var size: UInt64 }
    struct TokenAnswer: Encodable { var role: String; var subject: String }

    func uploadEndpoints() -> [Endpoint] {
        [
            Endpoint(.get, "/v1/tokens/current") { _, context in
                let principal = try context.require(.contributor, .developer, .node, .caller)
                return JSONResponse.make(TokenAnswer(role: principal.role.rawValue, subject: principal.subject))
            },
            Endpoint(.put, "/v1/uploads/{sha256}") { request, context in
                _ = try context.require(.contributor)
                let sha256 = try context.path("sha256")
                try Pattern.check(sha256, Pattern.sha256Hex, "sha256", "give the file's SHA-256 as 64 lowercase hex digits")
                let size = try await withTaskExecutorPreference(StoreExecutor.shared) { [store] in
                    let staging = try UploadStaging(store: store, sha256: sha256)
                    do {
                        for try await buffer in request.body {
                            try buffer.withUnsafeReadableBytes { try staging.write($0) }
                        }
                        try staging.finish()
                    } catch {
                        staging.discard()
                        throw error
                    }
                    return staging.size
                }
                return JSONResponse.make(UploadAnswer(sha256: sha256, size: size), status: .created)
            },
            Endpoint(.post, "/v1/datasets/{dataset}/files") { request, context in
                let principal = try context.require(.contributor)
                let name = try Self.datasetName(context)
                let body = try await body.decode(AddFilesRequest.self, from: request)
                try Pattern.check(body.contributor, Pattern.identity, "contributor", "give \"Name <email>\"")
                let contributor = try Identity(parsing: body.contributor)
                if principal.role != .admin, contributor.id != principal.subject {
                    throw RegistryError.forbidden("this token adds data as '\(principal.subject)' only, not as '\(contributor.id)': give --contributor \"Name <\(principal.subject)>\"")
                }
                if let message = body.message, message.utf8.count > 65_536 {
                    throw RegistryError.refused("the message is over 65536 bytes")
                }
                let answer = try await Blocking.run { [store] in
                    let (result, added) = try store.add(dataset: name, staged: body.files, contributor: contributor, message: body.message)
                    return AddFilesAnswer(result: result, added: added)
                }
                return JSONResponse.make(answer, status: .created)
            },
        ]
    }
}
