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
    @Flag(help: "Also time every kernel (forward and backward) and print where a step's time goes.") var profile = false
    @Option(help: "Attention kernels: auto (fused AVX-512 where the CPU and head size allow), fused (fail if they cannot run), sgemm (the portable path).")
    var attention: AttentionChoice = .auto

    enum AttentionChoice: String, ExpressibleByArgument, CaseIterable { case auto, fused, sgemm }

    mutating func validate() throws {
        if steps < 1 { throw ValidationError("--steps must be at least 1") }
        if batchSize < 1 { throw ValidationError("--batch-size must be at least 1") }
        if warmup < 0 { throw ValidationError("--warmup must be ≥ 0") }
    }

    func run() throws {
        let cfg = try model.config(defaultPreset: "engine")
        try threading.apply()
        let hs = cfg.dModel / cfg.nHead
        switch attention {
        case .auto: break
        case .sgemm: AttentionKernel.fusedEnabled = false
        case .fused:
            guard AttentionKernel.usesFused(headSize: hs) else {
                throw CLIError(AttentionKernel.cpuHasFused
                    ? "--attention fused: the fused kernels take head sizes 16, 32, 64, 128, 256 (with --matmul bf16 on AMX: any multiple of 32); this model's is \(hs) (use auto or sgemm)"
                    : "--attention fused: this CPU has no AVX-512 (use auto or sgemm)")
            }
        }
        try StageModel.checkFits(config: cfg, stage: .whole(cfg), batchSize: batchSize, slots: 1)
        let r = EngineBenchmark.run(config: cfg, batchSize: batchSize, steps: steps, warmup: warmup, profile: profile)
        // Per kernel (--profile): ms per step forward/backward, share of the step, and GFLOP/s of the matrix products.
        var rows: [(kernel: String, fwdMs: Double, bwdMs: Double, share: Double, product: Bool, fwdGflops: Double?, bwdGflops: Double?)] = []
        if let p = r.profile {
            // Matmul FLOPs per step of each kernel (forward; backward does twice as many).
            let N = Double(batchSize * cfg.seqLen), C = Double(cfg.dModel), H = Double(cfg.mlpHidden), L = Double(cfg.nLayer)
            let T = Double(cfg.seqLen), V = Double(cfg.vocabSize)
            let flops: [KernelProfile.Kernel: Double] = [
                .qkv: 2 * N * C * 3 * C * L, .attention: 2 * 2 * N * C * (T + 1) / 2 * L, .attnProj: 2 * N * C * C * L,
                .fc: 2 * N * C * H * L, .fcProj: 2 * N * H * C * L, .head: 2 * N * C * V]
            for row in p.rows {
                let f = row.forward / Double(steps), b = row.backward / Double(steps)
                rows.append((row.kernel.rawValue, f * 1000, b * 1000, 100 * (f + b) / (r.msPerStep / 1000), flops[row.kernel] != nil,
                             flops[row.kernel].flatMap { f > 0 ? $0 / f / 1e9 : nil }, flops[row.kernel].flatMap { b > 0 ? 2 * $0 / b / 1e9 : nil }))
            }
        }
        let insideMs = (r.profile?.rows.reduce(0) { $0 + $1.forward + $1.backward } ?? 0) / Double(steps) * 1000
        if json {
            var obj: [String: Any] = [
                "engine": "protomodel", "threads": threading.threads, "tokens_per_s": r.tokensPerSecond,
                "ms_per_step": r.msPerStep, "attention": AttentionKernel.usesAMX(headSize: hs) ? "amx" : AttentionKernel.usesFused(headSize: hs) ? "fused" : "sgemm", "matmul": threading.matmul.rawValue, "bf16_kernel": threading.matmul == .bf16 ? MatmulPrecision.bf16Kernel?.rawValue ?? "" : "", "gflops": r.gflops, "sgemm_gflops": r.sgemmGflops,
                "params": cfg.parameterCount, "loss_first": r.firstLoss, "loss_last": r.lastLoss]
            if r.profile != nil {
                obj["profile_ms_inside_kernels"] = insideMs
                obj["profile"] = rows.map { row -> [String: Any] in
                    var o: [String: Any] = ["kernel": row.kernel, "fwd_ms": row.fwdMs, "bwd_ms": row.bwdMs, "share_percent": row.share]
                    if let g = row.fwdGflops { o["fwd_gflops"] = g }
                    if let g = row.bwdGflops { o["bwd_gflops"] = g }
                    return o
                }
            }
            let data = try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
            return
        }
        print("config      d=\(cfg.dModel) L=\(cfg.nLayer) NH=\(cfg.nHead) T=\(cfg.seqLen) V=\(cfg.vocabSize) B=\(batchSize) params=\(cfg.parameterCount)")
        print("threads     \(threading.threads) (\(BLAS.configString))")
        print("attention   \(AttentionKernel.label(headSize: hs))")
        print("matmul      \(threading.matmul == .bf16 ? "\(MatmulPrecision.current.label) (linear layers\(AttentionKernel.usesAMX(headSize: hs) ? " and attention" : ""); fp32 sums)" : "fp32 sgemm")")
        print(String(format: "speed       %.0f tokens/s   %.1f ms/step   %.1f GFLOP/s achieved", r.tokensPerSecond, r.msPerStep, r.gflops))
        print(String(format: "sgemm peak  %.1f GFLOP/s on (%d×%d)·(%d×%d); model reaches %.0f%% of it",
                     r.sgemmGflops, batchSize * cfg.seqLen, cfg.dModel, cfg.dModel, cfg.mlpHidden, 100 * r.gflops / r.sgemmGflops))
        print(String(format: "loss        %.4f -> %.4f over %d steps", r.firstLoss, r.lastLoss, steps + warmup))
        guard r.profile != nil else { return }
        print(String(format: "\nprofile     %d steps, %.1f ms/step measured, %.1f ms/step inside kernels (the rest: zero-grad, norm, loop)", steps, r.msPerStep, insideMs))
        print("| kernel | fwd ms/step | bwd ms/step | share of step | fwd GFLOP/s | bwd GFLOP/s |")
        print("|---|---|---|---|---|---|")
        for row in rows {
            // A matrix product with no time in one direction shows "–"; other kernels leave the columns empty.
            func g(_ v: Double?) -> String { v.map { String(format: "%.0f", $0) } ?? (row.product ? "–" : "") }
            print(String(format: "| %@ | %.2f | %.2f | %.1f%% | %@ | %@ |", row.kernel, row.fwdMs, row.bwdMs, row.share, g(row.fwdGflops), g(row.bwdGflops)))
        }
    }
}
