// Options that shape the pipeline across ranks.
import ArgumentParser
import ProtoCore
import ProtoPipeline

extension ScheduleKind: ExpressibleByArgument {}

extension CodecKind: ExpressibleByArgument {}
extension SubspaceMode: ExpressibleByArgument {}

enum CoordinateType: String, CaseIterable, ExpressibleByArgument { case fp32, bf16 }

struct PipelineOptions: ParsableArguments {
    @Option(help: "Layers per stage, comma separated, one entry per rank (default: as even as possible).")
    var split: String?
    @Option(help: "Pipeline schedule: \(ScheduleKind.allCases.map(\.rawValue).joined(separator: ", ")).")
    var schedule: ScheduleKind = .oneFOneB
    @Option(help: "Wire codec at stage boundaries: \(CodecKind.allCases.map(\.rawValue).joined(separator: ", ")). `subspace` trains the Protocol Models subspace model.")
    var codec: CodecKind = .dense
    @Option(name: .customLong("rank-k"), help: "Subspace rank k (coordinates per token), 1 ≤ k < d-model (default d-model/8). Only with --codec subspace.")
    var rankK: Int?
    @Option(name: .customLong("subspace-mode"), help: "How the subspace constraint is kept: reparam (W' of width k, then Uᵀ) or projected (full W, re-projected after each step).")
    var subspaceMode: SubspaceMode?
    @Option(help: "Number type of the subspace coordinates on the wire: fp32 (exact) or bf16.")
    var coords: CoordinateType?
    @Option(name: .customLong("topk-fraction"), help: "Share of each token's d values the topk codec sends (0 < f ≤ 1, default 0.1).")
    var topkFraction: Double?
    @Option(name: .customLong("recv-timeout"), help: "Seconds a rank waits for a boundary message before failing with the peer named (0 = forever).")
    var recvTimeout: Double = 300

    /// Layers per stage for `stages` ranks.
    func layerSplit(nLayer: Int, stages: Int) throws -> [Int] {
        guard let split else { return try StageSpec.evenSplit(nLayer: nLayer, stages: stages) }
        let parts = split.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard parts.allSatisfy({ $0 != nil }) else { throw ValidationError("--split '\(split)' must be comma-separated layer counts, e.g. 2,2,1,1") }
        let counts = parts.map { $0! }
        guard counts.count == stages else {
            throw ValidationError("--split has \(counts.count) stages but \(stages) ranks are running; give one layer count per rank (or change -np)")
        }
        _ = try StageSpec.stages(split: counts, nLayer: nLayer)
        return counts
    }

    /// Checks codec flags against each other and applies the subspace choice to the model.
    func apply(to config: inout ModelConfig) throws {
        if codec != .subspace {
            for (flag, given) in [("--rank-k", rankK != nil), ("--subspace-mode", subspaceMode != nil), ("--coords", coords != nil)] where given {
                throw ValidationError("\(flag) only applies with --codec subspace (the codec is \(codec.rawValue))")
            }
        }
        if codec != .topk, topkFraction != nil { throw ValidationError("--topk-fraction only applies with --codec topk") }
        if let f = topkFraction, !(f > 0 && f <= 1) { throw ValidationError("--topk-fraction \(f) must be in (0, 1]") }
        if codec == .subspace {
            let k = rankK ?? max(1, config.dModel / 8)
            guard k >= 1 && k < config.dModel else {
                throw ValidationError("--rank-k \(k) must be in 1..<\(config.dModel) (d-model); the subspace must be narrower than the model")
            }
            config.subspace = SubspaceConfig(rank: k, mode: subspaceMode ?? .reparam)
        }
    }

    /// A short description of the wire, e.g. "subspace k=16 reparam fp32".
    func describe(_ config: ModelConfig) -> String {
        switch codec {
        case .subspace: return "subspace k=\(config.subspace?.rank ?? 0) \(config.subspace?.mode.rawValue ?? "") \((coords ?? .fp32).rawValue)"
        case .topk: return "topk fraction \(topkFraction ?? 0.1)"
        default: return codec.rawValue
        }
    }

    func makeCodec(model: StageModel) -> WireCodec {
        switch codec {
        case .dense: return DenseCodec()
        case .bf16: return BF16Codec()
        case .int8: return Int8Codec()
        case .topk: return TopKCodec(fraction: topkFraction ?? 0.1)
        case .subspace: return SubspaceCodec(subspace: model.subspace!, bf16: coords == .bf16)
        }
    }
}
