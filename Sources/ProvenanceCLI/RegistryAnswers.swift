import Foundation
import ProvenanceCore
import RegistryAPI

/// The registry's answers (the generated client's types) as the domain values local commands
/// print, for the domain types that are only `Encodable`.
enum RegistryAnswers {
    static func amount(_ raw: String, _ what: String) throws -> TokenAmount {
        guard let amount = TokenAmount(rawString: raw) else {
            throw AuditError("the registry's \(what) '\(raw.prefix(80))' is not an amount")
        }
        return amount
    }

    static func transfer(_ answer: Components.Schemas.Transfer) throws -> Transfer {
        guard let cause = Transfer.Cause(rawValue: answer.cause.rawValue) else {
            throw AuditError("the registry's transfer \(answer.sequence) has an unknown cause '\(answer.cause.rawValue)'")
        }
        let batch = try answer.batch.map { name -> Int64 in
            guard name.hasPrefix("batch-"), let id = Int64(name.dropFirst(6)) else {
                throw AuditError("the registry's transfer \(answer.sequence) names batch '\(name.prefix(80))', not batch-N")
            }
            return id
        }
        // The chain hash is not part of the answer; nothing printed shows it.
        return Transfer(sequence: Int64(answer.sequence), from: answer.from, to: answer.to,
                        amount: try amount(answer.amountRaw, "transfer amount"), cause: cause, invoice: answer.invoice,
                        call: answer.call, batch: batch, createdAt: Int64(answer.createdAt), hash: "")
    }

    static func statementLine(_ answer: Components.Schemas.Transfer) throws -> StatementLine {
        StatementLine(transfer: try transfer(answer), items: try answer.invoices?.map {
            StatementLine.Item(invoice: $0.invoice, call: $0.call, amount: try amount($0.amountRaw, "statement amount"))
        })
    }
}
