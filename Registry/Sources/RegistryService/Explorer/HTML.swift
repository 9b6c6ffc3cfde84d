import Foundation
import Hummingbird
import ProvenanceCore

/// A piece of HTML. String literals are trusted markup; every interpolated `String` (or number)
/// is escaped, so a value from the store can never become markup. Only `HTML` values are
/// inserted as they are.
struct HTML: Sendable, ExpressibleByStringInterpolation, ExpressibleByStringLiteral {
    var raw: String

    init(raw: String) { self.raw = raw }
    init(_ html: HTML) { self = html }
    init(stringLiteral value: String) { raw = value }
    init(stringInterpolation: StringInterpolation) { raw = stringInterpolation.raw }

    static let empty = HTML(raw: "")

    struct StringInterpolation: StringInterpolationProtocol {
        var raw = ""
        init(literalCapacity: Int, interpolationCount: Int) { raw.reserveCapacity(literalCapacity + interpolationCount * 16) }
        mutating func appendLiteral(_ literal: String) { raw += literal }
        mutating func appendInterpolation(_ text: String) { raw += HTML.escape(text) }
        mutating func appendInterpolation(_ text: Substring) { raw += HTML.escape(String(text)) }
        mutating func appendInterpolation<Number: BinaryInteger>(_ number: Number) { raw += String(number) }
        mutating func appendInterpolation(_ html: HTML) { raw += html.raw }
        mutating func appendInterpolation(_ list: [HTML]) { for item in list { raw += item.raw } }
        mutating func appendInterpolation(_ html: HTML?) { raw += html?.raw ?? "" }
    }

    /// Escapes the five characters that matter in text and in quoted attribute values.
    static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    static func + (lhs: HTML, rhs: HTML) -> HTML { HTML(raw: lhs.raw + rhs.raw) }
}

extension Array where Element == HTML {
    func joined(separator: HTML) -> HTML { HTML(raw: map(\.raw).joined(separator: separator.raw)) }
}

/// The explorer's stable addresses, so every link to a thing is written in one place.
enum Link {
    /// Percent-encodes one path segment (keeps what RFC 3986 allows in a segment, such as `@`, `:`, `+`).
    static func segment(_ text: String) -> String {
        var allowed = CharacterSet.urlPathAllowed
        allowed.remove(charactersIn: "/?#")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
    }

    static func query(_ text: String) -> String {
        var allowed = CharacterSet.urlQueryAllowed
        allowed.remove(charactersIn: "&=+#")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
    }

    static let home = "/"
    static let datasets = "/datasets"
    static let models = "/models"
    static let contributors = "/contributors"
    static let invoices = "/invoices"
    static let ledger = "/ledger"
    static func dataset(_ name: String, rev: String? = nil) -> String {
        "/datasets/\(segment(name))" + (rev.map { "?rev=\(query($0))" } ?? "")
    }
    static func model(_ name: String) -> String { "/models/\(segment(name))" }
    static func version(_ model: String, _ version: String) -> String { "/models/\(segment(model))/versions/\(segment(version))" }
    static func version(_ reference: String) -> String {
        guard let at = reference.firstIndex(of: "@") else { return model(reference) }
        return version(String(reference[..<at]), String(reference[reference.index(after: at)...]))
    }
    static func contributor(_ id: String) -> String { "/contributors/\(segment(id))" }
    static func invoice(_ index: Int) -> String { "/invoices/\(index)" }
    static func invoices(account: String? = nil, model: String? = nil, page: Int? = nil) -> String {
        var parts: [String] = []
        if let account { parts.append("account=\(query(account))") }
        if let model { parts.append("model=\(query(model))") }
        if let page, page > 1 { parts.append("page=\(page)") }
        return invoices + (parts.isEmpty ? "" : "?" + parts.joined(separator: "&"))
    }
}

/// How the explorer writes the domain's values: amounts exactly as the CLI prints them, commits,
/// hashes, times, weights.
enum Show {
    /// A base-unit amount as a token decimal (`TokenAmount.description`, as the CLI prints it),
    /// with the base units as the machine-readable value.
    static func amount(_ raw: String) -> HTML {
        guard let value = TokenAmount(rawString: raw) else { return "\(raw)" }
        return Self.amount(value)
    }

    static func amount(_ amount: TokenAmount) -> HTML {
        "<data class=\"amount\" value=\"\(amount.rawString)\">\(amount.description)</data>"
    }

    /// A commit id: the short form, the full id on hover and for copying.
    static func commit(_ id: String) -> HTML {
        "<code class=\"hash\" title=\"\(id)\">\(String(id.prefix(12)))</code>"
    }

    /// A hash shown whole, wrapping on narrow screens.
    static func hash(_ text: String) -> HTML { "<code class=\"hash full\">\(text)</code>" }

    static func percent(_ ppb: UInt64) -> String { LineageRenderer.percent(ppb) }

    static func weight(_ ppb: UInt64) -> HTML {
        "<data class=\"ppb\" value=\"\(ppb)\">\(ppb.formatted(grouping: true)) ppb</data> <span class=\"muted\">\(percent(ppb))</span>"
    }

    static func time(_ seconds: Int64) -> HTML {
        let date = Date(timeIntervalSince1970: TimeInterval(seconds))
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withFullDate, .withTime, .withColonSeparatorInTime, .withSpaceBetweenDateAndTime]
        formatter.timeZone = TimeZone(identifier: "UTC")
        return "<time datetime=\"\(ISO8601DateFormatter().string(from: date))\">\(formatter.string(from: date)) UTC</time>"
    }

    static func bytes(_ count: UInt64) -> String {
        if count < 1024 { return "\(count) B" }
        let units = ["KiB", "MiB", "GiB", "TiB"]
        var value = Double(count) / 1024
        var unit = 0
        while value >= 1024, unit < units.count - 1 { value /= 1024; unit += 1 }
        return String(format: "%.1f %@", value, units[unit])
    }

    /// An account: contributors and developers (emails) link to their page.
    static func account(_ id: String) -> HTML {
        if id.contains("@") { return "<a href=\"\(Link.contributor(id))\">\(id)</a>" }
        return "<span class=\"account\">\(id)</span>"
    }
}

extension BinaryInteger {
    /// Digits in groups of three, `1,000,000,000`, whatever the server's locale.
    func formatted(grouping: Bool) -> String {
        let digits = String(self.magnitude)
        var out = ""
        for (offset, character) in digits.enumerated() {
            if offset > 0, (digits.count - offset) % 3 == 0 { out.append(",") }
            out.append(character)
        }
        return (self < 0 ? "-" : "") + out
    }
}

/// The explorer's page frame: one stylesheet, a header with the five sections, the body.
enum Page {
    enum Section: String, CaseIterable {
        case overview = "Overview", datasets = "Datasets", models = "Models", contributors = "Contributors",
             invoices = "Invoices", ledger = "Ledger"

        var link: String {
            switch self {
            case .overview: Link.home
            case .datasets: Link.datasets
            case .models: Link.models
            case .contributors: Link.contributors
            case .invoices: Link.invoices
            case .ledger: Link.ledger
            }
        }
    }

    static func render(_ title: String, section: Section?, status: HTTPResponse.Status = .ok, scripts: [String] = [],
                       _ body: HTML) -> Response {
        let navigation = Section.allCases.map { item -> HTML in
            let current: HTML = item == section ? " aria-current=\"page\"" : ""
            return "<li><a href=\"\(item.link)\"\(current)>\(item.rawValue)</a></li>"
        }
        let scriptTags = scripts.map { HTML("<script src=\"\($0)\" defer></script>") }
        let page: HTML = """
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>\(title) · Provenance</title>
        <link rel="stylesheet" href="\(ExplorerAssets.stylesheetPath)">
        \(scriptTags)
        </head>
        <body>
        <a class="skip" href="#main">Skip to content</a>
        <header class="top">
        <a class="brand" href="/"><svg aria-hidden="true" width="22" height="22" viewBox="0 0 22 22"><circle cx="5" cy="5" r="3"/><circle cx="5" cy="17" r="3"/><circle cx="17" cy="11" r="3.5"/><path d="M7.5 6.5 14 10M7.5 15.5 14 12" stroke-width="1.6"/></svg>Provenance</a>
        <nav aria-label="Sections"><ul>\(navigation)</ul></nav>
        </header>
        <main id="main" tabindex="-1">
        \(body)
        </main>
        <footer class="foot">Every figure here is read from the registry's public API and store; the ledger is an RFC 9162 Merkle log with signed checkpoints. <a href="/v1/ledger/checkpoint">Checkpoint JSON</a></footer>
        </body>
        </html>
        """
        let data = Data(page.raw.utf8)
        return Response(status: status,
                        headers: [.contentType: "text/html; charset=utf-8", .contentLength: String(data.count),
                                  .cacheControl: "no-cache"],
                        body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// A titled section of a page.
    static func section(_ title: String, id: String? = nil, _ content: HTML) -> HTML {
        let anchor = id ?? title.lowercased().replacingOccurrences(of: " ", with: "-")
        return "<section class=\"card\" aria-labelledby=\"\(anchor)\"><h2 id=\"\(anchor)\">\(title)</h2>\(content)</section>"
    }

    /// A table that scrolls sideways on a narrow screen rather than overflowing the page.
    static func table(_ headers: [String], _ rows: [[HTML]], numeric: Set<Int> = [], caption: String? = nil, empty: String = "Nothing yet.") -> HTML {
        guard !rows.isEmpty else { return "<p class=\"muted\">\(empty)</p>" }
        let head = headers.enumerated().map { index, header -> HTML in
            "<th scope=\"col\"\(numeric.contains(index) ? HTML(" class=\"num\"") : "")>\(header)</th>"
        }
        // Each cell carries its column's name, so a narrow screen can show a wide table's rows as
        // stacked cards ("Fee 0.0132") instead of a table that scrolls sideways.
        let body = rows.map { row -> HTML in
            let cells = row.enumerated().map { index, cell -> HTML in
                let label = index < headers.count ? headers[index] : ""
                return "<td data-label=\"\(label)\"\(numeric.contains(index) ? HTML(" class=\"num\"") : "")><span class=\"v\">\(cell)</span></td>"
            }
            return "<tr>\(cells)</tr>"
        }
        let captionHTML: HTML = caption.map { "<caption>\($0)</caption>" } ?? .empty
        let stack: HTML = headers.count >= 3 ? " class=\"stack\"" : ""
        return "<div class=\"scroll\" tabindex=\"0\" role=\"region\" aria-label=\"\(caption ?? headers.joined(separator: ", "))\"><table\(stack)>\(captionHTML)<thead><tr>\(head)</tr></thead><tbody>\(body)</tbody></table></div>"
    }

    /// A definition list of facts.
    static func facts(_ pairs: [(String, HTML)]) -> HTML {
        let items = pairs.map { key, value -> HTML in "<div><dt>\(key)</dt><dd>\(value)</dd></div>" }
        return "<dl class=\"facts\">\(items)</dl>"
    }
}
