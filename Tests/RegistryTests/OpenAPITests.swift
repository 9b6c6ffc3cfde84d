import Foundation
import Hummingbird
import ProvenanceCore
import ProvenanceTestSupport
@testable import RegistryService
import Testing
import Yams

/// `Registry/openapi.yaml` is a valid OpenAPI 3.1 document that describes exactly the routes the
/// router has, with the server's own patterns.
@Suite struct OpenAPITests {
    static let specURL = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Registry/openapi.yaml")
    static let methods = ["get", "put", "post", "delete", "patch", "head", "options", "trace"]

    static func spec() throws -> [String: Any] {
        let text = try String(contentsOf: specURL, encoding: .utf8)
        return try #require(try Yams.load(yaml: text) as? [String: Any])
    }

    @Test func theSpecIsAWellFormedOpenAPIDocument() throws {
        let spec = try Self.spec()
        #expect(spec["openapi"] as? String == "3.1.0")
        let info = try #require(spec["info"] as? [String: Any])
        #expect(info["title"] is String && info["version"] is String)
        let paths = try #require(spec["paths"] as? [String: [String: Any]])
        var operationIDs = Set<String>()
        for (path, item) in paths {
            #expect(path.hasPrefix("/"))
            let pathParameters = Set(path.split(separator: "/").filter { $0.hasPrefix("{") }.map { String($0.dropFirst().dropLast()) })
            for (method, value) in item where Self.methods.contains(method) {
                let operation = try #require(value as? [String: Any], "\(method) \(path)")
                let id = try #require(operation["operationId"] as? String, "\(method) \(path) has no operationId")
                #expect(operationIDs.insert(id).inserted, "operationId \(id) is used twice")
                let responses = try #require(operation["responses"] as? [String: Any], "\(method) \(path) has no responses")
                #expect(responses.keys.contains { $0.hasPrefix("2") }, "\(method) \(path) documents no success")
                #expect(operation["security"] is [Any], "\(method) \(path) says nothing about security")
                // Every path parameter is declared, on the path or the operation.
                let declared = ((item["parameters"] as? [Any] ?? []) + (operation["parameters"] as? [Any] ?? [])).compactMap { parameter -> String? in
                    let object = parameter as? [String: Any]
                    if let name = object?["name"] as? String { return name }
                    guard let ref = object?["$ref"] as? String else { return nil }
                    return (try? Self.resolve(ref, in: spec) as? [String: Any])?["name"] as? String
                }
                for name in pathParameters { #expect(declared.contains(name), "\(method) \(path) does not declare {\(name)}") }
                // A protected operation documents 401 and says which roles may call it.
                if let security = operation["security"] as? [Any], !security.isEmpty {
                    #expect(responses["401"] != nil, "\(method) \(path)")
                    #expect(operation["x-roles"] is [String], "\(method) \(path) names no roles")
                }
            }
        }
        // Every reference resolves.
        var references: [String] = []
        func collect(_ value: Any) {
            if let object = value as? [String: Any] {
                if let ref = object["$ref"] as? String { references.append(ref) }
                object.values.forEach(collect)
            } else if let array = value as? [Any] {
                array.forEach(collect)
            }
        }
        collect(spec)
        #expect(!references.isEmpty)
        for ref in Set(references) { #expect(try Self.resolve(ref, in: spec) != nil, "\(ref) does not resolve") }
    }

    static func resolve(_ ref: String, in spec: [String: Any]) throws -> Any? {
        guard ref.hasPrefix("#/") else { return nil }
        var current: Any? = spec
        for key in ref.dropFirst(2).split(separator: "/") { current = (current as? [String: Any])?[String(key)] }
        return current
    }

    @Test func everyRouteIsDocumentedAndEveryOperationIsARoute() throws {
        let directory = try TemporaryDirectory("provenance-openapi")
        let store = try Store.initialize(at: directory.path(".provenance"), database: try TestBackend.newDatabaseURL()).store
        let router = buildRouter(configuration: RegistryConfiguration(), store: store)
        // The web explorer's HTML pages and assets are left out of the JSON API's contract.
        let explorer = Set(ExplorerSite.paths.map { "GET \($0)" })
        let served = Set(router.routes.map { "\($0.method.rawValue) \($0.path)" })
        #expect(explorer.isSubset(of: served), "explorer pages not served: \(explorer.subtracting(served).sorted())")
        let routes = served.subtracting(explorer)
        let paths = try #require(try Self.spec()["paths"] as? [String: [String: Any]])
        let documented = Set(paths.flatMap { path, item in item.keys.filter(Self.methods.contains).map { "\($0.uppercased()) \(path)" } })
        #expect(routes.count >= 30)
        #expect(routes.subtracting(documented).isEmpty, "undocumented routes: \(routes.subtracting(documented).sorted())")
        #expect(documented.subtracting(routes).isEmpty, "documented but not served: \(documented.subtracting(routes).sorted())")
    }

    @Test func thePatternsAreTheServersOwn() throws {
        let schemas = try #require((try Self.spec()["components"] as? [String: Any])?["schemas"] as? [String: [String: Any]])
        for (name, pattern) in Pattern.all {
            #expect(schemas[name]?["pattern"] as? String == pattern, "components/schemas/\(name)")
        }
        // Patterns written inline (for nullable fields) are copies of those.
        var inline: [String] = []
        func collect(_ value: Any) {
            if let object = value as? [String: Any] {
                if let pattern = object["pattern"] as? String { inline.append(pattern) }
                object.values.forEach(collect)
            } else if let array = value as? [Any] {
                array.forEach(collect)
            }
        }
        collect(try Self.spec())
        let known = Set(Pattern.all.values)
        for pattern in inline { #expect(known.contains(pattern), "\(pattern) is not one of the server's patterns") }
    }

    /// The patterns behave as Python's `re.search` does for JSON Schema validators.
    @Test func patternsMatchAsJSONSchemaValidatorsDo() {
        #expect(Pattern.verdict(Pattern.name, "text") == .matches)
        #expect(Pattern.verdict(Pattern.name, "text\n") == .matchesBeforeFinalNewline)
        #expect(Pattern.verdict(Pattern.name, "text\n\n") == .fails)
        #expect(Pattern.verdict(Pattern.name, "Text") == .fails)
        #expect(Pattern.verdict(Pattern.version, "1.0+build") == .matches)
        for bad in ["1..2", "1.", "v.lock", ".1", ""] { #expect(Pattern.verdict(Pattern.version, bad) == .fails, "\(bad)") }
        #expect(Pattern.verdict(Pattern.identity, "Ada Lovelace <ada@example.org>") == .matches)
        #expect(Pattern.verdict(Pattern.identity, "José Ñúñez <jose@example.org>") == .matches)
        for bad in ["Ada <ada@example.org", " Ada <a@b.c>", "Ada  <a@b>x", ". <a@b.c>", "Ada <a b@c.d>", "Ada <@c.d>", "Ada\u{3000} <a@b.c>"] {
            #expect(Pattern.verdict(Pattern.identity, bad) == .fails, "\(bad)")
        }
        for good in ["Ada Lovelace <ada@example.org>", "李雷 <li@example.cn>", "O'Neil <o@x.io>"] {
            #expect((try? Identity(parsing: good)) != nil, "\(good)")
        }
        #expect(Pattern.verdict(Pattern.base64Bytes32, Data(repeating: 7, count: 32).base64EncodedString()) == .matches)
        #expect(Pattern.verdict(Pattern.base64Bytes64, Data(repeating: 7, count: 64).base64EncodedString()) == .matches)
        #expect(Pattern.verdict(Pattern.amount, "12.5") == .matches)
        #expect(Pattern.verdict(Pattern.amount, "-1") == .fails)
    }
}

