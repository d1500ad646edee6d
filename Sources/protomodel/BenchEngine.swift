// `protomodel bench-engine`: single-process training speed of one config.
import ArgumentParser
import Foundation
import ProtoCore

struct BenchEngine: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-engine",
        abstract: "Train N steps of a config on random tokens in one process; print tokens/s, ms/step, GFLOP/s.")

    @OptionGroup var model: ModelOptions
    @OptionGroup var threading: ThreadOptions
    @Option(name: .customLong("batch-size"), help: "Rows per step (B).") var batchSize: Int = 8
    @Option(help: "Timed steps.") var steps: Int = 20
    @Option(help: "Untimed warm-up steps.") var warmup: Int = 3
    @Flag(help: "Print one JSON object instead of text.") var json = false

    mutating func validate() throws {
        if steps < 1 { throw ValidationError("--steps must be at least 1") }
        if batchSize < 1 { throw ValidationError("--batch-size must be at least 1") }
        if warmup < 0 { throw ValidationError("--warmup must be ≥ 0") }
    }

    func run() throws {
        var cfg = try model.config()
        if model.preset == "small" && model.dModel == nil { cfg = try ModelConfig.preset("engine") } // default: the engine shape
        try threading.apply()
        let r = EngineBenchmark.run(config: cfg, batchSize: batchSize, steps: steps, warmup: warmup)
        if json {
            let obj: [String: Any] = [
                "engine": "protomodel", "threads": threading.threads, "tokens_per_s": r.tokensPerSecond,
                "ms_per_step": r.msPerStep, "gflops": r.gflops, "sgemm_gflops": r.sgemmGflops,
                "params": cfg.parameterCount, "loss_first": r.firstLoss, "loss_last": r.lastLoss]
            let data = try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            print("config      d=\(cfg.dModel) L=\(cfg.nLayer) NH=\(cfg.nHead) T=\(cfg.seqLen) V=\(cfg.vocabSize) B=\(batchSize) params=\(cfg.parameterCount)")
            print("threads     \(threading.threads) (\(BLAS.configString))")
            print(String(format: "speed       %.0f tokens/s   %.1f ms/step   %.1f GFLOP/s achieved", r.tokensPerSecond, r.msPerStep, r.gflops))
            print(String(format: "sgemm peak  %.1f GFLOP/s on (%d×%d)·(%d×%d); model reaches %.0f%% of it",
                         r.sgemmGflops, batchSize * cfg.seqLen, cfg.dModel, cfg.dModel, cfg.mlpHidden, 100 * r.gflops / r.sgemmGflops))
            print(String(format: "loss        %.4f -> %.4f over %d steps", r.firstLoss, r.lastLoss, steps + warmup))
        }
    }
}
