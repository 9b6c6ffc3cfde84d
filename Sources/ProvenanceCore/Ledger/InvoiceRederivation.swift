public import Foundation
public import Crypto

extension Invoice {
    /// Re-derives what an invoice's own bytes claim, trusting nothing beside them but `terms`
    /// (checked against their SHA-256 by the caller) and the node's key: the bytes read as an
    /// invoice and are canonical, the invoice records `index`, the node's signature verifies, its
    /// per-call attribution holds on its face, and its fee and split follow from its recorded
    /// inputs. `provenance verify` runs it on every stored invoice and `provenance audit` on every
    /// invoice a registry serves.
    ///
    /// - Parameters:
    ///   - nodeKey: the key the node's signature must verify with, given the parsed invoice
    ///     (nil: say the node or its key does not match).
    /// - Returns: the invoice, or the first problem as a phrase (without the invoice's name).
    public static func rederive(bytes: Data, index: Int, terms: (String) throws -> SettlementTerms?,
                                nodeKey: (Invoice) -> Curve25519.Signing.PublicKey?) -> Result<Invoice, InvoiceProblem> {
        rederive(bytes: bytes, index: index, terms: terms, nodeKey: nodeKey, signatures: VerifiedBatchSignatures())
    }

    static func rederive(bytes: Data, index: Int, terms: (String) throws -> SettlementTerms?,
                         nodeKey: (Invoice) -> Curve25519.Signing.PublicKey?, signatures: VerifiedBatchSignatures) -> Result<Invoice, InvoiceProblem> {
        let invoice: Invoice
        do { invoice = try Invoice(canonicalBytes: bytes, terms: terms) } catch {
            return .failure(InvoiceProblem("cannot be read (\(error))"))
        }
        guard invoice.canonicalBytes == bytes else { return .failure(InvoiceProblem("its bytes are not canonical")) }
        guard invoice.ledgerIndex == index else { return .failure(InvoiceProblem("it records ledger index \(invoice.ledgerIndex)")) }
        guard let key = nodeKey(invoice) else {
            return .failure(InvoiceProblem("node '\(invoice.record.node)' or its key does not match the node registry"))
        }
        guard signatures.verify(invoice.signature, of: invoice.record.canonicalBytes, key: key) else {
            return .failure(InvoiceProblem("the node signature does not verify"))
        }
        if let problem = Store.checkCallAttribution(invoice) { return .failure(InvoiceProblem(problem)) }
        let recomputed: SettlementComputation
        do { recomputed = try SettlementComputation.compute(record: invoice.record, price: invoice.price, levels: invoice.effectiveLevels) } catch {
            return .failure(InvoiceProblem("its split cannot be recomputed (\(error))"))
        }
        guard recomputed == invoice.computation else { return .failure(InvoiceProblem("its split does not follow from its recorded inputs")) }
        return .success(invoice)
    }
}

/// What does not hold about an invoice, as a phrase: "the node signature does not verify".
public struct InvoiceProblem: Error, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
