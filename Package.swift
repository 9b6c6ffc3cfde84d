// swift-tools-version:6.1
import PackageDescription

/// One set of settings for every target, as Hummingbird does: existentials spelled out,
/// imports visible only where they are declared, and internal imports unless made public.
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "Provenance",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "provenance", targets: ["provenance"]),
        .library(name: "ProvenanceCore", targets: ["ProvenanceCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.81.0"),
        // The registry's HTTP client: generated from Registry/openapi.yaml (scripts/openapi.sh), run over URLSession.
        .package(url: "https://github.com/apple/swift-openapi-runtime", from: "1.13.4"),
        .package(url: "https://github.com/apple/swift-openapi-urlsession", from: "1.4.0"),
    ],
    targets: [
        // C → git wrapper → core → CLI; nothing imports upwards.
        .systemLibrary(
            name: "CGit2",
            pkgConfig: "libgit2",
            providers: [.apt(["libgit2-dev"])]
        ),
        .target(
            name: "GitKit",
            // Crypto for SHA-1 of the packs GitKit writes itself (libgit2 does not export its hashing).
            dependencies: ["CGit2", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "ProvenanceCore",
            dependencies: [
                "GitKit",
                .product(name: "GRDB", package: "GRDB.swift"),
                // SQLite's C API, for the ledger's hottest statements (SQLiteStep).
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
        // The PostgreSQL backend of the registry's storage: the only target that imports the driver.
        .target(
            name: "PostgresStorage",
            dependencies: [
                "ProvenanceCore",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // Attribution plugins: one target per built-in strategy, the host for external ones,
        // and the registry that names them all.
        .target(name: "EqualShare", dependencies: ["ProvenanceCore"], path: "Plugins/EqualShare", swiftSettings: swiftSettings),
        .target(name: "DataVolume", dependencies: ["ProvenanceCore"], path: "Plugins/DataVolume", swiftSettings: swiftSettings),
        .target(name: "InfluenceScore", dependencies: ["ProvenanceCore", "GitKit"], path: "Plugins/InfluenceScore", swiftSettings: swiftSettings),
        .systemLibrary(
            name: "CDivSufSort",
            pkgConfig: "libdivsufsort",
            providers: [.apt(["libdivsufsort-dev"])]
        ),
        .target(name: "SpanMatch", dependencies: ["ProvenanceCore", "GitKit", "CDivSufSort", "DataVolume", "EqualShare"], path: "Plugins/SpanMatch", swiftSettings: swiftSettings),
        .target(name: "ExternalPlugins", dependencies: ["ProvenanceCore", "GitKit"], path: "Plugins/ExternalPlugins", swiftSettings: swiftSettings),
        .target(
            name: "AttributionPlugins",
            dependencies: ["ProvenanceCore", "EqualShare", "DataVolume", "InfluenceScore", "ExternalPlugins", "SpanMatch"],
            path: "Plugins/AttributionPlugins",
            swiftSettings: swiftSettings
        ),
        // The registry HTTP service: the only target that imports Hummingbird.
        .target(
            name: "RegistryService",
            dependencies: [
                "ProvenanceCore", "AttributionPlugins",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Registry/Sources/RegistryService",
            swiftSettings: swiftSettings
        ),
        // The registry's HTTP client, generated from Registry/openapi.yaml by scripts/openapi.sh
        // (`make openapi`) and committed: building the generator takes minutes that no build
        // should pay. A test fails when the spec changes without regenerating.
        // Its imports carry `@diagnose(UnusedImportAccess, as: ignored)` for Swift 6.4 and later;
        // until then they warn ~200 times about package imports unused in one file or another, so
        // the generated code's warnings are off (the generator's output is not ours to fix).
        .target(
            name: "RegistryAPI",
            dependencies: [.product(name: "OpenAPIRuntime", package: "swift-openapi-runtime")],
            swiftSettings: swiftSettings + [.unsafeFlags(["-suppress-warnings"])]
        ),
        .target(
            name: "ProvenanceCLI",
            dependencies: [
                "ProvenanceCore",
                "AttributionPlugins",
                "SpanMatch",
                "RegistryService",
                "PostgresStorage",
                "RegistryAPI",
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "OpenAPIRuntime", package: "swift-openapi-runtime"),
                .product(name: "OpenAPIURLSession", package: "swift-openapi-urlsession"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "settlement-benchmark",
            dependencies: ["ProvenanceCore", "AttributionPlugins", .product(name: "GRDB", package: "GRDB.swift")],
            path: "Benchmarks/Settlement",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "http-floor",
            dependencies: [.product(name: "Hummingbird", package: "hummingbird")],
            path: "Benchmarks/HTTPFloor",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "span-benchmark",
            dependencies: ["ProvenanceCore", "AttributionPlugins", "SpanMatch"],
            path: "Benchmarks/SpanMatch",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "provenance",
            dependencies: ["ProvenanceCLI"],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "ProvenanceTestSupport",
            dependencies: ["ProvenanceCore", "GitKit", "PostgresStorage"],
            path: "Tests/ProvenanceTestSupport",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "GitKitTests",
            dependencies: ["GitKit", "ProvenanceTestSupport"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ProvenanceCoreTests",
            dependencies: ["ProvenanceCore", "GitKit", "AttributionPlugins", "ProvenanceTestSupport", .product(name: "Crypto", package: "swift-crypto"),
                           .product(name: "GRDB", package: "GRDB.swift")],
            resources: [.copy("Fixtures")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "AttributionPluginsTests",
            dependencies: ["AttributionPlugins", "SpanMatch", "ProvenanceCore", "GitKit", "ProvenanceTestSupport"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "RegistryTests",
            dependencies: [
                "RegistryService", "ProvenanceCore", "AttributionPlugins", "ProvenanceTestSupport", "provenance", "PostgresStorage",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ProvenanceCLITests",
            dependencies: ["ProvenanceCLI", "ProvenanceCore", "ProvenanceTestSupport", "provenance", "PostgresStorage"],
            swiftSettings: swiftSettings
        ),
    ]
)
