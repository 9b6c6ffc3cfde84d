import ArgumentParser
import Foundation
import ProvenanceCore

/// The `--role` values, as the command line spells them.
enum RoleArgument: String, ExpressibleByArgument, CaseIterable {
    case admin, contributor, developer, node, caller

    var accessRole: AccessRole { AccessRole(rawValue: rawValue)! }
}

extension Provenance {
    struct Token: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create, list and revoke the registry service's bearer tokens.",
            subcommands: [Create.self, List.self, Revoke.self])
    }
}

extension Provenance.Token {
    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a bearer token and print it once; the store keeps only its SHA-256.",
            discussion: """
                The subject says on whose behalf the token acts: the contributor or developer id (their \
                email), the node's name, or the caller's account. admin may do everything.
                """)
        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var output: OutputOptions
        @Option(help: ArgumentHelp("admin, contributor, developer, node or caller.", valueName: "ROLE")) var role: RoleArgument
        @Option(help: ArgumentHelp("Who the token acts for: an account id, a developer or contributor id, or a node name.", valueName: "ID"))
        var subject: String

        func run() throws {
            let issued = try storeOptions.open().createToken(role: role.accessRole, subject: subject)
            if output.json {
                struct JSON: Encodable { var id: String; var role: String; var subject: String; var token: String }
                return try Output.json(JSON(id: issued.token.id, role: issued.token.role.rawValue, subject: issued.token.subject,
                                            token: issued.secret))
            }
            FileHandle.standardError.write(Data("token \(issued.token.id) (\(role.rawValue) for \(subject)); it is shown only now:\n".utf8))
            print(issued.secret)
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the tokens (ids, roles, subjects; never secrets).")
        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var output: OutputOptions

        func run() throws {
            let tokens = try storeOptions.open().accessTokens()
            if output.json { return try Output.json(tokens) }
            let formatter = ISO8601DateFormatter()
            let time = { (seconds: Int64) in formatter.string(from: Date(timeIntervalSince1970: TimeInterval(seconds))) }
            Output.table(["ID", "ROLE", "SUBJECT", "CREATED", "REVOKED"], tokens.map {
                [$0.id, $0.role.rawValue, $0.subject, time($0.createdAt), $0.revokedAt.map(time) ?? "-"]
            })
        }
    }

    struct Revoke: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a token at once, by its secret or its id.")
        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var output: OutputOptions
        @Argument(help: ArgumentHelp("The token (prov_…) or its id (tok_…).", valueName: "TOKEN_OR_ID")) var token: String

        func run() throws {
            let revoked = try storeOptions.open().revokeToken(token)
            if output.json { return try Output.json(revoked) }
            print("revoked \(revoked.id) (\(revoked.role.rawValue) for \(revoked.subject))")
        }
    }
}
