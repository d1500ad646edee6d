// swift-tools-version:5.9
// protomodel: pipeline-parallel GPT training over slow links with Protocol Models compression.
import PackageDescription

// Release keeps Swift's checks (-O, not -Ounchecked): overflow and bounds traps stay on, and
// -Ounchecked was not measurably faster on the engine benchmark (farm-bench, 5 pairs of
// `bench-engine --steps 20`: -O / -Ounchecked wall 1.003×, 2026-11-30).
let fast: [SwiftSetting] = [.unsafeFlags(["-O", "-wmo"], .when(configuration: .release))]

let package = Package(
    name: "protomodel",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "protomodel", targets: ["protomodel"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // SHA-256 for checkpoint and model-file checksums and data identities.
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
    ],
    targets: [
        // System libraries (Debian: libopenblas-dev, libopenmpi-dev).
        .systemLibrary(name: "CBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CMPI", pkgConfig: "ompi-c",
                       providers: [.apt(["libopenmpi-dev"])]),
        // Hand-vectorised kernels (AVX-512 attention and element-wise loops, bf16 products on AMX or
        // AVX512-BF16), chosen at run time by ProtoCore.
        .target(name: "CKernels", cSettings: [.unsafeFlags(["-O2"])]),
        // Tensors, kernels, model, optimizer. No MPI in here.
        .target(name: "ProtoCore", dependencies: ["CBLAS", "CKernels", .product(name: "Crypto", package: "swift-crypto")], swiftSettings: fast),
        // Corpus, tokenizer, token shards, data loader.
        .target(name: "ProtoData", dependencies: ["ProtoCore"], swiftSettings: fast),
        // Schedules, the stage interpreter, wire codecs, links (in-memory), link emulator.
        .target(name: "ProtoPipeline", dependencies: ["ProtoCore"], swiftSettings: fast),
        // Thin checked wrapper over the MPI C API, and the MPI stage link.
        .target(name: "ProtoMPI", dependencies: ["CMPI", "ProtoPipeline"], swiftSettings: fast),
        // The run loop: start-up agreement, steps, evaluation, checkpoints, stop, the run log.
        .target(name: "ProtoTrain", dependencies: ["ProtoCore", "ProtoData", "ProtoPipeline"], swiftSettings: fast),
        // Benchmark results: steady-state analysis, tables (Markdown, CSV, JSON), SVG plots.
        .target(name: "ProtoReport", dependencies: ["ProtoPipeline"]),
        .executableTarget(
            name: "protomodel",
            dependencies: [
                "ProtoCore", "ProtoData", "ProtoPipeline", "ProtoMPI", "ProtoReport", "ProtoTrain",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: fast),
        .testTarget(name: "ProtoCoreTests", dependencies: ["ProtoCore"],
                    resources: [.copy("Fixtures")]),
        .testTarget(name: "ProtoDataTests", dependencies: ["ProtoData"]),
        .testTarget(name: "ProtoPipelineTests", dependencies: ["ProtoPipeline", "ProtoData"]),
        .testTarget(name: "ProtoReportTests", dependencies: ["ProtoReport"]),
        .testTarget(name: "ProtoTrainTests", dependencies: ["ProtoTrain", "ProtoPipeline", "ProtoData"]),
    ]
)
