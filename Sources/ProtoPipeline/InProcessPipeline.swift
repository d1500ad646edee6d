// Every stage of a pipeline inside one process, one thread per stage, over the in-memory
// link: the MPI pipeline's exact arithmetic, testable without mpirun.
import ProtoCore

public final class InProcessPipeline: StepRunner {
    public let stages: [PipelineStage]
    public let hub: InMemoryHub
    public private(set) var lastMetrics: [StageStepMetrics] = []

    /// `links`/`clock`: the emulated links every stage follows (default: none, virtual clock).
    public init(config: ModelConfig, split: [Int], train: TrainConfig, schedule kind: ScheduleKind,
                links: [LinkModel] = [.off], clock: ClockMode = .virtual,
                makeCodec: (StageModel) -> WireCodec) throws {
        let specs = try StageSpec.stages(split: split, nLayer: config.nLayer)
        let sched = PipelineSchedule(kind: kind, stages: specs.count, microbatches: train.microbatches)
        hub = InMemoryHub(size: specs.count)
        let hubLinks = hub.links()
        let epoch = Clock.wall()
        stages = specs.enumerated().map { s, spec in
            PipelineStage(config: config, stage: spec, train: train, schedule: sched, makeCodec: makeCodec,
                          comm: StageComm(link: hubLinks[s], stage: s, stages: specs.count),
                          time: EmulatedTime(mode: clock, links: links, epoch: epoch))
        }
    }

    public func step(_ step: Int, _ batches: [Microbatch]) -> StepResult { try! trainStep(step, batches) }

    /// One optimizer step over M micro-batches on every stage; a failing stage's error is rethrown.
    public func trainStep(_ step: Int, _ batches: [Microbatch]) throws -> StepResult {
        let m = try runAll { try $0.trainStep(step, batches: $0.isFirst ? batches : nil) }
        lastMetrics = m
        let norm = m.reduce(0) { $0 + $1.gradSumSquares }.squareRoot()
        return StepResult(loss: Float(m.last!.lossSum / Double(batches.count)), gradNorm: norm,
                          lr: stages[0].train.schedule.lr(at: step))
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
            let m = try runAll { try $0.evalStep(batches: $0.isFirst ? chunk : nil) }
            total += m.last!.lossSum; count += M; i += M
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
