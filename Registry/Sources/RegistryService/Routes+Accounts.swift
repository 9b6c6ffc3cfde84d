import Foundation
import Hummingbird
import ProvenanceCore

extension RegistryAPI {
    func accountEndpoints() -> [Endpoint] {
        [
            Endpoint(.get, "/v1/accounts/{account}/balance") { _, context in
                let account = try Self.account(context)
                try context.requireOwner(of: account)
                let balance = try await Blocking.run { [store] in try store.balance(of: account) }
                return JSONResponse.make(BalancePayload(account: account, balance: balance.description, balanceRaw: balance.rawString))
            },
            Endpoint(.get, "/v1/accounts/{account}/statement") { _, context in
                let account = try Self.account(context)
                try context.requireOwner(of: account)
                let transfers = try await Blocking.run { [store] in try store.statement(of: account) }
                return JSONResponse.make(StatementPayload(account: account, transfers: transfers))
            },
            Endpoint(.post, "/v1/accounts/{account}/deposits") { request, context in
                _ = try context.require()
                let account = try Self.account(context)
                let body = try await body.decode(DepositRequest.self, from: request)
                try Pattern.checkAmount(body.amount, "amount")
                let amount = try TokenAmount(parsing: body.amount)
                let transfer = try await Blocking.run { [store] in try store.deposit(amount, to: account) }
                return JSONResponse.make(transfer, status: .created)
            },
            Endpoint(.post, "/v1/nodes") { request, context in
                let principal = try context.require(.node)
                let body = try await body.decode(RegisterNodeRequest.self, from: request)
                try Pattern.checkName(body.name, "name")
                try Pattern.check(body.publicKey, Pattern.base64Bytes32, "public_key", "give the raw 32-byte Ed25519 public key in base64")
                if principal.role == .node, principal.subject != body.name {
                    throw RegistryError.forbidden("a node token for '\(principal.subject)' registers only itself, not '\(body.name)'")
                }
                if let stake = body.stake { try Pattern.checkAmount(stake, "stake") }
                let stake = try body.stake.map { try TokenAmount(parsing: $0) } ?? .zero
                let node = try await Blocking.run { [store] in
                    try store.registerNode(name: body.name, publicKey: body.publicKey, stake: stake)
                }
                return JSONResponse.make(NodePayload(node), status: .created)
            },
            Endpoint(.get, "/v1/nodes/{node}") { _, context in
                let name = try context.path("node")
                try Pattern.checkName(name, "node")
                let node = try await Blocking.run { [store] in try store.ledger.readLedger { try $0.node(named: name) } }
                guard let node else { throw RegistryError.notFound("unknown node '\(name)'") }
                return JSONResponse.make(NodePayload(node))
            },
        ]
    }

    static func account(_ context: RegistryRequestContext) throws -> String {
        let account = try context.path("account")
        try Pattern.checkAccount(account, "account")
        return account
    }
}
