public import Foundation

/// A fresh temporary directory, removed when the value is released.
public final class TemporaryDirectory: @unchecked Sendable {
    public let url: URL

    public init(_ label: String = "provenance-test") throws {
        url = FileManager.default.temporaryDirectory
            .appendingPathComponent("\(label)-\(UUID().uuidString.lowercased())", isDirectory: true)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: url) }

    public func path(_ relative: String) -> URL { url.appendingPathComponent(relative) }

    /// Writes `contents` at `relative`, creating folders on the way.
    @discardableResult
    public func write(_ relative: String, _ contents: String) throws -> URL {
        try write(relative, Data(contents.utf8))
    }

    @discardableResult
    public func write(_ relative: String, _ contents: Data) throws -> URL {
        let file = path(relative)
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        try contents.write(to: file)
        return file
    }
}

/// What a finished process said and how it ended.
public struct ProcessResult: Sendable, CustomStringConvertible {
    public var status: Int32
    /// True when the process was ended by a signal (`status` is then the signal number).
    public var signalled: Bool
    public var stdout: String
    public var stderr: String

    public var succeeded: Bool { !signalled && status == 0 }
    public var description: String { "exit \(signalled ? "signal " : "")\(status)\nstdout: \(stdout)\nstderr: \(stderr)" }

    /// Stdout without its final newline.
    public var output: String { stdout.hasSuffix("\n") ? String(stdout.dropLast()) : stdout }
    /// The lines of stdout.
    public var lines: [String] { output.isEmpty ? [] : output.components(separatedBy: "\n") }
    /// The lines of stderr.
    public var errorLines: [String] { stderr.split(separator: "\n").map(String.init) }
}

/// Runs `executable` with `arguments` and waits, capturing both streams.
public func runProcess(_ executable: String, _ arguments: [String], in directory: URL? = nil,
                       environment: [String: String] = [:]) throws -> ProcessResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    if let directory { process.currentDirectoryURL = directory }
    var env = ProcessInfo.processInfo.environment
    env.removeValue(forKey: "PROVENANCE_STORE")
    for (key, value) in environment { env[key] = value }
    process.environment = env
    let out = Pipe()
    let err = Pipe()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = FileHandle.nullDevice
    try process.run()
    // Read both pipes concurrently so neither can fill up and block the child.
    let errData = LockedBox(Data())
    let done = DispatchSemaphore(value: 0)
    let errHandle = err.fileHandleForReading
    DispatchQueue.global().async {
        errData.value = errHandle.readDataToEndOfFile()
        done.signal()
    }
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    done.wait()
    process.waitUntilExit()
    return ProcessResult(status: process.terminationStatus, signalled: process.terminationReason == .uncaughtSignal,
                         stdout: String(decoding: outData, as: UTF8.self),
                         stderr: String(decoding: errData.value, as: UTF8.self))
}

final class LockedBox<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var _value: T
    init(_ value: T) { _value = value }
    var value: T {
        get { lock.lock(); defer { lock.unlock() }; return _value }
        set { lock.lock(); _value = newValue; lock.unlock() }
    }
}

/// Runs the git CLI, isolated from the user's and system's configuration.
@discardableResult
public func git(_ arguments: [String], in directory: URL, environment: [String: String] = [:],
                allowFailure: Bool = false) throws -> ProcessResult {
    var env = [
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "HOME": directory.path,
        "GIT_AUTHOR_NAME": "Fixture", "GIT_AUTHOR_EMAIL": "fixture@example.org",
        "GIT_COMMITTER_NAME": "Fixture", "GIT_COMMITTER_EMAIL": "fixture@example.org",
    ]
    for (key, value) in environment { env[key] = value }
    let result = try runProcess("/usr/bin/git", ["-c", "init.defaultBranch=main"] + arguments, in: directory, environment: env)
    guard result.succeeded || allowFailure else {
        throw FixtureError("git \(arguments.joined(separator: " ")) failed: \(result.stderr)")
    }
    return result
}

/// Commits everything in `repo` with the git CLI as `author` ("Name <email>"), at `date` seconds.
public func gitCommit(_ repo: URL, author: String, message: String, date: Int) throws {
    let open = author.firstIndex(of: "<")!
    let name = author[..<open].trimmingCharacters(in: .whitespaces)
    let email = String(author[author.index(after: open)..<author.index(before: author.endIndex)])
    let stamp = "\(date) +0000"
    try git(["add", "-A"], in: repo)
    try git(["commit", "-q", "--allow-empty", "-m", message], in: repo, environment: [
        "GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email, "GIT_AUTHOR_DATE": stamp,
        "GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": email, "GIT_COMMITTER_DATE": stamp,
    ])
}

public struct FixtureError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// SplitMix64: small, seedable pseudo-random numbers, the same on every machine, so "random"
/// test data is the same on every run.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    public var state: UInt64

    public init(state: UInt64) {
        self.state = state
    }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
