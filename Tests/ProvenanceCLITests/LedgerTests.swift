import Foundation
import ProvenanceTestSupport
import Testing

/// The Merkle ledger seen from outside: proofs and checkpoints checked by an independent
/// implementation (Python), tampering caught by `verify`, and SIGKILL never leaving half a settlement.
@Suite struct LedgerTests {
    /// A market with `calls` settled calls: alternately real-time and a deferred batch.
    static func ledger(calls: Int = 6) throws -> CLIHarness {
        let cli = try SettlementTests.market()
        for index in 0..<calls {
            var arguments = ["call", "m@1", "--caller", "alice", "--node", "gpu1", "--input-tokens", "\(100 * (index + 1))",
                             "--output-tokens", "7", "--latency-ms", "20", "--idempotency-key", "c\(index)"]
            if index % 2 == 1 { arguments.append("--defer") }
            try cli.must(arguments)
            if index % 3 == 2 { try cli.must("settle") }
        }
        try cli.must("settle")
        return cli
    }

    static let oracle = """
        import base64, hashlib, json, sys
        def h(b): return hashlib.sha256(b).digest()
        def verify_inclusion(index, size, leaf, proof, root):
            # RFC 9162 2.1.3.2
            if index >= size: return False
            fn, sn, r = index, size - 1, leaf
            for p in proof:
                if sn == 0: return False
                if fn % 2 == 1 or fn == sn:
                    r = h(b"\\x01" + p + r)
                    if fn % 2 == 0:
                        while fn % 2 == 0 and fn != 0:
                            fn >>= 1; sn >>= 1
                else:
                    r = h(b"\\x01" + r + p)
                fn >>= 1; sn >>= 1
            return sn == 0 and r == root
        def verify_consistency(m, n, old, new, proof):
            # RFC 9162 2.1.4.2
            if m == n: return old == new and not proof
            if m == 0 or not proof: return False
            if m & (m - 1) == 0: proof = [old] + proof
            fn, sn = m - 1, n - 1
            while fn & 1:
                fn >>= 1; sn >>= 1
            fr = sr = proof[0]
            for c in proof[1:]:
                if sn == 0: return False
                if fn & 1 or fn == sn:
                    fr = h(b"\\x01" + c + fr); sr = h(b"\\x01" + c + sr)
                    while not fn & 1 and fn != 0:
                        fn >>= 1; sn >>= 1
                else:
                    sr = h(b"\\x01" + sr + c)
                fn >>= 1; sn >>= 1
            return fr == old and sr == new and sn == 0
        d = lambda s: base64.b64decode(s)
        kind, doc = sys.argv[1], json.load(sys.stdin)
        if kind == "inclusion":
            ok = verify_inclusion(doc["index"], doc["tree_size"], d(doc["leaf_hash"]), [d(p) for p in doc["proof"]], d(doc["root_hash"]))
        elif kind == "consistency":
            ok = verify_consistency(doc["old_size"], doc["new_size"], d(doc["old_root"]), d(doc["new_root"]), [d(p) for p in doc["proof"]])
        elif kind == "leaf":
            ok = base64.b64encode(hashlib.sha256(b"\\x00" + sys.argv[2].encode()).digest()).decode() == doc["leaf_hash"]
        elif kind == "note":
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
            name, keyhash, key = doc["verifier_key"].split("+", 2)
            raw = d(key)
            body, _, sigs = doc["note"].partition("\\n\\n")
            line = sigs.strip().split(" ")
            sig = d(line[2])
            assert line[0] == "\\u2014" and line[1] == name and raw[0] == 1 and sig[:4].hex() == keyhash
            Ed25519PublicKey.from_public_bytes(raw[1:]).verify(sig[4:], (body + "\\n").encode())
            lines = body.split("\\n")
            ok = lines[0] == name and int(lines[1]) == doc["size"] and lines[2] == doc["root_hash"]
        print("ok" if ok else "bad")
        """

    static func python(_ kind: String, _ json: String, _ extra: [String] = []) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", oracle, kind] + extra
        let input = Pipe(), output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = output
        try process.run()
        input.fileHandleForWriting.write(Data(json.utf8))
        try input.fileHandleForWriting.close()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test func proofsAndCheckpointsCheckOutWithAnIndependentImplementation() throws {
        let cli = try Self.ledger()
        let checkpoint = try cli.must("ledger", "checkpoint", "--json").stdout
        let note = try Self.python("note", checkpoint)
        #expect(note == "ok", "\(note)")
        for index in 0..<6 {
            let proof = try cli.must("ledger", "proof", "\(index)", "--json").stdout
            #expect(try Self.python("inclusion", proof) == "ok", "invoice \(index)")
            let canonical = try cli.must("invoice", "show", "\(index)", "--canonical").output
            #expect(try Self.python("leaf", proof, [canonical]) == "ok", "leaf \(index)")
            for size in (index + 1)...6 {
                #expect(try Self.python("inclusion", try cli.must("ledger", "proof", "\(index)", "--size", "\(size)", "--json").stdout) == "ok")
            }
        }
        for old in 1...6 {
            for new in old...6 {
                let proof = try cli.must("ledger", "consistency", "\(old)", "\(new)", "--json").stdout
                #expect(try Self.python("consistency", proof) == "ok", "\(old)→\(new)")
            }
        }
        try cli.expectRefusal(["ledger", "proof", "9"], mentioning: "no invoice 9")
        try cli.expectRefusal(["ledger", "consistency", "7"], mentioning: "OLD_SIZE 7")
        try cli.expectRefusal(["invoice", "show", "42"], mentioning: "no invoice 42")
    }

    @Test func aBundleProvesEveryInvoiceOfAPayee() throws {
        let cli = try Self.ledger()
        let bundle = try JSONSerialization.jsonObject(with: Data(try cli.must("invoice", "bundle", "--account", "bo@example.org").stdout.utf8)) as! [String: Any]
        let invoices = bundle["invoices"] as! [[String: Any]]
        #expect(invoices.count == 6)
        let checkpoint = bundle["checkpoint"] as! [String: Any]
        var total: Int128 = 0
        for item in invoices {
            let proof: [String: Any] = ["index": item["index"]!, "tree_size": checkpoint["size"]!, "leaf_hash": item["leaf_hash"]!,
                                        "root_hash": checkpoint["root_hash"]!, "proof": item["proof"]!]
            let json = String(decoding: try JSONSerialization.data(withJSONObject: proof), as: UTF8.self)
            #expect(try Self.python("inclusion", json) == "ok")
            total += Int128(item["received_raw"] as! String)!
        }
        #expect(String(total) == bundle["received_raw"] as? String)
        #expect(String(total) == (try SettlementTests.balance(cli, "bo@example.org")))
        let future = try JSONSerialization.jsonObject(with: Data(try cli.must("invoice", "bundle", "--account", "bo@example.org", "--from", "2100-01-01").stdout.utf8)) as! [String: Any]
        #expect((future["invoices"] as! [Any]).isEmpty)
    }

    /// Flips one bit of a value stored in the index (with sqlite3 or psql), and returns the
    /// statement that puts the original value back.
    @discardableResult
    static func flip(_ cli: CLIHarness, table: String, column: String, key: String, offset: Int) throws -> String {
        let postgres = TestBackend.databaseURL(ofStore: cli.store) != nil
        let isBlob = column == "bytes" || column == "root" || column == "leaf_hash"
        let isInteger = ["invoice_count", "first_invoice"].contains(column)
        let read = isBlob || !postgres ? TestBackend.hexExpression(column, store: cli.store)
            : "upper(encode(convert_to(\(column)::text, 'UTF8'), 'hex'))"
        let hex = try TestBackend.sql(store: cli.store, "SELECT \(read) FROM \(table) WHERE \(key)")
        let original = stride(from: 0, to: hex.count, by: 2).map { UInt8(hex.dropFirst($0).prefix(2), radix: 16)! }
        func literal(_ bytes: [UInt8]) -> String {
            let blob = TestBackend.blobLiteral(Data(bytes), store: cli.store)
            if isBlob { return blob }
            let text = postgres ? "convert_from(\(blob), 'UTF8')" : "CAST(\(blob) AS TEXT)"
            return isInteger ? "CAST(\(text) AS \(postgres ? "BIGINT" : "INTEGER"))" : text
        }
        var bytes = original
        bytes[offset % bytes.count] ^= 0x01
        try TestBackend.sql(store: cli.store, "UPDATE \(table) SET \(column) = \(literal(bytes)) WHERE \(key)")
        return "UPDATE \(table) SET \(column) = \(literal(original)) WHERE \(key)"
    }

    @Test func flippingAnyStoredByteMakesVerifyFailAndSayWhere() throws {
        let cli = try Self.ledger(calls: 3)
        #expect(try cli.must("verify").succeeded)
        let state = try TestBackend.dump(store: cli.store)
        func length(_ sql: String) throws -> Int { Int(try TestBackend.sql(store: cli.store, sql))! }
        let invoiceLength = try length("SELECT length(bytes) FROM invoices WHERE ledger_index = 1")
        var cases: [(String, String, String, Int, String)] = []
        for offset in stride(from: 0, to: invoiceLength, by: max(1, invoiceLength / 40)) {
            cases.append(("invoices", "bytes", "ledger_index = 1", offset, "invoice 1"))
        }
        for offset in 0..<32 { cases.append(("invoices", "leaf_hash", "ledger_index = 2", offset, "")) }
        for column in ["amount", "from_account", "to_account", "cause", "hash"] {
            cases.append(("transfers", column, "sequence = 9", 0, "transfer 9"))
        }
        cases.append(("accounts", "balance", "id = 'ann@example.org'", 3, "account ann@example.org"))
        // A batch's own row, and the terms block every invoice refers to.
        cases.append(("batches", "invoice_count", "id = (SELECT max(id) FROM batches)", 0, "batch"))
        cases.append(("batches", "first_invoice", "id = (SELECT max(id) FROM batches)", 0, ""))
        let termsLength = try length("SELECT length(bytes) FROM invoice_terms")
        for offset in stride(from: 0, to: termsLength, by: max(1, termsLength / 20)) {
            cases.append(("invoice_terms", "bytes", "1 = 1", offset, "settlement terms"))
        }
        let noteLength = try length("SELECT length(note) FROM checkpoints ORDER BY size DESC LIMIT 1")
        for offset in stride(from: 0, to: noteLength, by: 7) {
            cases.append(("checkpoints", "note", "size = (SELECT max(size) FROM checkpoints)", offset, "checkpoint"))
        }
        for (table, column, key, offset, place) in cases {
            let restore = try Self.flip(cli, table: table, column: column, key: key, offset: offset)
            let result = try cli.run("verify")
            #expect(result.status == 1 && !result.signalled, "\(table).\(column)@\(offset) passed verify")
            #expect(result.errorLines.count == 1 && result.stderr.hasPrefix("Error: verify failed: "), "\(result.stderr)")
            if !place.isEmpty { #expect(result.stderr.contains(place), "\(table).\(column)@\(offset): \(result.stderr)") }
            try TestBackend.sql(store: cli.store, restore)
        }
        #expect(try TestBackend.dump(store: cli.store) == state)
        #expect(try cli.must("verify").succeeded)
    }

    @Test(arguments: ["after-checkpoint-signed", "before-ledger-commit"])
    func sigkillDuringCallOrSettleLeavesAllOrNothing(at point: String) throws {
        let cli = try SettlementTests.market()
        let before = try SettlementTests.balance(cli, "alice")
        let call = ["call", "m@1", "--caller", "alice", "--node", "gpu1", "--input-tokens", "1000", "--output-tokens", "0", "--latency-ms", "1"]
        let killed = try cli.run(call + ["--idempotency-key", "x"], environment: ["PROVENANCE_CRASH_AT": point])
        #expect(killed.signalled, "\(killed)")
        #expect(try cli.must("verify").output.hasPrefix("verified 0 invoice(s)"))
        #expect(try SettlementTests.balance(cli, "alice") == before)
        // The retry settles it once.
        try cli.must(call + ["--idempotency-key", "x"])
        #expect(try cli.must("verify").output.hasPrefix("verified 1 invoice(s)"))

        for index in 0..<3 { try cli.must(call + ["--idempotency-key", "d\(index)", "--defer"]) }
        let settle = try cli.run(["settle"], environment: ["PROVENANCE_CRASH_AT": point])
        #expect(settle.signalled)
        // Nothing of the batch happened: 1 invoice, its checkpoint, and the 3 reservations still pending.
        #expect(try cli.must("verify").output == "verified 1 invoice(s), 1 checkpoint(s), 13 transfer(s), 11 account(s), 3 pending call(s)")
        try cli.must("settle")
        #expect(try cli.must("verify").output.hasPrefix("verified 4 invoice(s), 2 checkpoint(s)"))
    }

    /// Kill points inside a group commit (invoices, checkpoint and batch lines written, not
    /// committed) and inside a net batch: nothing of either survives, and a retry settles once.
    @Test func sigkillInsideAGroupCommitOrANetBatchLeavesNothing() throws {
        let cli = try SettlementTests.market()
        let before = try SettlementTests.balance(cli, "alice")
        let call = ["call", "m@1", "--caller", "alice", "--node", "gpu1", "--input-tokens", "1000", "--output-tokens", "0", "--latency-ms", "1"]
        let killed = try cli.run(call + ["--idempotency-key", "g"], environment: ["PROVENANCE_CRASH_AT": "inside-group-commit"])
        #expect(killed.signalled, "\(killed)")
        #expect(try cli.must("verify").output == "verified 0 invoice(s), 0 checkpoint(s), 3 transfer(s), 4 account(s), 0 pending call(s)")
        #expect(try SettlementTests.balance(cli, "alice") == before)
        try cli.must(call + ["--idempotency-key", "g"])
        for index in 0..<3 { try cli.must(call + ["--idempotency-key", "n\(index)", "--defer"]) }
        let state = try TestBackend.dump(store: cli.store)
        let settle = try cli.run(["settle"], environment: ["PROVENANCE_CRASH_AT": "inside-net-batch"])
        #expect(settle.signalled)
        #expect(try TestBackend.dump(store: cli.store) == state)
        #expect(try cli.must("verify").output.hasSuffix("3 pending call(s)"))
        try cli.must("settle")
        #expect(try cli.must("verify").output.hasPrefix("verified 4 invoice(s), 2 checkpoint(s)"))
    }

    @Test func sigkillAtRandomMomentsNeverBreaksTheLedger() throws {
        let cli = try SettlementTests.market()
        var generator = SystemRandomNumberGenerator()
        var settled = 0
        for round in 0..<12 {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: CLIHarness.binary)
            let deferred = round % 3 == 2
            process.arguments = deferred ? ["settle"] : ["call", "m@1", "--caller", "alice", "--node", "gpu1", "--input-tokens", "1000",
                                                          "--output-tokens", "0", "--latency-ms", "1", "--idempotency-key", "r\(round)"] + (round % 3 == 1 ? ["--defer"] : [])
            process.currentDirectoryURL = cli.work
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            usleep(UInt32.random(in: 1_000...60_000, using: &generator))
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            let verify = try cli.run("verify", "--json")
            #expect(verify.succeeded, "round \(round): \(verify.stdout) \(verify.stderr)")
            struct Report: Decodable { var invoices: Int }
            if let report = try? JSONDecoder().decode(Report.self, from: Data(verify.stdout.utf8)) { settled = report.invoices }
        }
        // Whatever survived, the money adds up: alice paid exactly the settled and reserved fees.
        let alice = Int128(try SettlementTests.balance(cli, "alice"))!
        let escrow = Int128((try? SettlementTests.balance(cli, "escrow")) ?? "0")!
        let unit: Int128 = 1_000_000_000_000_000_000
        #expect(alice + escrow + Int128(settled) * unit == 100 * unit)
    }
}
