// Optimisation settings of a run; saved with the model config in every log and checkpoint.

public struct TrainConfig: Codable, Equatable, Sendable {
    /// B: rows (sequences) per micro-batch.
    public var batchSize: Int = 8
    /// M: micro-batches per optimizer step (gradient accumulation / pipeline depth).
    public var microbatches: Int = 1
    public var steps: Int = 300
    public var schedule = LRSchedule(maxLR: 3e-3, minLR: 3e-4, warmupSteps: 30, totalSteps: 300)
    public var adamw = AdamWConfig()
    /// Global gradient-norm clip; 0 disables clipping.
    public var gradClip: Float = 1.0
    /// Seed for the data order.
    public var dataSeed: UInt64 = 42

    public init() {}

    public func validate() throws {
        func bad(_ f: String, _ r: String) -> ConfigError { .invalid(field: f, reason: r) }
        if batchSize < 1 { throw bad("batch-size", "\(batchSize) must be at least 1") }
        if microbatches < 1 { throw bad("microbatches", "\(microbatches) must be at least 1") }
        if steps < 1 { throw bad("steps", "\(steps) must be at least 1") }
        if !(schedule.maxLR > 0) || !schedule.maxLR.isFinite { throw bad("lr", "\(schedule.maxLR) must be a positive number") }
        if schedule.minLR < 0 || schedule.minLR > schedule.maxLR { throw bad("min-lr", "\(schedule.minLR) must be in 0...lr (\(schedule.maxLR))") }
        if schedule.warmupSteps < 0 { throw bad("warmup", "\(schedule.warmupSteps) must be ≥ 0") }
        if adamw.weightDecay < 0 { throw bad("weight-decay", "\(adamw.weightDecay) must be ≥ 0") }
        if !(0..<1).contains(adamw.beta1) || !(0..<1).contains(adamw.beta2) { throw bad("betas", "must be in [0, 1)") }
        if gradClip < 0 { throw bad("grad-clip", "\(gradClip) must be ≥ 0 (0 disables clipping)") }
    }
}
