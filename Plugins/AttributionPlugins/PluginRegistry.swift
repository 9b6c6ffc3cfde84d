public import Foundation
public import ProvenanceCore
import DataVolume
import EqualShare
import ExternalPlugins
import InfluenceScore
import SpanMatch

/// The plugins a store can use: the built-ins, keyed by name, then external executables.
public struct PluginRegistry: AttributionPluginResolver {
    /// Every built-in strategy, keyed by its name.
    public static let builtIn: [String: AttributionPlugin] = {
        let plugins = [AttributionPlugin(EqualShare()), AttributionPlugin(DataVolume()), AttributionPlugin(InfluenceScore()), AttributionPlugin(SpanMatch())]
        return Dictionary(uniqueKeysWithValues: plugins.map { ($0.name, $0) })
    }()

    /// Seconds an external plugin may take.
    public var timeout: Double
    /// The `PATH` searched for external plugins.
    public var path: String?

    public init(timeout: Double = 10, path: String? = ProcessInfo.processInfo.environment["PATH"]) {
        self.timeout = timeout
        self.path = path
    }

    public func plugin(named name: String, store: Store) throws -> AttributionPlugin {
        if let plugin = Self.builtIn[name] { return plugin }
        try AttributionPluginNames.validate(name)
        guard let url = ExternalPlugin.find(named: name, storePlugins: store.pluginsURL, path: path) else {
            throw ProvenanceError.notFound("unknown attribution plugin '\(name)': built in are \(Self.builtIn.keys.sorted().joined(separator: ", ")); an external one is an executable \(ExternalPlugin.executablePrefix)\(name) on PATH or in \(store.pluginsURL.path)")
        }
        let external = ExternalPlugin(name: name, executable: url, timeout: timeout)
        return AttributionPlugin(name: name, version: "external", location: url.path, declaresPerCall: { external.declaresPerCall }) { input in
            try external.weights(for: input)
        }
    }

    /// One row of `provenance plugins`.
    public struct Description: Codable, Sendable, Equatable {
        public var name: String
        public var kind: AttributionPlugin.Kind
        public var version: String
        public var location: String?
        public var options: [String: String]?
    }

    /// The built-ins, then every external plugin found (a name a built-in has is not listed).
    public func available(store: Store) -> [Description] {
        let builtIns = Self.builtIn.values.sorted { $0.name < $1.name }.map {
            Description(name: $0.name, kind: .builtIn, version: $0.version, location: nil, options: $0.options)
        }
        let externals = ExternalPlugin.candidates(storePlugins: store.pluginsURL, path: path)
            .filter { Self.builtIn[$0.name] == nil }
            .map { Description(name: $0.name, kind: .external, version: "external", location: $0.url.path, options: nil) }
        return builtIns + externals
    }
}
