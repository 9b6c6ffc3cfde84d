import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A child process in its own process group, with pipes to its stdin and stdout and our stderr.
/// Whoever drains `stdout` (`readAll`) and fills `stdin` (`writeAll`) closes them.
///
/// Foundation's `Process` cannot start a child in a new process group, and without one a
/// plugin's own children would survive a kill and keep our pipes open.
final class ChildProcess: @unchecked Sendable {
    enum Status { case exited(Int32), signalled(Int32) }

    let pid: pid_t
    let stdin: Int32
    let stdout: Int32

    private init(pid: pid_t, stdin: Int32, stdout: Int32) {
        self.pid = pid
        self.stdin = stdin
        self.stdout = stdout
    }

    struct SpawnError: Error, CustomStringConvertible {
        let description: String
    }

    static func spawn(_ path: String) throws -> ChildProcess {
        var input: [Int32] = [-1, -1]
        var output: [Int32] = [-1, -1]
        guard pipe(&input) == 0 else { throw SpawnError(description: String(cString: strerror(errno))) }
        guard pipe(&output) == 0 else {
            close(input[0]); close(input[1])
            throw SpawnError(description: String(cString: strerror(errno)))
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, input[0], 0)
        posix_spawn_file_actions_adddup2(&actions, output[1], 1)
        for fd in input + output { posix_spawn_file_actions_addclose(&actions, fd) }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF))
        posix_spawnattr_setpgroup(&attributes, 0)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        sigaddset(&defaults, SIGPIPE)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var pid: pid_t = 0
        let argv: [UnsafeMutablePointer<CChar>?] = [strdup(path), nil]
        defer { argv.forEach { free($0) } }
        let result = posix_spawn(&pid, path, &actions, &attributes, argv, environ)
        close(input[0])
        close(output[1])
        guard result == 0 else {
            close(input[1]); close(output[0])
            throw SpawnError(description: String(cString: strerror(result)))
        }
        return ChildProcess(pid: pid, stdin: input[1], stdout: output[0])
    }

    /// Waits for the child to end, at most `timeout` seconds; nil if it is still running.
    func wait(timeout: Double) -> Status? {
        let deadline = Date().addingTimeInterval(timeout)
        var status: Int32 = 0
        while true {
            let result = waitpid(pid, &status, WNOHANG)
            if result == pid {
                let signal = status & 0x7f
                return signal == 0 ? .exited((status >> 8) & 0xff) : .signalled(signal)
            }
            if result < 0 && errno != EINTR { return .exited(-1) }
            if Date() >= deadline { return nil }
            usleep(5_000)
        }
    }

    /// Kills the child's whole process group (it is harmless once they have all ended).
    func killGroup() {
        kill(-pid, SIGKILL)
    }

    /// Reads `fd` to its end, then closes it.
    static func readAll(_ fd: Int32) -> Data {
        defer { close(fd) }
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count > 0 {
                data.append(buffer, count: count)
            } else if count == 0 || errno != EINTR {
                return data
            }
        }
    }

    /// Writes `data`, then closes `fd`; a reader that went away ends the write (SIGPIPE is ignored).
    static func writeAll(_ data: Data, to fd: Int32) {
        signal(SIGPIPE, SIG_IGN)
        data.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let count = write(fd, raw.baseAddress! + offset, raw.count - offset)
                if count > 0 { offset += count } else if count < 0 && errno == EINTR { continue } else { break }
            }
        }
        close(fd)
    }
}
