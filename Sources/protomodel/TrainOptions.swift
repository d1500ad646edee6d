// Options of a training run (shared by `train` and, later, `bench`).
import ArgumentParser
import ProtoCore

struct TrainOptions: ParsableArguments {
    @Option(help: "Data folder written by `protomodel prepare` (tokenizer.json, train_*.bin, val_*.bin).")
    var data: String = "data/kjv"
    @Option(help: "Optimizer steps (default 300; converge: 600).") var steps: Int?
    @Option(name: .customLong("batch-size"), help: "Rows (sequences) per micro-batch (B; default 4).") var batchSize: Int?
    @Option(help: "Micro-batches per step (M; default 8, one per pipeline slot); tokens per step = M·B·T.") var microbatches: Int?
    @Option(help: "Peak learning rate.") var lr: Float = 3e-3
    @Option(name: .customLong("min-lr"), help: "Final learning rate of the cosine decay (default lr/10).") var minLR: Float?
    @Option(help: "Warm-up steps (default: 10% of steps).") var warmup: Int?
    @Option(name: .customLong("weight-decay"), help: "AdamW decoupled weight decay (matrices only).") var weightDecay: Float = 0.1
    @Option(name: .customLong("grad-clip"), help: "Global gradient-norm clip (0 disables).") var gradClip: Float = 1.0
    @Option(name: .customLong("data-seed"), help: "Seed for the order of training windows.") var dataSeed: UInt64 = 42
    @Option(name: .customLong("eval-every"), help: "Validation loss every N steps (0: only at the end; default 50 for train, 20 for bench).") var evalEvery: Int?
    @Option(name: .customLong("eval-batches"), help: "Micro-batches in the fixed validation slice.") var evalBatches: Int = 8
    @Option(help: "Write JSON Lines here: a header line, then one object per step.") var log: String?
    @Option(name: .customLong("out"), help: "Folder for the trained model (model.bin) and its tokenizer (default: runs/latest; train only).") var outFolder: String?
    /// The run folder: --out, or runs/latest.
    var out: String { outFolder ?? "runs/latest" }

    /// The run's optimisation settings; the arguments are this command's defaults.
    func trainConfig(steps defaultSteps: Int = 300, batchSize defaultB: Int = 4, microbatches defaultM: Int = 8) throws -> TrainConfig {
        var t = TrainConfig()
        t.batchSize = batchSize ?? defaultB; t.microbatches = microbatches ?? defaultM
        let steps = self.steps ?? defaultSteps
        t.steps = steps
        let w = warmup ?? max(1, steps / 10)
        t.schedule = LRSchedule(maxLR: lr, minLR: minLR ?? lr / 10, warmupSteps: w, totalSteps: steps)
        t.adamw.weightDecay = weightDecay
        t.gradClip = gradClip
        t.dataSeed = dataSeed
        try t.validate()
        if let e = evalEvery, e < 0 { throw ValidationError("--eval-every \(e) must be ≥ 0") }
        if !(1...1_000_000).contains(evalBatches) { throw ValidationError("--eval-batches \(evalBatches) must be in 1...1000000") }
        return t
    }
}
