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
