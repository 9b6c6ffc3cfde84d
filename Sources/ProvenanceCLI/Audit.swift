import ArgumentParser
import Foundation
import ProvenanceCore

extension Provenance {
    struct Audit: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Audit a registry from the outside, trusting nothing it says.",
            discussion: """
                Pins the registry's checkpoint key on first use (or takes --key) and remembers the last \
                checkpoint it verified in a state file. Each run verifies the newest checkpoint's signature, \
                proves it consistent with the last one (RFC 9162), fetches every invoice added since with its \
                inclusion proof, and recomputes each one's leaf hash, node signature, fee and split from its own \
                recorded inputs; with --git it clones the repositories over the registry's git routes and checks \
                every dataset commit, manifest SHA-256 and training-log hash. A log rewritten, truncated or forked \
                since the last run fails the audit, named. Exit 0: all verified; 1: the first problem, on stderr.
                """)

        @Argument(help: ArgumentHelp("The registry's URL, e.g. http://registry.example.org:8080 (default: --registry, else $PROVENANCE_REGISTRY).",
                                     valueName: "URL")) var url: String?
        @Option(name: .customLong("registry"), help: ArgumentHelp("The registry to audit, as with other commands (or give it as URL).", valueName: "URL"))
        var registryURL: String?
        @Option(help: ArgumentHelp("Require this checkpoint verifier key (NAME+HEXID+BASE64) instead of pinning the one the registry serves.",
                                   valueName: "KEY")) var key: String?
        @Option(help: ArgumentHelp("The audit state file (default: one per registry under $XDG_STATE_HOME or ~/.local/state/provenance/audit).",
                                   valueName: "FILE")) var state: String?
        @Option(name: .customLong("witness"), help: ArgumentHelp("A witness's cosignature verifier key; with witnesses, only a checkpoint cosigned by --quorum of them is accepted (repeat for several).",
                                                                 valueName: "KEY"))
        var witnesses: [String] = []
        @Option(help: ArgumentHelp("How many of the --witness keys must have cosigned the checkpoint (default: all).", valueName: "K"))
        var quorum: Int?
        @Flag(help: "Also clone the repositories with git and check every dataset commit, manifest and training log the new invoices name.")
        var git = false
        @OptionGroup var output: OutputOptions

        /// URL, else --registry, else $PROVENANCE_REGISTRY.
        func registry() throws -> String {
            if let url, let registryURL, url != registryURL {
                throw ValidationError("give the registry once: URL '\(url)' and --registry '\(registryURL)' differ")
            }
            let environment = ProcessInfo.processInfo.environment["PROVENANCE_REGISTRY"]
            guard let registry = url ?? registryURL ?? (environment?.isEmpty == false ? environment : nil) else {
                throw ValidationError("give the registry to audit: provenance audit URL (or --registry URL, or $PROVENANCE_REGISTRY)")
            }
            return registry
        }

        func run() async throws {
            let client = try RegistryClient(try registry())
            let stateURL = try state.map { URL(fileURLWithPath: $0) } ?? Self.defaultState(for: client.base)
            let verifiers = try witnesses.map { key in
                do { return try CosignatureVerifier(verifierKey: key) } catch { throw AuditError("--witness '\(key.prefix(100))' is not a witness key: \(error)") }
            }
            if let quorum, !(1...max(1, verifiers.count)).contains(quorum) || verifiers.isEmpty {
                throw AuditError("--quorum must be 1 to the number of --witness keys (\(verifiers.count))")
            }
            let summary: AuditSummary
            do {
                summary = try await Auditor(client: client, stateURL: stateURL, key: key, git: git, witnesses: verifiers,
                                            quorum: quorum ?? verifiers.count).run()
            } catch let error as AuditError {
                throw AuditError("audit failed: \(error.description)")
            }
            if output.json { return try Output.json(summary) }
            if summary.size == 0 {
                print("\(summary.registry): no signed checkpoint yet; nothing to audit")
                return
            }
            if summary.pinned { print("pinned   \(summary.verifierKey) (first use; later runs require it)") }
            print("checkpoint \(summary.size) invoices, root \(summary.rootHash): signature verified\(summary.previousSize == summary.size ? ", unchanged since the last audit" : summary.previousSize > 0 ? ", consistent with the \(summary.previousSize) seen before" : "")")
            print("invoices \(summary.invoicesChecked) new, each in the checkpoint by its inclusion proof, its node signature, fee and split re-derived")
            if !summary.cosignedBy.isEmpty { print("witness  cosigned by \(summary.cosignedBy.joined(separator: ", ")) (quorum \(quorum ?? verifiers.count))") }
            if git { print("git      \(summary.levelsCheckedInGit) lineage level(s) checked in \(summary.repositoriesCloned) cloned repositor\(summary.repositoriesCloned == 1 ? "y" : "ies")") }
            print("audited  \(summary.registry): ok (state \(stateURL.path))")
        }

        static func defaultState(for base: String) throws -> URL {
            let environment = ProcessInfo.processInfo.environment
            let root: URL
            if let state = environment["XDG_STATE_HOME"], !state.isEmpty {
                root = URL(fileURLWithPath: state, isDirectory: true)
            } else if let home = environment["HOME"], !home.isEmpty {
                root = URL(fileURLWithPath: home, isDirectory: true).appendingPathComponent(".local/state", isDirectory: true)
            } else {
                throw ValidationError("no home folder to keep the audit state in: pass --state FILE")
            }
            let name = base.replacingOccurrences(of: "://", with: "-").map { $0.isLetter || $0.isNumber || $0 == "." || $0 == "-" ? $0 : "_" }
            return root.appendingPathComponent("provenance/audit/\(String(name)).json")
        }
    }
}
