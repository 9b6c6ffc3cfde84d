/// Rename detection for one destination path, as `git blame` asks diffcore for it
/// (`diffcore_rename` with `single_follow`, git 2.39): exact renames first, then a unique
/// basename at 75% similarity, then the best inexact match at 50% (git's default `-M`).
///
/// Written from the behaviour of git's `diffcore-rename.c` and `diffcore-delta.c` so that the
/// same files are paired: the similarity score, its size filter, git's tie-breaking among equal
/// scores and its habit of ignoring a last chunk without a newline are all reproduced.
enum RenameDetection {
    static let maxScore = 60_000
    static let minimumScore = 30_000
    /// `minimum_score + 0.5 * (MAX_SCORE - minimum_score)`.
    static let basenameScore = 45_000

    struct Source {
        var path: String
        var id: RawOID
        var mode: UInt32
    }

    /// The source that `destination` was renamed from, or nil.
    ///
    /// - Parameters:
    ///   - sources: files deleted between the parent and the commit, in git's path order.
    ///   - content: reads a blob (for sizes and similarity).
    static func source(for destination: Source, among sources: [Source],
                       spans: inout SpanCache, repository: Repository) throws -> Source? {
        if sources.isEmpty { return nil }
        // Exact: the same blob; links and submodules only with the same mode. A source with
        // the same basename wins, else the first in path order.
        var exact: Source?
        for source in sources where source.id == destination.id {
            if fileType(source.mode) != regularFileType || fileType(destination.mode) != regularFileType {
                if source.mode != destination.mode { continue }
            }
            if basenameSame(source.path, destination.path) { exact = source; break }
            if exact == nil { exact = source }
        }
        if let exact { return exact }

        // A source whose basename is unique among the sources, at 75%.
        let base = basename(destination.path)
        let sameBase = sources.filter { basename($0.path) == base }
        if sameBase.count == 1,
           try similarity(of: sameBase[0], to: destination, minimum: basenameScore, spans: &spans, repository: repository) >= basenameScore {
            return sameBase[0]
        }

        // The best of the rest at 50%, chosen as git's four-slot candidate list and stable sort do.
        var slots: [Candidate?] = [nil, nil, nil, nil]
        for (index, source) in sources.enumerated() {
            let score = try similarity(of: source, to: destination, minimum: minimumScore, spans: &spans, repository: repository)
            let candidate = Candidate(score: score, nameScore: basenameSame(source.path, destination.path) ? 1 : 0, source: index)
            var worst = 0
            for slot in 1..<slots.count where compare(slots[slot], slots[worst]) > 0 { worst = slot }
            if compare(slots[worst], candidate) > 0 { slots[worst] = candidate }
        }
        let ranked = slots.enumerated().sorted { lhs, rhs in
            let order = compare(lhs.element, rhs.element)
            return order != 0 ? order < 0 : lhs.offset < rhs.offset
        }
        guard let best = ranked.first?.element, best.score >= minimumScore else { return nil }
        return sources[best.source]
    }

    private struct Candidate {
        var score: Int
        var nameScore: Int
        var source: Int
    }

    /// git's `score_compare`: positive when `a` ranks after `b`; unused slots sink.
    private static func compare(_ a: Candidate?, _ b: Candidate?) -> Int {
        guard let a else { return b == nil ? 0 : 1 }
        guard let b else { return -1 }
        if a.score == b.score { return b.nameScore - a.nameScore }
        return b.score - a.score
    }

    static func basename(_ path: String) -> Substring {
        guard let slash = path.lastIndex(of: "/") else { return Substring(path) }
        return path[path.index(after: slash)...]
    }

    static func basenameSame(_ a: String, _ b: String) -> Bool { basename(a) == basename(b) }

    /// git's `estimate_similarity`: the bytes of `destination` found in `source`, scaled to
    /// `maxScore` by the larger size; 0 for anything but two regular files, or sizes too far apart.
    static func similarity(of source: Source, to destination: Source, minimum: Int,
                           spans: inout SpanCache, repository: Repository) throws -> Int {
        guard fileType(source.mode) == regularFileType, fileType(destination.mode) == regularFileType else { return 0 }
        let sourceSpans = try spans.spans(of: source.id, repository: repository)
        let destinationSpans = try spans.spans(of: destination.id, repository: repository)
        let maxSize = max(sourceSpans.size, destinationSpans.size)
        let baseSize = min(sourceSpans.size, destinationSpans.size)
        let deltaSize = maxSize - baseSize
        if maxSize * UInt64(maxScore - minimum) < deltaSize * UInt64(maxScore) { return 0 }
        if destinationSpans.size == 0 { return 0 }
        var copied: UInt64 = 0
        var s = 0
        var d = 0
        let src = sourceSpans.counts
        let dst = destinationSpans.counts
        while s < src.count {
            while d < dst.count && dst[d].hash < src[s].hash { d += 1 }
            if d < dst.count && dst[d].hash == src[s].hash {
                copied += UInt64(min(src[s].count, dst[d].count))
                d += 1
            }
            s += 1
        }
        return Int(copied * UInt64(maxScore) / maxSize)
    }
}

/// git's `diffcore-delta` fingerprints of blobs, kept while one commit's renames are examined.
struct SpanCache {
    struct Spans {
        var size: UInt64
        /// Bytes per chunk hash, sorted by hash.
        var counts: [(hash: UInt32, count: UInt32)]
    }

    private var cache: [RawOID: Spans] = [:]

    mutating func removeAll() { cache.removeAll(keepingCapacity: true) }

    mutating func spans(of id: RawOID, repository: Repository) throws -> Spans {
        if let cached = cache[id] { return cached }
        let spans = try repository.withBlobBytes(id) { Self.hashChunks($0) }
        cache[id] = spans
        return spans
    }

    /// Cuts the content into chunks that end at a newline or after 64 bytes (CR before LF
    /// skipped in text) and sums the bytes per chunk hash, as git's `hash_chars` does. A
    /// last chunk without a newline is left out, as git 2.39 leaves it out.
    static func hashChunks(_ bytes: UnsafeRawBufferPointer) -> Spans {
        let isText = !bytes.prefix(8000).contains(0)
        var totals: [UInt32: UInt32] = [:]
        var accum1: UInt32 = 0
        var accum2: UInt32 = 0
        var n: UInt32 = 0
        let count = bytes.count
        var index = 0
        while index < count {
            let c = UInt32(bytes[index])
            index += 1
            if isText && c == 0x0D && index < count && bytes[index] == 0x0A { continue }
            let old1 = accum1
            accum1 = (accum1 << 7) ^ (accum2 >> 25)
            accum2 = (accum2 << 7) ^ (old1 >> 25)
            accum1 &+= c
            n += 1
            if n < 64 && c != 0x0A { continue }
            let hash = (accum1 &+ accum2 &* 0x61) % 107_927
            totals[hash, default: 0] &+= n
            n = 0
            accum1 = 0
            accum2 = 0
        }
        let counts = totals.map { (hash: $0.key, count: $0.value) }.sorted { $0.hash < $1.hash }
        return Spans(size: UInt64(count), counts: counts)
    }
}
