public import Logging

/// swift-log's `StreamLogHandler` (to standard error, the same lines), except that metadata is
/// formatted when a line is written instead of whenever it changes.
///
/// Hummingbird gives every request a logger with its own `hb.request.id`; `StreamLogHandler`
/// formats all of a logger's metadata into a string each time a key is set, so every request
/// paid for a formatted string that a server logging only errors never writes (perf: about 5%
/// of the registry's request handling).
public struct ServerLogHandler: LogHandler {
    private var stream: StreamLogHandler
    public var metadata: Logger.Metadata = [:]

    public init(label: String) {
        stream = StreamLogHandler.standardError(label: label)
    }

    public var logLevel: Logger.Level {
        get { stream.logLevel }
        set { stream.logLevel = newValue }
    }

    public var metadataProvider: Logger.MetadataProvider? {
        get { stream.metadataProvider }
        set { stream.metadataProvider = newValue }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var event = event
        // The line's own metadata wins over the logger's, as with StreamLogHandler.
        event.metadata = metadata.merging(event.metadata ?? [:]) { _, explicit in explicit }
        stream.log(event: event)
    }
}

extension Logger {
    /// A logger writing `StreamLogHandler`'s lines to standard error (see `ServerLogHandler`).
    public static func server(label: String) -> Logger {
        Logger(label: label) { ServerLogHandler(label: $0) }
    }
}
