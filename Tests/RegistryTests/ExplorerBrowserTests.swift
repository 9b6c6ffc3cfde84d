import Foundation
import ProvenanceCore
import ProvenanceTestSupport
@testable import RegistryService
import Testing

/// The web explorer in a real browser: `provenance serve` on a copy of the demo's store, pages
/// loaded by headless Chromium, facts compared with what the CLI prints for the same store.
@Suite(.serialized, .enabled(if: Chromium.isInstalled, "chromium is not installed here (apt-get install -y chromium chromium-driver); CI installs it"))
final class ExplorerBrowserTests {
    let folder: TemporaryDirectory
    let store: URL
    let server: LiveServer

    init() throws {
        folder = try TemporaryDirectory("provenance-explorer")
        store = try DemoStore.copy(into: folder)
        server = try LiveServer(store: store)
    }

    deinit { server.stop() }

    /// `provenance ARGS --store STORE`, which must succeed.
    func cli(_ arguments: String...) throws -> ProcessResult {
        let result = try runProcess(CLIHarness.binary, arguments + ["--store", store.path], in: folder.url)
        guard result.succeeded else { throw FixtureError("provenance \(arguments.joined(separator: " ")) failed: \(result)") }
        return result
    }

    func cliJSON(_ arguments: String...) throws -> Any {
        let result = try runProcess(CLIHarness.binary, arguments + ["--json", "--store", store.path], in: folder.url)
        guard result.succeeded else { throw FixtureError("provenance \(arguments.joined(separator: " ")) --json failed: \(result)") }
        return try JSONSerialization.jsonObject(with: Data(result.stdout.utf8))
    }

    static func amount(_ raw: String) -> String {
        "<data class=\"amount\" value=\"\(raw)\">\(TokenAmount(rawString: raw)!.description)</data>"
    }

    @Test func datasetPagesShowWhatTheCLIShows() throws {
        let datasets = try #require(try cliJSON("datasets") as? [[String: Any]])
        #expect(datasets.count == 4)
        let list = try Chromium.dom(server.base + "/datasets")
        for dataset in datasets {
            let name = try #require(dataset["name"] as? String)
            let head = try #require(dataset["head"] as? String)
            #expect(list.contains("<a href=\"/datasets/\(name)\">\(name)</a>"), "\(name)")
            #expect(list.contains("title=\"\(head)\">\(head.prefix(12))</code>"), "\(name) head")
        }

        let page = try Chromium.dom(server.base + "/datasets/poems")
        // Keyboard use: a skip link to the content, and tables that scroll sideways can take focus.
        #expect(page.contains("<a class=\"skip\" href=\"#main\">") && page.contains("<main id=\"main\" tabindex=\"-1\">"))
        #expect(page.contains("<div class=\"scroll\" tabindex=\"0\" role=\"region\""))
        let contributors = try #require(try cliJSON("contributors", "poems") as? [[String: Any]])
        #expect(contributors.count == 2)
        for contributor in contributors {
            let id = try #require(contributor["id"] as? String)
            let commits = try #require(contributor["commits"] as? Int)
            #expect(page.contains("<a href=\"/contributors/\(id)\">"), "\(id)")
            #expect(page.contains("<td data-label=\"Commits\" class=\"num\"><span class=\"v\">\(commits)</span></td>"), "\(id) commits")
        }
        let log = try #require(try cliJSON("log", "poems") as? [[String: Any]])
        #expect(log.count == 3)
        for entry in log {
            let commit = try #require(entry["commit"] as? String)
            #expect(page.contains("title=\"\(commit)\""), "commit \(commit)")
            #expect(page.contains(HTMLText.escape(try #require(entry["summary"] as? String))))
        }
        // The manifest: every file's SHA-256 as `provenance manifest` prints it, and the manifest's own hash.
        let manifest = try cli("manifest", "poems").stdout
        let files = try #require((try JSONSerialization.jsonObject(with: Data(manifest.utf8)) as? [String: Any])?["files"] as? [[String: Any]])
        #expect(files.count == 4)
        for file in files {
            #expect(page.contains("<code>\(try #require(file["path"] as? String))</code>"))
            #expect(page.contains(try #require(file["sha256"] as? String)))
        }
        let manifestBytes = manifest.hasSuffix("\n") ? String(manifest.dropLast()) : manifest
        #expect(page.contains(SHA256Digest.hex(of: Data(manifestBytes.utf8))), "the manifest's SHA-256")
    }

    @Test func theLineagePageShowsTheTraceWithItsWeights() throws {
        let trace = try #require(try JSONSerialization.jsonObject(with: Data(try cli("trace", "chat-legal@0.1", "--format", "json").stdout.utf8)) as? [String: Any])
        let page = try Chromium.dom(server.base + "/models/chat-legal/versions/0.1")
        #expect(page.contains("<svg") && page.contains("class=\"g-node g-model\""), "the graph is drawn")
        var level: [String: Any]? = trace
        var versions: [String] = []
        while let current = level {
            let model = try #require(current["model"] as? String), version = try #require(current["version"] as? String)
            versions.append("\(model)@\(version)")
            #expect(page.contains("href=\"/models/\(model)/versions/\(version)\""), "\(model)@\(version) is linked")
            #expect(page.contains(String(try #require(current["commit"] as? String).prefix(10))), "\(model)@\(version) commit")
            for dataset in try #require(current["datasets"] as? [[String: Any]]) {
                let commit = try #require(dataset["commit"] as? String)
                #expect(page.contains(String(commit.prefix(12))), "dataset commit \(commit)")
                #expect(page.contains(try #require(dataset["manifest_sha256"] as? String)))
                for contributor in try #require(dataset["contributors"] as? [[String: Any]]) {
                    #expect(page.contains("/contributors/\(try #require(contributor["id"] as? String))"))
                }
            }
            level = current["base"] as? [String: Any]
        }
        #expect(versions == ["chat-legal@0.1", "chat@1.0", "base@1.0"])
        // Every node of the graph is a link (so Tab reaches it): 6 contributors, 5 dataset commits, 3 versions.
        #expect(page.components(separatedBy: "<a href=\"/contributors/").count - 1 >= 6)
        #expect(page.components(separatedBy: "class=\"g-node g-contributor\"").count - 1 == 6)
        #expect(page.components(separatedBy: "class=\"g-node g-dataset\"").count - 1 == 5)
        #expect(page.components(separatedBy: "class=\"g-node g-model\"").count - 1 == 3)
        #expect(page.contains("base · 30.0000%"), "chat-legal passes 30% to chat@1.0")
        let attribution = try #require(trace["attribution"] as? [String: Any])
        #expect(page.contains("<code>\(try #require(attribution["plugin"] as? String))</code>"))
        let weights = try #require(attribution["weights"] as? [[String: Any]])
        #expect(weights.count == 3, "Ruth (law), and Grace and Ada through chat@1.0")
        var sum: UInt64 = 0
        for weight in weights {
            let ppb = try #require((weight["ppb"] as? NSNumber)?.uint64Value)
            sum += ppb
            #expect(page.contains("<data class=\"ppb\" value=\"\(ppb)\">\(ppb.formatted(grouping: true)) ppb</data>"), "\(weight)")
            #expect(page.contains(LineageRenderer.percent(ppb)))
        }
        #expect(sum == 1_000_000_000)
        // The plugin history of chat (set-plugin data-volume in the demo) shows on chat@1.0's page.
        let chat = try Chromium.dom(server.base + "/models/chat/versions/1.0")
        let history = try #require(try cliJSON("model", "plugin-history", "chat") as? [[String: Any]])
        for change in history { #expect(chat.contains(String(try #require(change["commit"] as? String).prefix(12)))) }
        #expect(chat.contains("<code>data-volume</code>"))
    }

    @Test func theContributorPageAddsUpToTheCLIsBalance() throws {
        let page = try Chromium.dom(server.base + "/contributors/grace@example.org")
        let balance = try cli("account", "balance", "grace@example.org").output
        #expect(page.contains(">\(balance)</data>"), "the total equals `account balance` (\(balance))")
        #expect(page.contains("Grace Hopper"))
        for dataset in ["poems", "dialogue"] { #expect(page.contains("<a href=\"/datasets/\(dataset)\">\(dataset)</a>")) }
        #expect(page.contains("href=\"/models/chat/versions/1.0\""), "chat@1.0 is trained on her data")
        #expect(page.contains("class=\"c-line\""), "the earnings chart is drawn")
        let invoices = try #require(try cliJSON("invoice", "list", "--account", "grace@example.org") as? [[String: Any]])
        #expect(!invoices.isEmpty)
        var total: Int128 = 0
        for entry in invoices {
            let index = try #require(entry["index"] as? Int)
            #expect(page.contains("<a href=\"/invoices/\(index)\">#\(index)</a>"))
            let invoice = try #require(entry["invoice"] as? [String: Any])
            let payouts = try #require((invoice["settlement"] as? [String: Any])?["payouts"] as? [[String: Any]])
            let mine = payouts.filter { $0["account"] as? String == "grace@example.org" }.compactMap { ($0["amount"] as? String).flatMap { Int128($0) } }
            let paid = mine.reduce(0, +)
            total += paid
            #expect(page.contains(Self.amount(String(paid))), "invoice \(index) paid \(paid)")
        }
        #expect(TokenAmount(raw: total).description == balance)
    }

    @Test func theInvoicePageShowsTheFiveGroupsAndPayoutsAsTheCLIDoes() throws {
        let page = try Chromium.dom(server.base + "/invoices/5")
        let shown = try cli("invoice", "show", "5").lines
        // `fee      0.0132, 0.00132 refunded  (batch, batch-1)`
        let fee = try #require(shown.first { $0.hasPrefix("fee") }?.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first)
            .trimmingCharacters(in: CharacterSet(charactersIn: ","))
        #expect(page.contains(">\(fee)</data>"), "fee \(fee) as `invoice show` prints it")
        for group in ["parties", "metering", "traceability", "pricing", "settlement"] {
            #expect(page.contains("id=\"group-\(group)\""), "\(group)")
        }
        let entry = try #require(try cliJSON("invoice", "show", "5") as? [String: Any])
        #expect(page.contains(try #require(entry["leaf_hash"] as? String)))
        let invoice = try #require(entry["invoice"] as? [String: Any])
        let payouts = try #require((invoice["settlement"] as? [String: Any])?["payouts"] as? [[String: Any]])
        #expect(payouts.count >= 5)
        for payout in payouts {
            #expect(page.contains(Self.amount(try #require(payout["amount"] as? String))), "\(payout)")
            // Each payout's amount also appears in `invoice show`'s table, as the same token string.
            let text = TokenAmount(rawString: try #require(payout["amount"] as? String))!.description
            #expect(shown.contains { $0.contains(text) }, "\(text)")
        }
        let ledger = try Chromium.dom(server.base + "/ledger")
        let checkpoint = try #require(try cliJSON("ledger", "checkpoint") as? [String: Any])
        #expect(ledger.contains(try #require(checkpoint["root_hash"] as? String)))
        #expect(ledger.contains(">\(try #require(checkpoint["size"] as? Int)) of 14 invoices<"))
        #expect(ledger.contains("the registry's key"))
    }

    @Test func verifyingARealInvoiceInTheBrowserPassesEveryStep() throws {
        let page = try Chromium.dom(server.base + "/invoices/5?verify=1")
        #expect(page.attribute("data-status", ofElement: "verify-result") == "pass", "\(page.element(id: "verify-result") ?? page)")
        #expect(page.element(id: "verify-result")?.hasPrefix("Verified: invoice #5 is leaf #5 of the ledger of 14 invoices") == true)
        for step in 1...4 { #expect(page.verificationStep(step)?.status == "pass", "step \(step): \(String(describing: page.verificationStep(step)))") }
        // The browser's own leaf hash and root are the ones the CLI computes.
        let entry = try #require(try cliJSON("invoice", "show", "5") as? [String: Any])
        #expect(page.verificationStep(2)?.detail.contains(try #require(entry["leaf_hash"] as? String)) == true)
        let proof = try #require(try cliJSON("ledger", "proof", "5") as? [String: Any])
        #expect(page.verificationStep(3)?.detail.contains(try #require(proof["root_hash"] as? String)) == true)
        // Every invoice of the demo verifies, the first and the last too.
        for index in [0, 13] {
            let other = try Chromium.dom(server.base + "/invoices/\(index)?verify=1")
            #expect(other.attribute("data-status", ofElement: "verify-result") == "pass", "invoice \(index)")
        }
    }

    @Test(arguments: [(TamperingProxy.Alteration.invoice, 2, "Leaf hash"), (.proof, 3, "Inclusion proof"), (.signature, 4, "Checkpoint signature")])
    func verificationFailsAtTheStepWhoseServedDataWasAltered(_ alteration: TamperingProxy.Alteration, step: Int, name: String) throws {
        let proxy = try TamperingProxy(upstream: server.port, altering: alteration, folder: folder)
        let page = try Chromium.dom(proxy.base + "/invoices/5?verify=1")
        #expect(page.attribute("data-status", ofElement: "verify-result") == "fail", "\(page.element(id: "verify-result") ?? page)")
        #expect(page.attribute("data-step", ofElement: "verify-result") == String(step))
        #expect(page.element(id: "verify-result")?.hasPrefix("Verification failed at step \(step), \(name): ") == true,
                "\(page.element(id: "verify-result") ?? "")")
        for earlier in 1..<step { #expect(page.verificationStep(earlier)?.status == "pass", "step \(earlier)") }
        #expect(page.verificationStep(step)?.status == "fail")
        for later in (step + 1)..<5 { #expect(page.verificationStep(later)?.status == "skipped", "step \(later)") }
        // The same page through the honest server still verifies.
        let honest = try Chromium.dom(server.base + "/invoices/5?verify=1")
        #expect(honest.attribute("data-status", ofElement: "verify-result") == "pass")
    }

    /// Screenshots at desktop and phone widths, for a person to look at; the folder is printed.
    @Test func screenshotsAtDesktopAndPhoneWidths() throws {
        let folder = URL(fileURLWithPath: ProcessInfo.processInfo.environment["EXPLORER_SCREENSHOTS"]
            ?? FileManager.default.temporaryDirectory.appendingPathComponent("provenance-explorer-screenshots").path)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let pages = [
            ("overview", "/"), ("datasets", "/datasets"), ("dataset-poems", "/datasets/poems"), ("models", "/models"),
            ("lineage-chat-legal", "/models/chat-legal/versions/0.1"), ("contributor-grace", "/contributors/grace%40example.org"),
            ("invoices", "/invoices"), ("invoice-5-verified", "/invoices/5?verify=1"), ("ledger", "/ledger"),
        ]
        for (name, path) in pages {
            for (device, width, height) in [("desktop", 1280, 1400), ("phone", 360, 1600)] {
                let file = folder.appendingPathComponent("\(name)-\(device).png")
                try Chromium.screenshot(server.base + path, to: file, width: width, height: height)
                let png = try Data(contentsOf: file)
                #expect(png.prefix(8) == Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]), "\(file.path) is a PNG")
                let pngWidth = png.count > 24 ? png[16..<20].reduce(0) { $0 << 8 | Int($1) } : 0
                #expect(pngWidth == width, "\(file.lastPathComponent) is \(pngWidth) pixels wide")
            }
        }
        print("explorer screenshots: \(folder.path)")
    }
}

/// Text as Chromium's `--dump-dom` serializes a text node: only `&`, `<` and `>` escaped.
enum HTMLText {
    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }
}
