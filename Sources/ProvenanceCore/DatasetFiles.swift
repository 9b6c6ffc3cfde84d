import Foundation

/// A file on disk chosen for `add`, and the path it will have in the dataset's tree.
struct DatasetFile {
    enum Kind { case regular(executable: Bool), symlink(target: String) }

    var sourcePath: String
    var treePath: String
    var kind: Kind
    /// The size `lstat` saw when the file was collected (the writer reads the real one).
    var size: UInt64 = 0
}

/// Turns the paths given to `add` into the files to commit, refusing anything that would
/// escape the working directory, touch git metadata or reach into the store itself.
enum DatasetFileCollector {
    /// - Parameters:
    ///   - paths: as typed; relative to `workingDirectory`, or absolute when `destination` is set.
    ///   - destination: `--to DIR`: a folder in the dataset's tree to put the files under.
    ///   - storeRoot: the store, which must never be added to a dataset.
    static func collect(paths: [String], workingDirectory: URL, destination: String?, storeRoot: URL) throws -> [DatasetFile] {
        guard !paths.isEmpty else { throw ProvenanceError.invalid("nothing to add: give at least one PATH, or --from URL") }
        let prefix = try destination.map { try treeComponents(of: $0, what: "--to") } ?? []
        let storePath = storeRoot.resolvingSymlinksInPath().standardizedFileURL.path
        var files: [DatasetFile] = []
        var sources: [String: String] = [:]
        for path in paths {
            guard !path.isEmpty else { throw ProvenanceError.invalid("an empty path was given") }
            let source: URL
            let base: [String]
            if path.hasPrefix("/") {
                guard destination != nil else {
                    throw ProvenanceError.invalid("absolute path '\(path)' needs --to DIR to say where it goes in the dataset")
                }
                source = URL(fileURLWithPath: path).standardizedFileURL
                base = source.lastPathComponent == "/" ? [] : [source.lastPathComponent]
                try checkComponents(base, of: path)
            } else {
                base = try treeComponents(of: path, what: "path")
                source = base.reduce(workingDirectory) { $0.appendingPathComponent($1) }
            }
            try walk(source, components: prefix + base, displayPath: path, storePath: storePath) { file in
                if let earlier = sources[file.treePath] {
                    if earlier == file.sourcePath { return }
                    throw ProvenanceError.invalid("'\(earlier)' and '\(file.sourcePath)' would both be stored as '\(file.treePath)'")
                }
                sources[file.treePath] = file.sourcePath
                files.append(file)
            }
        }
        guard !files.isEmpty else {
            throw ProvenanceError.invalid("nothing to add: \(paths.joined(separator: ", ")) holds no files")
        }
        return files
    }

    /// Splits a relative path into tree components, resolving `.` and `..` lexically and
    /// refusing any path that leaves the working directory or names `.git`.
    static func treeComponents(of path: String, what: String) throws -> [String] {
        if path.hasPrefix("/") {
            throw ProvenanceError.invalid("\(what) '\(path)' must be relative")
        }
        var components: [String] = []
        for part in path.split(separator: "/", omittingEmptySubsequences: true) {
            switch part {
            case ".": continue
            case "..":
                guard !components.isEmpty else {
                    throw ProvenanceError.invalid("\(what) '\(path)' escapes the working directory; give paths inside it, or use --to with an absolute path")
                }
                components.removeLast()
            default: components.append(String(part))
            }
        }
        try checkComponents(components, of: path)
        return components
    }

    private static func checkComponents(_ components: [String], of path: String) throws {
        for component in components where isGitMetadata(component) {
            throw ProvenanceError.invalid("'\(path)' has a path component '\(component)': git metadata cannot be added to a dataset")
        }
    }

    /// `.git` in any case, as git itself refuses it (and NTFS/HFS short-name spellings are not needed here).
    static func isGitMetadata(_ component: String) -> Bool {
        component.lowercased() == ".git"
    }

    private static func walk(_ url: URL, components: [String], displayPath: String, storePath: String,
                             _ emit: (DatasetFile) throws -> Void) throws {
        var info = stat()
        guard lstat(url.path, &info) == 0 else {
            if errno == ENOENT || errno == ENOTDIR {
                throw ProvenanceError.invalid("no such file or directory: '\(displayPath)'")
            }
            throw ProvenanceError.invalid("cannot read '\(displayPath)': \(String(cString: strerror(errno)))")
        }
        try visit(url.path, info: info, treePath: components.joined(separator: "/"), displayPath: displayPath,
                  storePath: storePath, emit)
    }

    /// One file or folder found by `walk`, with what `lstat` said about it.
    ///
    /// Folders are listed with `readdir` and their entries examined with `fstatat` relative to
    /// the open folder, paths kept as strings: with thousands of files, building a `URL` and
    /// resolving the whole path again for every one of them cost more than reading them.
    private static func visit(_ path: String, info: stat, treePath: String, displayPath: String, storePath: String,
                              _ emit: (DatasetFile) throws -> Void) throws {
        switch info.st_mode & S_IFMT {
        case S_IFREG:
            guard !treePath.isEmpty else { throw ProvenanceError.invalid("'\(displayPath)' has no name to store it under") }
            try emit(DatasetFile(sourcePath: path, treePath: treePath, kind: .regular(executable: info.st_mode & S_IXUSR != 0),
                                 size: UInt64(max(0, info.st_size))))
        case S_IFLNK:
            let target = try FileManager.default.destinationOfSymbolicLink(atPath: path)
            try emit(DatasetFile(sourcePath: path, treePath: treePath, kind: .symlink(target: target)))
        case S_IFDIR:
            if URL(fileURLWithPath: path).resolvingSymlinksInPath().standardizedFileURL.path == storePath {
                throw ProvenanceError.invalid("'\(displayPath)' is the Provenance store itself; it cannot be added to a dataset")
            }
            guard let folder = opendir(path) else {
                throw ProvenanceError.invalid("cannot list '\(displayPath)': \(String(cString: strerror(errno)))")
            }
            defer { closedir(folder) }
            var names: [String] = []
            while let entry = readdir(folder) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                    String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
                }
                if name != "." && name != ".." { names.append(name) }
            }
            names.sort()
            let descriptor = dirfd(folder)
            for name in names {
                let childDisplay = displayPath.hasSuffix("/") ? displayPath + name : displayPath + "/" + name
                if isGitMetadata(name) {
                    throw ProvenanceError.invalid("'\(childDisplay)' is git metadata and cannot be added to a dataset; add the files without it, or import the repository with --from")
                }
                var child = stat()
                guard fstatat(descriptor, name, &child, AT_SYMLINK_NOFOLLOW) == 0 else {
                    throw ProvenanceError.invalid("cannot read '\(childDisplay)': \(String(cString: strerror(errno)))")
                }
                try visit(path.hasSuffix("/") ? path + name : path + "/" + name, info: child,
                          treePath: treePath.isEmpty ? name : treePath + "/" + name, displayPath: childDisplay,
                          storePath: storePath, emit)
            }
        default:
            throw ProvenanceError.invalid("'\(displayPath)' is not a regular file, folder or symbolic link")
        }
    }
}
