// Option groups shared by the subcommands.
import ArgumentParser
import ProtoCore

/// Model shape: a preset plus optional overrides.
struct ModelOptions: ParsableArguments {
    @Option(help: "Model preset: \(ModelConfig.presetNames.joined(separator: ", ")) (default: small; bench-engine: engine).")
    var preset: String?
    @Option(name: .customLong("d-model"), help: "Override the width C.") var dModel: Int?
    @Option(name: .customLong("n-layer"), help: "Override the number of blocks L.") var nLayer: Int?
    @Option(name: .customLong("n-head"), help: "Override the number of heads NH.") var nHead: Int?
    @Option(name: .customLong("seq-len"), help: "Override the sequence length T.") var seqLen: Int?
    @Option(name: .customLong("vocab-size"), help: "Override the vocabulary size V (normally taken from the tokenizer).") var vocabSize: Int?
    @Option(name: .customLong("mlp-hidden"), help: "Override the MLP hidden width (default 4·d-model).") var mlpHidden: Int?
    @Option(name: .customLong("efixed-std"), help: "Standard deviation of E_fixed in subspace and projector models (default: the init std, 0.02).")
    var efixedStd: Float?
    @Flag(name: .customLong("sublayer-norm"), help: "Gain-free RMSNorm on every sublayer output before it joins the residual stream (the Protocol Models authors' production config).")
    var sublayerNorm = false
    @Flag(name: .customLong("layer-embedding"), help: "A trainable token embedding per block (V×d, zero at start), added to what the block reads but not to the stream it passes on: nothing more crosses a stage boundary.")
    var layerEmbedding = false
    @Option(help: "Seed for the initial weights (default: 1337).") var seed: UInt64?

    /// The preset asked for, or the command's default.
    func presetName(default name: String = "small") -> String { preset ?? name }

    func config(defaultPreset: String = "small") throws -> ModelConfig {
        var c = try ModelConfig.preset(presetName(default: defaultPreset))
        if let v = dModel { c.dModel = v; c.mlpHidden = 4 * v }
        if let v = nLayer { c.nLayer = v }
        if let v = nHead { c.nHead = v }
        if let v = seqLen { c.seqLen = v }
        if let v = vocabSize { c.vocabSize = v }
        if let v = mlpHidden { c.mlpHidden = v }
        if let v = efixedStd { c.fixedEmbeddingStd = v }
        if sublayerNorm { c.sublayerNorm = true }
        if layerEmbedding { c.layerEmbedding = true }
        if let seed { c.seed = seed }
        try c.validate()
        return c
    }
}

/// How the kernels run: threads for a single-process run (BLAS and the kernels' own loops), and
/// the precision of the matrix products (linear layers and attention).
struct ThreadOptions: ParsableArguments {
    @Option(help: "Threads for BLAS and the kernels (single-process commands; MPI ranks use 1).")
    var threads: Int = 1
    @Option(help: "Matrix products of the linear layers and attention: fp32 (OpenBLAS sgemm, AVX-512 attention), or bf16 (inputs rounded to bfloat16, fp32 sums, on Intel AMX or AVX512-BF16 — see --bf16-kernel; weights, activations, softmax and everything else stay fp32).")
    var matmul: MatmulPrecision = .fp32
    @Option(help: "With --matmul bf16, the unit that runs the products: auto (the best this CPU has), amx (Intel Sapphire Rapids and newer: linear layers and attention), or avx512-bf16 (AVX512-BF16 dot products: AMD Zen 4 and newer, Intel Cooper Lake; linear layers, attention stays fp32).")
    var bf16Kernel: BF16KernelChoice = .auto

    /// Checked while parsing, so the message comes with the subcommand's usage line.
    mutating func validate() throws {
        guard (1...256).contains(threads) else { throw ValidationError("--threads \(threads) must be in 1...256") }
        if matmul == .fp32 && bf16Kernel != .auto {
            throw ValidationError("--bf16-kernel \(bf16Kernel.rawValue) applies to --matmul bf16 only; add --matmul bf16 or drop --bf16-kernel")
        }
    }

    func apply() throws {
        var checked = self
        try checked.validate()  // also when built in code, not parsed
        if matmul == .bf16 {
            let available = MatmulPrecision.BF16Kernel.allCases.filter(\.isAvailable)
            guard let best = available.first else {
                throw CLIError("--matmul bf16 needs Intel AMX-BF16 (Sapphire Rapids or newer, with a Linux kernel that grants the tile state) or AVX512-BF16 (AMD Zen 4 or newer, Intel Cooper Lake); this machine has neither — use --matmul fp32")
            }
            let chosen = bf16Kernel.kernel ?? best
            guard available.contains(chosen) else {
                throw CLIError("--bf16-kernel \(bf16Kernel.rawValue): this machine does not run it (it runs: \(available.map(\.rawValue).joined(separator: ", "))) — use --bf16-kernel auto")
            }
            MatmulPrecision.bf16Kernel = chosen
        }
        BLAS.setThreads(1)  // parallelism comes from BLAS.gemmParallel and the kernels
        Parallel.threads = threads
        MatmulPrecision.current = matmul
    }

    /// What these options add to settings that must match (ranks' agreed settings, converge's
    /// run fingerprints): nothing for fp32, so fp32 runs keep the identities they had; for bf16 on
    /// AMX the attention word too (runs stored before attention joined the bf16 products differ);
    /// for bf16 on AVX512-BF16 the kernel (its sums run in another order, attention stays fp32).
    /// Call after apply().
    var settingWords: [String] {
        if matmul == .fp32 { return [] }
        if MatmulPrecision.bf16Kernel == .avx512bf16 { return ["matmul=bf16", "bf16-kernel=avx512-bf16"] }
        return ["matmul=\(matmul.rawValue)", "attention=\(matmul.rawValue)"]
    }

    /// RunSettings.extraAdvice for the words above: under `--bf16-kernel auto` the kernel follows
    /// the CPU, so hosts of two kinds differ with the same flags.
    static let settingAdvice = [
        "bf16-kernel=": bf16KernelAdvice, "attention=bf16": bf16KernelAdvice,
    ]
    static let bf16KernelAdvice = "these hosts run different bf16 kernels under --bf16-kernel auto; pass --bf16-kernel avx512-bf16 (which CPUs with AMX run too) or --matmul fp32"
}

/// `--bf16-kernel`: a MatmulPrecision.BF16Kernel, or auto.
enum BF16KernelChoice: String, CaseIterable, ExpressibleByArgument {
    case auto, amx
    case avx512bf16 = "avx512-bf16"
    var kernel: MatmulPrecision.BF16Kernel? { self == .auto ? nil : MatmulPrecision.BF16Kernel(rawValue: rawValue) }
}

extension MatmulPrecision: ExpressibleByArgument {}
