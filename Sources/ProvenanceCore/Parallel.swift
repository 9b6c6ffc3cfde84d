import Foundation

/// Work spread over every core.
enum Parallel {
    /// Runs `body(0..<count)` on every core and returns when all are done. Each index must
    /// touch state of its own (a slot of a result buffer) or state behind a lock.
    static func forEach(_ count: Int, _ body: (Int) -> Void) {
        guard count > 1 else {
            if count == 1 { body(0) }
            return
        }
        withoutActuallyEscaping(body) { body in
            nonisolated(unsafe) let body = body
            DispatchQueue.concurrentPerform(iterations: count) { body($0) }
        }
    }
}

extension Parallel {
    /// Runs `work(0..<count)` on every core in the background, roughly in order, while the
    /// calling thread hands each run of finished indices, in order, to `consume` as soon as the
    /// run is done, and works too while none is: what one thread must do in order (write rows
    /// in one transaction) overlaps what every core can do beforehand (encode them). Returns
    /// once every `work` has returned, also when `consume` throws (the indices not yet started
    /// are then skipped). `workers` is how many pool threads are asked to help.
    static func stream(_ count: Int, workers: Int = ProcessInfo.processInfo.activeProcessorCount, _ work: (Int) -> Void,
                       consume: (Range<Int>) throws -> Void) throws {
        guard count > 1 else {
            if count == 1 {
                work(0)
                try consume(0..<1)
            }
            return
        }
        try withoutActuallyEscaping(work) { work in
            nonisolated(unsafe) let work = work
            let progress = StreamProgress(count)
            let group = DispatchGroup()
            for _ in 0..<workers {
                DispatchQueue.global().async(group: group) {
                    while let index = progress.claim() {
                        work(index)
                        progress.finish(index)
                    }
                }
            }
            defer {
                progress.cancel()
                group.wait()
            }
            var consumed = 0
            while consumed < count {
                let ready: Int
                if let done = progress.run(from: consumed) {
                    ready = done
                } else if let index = progress.claim() {
                    // Nothing to write yet: encode too, rather than wait. The stream so finishes
                    // even if no pool thread is free to start (they may all be blocked).
                    work(index)
                    progress.finish(index)
                    continue
                } else {
                    ready = progress.waitForRun(from: consumed)
                }
                try consume(consumed..<ready)
                consumed = ready
            }
        }
    }
}

/// Which indices of a `Parallel.stream` are claimed and which are done.
private final class StreamProgress: @unchecked Sendable {
    private let condition = NSCondition()
    private var done: [Bool]
    private var next = 0

    init(_ count: Int) { done = Array(repeating: false, count: count) }

    /// The next index to work on; nil when none is left or the stream was cancelled.
    func claim() -> Int? {
        condition.lock()
        defer { condition.unlock() }
        guard next < done.count else { return nil }
        next += 1
        return next - 1
    }

    func finish(_ index: Int) {
        condition.lock()
        done[index] = true
        condition.signal()
        condition.unlock()
    }

    func cancel() {
        condition.lock()
        next = done.count
        condition.unlock()
    }

    /// The end of the run of done indices from `start`; nil when `start` is not done yet.
    func run(from start: Int) -> Int? {
        condition.lock()
        defer { condition.unlock() }
        return done[start] ? end(from: start) : nil
    }

    /// Waits until `start` is done; returns the end of the run of done indices from it.
    func waitForRun(from start: Int) -> Int {
        condition.lock()
        defer { condition.unlock() }
        while !done[start] { condition.wait() }
        return end(from: start)
    }

    private func end(from start: Int) -> Int {
        var end = start + 1
        while end < done.count && done[end] { end += 1 }
        return end
    }
}

/// One slot per index for `Parallel.forEach` to fill from every core, each index writing only
/// its own slot. It owns its memory: its elements are released and its memory freed when it
/// goes, so no caller can free the memory and forget what the slots hold (four work buffers
/// did, and leaked every call record, split and invoice settlement and `verify` went through).
final class Slots<Element>: @unchecked Sendable {
    private let storage: UnsafeMutableBufferPointer<Element>

    init(count: Int, repeating value: Element) {
        storage = .allocate(capacity: count)
        storage.initialize(repeating: value)
    }

    deinit {
        storage.deinitialize()
        storage.deallocate()
    }

    subscript(index: Int) -> Element {
        get { storage[index] }
        set { storage[index] = newValue }
    }

    /// Every slot, in order, through `transform`.
    func map<T>(_ transform: (Element) throws -> T) rethrows -> [T] {
        try storage.map(transform)
    }
}

/// A value behind a lock.
public final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value

    public init(_ value: Value) { self.value = value }

    public func read<T>(_ body: (Value) throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body(value)
    }

    public func write<T>(_ body: (inout Value) throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}
