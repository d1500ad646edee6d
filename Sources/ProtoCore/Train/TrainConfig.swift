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
        // Written so that NaN fails every check (a comparison with NaN is false), with upper
        // bounds that keep size products far from overflow.
        if !(1...(1 << 20)).contains(batchSize) { throw bad("batch-size", "\(batchSize) must be in 1...\(1 << 20)") }
        if !(1...4096).contains(microbatches) { throw bad("microbatches", "\(microbatches) must be in 1...4096") }
        if !(1...(1 << 40)).contains(steps) { throw bad("steps", "\(steps) must be in 1...\(1 << 40)") }
        if !(schedule.maxLR > 0 && schedule.maxLR.isFinite) { throw bad("lr", "\(schedule.maxLR) must be a positive number") }
        if !(schedule.minLR >= 0 && schedule.minLR <= schedule.maxLR) { throw bad("min-lr", "\(schedule.minLR) must be in 0...lr (\(schedule.maxLR))") }
        if !(0...steps).contains(schedule.warmupSteps) { throw bad("warmup", "\(schedule.warmupSteps) must be in 0...steps (\(steps))") }
        if !(adamw.weightDecay >= 0 && adamw.weightDecay.isFinite) { throw bad("weight-decay", "\(adamw.weightDecay) must be a number ≥ 0") }
        if !(adamw.beta1 >= 0 && adamw.beta1 < 1) || !(adamw.beta2 >= 0 && adamw.beta2 < 1) { throw ConfigError.problem("AdamW betas must be in [0, 1)") }
        if !(gradClip >= 0 && gradClip.isFinite) { throw bad("grad-clip", "\(gradClip) must be a number ≥ 0 (0 disables clipping)") }
    }
}
