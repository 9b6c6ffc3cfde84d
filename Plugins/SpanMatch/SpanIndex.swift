internal import CDivSufSort
public import Foundation
import GitKit
public import ProvenanceCore
#if canImport(Glibc)
internal import Glibc
#endif

/// A suffix array over the text of a set of dataset commits, with what maps a position back
/// to its dataset, commit, path, line and author.
///
/// On disk (`indexes/<key>/` in the store, `key` the SHA-256 of the commits it covers):
/// - `corpus`: every text file of every commit, in commit then path order, each followed by
///   one NUL byte (files that hold a NUL themselves are not text and are left out);
/// - `sa`: the suffix array of `corpus`, 32-bit little-endian positions (libdivsufsort);
/// - `grams`: a Bloom filter of every 16-byte gram of `corpus` that lies inside one file, 4
///   bits per corpus byte and 3 probes (`GramFilter`): a search skips, at the cost of three
///   memory reads, every output position whose next 16 bytes occur nowhere;
/// - `meta.json`: the commits, the files with their offsets in `corpus`, and each file's
///   line runs by author as git blame assigns them (`DatasetAuthorship.lineRuns`).
///
/// That is 5.5 bytes per corpus byte plus the file table. The two large files are memory-mapped
/// by queries; nothing is read whole.
public final class SpanIndex: @unchecked Sendable {
    public static let format = "provenance-span-index/2"

    public struct Source: Codable, Sendable, Hashable {
        public var dataset: String
        public var commit: String
    }

    struct Meta: Codable {
        struct File: Codable {
            var source: Int
            var path: String
            var offset: Int
            var size: Int
            /// [byte offset in the file, 0-based first line, author index], one per blame run.
            var runs: [[Int]]
        }

        struct Author: Codable, Hashable {
            var contributor: String
            var time: Int64
        }

        var format: String
        var sources: [Source]
        var files: [File]
        var authors: [Author]
        var corpusBytes: Int
        var gramBits: Int

        enum CodingKeys: String, CodingKey {
            case format, sources, files, authors
            case corpusBytes = "corpus_bytes"
            case gramBits = "gram_bits"
        }
    }

    public let directory: URL
    let meta: Meta
    private let corpusFile: MappedFile
    private let suffixFile: MappedFile
    private let gramFile: MappedFile
    let grams: GramFilter
    /// The corpus and suffix array, mapped for the life of the index.
    let corpus: UnsafeRawBufferPointer
    private let suffixes: UnsafeBufferPointer<Int32>
    /// Each file's first corpus offset, ascending, for binary search.
    private let fileStarts: [Int]

    public var sources: [Source] { meta.sources }
    public var corpusBytes: Int { meta.corpusBytes }
    /// The text files indexed, and their bytes (the corpus less one separator per file).
    public var fileCount: Int { meta.files.count }
    public var textBytes: Int { meta.corpusBytes - meta.files.count }
    /// Bytes on disk: corpus, suffix array and metadata.
    public var diskBytes: Int {
        let meta = (try? FileManager.default.attributesOfItem(atPath: directory.appendingPathComponent("meta.json").path)[.size] as? Int) ?? 0
        return corpus.count + suffixes.count * 4 + gramFile.bytes.count + (meta ?? 0)
    }

    /// The directory name of the index over `sources`.
    public static func key(for sources: [Source]) -> String {
        let lines = sources.map { "\($0.dataset) \($0.commit)\n" }.sorted().joined()
        return SHA256Digest.hex(of: Data((format + "\n" + lines).utf8))
    }

    /// Opens a built index, mapping its files.
    public init(directory: URL) throws {
        self.directory = directory
        let metaData = try Data(contentsOf: directory.appendingPathComponent("meta.json"))
        meta = try JSONDecoder().decode(Meta.self, from: metaData)
        guard meta.format == Self.format else {
            throw ProvenanceError.invalid("\(directory.path) is not a \(Self.format) index; rebuild it with `provenance index build`")
        }
        corpusFile = try MappedFile(directory.appendingPathComponent("corpus"))
        suffixFile = try MappedFile(directory.appendingPathComponent("sa"))
        corpus = corpusFile.bytes
        suffixes = suffixFile.bytes.bindMemory(to: Int32.self)
        gramFile = try MappedFile(directory.appendingPathComponent("grams"))
        grams = GramFilter(bits: gramFile.bytes, count: meta.gramBits)
        guard corpus.count == meta.corpusBytes, suffixFile.bytes.count == corpus.count * 4, gramFile.bytes.count == (meta.gramBits + 7) / 8 else {
            throw ProvenanceError.invalid("the span index in \(directory.path) is damaged (sizes disagree); rebuild it with `provenance index build`")
        }
        fileStarts = meta.files.map(\.offset)
    }

    // MARK: Building

    /// One dataset commit to index, with its repository.
    public struct Input: Sendable {
        public var dataset: String
        public var commit: String
        public var repository: URL

        public init(dataset: String, commit: String, repository: URL) {
            self.dataset = dataset
            self.commit = commit
            self.repository = repository
        }
    }

    /// Builds the index of `inputs` in `parent/<key>` unless it is there, and opens it. The
    /// suffix sort runs on one core while git blame assigns the lines on the other; the index
    /// appears whole (written aside, then renamed) or not at all.
    @discardableResult
    public static func build(_ inputs: [Input], in parent: URL, force: Bool = false) throws -> SpanIndex {
        let sources = inputs.map { Source(dataset: $0.dataset, commit: $0.commit) }
        let target = parent.appendingPathComponent(key(for: sources), isDirectory: true)
        let fileManager = FileManager.default
        if !force, fileManager.fileExists(atPath: target.appendingPathComponent("meta.json").path) {
            return try SpanIndex(directory: target)
        }
        try fileManager.createDirectory(at: parent, withIntermediateDirectories: true)
        let staging = parent.appendingPathComponent(".build-\(UUID().uuidString)", isDirectory: true)
        try fileManager.createDirectory(at: staging, withIntermediateDirectories: true)
        defer { try? fileManager.removeItem(at: staging) }

        // 1. The text of every file, in order.
        var corpus = Data()
        var files: [Meta.File] = []
        var textFiles: [[TreeFile]] = []
        for (number, input) in inputs.enumerated() {
            let repository = try Repository.open(at: input.repository)
            guard let commit = ObjectID(hex: input.commit) else { throw ProvenanceError.invalid("'\(input.commit)' is not a commit id") }
            let listed = try repository.files(inTree: try repository.commit(commit).tree).filter { $0.mode == .blob || $0.mode == .executable }
            var kept: [TreeFile] = []
            for (position, file) in listed.enumerated() {
                let content = try repository.readBlob(file.id)
                if position % 256 == 0 { ProgressReport.report("Reading \(input.dataset)", done: position, total: listed.count, unit: "files") }
                guard !content.contains(0) else { continue }
                files.append(Meta.File(source: number, path: file.path, offset: corpus.count, size: content.count, runs: []))
                corpus.append(content)
                corpus.append(0)
                kept.append(file)
                guard corpus.count < Int(Int32.max) else {
                    throw ProvenanceError.invalid("the training text of these dataset commits is over 2 GiB, more than a 32-bit suffix array indexes")
                }
            }
            textFiles.append(kept)
        }

        // 2. The suffix array on one thread, the blame on this one.
        let count = corpus.count
        let suffixes = UnsafeMutableBufferPointer<Int32>.allocate(capacity: max(count, 1))
        defer { suffixes.deallocate() }
        let sorted = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var status: Int32 = 0
        let text = corpus
        nonisolated(unsafe) let output = suffixes
        Thread.detachNewThread {
            status = text.withUnsafeBytes { bytes in
                count == 0 ? 0 : divsufsort(bytes.baseAddress!.assumingMemoryBound(to: UInt8.self), output.baseAddress!, Int32(count))
            }
            sorted.signal()
        }
        ProgressReport.report("Sorting suffixes and blaming lines", done: count / 1_000_000, unit: "MB of text")
        var authors: [Meta.Author] = []
        var authorIndex: [Meta.Author: Int] = [:]
        var fileNumber = 0
        var blameError: (any Error)?
        do {
            for (number, input) in inputs.enumerated() {
                var authorship = try DatasetAuthorship(repository: input.repository, commit: input.commit)
                let dataset = input.dataset
                let runs = try authorship.lineRuns(of: textFiles[number].map { ($0.path, $0.id.hex, $0.mode == .executable) }, workers: 1) { walked in
                    if walked % 16 == 0 { ProgressReport.report("Blaming \(dataset)", done: walked, unit: "commits walked") }
                }
                for fileRuns in runs {
                    var byte = 0
                    var rows: [[Int]] = []
                    rows.reserveCapacity(fileRuns.count)
                    for run in fileRuns {
                        let author = Meta.Author(contributor: run.contributor, time: run.time)
                        let index: Int
                        if let known = authorIndex[author] { index = known } else {
                            index = authors.count
                            authors.append(author)
                            authorIndex[author] = index
                        }
                        rows.append([byte, run.start, index])
                        byte += Int(run.bytes)
                    }
                    files[fileNumber].runs = rows
                    fileNumber += 1
                }
            }
        } catch {
            blameError = error
        }
        // The gram filter, while the suffix sort goes on.
        let gramBits = max(64, corpus.count * 4)
        let filterBytes = UnsafeMutableRawBufferPointer.allocate(byteCount: (gramBits + 7) / 8, alignment: 8)
        defer { filterBytes.deallocate() }
        if blameError == nil {
            filterBytes.initializeMemory(as: UInt8.self, repeating: 0)
            corpus.withUnsafeBytes { GramFilter.fill(filterBytes, count: gramBits, from: $0) }
        }
        ProgressReport.report("Sorting suffixes", done: count / 1_000_000, unit: "MB of text")
        sorted.wait()
        if let blameError { throw blameError }
        guard status == 0 else { throw ProvenanceError(.storage, "divsufsort failed with status \(status)") }

        // 3. Write aside, then move into place.
        try corpus.write(to: staging.appendingPathComponent("corpus"))
        try writeWhole(UnsafeRawBufferPointer(start: suffixes.baseAddress, count: count * 4), to: staging.appendingPathComponent("sa"))
        try writeWhole(UnsafeRawBufferPointer(filterBytes), to: staging.appendingPathComponent("grams"))
        let meta = Meta(format: format, sources: sources, files: files, authors: authors, corpusBytes: count, gramBits: gramBits)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try encoder.encode(meta).write(to: staging.appendingPathComponent("meta.json"))
        if force, fileManager.fileExists(atPath: target.path) { try fileManager.removeItem(at: target) }
        do {
            try fileManager.moveItem(at: staging, to: target)
        } catch where fileManager.fileExists(atPath: target.appendingPathComponent("meta.json").path) {
            // Another process built the same index meanwhile: indexes are named by their
            // content, so theirs is as good as ours.
        }
        return try SpanIndex(directory: target)
    }

    // MARK: Queries

    /// A maximal span of the output found in the corpus.
    public struct Match: Sendable, Equatable {
        /// Byte offset in the output.
        public var start: Int
        public var length: Int
        /// How many times it occurs in the corpus.
        public var occurrences: Int
        /// The occurrence credited (see `attribute`), as a corpus offset.
        public var position: Int
    }

    @inline(__always)
    private func suffix(_ rank: Int) -> Int {
        Int(Int32(littleEndian: suffixes[rank]))
    }

    /// Compares the corpus suffix at `position` with `pattern`, looking at most at `limit`
    /// bytes: the order (-1, 0, 1: suffix before, prefix-equal, after) and the common length.
    @inline(__always)
    private static func compare(_ corpus: UnsafeRawBufferPointer, _ position: Int, _ pattern: UnsafeRawBufferPointer, limit: Int) -> (Int, Int) {
        let available = corpus.count - position
        let length = min(limit, pattern.count)
        var common = 0
        while common < length {
            if common == available { return (-1, common) }  // the suffix ends first: it sorts before
            let a = corpus[position + common], b = pattern[common]
            if a != b { return (a < b ? -1 : 1, common) }
            common += 1
        }
        return (0, common)
    }

    /// The longest prefix of `pattern` that occurs in the corpus: its length.
    private func longestMatch(_ corpus: UnsafeRawBufferPointer, _ pattern: UnsafeRawBufferPointer) -> Int {
        var low = 0, high = corpus.count
        var best = 0
        while low < high {
            let middle = (low + high) / 2
            let (order, common) = Self.compare(corpus, suffix(middle), pattern, limit: pattern.count)
            best = max(best, common)
            if order == 0 { return common }
            if order < 0 { low = middle + 1 } else { high = middle }
        }
        // The neighbours of the insertion point share the longest prefix with the pattern.
        for rank in [low - 1, low] where rank >= 0 && rank < corpus.count {
            best = max(best, Self.compare(corpus, suffix(rank), pattern, limit: pattern.count).1)
        }
        return best
    }

    /// The ranks of the suffixes that start with `pattern`.
    private func range(_ corpus: UnsafeRawBufferPointer, _ pattern: UnsafeRawBufferPointer) -> Range<Int> {
        func bound(upper: Bool) -> Int {
            var low = 0, high = corpus.count
            while low < high {
                let middle = (low + high) / 2
                let order = Self.compare(corpus, suffix(middle), pattern, limit: pattern.count).0
                if order < 0 || (upper && order == 0) { low = middle + 1 } else { high = middle }
            }
            return low
        }
        return bound(upper: false)..<bound(upper: true)
    }

    /// Whether `pattern` occurs in the corpus.
    private func contains(_ corpus: UnsafeRawBufferPointer, _ pattern: UnsafeRawBufferPointer) -> Bool {
        var low = 0, high = corpus.count
        while low < high {
            let middle = (low + high) / 2
            let order = Self.compare(corpus, suffix(middle), pattern, limit: pattern.count).0
            if order == 0 { return true }
            if order < 0 { low = middle + 1 } else { high = middle }
        }
        return false
    }

    /// Every maximal span of `output` of at least `minimumBytes` bytes that occurs verbatim in
    /// the corpus: for each start, the longest match; kept when it is not inside the match of
    /// a start before it. Spans never contain a NUL byte (the corpus's file separator) and
    /// begin and end on UTF-8 character boundaries.
    ///
    /// Two shortcuts keep it near one probe per output byte that matches nothing: a start whose
    /// next 16 bytes the gram filter has never seen cannot begin a span of 16 bytes or more, so
    /// it is passed over without a search (when `minimumBytes` is at least 16); and after a span
    /// ending at `e`, the next start whose match can reach past `e` is found by galloping and
    /// bisection on "the output from j through e occurs", which holds for every j from some
    /// point on, instead of searching from every start inside the span. (A match shorter than
    /// `minimumBytes` never hides a longer one that starts later, so only long spans count.)
    public func maximalSpans(in output: Data, minimumBytes: Int) -> [Match] {
        guard corpus.count > 0 else { return [] }
        let corpusBytes = corpus
        let useFilter = minimumBytes >= GramFilter.gram
        return output.withUnsafeBytes { outputBytes in
            var matches: [Match] = []
            var spanEnd = 0
            var segmentEnd = 0
            var start = 0
            let count = outputBytes.count
            func occurs(_ from: Int, through last: Int) -> Bool {
                contains(corpusBytes, UnsafeRawBufferPointer(rebasing: outputBytes[from...last]))
            }
            while start < count {
                if start >= segmentEnd {
                    segmentEnd = start
                    while segmentEnd < count && outputBytes[segmentEnd] != 0 { segmentEnd += 1 }
                    if start == segmentEnd {  // a NUL: never matched
                        start += 1
                        continue
                    }
                }
                if useFilter {
                    guard start + GramFilter.gram <= segmentEnd else {
                        start = segmentEnd  // nothing this close to the segment's end is long enough
                        continue
                    }
                    if !grams.mayContain(outputBytes.baseAddress! + start) {
                        start += 1
                        continue
                    }
                }
                let length = longestMatch(corpusBytes, UnsafeRawBufferPointer(rebasing: outputBytes[start..<segmentEnd]))
                let end = start + length
                guard length >= minimumBytes, end > spanEnd else {
                    start += 1
                    continue
                }
                // Trim to character boundaries: no start or end inside a UTF-8 sequence.
                var first = start, last = end
                while first < last && outputBytes[first] & 0xC0 == 0x80 { first += 1 }
                while last > first && last < count && outputBytes[last] & 0xC0 == 0x80 { last -= 1 }
                if last - first >= minimumBytes {
                    let found = range(corpusBytes, UnsafeRawBufferPointer(rebasing: outputBytes[first..<last]))
                    matches.append(Match(start: first, length: last - first, occurrences: found.count,
                                         position: credited(found, length: last - first)))
                }
                spanEnd = end
                // The next start that can reach past `end`: the least j in (start, end] for which
                // output[j...end] occurs (it then matches at least through `end`).
                guard end < segmentEnd else {
                    start = segmentEnd
                    continue
                }
                var bad = start, step = 1
                var good = end + 1  // past the range: no such j
                while bad + step <= end {
                    if occurs(bad + step, through: end) {
                        good = bad + step
                        break
                    }
                    bad += step
                    step *= 2
                }
                if good == end + 1 {
                    // Galloping stopped short of `end`: only `end` itself is left to try; if
                    // output[end] occurs nowhere, no j does and the search goes on after it.
                    if bad < end && occurs(end, through: end) { good = end } else { bad = end }
                }
                while good - bad > 1 {
                    let middle = (bad + good) / 2
                    if occurs(middle, through: end) { good = middle } else { bad = middle }
                }
                start = good
            }
            return matches
        }
    }

    /// At most this many occurrences of one span are weighed to find its earliest writing.
    public static let occurrencesExamined = 4_096

    /// Of a span's occurrences (the first `occurrencesExamined` in suffix order), the one
    /// written first: the least, over occurrences, of the newest author time among the lines
    /// it covers; ties go to the earliest corpus position. A copy never outranks its original.
    private func credited(_ ranks: Range<Int>, length: Int) -> Int {
        var best: (time: Int64, position: Int)?
        for rank in ranks.prefix(Self.occurrencesExamined) {
            let position = suffix(rank)
            var newest = Int64.min
            for author in authors(at: position, length: length) { newest = max(newest, meta.authors[author].time) }
            if best == nil || (newest, position) < (best!.time, best!.position) { best = (newest, position) }
        }
        return best!.position
    }

    /// The corpus bytes at `position`.
    public func text(at position: Int, length: Int) -> Data {
        Data(UnsafeRawBufferPointer(rebasing: corpus[position..<(position + length)]))
    }

    /// The file holding corpus offset `position`.
    private func file(at position: Int) -> Int {
        var low = 0, high = fileStarts.count
        while low < high {
            let middle = (low + high) / 2
            if fileStarts[middle] <= position { low = middle + 1 } else { high = middle }
        }
        return low - 1
    }

    /// The run of `entry` holding file offset `offset`.
    private static func run(of entry: Meta.File, at offset: Int) -> Int {
        var low = 0, high = entry.runs.count
        while low < high {
            let middle = (low + high) / 2
            if entry.runs[middle][0] <= offset { low = middle + 1 } else { high = middle }
        }
        return max(0, low - 1)
    }

    /// The authors of the corpus bytes [position, position + length), without line numbers.
    private func authors(at position: Int, length: Int) -> [Int] {
        let entry = meta.files[file(at: position)]
        let start = position - entry.offset, end = start + length
        var result: [Int] = []
        var run = Self.run(of: entry, at: start)
        while run < entry.runs.count && entry.runs[run][0] < end {
            result.append(entry.runs[run][2])
            run += 1
        }
        return result
    }

    struct Piece {
        var file: Int
        /// Offset in the file.
        var offset: Int
        var length: Int
        var author: Int
        /// 0-based line of the first byte.
        var line: Int
        var lastLine: Int
    }

    /// The corpus bytes [position, position + length) cut where the blame author changes.
    func pieces(at position: Int, length: Int) -> [Piece] {
        let number = file(at: position)
        let entry = meta.files[number]
        let start = position - entry.offset
        let end = start + length
        var result: [Piece] = []
        let bytes = corpus
        do {
            func newlines(_ from: Int, _ to: Int) -> Int {
                var count = 0
                var at = entry.offset + from
                while at < entry.offset + to {
                    if bytes[at] == 10 { count += 1 }
                    at += 1
                }
                return count
            }
            var run = Self.run(of: entry, at: start)
            var at = start
            while at < end && run < entry.runs.count {
                let runStart = entry.runs[run][0]
                let runEnd = run + 1 < entry.runs.count ? entry.runs[run + 1][0] : entry.size
                let pieceEnd = min(end, runEnd)
                if pieceEnd > at {
                    let line = entry.runs[run][1] + newlines(runStart, at)
                    let lastLine = line + newlines(at, pieceEnd - 1)
                    if var last = result.last, last.author == entry.runs[run][2] {
                        last.length += pieceEnd - at
                        last.lastLine = lastLine
                        result[result.count - 1] = last
                    } else {
                        result.append(Piece(file: number, offset: at, length: pieceEnd - at, author: entry.runs[run][2], line: line, lastLine: lastLine))
                    }
                }
                at = pieceEnd
                run += 1
            }
        }
        return result
    }

    /// The spans of `output` that earn, credited to their authors.
    ///
    /// Each output byte inside at least one maximal span is earned by the longest span covering
    /// it (ties: the one starting first); a span's earned bytes are credited at its chosen
    /// occurrence (`credited`) to the authors of the lines there, cut where the author changes.
    public func attribute(output: Data, minimumBytes: Int) -> (matches: [Match], spans: [AttributedSpan]) {
        let matches = maximalSpans(in: output, minimumBytes: minimumBytes)
        guard !matches.isEmpty else { return ([], []) }
        var owner = [Int](repeating: -1, count: output.count)
        for (number, match) in matches.enumerated() {
            for byte in match.start..<(match.start + match.length) where owner[byte] < 0 || matches[owner[byte]].length < match.length {
                owner[byte] = number
            }
        }
        var spans: [AttributedSpan] = []
        var byte = 0
        while byte < output.count {
            let number = owner[byte]
            guard number >= 0 else { byte += 1; continue }
            var end = byte + 1
            while end < output.count && owner[end] == number { end += 1 }
            let match = matches[number]
            let position = match.position + (byte - match.start)
            var outputOffset = byte
            for piece in pieces(at: position, length: end - byte) {
                let entry = meta.files[piece.file]
                let source = meta.sources[entry.source]
                let text = String(decoding: UnsafeRawBufferPointer(rebasing: corpus[(entry.offset + piece.offset)..<(entry.offset + piece.offset + piece.length)]), as: UTF8.self)
                spans.append(AttributedSpan(dataset: source.dataset, commit: source.commit, path: entry.path,
                                            lineStart: piece.line + 1, lineEnd: piece.lastLine + 1, fileOffset: UInt64(piece.offset),
                                            outputOffset: UInt64(outputOffset), length: UInt64(piece.length),
                                            contributor: meta.authors[piece.author].contributor, text: text))
                outputOffset += piece.length
            }
            byte = end
        }
        return (matches, spans)
    }
}

/// A file mapped read-only for the life of this object.
final class MappedFile: @unchecked Sendable {
    let bytes: UnsafeRawBufferPointer

    init(_ url: URL) throws {
        let descriptor = open(url.path, O_RDONLY)
        guard descriptor >= 0 else { throw ProvenanceError.notFound("cannot open \(url.path): \(String(cString: strerror(errno)))") }
        defer { close(descriptor) }
        var info = stat()
        guard fstat(descriptor, &info) == 0 else { throw ProvenanceError(.storage, "cannot stat \(url.path)") }
        let size = Int(info.st_size)
        guard size > 0 else {
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            return
        }
        guard let address = mmap(nil, size, PROT_READ, MAP_SHARED, descriptor, 0), address != MAP_FAILED else {
            throw ProvenanceError(.storage, "cannot map \(url.path): \(String(cString: strerror(errno)))")
        }
        bytes = UnsafeRawBufferPointer(start: address, count: size)
    }

    deinit {
        if let base = bytes.baseAddress { munmap(UnsafeMutableRawPointer(mutating: base), bytes.count) }
    }
}

/// Writes `bytes` to a new file at `url` without copying them first.
private func writeWhole(_ bytes: UnsafeRawBufferPointer, to url: URL) throws {
    guard let file = fopen(url.path, "wb") else { throw ProvenanceError(.storage, "cannot create \(url.path)") }
    defer { fclose(file) }
    if bytes.count > 0, fwrite(bytes.baseAddress, 1, bytes.count, file) != bytes.count {
        throw ProvenanceError(.storage, "cannot write \(url.path): \(String(cString: strerror(errno)))")
    }
    guard fflush(file) == 0 else { throw ProvenanceError(.storage, "cannot write \(url.path)") }
}

/// A Bloom filter of the corpus's 16-byte grams (those inside one file), 3 probes.
struct GramFilter {
    static let gram = 16
    let bits: UnsafeRawBufferPointer
    let count: Int

    init(bits: UnsafeRawBufferPointer, count: Int) {
        self.bits = bits
        self.count = count
    }

    @inline(__always)
    static func hash(_ bytes: UnsafeRawPointer) -> UInt64 {
        let a = bytes.loadUnaligned(as: UInt64.self), b = bytes.loadUnaligned(fromByteOffset: 8, as: UInt64.self)
        var h = (a ^ (b << 29 | b >> 35)) &* 0x9E37_79B9_7F4A_7C15
        h ^= h >> 32
        h &*= 0xD6E8_FEB8_6659_FD93
        h ^= h >> 29
        return h ^ b
    }

    /// The probe positions of a hash: double hashing, each mapped into [0, count) by a multiply.
    @inline(__always)
    static func probe(_ hash: UInt64, _ number: UInt64, _ count: Int) -> Int {
        let mixed = hash &+ number &* ((hash >> 32) | 1)
        return Int(mixed.multipliedFullWidth(by: UInt64(count)).high)
    }

    @inline(__always)
    func mayContain(_ bytes: UnsafeRawPointer) -> Bool {
        let h = Self.hash(bytes)
        for number in 0..<3 as Range<UInt64> {
            let bit = Self.probe(h, number, count)
            if bits[bit >> 3] & (1 << UInt8(bit & 7)) == 0 { return false }
        }
        return true
    }

    /// Sets the bits of every gram of `corpus` that holds no NUL.
    static func fill(_ bits: UnsafeMutableRawBufferPointer, count: Int, from corpus: UnsafeRawBufferPointer) {
        guard corpus.count >= gram, let base = corpus.baseAddress else { return }
        var nextZero = 0
        var position = 0
        while position + gram <= corpus.count {
            if nextZero < position {
                nextZero = position
                while nextZero < corpus.count && corpus[nextZero] != 0 { nextZero += 1 }
            }
            if nextZero < position + gram {  // the gram would cross a file's end
                position = nextZero + 1
                continue
            }
            let h = hash(base + position)
            for number in 0..<3 as Range<UInt64> {
                let bit = probe(h, number, count)
                bits[bit >> 3] |= 1 << UInt8(bit & 7)
            }
            position += 1
        }
    }
}
