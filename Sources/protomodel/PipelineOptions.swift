// Options that shape the pipeline across ranks: split, schedule, wire codec, emulated link.
import ArgumentParser
import Foundation
import ProtoCore
import ProtoPipeline

extension ScheduleKind: ExpressibleByArgument {}
extension CodecKind: ExpressibleByArgument {}
extension SubspaceMode: ExpressibleByArgument {}

extension CoordinateFormat: ExpressibleByArgument {}
enum ClockChoice: String, CaseIterable, ExpressibleByArgument { case auto, virtual, sleep }

struct PipelineOptions: ParsableArguments {
    @Option(help: "Layers per stage, comma separated, one entry per rank (default: as even as possible).")
    var split: String?
    @Option(help: "Pipeline schedule: \(ScheduleKind.allCases.map(\.rawValue).joined(separator: ", ")).")
    var schedule: ScheduleKind = .oneFOneB
    @Option(name: .customLong("recv-timeout"), help: "Seconds a rank waits for a boundary message before failing with the peer named (0 = forever).")
    var recvTimeout: Double = 300
    @Option(help: "Emulated clock: virtual (per-rank clocks from thread CPU time; right when ranks share cores), sleep (real delays on the wall clock; right when each rank has its own core), auto (sleep if this node has a core per rank, else virtual).")
    var clock: ClockChoice = .auto

    mutating func validate() throws {
        if !(recvTimeout >= 0 && recvTimeout.isFinite) { throw ValidationError("--recv-timeout \(recvTimeout) must be a number of seconds ≥ 0 (0 = wait forever)") }
    }

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
    @Option(help: "Number format of the subspace coordinates on the wire: fp32 (exact), bf16, or int8/fp8/int4 with a per-token scale.")
    var coords: CoordinateFormat?
    @Option(name: .customLong("topk-fraction"), help: "Share of each token's d values the topk codec sends (0 < f ≤ 1, default 0.1).")
    var topkFraction: Double?
    @Option(help: "Emulated link for every boundary: off, a preset (\(LinkModel.presets.map(\.name).joined(separator: ", "))) or BANDWIDTH[:LATENCY], e.g. 80mbit, 200mbit:50ms, 1gbit:1ms.")
    var link: String = "off"

    func choice() throws -> CodecSpec {
        if codec != .subspace {
            for (flag, given) in [("--rank-k", rankK != nil), ("--subspace-mode", subspaceMode != nil), ("--coords", coords != nil)] where given {
                throw ValidationError("\(flag) only applies with --codec subspace (the codec is \(codec.rawValue))")
            }
        }
        if codec != .topk, topkFraction != nil { throw ValidationError("--topk-fraction only applies with --codec topk") }
        return CodecSpec(kind: codec, rankK: rankK, mode: subspaceMode, coords: coords ?? .fp32, topkFraction: topkFraction)
    }
}
