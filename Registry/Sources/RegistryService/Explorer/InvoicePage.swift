import Foundation
import Hummingbird
import ProvenanceCore

/// An AI invoice, drawn from its canonical JSON (the bytes the ledger hashes), group by group.
///
/// The page reads the document, not the core's `Invoice` type: what it knows (the five groups,
/// payouts, lineage levels) gets a tailored rendering, and any field it does not know is still
/// shown as it is written, so a change to the invoice's contents never hides a fact.
enum InvoicePage {
    /// Fields holding base-unit amounts: written as token decimals, as the CLI prints them.
    static let amountKeys: Set<String> = ["input_per_1k", "output_per_1k", "min_fee", "fee", "penalty", "node_stake", "refund", "amount"]
    static let accountKeys: Set<String> = ["caller", "account", "developer", "contributor", "router"]
    static let labels: [String: String] = [
        "input_tokens": "Input tokens", "output_tokens": "Output tokens", "latency_ms": "Latency (ms)", "slo_ms": "SLO (ms)",
        "slo_met": "SLO met", "output_sha256": "Output SHA-256", "input_per_1k": "Per 1,000 input tokens",
        "output_per_1k": "Per 1,000 output tokens", "min_fee": "Minimum fee", "split_bps": "Split (basis points)",
        "slo_penalty_bps": "SLO penalty (bps)", "node_stake": "Node stake", "ledger_index": "Ledger index",
        "model_commit": "Model commit", "plugin_version": "Plugin version", "base_share_ppb": "Base share (ppb)",
        "training_log_sha256": "Training-log SHA-256", "manifest_sha256": "Manifest SHA-256", "node_key": "Node key",
        "idempotency_key": "Idempotency key", "batch_root": "Batch root",
    ]

    static func label(_ key: String) -> String {
        if let label = labels[key] { return label }
        let words = key.replacingOccurrences(of: "_", with: " ")
        return words.prefix(1).uppercased() + words.dropFirst()
    }

    static func render(_ entry: InvoiceEntry, checkpoint: CheckpointInfo?) throws -> Response {
        // The whole invoice: a format-2 invoice's lineage and rates written out from the terms
        // block its leaf names (the verification below still hashes the exact stored bytes).
        let invoice = try JSONValue.parse(entry.invoice.expanded.encoded())
        let index = entry.index
        let parties = invoice["parties"]?.objectValue ?? [:]
        let model = parties["model"]?.stringValue ?? ""
        let version = parties["version"]?.stringValue ?? ""
        let metering = invoice["metering"]?.objectValue ?? [:]
        var badges: [HTML] = []
        if let mode = invoice["settlement"]?["mode"]?.stringValue { badges.append("<span class=\"badge\">\(mode)</span>") }
        if case .bool(let met)? = metering["slo_met"], metering["slo_ms"] != nil, metering["slo_ms"] != .null {
            badges.append(met ? "<span class=\"badge ok\">SLO met</span>" : "<span class=\"badge warn\">SLO missed</span>")
        }
        let known = ["format", "parties", "metering", "traceability", "pricing", "settlement"]
        var others: [HTML] = []
        for (key, value) in (invoice.objectValue ?? [:]).sorted(by: { $0.key < $1.key }) where !known.contains(key) {
            others.append(Page.section(label(key), id: "group-\(key)", Self.value(value, key: key)))
        }
        let inCheckpoint = checkpoint.map { index < $0.size } ?? false
        let body: HTML = """
        <p class="crumbs"><a href="\(Link.invoices)">Invoices</a> /</p>
        <h1>Invoice #\(index) \(badges)</h1>
        \(Page.facts([
            ("Call", "<a href=\"\(Link.version(model, version))\">\(model)@\(version)</a> for \(Show.account(parties["caller"]?.stringValue ?? "")) on node \(parties["node"]?.stringValue ?? "")"),
            ("Fee", Show.amount(invoice["pricing"]?["fee"]?.stringValue ?? "")),
            ("Settled", Show.time(entry.settledAt)),
            ("Leaf hash", Show.hash(entry.leafHash)),
            ("Format", "<code>\(invoice["format"]?.stringValue ?? "")</code>, <a href=\"/v1/invoices/\(index)/canonical\">canonical bytes</a>"),
        ]))
        \(verifyPanel(index: index, inCheckpoint: inCheckpoint))
        \(Page.section("Parties", id: "group-parties", partiesHTML(parties)))
        \(Page.section("Metering", id: "group-metering", facts(metering, order: ["input_tokens", "output_tokens", "latency_ms", "slo_ms", "slo_met", "output_sha256"])))
        \(Page.section("Traceability", id: "group-traceability", traceabilityHTML(invoice["traceability"]?.objectValue ?? [:])))
        \(Page.section("Pricing", id: "group-pricing", facts(invoice["pricing"]?.objectValue ?? [:], order: ["input_per_1k", "output_per_1k", "min_fee", "fee", "split_bps", "slo_penalty_bps", "penalty", "node_stake"])))
        \(Page.section("Settlement", id: "group-settlement", settlementHTML(invoice["settlement"]?.objectValue ?? [:])))
        \(others)
        """
        return Page.render("Invoice #\(index)", section: .invoices, scripts: [ExplorerAssets.verifierPath], body)
    }

    static func verifyPanel(index: Int, inCheckpoint: Bool) -> HTML {
        let steps: [(String, String)] = [
            ("Invoice bytes", "Download the canonical bytes of invoice #\(index) from /v1/invoices/\(index)/canonical."),
            ("Leaf hash", "Compute SHA-256(0x00 ‖ bytes) and compare it with leaf #\(index) of the ledger."),
            ("Inclusion proof", "Hash up the RFC 9162 inclusion proof from that leaf to a root, and compare it with the checkpoint's root."),
            ("Checkpoint signature", "Check the registry's Ed25519 signature on the checkpoint note."),
        ]
        let items = steps.enumerated().map { offset, step -> HTML in
            "<li data-step=\"\(offset + 1)\" data-status=\"pending\"><span class=\"mark\" aria-hidden=\"true\"></span><div><strong>\(step.0)</strong><p class=\"detail\">\(step.1)</p></div></li>"
        }
        let note: HTML = inCheckpoint ? .empty : "<p class=\"warn-text\">This invoice is not in a signed checkpoint yet; verification will say so at the inclusion step.</p>"
        return """
        <section class="card verify" id="verify" data-index="\(index)" aria-labelledby="verify-title">
        <h2 id="verify-title">Verify in your browser</h2>
        <p>Your browser fetches this invoice's exact bytes, its inclusion proof and the signed checkpoint from the public API, and checks them with WebCrypto (SHA-256 and Ed25519). It trusts nothing written on this page.</p>
        \(note)
        <p><button id="verify-button" type="button">Verify invoice #\(index)</button> <a class="muted small" href="\(Link.invoice(index))?verify=1">link that verifies on opening</a></p>
        <ol id="verify-steps" class="steps">\(items)</ol>
        <p id="verify-result" role="status" aria-live="polite" data-status="idle"></p>
        <noscript><p class="muted">Verification runs in the browser with JavaScript. Without it, check the same facts with the CLI: <code>provenance invoice show \(index) --canonical</code>, <code>provenance ledger proof \(index)</code> and <code>provenance ledger checkpoint</code>, or <code>provenance verify</code> on a copy of the store.</p></noscript>
        </section>
        """
    }

    static func partiesHTML(_ parties: [String: JSONValue]) -> HTML {
        var pairs: [(String, HTML)] = []
        if let model = parties["model"]?.stringValue, let version = parties["version"]?.stringValue {
            pairs.append(("Model", "<a href=\"\(Link.version(model, version))\">\(model)@\(version)</a>"))
        }
        for key in ["model_commit", "caller", "node", "router"] { if let value = parties[key] { pairs.append((label(key), Self.value(value, key: key))) } }
        for (key, value) in parties.sorted(by: { $0.key < $1.key }) where !["model", "version", "model_commit", "caller", "node", "router"].contains(key) {
            pairs.append((label(key), Self.value(value, key: key)))
        }
        return Page.facts(pairs)
    }

    static func traceabilityHTML(_ group: [String: JSONValue]) -> HTML {
        var out = facts(group.filter { $0.key != "lineage" && $0.key != "call_attribution" }, order: ["plugin", "plugin_version"])
        for attribution in group["call_attribution"]?.arrayValue ?? [] {
            out = out + callAttributionHTML(attribution)
        }
        for (depth, level) in (group["lineage"]?.arrayValue ?? []).enumerated() {
            guard let fields = level.objectValue else { out = out + Self.value(level, key: "lineage"); continue }
            let model = fields["model"]?.stringValue ?? ""
            let version = fields["version"]?.stringValue ?? ""
            let datasets = (fields["datasets"]?.arrayValue ?? []).map { input -> [HTML] in
                let dataset = input["dataset"]?.stringValue ?? ""
                let commit = input["commit"]?.stringValue ?? ""
                return ["<a href=\"\(Link.dataset(dataset, rev: commit))\">\(dataset)</a> \(Show.commit(commit))",
                        Show.hash(input["manifest_sha256"]?.stringValue ?? "")]
            }
            let weights = (fields["weights"]?.arrayValue ?? []).map { weight -> [HTML] in
                let id = weight["contributor"]?.stringValue ?? ""
                let ppb = weight["ppb"]?.scalarText.flatMap { UInt64($0) } ?? 0
                return ["<a href=\"\(Link.contributor(id))\">\(id)</a>", Show.weight(ppb)]
            }
            let rest = fields.filter { !["model", "version", "datasets", "weights"].contains($0.key) }
            let role = depth == 0 ? "the called version" : "base, \(depth) level\(depth == 1 ? "" : "s") down"
            out = out + """
            <div class="level"><h3><a href="\(Link.version(model, version))">\(model)@\(version)</a> <span class="muted small">\(role)</span></h3>
            \(facts(rest, order: ["model_commit", "developer", "plugin", "plugin_version", "base_share_ppb", "training_log_sha256"]))
            \(Page.table(["Dataset commit", "Manifest SHA-256"], datasets, caption: "Dataset commits of \(model)@\(version)", empty: "No dataset."))
            \(Page.table(["Contributor", "Weight"], weights, numeric: [1], caption: "Weights of \(model)@\(version)", empty: "No weights: the data pool goes on to the base."))
            </div>
            """
        }
        return out
    }

    /// One level's attribution for this call: the spans of the output found verbatim in the
    /// training data, each with where it is in git and who wrote it.
    static func callAttributionHTML(_ attribution: JSONValue) -> HTML {
        let level = attribution["level"]?.stringValue ?? ""
        let basis = attribution["basis"]?.stringValue ?? ""
        let spans = (attribution["spans"]?.arrayValue ?? []).map { span -> [HTML] in
            let dataset = span["dataset"]?.stringValue ?? ""
            let commit = span["commit"]?.stringValue ?? ""
            let first = span["line_start"]?.scalarText ?? "", last = span["line_end"]?.scalarText ?? ""
            let offset = UInt64(span["output_offset"]?.scalarText ?? "") ?? 0, length = UInt64(span["length"]?.scalarText ?? "") ?? 0
            let contributor = span["contributor"]?.stringValue ?? ""
            return ["\(offset)–\(offset + length)", "\(length)", "<a href=\"\(Link.contributor(contributor))\">\(contributor)</a>",
                    "<a href=\"\(Link.dataset(dataset, rev: commit))\">\(dataset)</a> \(Show.commit(commit)) \(span["path"]?.stringValue ?? "") lines \(first)\(first == last ? "" : "–\(last)")",
                    "<code class=\"span-text\">\(span["text"]?.stringValue ?? "")</code>"]
        }
        let weights = (attribution["weights"]?.arrayValue ?? []).map { weight -> [HTML] in
            let id = weight["contributor"]?.stringValue ?? ""
            return ["<a href=\"\(Link.contributor(id))\">\(id)</a>", Show.weight(weight["ppb"]?.scalarText.flatMap { UInt64($0) } ?? 0)]
        }
        let summary: HTML
        switch basis {
        case "spans": summary = "The output reproduced these spans of the training data; their authors share the data pool by the bytes they earned."
        case "fallback": summary = "The output reproduced no span of the training data: the version's own weights applied."
        default: summary = "Weighed for this call by the model's plugin."
        }
        return """
        <div class="level"><h3>This call's attribution at <a href="\(Link.version(level))">\(level)</a></h3>
        <p>\(summary)</p>
        \(basis == "spans" ? Page.table(["Output bytes", "Bytes", "Contributor", "Where in git", "Text"], spans, numeric: [1],
                                       caption: "Spans of the output found in the training data of \(level)", empty: "No span.") : .empty)
        \(Page.table(["Contributor", "Weight"], weights, numeric: [1], caption: "Weights of this call at \(level)", empty: "No weights."))
        </div>
        """
    }

    static func settlementHTML(_ group: [String: JSONValue]) -> HTML {
        var out = facts(group.filter { $0.key != "payouts" }, order: ["mode", "batch", "ledger_index", "refund"])
        guard let payouts = group["payouts"]?.arrayValue else { return out }
        var total: Int128 = 0
        let rows = payouts.map { payout -> [HTML] in
            let raw = payout["amount"]?.stringValue ?? ""
            total += Int128(raw) ?? 0
            let level = payout["level"]?.stringValue
            var row: [HTML] = [Show.account(payout["account"]?.stringValue ?? ""), "\(payout["role"]?.stringValue ?? "")",
                               level.map { "<a href=\"\(Link.version($0))\">\($0)</a>" } ?? "–", Show.amount(raw)]
            let extra = (payout.objectValue ?? [:]).filter { !["account", "role", "amount", "level"].contains($0.key) }
            row.append(extra.isEmpty ? "" : facts(extra, order: []))
            return row
        }
        let hasExtra = payouts.contains { ($0.objectValue ?? [:]).keys.contains { !["account", "role", "amount", "level"].contains($0) } }
        let headers = ["Payee", "Role", "For", "Amount"] + (hasExtra ? ["Evidence"] : [])
        out = out + "<h3>Payouts</h3>" + Page.table(headers, hasExtra ? rows : rows.map { Array($0.prefix(4)) }, numeric: [3], caption: "Payouts")
        out = out + "<p class=\"total\">Paid out in total: \(Show.amount(TokenAmount(raw: total)))</p>"
        return out
    }

    /// The fields of a group as facts: `order` first, then the rest by name.
    static func facts(_ group: [String: JSONValue], order: [String]) -> HTML {
        var pairs: [(String, HTML)] = []
        for key in order { if let item = group[key] { pairs.append((label(key), Self.value(item, key: key))) } }
        for (key, value) in group.sorted(by: { $0.key < $1.key }) where !order.contains(key) {
            pairs.append((label(key), Self.value(value, key: key)))
        }
        return Page.facts(pairs)
    }

    /// Any JSON value, rendered by what its key says it is.
    static func value(_ value: JSONValue, key: String) -> HTML {
        switch value {
        case .null:
            return "<span class=\"muted\">none</span>"
        case .bool(let flag):
            return flag ? "yes" : "no"
        case .string(let text):
            if amountKeys.contains(key), TokenAmount(rawString: text) != nil { return Show.amount(text) }
            if accountKeys.contains(key) { return Show.account(text) }
            if key.hasSuffix("commit") { return Show.commit(text) }
            if key.contains("sha256") || key.contains("hash") || key.contains("signature") || key.hasSuffix("key") || key.hasSuffix("root") {
                return Show.hash(text)
            }
            return "\(text)"
        case .number:
            return "\(value.scalarText ?? "")"
        case .object(let members):
            if key == "split_bps" {
                return members.sorted { $0.key < $1.key }.map { HTML("\($0.key) \($0.value.scalarText ?? "")") }.joined(separator: ", ")
            }
            return facts(members, order: [])
        case .array(let items):
            if items.isEmpty { return "<span class=\"muted\">none</span>" }
            if items.allSatisfy({ $0.objectValue != nil }) {
                var columns: [String] = []
                for item in items { for column in (item.objectValue ?? [:]).keys.sorted() where !columns.contains(column) { columns.append(column) } }
                let rows = items.map { item in columns.map { column in item[column].map { Self.value($0, key: column) } ?? "" } }
                return Page.table(columns.map(label), rows)
            }
            return items.map { Self.value($0, key: key) }.joined(separator: "<br>")
        }
    }
}

/// The latest signed checkpoint, its note and every signature on it.
enum LedgerPage {
    struct SignatureLine {
        var name: String
        var keyID: String
        var signature: String
    }

    /// The signature lines of a C2SP signed note: `— NAME BASE64(key id ‖ signature)`.
    static func signatures(_ note: String) -> (text: String, signatures: [SignatureLine]) {
        guard let range = note.range(of: "\n\n") else { return (note, []) }
        let text = String(note[..<note.index(after: range.lowerBound)])
        var lines: [SignatureLine] = []
        for line in note[range.upperBound...].split(separator: "\n") where line.hasPrefix("\u{2014} ") {
            let parts = line.dropFirst(2).split(separator: " ", maxSplits: 1)
            guard parts.count == 2, let bytes = Data(base64Encoded: String(parts[1])), bytes.count >= 4 else { continue }
            lines.append(SignatureLine(name: String(parts[0]), keyID: bytes.prefix(4).map { String(format: "%02x", $0) }.joined(),
                                       signature: String(parts[1])))
        }
        return (text, lines)
    }

    static func render(_ checkpoint: CheckpointInfo?, invoices: Int) -> Response {
        guard let checkpoint else {
            return Page.render("Ledger", section: .ledger, """
            <h1>Ledger</h1>
            <p class="lead">No checkpoint yet: the registry signs one after the first settlement.</p>
            """)
        }
        let (text, lines) = signatures(checkpoint.note)
        let keyParts = checkpoint.verifierKey.split(separator: "+", maxSplits: 2)  // the base64 may hold "+"
        let registryKeyID = keyParts.count == 3 ? String(keyParts[1]) : ""
        let rows = lines.map { line -> [HTML] in
            let own = line.name == checkpoint.origin || (line.name == keyParts.first.map(String.init) && line.keyID == registryKeyID)
            return ["<code>\(line.name)</code>", "<code>\(line.keyID)</code>",
                    own ? "<span class=\"badge ok\">the registry's key</span>" : "<span class=\"badge\">cosignature (witness)</span>"]
        }
        let witnesses = lines.count - rows.filter { $0[2].raw.contains("registry") }.count
        let help: HTML = """
        <p>Open any invoice and press <em>Verify in your browser</em>: it checks the invoice's leaf, its inclusion proof against this root and this signature. Or use the public API with any RFC 9162 and signed-note tool:</p>
        <ul class="plain">
        <li><a href="/v1/ledger/checkpoint"><code>GET /v1/ledger/checkpoint</code></a></li>
        <li><code>GET /v1/ledger/inclusion-proof?index=N</code> and <code>GET /v1/invoices/N/canonical</code></li>
        <li><code>GET /v1/ledger/consistency-proof?old_size=M</code></li>
        </ul>
        <form class="jump" action="\(Link.invoices)" method="get"><label for="ledger-index">Verify invoice</label> <input id="ledger-index" name="index" inputmode="numeric" pattern="[0-9]+" size="6" required> <button type="submit">Open</button></form>
        """
        let signedNote: HTML = "<h3>Signed note</h3><pre class=\"note\">\(text)\n\(lines.map { "\u{2014} \($0.name) \($0.signature)" }.joined(separator: "\n"))</pre>"
        return Page.render("Ledger", section: .ledger, """
        <h1>Ledger</h1>
        <p class="lead">Every invoice is a leaf of an append-only RFC 9162 Merkle tree: leaf = SHA-256(0x00 ‖ invoice bytes), node = SHA-256(0x01 ‖ left ‖ right). After each settlement the registry signs a checkpoint of the tree as a C2SP signed note.</p>
        \(Page.section("Latest checkpoint", Page.facts([
            ("Origin", "<code>\(checkpoint.origin)</code>"),
            ("Tree size", "\(checkpoint.size) of \(invoices) invoice\(invoices == 1 ? "" : "s")"),
            ("Root hash", Show.hash(checkpoint.rootHash)),
            ("Verifier key", Show.hash(checkpoint.verifierKey)),
        ]) + signedNote))
        \(Page.section("Signatures", Page.table(["Key name", "Key id", "Whose"], rows)
            + (witnesses == 0 ? "<p class=\"muted\">No witness has cosigned this checkpoint yet; cosignatures appear here as witnesses add them.</p>" : "")))
        \(Page.section("Check it yourself", help))
        """)
    }
}
