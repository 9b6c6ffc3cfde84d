import HTTPTypes
import Foundation
import Hummingbird
import ProvenanceCore

extension RegistryAPI {
    func callEndpoints() -> [Endpoint] {
        [
            Endpoint(.post, "/v1/calls") { request, context in
                let principal = try context.require(.node)
                guard let key = request.headers.value(.idempotencyKey) else {
                    throw RegistryError.malformed("the Idempotency-Key header is required; it must equal record.idempotency_key")
                }
                try Pattern.check(key, Pattern.idempotencyKey, "Idempotency-Key", "use 1-200 visible ASCII characters")
                let body = try await body.decode(SubmitCallRequest.self, from: request, fast: CallBodyParser.submitCall)
                let call = try Self.signedCall(body.record, body.signature, principal: principal)
                guard key == call.0.idempotencyKey else {
                    throw RegistryError.refused("the Idempotency-Key header '\(key)' differs from record.idempotency_key '\(call.0.idempotencyKey)'")
                }
                try Self.checkOutput(body.outputText)
                let outcome = try await submit([call], outputs: [body.outputText], deferred: body.deferred ?? false)[0]
                var response = JSONResponse.make(outcome, status: outcome.replayed ? .ok : .created)
                // Appended: the answer's fields do not hold it yet (`JSONResponse.response`).
                response.headers.append(HTTPField(name: .idempotencyReplayed, value: outcome.replayed ? "true" : "false"))
                return response
            },
            Endpoint(.post, "/v1/calls/batch") { request, context in
                let principal = try context.require(.node)
                let body = try await body.decode(SubmitCallBatchRequest.self, from: request, fast: CallBodyParser.submitCallBatch)
                guard (1...1000).contains(body.calls.count) else {
                    throw RegistryError.invalid("a batch holds 1 to 1000 calls, not \(body.calls.count)")
                }
                let calls = try body.calls.map { try Self.signedCall($0.record, $0.signature, principal: principal) }
                for item in body.calls { try Self.checkOutput(item.outputText) }
                let outputs = body.calls.map(\.outputText)
                let outcomes = try await submit(calls, outputs: outputs.contains { $0 != nil } ? outputs : [], deferred: body.deferred ?? false)
                return JSONResponse.make(outcomes: outcomes)
            },
            Endpoint(.post, "/v1/settlements") { _, context in
                _ = try context.require()
                let report = try await Blocking.run { [store, resolver] in try await store.settlePending(resolver: resolver) }
                metrics.settled(report.settled)
                return JSONResponse.make(report)
            },
        ]
    }

    /// Settles (or reserves) signed calls; an idempotency key reused for another record is 409.
    /// The largest output text a call may carry.
    static let maxOutputBytes = 1 << 20

    static func checkOutput(_ text: String?) throws {
        guard let text else { return }
        guard text.utf8.count <= maxOutputBytes else {
            throw RegistryError.invalid("output_text is \(text.utf8.count) bytes; a call's output may be at most \(maxOutputBytes) bytes")
        }
    }

    func submit(_ calls: [(CallRecord, CallSignature)], outputs: [String?] = [], deferred: Bool) async throws -> [CallOutcome] {
        let outcomes: [CallOutcome]
        do {
            // No hop to the store's threads: preparing a call is memory work (its price, node and
            // terms are cached; signatures are CPU), and the transaction runs on the group
            // committer's own thread while this task is suspended. Hopping cost more than the work.
            outcomes = try await store.submit(calls, outputs: outputs, deferred: deferred, resolver: resolver)
        } catch let error as ProvenanceError where error.code == .conflict {
            throw RegistryError(.conflict, code: "idempotency_conflict", error.message)
        }
        metrics.settled(outcomes.filter { $0.status == .settled && !$0.replayed }.count)
        return outcomes
    }

    /// Checks a submitted call's fields (400 when malformed) and who may submit it: a node
    /// token only calls its own node signed (403 otherwise); the signature itself is checked
    /// against the node's registered key when the call is submitted (422 when it fails).
    static func signedCall(_ payload: CallRecordPayload, _ signature: CallSignaturePayload,
                           principal: AccessToken) throws -> (CallRecord, CallSignature) {
        try Pattern.checkAccount(payload.caller, "record.caller")
        try Pattern.checkName(payload.model, "record.model")
        try Pattern.checkVersion(payload.version, "record.version")
        try Pattern.checkName(payload.node, "record.node")
        if let router = payload.router { try Pattern.checkAccount(router, "record.router") }
        try Pattern.check(payload.idempotencyKey, Pattern.idempotencyKey, "record.idempotency_key", "use 1-200 visible ASCII characters")
        if let sha = payload.outputSHA256 {
            try Pattern.check(sha, Pattern.sha256Hex, "record.output_sha256", "give 64 lowercase hex digits")
        }
        try signature.checkFields()
        if principal.role == .node, payload.node != principal.subject {
            throw RegistryError.forbidden("a node token for '\(principal.subject)' submits only calls node '\(principal.subject)' served, not '\(payload.node)'")
        }
        return (payload.record, try signature.callSignature())
    }
}

extension HTTPField.Name {
    static let idempotencyKey = HTTPField.Name("Idempotency-Key")!
    static let idempotencyReplayed = HTTPField.Name("Idempotency-Replayed")!
}
