// Measures single-process training throughput and the machine's sgemm rate in one run.
import Foundation

public struct EngineBenchmarkResult: Sendable {
    public var tokensPerSecond: Double
    public var msPerStep: Double
    /// Achieved model FLOP/s (6 × forward matmul FLOPs per token, attention causal).
    public var gflops: Double
    /// Rate of one large sgemm of the model's MLP shape, for comparison.
    public var sgemmGflops: Double
    public var firstLoss: Float
    public var lastLoss: Float
    /// Per-kernel wall time over the timed steps, when profiled.
    public var profile: KernelProfile?
}

public enum EngineBenchmark {
    /// Trains `warmup + steps` steps on seeded random tokens; times the last `steps`.
    public static func run(config: ModelConfig, batchSize: Int, steps: Int, warmup: Int, profile: Bool = false) -> EngineBenchmarkResult {
        var tc = TrainConfig()
        tc.batchSize = batchSize
        tc.schedule = LRSchedule(maxLR: 1e-3, minLR: 1e-4, warmupSteps: 1, totalSteps: steps + warmup)
        let trainer = LocalTrainer(model: StageModel(config: config, stage: .whole(config), batchSize: batchSize), train: tc)
        let N = batchSize * config.seqLen
        var rng = SplitMix64(seed: 7)
        // A learnable stream: next token = (token · 3 + 1) mod V with 10% noise.
        var ids = [Int32](repeating: 0, count: N + 1)
        for i in 1...N { ids[i] = rng.uniform() < 0.1 ? Int32(rng.int(below: config.vocabSize)) : Int32((Int(ids[i - 1]) * 3 + 1) % config.vocabSize) }
        let mb = Microbatch(ids: Array(ids[0..<N]), targets: Array(ids[1...N]))
        var first: Float = 0, last: Float = 0
        for s in 0..<warmup { let r = trainer.step(s, [mb]); if s == 0 { first = r.loss } }
        let prof = profile ? KernelProfile() : nil
        trainer.model.profile = prof
        let t0 = DispatchTime.now().uptimeNanoseconds
        for s in 0..<steps { let r = trainer.step(warmup + s, [mb]); if s == 0 && warmup == 0 { first = r.loss }; last = r.loss }
        let secs = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        let flops = 3 * trainer.model.forwardFlopsPerToken * Double(N) * Double(steps)
        return EngineBenchmarkResult(tokensPerSecond: Double(N * steps) / secs, msPerStep: 1000 * secs / Double(steps),
                                     gflops: flops / secs / 1e9,
                                     sgemmGflops: sgemmRate(M: N, K: config.dModel, N: config.mlpHidden),
                                     firstLoss: first, lastLoss: last, profile: prof)
    }

    /// FLOP/s of one thread running single-threaded sgemm of M×K·K×N, measured in that
    /// thread's CPU time (so other processes sharing the core do not lower it): the core rate
    /// an emulated stage speed is relative to.
    public static func coreFlops(M: Int, K: Int, N: Int) -> Double {
        let a = FloatBuffer(count: M * K), b = FloatBuffer(count: K * N), c = FloatBuffer(count: M * N)
        var rng = SplitMix64(seed: 1)
        rng.fillNormal(a.ptr, a.count, std: 1); rng.fillNormal(b.ptr, b.count, std: 1)
        var ts = timespec()
        func cpu() -> Double { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts); return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9 }
        var best = Double.infinity
        for _ in 0..<3 {
            let t0 = cpu()
            for _ in 0..<3 { BLAS.gemm(M: M, N: N, K: K, A: a.ptr, lda: K, B: b.ptr, ldb: N, C: c.ptr, ldc: N) }
            best = min(best, (cpu() - t0) / 3)
        }
        return 2 * Double(M) * Double(N) * Double(K) / max(best, 1e-9)
    }

    /// GFLOP/s of C(M×N) = A(M×K)·B(K×N), best of a few repeats.
    public static func sgemmRate(M: Int, K: Int, N: Int) -> Double {
        let a = FloatBuffer(count: M * K), b = FloatBuffer(count: K * N), c = FloatBuffer(count: M * N)
        var rng = SplitMix64(seed: 1)
        rng.fillNormal(a.ptr, a.count, std: 1); rng.fillNormal(b.ptr, b.count, std: 1)
        var best = Double.infinity
        for _ in 0..<3 {
            let t0 = DispatchTime.now().uptimeNanoseconds
            for _ in 0..<5 { BLAS.gemmParallel(M: M, N: N, K: K, A: a.ptr, lda: K, B: b.ptr, ldb: N, C: c.ptr, ldc: N) }
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t0) / 5e9)
        }
        return 2 * Double(M) * Double(N) * Double(K) / best / 1e9
    }
}
