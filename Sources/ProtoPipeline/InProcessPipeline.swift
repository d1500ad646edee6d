// Every stage of a pipeline inside one process, one thread per stage, over the in-memory
// link: the MPI pipeline's exact arithmetic, testable without mpirun.
import ProtoCore

public final class InProcessPipeline: StepRunner {
    public let stages: [PipelineStage]
    public let hub: InMemoryHub
    public private(set) var lastMetrics: [StageStepMetrics] = []

    public let replicas: Int

    /// `links`/`clock`: the emulated links every stage follows (default: none, virtual clock).
    /// With `replicas` R > 1 there are R pipelines (world rank r·S + s), each running M/R of
    /// the step's micro-batches, their gradients summed between replicas of a stage.
    public init(config: ModelConfig, split: [Int], train: TrainConfig, schedule kind: ScheduleKind,
                links: [LinkModel] = [.off], clock: ClockMode = .virtual, replicas: Int = 1,
                replicaFormat: CoordinateFormat = .fp32, replicaSyncEvery: Int = 1, makeCodec: (StageModel) -> WireCodec) throws {
        let specs = try StageSpec.stages(split: split, nLayer: config.nLayer)
        precondition(replicas >= 1 && train.microbatches % replicas == 0, "M must be a multiple of the replicas")
        self.replicas = replicas
        let S = specs.count
        let sched = PipelineSchedule(kind: kind, stages: S, microbatches: train.microbatches / replicas)
        // Every stage lives in this process: refused with its size rather than exhausting memory.
        try StageModel.checkFits(config: config, stages: (0..<(S * replicas)).map { (specs[$0 % S], sched.maxInFlight(stage: $0 % S)) },
                                 batchSize: train.batchSize)
        hub = InMemoryHub(size: S * replicas)
        let hubLinks = hub.links()
        let epoch = Clock.wall()
        stages = (0..<(S * replicas)).map { w in
            let p = PipelineStage(config: config, stage: specs[w % S], train: train, schedule: sched, makeCodec: makeCodec,
                                  comm: StageComm(link: hubLinks[w], stage: w % S, stages: S, replica: w / S, replicas: replicas),
                                  time: EmulatedTime(mode: clock, links: links, epoch: epoch))
            p.replicaFormat = replicaFormat
            p.replicaSyncEvery = replicaSyncEvery
            return p
        }
    }

    public func step(_ step: Int, _ batches: [Microbatch]) -> StepResult { try! trainStep(step, batches) }

    /// One optimizer step over M micro-batches on every stage; a failing stage's error is rethrown.
    public func trainStep(_ step: Int, _ batches: [Microbatch]) throws -> StepResult {
        let Mr = batches.count / replicas
        let m = try runAll { st in
            try st.trainStep(step, batches: st.isFirst ? Array(batches[(st.comm.replica * Mr)..<((st.comm.replica + 1) * Mr)]) : nil)
        }
        lastMetrics = m
        let (loss, norm) = StepReport.aggregate(m, stages: stages.count / replicas, replicas: replicas, microbatches: batches.count)
        return StepResult(loss: loss, gradNorm: norm, lr: stages[0].train.schedule.lr(at: step))
    }

    public func evaluate(_ batches: [Microbatch]) -> Float { try! validate(batches) }

    /// Mean loss over `batches` (whole groups of M; a remainder is left out), no update.
    public func validate(_ batches: [Microbatch]) throws -> Float {
        // Evaluation runs M micro-batches at a time through the forward-only schedule.
        let M = stages[0].schedule.microbatches
        var total = 0.0, count = 0
        var i = 0
        while i + M <= batches.count {
            let chunk = Array(batches[i..<(i + M)])
            // Replica 0 evaluates; the other replicas hold the same weights.
            let m = try runAll { $0.comm.replica == 0 ? try $0.evalStep(batches: $0.isFirst ? chunk : nil) : StageStepMetrics() }
            total += m[stages.count / replicas - 1].lossSum; count += M; i += M
        }
        return Float(total / Double(max(count, 1)))
    }

    /// Runs `body` on every stage's thread; results in stage order.
    public func runAll(_ body: @escaping (PipelineStage) throws -> StageStepMetrics) throws -> [StageStepMetrics] {
        nonisolated(unsafe) var out = [StageStepMetrics](repeating: .init(), count: stages.count)
        nonisolated(unsafe) let st = stages
        try runOnThreads(stages.count) { r in out[r] = try body(st[r]) }
        return out
    }

    /// The value of parameter `name` wherever it lives (for comparisons with one process).
    public func parameter(_ name: String) -> [Float]? {
        for s in stages {
            if let t = s.model.layout.tensor(name) {
                return Array(UnsafeBufferPointer(start: s.model.params.ptr + t.offset, count: t.count))
            }
        }
        return nil
    }
}
