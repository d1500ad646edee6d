// Options that shape the pipeline across ranks: split, schedule, wire codec, emulated link.
import ArgumentParser
import Foundation
import ProtoCore
import ProtoPipeline

extension ScheduleKind: ExpressibleByArgument {}
extension CodecKind: ExpressibleByArgument {}
extension SubspaceMode: ExpressibleByArgument {}

enum CoordinateType: String, CaseIterable, ExpressibleByArgument { case fp32, bf16 }
enum ClockChoice: String, CaseIterable, ExpressibleByArgument { case auto, virtual, sleep }

/// One wire codec with its settings. Written on the command line either as flags
/// (`--codec subspace --rank-k 16`) or, in `bench`, as one word: dense, bf16, int8,
/// topk[:FRACTION], subspace[:K][:reparam|projected][:bf16].
struct CodecChoice: Equatable {
    var kind: CodecKind = .dense
    var rankK: Int?
    var mode: SubspaceMode?
    var bf16Coords = false
    var topkFraction: Double?

    static func parse(_ text: String) throws -> CodecChoice {
        let parts = text.split(separator: ":").map(String.init)
        guard let first = parts.first, let kind = CodecKind(rawValue: first) else {
            throw ValidationError("codec '\(text)': expected one of \(CodecKind.allCases.map(\.rawValue).joined(separator: ", ")), e.g. subspace:16 or topk:0.1")
        }
        var c = CodecChoice(kind: kind)
        for p in parts.dropFirst() {
            switch kind {
            case .topk:
                guard c.topkFraction == nil, let f = Double(p) else { throw ValidationError("codec '\(text)': topk takes one fraction, e.g. topk:0.1") }
                c.topkFraction = f
            case .subspace:
                if let k = Int(p), c.rankK == nil { c.rankK = k }
                else if let m = SubspaceMode(rawValue: p), c.mode == nil { c.mode = m }
                else if p == "bf16" { c.bf16Coords = true }
                else if p == "fp32" { c.bf16Coords = false }
                else { throw ValidationError("codec '\(text)': subspace takes K, reparam|projected and bf16|fp32, e.g. subspace:16:projected") }
            default:
                throw ValidationError("codec '\(text)': \(kind.rawValue) takes no settings")
            }
        }
        return c
    }

    /// Checks the settings and applies the subspace choice to the model shape.
    func apply(to config: inout ModelConfig) throws {
        if let f = topkFraction, !(f > 0 && f <= 1) { throw ValidationError("topk fraction \(f) must be in (0, 1]") }
        config.subspace = nil
        if kind == .subspace {
            let k = rankK ?? max(1, config.dModel / 8)
            guard k >= 1 && k < config.dModel else {
                throw ValidationError("--rank-k \(k) must be in 1..<\(config.dModel) (d-model); the subspace must be narrower than the model")
            }
            config.subspace = SubspaceConfig(rank: k, mode: mode ?? .reparam)
        }
    }

    /// A short name for tables and logs, e.g. "subspace k=16", "topk 0.1".
    func label(_ config: ModelConfig) -> String {
        switch kind {
        case .subspace:
            let k = rankK ?? max(1, config.dModel / 8)
            return "subspace k=\(k)" + ((mode ?? .reparam) == .projected ? " projected" : "") + (bf16Coords ? " bf16" : "")
        case .topk: return "topk \(topkFraction ?? 0.1)"
        default: return kind.rawValue
        }
    }

    func makeCodec(model: StageModel) -> WireCodec {
        switch kind {
        case .dense: return DenseCodec()
        case .bf16: return BF16Codec()
        case .int8: return Int8Codec()
        case .topk: return TopKCodec(fraction: topkFraction ?? 0.1)
        case .subspace: return SubspaceCodec(subspace: model.subspace!, bf16: bf16Coords)
        }
    }
}

struct PipelineOptions: ParsableArguments {
    @Option(help: "Layers per stage, comma separated, one entry per rank (default: as even as possible).")
    var split: String?
    @Option(help: "Pipeline schedule: \(ScheduleKind.allCases.map(\.rawValue).joined(separator: ", ")).")
    var schedule: ScheduleKind = .oneFOneB
    @Option(name: .customLong("recv-timeout"), help: "Seconds a rank waits for a boundary message before failing with the peer named (0 = forever).")
    var recvTimeout: Double = 300
    @Option(help: "Emulated clock: virtual (per-rank clocks from thread CPU time; right when ranks share cores), sleep (real delays on the wall clock; right when each rank has its own core), auto (sleep if this node has a core per rank, else virtual).")
    var clock: ClockChoice = .auto

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

    /// The clock mode; `localRanks` is how many ranks share this node.
    func clockMode(localRanks: Int) -> ClockMode {
        switch clock {
        case .virtual: return .virtual
        case .sleep: return .sleep
        case .auto: return localRanks <= ProcessInfo.processInfo.activeProcessorCount ? .sleep : .virtual
        }
    }
}

/// The codec flags of `train`.
struct CodecOptions: ParsableArguments {
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
    @Option(help: "Emulated link for every boundary: off, a preset (\(LinkModel.presets.map(\.name).joined(separator: ", "))) or BANDWIDTH[:LATENCY], e.g. 80mbit, 200mbit:50ms, 1gbit:1ms.")
    var link: String = "off"

    func choice() throws -> CodecChoice {
        if codec != .subspace {
            for (flag, given) in [("--rank-k", rankK != nil), ("--subspace-mode", subspaceMode != nil), ("--coords", coords != nil)] where given {
                throw ValidationError("\(flag) only applies with --codec subspace (the codec is \(codec.rawValue))")
            }
        }
        if codec != .topk, topkFraction != nil { throw ValidationError("--topk-fraction only applies with --codec topk") }
        return CodecChoice(kind: codec, rankK: rankK, mode: subspaceMode, bf16Coords: coords == .bf16, topkFraction: topkFraction)
    }
}
