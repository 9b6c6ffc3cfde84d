import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
public import Hummingbird
public import Logging
public import ProvenanceCore
import ServiceLifecycle

/// A witness the registry asks for cosignatures: its submission URL prefix and its key.
public struct WitnessEndpoint: Sendable {
    public var url: String
    public var verifier: CosignatureVerifier

    /// Parses `URL=KEY`: the witness's submission prefix and its verifier key.
    public init(parsing text: String) throws {
        guard let equals = text.firstIndex(of: "="), let url = URL(string: String(text[..<equals])),
              ["http", "https"].contains(url.scheme?.lowercased() ?? ""), url.host != nil else {
            throw ProvenanceError.invalid("--witness '\(text.prefix(100))' must be URL=KEY (the witness's http(s) URL and its verifier key)")
        }
        var prefix = String(text[..<equals])
        while prefix.hasSuffix("/") { prefix.removeLast() }
        self.url = prefix
        do { verifier = try CosignatureVerifier(verifierKey: String(text[text.index(after: equals)...])) } catch {
            throw ProvenanceError.invalid("--witness '\(text.prefix(100))': \(error)")
        }
    }
}

/// After each checkpoint, asks every witness to cosign it (C2SP tlog-witness add-checkpoint,
/// with a consistency proof from the size the witness last cosigned) and records the
/// checkpoint with their cosignatures once a quorum has cosigned.
struct WitnessCollector: Service {
    let store: Store
    let witnesses: [WitnessEndpoint]
    let quorum: Int
    let logger: Logger
    var interval: Duration = .milliseconds(200)
    var retryAfter: Duration = .seconds(5)

    func run() async throws {
        do {
            try await cancelWhenGracefulShutdown {
                var known = [Int](repeating: 0, count: witnesses.count)
                var recorded = (try? store.cosignedCheckpoint())?.size ?? -1
                // A checkpoint the quorum did not cosign is asked for again every few seconds, not every round.
                var failed: (size: Int, at: ContinuousClock.Instant)?
                while true {
                    let size = try? await Blocking.run { [store] in try store.checkpoint().size }
                    if let size, size > recorded, failed.map({ $0.size != size || $0.at.duration(to: .now) > retryAfter }) ?? true {
                        if let cosigned = await collect(known: &known, recorded: recorded) {
                            recorded = cosigned
                            failed = nil
                        } else {
                            failed = (size, .now)
                        }
                    }
                    try await Task.sleep(for: interval)
                }
            }
        } catch is CancellationError {}
    }

    /// One round: the latest checkpoint, if not yet recorded cosigned. Returns the size recorded.
    func collect(known: inout [Int], recorded: Int) async -> Int? {
        guard let checkpoint = try? await Blocking.run({ [store] in try store.checkpoint() }), checkpoint.size > recorded else { return nil }
        var lines: [String] = []
        var names: [String] = []
        for (index, witness) in witnesses.enumerated() {
            if let line = await cosignature(of: checkpoint, by: witness, known: &known[index]) {
                lines.append(line)
                names.append(witness.verifier.name)
            }
        }
        guard lines.count >= quorum else {
            logger.warning("witness quorum not met", metadata: ["size": "\(checkpoint.size)", "cosigned": "\(lines.count)", "quorum": "\(quorum)"])
            return nil
        }
        let cosigned = CosignedCheckpoint(size: checkpoint.size, rootHash: checkpoint.rootHash,
                                          note: checkpoint.note + lines.map { $0 + "\n" }.joined(), witnesses: names)
        do { try await Blocking.run { [store] in try store.record(cosigned) } } catch {
            logger.error("cannot record the cosigned checkpoint", metadata: ["error": "\(error)"])
            return nil
        }
        logger.info("checkpoint cosigned", metadata: ["size": "\(checkpoint.size)", "witnesses": "\(names.joined(separator: ","))"])
        return checkpoint.size
    }

    /// The witness's verified cosignature line, or nil; follows one 409 to the size it holds.
    func cosignature(of checkpoint: CheckpointInfo, by witness: WitnessEndpoint, known: inout Int) async -> String? {
        for _ in 0..<2 {
            let old = known
            guard old <= checkpoint.size else {
                logger.error("a witness holds a larger checkpoint than the ledger", metadata: ["witness": "\(witness.verifier.name)", "size": "\(old)"])
                return nil
            }
            let proof: [String]
            if old > 0, old < checkpoint.size {
                guard let consistency = try? await Blocking.run({ [store] in try store.consistencyProof(oldSize: old, newSize: checkpoint.size) }) else { return nil }
                proof = consistency.proof
            } else {
                proof = []
            }
            let body = "old \(old)\n" + proof.map { $0 + "\n" }.joined() + "\n" + checkpoint.note
            var request = URLRequest(url: URL(string: witness.url + "/add-checkpoint")!)
            request.httpMethod = "POST"
            request.httpBody = Data(body.utf8)
            request.timeoutInterval = 10
            guard let (data, response) = try? await URLSession.shared.data(for: request), let http = response as? HTTPURLResponse else {
                logger.warning("witness unreachable", metadata: ["witness": "\(witness.url)"])
                return nil
            }
            let text = String(decoding: data, as: UTF8.self)
            switch http.statusCode {
            case 200:
                known = checkpoint.size
                return text.split(separator: "\n").map(String.init).first { witness.verifier.cosignedTime(of: checkpoint.note + $0 + "\n") != nil }
            case 409:
                guard let size = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) else { return nil }
                known = size
            default:
                logger.error("witness refused the checkpoint", metadata: ["witness": "\(witness.url)", "status": "\(http.statusCode)",
                                                                         "size": "\(checkpoint.size)", "answer": "\(text.prefix(200))"])
                return nil
            }
        }
        return nil
    }
}

extension RegistryAPI {
    func witnessEndpoints() -> [Endpoint] {
        [
            Endpoint(.get, "/v1/ledger/cosigned-checkpoint") { _, _ in
                let (cosigned, checkpoint) = try await Blocking.run { [store] in (try store.cosignedCheckpoint(), try? store.checkpoint()) }
                guard let cosigned, let checkpoint else {
                    throw RegistryError.notFound("no checkpoint has been cosigned by a quorum of witnesses yet")
                }
                struct Answer: Encodable {
                    var origin: String, size: Int, root_hash: String, note: String, verifier_key: String, witnesses: [String]
                }
                return JSONResponse.make(Answer(origin: checkpoint.origin, size: cosigned.size, root_hash: cosigned.rootHash, note: cosigned.note,
                                                verifier_key: checkpoint.verifierKey, witnesses: cosigned.witnesses))
            },
        ]
    }
}

/// Builds a witness's HTTP service: `POST /add-checkpoint` (C2SP tlog-witness).
public func buildWitnessApplication(witness: Witness, host: String, port: Int, logger: Logger) -> some ApplicationProtocol {
    let router = Router()
    router.post("/add-checkpoint") { request, _ -> Response in
        let body = try await request.body.collect(upTo: 64 * 1024)
        // The check and the fsync'd state write hold a lock: off the cooperative pool, like the store's work.
        let data = Data(body.readableBytesView)
        let answer = try await Blocking.run { witness.addCheckpoint(data) }
        return Response(status: .init(code: answer.status), headers: [.contentType: answer.contentType],
                        body: .init(byteBuffer: ByteBuffer(string: answer.body)))
    }
    return Application(router: router, configuration: .init(address: .hostname(host, port: port), serverName: "provenance-witness"), logger: logger)
}

/// Runs a witness until SIGINT or SIGTERM, then shuts down gracefully.
public func runWitness(_ witness: Witness, host: String, port: Int, logger: Logger) async throws {
    try await buildWitnessApplication(witness: witness, host: host, port: port, logger: logger).runService()
}
