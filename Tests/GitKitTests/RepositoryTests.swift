import Foundation
import GitKit
import ProvenanceTestSupport
import Testing

/// The libgit2 wrapper, with the git CLI as the oracle.
@Suite struct RepositoryTests {
    @Test func streamedBlobsMatchGitHashObject() throws {
        let dir = try TemporaryDirectory()
        let repo = try Repository.createBare(at: dir.path("repo.git"))
        var sizes = [0, 1, 1 << 20, (1 << 20) + 1, 2_500_000]
        sizes.append(17)
        for size in sizes {
            let file = try dir.write("f-\(size)", Data((0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31) }))
            var observed = 0
            let (id, written) = try repo.writeBlob(fromFile: file) { observed += $0.count }
            #expect(written == UInt64(size))
            #expect(observed == size)
            #expect(id.hex == (try git(["hash-object", file.path], in: dir.url).output))
            var read = Data()
            try repo.readBlob(id) { read.append(contentsOf: $0) }
            #expect(read == (try Data(contentsOf: file)))
        }
        try git(["fsck", "--strict"], in: repo.path)
    }

    @Test func treesAndCommitsAreWhatGitReads() throws {
        let dir = try TemporaryDirectory()
        let repo = try Repository.createBare(at: dir.path("repo.git"))
        #expect(try repo.head() == nil)
        #expect(try repo.headReferenceName() == "refs/heads/main")
        let editor = try TreeEditor(repository: repo, base: nil)
        let a = try repo.writeBlob(Data("a\n".utf8))
        try editor.setFile("x/y/a.txt", id: a, mode: .blob, size: 2)
        try editor.setFile("top.txt", id: a, mode: .executable, size: 2)
        #expect(editor.isDirectory("x/y"))
        #expect(editor.file(at: "x/y/a.txt")?.id == a)
        let tree = try editor.write()
        let author = Signature(name: "Ada Lovelace", email: "ada@example.org", time: 1_700_000_000, offsetMinutes: 60)
        let commit = try repo.createCommit(tree: tree, parents: [], author: author, committer: author, message: "first\n")
        try repo.updateReference("refs/heads/main", to: commit, expecting: nil, message: "test")
        #expect(try repo.head() == commit)
        #expect(try git(["log", "--format=%H|%an|%ae|%at|%ai|%s"], in: repo.path).output
                == "\(commit.hex)|Ada Lovelace|ada@example.org|1700000000|2023-11-14 23:13:20 +0100|first")
        #expect(try git(["ls-tree", "-r", "--format=%(objectmode) %(path)", "HEAD"], in: repo.path).lines
                == ["100755 top.txt", "100644 x/y/a.txt"])
        let read = try repo.commit(commit)
        #expect(read.author == author)
        #expect(read.parents.isEmpty)
        #expect(try repo.files(inTree: read.tree).map(\.path) == ["top.txt", "x/y/a.txt"])
        #expect(try repo.resolveCommit("main") == commit)
        #expect(try repo.resolveCommit(String(commit.hex.prefix(9))) == commit)
        #expect(try repo.resolveCommit("nope") == nil)
        try git(["fsck", "--strict"], in: repo.path)
    }

    @Test func referenceUpdatesAreCompareAndSwap() throws {
        let dir = try TemporaryDirectory()
        let repo = try Repository.createBare(at: dir.path("repo.git"))
        let tree = try TreeEditor(repository: repo, base: nil).write()
        let sig = Signature(name: "A", email: "a@example.org", time: 1_700_000_000)
        let one = try repo.createCommit(tree: tree, parents: [], author: sig, committer: sig, message: "1\n")
        let two = try repo.createCommit(tree: tree, parents: [one], author: sig, committer: sig, message: "2\n")
        try repo.updateReference("refs/heads/main", to: one, expecting: nil, message: "t")
        #expect(throws: GitError.self) { try repo.updateReference("refs/heads/main", to: two, expecting: nil, message: "t") }
        #expect(throws: GitError.self) { try repo.updateReference("refs/heads/main", to: two, expecting: two, message: "t") }
        try repo.updateReference("refs/heads/main", to: two, expecting: one, message: "t")
        #expect(try repo.isDescendant(two, of: one))
        #expect(try !repo.isDescendant(one, of: two))
        #expect(try repo.history(from: [two]) == [two, one])
    }

    @Test func errorsNameTheLibgit2Call() throws {
        let dir = try TemporaryDirectory()
        do {
            _ = try Repository.open(at: dir.path("missing.git"))
            Issue.record("opening a missing repository succeeded")
        } catch let error as GitError {
            #expect(error.function == "git_repository_open_ext")
            #expect(error.isNotFound)
            #expect(error.description.hasPrefix("git_repository_open_ext failed: "))
        }
    }

    @Test func mailmapFollowsGitCheckMailmap() throws {
        let dir = try TemporaryDirectory()
        let text = """
            Bob Jones <bob@example.org> <bob@old.example>
            <carol@example.org> <CAROL@work.example>
            Dave <dave@example.org> Davey <dave@tmp.example>
            # a comment, then a name-only mapping
            Frank Ocean <frank@example.org>
            <gina@example.org> Gina <GINA@old.example>

            """
        try dir.write(".mailmap", text)
        try git(["init", "-q"], in: dir.url)
        let mailmap = Mailmap(contents: Data(text.utf8))
        let cases = [("Bob", "bob@old.example"), ("Carol", "carol@work.example"), ("Davey", "dave@tmp.example"),
                     ("Dave", "dave@tmp.example"), ("DAVEY", "Dave@TMP.example"), ("Eve", "eve@example.org"),
                     ("frank", "FRANK@example.org"), ("Gina", "gina@old.example"), ("Other", "gina@old.example")]
        for (name, email) in cases {
            let oracle = try git(["-c", "mailmap.file=.mailmap", "check-mailmap", "\(name) <\(email)>"], in: dir.url).output
            let (realName, realEmail) = mailmap.resolve(name: name, email: email)
            #expect("\(realName) <\(realEmail)>" == oracle)
        }
    }
}
