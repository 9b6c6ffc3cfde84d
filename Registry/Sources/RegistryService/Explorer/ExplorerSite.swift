import AttributionPlugins
import Foundation
import Hummingbird
import Logging
import ProvenanceCore

/// The web explorer that `provenance serve` serves at `/`: plain HTML pages drawn on the server
/// from the store's public reads (the same ones the public JSON API answers with), a stylesheet
/// and one script of our own that verifies an invoice in the browser. No CDN, no network.
///
/// Pages are not part of the JSON API, so `Registry/openapi.yaml` leaves them out; `paths`
/// lists them for the test that compares the router with the spec.
struct ExplorerSite: Sendable {
    let store: Store
    let resolver: any AttributionPluginResolver

    static let invoicesPerPage = 50

    /// Every page and asset path, as the router writes it (a test checks these are exactly the
    /// routes that `Registry/openapi.yaml` leaves out).
    static let paths = [
        "/", "/datasets", "/datasets/{dataset}", "/models", "/models/{model}", "/models/{model}/versions/{version}",
        "/contributors", "/contributors/{account}", "/invoices", "/invoices/{index}", "/ledger",
        ExplorerAssets.stylesheetPath, ExplorerAssets.verifierPath,
    ]

    init(store: Store, resolver: any AttributionPluginResolver) {
        self.store = store
        self.resolver = resolver
    }

    func pages() -> [Endpoint] {
        [
            page("/", Self.overview),
            page("/datasets", Self.datasetList),
            page("/datasets/{dataset}", Self.datasetPage),
            page("/models", Self.modelList),
            page("/models/{model}", Self.modelPage),
            page("/models/{model}/versions/{version}", Self.versionPage),
            page("/contributors", Self.contributorList),
            page("/contributors/{account}", Self.contributorPage),
            page("/invoices", Self.invoiceList),
            page("/invoices/{index}", Self.invoicePage),
            page("/ledger", Self.ledgerPage),
            Endpoint(.get, ExplorerAssets.stylesheetPath) { _, _ in
                ExplorerAssets.response(ExplorerAssets.stylesheet, contentType: "text/css; charset=utf-8")
            },
            Endpoint(.get, ExplorerAssets.verifierPath) { _, _ in
                ExplorerAssets.response(ExplorerAssets.verifier, contentType: "text/javascript; charset=utf-8")
            },
        ]
    }

    /// A page handler whose errors become HTML error pages (the API's errors stay JSON).
    private func page(_ path: String,
                      _ handler: @escaping @Sendable (ExplorerSite) -> @Sendable (Request, RegistryRequestContext) async throws -> Response) -> Endpoint {
        Endpoint(.get, path) { [self] request, context in
            do {
                return try await handler(self)(request, context)
            } catch {
                let failure = RegistryError.from(error)
                if failure.status.code >= 500 {
                    context.logger.error("explorer page failed", metadata: ["error": "\(String(reflecting: error))"])
                }
                let title = failure.status == .notFound ? "Not found" : failure.status.code >= 500 ? "Something went wrong" : "Cannot show this"
                return Page.render(title, section: nil, status: failure.status, """
                <h1>\(title)</h1>
                <p class="lead">\(failure.message)</p>
                <p><a href="/">Back to the overview</a></p>
                """)
            }
        }
    }

    func read<T: Sendable>(_ body: @escaping @Sendable (Store) throws -> T) async throws -> T {
        try await Blocking.run { [store] in try body(store) }
    }

    // MARK: Overview

    func overview(_ request: Request, _ context: RegistryRequestContext) async throws -> Response {
        let (datasets, models, entries, checkpoint) = try await read { store in
            (try store.datasetSummaries(), try store.modelSummaries(), try store.invoices(account: nil, model: nil),
             try? store.checkpoint())
        }
        let contributors = try await read { store in
            Set(try datasets.flatMap { summary in
                summary.head == nil ? [] : try store.contributors(of: RevisionReference(parsing: summary.name)).map(\.id)
            }).count
        }
        let versions = models.reduce(0) { $0 + $1.versions.count }
        let tiles: [(String, String, String)] = [
            ("\(datasets.count)", datasets.count == 1 ? "dataset" : "datasets", Link.datasets),
            ("\(versions)", versions == 1 ? "model version" : "model versions", Link.models),
            ("\(contributors)", contributors == 1 ? "contributor" : "contributors", Link.contributors),
            ("\(entries.count)", entries.count == 1 ? "invoice" : "invoices", Link.invoices),
        ]
        let tileHTML = tiles.map { figure, label, link -> HTML in
            "<a class=\"tile\" href=\"\(link)\"><strong>\(figure)</strong><span>\(label)</span></a>"
        }
        let recent = try entries.suffix(5).reversed().map(invoiceRow)
        let checkpointHTML: HTML = checkpoint.map { checkpoint in
            Page.facts([
                ("Tree size", "\(checkpoint.size) invoices"),
                ("Root hash", Show.hash(checkpoint.rootHash)),
                ("Origin", "\(checkpoint.origin)"),
            ]) + "<p><a href=\"\(Link.ledger)\">The signed checkpoint and its signatures</a></p>"
        } ?? "<p class=\"muted\">No checkpoint yet: the registry signs one after the first settlement.</p>"
        return Page.render("Overview", section: .overview, """
        <h1>Provenance explorer</h1>
        <p class="lead">Which data and which people made each model, how every call's fee was split among them,
        and a ledger you can check yourself.</p>
        <div class="tiles">\(tileHTML)</div>
        \(Page.section("Latest checkpoint", checkpointHTML))
        \(Page.section("Recent invoices", Page.table(Self.invoiceHeaders, recent, numeric: [5], empty: "No invoice yet.") + "<p><a href=\"\(Link.invoices)\">All invoices</a></p>"))
        \(Page.section("Models", modelTable(models)))
        """)
    }

    // MARK: Datasets

    func datasetList(_ request: Request, _ context: RegistryRequestContext) async throws -> Response {
        let datasets = try await read { try $0.datasetSummaries() }
        let rows = datasets.map { summary -> [HTML] in
            ["<a href=\"\(Link.dataset(summary.name))\">\(summary.name)</a>", summary.head.map(Show.commit) ?? "–",
             "\(summary.commits)", "\(summary.contributors)", "\(summary.files)", "\(Show.bytes(summary.bytes))"]
        }
        return Page.render("Datasets", section: .datasets, """
        <h1>Datasets</h1>
        <p class="lead">Each dataset is a git repository: every commit is a contribution, its author the contributor.</p>
        \(Page.table(["Dataset", "Head", "Commits", "Contributors", "Files", "Size"], rows, numeric: [2, 3, 4, 5], empty: "No dataset yet."))
        """)
    }

    func datasetPage(_ request: Request, _ context: RegistryRequestContext) async throws -> Response {
        let name = try RegistryAPI.datasetName(context)
        let reference = try RegistryAPI.revisionReference(context, request)
        let (summary, resolved, contributors, log, manifest) = try await read { store in
            guard let summary = try store.datasetSummaries().first(where: { $0.name == name }) else {
                throw RegistryError.notFound("unknown dataset '\(name)'")
            }
            let resolved = try store.resolve(reference)
            let manifest = try resolved.registered ? store.manifest(of: RevisionReference(parsing: "\(name)@\(resolved.commit)")) : nil
            return (summary, resolved, try store.contributors(of: reference), try store.log(of: reference, limit: 200), manifest)
        }
        let atHead = resolved.commit == summary.head
        let contributorRows = contributors.map { contributor -> [HTML] in
            ["<a href=\"\(Link.contributor(contributor.id))\">\(contributor.name)</a> <span class=\"muted\">&lt;\(contributor.email)&gt;</span>",
             "\(contributor.commits)"]
        }
        let logRows = log.map { entry -> [HTML] in
            let commit: HTML = entry.registered
                ? "<a href=\"\(Link.dataset(name, rev: entry.commit))\">\(Show.commit(entry.commit))</a>"
                : Show.commit(entry.commit)
            return [commit, "\(entry.summary)", "<a href=\"\(Link.contributor(entry.id))\">\(entry.author)</a>", Show.time(entry.time),
                    entry.registered ? "<span class=\"badge ok\">registered</span>" : "<span class=\"badge\">history</span>"]
        }
        var manifestHTML: HTML = "<p class=\"muted\">This commit was not registered by <code>provenance add</code>, so it has no manifest; its registered descendants do.</p>"
        if let manifest {
            let decoded = try JSONDecoder().decode(Manifest.self, from: manifest.manifest)
            let rows = decoded.files.map { file -> [HTML] in ["<code>\(file.path)</code>", "\(Show.bytes(file.size))", Show.hash(file.sha256)] }
            manifestHTML = Page.facts([
                ("Manifest SHA-256", Show.hash(SHA256Digest.hex(of: manifest.manifest))),
                ("Files", "\(decoded.files.count) file\(decoded.files.count == 1 ? "" : "s"), \(Show.bytes(decoded.totalBytes))"),
            ]) + Page.table(["Path", "Size", "SHA-256"], rows, numeric: [1], caption: "Every file of the commit with its SHA-256")
        }
        let title = atHead ? name : "\(name)@\(resolved.commit.prefix(12))"
        let headHTML: HTML = atHead ? "this commit" : summary.head.map { head -> HTML in "<a href=\"\(Link.dataset(name))\">\(Show.commit(head))</a>" } ?? "–"
        return Page.render(title, section: .datasets, """
        <p class="crumbs"><a href="\(Link.datasets)">Datasets</a> /</p>
        <h1>\(name)\(atHead ? HTML.empty : HTML(" <span class=\"muted\">@ \(String(resolved.commit.prefix(12)))</span>"))</h1>
        \(Page.facts([
            ("Commit", Show.hash(resolved.commit)),
            ("Head", headHTML),
            ("Commits in history", "\(log.count)\(log.count == 200 ? "+" : "")"),
            ("Registered commits", "\(summary.registeredCommits)"),
            ("Clone", "<code>git clone …/datasets/\(name).git</code>"),
        ]))
        \(Page.section("Contributors", Page.table(["Contributor", "Commits"], contributorRows, numeric: [1])))
        \(Page.section("History", Page.table(["Commit", "Message", "Author", "Date", ""], logRows)))
        \(Page.section("Manifest", manifestHTML))
        """)
    }

    // MARK: Models

    func modelList(_ request: Request, _ context: RegistryRequestContext) async throws -> Response {
        let models = try await read { try $0.modelSummaries() }
        return Page.render("Models", section: .models, """
        <h1>Models</h1>
        <p class="lead">Every version links to the exact dataset commits and training logs it came from, through its base models.</p>
        \(modelTable(models))
        """)
    }

    func modelTable(_ models: [ModelSummary]) -> HTML {
        let rows = models.map { model -> [HTML] in
            let versions = model.versions.map { HTML("<a href=\"\(Link.version(model.model, $0))\">\($0)</a>") }
            return ["<a href=\"\(Link.model(model.model))\">\(model.model)</a>", versions.joined(separator: ", "), "<code>\(model.plugin)</code>"]
        }
        return Page.table(["Model", "Versions", "Active plugin"], rows, empty: "No model yet.")
    }

    func modelPage(_ request: Request, _ context: RegistryRequestContext) async throws -> Response {
        let name = try RegistryAPI.modelName(context)
        let (summary, versions, history, price) = try await read { store in
            guard let summary = try store.modelSummaries().first(where: { $0.model == name }) else { throw RegistryAPI.unknownModel(name) }
            let versions = try summary.versions.map { try store.showModel(ModelVersionReference(model: name, version: $0)) }
            return (summary, versions, try store.pluginHistory(model: name), try? store.price(model: name))
        }
        let rows = versions.reversed().map { info -> [HTML] in
            ["<a href=\"\(Link.version(name, info.version))\">\(info.version)</a>", Show.commit(info.commit),
             "\(info.developer)",
             "\(info.datasets.count)", info.base.map { "<a href=\"\(Link.version($0.model, $0.version))\">\($0.model)@\($0.version)</a>" } ?? "–"]
        }
        var priceHTML: HTML = "<p class=\"muted\">No price yet: calls to this model cannot be settled.</p>"
        if let price {
            let payload = PricePayload(model: name, price: price)
            let split = price.split.bps.sorted { $0.key.rawValue < $1.key.rawValue }.map { HTML("\($0.key.rawValue) \($0.value)") }
            priceHTML = Page.facts([
                ("Per 1,000 input tokens", Show.amount(payload.inputPer1kRaw)),
                ("Per 1,000 output tokens", Show.amount(payload.outputPer1kRaw)),
                ("Minimum fee", Show.amount(payload.minFeeRaw)),
                ("Split (basis points)", split.joined(separator: ", ")),
                ("SLO", price.sloMilliseconds.map { "\($0) ms, penalty \(price.sloPenaltyBps) bps of the node's share" } ?? "none"),
            ])
        }
        return Page.render(name, section: .models, """
        <p class="crumbs"><a href="\(Link.models)">Models</a> /</p>
        <h1>\(name)</h1>
        \(Page.facts([("Active plugin", "<code>\(summary.plugin)</code>"), ("Latest version", summary.latest.map { "<a href=\"\(Link.version(name, $0))\">\($0)</a>" } ?? "–"),
                      ("Invoices", "<a href=\"\(Link.invoices(model: name))\">invoices of \(name)</a>")]))
        \(Page.section("Versions", Page.table(["Version", "Commit", "Developer", "Datasets", "Base"], rows, numeric: [3])))
        \(Page.section("Price", priceHTML))
        \(Page.section("Plugin history", pluginHistoryTable(history)))
        """)
    }

    func pluginHistoryTable(_ history: [PluginChange]) -> HTML {
        let rows = history.reversed().map { change -> [HTML] in
            [Show.time(change.changedAt), "<code>\(change.plugin)</code>", "\(change.changedBy)", Show.commit(change.commit)]
        }
        return Page.table(["When", "Plugin", "By", "Recorded in"], rows, empty: "The plugin has not changed since the first version.")
    }

    func versionPage(_ request: Request, _ context: RegistryRequestContext) async throws -> Response {
        let reference = try RegistryAPI.modelVersion(context)
        let attribution = try await Blocking.run { [store, resolver] in try await store.attribute(reference, resolver: resolver) }
        let (lineage, history, shares) = try await read { store in
            let lineage = try store.lineage(of: reference, attribution: attribution)
            // What each version passes on to its base, for the graph's base edges.
            var shares: [String: UInt64] = [:]
            for level in lineage.chain {
                shares["\(level.model)@\(level.version)"] = try store.showModel(ModelVersionReference(model: level.model, version: level.version)).baseSharePPB
            }
            return (lineage, try store.pluginHistory(model: reference.model), shares)
        }
        let weights = attribution.weights.map { weight -> [HTML] in
            ["<a href=\"\(Link.contributor(weight.id))\">\(weight.contributor)</a>", Show.weight(weight.ppb),
             weight.raw.map { HTML("\(Self.figure($0))") } ?? "<span class=\"muted\">via base</span>"]
        }
        let share = attribution.baseSharePPB > 0
            ? HTML("<p>\(Show.percent(attribution.baseSharePPB)) of the weight flows to the base version <a href=\"\(Link.version(attribution.base ?? ""))\">\(attribution.base ?? "")</a>; the figures below include it.</p>")
            : .empty
        var datasetRows: [[HTML]] = []
        var logRows: [[HTML]] = []
        for level in lineage.chain {
            let owner: HTML = "<a href=\"\(Link.version(level.model, level.version))\">\(level.model)@\(level.version)</a>"
            for input in level.datasets {
                let people = input.contributors.map { HTML("<a href=\"\(Link.contributor($0.id))\">\($0.name)</a>") }
                datasetRows.append(["<a href=\"\(Link.dataset(input.dataset, rev: input.commit))\">\(input.dataset)</a> \(Show.commit(input.commit))",
                                    owner, Show.hash(input.manifestSHA256), "\(input.files)", people.joined(separator: ", ")])
            }
            for log in level.trainingLogs {
                logRows.append([owner, "<code>\(log.path)</code>", Show.hash(log.sha256), "\(Show.bytes(log.size))"])
            }
        }
        let chain = lineage.chain.map { level -> HTML in
            "<li><a href=\"\(Link.version(level.model, level.version))\">\(level.model)@\(level.version)</a> \(Show.commit(level.commit)) <span class=\"muted\">by</span> \(level.developer)</li>"
        }
        return Page.render("\(reference)", section: .models, """
        <p class="crumbs"><a href="\(Link.models)">Models</a> / <a href="\(Link.model(reference.model))">\(reference.model)</a> /</p>
        <h1>\(reference.model)<span class="muted">@</span>\(reference.version)</h1>
        \(Page.facts([
            ("Model commit", Show.hash(lineage.commit)),
            ("Developer", "<a href=\"\(Link.contributor(lineage.developerID))\">\(lineage.developer)</a>"),
            ("Active plugin", "<code>\(attribution.plugin)</code> <span class=\"muted\">version \(attribution.pluginVersion)</span>"),
            ("Weights file", lineage.weights.map { "\(Show.hash($0.sha256)) <span class=\"muted\">\(Show.bytes($0.size))</span>" } ?? "not recorded"),
            ("Lineage", "<ol class=\"chain\">\(chain)</ol>"),
        ]))
        \(Page.section("Lineage graph", id: "graph", "<p class=\"narrow-only muted small\">The graph is wider than this screen: scroll it sideways.</p>" + LineageGraph.svg(lineage, weights: attribution, baseShares: shares) + "<p class=\"muted small\">Contributors (left) authored commits in dataset commits (middle) that trained model versions (right); a version's base feeds it from below. Percentages are weights under <code>\(attribution.plugin)</code>. The tables below hold the same facts.</p>"))
        \(Page.section("Attribution", id: "attribution", "<p>Weights of \(reference.description) under <code>\(attribution.plugin)</code>, in integer parts per billion summing to exactly 1,000,000,000.</p>" + share
            + Page.table(["Contributor", "Weight", "Plugin's figure"], weights, numeric: [1, 2], caption: "Contributor weights")))
        \(Page.section("Dataset commits", Page.table(["Dataset commit", "Used by", "Manifest SHA-256", "Files", "Contributors"], datasetRows, numeric: [3])))
        \(Page.section("Training logs", Page.table(["Version", "Log", "SHA-256", "Size"], logRows, numeric: [3], empty: "No training log recorded.")))
        \(Page.section("Plugin history", pluginHistoryTable(history)))
        <p><a href="\(Link.invoices(model: reference.model))">Invoices of \(reference.model)</a></p>
        """)
    }

    static func figure(_ value: Double) -> String {
        value.rounded() == value && abs(value) < 1e15 ? Int64(value).formatted(grouping: true) : String(format: "%.6g", value)
    }

    // MARK: Contributors

    func contributorList(_ request: Request, _ context: RegistryRequestContext) async throws -> Response {
        let rows = try await read { store -> [[HTML]] in
            var people: [String: (identity: String, datasets: [String], commits: Int)] = [:]
            var order: [String] = []
            for summary in try store.datasetSummaries() where summary.head != nil {
                for contributor in try store.contributors(of: RevisionReference(parsing: summary.name)) {
                    if people[contributor.id] == nil { order.append(contributor.id); people[contributor.id] = (contributor.identity, [], 0) }
                    people[contributor.id]!.datasets.append(summary.name)
                    people[contributor.id]!.commits += contributor.commits
                }
            }
            var earned: [String: Int128] = [:]
            for entry in try store.invoices(account: nil, model: nil) {
                let invoice = try JSONValue.parse(entry.bytes)
                for payout in invoice["settlement"]?["payouts"]?.arrayValue ?? [] {
                    guard let account = payout["account"]?.stringValue, people[account] != nil,
                          let amount = payout["amount"]?.stringValue.flatMap({ Int128($0) }) else { continue }
                    earned[account, default: 0] += amount
                }
            }
            return order.sorted().map { id in
                let person = people[id]!
                return ["<a href=\"\(Link.contributor(id))\">\(person.identity)</a>",
                        person.datasets.map { HTML("<a href=\"\(Link.dataset($0))\">\($0)</a>") }.joined(separator: ", "),
                        "\(person.commits)", Show.amount(TokenAmount(raw: earned[id] ?? 0))]
            }
        }
        return Page.render("Contributors", section: .contributors, """
        <h1>Contributors</h1>
        <p class="lead">Everyone whose commits are in a dataset's head, by contributor id (the email after <code>.mailmap</code>), with what the ledger has paid them.</p>
        \(Page.table(["Contributor", "Datasets", "Commits", "Earned"], rows, numeric: [2, 3], empty: "No contributor yet."))
        """)
    }

    func contributorPage(_ request: Request, _ context: RegistryRequestContext) async throws -> Response {
        let account = try RegistryAPI.account(context)
        guard let report = try await read({ try ContributorReport.make(account: account, store: $0) }) else {
            throw RegistryError.notFound("no contributor '\(account)': no dataset holds their commits and no invoice paid them")
        }
        let datasetRows = report.datasets.map { share -> [HTML] in
            ["<a href=\"\(Link.dataset(share.dataset))\">\(share.dataset)</a>", "\(share.contributor)", "\(share.commits)", Show.commit(share.head)]
        }
        let modelRows = report.models.map { use -> [HTML] in
            let via = use.via.map { text -> HTML in
                let parts = text.split(separator: "@", maxSplits: 1).map(String.init)
                return "<a href=\"\(Link.dataset(parts[0], rev: parts[1]))\">\(parts[0])</a> \(Show.commit(parts[1]))"
            }
            return ["<a href=\"\(Link.version(use.model, use.version))\">\(use.model)@\(use.version)</a>", Show.commit(use.commit),
                    via.joined(separator: "<br>")]
        }
        let invoiceRows = report.invoices.reversed().map { earning -> [HTML] in
            ["<a href=\"\(Link.invoice(earning.index))\">#\(earning.index)</a>", Show.time(earning.settledAt),
             "<a href=\"\(Link.version(earning.model, earning.version))\">\(earning.model)@\(earning.version)</a>",
             "\(earning.roles.joined(separator: ", "))", Show.amount(earning.amountRaw)]
        }
        var evidence: [HTML] = []
        for earning in report.invoices where !earning.evidence.isEmpty {
            evidence.append("<h3><a href=\"\(Link.invoice(earning.index))\">Invoice #\(earning.index)</a></h3>\(InvoicePage.value(.array(earning.evidence), key: "spans"))")
        }
        let title = report.names.first ?? account
        return Page.render(title, section: .contributors, """
        <p class="crumbs"><a href="\(Link.contributors)">Contributors</a> /</p>
        <h1>\(title)</h1>
        \(Page.facts([
            ("Contributor id", "<code>\(account)</code>"),
            ("Also recorded as", report.names.count > 1 ? HTML("\(report.names.dropFirst().joined(separator: "; "))") : "–"),
            ("Earned in total", Show.amount(report.totalAmount)),
            ("Invoices that paid them", "<a href=\"\(Link.invoices(account: account))\">\(report.invoices.count)</a>"),
        ]))
        \(Page.section("Earnings over time", id: "earnings", EarningsChart.svg(report.invoices)))
        \(Page.section("Datasets", Page.table(["Dataset", "As", "Commits", "Head"], datasetRows, numeric: [2], empty: "No dataset holds their commits.")))
        \(Page.section("Model versions trained on their data", id: "models", Page.table(["Version", "Commit", "Through"], modelRows, empty: "No model version uses their data yet.")))
        \(Page.section("Invoices that paid them", id: "invoices", Page.table(["Invoice", "Settled", "Model", "Role", "Amount"], invoiceRows, numeric: [4], empty: "No invoice has paid them yet.")))
        \(evidence.isEmpty ? HTML.empty : Page.section("Spans that earned", id: "spans", "<p>The evidence each invoice records for this contributor: dataset, commit, path and lines.</p>" + evidence.joined(separator: "")))
        """)
    }

    // MARK: Invoices

    static let invoiceHeaders = ["Invoice", "Settled", "Caller", "Model", "Node", "Fee"]

    func invoiceRow(_ entry: InvoiceEntry) throws -> [HTML] {
        let invoice = try JSONValue.parse(entry.bytes)
        let parties = invoice["parties"]
        let model = parties?["model"]?.stringValue ?? ""
        let version = parties?["version"]?.stringValue ?? ""
        return ["<a href=\"\(Link.invoice(entry.index))\">#\(entry.index)</a>", Show.time(entry.settledAt),
                Show.account(parties?["caller"]?.stringValue ?? ""),
                "<a href=\"\(Link.version(model, version))\">\(model)@\(version)</a>",
                "\(parties?["node"]?.stringValue ?? "")", Show.amount(invoice["pricing"]?["fee"]?.stringValue ?? "")]
    }

    func invoiceList(_ request: Request, _ context: RegistryRequestContext) async throws -> Response {
        if let index = try request.integerQuery("index") {
            return Response(status: .seeOther, headers: [.location: Link.invoice(index)])
        }
        let account = try request.query("account", pattern: Pattern.account, hint: "use 1-128 characters a-z 0-9 @ . _ + : -")
        let model = try request.query("model", pattern: Pattern.name, hint: "use a model name")
        let page = try request.integerQuery("page", in: 1...1_000_000) ?? 1
        let entries = try await read { try $0.invoices(account: account, model: model) }
        let pages = max(1, (entries.count + Self.invoicesPerPage - 1) / Self.invoicesPerPage)
        let newestFirst = Array(entries.reversed().dropFirst((page - 1) * Self.invoicesPerPage).prefix(Self.invoicesPerPage))
        let rows = try newestFirst.map(invoiceRow)
        var filter: [HTML] = []
        if let account { filter.append("paying or paid by \(Show.account(account))") }
        if let model { filter.append("of <a href=\"\(Link.model(model))\">\(model)</a>") }
        var pager: [HTML] = []
        if page > 1 { pager.append("<a rel=\"prev\" href=\"\(Link.invoices(account: account, model: model, page: page - 1))\">Newer</a>") }
        if pages > 1 { pager.append("<span>page \(page) of \(pages)</span>") }
        if page < pages { pager.append("<a rel=\"next\" href=\"\(Link.invoices(account: account, model: model, page: page + 1))\">Older</a>") }
        return Page.render("Invoices", section: .invoices, """
        <h1>Invoices</h1>
        <p class="lead">\(entries.count) AI invoice\(entries.count == 1 ? "" : "s")\(filter.isEmpty ? HTML.empty : " " + filter.joined(separator: " and ")), newest first. Each is a leaf of the Merkle ledger.</p>
        <form class="jump" action="\(Link.invoices)" method="get"><label for="jump-index">Go to invoice</label> <input id="jump-index" name="index" inputmode="numeric" pattern="[0-9]+" size="6" required> <button type="submit">Open</button></form>
        \(Page.table(Self.invoiceHeaders, rows, numeric: [5], empty: "No invoice matches."))
        <nav class="pager" aria-label="Pages">\(pager)</nav>
        """)
    }

    func invoicePage(_ request: Request, _ context: RegistryRequestContext) async throws -> Response {
        let index = try RegistryAPI.invoiceIndex(context)
        let (entry, checkpoint) = try await read { store in (try store.invoice(index), try? store.checkpoint()) }
        return try InvoicePage.render(entry, checkpoint: checkpoint)
    }

    func ledgerPage(_ request: Request, _ context: RegistryRequestContext) async throws -> Response {
        let (checkpoint, size, cosigned) = try await read { store in
            (try? store.checkpoint(), try store.invoices(account: nil, model: nil).count, try? store.cosignedCheckpoint())
        }
        // The latest checkpoint with its witnesses' cosignatures, once a quorum has cosigned it.
        var shown = checkpoint
        if let cosigned, let latest = checkpoint, cosigned.size == latest.size, cosigned.rootHash == latest.rootHash { shown?.note = cosigned.note }
        return LedgerPage.render(shown, invoices: size)
    }
}
