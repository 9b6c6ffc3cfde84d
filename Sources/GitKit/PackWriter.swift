internal import CGit2
internal import Crypto
internal import Foundation
#if canImport(Glibc)
internal import Glibc
#endif

/// Writes many objects into one new pack (version 2, whole objects, no delta search) with its
/// version-2 index, as `git index-pack` would leave them.
///
/// Thousands of small files cost git and libgit2 one loose-object file each: an open, a write,
/// a rename and a directory entry, which is where most of the time of adding them goes. A pack
/// holds them all in one file. Hashing and compressing happen in the calling threads; only
/// appending the finished bytes to the file is serialised, so many threads can add at once.
///
/// The pack is written under a temporary name in `objects/pack` and becomes visible only in
/// `finish()`, when the pack and then its index are renamed into place (the order git uses:
/// an index is what makes a pack visible). A writer that is never finished removes its
/// temporary file, so a failed write leaves no object behind; a killed process leaves at most
/// a `tmp_pack_*` file, which git ignores (and `git gc` removes).
public final class PackWriter: @unchecked Sendable {
    /// Blobs of at most this many bytes go into the pack; larger ones stream into loose
    /// objects, so memory never grows with a file's size.
    public static let largestPackedBlob = 1 << 20

    private struct Entry {
        var id: [UInt8]
        var offset: UInt64
        var crc: UInt32
    }

    private let lock = NSLock()
    private let directory: URL
    private let temporaryPath: String
    private var descriptor: Int32
    private let plannedCount: Int
    private var entries: [Entry] = []
    private var claimed: Set<[UInt8]> = []
    private var hasher = Insecure.SHA1()
    private var offset: UInt64 = 0
    private var buffer: [UInt8] = []
    private var done = false
    private let compressionLevel: Int32

    /// The objects the pack holds so far.
    public var count: Int { lock.lock(); defer { lock.unlock() }; return entries.count }

    /// Starts a pack in `repository`'s object database.
    ///
    /// - Parameters:
    ///   - expectedCount: how many objects the caller means to add. The header is written with
    ///     it and the pack hashed as it grows; if fewer objects are added (duplicates), the
    ///     header is corrected and the pack hashed again when it is finished.
    ///   - compressionLevel: zlib's level; git writes loose objects at 1 (best speed).
    public init(repository: Repository, expectedCount: Int, compressionLevel: Int32 = 1) throws {
        directory = repository.objectsDirectory.appendingPathComponent("pack", isDirectory: true)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var template = Array(directory.appendingPathComponent("tmp_pack_XXXXXX").path.utf8CString)
        let descriptor = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard descriptor >= 0 else {
            throw GitError(function: "mkstemp", message: "cannot create a pack in \(directory.path): \(String(cString: strerror(errno)))")
        }
        self.descriptor = descriptor
        temporaryPath = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        plannedCount = expectedCount
        self.compressionLevel = compressionLevel
        buffer.reserveCapacity(Self.bufferSize)
        append(Self.header(count: expectedCount))
    }

    deinit {
        if descriptor >= 0 { Glibc.close(descriptor) }
        if !done { unlink(temporaryPath) }
    }

    private static let bufferSize = 1 << 20

    private static func header(count: Int) -> [UInt8] {
        Array("PACK".utf8) + bigEndian(UInt32(2)) + bigEndian(UInt32(truncatingIfNeeded: count))
    }

    /// Adds blob `bytes` unless the pack already holds it, and returns its id.
    ///
    /// Safe to call from many threads at once. `skip` is asked (outside the writer's lock)
    /// whether the object need not be written at all, e.g. because the repository has it.
    public func addBlob(_ bytes: UnsafeRawBufferPointer, skip: (ObjectID) -> Bool = { _ in false }) throws -> ObjectID {
        try add(bytes, type: .blob, skip: skip)
    }

    /// Adds object `bytes` of `type` (its content, without git's "type size" header) unless
    /// the pack already holds it, and returns its id.
    public func add(_ bytes: UnsafeRawBufferPointer, type: ObjectType, skip: (ObjectID) -> Bool = { _ in false }) throws -> ObjectID {
        let (name, code): (String, UInt8) = switch type {
        case .commit: ("commit", 1)
        case .tree: ("tree", 2)
        case .blob: ("blob", 3)
        case .tag: ("tag", 4)
        }
        let objectHeader = Array("\(name) \(bytes.count)\0".utf8)
        var sha = Insecure.SHA1()
        sha.update(data: objectHeader)
        sha.update(bufferPointer: bytes)
        let id = Array(sha.finalize())
        let objectID = Self.objectID(id)
        if skip(objectID) { return objectID }
        lock.lock()
        let fresh = claimed.insert(id).inserted
        lock.unlock()
        if !fresh { return objectID }

        // The entry: git's type-and-size header, then the zlib stream of the content.
        var entry = Self.entryHeader(type: code, size: UInt64(bytes.count))
        let headerCount = entry.count
        let compressed = try Self.deflate(bytes, level: compressionLevel, appendingTo: &entry)
        entry.removeLast(entry.count - headerCount - compressed)
        let crc = entry.withUnsafeBufferPointer { UInt32(crc32(0, $0.baseAddress, uInt($0.count))) }

        lock.lock()
        defer { lock.unlock() }
        guard !done else { throw GitError(function: "PackWriter.add", message: "the pack is already finished") }
        entries.append(Entry(id: id, offset: offset, crc: crc))
        append(entry)
        if buffer.count >= Self.bufferSize { try flush() }
        return objectID
    }

    /// Writes the pack's trailer and its index and moves both into place. A pack that
    /// received no object is removed instead.
    ///
    /// - Returns: the pack's name (`pack-<sha1>`), or nil when nothing was written.
    @discardableResult
    public func finish() throws -> String? {
        lock.lock()
        defer { lock.unlock() }
        guard !done else { throw GitError(function: "PackWriter.finish", message: "the pack is already finished") }
        done = true
        defer { Glibc.close(descriptor); descriptor = -1 }
        guard !entries.isEmpty else {
            unlink(temporaryPath)
            return nil
        }
        try flush()
        if entries.count != plannedCount { try rehashWithCorrectedHeader() }
        let packChecksum = Array(hasher.finalize())
        try writeAll(packChecksum, to: descriptor, path: temporaryPath)

        let name = "pack-" + Self.hex(packChecksum)
        let index = Self.index(of: entries, packChecksum: packChecksum)
        let indexTemporary = temporaryPath + ".idx"
        let indexDescriptor = Glibc.open(indexTemporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o444)
        guard indexDescriptor >= 0 else {
            unlink(temporaryPath)
            throw GitError(function: "open", message: "cannot create \(indexTemporary): \(String(cString: strerror(errno)))")
        }
        do {
            defer { Glibc.close(indexDescriptor) }
            try writeAll(index, to: indexDescriptor, path: indexTemporary)
        } catch {
            unlink(indexTemporary)
            unlink(temporaryPath)
            throw error
        }
        fchmod(descriptor, 0o444)
        let packPath = directory.appendingPathComponent(name + ".pack").path
        let indexPath = directory.appendingPathComponent(name + ".idx").path
        guard rename(temporaryPath, packPath) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(indexTemporary)
            unlink(temporaryPath)
            throw GitError(function: "rename", message: "cannot place \(packPath): \(reason)")
        }
        guard rename(indexTemporary, indexPath) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(indexTemporary)
            throw GitError(function: "rename", message: "cannot place \(indexPath): \(reason)")
        }
        return name
    }

    // MARK: Writing

    /// Appends to the write buffer and the running pack checksum. Called under the lock.
    private func append(_ bytes: [UInt8]) {
        hasher.update(data: bytes)
        buffer.append(contentsOf: bytes)
        offset += UInt64(bytes.count)
    }

    private func flush() throws {
        guard !buffer.isEmpty else { return }
        try writeAll(buffer, to: descriptor, path: temporaryPath)
        buffer.removeAll(keepingCapacity: true)
    }

    private func writeAll(_ bytes: [UInt8], to descriptor: Int32, path: String) throws {
        try bytes.withUnsafeBytes { raw in
            var written = 0
            while written < raw.count {
                let count = Glibc.write(descriptor, raw.baseAddress! + written, raw.count - written)
                if count < 0 {
                    if errno == EINTR { continue }
                    throw GitError(function: "write", message: "cannot write \(path): \(String(cString: strerror(errno)))")
                }
                written += count
            }
        }
    }

    /// Fewer objects than announced (some were duplicates): rewrite the count in the header
    /// and hash the whole file again, since the checksum covers the header.
    private func rehashWithCorrectedHeader() throws {
        let header = Self.header(count: entries.count)
        let wrote = header.withUnsafeBytes { pwrite(descriptor, $0.baseAddress, $0.count, 0) }
        guard wrote == header.count else {
            throw GitError(function: "pwrite", message: "cannot write \(temporaryPath): \(String(cString: strerror(errno)))")
        }
        hasher = Insecure.SHA1()
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: Self.bufferSize, alignment: 16)
        defer { chunk.deallocate() }
        var position: off_t = 0
        while true {
            let count = pread(descriptor, chunk.baseAddress, chunk.count, position)
            if count < 0 {
                if errno == EINTR { continue }
                throw GitError(function: "pread", message: "cannot read \(temporaryPath): \(String(cString: strerror(errno)))")
            }
            if count == 0 { break }
            hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: chunk[..<count]))
            position += off_t(count)
        }
        guard UInt64(position) == offset else {
            throw GitError(function: "PackWriter.finish", message: "\(temporaryPath) has \(position) bytes, expected \(offset)")
        }
        _ = lseek(descriptor, 0, SEEK_END)
    }

    // MARK: Formats

    /// Appends the zlib stream of `bytes` to `out` and returns its length.
    ///
    /// The window and hash table are sized to the input: zlib's defaults (32 KiB window, 64 Ki
    /// hash heads) cost a 256 KiB allocation, zeroed, per stream, which for a file of a few
    /// hundred bytes takes several times longer than compressing it. Any window size gives a
    /// stream every zlib reader (and so git) inflates.
    static func deflate(_ bytes: UnsafeRawBufferPointer, level: Int32, appendingTo out: inout [UInt8]) throws -> Int {
        var windowBits: Int32 = 9
        while windowBits < 15 && (1 << windowBits) < bytes.count { windowBits += 1 }
        let memoryLevel = max(1, min(8, windowBits - 7))
        var stream = z_stream()
        var status = provenance_deflate_init2(&stream, level, windowBits, memoryLevel)
        guard status == Z_OK else { throw GitError(function: "deflateInit2", message: "zlib failed with status \(status)") }
        defer { deflateEnd(&stream) }
        let start = out.count
        let bound = Int(deflateBound(&stream, uLong(bytes.count)))
        out.append(contentsOf: repeatElement(0, count: bound))
        var empty: UInt8 = 0
        status = out.withUnsafeMutableBufferPointer { buffer in
            withUnsafeMutablePointer(to: &empty) { nothing in
                stream.next_in = UnsafeMutablePointer(mutating: bytes.baseAddress?.assumingMemoryBound(to: Bytef.self)) ?? nothing
                stream.avail_in = uInt(bytes.count)
                stream.next_out = buffer.baseAddress! + start
                stream.avail_out = uInt(bound)
                return CGit2.deflate(&stream, Z_FINISH)
            }
        }
        guard status == Z_STREAM_END else { throw GitError(function: "deflate", message: "zlib failed with status \(status)") }
        return Int(stream.total_out)
    }

    /// A pack entry's header: type in bits 4-6 of the first byte, the size in 4 bits and then
    /// 7 bits per byte, little end first, the high bit meaning "more follows".
    static func entryHeader(type: UInt8, size: UInt64) -> [UInt8] {
        var bytes: [UInt8] = []
        var byte = (type << 4) | UInt8(size & 0x0f)
        var rest = size >> 4
        while rest > 0 {
            bytes.append(byte | 0x80)
            byte = UInt8(rest & 0x7f)
            rest >>= 7
        }
        bytes.append(byte)
        return bytes
    }

    /// The version-2 pack index: fan-out table, sorted ids, CRC-32s, offsets (large ones in a
    /// table of their own), the pack's checksum and the index's own.
    private static func index(of entries: [Entry], packChecksum: [UInt8]) -> [UInt8] {
        let sorted = entries.sorted { $0.id.lexicographicallyPrecedes($1.id) }
        var out: [UInt8] = [0xff, 0x74, 0x4f, 0x63] + bigEndian(UInt32(2))
        out.reserveCapacity(8 + 1024 + sorted.count * 28 + 40)
        var fanout = [UInt32](repeating: 0, count: 256)
        for entry in sorted { fanout[Int(entry.id[0])] += 1 }
        var running: UInt32 = 0
        for bucket in 0..<256 {
            running += fanout[bucket]
            out += bigEndian(running)
        }
        for entry in sorted { out += entry.id }
        for entry in sorted { out += bigEndian(entry.crc) }
        var large: [UInt64] = []
        for entry in sorted {
            if entry.offset < 0x8000_0000 {
                out += bigEndian(UInt32(entry.offset))
            } else {
                out += bigEndian(0x8000_0000 | UInt32(large.count))
                large.append(entry.offset)
            }
        }
        for value in large { out += bigEndian(UInt32(value >> 32)) + bigEndian(UInt32(value & 0xffff_ffff)) }
        out += packChecksum
        out += Array(Insecure.SHA1.hash(data: out))
        return out
    }

    private static func bigEndian(_ value: UInt32) -> [UInt8] {
        [UInt8(value >> 24), UInt8((value >> 16) & 0xff), UInt8((value >> 8) & 0xff), UInt8(value & 0xff)]
    }

    private static func objectID(_ bytes: [UInt8]) -> ObjectID {
        var oid = git_oid()
        withUnsafeMutableBytes(of: &oid.id) { raw in raw.copyBytes(from: bytes) }
        return ObjectID(oid)
    }

    private static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var text = [UInt8]()
        text.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: text, as: UTF8.self)
    }
}
