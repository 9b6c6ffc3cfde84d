import Foundation
import Hummingbird
import ProvenanceCore

extension RegistryAPI {
    func modelEndpoints() -> [Endpoint] {
        [
            Endpoint(.get, "/v1/models") { _, _ in
                let models = try await Blocking.run { [store] in try store.modelSummaries() }
                return JSONResponse.make(ListPayload(key: "models", items: models))
            },
            Endpoint(.get, "/v1/models/{model}") { _, context in
                let model = try Self.modelName(context)
                let models = try await Blocking.run { [store] in try store.modelSummaries() }
                guard let summary = models.first(where: { $0.model == model }) else { throw Self.unknownModel(model) }
                return JSONResponse.make(summary)
            },
            Endpoint(.post, "/v1/models/{model}/versions") { request, context in
                try await registerVersion(request, context)
            },
            Endpoint(.get, "/v1/models/{model}/versions/{version}") { _, context in
                let reference = try Self.modelVersion(context)
                let info = try await Blocking.run { [store] in try store.showModel(reference) }
                return JSONResponse.make(info)
            },
            Endpoint(.get, "/v1/models/{model}/versions/{version}/trace") { _, context in
                let reference = try Self.modelVersion(context)
                let attribution = try await Blocking.run { [store, resolver] in try await store.attribute(reference, resolver: resolver) }
                let lineage = try await Blocking.run { [store] in try store.lineage(of: reference, attribution: attribution) }
                return JSONResponse.make(lineage)
            },
            Endpoint(.get, "/v1/models/{model}/versions/{version}/attribution") { request, context in
                let reference = try Self.modelVersion(context)
                let spec = try request.query("plugin", pattern: Pattern.pluginSpec, hint: Self.pluginHint).map { try PluginSpec(parsing: $0) }
                let result = try await Blocking.run { [store, resolver] in try await store.attribute(reference, override: spec, resolver: resolver) }
                return JSONResponse.make(result)
            },
            Endpoint(.get, "/v1/models/{model}/plugin") { _, context in
                let model = try Self.modelName(context)
                let history = try await Blocking.run { [store] in try store.pluginHistory(model: model) }
                let active = try await Blocking.run { [store] in try store.activePlugin(of: model) }
                struct Answer: Encodable { var model: String; var plugin: String; var history: [PluginChange] }
                return JSONResponse.make(Answer(model: model, plugin: active.description, history: history))
            },
            Endpoint(.put, "/v1/models/{model}/plugin") { request, context in
                let principal = try context.require(.developer)
                let model = try Self.modelName(context)
                let body = try await body.decode(SetPluginRequest.self, from: request)
                try Pattern.check(body.plugin, Pattern.pluginSpec, "plugin", Self.pluginHint)
                if let by = body.by { try Pattern.check(by, Pattern.identity, "by", Self.identityHint) }
                var spec = try PluginSpec(parsing: body.plugin)
                for (key, value) in body.options ?? [:] { spec.options[key] = value }
                let actor = try body.by.map { try Identity(parsing: $0) }
                try await requireDeveloper(of: model, principal)
                if principal.role != .admin, let actor, actor.id != principal.subject {
                    throw RegistryError.forbidden("a developer token for '\(principal.subject)' records changes only as itself, not as \(actor)")
                }
                let change = try await Blocking.run { [store, resolver, spec] in
                    try store.setPlugin(model: model, to: spec, by: actor, resolver: resolver)
                }
                return JSONResponse.make(change)
            },
            Endpoint(.get, "/v1/models/{model}/price") { _, context in
                let model = try Self.modelName(context)
                let price = try await Blocking.run { [store] in
                    guard try store.index.model(named: model) != nil else { throw Self.unknownModel(model) }
                    return try store.price(model: model)
                }
                return JSONResponse.make(PricePayload(model: model, price: price))
            },
            Endpoint(.put, "/v1/models/{model}/price") { request, context in
                let principal = try context.require(.developer)
                let model = try Self.modelName(context)
                let body = try await body.decode(SetPriceRequest.self, from: request)
                let price = try Self.price(body)
                try await requireDeveloper(of: model, principal)
                try await Blocking.run { [store] in try store.setPrice(price, model: model) }
                return JSONResponse.make(PricePayload(model: model, price: price))
            },
        ]
    }

    static func unknownModel(_ model: String) -> RegistryError {
        RegistryError.notFound("unknown model '\(model)'")
    }

    static func modelName(_ context: RegistryRequestContext) throws -> String {
        let name = try context.path("model")
        try Pattern.checkName(name, "model")
        return name
    }

    static func modelVersion(_ context: RegistryRequestContext) throws -> ModelVersionReference {
        let model = try modelName(context)
        let version = try context.path("version")
        try Pattern.checkVersion(version, "version")
        return try Names.parseModelVersion("\(model)@\(version)")
    }

    /// A developer may change only a model whose latest version they developed (admin: any).
    func requireDeveloper(of model: String, _ principal: AccessToken) async throws {
        guard principal.role != .admin else { return }
        let developer = try await Blocking.run { [store] () -> String? in
            guard try store.index.model(named: model) != nil else { throw Self.unknownModel(model) }
            return try store.index.modelVersions(model: model).last?.decodedManifest().developer.id
        }
        guard developer == principal.subject else {
            throw RegistryError.forbidden("model '\(model)' is developed by \(developer ?? "nobody yet"); a developer token for '\(principal.subject)' may not change it")
        }
    }

    func registerVersion(_ request: Request, _ context: RegistryRequestContext) async throws -> Response {
        let principal = try context.require(.developer)
        let model = try Self.modelName(context)
        let body = try await body.decode(RegisterModelVersionRequest.self, from: request)
        try Pattern.checkVersion(body.version, "version")
        try Pattern.check(body.developer, Pattern.identity, "developer", Self.identityHint)
        for text in body.datasets ?? [] {
            try Pattern.check(text, Pattern.datasetReference, "datasets[]", "write DATASET or DATASET@REV (a commit id, branch or tag)")
        }
        if let base = body.base { try Pattern.check(base, Pattern.modelReference, "base", "write MODEL@VERSION") }
        if let plugin = body.plugin { try Pattern.check(plugin, Pattern.pluginSpec, "plugin", Self.pluginHint) }
        for log in body.trainingLogs ?? [] {
            try Pattern.check(log.name, Pattern.fileName, "training_logs[].name", "use a plain file name of 1-128 characters A-Z a-z 0-9 . _ + -")
        }
        let reference = try Names.parseModelVersion("\(model)@\(body.version)")
        let developer = try Identity(parsing: body.developer)
        let datasets = (body.datasets ?? []).map(RevisionReference.init(parsing:))
        let base = try body.base.map(Names.parseModelVersion)
        let plugin = try body.plugin.map { try PluginSpec(parsing: $0) }
        let logs = try (body.trainingLogs ?? []).map(Self.trainingLog)
        if principal.role != .admin {
            guard developer.id == principal.subject else {
                throw RegistryError.forbidden("a developer token for '\(principal.subject)' registers only versions it developed, not \(developer.id)'s")
            }
            let exists = try await Blocking.run { [store] in try store.index.model(named: model) != nil }
            if exists { try await requireDeveloper(of: model, principal) }
        }
        let info = try await Blocking.run { [store, resolver] in
            let folder = FileManager.default.temporaryDirectory
                .appendingPathComponent("provenance-upload-\(UUID().uuidString.lowercased())", isDirectory: true)
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: folder) }
            var urls: [URL] = []
            for (name, data) in logs {
                let url = folder.appendingPathComponent(name)
                try data.write(to: url)
                urls.append(url)
            }
            let registration = ModelRegistrationRequest(reference: reference, developer: developer, datasets: datasets,
                                                        trainingLogs: urls, base: base, weights: nil, plugin: plugin,
                                                        baseSharePPB: body.baseSharePPB)
            return try store.registerModel(registration, resolver: resolver)
        }
        return JSONResponse.make(info, status: .created)
    }

    static let identityHint = "write \"Name <email>\", e.g. \"Ada Lovelace <ada@example.org>\" (the email in ASCII)"
    static let pluginHint = "write NAME or NAME:key=value[,key=value] (NAME: 1-64 characters a-z 0-9 _ -)"

    /// A training log's file name (already checked) and bytes.
    static func trainingLog(_ upload: TrainingLogUpload) throws -> (String, Data) {
        let name = upload.name
        guard name.unicodeScalars.last != "\n" else { throw RegistryError.refused("training log name '\(name)' ends with a newline") }
        switch (upload.content, upload.contentBase64) {
        case (let text?, nil): return (name, Data(text.utf8))
        case (nil, let base64?):
            guard let data = Data(base64Encoded: base64) else { throw RegistryError.refused("training log '\(name)': content_base64 is not base64") }
            return (name, data)
        default:
            throw RegistryError.refused("training log '\(name)' needs exactly one of content and content_base64")
        }
    }

    static func price(_ body: SetPriceRequest) throws -> Price {
        func amount(_ text: String, _ what: String) throws -> TokenAmount {
            try Pattern.checkAmount(text, what)
            return try TokenAmount(parsing: text)
        }
        var split = RoleSplit.standard
        if let bps = body.split {
            var parsed: [Role: UInt32] = [:]
            for (key, value) in bps {
                guard let role = Role(rawValue: key) else {
                    throw RegistryError.invalid("split names an unknown role '\(key.prefix(100))': use developer, data, node, platform and optionally router")
                }
                guard value <= RoleSplit.basisPoints else {
                    throw RegistryError.invalid("split.\(key) is \(value) basis points; at most 10000")
                }
                parsed[role] = value
            }
            for role in [Role.developer, .data, .node, .platform] where parsed[role] == nil {
                throw RegistryError.invalid("split has no \(role.rawValue); developer, data, node and platform are required")
            }
            let total = parsed.values.reduce(UInt64(0)) { $0 + UInt64($1) }
            guard total == UInt64(RoleSplit.basisPoints) else {
                throw RegistryError.refused("split sums to \(total) basis points; it must sum to 10000")
            }
            split = RoleSplit(bps: parsed)
        }
        // The store keeps slo_ms in a signed 64-bit column.
        if let slo = body.sloMs, slo == 0 || slo > UInt64(Int64.max) {
            throw RegistryError.invalid("slo_ms must be 1 to 9223372036854775807")
        }
        let penalty = body.sloPenaltyBps ?? 0
        guard penalty <= RoleSplit.basisPoints else { throw RegistryError.invalid("slo_penalty_bps \(penalty) is more than 10000") }
        if penalty > 0, body.sloMs == nil { throw RegistryError.refused("slo_penalty_bps needs slo_ms") }
        return Price(inputPer1k: try amount(body.inputPer1k, "input_per_1k"), outputPer1k: try amount(body.outputPer1k, "output_per_1k"),
                     minFee: try amount(body.minFee ?? "0", "min_fee"), split: split, sloMilliseconds: body.sloMs,
                     sloPenaltyBps: penalty)
    }
}
