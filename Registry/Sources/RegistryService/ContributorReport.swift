import Foundation
import ProvenanceCore

/// Everything public about one contributor: the datasets holding their commits, the model
/// versions trained on those commits (through base models too), and what the ledger paid them.
///
/// Built only from the store's public reads (dataset contributors, lineage, invoices as their
/// canonical JSON), so changes to how settlement stores invoices do not reach it. Served as
/// `GET /v1/contributors/{account}` and drawn by the explorer's contributor page.
struct ContributorReport: Encodable, Sendable {
    struct DatasetShare: Encodable, Sendable {
        var dataset: String
        /// `Name <email>` as the dataset's head records them, after mailmap.
        var contributor: String
        var commits: Int
        var head: String
    }

    struct ModelUse: Encodable, Sendable {
        var model: String
        var version: String
        var commit: String
        /// `DATASET@COMMIT` inputs in the version's lineage that hold the contributor's commits.
        var via: [String]
    }

    struct Earning: Encodable, Sendable {
        var index: Int
        var settledAt: Int64
        var model: String
        var version: String
        var roles: [String]
        var amount: String
        var amountRaw: String
        /// Evidence an invoice records for this payee (spans with dataset, commit, path, lines),
        /// when its plugin records any; kept as the invoice writes it.
        var evidence: [JSONValue]

        enum CodingKeys: String, CodingKey {
            case index, model, version, roles, amount, evidence
            case settledAt = "settled_at"
            case amountRaw = "amount_raw"
        }
    }

    var account: String
    var names: [String]
    var datasets: [DatasetShare]
    var models: [ModelUse]
    var invoices: [Earning]
    var total: String
    var totalRaw: String

    enum CodingKeys: String, CodingKey {
        case account, names, datasets, models, invoices, total
        case totalRaw = "total_raw"
    }

    var totalAmount: TokenAmount { TokenAmount(rawString: totalRaw) ?? .zero }

    /// The report for `account`; nil when the store knows nothing of it (no commit, no payout).
    static func make(account: String, store: Store) throws -> ContributorReport? {
        var datasets: [DatasetShare] = []
        var names: [String] = []
        for summary in try store.datasetSummaries() {
            guard let head = summary.head else { continue }
            for contributor in try store.contributors(of: RevisionReference(parsing: summary.name)) where contributor.id == account {
                datasets.append(DatasetShare(dataset: summary.name, contributor: contributor.identity, commits: contributor.commits, head: head))
                if !names.contains(contributor.identity) { names.append(contributor.identity) }
            }
        }
        var models: [ModelUse] = []
        for model in try store.modelSummaries() {
            for version in model.versions {
                let lineage = try store.lineage(of: ModelVersionReference(model: model.model, version: version))
                var via: [String] = []
                for level in lineage.chain {
                    for input in level.datasets where input.contributors.contains(where: { $0.id == account }) {
                        let name = "\(input.dataset)@\(input.commit)"
                        if !via.contains(name) { via.append(name) }
                    }
                }
                if !via.isEmpty { models.append(ModelUse(model: model.model, version: version, commit: lineage.commit, via: via)) }
            }
        }
        var earnings: [Earning] = []
        var total: Int128 = 0
        for entry in try store.invoices(account: account, model: nil) {
            let invoice = try JSONValue.parse(entry.bytes)
            var roles: [String] = []
            var raw: Int128 = 0
            var evidence: [JSONValue] = []
            for payout in invoice["settlement"]?["payouts"]?.arrayValue ?? [] where payout["account"]?.stringValue == account {
                guard let amount = payout["amount"]?.stringValue.flatMap({ Int128($0) }) else { continue }
                raw += amount
                if let role = payout["role"]?.stringValue, !roles.contains(role) { roles.append(role) }
                evidence += payout["spans"]?.arrayValue ?? payout["evidence"]?.arrayValue ?? []
            }
            guard raw != 0 || !roles.isEmpty else { continue }  // an invoice this account paid, not earned
            total += raw
            let amount = TokenAmount(raw: raw)
            earnings.append(Earning(index: entry.index, settledAt: entry.settledAt,
                                    model: invoice["parties"]?["model"]?.stringValue ?? "",
                                    version: invoice["parties"]?["version"]?.stringValue ?? "",
                                    roles: roles, amount: amount.description, amountRaw: amount.rawString, evidence: evidence))
        }
        if datasets.isEmpty, earnings.isEmpty { return nil }
        let sum = TokenAmount(raw: total)
        return ContributorReport(account: account, names: names, datasets: datasets, models: models, invoices: earnings,
                                 total: sum.description, totalRaw: sum.rawString)
    }
}

extension JSONValue {
    subscript(key: String) -> JSONValue? {
        if case .object(let members) = self { return members[key] }
        return nil
    }

    var stringValue: String? {
        if case .string(let text) = self { return text }
        return nil
    }

    var arrayValue: [JSONValue]? {
        if case .array(let items) = self { return items }
        return nil
    }

    var objectValue: [String: JSONValue]? {
        if case .object(let members) = self { return members }
        return nil
    }

    /// A scalar as text (strings as they are, numbers without a needless `.0`); nil for containers.
    var scalarText: String? {
        switch self {
        case .string(let text): return text
        case .bool(let value): return value ? "true" : "false"
        case .null: return nil
        case .number(let value):
            if value.rounded() == value, abs(value) < 1e15 { return String(Int64(value)) }
            return String(value)
        case .array, .object: return nil
        }
    }
}
