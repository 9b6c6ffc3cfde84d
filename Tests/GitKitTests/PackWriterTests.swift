import Foundation
import GitKit
import ProvenanceTestSupport
import Testing

/// Packs written by `PackWriter` and trees by `TreeEditor`, with the git CLI as the oracle:
/// `git verify-pack` and `git fsck --strict` accept them, `git cat-file` reads every object
/// back and blob ids equal `git hash-object`.
@Suite struct PackWriterTests {
    /// Contents that exercise the entry header (sizes needing 1 to 4 size bytes), zlib's
    /// window sizing (empty, tiny, around every power of two, the 1 MiB limit) and bytes
    /// that do not compress.
    static func samples() -> [Data] {
        var generator = SystemRandomNumberGenerator()
        var samples: [Data] = [Data(), Data("a".utf8), Data("hello, pack\n".utf8)]
        for size in [15, 16, 127, 128, 511, 512, 513, 2047, 2048, 2049, 40_000, 65_536, 300_000, 1 << 20] {
            samples.append(Data((0..<size).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 9) }))
        }
        samples.append(Data((0..<70_000).map { _ in UInt8.random(in: 0...255, using: &generator) }))
        return samples
    }

    static func packFiles(in repository: URL) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: repository.appendingPathComponent("objects/pack").path).sorted()
    }

    @Test func packOfBlobsIsReadByGit() throws {
        let dir = try TemporaryDirectory()
        let repo = try Repository.createBare(at: dir.path("repo.git"))
        let samples = Self.samples()
        let pack = try PackWriter(repository: repo, expectedCount: samples.count)
        var ids: [ObjectID] = []
        for (index, sample) in samples.enumerated() {
            let file = try dir.write("sample-\(index)", sample)
            let id = try sample.withUnsafeBytes { try pack.addBlob($0) }
            #expect(id.hex == (try git(["hash-object", file.path], in: dir.url).output), "sample \(index)")
            ids.append(id)
        }
        let name = try #require(try pack.finish())
        #expect(try Self.packFiles(in: repo.path) == ["\(name).idx", "\(name).pack"])
        // No loose object was written.
        let loose = try git(["count-objects", "-v"], in: repo.path).lines.first { $0.hasPrefix("count:") }
        #expect(loose == "count: 0")

        let verify = try git(["verify-pack", "-v", "objects/pack/\(name).idx"], in: repo.path)
        #expect(verify.lines.contains("non delta: \(samples.count) objects"))
        #expect(verify.lines.last == "objects/pack/\(name).pack: ok")
        // git's own index of the same pack is byte for byte the index PackWriter wrote.
        let copy = dir.path("copy.pack")
        try FileManager.default.copyItem(at: repo.path.appendingPathComponent("objects/pack/\(name).pack"), to: copy)
        try git(["index-pack", "-o", dir.path("git.idx").path, copy.path], in: repo.path)
        #expect(try Data(contentsOf: dir.path("git.idx")) == Data(contentsOf: repo.path.appendingPathComponent("objects/pack/\(name).idx")))

        try git(["fsck", "--strict"], in: repo.path)
        try repo.refreshObjects()
        for (id, sample) in zip(ids, samples) {
            #expect(try repo.readBlob(id) == sample)
            // git reads the content back: it hashes to the same id and has the same size.
            let cat = try runProcess("/bin/sh", ["-c", "git -C \"$1\" cat-file blob $2 | git hash-object --stdin", "sh", repo.path.path, id.hex])
            #expect(cat.output == id.hex)
            #expect(try git(["cat-file", "-s", id.hex], in: repo.path).output == "\(sample.count)")
        }
    }

    @Test func duplicatesAreWrittenOnceAndTheHeaderCountsWhatIsThere() throws {
        let dir = try TemporaryDirectory()
        let repo = try Repository.createBare(at: dir.path("repo.git"))
        // Announced 10, given 6 distinct of 8: the header and checksum are redone at the end.
        let pack = try PackWriter(repository: repo, expectedCount: 10)
        let contents = ["one\n", "two\n", "one\n", "three\n", "four\n", "two\n", "five\n", "six\n"].map { Data($0.utf8) }
        // Added from several threads at once, as `add`'s workers do.
        let slots = Slots(count: contents.count)
        DispatchQueue.concurrentPerform(iterations: contents.count) { index in
            slots.set(index, try? contents[index].withUnsafeBytes { try pack.addBlob($0) })
        }
        let ids = try slots.values.map { try #require($0) }
        #expect(Set(ids).count == 6)
        #expect(pack.count == 6)
        let name = try #require(try pack.finish())
        let verify = try git(["verify-pack", "-v", "objects/pack/\(name).idx"], in: repo.path)
        #expect(verify.lines.contains("non delta: 6 objects"))
        try git(["fsck", "--strict"], in: repo.path)
        // An object skipped because the repository has it is not written again.
        try repo.refreshObjects()
        let again = try PackWriter(repository: repo, expectedCount: 1)
        let id = try Data("one\n".utf8).withUnsafeBytes { bytes in try again.addBlob(bytes) { repo.contains($0) } }
        #expect(id == ids[0])
        #expect(try again.finish() == nil)
        #expect(try Self.packFiles(in: repo.path).count == 2)
    }

    @Test func anUnfinishedPackLeavesNothing() throws {
        let dir = try TemporaryDirectory()
        let repo = try Repository.createBare(at: dir.path("repo.git"))
        do {
            let pack = try PackWriter(repository: repo, expectedCount: 2)
            _ = try Data("lost\n".utf8).withUnsafeBytes { try pack.addBlob($0) }
            #expect(try Self.packFiles(in: repo.path).count == 1, "the temporary pack is being written")
        }
        #expect(try Self.packFiles(in: repo.path).isEmpty)
        try git(["fsck", "--strict"], in: repo.path)
    }

    @Test func treesInAPackEqualLooseTreesAndGitsOwn() throws {
        let dir = try TemporaryDirectory()
        let repo = try Repository.createBare(at: dir.path("repo.git"))
        // Names that sort differently as files and as folders ("a" < "a-b" < "a/" < "a0").
        let paths = ["a/x.txt", "a-b", "a0", "a.c/d/e.txt", "z/y/x/w.txt", "top.txt", "a/b/c.txt"]
        let loose = try TreeEditor(repository: repo, base: nil)
        let pack = try PackWriter(repository: repo, expectedCount: paths.count + 8)
        let packed = try TreeEditor(repository: repo, base: nil)
        let work = dir.url.appendingPathComponent("work")
        for path in paths {
            let data = Data("content of \(path)\n".utf8)
            let file = try dir.write("work/\(path)", data)
            let looseID = try repo.writeBlob(fromFile: file).id
            let packedID = try data.withUnsafeBytes { try pack.addBlob($0) }
            #expect(looseID == packedID)
            try loose.setFile(path, id: looseID, mode: path == "a0" ? .executable : .blob, size: UInt64(data.count))
            try packed.setFile(path, id: packedID, mode: path == "a0" ? .executable : .blob, size: UInt64(data.count))
        }
        #expect(packed.changedFolderCount == 8)
        let looseTree = try loose.write()
        let packedTree = try packed.write(into: pack)
        #expect(looseTree == packedTree)
        try #require(try pack.finish() != nil)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: work.appendingPathComponent("a0").path)
        // git's own tree of the same files.
        try git(["init", "-q"], in: work)
        try git(["add", "-A"], in: work)
        #expect(try git(["write-tree"], in: work).output == packedTree.hex)
        try git(["fsck", "--strict"], in: repo.path)
    }

    @Test func editingABaseTreeKeepsUntouchedFolders() throws {
        let dir = try TemporaryDirectory()
        let repo = try Repository.createBare(at: dir.path("repo.git"))
        let one = try repo.writeBlob(Data("1\n".utf8))
        let two = try repo.writeBlob(Data("2\n".utf8))
        let first = try TreeEditor(repository: repo, base: nil)
        for path in ["keep/a.txt", "keep/deep/b.txt", "change/c.txt", "root.txt"] {
            try first.setFile(path, id: one, mode: .blob, size: 2)
        }
        let base = try first.write()

        let editor = try TreeEditor(repository: repo, base: base)
        #expect(editor.file(at: "keep/deep/b.txt")?.id == one)
        #expect(editor.isDirectory("keep/deep"))
        #expect(!editor.isDirectory("root.txt"))
        #expect(editor.file(at: "keep") == nil)
        #expect(throws: GitError.self) { try editor.setFile("root.txt/x", id: two, mode: .blob, size: 2) }
        #expect(throws: GitError.self) { try editor.setFile("keep", id: two, mode: .blob, size: 2) }
        try editor.setFile("change/c.txt", id: two, mode: .blob, size: 2)
        try editor.setFile("change/new/d.txt", id: two, mode: .blob, size: 2)
        #expect(editor.changedFolderCount == 3)
        let edited = try editor.write()
        #expect(try git(["ls-tree", "-r", "--format=%(objectname) %(path)", edited.hex], in: repo.path).lines == [
            "\(two.hex) change/c.txt", "\(two.hex) change/new/d.txt",
            "\(one.hex) keep/a.txt", "\(one.hex) keep/deep/b.txt", "\(one.hex) root.txt",
        ])
        #expect(try git(["rev-parse", "\(edited.hex):keep"], in: repo.path).output
                == (try git(["rev-parse", "\(base.hex):keep"], in: repo.path).output))
        // Setting a file to what it already is gives the same tree.
        let same = try TreeEditor(repository: repo, base: base)
        try same.setFile("keep/a.txt", id: one, mode: .blob, size: 2)
        #expect(try same.write() == base)
        try git(["fsck", "--strict"], in: repo.path)
    }
}

/// Results that concurrent workers fill in.
final class Slots: @unchecked Sendable {
    private let lock = NSLock()
    private var storage: [ObjectID?]

    init(count: Int) { storage = Array(repeating: nil, count: count) }

    func set(_ index: Int, _ value: ObjectID?) {
        lock.lock()
        storage[index] = value
        lock.unlock()
    }

    var values: [ObjectID?] { lock.lock(); defer { lock.unlock() }; return storage }
}
