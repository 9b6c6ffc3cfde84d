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
            Endpoint(.get, "/v1/accounts/{account}/statement") { request, context in
                let account = try Self.account(context)
                try context.requireOwner(of: account)
                let expand = try request.booleanQuery("invoices") ?? false
                let lines = try await Blocking.run { [store] in try store.statement(of: account, expand: expand) }
                return JSONResponse.make(StatementPayload(account: account, transfers: lines))
            },
            Endpoint(.post, "/v1/accounts/{account}/deposits") { request, context in
                try await moveMoney(request, context) { store, amount, account, key in
                    try store.deposit(amount, to: account, idempotencyKey: key)
                }
            },
            Endpoint(.post, "/v1/accounts/{account}/withdrawals") { request, context in
                try await moveMoney(request, context) { store, amount, account, key in
                    try store.withdraw(amount, from: account, idempotencyKey: key)
                }
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

    /// A deposit or withdrawal (admin only). With an `Idempotency-Key`, a retry with the same
    /// body answers 200 with the first transfer and moves nothing; another body is 409.
    func moveMoney(_ request: Request, _ context: RegistryRequestContext,
                   _ move: @escaping @Sendable (Store, TokenAmount, String, String?) throws -> MoneyMovement) async throws -> Response {
        _ = try context.require()
        let account = try Self.account(context)
        let key = request.headers.value(.idempotencyKey)
        if let key { try Pattern.check(key, Pattern.idempotencyKey, "Idempotency-Key", "use 1-200 visible ASCII characters") }
        let body = try await body.decode(DepositRequest.self, from: request)
        try Pattern.checkAmount(body.amount, "amount")
        let amount = try TokenAmount(parsing: body.amount)
        let movement: MoneyMovement
        do {
            movement = try await Blocking.run { [store] in try move(store, amount, account, key) }
        } catch let error as ProvenanceError where error.code == .conflict {
            throw RegistryError(.conflict, code: "idempotency_conflict", error.message)
        }
        var response = JSONResponse.make(movement.transfer, status: movement.replayed ? .ok : .created)
        response.headers[.idempotencyReplayed] = movement.replayed ? "true" : "false"
        return response
    }

    static func account(_ context: RegistryRequestContext) throws -> String {
        let account = try context.path("account")
        try Pattern.checkAccount(account, "account")
        return account
    }
}
