// One rank's side of pipeline training: runs its stage each step and, on rank 0, gathers
// every stage's metrics into a report. Works over any StageLink (MPI or in-memory).
import Foundation
import ProtoCore

/// What rank 0 learns about a step from all stages.
public struct StepReport: Sendable {
    public var step: Int
    public var loss: Float
    public var lr: Float
    public var gradNorm: Double
    /// Wall time of the step on rank 0 (includes waiting for the pipeline to drain).
    public var stepSeconds: Double
    public var stages: [StageStepMetrics]
    /// The step on each emulated link (one per link the ranks follow).
    public var emulated: [EmulatedStep] = []
    /// A step's mean loss and global gradient norm from every rank's metrics (rank order:
    /// replica r's stage s at r·S + s). The loss lives on each replica's last stage, summed
    /// over its micro-batches (`microbatches`: all replicas' together); after the replica
    /// exchange every replica holds the same gradient, so the norm counts replica 0's stages.
    /// The one definition both trainers (in-process and over a StageLink) use.
    public static func aggregate(_ m: [StageStepMetrics], stages S: Int, replicas R: Int, microbatches: Int) -> (loss: Float, gradNorm: Double) {
        let lossSum = (0..<R).reduce(0.0) { $0 + m[$1 * S + S - 1].lossSum }
        return (Float(lossSum / Double(microbatches)), m[0..<S].reduce(0) { $0 + $1.gradSumSquares }.squareRoot())
    }
    /// The update was skipped because the loss or gradients were not finite (--skip-nonfinite).
    public var skipped: Bool { stages.contains { $0.skipped } }
    public var bytesForward: Double { stages.reduce(0) { $0 + $1.bytesSentForward } }
    public var bytesBackward: Double { stages.reduce(0) { $0 + $1.bytesSentBackward } }
    /// Data-parallel gradient traffic between replicas, all ranks.
    public var bytesReplica: Double { stages.reduce(0) { $0 + $1.bytesSentReplica } }
    /// Relative reconstruction error over all boundaries: sqrt(Σ‖x̂−x‖² / Σ‖x‖²) per direction.
    public var wireError: WireErrorStats {
        var e = WireErrorStats()
        for s in stages {
            e.errSqForward += s.wireError.errSqForward; e.normSqForward += s.wireError.normSqForward
            e.errSqBackward += s.wireError.errSqBackward; e.normSqBackward += s.wireError.normSqBackward
        }
        return e
    }
    /// 1 − Σ compute / (S · slowest stage wall time): idle share of the pipeline (wall clock).
    public var bubbleShare: Double {
        let wall = stages.map(\.stepWallSeconds).max() ?? 0
        guard wall > 0 else { return 0 }
        return max(0, 1 - stages.reduce(0) { $0 + $1.computeSeconds } / (Double(stages.count) * wall))
    }
}

/// A step's time on one emulated link and where the ranks spent it (shares average over
/// ranks and add up to 1: compute, waiting on the link, idle in the pipeline bubble).
public struct EmulatedStep: Sendable {
    public var link: LinkModel
    public var clock: ClockMode
    public var stepSeconds: Double
    public var computeShare: Double
    public var linkWaitShare: Double
    public var bubbleShare: Double
    /// Per rank: (compute, link wait, idle) seconds.
    public var perRank: [(compute: Double, linkWait: Double, idle: Double)]
}

public final class DistributedTrainer {
    public let stage: PipelineStage
    private var previousEnd: [Double]
    /// Layers per stage, in rank order (identical on every rank).
    public let split: [Int]
    public var link: StageLink { stage.comm.link }

    public init(stage: PipelineStage, split: [Int]) {
        self.stage = stage; self.split = split
        previousEnd = Array(repeating: 0, count: stage.time.links.count)
    }

    var comm: StageComm { stage.comm }

    /// Rank 0 (which loads all data) gives each replica's first stage its share of the step's
    /// micro-batches: replica r gets micro-batches r·M/R ..< (r+1)·M/R. Returns this rank's
    /// share (first stages), nil elsewhere.
    func distribute(_ batches: [Microbatch]?) throws -> [Microbatch]? {
        let R = comm.replicas, Mr = stage.schedule.microbatches
        guard R > 1 else { return batches }
        let N = stage.model.tokensPerMicrobatch, tag = 2  // 0 and 1 are the gradient exchange's
        if link.rank == 0 {
            guard let batches, batches.count == R * Mr else { throw LinkError("rank 0 needs \(R * Mr) micro-batches for the step, got \(batches?.count ?? 0)") }
            for r in 1..<R {
                for (j, mb) in batches[(r * Mr)..<((r + 1) * Mr)].enumerated() {
                    let b = WireBuffer(payloadBytes: 8 * N)
                    mb.ids.withUnsafeBytes { b.payload.copyMemory(from: $0.baseAddress!, byteCount: 4 * N) }
                    mb.targets.withUnsafeBytes { (b.payload + 4 * N).copyMemory(from: $0.baseAddress!, byteCount: 4 * N) }
                    try comm.sendReplica(tag + j, to: r * comm.stages, b)
                }
            }
            return Array(batches[0..<Mr])
        }
        guard stage.isFirst else { return nil }
        return try (0..<Mr).map { j in
            let b = try comm.recvReplica(tag + j, from: 0)
            guard b.payloadBytes == 8 * N else { throw LinkError("rank \(link.rank): micro-batch message of \(b.payloadBytes) bytes, expected \(8 * N)") }
            let p = b.payload.assumingMemoryBound(to: Int32.self)
            return Microbatch(ids: Array(UnsafeBufferPointer(start: p, count: N)), targets: Array(UnsafeBufferPointer(start: p + N, count: N)))
        }
    }

    /// Every rank calls this each step; rank 0 passes the step's micro-batches (all replicas'
    /// M of them) and gets the report.
    public func step(_ step: Int, batches: [Microbatch]?) throws -> StepReport? {
        let t0 = Clock.wall()
        let mine = try distribute(batches)
        let m = try stage.trainStep(step, batches: mine)
        let all = try link.gatherData(m.encoded(), root: 0, purpose: "stage metrics")
        guard let all else { return nil }
        let metrics = try all.map(StageStepMetrics.decoded)
        let wall = Clock.wall() - t0
        let S = comm.stages, R = comm.replicas
        // The loss lives on every replica's last stage; each stage's gradient is the same on
        // every replica after the exchange, so the norm counts replica 0's stages.
        let (loss, norm) = StepReport.aggregate(metrics, stages: S, replicas: R, microbatches: stage.schedule.microbatches * R)
        var report = StepReport(step: step, loss: loss, lr: stage.train.schedule.lr(at: step), gradNorm: norm,
                                stepSeconds: wall, stages: metrics)
        let time = stage.time
        for (i, link) in time.links.enumerated() {
            let end = metrics.map { $0.timing[i].clockEnd }.max() ?? 0
            let seconds = time.mode == .virtual ? end - previousEnd[i] : wall
            previousEnd[i] = end
            // Compute as the clocks charged it: CPU time at the emulated stage speed.
            let charge = time.mode == .virtual ? time.computeScale : 1
            let perRank = metrics.map { m -> (compute: Double, linkWait: Double, idle: Double) in
                let c = min(m.computeSeconds * charge, seconds), l = min(m.timing[i].linkWait, seconds - c)
                return (c, l, max(0, seconds - c - l))
            }
            let n = Double(max(1, perRank.count)), den = max(seconds, 1e-12)
            report.emulated.append(EmulatedStep(
                link: link, clock: time.mode, stepSeconds: seconds,
                computeShare: perRank.reduce(0) { $0 + $1.compute } / n / den,
                linkWaitShare: perRank.reduce(0) { $0 + $1.linkWait } / n / den,
                bubbleShare: perRank.reduce(0) { $0 + $1.idle } / n / den, perRank: perRank))
        }
        return report
    }

    /// Mean validation loss over the micro-batches rank 0 passes (the others pass nil):
    /// `chunks` groups of the step's R·M micro-batches, each group shared between the
    /// replicas like a training step's (replica r runs its M of them). Returns the loss on
    /// rank 0, nil elsewhere.
    public func evaluate(_ batches: [Microbatch]?, chunks: Int) throws -> Float? {
        let M = stage.schedule.microbatches, R = comm.replicas
        var total = 0.0
        for c in 0..<chunks {
            let group = batches.map { Array($0[(c * R * M)..<((c + 1) * R * M)]) }
            let mine = try distribute(group)
            total += try stage.evalStep(batches: mine).lossSum
        }
        // The loss lives on every replica's last stage; one all-reduce brings it to everyone.
        let v = try link.allreduceSum([stage.isLast ? total : 0])[0]
        return link.rank == 0 ? Float(v / Double(chunks * R * M)) : nil
    }

    /// The whole model's parameters in whole-model layout order, assembled on rank 0 from
    /// every stage (point-to-point); nil on the other ranks.
    public func gatherParameters() throws -> [Float]? {
        let tag = MessageKind.parameters.tag(0)
        let mine = stage.model.params
        if comm.replica != 0 { return nil }   // replicas hold the same weights
        if link.rank != 0 {
            let b = WireBuffer(payloadBytes: 4 * mine.count)
            b.payload.copyMemory(from: mine.ptr, byteCount: 4 * mine.count)
            try link.send(b, to: 0, tag: tag)
            try link.waitSends()
            return nil
        }
        let cfg = stage.model.config
        let specs = try StageSpec.stages(split: split, nLayer: cfg.nLayer)
        let whole = ParamLayout(config: cfg, stage: .whole(cfg))
        var out = [Float](repeating: 0, count: whole.count)
        func place(_ values: UnsafePointer<Float>, _ layout: ParamLayout) {
            for t in layout.tensors {
                let w = whole.tensor(t.name)!  // every stage tensor exists in the whole model
                out.withUnsafeMutableBufferPointer { ($0.baseAddress! + w.offset).update(from: values + t.offset, count: t.count) }
            }
        }
        place(mine.ptr, stage.model.layout)
        for r in 1..<comm.stages {
            let b = try link.recv(from: r, tag: tag)
            let layout = ParamLayout(config: cfg, stage: specs[r])
            guard b.payloadBytes == 4 * layout.count else {
                throw LinkError("rank \(r) sent \(b.payloadBytes / 4) parameters, its stage has \(layout.count) (ranks disagree on the model or split)")
            }
            place(b.payload.assumingMemoryBound(to: Float.self), layout)
        }
        return out
    }
}
