// Options that shape the pipeline across ranks: split, schedule, wire codec, emulated link.
import ArgumentParser
import Foundation
import ProtoCore
import ProtoPipeline
import ProtoTrain

extension ScheduleKind: ExpressibleByArgument {}
extension CodecKind: ExpressibleByArgument {}
extension SubspaceMode: ExpressibleByArgument {}

extension CoordinateFormat: ExpressibleByArgument {}
extension ClockRequest: ExpressibleByArgument {}
extension LinkKind: ExpressibleByArgument {}

struct PipelineOptions: ParsableArguments {
    @Option(help: "Layers per stage, comma separated, one entry per stage (default: as even as possible).")
    var split: String?
    @Option(help: "Pipeline stages (default: one per rank). With more ranks, ranks are data-parallel replicas: -np S·R gives R pipelines of S stages (replica r's stage s on rank r·S+s), gradients summed between replicas each step.")
    var stages: Int?
    @Option(name: .customLong("replica-sync-every"), help: "Data-parallel cadence H: 1 sums the replicas' gradients every step (exact); H > 1 is local SGD — each replica steps on its own micro-batches and the replicas average their weights every H steps (and at each checkpoint).")
    var replicaSyncEvery: Int = 1
    @Option(name: .customLong("replica-format"), help: "How gradients travel between replicas: fp32 (exact), bf16, int8 or fp8 (rows of 256 with a per-row scale).")
    var replicaFormat: CoordinateFormat = .fp32
    @Option(help: "Pipeline schedule: \(ScheduleKind.allCases.map(\.rawValue).joined(separator: ", ")).")
    var schedule: ScheduleKind = .oneFOneB
    @Option(name: .customLong("recv-timeout"), help: "Seconds a rank waits for a boundary message before failing with the peer named (0 = forever).")
    var recvTimeout: Double = 300
    @Option(help: "Emulated clock: virtual (per-rank clocks from thread CPU time; right when ranks share cores), sleep (real delays on the wall clock; right when each rank has its own core), auto (sleep if this node has a core per rank, else virtual).")
    var clock: ClockRequest = .auto
    @Option(name: .customLong("link-model"), help: "How emulated links share latency and transfer: speedrun (a message holds the link until it arrives, the reference harness's model) or streaming (TCP-like: transfers back to back, latency overlaps).")
    var linkModel: LinkKind = .speedrun
    @Option(name: .customLong("stage-speed"), help: "Emulated stage speed on the virtual clock: native (CPU), a rate such as 30tflops (a consumer GPU), or a speed-up such as x1000. Compute is charged CPU time × (this core's rate / the target).")
    var stageSpeed: String = "native"

    mutating func validate() throws {
        if let s = stages, s < 1 { throw ValidationError("--stages \(s) must be at least 1") }
        if !(1...1_000_000).contains(replicaSyncEvery) { throw ValidationError("--replica-sync-every \(replicaSyncEvery) must be in 1...1000000 (1 = gradients summed every step)") }
        if replicaFormat == .int4 { throw ValidationError("--replica-format int4 is too coarse for gradients; use fp32, bf16, fp8 or int8") }
        if !(recvTimeout >= 0 && recvTimeout.isFinite) { throw ValidationError("--recv-timeout \(recvTimeout) must be a number of seconds ≥ 0 (0 = wait forever)") }
        do { _ = try StageSpeed.parse(stageSpeed) } catch { throw ValidationError("\(error)") }
    }
}

/// The codec flags of `train`.
struct CodecOptions: ParsableArguments {
    @Option(help: "Wire codec at stage boundaries, as a word: \(CodecSpec.syntax). `subspace` trains the Protocol Models subspace model, `projector` the learned per-boundary projection model. Model levers may follow: \(Variant.leverSyntax).")
    var codec: String = "dense"
    @Option(name: .customLong("rank-k"), help: "Subspace rank k (coordinates per token), 1 ≤ k < d-model (default d-model/8). Only with --codec subspace.")
    var rankK: Int?
    @Option(name: .customLong("subspace-mode"), help: "How the subspace constraint is kept: reparam (W' of width k, then Uᵀ) or projected (full W, re-projected after each step).")
    var subspaceMode: SubspaceMode?
    @Option(help: "Number format of the subspace coordinates on the wire: fp32 (exact), bf16, or int8/fp8/int4 with a per-token scale.")
    var coords: CoordinateFormat?
    @Option(name: .customLong("grad-coords"), help: "Number format of the backward (gradient) coordinates, if not that of --coords (e.g. --coords int8 --grad-coords int4).")
    var gradCoords: CoordinateFormat?
    @Option(name: .customLong("topk-fraction"), help: "Share of each token's d values the topk codec sends (0 < f ≤ 1, default 0.1).")
    var topkFraction: Double?
    @Option(help: "Emulated link for every boundary: off, a preset (\(LinkModel.presets.map(\.name).joined(separator: ", "))) or BANDWIDTH[:LATENCY], e.g. 80mbit, 200mbit:50ms, 1gbit:1ms; or one per boundary separated by /, e.g. 200mbit:50ms/20mbit:50ms/200mbit:50ms.")
    var link: String = "off"

    /// The codec word (with any model levers, e.g. subspace:16:int8+efixed=1+norm) and the flags that refine it.
    /// Also refuses a model flag that contradicts a lever of the word (`model`'s --efixed-std,
    /// --mlp-hidden, against +efixed=, +mlp=).
    func choice(model: ModelOptions) throws -> Variant {
        let v = try choice()
        if let e = model.efixedStd, let w = v.efixed, e != w {
            throw ValidationError("--efixed-std \(e) contradicts --codec \(codec) (efixed=\(w)); give the scale once")
        }
        if let h = model.mlpHidden, let m = v.mlp {
            if case .width(let w) = m, w == h {} else { throw ValidationError("--mlp-hidden \(h) contradicts --codec \(codec) (its +mlp lever); give the width once") }
        }
        if model.efixedStd != nil && v.spec.kind != .subspace && v.spec.kind != .projector {
            throw ValidationError("--efixed-std only applies to subspace and projector models (a \(v.spec.kind.rawValue) model has no E_fixed)")
        }
        return v
    }

    func choice() throws -> Variant {
        var v = try Variant.parse(codec)
        var c = v.spec
        let subspaceLike = c.kind == .subspace || c.kind == .projector
        for (flag, given) in [("--rank-k", rankK != nil), ("--coords", coords != nil), ("--grad-coords", gradCoords != nil)] where given && !subspaceLike {
            throw ValidationError("\(flag) only applies with --codec subspace or projector (the codec is \(c.kind.rawValue))")
        }
        if subspaceMode != nil && c.kind != .subspace { throw ValidationError("--subspace-mode only applies with --codec subspace (the codec is \(c.kind.rawValue))") }
        if c.kind != .topk, topkFraction != nil { throw ValidationError("--topk-fraction only applies with --codec topk") }
        // A flag refines the word; it may not contradict what the word already says.
        if let k = rankK, let w = c.rankK, k != w { throw ValidationError("--rank-k \(k) contradicts --codec \(codec) (k=\(w)); give k once") }
        if let f = coords, c.coords != .fp32, f != c.coords { throw ValidationError("--coords \(f.rawValue) contradicts --codec \(codec) (\(c.coords.rawValue)); give the format once") }
        if let f = gradCoords, let w = c.gradCoords, f != w { throw ValidationError("--grad-coords \(f.rawValue) contradicts --codec \(codec) (bwd=\(w.rawValue)); give the format once") }
        if let k = rankK { c.rankK = k }
        if let m = subspaceMode { c.mode = m }
        if let f = coords { c.coords = f }
        if let f = gradCoords { c.gradCoords = f }
        if let f = topkFraction { c.topkFraction = f }
        v.spec = c
        return v
    }
}
