import Foundation
import ProvenanceCore

/// A model version's lineage as an SVG graph drawn on the server: contributors, the dataset
/// commits holding their work, and the model versions trained on those commits, each base
/// version feeding the one above it. Every node is a link, so the graph works with a keyboard.
enum LineageGraph {
    static let width = 960
    static let nodeWidth = 270
    static let nodeHeight = 44
    static let rowHeight = 58
    static let top = 40
    static let columns = [8, 330, 652]

    struct Node {
        var id: String
        var title: String
        var subtitle: String
        var link: String
        var kind: String
        var tooltip: String
    }

    /// - Parameter baseShares: parts per billion each version (`MODEL@VERSION`) passes to its base.
    static func svg(_ lineage: Lineage, weights: AttributionResult?, baseShares: [String: UInt64] = [:]) -> HTML {
        let ppb = Dictionary((weights?.weights ?? []).map { ($0.id, $0.ppb) }, uniquingKeysWith: { first, _ in first })
        var contributors: [Node] = []
        var datasets: [Node] = []
        var models: [Node] = []
        var edges: [(from: String, to: String, kind: String)] = []
        var baseEdges: [(from: String, to: String, label: String)] = []
        for level in lineage.chain {
            let modelID = "m:\(level.model)@\(level.version)"
            models.append(Node(id: modelID, title: "\(level.model)@\(level.version)", subtitle: "\(level.commit.prefix(10)) · \(level.developerID)",
                               link: Link.version(level.model, level.version), kind: "model",
                               tooltip: "model \(level.model)@\(level.version), commit \(level.commit), developer \(level.developer)"))
            if let base = level.base {
                let share = baseShares["\(level.model)@\(level.version)"]
                baseEdges.append((from: "m:\(base.model)@\(base.version)", to: modelID,
                                  label: share.map { "base · \(Show.percent($0))" } ?? "base"))
            }
            for input in level.datasets {
                let datasetID = "d:\(input.dataset)@\(input.commit)"
                if !datasets.contains(where: { $0.id == datasetID }) {
                    datasets.append(Node(id: datasetID, title: input.dataset, subtitle: "\(input.commit.prefix(12)) · \(input.files) file\(input.files == 1 ? "" : "s")",
                                         link: Link.dataset(input.dataset, rev: input.commit), kind: "dataset",
                                         tooltip: "dataset \(input.dataset) at \(input.commit), manifest \(input.manifestSHA256)"))
                }
                edges.append((from: datasetID, to: modelID, kind: "uses"))
                for person in input.contributors {
                    let personID = "c:\(person.id)"
                    if !contributors.contains(where: { $0.id == personID }) {
                        let weight = ppb[person.id].map { "weight \(Show.percent($0))" } ?? "no weight here"
                        contributors.append(Node(id: personID, title: person.name, subtitle: "\(weight) · \(person.id)",
                                                 link: Link.contributor(person.id), kind: "contributor",
                                                 tooltip: "\(person.contributor): \(weight)"))
                    }
                    edges.append((from: personID, to: datasetID, kind: "authored"))
                }
            }
        }
        let rows = max(contributors.count, datasets.count, models.count, 1)
        let height = top + rows * rowHeight + 8
        var position: [String: (x: Int, y: Int)] = [:]
        for (column, nodes) in [contributors, datasets, models].enumerated() {
            // Spread each column over the full height, so the graph reads left to right.
            let slot = Double(rows * rowHeight) / Double(max(nodes.count, 1))
            for (index, node) in nodes.enumerated() {
                let y = top + Int(slot * (Double(index) + 0.5)) - nodeHeight / 2
                position[node.id] = (columns[column], y)
            }
        }
        var out = "<div class=\"graph\" tabindex=\"0\" role=\"region\" aria-label=\"Lineage graph of \(HTML.escape(lineage.model))@\(HTML.escape(lineage.version))\">"
        out += "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 \(width) \(height)\" width=\"\(width)\" height=\"\(height)\" role=\"img\" aria-labelledby=\"graph-title\">"
        out += "<title id=\"graph-title\">Lineage of \(HTML.escape(lineage.model))@\(HTML.escape(lineage.version)): \(contributors.count) contributors, \(datasets.count) dataset commits, \(models.count) model versions</title>"
        out += "<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto-start-reverse\"><path d=\"M0 0 10 5 0 10z\" class=\"arrowhead\"/></marker></defs>"
        for (index, heading) in ["Contributors", "Dataset commits", "Model versions"].enumerated() {
            out += "<text class=\"g-heading\" x=\"\(columns[index])\" y=\"18\">\(heading)</text>"
        }
        for edge in edges {
            guard let from = position[edge.from], let to = position[edge.to] else { continue }
            let x1 = from.x + nodeWidth, y1 = from.y + nodeHeight / 2, x2 = to.x - 2, y2 = to.y + nodeHeight / 2
            let mid = (x1 + x2) / 2
            out += "<path class=\"g-edge g-\(edge.kind)\" d=\"M\(x1) \(y1) C\(mid) \(y1) \(mid) \(y2) \(x2) \(y2)\" marker-end=\"url(#arrow)\"/>"
        }
        for edge in baseEdges {
            guard let from = position[edge.from], let to = position[edge.to] else { continue }
            let x = from.x + nodeWidth, y1 = from.y + nodeHeight / 2, y2 = to.y + nodeHeight / 2
            let bulge = min(width - 4, x + 34)
            out += "<path class=\"g-edge g-base\" d=\"M\(x) \(y1) C\(bulge) \(y1) \(bulge) \(y2) \(x + 3) \(y2)\" marker-end=\"url(#arrow)\"/>"
            out += "<text class=\"g-label\" x=\(quote(from.x + nodeWidth - 4)) y=\(quote((y1 + y2) / 2 + 4)) text-anchor=\"end\">\(HTML.escape(edge.label))</text>"
        }
        for node in contributors + datasets + models {
            guard let at = position[node.id] else { continue }
            out += "<a href=\"\(HTML.escape(node.link))\" class=\"g-node g-\(node.kind)\"><title>\(HTML.escape(node.tooltip))</title>"
            out += "<rect x=\"\(at.x)\" y=\"\(at.y)\" width=\"\(nodeWidth)\" height=\"\(nodeHeight)\" rx=\"8\"/>"
            out += "<text x=\"\(at.x + 12)\" y=\"\(at.y + 18)\" class=\"g-title\">\(HTML.escape(clip(node.title, 32)))</text>"
            out += "<text x=\"\(at.x + 12)\" y=\"\(at.y + 34)\" class=\"g-sub\">\(HTML.escape(clip(node.subtitle, 36)))</text></a>"
        }
        out += "</svg></div>"
        return HTML(raw: out)
    }

    static func quote(_ value: Int) -> String { "\"\(value)\"" }

    static func clip(_ text: String, _ limit: Int) -> String {
        text.count <= limit ? text : String(text.prefix(limit - 1)) + "…"
    }
}

/// A contributor's cumulative earnings as an SVG line chart: one point per invoice that paid
/// them, in ledger order, labelled with the settlement times.
enum EarningsChart {
    // Drawn small and scaled to the page's width, so the whole chart shows on a phone too.
    static let width = 480
    static let height = 200
    static let left = 10
    static let right = 10
    static let top = 26
    static let bottom = 30

    static func svg(_ earnings: [ContributorReport.Earning]) -> HTML {
        guard !earnings.isEmpty else { return "<p class=\"muted\">No invoice has paid them yet.</p>" }
        var cumulative: [Int128] = []
        var running: Int128 = 0
        for earning in earnings {
            running += Int128(earning.amountRaw) ?? 0
            cumulative.append(running)
        }
        let maximum = max(Double(running), 1)
        let plotWidth = Double(width - left - right)
        let plotHeight = Double(height - top - bottom)
        func x(_ index: Int) -> Double { Double(left) + plotWidth * Double(index + 1) / Double(earnings.count) }
        func y(_ value: Int128) -> Double { Double(top) + plotHeight * (1 - Double(value) / maximum) }
        let baseline = Double(top) + plotHeight
        var line = "M\(left) \(format(baseline))"
        var previous: Int128 = 0
        for (index, value) in cumulative.enumerated() {
            let startX = index == 0 ? Double(left) : x(index - 1)
            line += " L\(format(startX)) \(format(y(previous))) L\(format(x(index))) \(format(y(value)))"  // one segment per invoice
            previous = value
        }
        let area = line + " L\(format(x(earnings.count - 1))) \(format(baseline)) Z"
        var out = "<figure class=\"chart\">"
        out += "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 \(width) \(height)\" class=\"chart-svg\" role=\"img\" aria-labelledby=\"earnings-title\">"
        out += "<title id=\"earnings-title\">Cumulative earnings: \(HTML.escape(TokenAmount(raw: running).description)) over \(earnings.count) invoices</title>"
        for fraction in [0.0, 0.5, 1.0] {
            let gy = Double(top) + plotHeight * (1 - fraction)
            out += "<line class=\"c-grid\" x1=\"\(left)\" x2=\"\(width - right)\" y1=\"\(format(gy))\" y2=\"\(format(gy))\"/>"
        }
        out += "<text class=\"c-label\" x=\"\(left)\" y=\"\(top - 10)\">\(HTML.escape(TokenAmount(raw: running).description)) tokens in total</text>"
        out += "<path class=\"c-area\" d=\"\(area)\"/><path class=\"c-line\" d=\"\(line)\"/>"
        for (index, earning) in earnings.enumerated() {
            out += "<a href=\"\(Link.invoice(earning.index))\" class=\"c-point\"><title>invoice #\(earning.index): +\(HTML.escape(earning.amount)) (\(HTML.escape(earning.roles.joined(separator: ", "))))</title>"
            out += "<circle cx=\"\(format(x(index)))\" cy=\"\(format(y(cumulative[index])))\" r=\"4\"/></a>"
        }
        out += "<text class=\"c-label\" x=\"\(left)\" y=\"\(height - 10)\">\(HTML.escape(date(earnings.first!.settledAt)))</text>"
        out += "<text class=\"c-label\" x=\"\(width - right)\" y=\"\(height - 10)\" text-anchor=\"end\">\(HTML.escape(date(earnings.last!.settledAt)))</text>"
        out += "</svg><figcaption class=\"muted small\">Cumulative tokens received; each point is one invoice in ledger order (the invoices table below lists them).</figcaption></figure>"
        return HTML(raw: out)
    }

    static func format(_ value: Double) -> String { String(format: "%.1f", value) }

    static func date(_ seconds: Int64) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withFullDate, .withTime, .withColonSeparatorInTime, .withSpaceBetweenDateAndTime]
        formatter.timeZone = TimeZone(identifier: "UTC")
        return formatter.string(from: Date(timeIntervalSince1970: TimeInterval(seconds))) + " UTC"
    }
}
