// Per-micro-batch activation storage (what backward needs, saved in forward) and the
// per-stage backward scratch. Each is one allocation with typed views.

/// Saved activations of one block for one micro-batch. N = B·T.
struct LayerActs {
    var ln1: UnsafeMutablePointer<Float>      // (N, C) normed block input
    var ln1Rstd: UnsafeMutablePointer<Float>  // (N)
    var qkv: UnsafeMutablePointer<Float>      // (N, 3C) q and k already rotated
    var att: UnsafeMutablePointer<Float>      // (B, NH, T, T) causal softmax probabilities
    var atty: UnsafeMutablePointer<Float>     // (N, C) attention output before W_O
    var res1: UnsafeMutablePointer<Float>     // (N, C) H = X + atty·W_O
    var ln2: UnsafeMutablePointer<Float>      // (N, C)
    var ln2Rstd: UnsafeMutablePointer<Float>  // (N)
    var fch: UnsafeMutablePointer<Float>      // (N, H) MLP pre-activation
    var fca: UnsafeMutablePointer<Float>      // (N, H) relu²
    var res2: UnsafeMutablePointer<Float>     // (N, C) block output
    var attnC: UnsafeMutablePointer<Float>?   // (N, k or C) the W_O write before its norm (adaptive U, sublayer norm)
    var fcC: UnsafeMutablePointer<Float>?     // (N, k or C) the W_2 write before its norm
    var attnR: UnsafeMutablePointer<Float>?   // (N) 1/rms of the W_O write (sublayer norm)
    var fcR: UnsafeMutablePointer<Float>?     // (N) 1/rms of the W_2 write
    var projC: UnsafeMutablePointer<Float>?   // (N, k) (res2 − E_fixed)·A when a projector follows
    var projOut: UnsafeMutablePointer<Float>? // (N, C) E_fixed + projC·Aᵀ, what the next block reads
    var xin: UnsafeMutablePointer<Float>?     // (N, C) X + P_l[ids], what the block reads (per-layer embedding)
    /// The residual stream after this block (and its projector, if any).
    var out: UnsafeMutablePointer<Float> { projOut ?? res2 }
}

/// All saved activations of a stage for one micro-batch slot.
final class StageActivations {
    let buffer: FloatBuffer
    let input: UnsafeMutablePointer<Float>     // (N, C) residual stream entering the stage
    var layers: [LayerActs] = []
    var lnf: UnsafeMutablePointer<Float>? = nil      // (N, C)
    var lnfRstd: UnsafeMutablePointer<Float>? = nil  // (N)
    var logits: UnsafeMutablePointer<Float>? = nil   // (N, V)
    var lse: UnsafeMutablePointer<Float>? = nil      // (N)
    var losses: UnsafeMutablePointer<Float>? = nil   // (N)
    let ids: UnsafeMutablePointer<Int32>             // (N)
    let targets: UnsafeMutablePointer<Int32>         // (N)

    /// Width of a block's saved writes (W_O and W_2 outputs): 0 when nothing is saved, k for
    /// subspace coordinates, C for dense writes. Saved when an adaptive U needs them for dU or
    /// a sublayer norm for its backward.
    static func writeWidth(_ c: ModelConfig, layer: Int) -> Int {
        let coords = c.isConstrained(layer: layer) && c.subspace?.mode == .reparam
        if c.normalizesSublayers { return coords ? c.subspace!.rank : c.dModel }
        return c.subspace?.adaptive != nil && coords ? c.subspace!.rank : 0
    }
    static func hasProjector(_ c: ModelConfig, layer: Int) -> Bool { c.projector?.boundaries.contains(layer) ?? false }

    static func floats(_ c: ModelConfig, _ s: StageSpec, B: Int) -> Int {
        let T = c.seqLen, N = B * T, C = c.dModel, H = c.mlpHidden
        let k = c.subspace?.rank ?? c.projector?.rank ?? 0
        let perLayer = 8 * N * C + 2 * N + B * c.nHead * T * T + 2 * N * H
        let extra = s.layers.reduce(0) { acc, l in
            acc + 2 * writeWidth(c, layer: l) * N + (c.normalizesSublayers ? 2 * N : 0) + (hasProjector(c, layer: l) ? N * k + N * C : 0)
                + (c.hasLayerEmbedding ? N * C : 0)
        }
        let head = s.hasHead ? N * C + 3 * N + N * c.vocabSize : 0
        return N * C + s.layers.count * perLayer + extra + head
    }

    init(config c: ModelConfig, stage s: StageSpec, B: Int) {
        let T = c.seqLen, N = B * T, C = c.dModel, H = c.mlpHidden
        buffer = FloatBuffer(count: Self.floats(c, s, B: B))
        var a = Arena(buffer)
        input = a.take(N * C)
        let k = c.subspace?.rank ?? c.projector?.rank ?? 0
        for l in s.layers {
            var la = LayerActs(
                ln1: a.take(N * C), ln1Rstd: a.take(N), qkv: a.take(3 * N * C),
                att: a.take(B * c.nHead * T * T), atty: a.take(N * C), res1: a.take(N * C),
                ln2: a.take(N * C), ln2Rstd: a.take(N), fch: a.take(N * H), fca: a.take(N * H),
                res2: a.take(N * C))
            let w = Self.writeWidth(c, layer: l)
            if w > 0 { la.attnC = a.take(N * w); la.fcC = a.take(N * w) }
            if c.normalizesSublayers { la.attnR = a.take(N); la.fcR = a.take(N) }
            if Self.hasProjector(c, layer: l) { la.projC = a.take(N * k); la.projOut = a.take(N * C) }
            if c.hasLayerEmbedding { la.xin = a.take(N * C) }
            layers.append(la)
        }
        if s.hasHead {
            lnf = a.take(N * C); lnfRstd = a.take(N); logits = a.take(N * c.vocabSize)
            lse = a.take(N); losses = a.take(N)
        }
        precondition(a.used == buffer.count, "activation layout mismatch")
        ids = .allocate(capacity: N); ids.initialize(repeating: 0, count: N)
        targets = .allocate(capacity: N); targets.initialize(repeating: 0, count: N)
    }

    deinit { ids.deallocate(); targets.deallocate() }

    /// The residual stream leaving the stage (before the head, if any).
    var output: UnsafeMutablePointer<Float> { layers.last?.out ?? input }
}

/// Backward scratch shared by all micro-batches of a stage (backward runs one at a time).
final class StageScratch {
    let buffer: FloatBuffer
    let dres: UnsafeMutablePointer<Float>   // (N, C) gradient of the residual stream
    let dln: UnsafeMutablePointer<Float>    // (N, C)
    let dqkv: UnsafeMutablePointer<Float>   // (N, 3C)
    let datt: UnsafeMutablePointer<Float>   // (B, NH, T, T)
    let datty: UnsafeMutablePointer<Float>  // (N, C)
    let dfc: UnsafeMutablePointer<Float>    // (N, H)
    let dlogits: UnsafeMutablePointer<Float>? // (N, V)

    static func floats(_ c: ModelConfig, _ s: StageSpec, B: Int) -> Int {
        let T = c.seqLen, N = B * T, C = c.dModel, H = c.mlpHidden
        return 6 * N * C + B * c.nHead * T * T + N * H + (s.hasHead ? N * c.vocabSize : 0)
    }

    init(config c: ModelConfig, stage s: StageSpec, B: Int) {
        let T = c.seqLen, N = B * T, C = c.dModel, H = c.mlpHidden
        let n = Self.floats(c, s, B: B)
        buffer = FloatBuffer(count: n)
        var a = Arena(buffer)
        dres = a.take(N * C); dln = a.take(N * C); dqkv = a.take(3 * N * C)
        datt = a.take(B * c.nHead * T * T); datty = a.take(N * C); dfc = a.take(N * H)
        dlogits = s.hasHead ? a.take(N * c.vocabSize) : nil
        precondition(a.used == n, "scratch layout mismatch")
    }
}
