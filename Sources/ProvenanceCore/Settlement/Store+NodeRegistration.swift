import Foundation
import Crypto

extension Store {
    /// Registers node `name` with the Ed25519 public key its operator holds, for nodes that
    /// keep their private key to themselves (the registry service): unlike `addNode`, the store
    /// never sees a private key. `stake` moves from `node:NAME` (which must hold it) into
    /// `stake:NAME`, as with `addNode`.
    ///
    /// - Parameter publicKey: the raw 32-byte public key, base64.
    /// - Throws: `invalidArgument` for a malformed name or key, `conflict` when the node exists,
    ///   `insufficientFunds` when `node:NAME` cannot cover the stake.
    public func registerNode(name: String, publicKey: String, stake: TokenAmount) throws -> NodeRecord {
        try Names.validateNodeName(name)
        guard let raw = Data(base64Encoded: publicKey), raw.count == 32,
              let key = try? Curve25519.Signing.PublicKey(rawRepresentation: raw)
        else {
            throw ProvenanceError.invalid("public key of node '\(name)' is not a base64 Ed25519 public key (32 bytes)")
        }
        // The write lock keeps `addNode` (which writes a key file before its transaction) out.
        return try withWriteLock("nodes/\(name)") {
            try ledger.writeLedger { ledger in
                if try ledger.node(named: name) != nil {
                    throw ProvenanceError.conflict("node '\(name)' already exists")
                }
                var book = try Book(ledger)
                let node = NodeRecord(name: name, publicKey: key.rawRepresentation.base64EncodedString(), stake: stake)
                try ledger.insert(node)
                let account = Accounts.node(name)
                if try ledger.balance(of: account) == nil { try book.open(account) }
                if stake.raw > 0 {
                    try book.requireFunds(stake, in: account, for: "stake \(stake)")
                    _ = try book.move(stake, from: account, to: Accounts.stake(name), cause: .stake)
                }
                try book.commit()
                return node
            }
        }
    }
}
