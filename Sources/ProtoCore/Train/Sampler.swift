// Autoregressive text generation from a whole model (one process).

public struct SamplingConfig: Sendable {
    public var temperature: Float = 0.8
    /// Keep only the k most likely tokens (0 = all).
    public var topK: Int = 40
    public var seed: UInt64 = 1
    public init(temperature: Float = 0.8, topK: Int = 40, seed: UInt64 = 1) {
        self.temperature = temperature; self.topK = topK; self.seed = seed
    }
}

public enum Sampler {
    /// Extends `prompt` by `count` tokens. The model must be whole with batch size 1. The
    /// context is the last T tokens; later positions are padding that causal attention
    /// keeps from influencing the position read.
    public static func generate(_ model: StageModel, prompt: [Int32], count: Int, config: SamplingConfig,
                                onToken: ((Int32) -> Void)? = nil) -> [Int32] {
        precondition(model.stage.hasEmbedding && model.stage.hasHead && model.batchSize == 1)
        let T = model.config.seqLen, V = model.config.vocabSize
        var tokens = prompt.isEmpty ? [Int32(0x0A)] : prompt
        var rng = SplitMix64(seed: config.seed)
        let dummy = [Int32](repeating: 0, count: T)
        var window = [Int32](repeating: 0, count: T)
        for _ in 0..<count {
            let ctx = tokens.suffix(T)
            for (i, t) in ctx.enumerated() { window[i] = t }
            for i in ctx.count..<T { window[i] = 0 }
            model.forward(slot: 0, ids: window, targets: dummy)
            let row = model.logits(slot: 0)! + (ctx.count - 1) * V
            let next = pick(row, V, config, &rng)
            tokens.append(next)
            onToken?(next)
        }
        return Array(tokens.suffix(count))
    }

    static func pick(_ logits: UnsafePointer<Float>, _ V: Int, _ c: SamplingConfig, _ rng: inout SplitMix64) -> Int32 {
        if c.temperature <= 0 {  // greedy
            var best = 0
            for j in 1..<V where logits[j] > logits[best] { best = j }
            return Int32(best)
        }
        var idx = Array(0..<V)
        if c.topK > 0 && c.topK < V {
            idx.sort { logits[$0] > logits[$1] }
            idx = Array(idx.prefix(c.topK))
        }
        let mx = idx.map { logits[$0] }.max()!
        let w = idx.map { Double(expPoly((logits[$0] - mx) / c.temperature)) }
        var u = rng.uniform() * w.reduce(0, +)
        for (k, wk) in w.enumerated() { u -= wk; if u <= 0 { return Int32(idx[k]) } }
        return Int32(idx.last!)
    }
}
