import Foundation
import ProvenanceTestSupport

/// A seeded random git history written with `git fast-import` into a bare repository: several
/// authors (one of them under two addresses joined by a `.mailmap`), text files edited line by
/// line, files renamed (with and without edits, within and across folders), deleted and added
/// again, copied, binary files renamed, side branches merged back with lines from both sides,
/// and a little clock skew. Every commit records its whole tree, so git (and provenance) must
/// find the renames themselves.
struct RandomHistory {
    var seed: UInt64
    var commits: Int

    /// SplitMix64 with the draws the history needs.
    struct Generator {
        var base: SplitMix64
        init(state: UInt64) { base = SplitMix64(state: state) }
        mutating func next() -> UInt64 { base.next() }
        mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
        mutating func chance(_ percent: Int) -> Bool { below(100) < percent }
    }

    enum Content: Equatable {
        case text([String])
        case binary([UInt8])

        var bytes: [UInt8] {
            switch self {
            case .text(let lines): return Array(lines.map { $0 + "\n" }.joined().utf8)
            case .binary(let bytes): return bytes
            }
        }
    }

    /// A file and its lineage: renames keep `id`, copies and re-additions get a new one.
    struct File: Equatable {
        var id: Int
        var content: Content
    }

    static let words = "data model token corpus weight sample batch layer river stone cloud light north amber delta signal alpha".split(separator: " ")
    static let folders = ["", "docs/", "data/", "data/raw/", "notes/"]

    func write(to repository: URL) throws {
        var rng = Generator(state: seed)
        try git(["init", "-q", "--bare", repository.path], in: repository.deletingLastPathComponent())
        let authors = (0..<6).map { "Author \($0) <a\($0)@example.org>" } + ["Old Name <A1@OLD.example>"]
        var stream = Data()
        func emit(_ text: String) { stream.append(Data(text.utf8)) }
        func line(_ author: Int, _ n: Int) -> String {
            if rng.chance(5) { return "" }
            if rng.chance(5) { return "same boilerplate line" }
            return (0..<(2 + rng.below(8))).map { _ in String(Self.words[rng.below(Self.words.count)]) }.joined(separator: " ") + " (\(author), \(n))"
        }
        func binary() -> Content {
            .binary((0..<(50 + rng.below(200))).map { _ in let b = UInt8(rng.below(256)); return b == 10 ? 0 : b })
        }

        var branches: [String: [String: File]] = ["main": [:]]
        var tips: [String: Int] = [:]
        var forkPoint: [String: File] = [:]
        var deleted: [(path: String, file: File)] = []
        var counter = 0
        var time = 1_700_000_000
        var mark = 0

        for n in 1...commits {
            // Open a side branch now and then; merge it back a few commits later.
            var branch = "main"
            var merging = false
            if branches["side"] == nil && n > 5 && rng.chance(8) {
                branches["side"] = branches["main"]
                forkPoint = branches["main"]!
                tips["side"] = tips["main"]
            } else if branches["side"] != nil {
                if n > 8 && rng.chance(15) { merging = true } else if rng.chance(50) { branch = "side" }
            }
            let a = rng.below(authors.count)
            var files = branches[branch]!

            if merging {
                // Match files by lineage: a side's rename keeps our edits, both sides' lines survive.
                let side = branches["side"]!
                func byID(_ tree: [String: File]) -> [Int: (path: String, file: File)] {
                    Dictionary(tree.map { ($0.value.id, ($0.key, $0.value)) }, uniquingKeysWith: { first, _ in first })
                }
                let ours = byID(files)
                let theirs = byID(side)
                let base = byID(forkPoint)
                var merged: [String: File] = [:]
                for id in Set(ours.keys).union(theirs.keys).sorted() {
                    let o = ours[id]
                    let t = theirs[id]
                    let b = base[id]
                    var result: (path: String, file: File)?
                    if let o, let t {
                        let path = t.path != b?.path ? t.path : o.path
                        var content = o.file.content
                        if t.file.content != b?.file.content {
                            if o.file.content == b?.file.content {
                                content = t.file.content
                            } else if case .text(let ol) = o.file.content, case .text(let tl) = t.file.content {
                                var lines = ol
                                for l in tl where !ol.contains(l) { lines.append(l) }
                                if rng.chance(25) { lines.append("resolved by \(a) at \(n)") }
                                content = .text(lines)
                            } else {
                                content = t.file.content
                            }
                        }
                        result = (path, File(id: id, content: content))
                    } else if let o {
                        if b == nil || o.file != b!.file { result = o }
                    } else if let t {
                        if b == nil { result = t }
                    }
                    if let result, merged[result.path] == nil { merged[result.path] = result.file }
                }
                files = merged
                branches["side"] = nil
            } else {
                for _ in 0..<(1 + rng.below(3)) {
                    let paths = files.keys.sorted()
                    let roll = rng.below(100)
                    if paths.isEmpty || roll < 10 {
                        counter += 1
                        if !deleted.isEmpty && rng.chance(30) {
                            // Added again where it was deleted, mostly as it was.
                            let old = deleted.remove(at: rng.below(deleted.count))
                            var content = old.file.content
                            if case .text(var lines) = content { lines.append(line(a, n)); content = .text(lines) }
                            if files[old.path] == nil { files[old.path] = File(id: counter, content: content) }
                            continue
                        }
                        let folder = Self.folders[rng.below(Self.folders.count)]
                        if rng.chance(12) {
                            files["\(folder)blob\(counter).bin"] = File(id: counter, content: binary())
                        } else {
                            files["\(folder)file\(counter).txt"] = File(id: counter, content: .text((0..<(5 + rng.below(30))).map { _ in line(a, n) }))
                        }
                        continue
                    }
                    let path = paths[rng.below(paths.count)]
                    if path == ".mailmap" { continue }
                    let basename = String(path.split(separator: "/").last!)
                    if roll < 20 {
                        // Rename or move, sometimes with edits, sometimes keeping the basename.
                        var file = files.removeValue(forKey: path)!
                        counter += 1
                        let newName = rng.chance(50) ? basename : "renamed\(counter)" + (basename.hasSuffix(".bin") ? ".bin" : ".txt")
                        var target = Self.folders[rng.below(Self.folders.count)] + newName
                        if files[target] != nil || target == path { target = "moved\(counter)/" + newName }
                        if case .text(var lines) = file.content, rng.chance(60) {
                            for _ in 0..<(1 + rng.below(max(1, lines.count / 2))) where !lines.isEmpty {
                                lines[rng.below(lines.count)] = line(a, n)
                            }
                            file.content = .text(lines)
                        }
                        files[target] = file
                    } else if roll < 25 {
                        deleted.append((path, files.removeValue(forKey: path)!))
                    } else if roll < 28 {
                        counter += 1
                        files["copy\(counter)-" + basename] = File(id: counter, content: files[path]!.content)
                    } else if case .text(var lines) = files[path]!.content {
                        for _ in 0..<(1 + rng.below(4)) {
                            switch rng.below(4) {
                            case 0 where !lines.isEmpty: lines[rng.below(lines.count)] = line(a, n)
                            case 1: lines.insert(line(a, n), at: rng.below(lines.count + 1))
                            case 2 where lines.count > 3: lines.remove(at: rng.below(lines.count))
                            default: lines.append(line(a, n))
                            }
                        }
                        files[path]!.content = .text(lines)
                    } else {
                        files[path]!.content = binary()
                    }
                }
                if n == commits / 3 || n == 2 * commits / 3 {
                    counter += 1
                    files[".mailmap"] = File(id: -1, content: .text(n == commits / 3
                        ? ["Author 1 <a1@example.org> <a1@old.example>"]
                        : ["Author 1 <a1@example.org> <a1@old.example>", "Author 2 <a2@example.org> Author 3 <a3@example.org>"]))
                }
            }

            // Clock skew now and then: a commit older than its parent.
            time += rng.chance(5) ? -7200 : 600
            mark += 1
            let author = authors[a]
            emit("commit refs/heads/\(branch)\nmark :\(mark)\n")
            emit("author \(author) \(time) +0000\ncommitter \(author) \(time) +0000\n")
            let message = "commit \(n)\n"
            emit("data \(message.utf8.count)\n\(message)")
            if let from = tips[branch] { emit("from :\(from)\n") }
            if merging, let other = tips["side"] { emit("merge :\(other)\n") }
            emit("deleteall\n")
            for path in files.keys.sorted() {
                let bytes = files[path]!.content.bytes
                emit("M 100644 inline \(path)\ndata \(bytes.count)\n")
                stream.append(contentsOf: bytes)
                emit("\n")
            }
            emit("\n")
            tips[branch] = mark
            branches[branch] = files
            if merging { tips["side"] = nil }
        }

        let input = repository.deletingLastPathComponent().appendingPathComponent("fast-import-\(seed).stream")
        try stream.write(to: input)
        defer { try? FileManager.default.removeItem(at: input) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/git")
        process.arguments = ["-C", repository.path, "fast-import", "--quiet"]
        process.environment = ["GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null", "HOME": repository.path]
        process.standardInput = try FileHandle(forReadingFrom: input)
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw FixtureError("git fast-import failed") }
        try git(["symbolic-ref", "HEAD", "refs/heads/main"], in: repository)
    }
}
