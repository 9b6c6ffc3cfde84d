import Foundation
import Hummingbird
import ProvenanceCore

extension RegistryAPI {
    func contributorEndpoints() -> [Endpoint] {
        [
            // Public, like lineage and invoices: a contributor's datasets, the versions using
            // them and what the ledger paid them are all readable elsewhere; this joins them.
            Endpoint(.get, "/v1/contributors/{account}") { _, context in
                let account = try Self.account(context)
                let report = try await Blocking.run { [store] in try ContributorReport.make(account: account, store: store) }
                guard let report else {
                    throw RegistryError.notFound("no contributor '\(account)': no dataset holds their commits and no invoice paid them")
                }
                return JSONResponse.make(report)
            },
        ]
    }
}
