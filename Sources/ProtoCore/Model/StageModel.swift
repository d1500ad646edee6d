// A pipeline stage of the GPT: its blocks, plus the embedding (first stage) and the final
// norm, LM head and loss (last stage). The single-process model is the stage that owns all.
import Foundation

/// Typed views of one block's tensors inside the parameter (or gradient) buffer.
struct LayerParams {
    var ln1: UnsafeMutablePointer<Float>      // (C)
    var qkv: UnsafeMutablePointer<Float>      // (C, 3C)
    var attProj: UnsafeMutablePointer<Float>  // (C, C)   W_O
    var ln2: UnsafeMutablePointer<Float>      // (C)
    var fc: UnsafeMutablePointer<Float>       // (C, H)
    var fcProj: UnsafeMutablePointer<Float>   // (H, C)   W_2
    var emb: UnsafeMutablePointer<Float>?     // (V, C)   P_l, per-layer token embedding
    /// W_O and W_2 are (in, k) and their outputs pass through Uᵀ (reparam subspace).
    var reparam: Bool
}

/// Views of a stage's tensors into one flat buffer (used for parameters and gradients alike).
struct StageParams {
    var wte: UnsafeMutablePointer<Float>?     // (V, C)
    var layers: [LayerParams] = []
    var lnf: UnsafeMutablePointer<Float>?     // (C)
    var lmHead: UnsafeMutablePointer<Float>?  // (C, V)

    init(_ layout: ParamLayout, _ base: UnsafeMutablePointer<Float>, _ stage: StageSpec, reparamMode: Bool) {
        func p(_ n: String) -> UnsafeMutablePointer<Float> { base + layout.tensor(n)!.offset }
        if stage.hasEmbedding { wte = p("wte") }
        for l in stage.layers {
            let reparam = layout.tensor("h\(l).attn_proj")!.subspace && reparamMode
            layers.append(LayerParams(ln1: p("h\(l).ln1"), qkv: p("h\(l).qkv"), attProj: p("h\(l).attn_proj"),
                                      ln2: p("h\(l).ln2"), fc: p("h\(l).fc"), fcProj: p("h\(l).fc_proj"),
                                      emb: layout.tensor("h\(l).emb").map { base + $0.offset }, reparam: reparam))
        }
        if stage.hasHead { lnf = p("lnf"); lmHead = p("lm_head") }
    }
}

/// One stage's parameters, gradients and activations for micro-batches of B rows.
///
/// Protocol per micro-batch slot: (non-first stages write the incoming activation into
/// `input(slot:)`), `forward`, then later `backward` with the gradient of `output(slot:)`
/// (nil on the last stage, which starts from the loss). After `backward`, non-first
/// stages read the gradient of their input from `inputGradient`.
public final class StageModel {
    public let config: ModelConfig
    public let stage: StageSpec
    public let layout: ParamLayout
    /// B: rows per micro-batch; N = B·T tokens.
    public let batchSize: Int
    public let params: FloatBuffer
    public let grads: FloatBuffer
    let p: StageParams
    let g: StageParams
    let slots: [StageActivations]
    let scratch: StageScratch
    let rope: RoPETable
    /// The shared subspace (subspace models only); with an adaptive U its basis is the
    /// "subspace.U" parameter, so the model and the wire always use the current U.
    public let subspace: Subspace?
    /// E_fixed (subspace and projector models).
    public let fixed: FixedEmbedding?
    /// Per-boundary projectors this stage holds (projector models), by the layer they follow;
    /// each basis is a parameter slot.
    public let projectors: [Int: Basis]
    /// An (N, k) work buffer.
    let kbuf: FloatBuffer
    /// Called between the large kernels of forward and backward: a pipeline stage lets its
    /// transport move messages while it computes (TCP sends larger than the eager limit
    /// only progress while the sender is inside MPI).
    public var progress: (() -> Void)?
    /// Per-kernel wall time, when set (bench-engine --profile).
    public var profile: KernelProfile?

    @inline(__always)
    private func t<T>(_ k: KernelProfile.Kernel, _ backward: Bool = false, _ body: () -> T) -> T {
        guard let profile else { return body() }
        return profile.time(k, backward: backward, body)
    }
    private var reparam: Bool { config.subspace?.mode == .reparam }
    private var adaptive: Bool { config.subspace?.adaptive != nil }

    public var tokensPerMicrobatch: Int { batchSize * config.seqLen }

    /// Bytes a stage allocates: parameters, gradients and two AdamW moments, `slots`
    /// micro-batches of activations and the backward scratch. Known before allocating, so
    /// a configuration too large for the machine is refused with its size instead of
    /// exhausting memory.
    public static func estimatedBytes(config c: ModelConfig, stage s: StageSpec, batchSize B: Int, slots: Int) -> Int {
        let params = ParamLayout(config: c, stage: s).count
        return 4 * (4 * params + max(1, slots) * StageActivations.floats(c, s, B: B) + StageScratch.floats(c, s, B: B))
    }

    /// The same estimate in floating point (no overflow for any shape), for refusing shapes
    /// whose exact count would not fit an Int.
    static func roughBytes(config c: ModelConfig, stage s: StageSpec, batchSize B: Int, slots: Int) -> Double {
        let b = Double(B), t = Double(c.seqLen), d = Double(c.dModel), h = Double(c.mlpHidden), v = Double(c.vocabSize)
        let layers = Double(s.layers.count), n = b * t
        let params = 2 * v * d + layers * (4 * d * d + 2 * d * h + 2 * v * d)
        let acts = n * d * 20 + layers * (n * (12 * d + 3 * h) + 2 * b * Double(c.nHead) * t * t) + n * v * 2
        return 4 * (4 * params + Double(max(1, slots) + 1) * acts)
    }

    /// Bytes this process may still allocate: half the machine's memory, and no more than
    /// 90 % of the address space left under a `ulimit -v` (RLIMIT_AS), when one is set.
    public static func memoryLimit() -> Int {
        var limit = Int(ProcessInfo.processInfo.physicalMemory / 2)
        var rl = rlimit()
        if getrlimit(__rlimit_resource_t(RLIMIT_AS.rawValue), &rl) == 0, rl.rlim_cur != rlim_t.max {  // RLIM_INFINITY
            // Virtual size now: the first field of /proc/self/statm, in pages (Linux; 0 elsewhere).
            let statm = (try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8)) ?? ""
            let pages: Int = statm.split(separator: " ").first.flatMap { Int(String($0)) } ?? 0
            let used = pages * Int(sysconf(Int32(_SC_PAGESIZE)))
            let cap: UInt64 = min(UInt64(rl.rlim_cur), UInt64(Int.max))
            let room = Int(cap) - used
            limit = min(limit, max(0, room / 10 * 9))
        }
        return limit
    }

    /// Throws when the stages one process holds (each with its micro-batch slots) would need
    /// more than `limit` bytes (default `memoryLimit()`), naming the size and the fix.
    public static func checkFits(config c: ModelConfig, stages: [(stage: StageSpec, slots: Int)], batchSize B: Int,
                                 limit: Int = memoryLimit()) throws {
        let what = stages.count == 1 ? "this stage" : "these \(stages.count) stages"
        func refuse(_ mib: String) -> ConfigError {
            ConfigError.problem("\(what) would need \(mib) MiB (parameters, optimizer state and activations for B=\(B), T=\(c.seqLen)); the limit here is \(limit >> 20) MiB (half the memory, or what `ulimit -v` leaves) — use a smaller model, --batch-size or --seq-len, or more stages")
        }
        let rough = stages.reduce(0.0) { $0 + roughBytes(config: c, stage: $1.stage, batchSize: B, slots: $1.slots) }
        guard rough <= 1e17 else { throw refuse(String(format: "%.3g", rough / 1048576)) }
        let need = stages.reduce(0) { $0 + estimatedBytes(config: c, stage: $1.stage, batchSize: B, slots: $1.slots) }
        guard need <= limit else { throw refuse("\(need >> 20)") }
    }

    /// Throws when `estimatedBytes` of one stage exceeds `limit` (default `memoryLimit()`).
    public static func checkFits(config c: ModelConfig, stage s: StageSpec, batchSize B: Int, slots: Int,
                                 limit: Int = memoryLimit()) throws {
        try checkFits(config: c, stages: [(s, slots)], batchSize: B, limit: limit)
    }

    /// Allocates the stage and initialises its weights from `config.seed`. Each tensor's
    /// stream is derived from its global name, so any split gives the same weights.
    public init(config: ModelConfig, stage: StageSpec, batchSize: Int, slots: Int = 1) {
        self.config = config; self.stage = stage; self.batchSize = batchSize
        layout = ParamLayout(config: config, stage: stage)
        params = FloatBuffer(count: layout.count)
        grads = FloatBuffer(count: layout.count)
        let rp = config.subspace?.mode == .reparam
        p = StageParams(layout, params.ptr, stage, reparamMode: rp)
        g = StageParams(layout, grads.ptr, stage, reparamMode: rp)
        self.slots = (0..<max(1, slots)).map { _ in StageActivations(config: config, stage: stage, B: batchSize) }
        scratch = StageScratch(config: config, stage: stage, B: batchSize)
        rope = RoPETable(T: config.seqLen, headSize: config.headSize, base: config.ropeBase)
        let fixed = config.hasFixedEmbedding ? FixedEmbedding(config: config) : nil
        self.fixed = fixed
        if let s = config.subspace, let fixed {
            let d = config.dModel
            let basis = s.adaptive != nil ? Basis(d: d, k: s.rank, at: params.ptr + layout.tensor(Subspace.basisName)!.offset)
                                          : Basis(d: d, k: s.rank, seed: config.seed, name: Subspace.basisName)
            subspace = Subspace(basis: basis, fixed: fixed)
        } else {
            subspace = nil
        }
        var pj: [Int: Basis] = [:]
        if let p = config.projector {
            for l in p.boundaries {
                if let t = layout.tensor(ProjectorConfig.name(l)) { pj[l] = Basis(d: config.dModel, k: p.rank, at: params.ptr + t.offset) }
            }
        }
        projectors = pj
        kbuf = FloatBuffer(count: batchSize * config.seqLen * (config.subspace?.rank ?? config.projector?.rank ?? 0))
        initWeights()
    }

    public func initWeights() {
        for t in layout.tensors {
            let dst = params.ptr + t.offset
            if t.zeros {
                dst.initialize(repeating: 0, count: t.count)
            } else if t.manifold {
                Basis.seed(dst, d: t.shape[0], k: t.shape[1], seed: config.seed, name: t.name)
            } else if t.initStd == 0 {
                dst.initialize(repeating: 1, count: t.count)
            } else {
                var rng = SplitMix64(seed: SplitMix64.derive(config.seed, t.name))
                rng.fillNormal(dst, t.count, std: t.initStd)
            }
        }
        enforceConstraint()
    }

    // MARK: subspace constraint (projected mode; reparam keeps it by construction)

    /// The constrained tensors that hold full (in, d) weights: projected mode only.
    private var projectedTensors: [ParamTensor] {
        config.subspace?.mode == .projected ? layout.tensors.filter(\.subspace) : []
    }

    /// Projected mode: each constrained gradient G ← G·U·Uᵀ (before the norm and the
    /// optimizer). This is also what makes the wire's projected backward exact.
    public func projectGradients() {
        guard let sub = subspace else { return }
        for t in projectedTensors { projectRows(sub, grads.ptr + t.offset, t.shape[0]) }
    }

    /// Projected mode: each constrained weight W ← W·U·Uᵀ (after every optimizer step).
    public func enforceConstraint() {
        guard let sub = subspace else { return }
        for t in projectedTensors { projectRows(sub, params.ptr + t.offset, t.shape[0]) }
    }

    private func projectRows(_ sub: Subspace, _ w: UnsafeMutablePointer<Float>, _ rows: Int) {
        let scratchRows = max(1, kbuf.count / sub.k)
        var r = 0
        while r < rows {
            let n = min(scratchRows, rows - r)
            sub.project(w + r * sub.d, rows: n, scratch: kbuf.ptr)
            r += n
        }
    }

    /// The update every trainer applies once the global gradient norm is known — one
    /// process and each pipeline stage alike: clip to `train.gradClip`, AdamW on the
    /// Euclidean parameters, re-project (projected mode), step the manifold tensors.
    public func applyUpdate(step: Int, globalNorm: Double, optimizer: AdamW, train: TrainConfig) {
        let lr = train.schedule.lr(at: step)
        t(.optimizer) { optimizer.step(params: params, grads: grads, lr: lr, gradScale: AdamW.clipScale(globalNorm: globalNorm, maxNorm: train.gradClip)) }
        enforceConstraint()
        updateManifolds(step: step, lr: lr, optimizer: optimizer)
    }

    /// How the manifold tensors (adaptive U, projectors) train; nil when they stay fixed.
    public var manifoldTraining: ManifoldTraining? { config.subspace?.adaptive ?? config.projector?.training }

    /// The manifold tensors this stage holds.
    public var manifoldTensors: [ParamTensor] { layout.tensors.filter(\.manifold) }

    /// Steps every manifold tensor with its gradient, which must be complete by now (the
    /// pipeline adds the other stages' parts first), on the steps its cadence says; the
    /// moments live in the optimizer's m and v, so checkpoints keep them.
    public func updateManifolds(step: Int, lr: Float, optimizer: AdamW) {
        guard let tr = manifoldTraining, (step + 1) % tr.every == 0 else { return }
        for t in manifoldTensors {
            let o = t.offset
            GrassmannAdam.step(params.ptr + o, grad: grads.ptr + o, m: optimizer.m.ptr + o, v: optimizer.v.ptr + o,
                               d: t.shape[0], k: t.shape[1], lr: lr * tr.lrScale, t: (step + 1) / tr.every,
                               config: optimizer.config)
        }
    }

    /// The largest ‖W − W·U·Uᵀ‖/‖W‖ over this stage's constrained tensors, taking the
    /// effective weight W'·Uᵀ in reparam mode. Zero (to round-off) while the constraint holds.
    public func subspaceLeakage() -> Double {
        guard let sub = subspace else { return 0 }
        var worst = 0.0
        for t in layout.tensors where t.subspace {
            let rows = t.shape[0]
            if reparam {
                let eff = FloatBuffer(count: rows * sub.d)
                sub.expand(params.ptr + t.offset, rows: rows, into: eff.ptr, accumulate: false)
                worst = max(worst, sub.leakage(eff.ptr, rows: rows))
            } else {
                worst = max(worst, sub.leakage(params.ptr + t.offset, rows: rows))
            }
        }
        return worst
    }

    /// Bytes held by activations and scratch (for memory reports).
    public var activationBytes: Int { (slots.reduce(0) { $0 + $1.buffer.count } + scratch.buffer.count) * 4 }

    public func zeroGrad() { grads.zero() }

    /// Where a non-first stage's incoming activation (N, C) must be written before `forward`.
    public func input(slot: Int) -> UnsafeMutablePointer<Float> { slots[slot].input }

    /// The residual stream (N, C) this stage hands to the next, valid after `forward`.
    public func output(slot: Int) -> UnsafePointer<Float> { UnsafePointer(slots[slot].output) }

    /// The gradient (N, C) of this stage's input, valid after `backward` until the next one.
    public var inputGradient: UnsafePointer<Float> { UnsafePointer(scratch.dres) }

    /// Logits (N, V) of the last forward on `slot` (last stage only).
    public func logits(slot: Int) -> UnsafePointer<Float>? { slots[slot].logits.map { UnsafePointer($0) } }

    /// Runs the stage forward on one micro-batch. `ids` (N) are the micro-batch's token ids
    /// (every stage gets them); `targets` (N) are needed on the last stage. Returns the mean
    /// loss on the last stage, nil elsewhere.
    @discardableResult
    public func forward(slot: Int, ids: UnsafePointer<Int32>, targets: UnsafePointer<Int32>? = nil) -> Float? {
        let a = slots[slot]
        let N = tokensPerMicrobatch, C = config.dModel
        a.ids.update(from: ids, count: N)
        if stage.hasEmbedding {
            if let sub = subspace, reparam {
                // X0 = E_fixed[ids] + E'[ids]·Uᵀ.
                embeddingForward(kbuf.ptr, ids, p.wte!, N, sub.k)
                sub.expand(kbuf.ptr, rows: N, into: a.input, accumulate: false)
            } else {
                // Dense, projected-mode (kept in span(U)) or projector-model (dense) E_S.
                embeddingForward(a.input, ids, p.wte!, N, C)
            }
            fixed?.add(a.input, ids: ids, n: N)
        }
        var x = UnsafePointer(a.input)
        for (i, lp) in p.layers.enumerated() {
            if let e = lp.emb, let xin = a.layers[i].xin {
                // The block reads X + P_l[ids]; the stream it passes on leaves P_l[ids] out.
                t(.embedding) { embeddingAdd(xin, x, a.ids, e, N, C) }
                layerForward(UnsafePointer(xin), a.layers[i], lp)
                t(.embedding) { embeddingForward(a.layers[i].res2, a.ids, e, N, C, accumulate: true, sign: -1) }
            } else {
                layerForward(x, a.layers[i], lp)
            }
            if let basis = projectors[stage.layers.lowerBound + i] { projectorForward(a.layers[i], basis, a.ids) }
            x = UnsafePointer(a.layers[i].out)
        }
        guard stage.hasHead else { return nil }
        guard let targets else { preconditionFailure("forward on the last stage needs targets") }
        a.targets.update(from: targets, count: N)
        t(.norm) { rmsnormForward(a.lnf!, a.lnfRstd!, x, p.lnf!, N, C, eps: config.normEps) }
        t(.head) { linearForward(a.logits!, a.lnf!, p.lmHead!, N, C, config.vocabSize) }
        return t(.crossEntropy) { crossEntropyForward(a.losses!, a.lse!, a.logits!, a.targets, N, config.vocabSize) }
    }

    /// Backward for one micro-batch, accumulating into `grads`. `lossScale` multiplies the
    /// per-token loss gradient (1/(N·M) averages over M micro-batches of N tokens).
    public func backward(slot: Int, dOutput: UnsafePointer<Float>? = nil, lossScale: Float) {
        let a = slots[slot]
        let N = tokensPerMicrobatch, C = config.dModel, V = config.vocabSize
        let s = scratch
        if stage.hasHead {
            let xLast = UnsafePointer(a.output)
            t(.crossEntropy, true) { crossEntropyBackward(s.dlogits!, a.logits!, a.lse!, a.targets, N, V, scale: lossScale) }
            t(.head, true) { linearBackward(s.dln, g.lmHead!, s.dlogits!, a.lnf!, p.lmHead!, N, C, V) }
            s.dres.initialize(repeating: 0, count: N * C)
            t(.norm, true) { rmsnormBackward(s.dres, g.lnf!, s.dln, xLast, p.lnf!, a.lnfRstd!, N, C) }
        } else {
            guard let dOutput else { preconditionFailure("backward on a non-last stage needs dOutput") }
            s.dres.update(from: dOutput, count: N * C)
        }
        let lo = stage.layers.lowerBound
        for i in stride(from: p.layers.count - 1, through: 0, by: -1) {
            if let basis = projectors[lo + i] {
                // The last block's projector gets the rest of its gradient on the next stage.
                projectorBackward(a.layers[i], basis, grad(lo + i), a.ids, downstreamHalf: i < p.layers.count - 1 || stage.hasHead)
            }
            let x = i == 0 ? UnsafePointer(a.input) : UnsafePointer(a.layers[i - 1].out)
            if let ge = g.layers[i].emb, let xin = a.layers[i].xin {
                // out = block(X + P[ids]) − P[ids]: dP[ids] += dX − dOut, and dX passes on.
                t(.embedding, true) { embeddingBackward(ge, s.dres, a.ids, N, C, sign: -1) }
                layerBackward(UnsafePointer(xin), a.layers[i], p.layers[i], g.layers[i])
                t(.embedding, true) { embeddingBackward(ge, s.dres, a.ids, N, C) }
            } else {
                layerBackward(x, a.layers[i], p.layers[i], g.layers[i])
            }
        }
        if let basis = projectors[lo - 1], let fixed {
            // This stage's input crossed projector lo−1: its downstream half, G_Xᵀ·C with
            // C = (X − E_fixed)·A rebuilt from the input.
            s.dln.update(from: a.input, count: N * C)
            fixed.add(s.dln, ids: a.ids, n: N, sign: -1)
            basis.coordinates(s.dln, rows: N, into: kbuf.ptr)
            basis.accumulateOuter(s.dres, kbuf.ptr, rows: N, into: grad(lo - 1))
        }
        if let sub = subspace, adaptive, !stage.hasEmbedding {
            // dU at a pipeline stage's input. Every upstream write c_w·Uᵀ needs the full
            // gradient of the residual stream, but the wire carries only its part in span(U);
            // the rest, D = G_X − (G_X·U)·Uᵀ, reaches every upstream write unchanged (blocks
            // write into span(U), so their backward adds nothing along D). Its share of dU is
            // Σ_w Dᵀ·c_w = Dᵀ·C with C = Σ_w c_w = (X − E_fixed)·U, the received coordinates:
            // added here, the all-reduced dU equals the one-process gradient.
            sub.coordinates(s.dres, rows: N, into: kbuf.ptr)
            s.dln.update(from: s.dres, count: N * C)
            sub.expand(kbuf.ptr, rows: N, into: s.dln, accumulate: false)
            for i in 0..<(N * C) { s.dln[i] = s.dres[i] - s.dln[i] }      // D
            s.datty.update(from: a.input, count: N * C)
            sub.addFixed(s.datty, ids: a.ids, n: N, sign: -1)
            sub.coordinates(s.datty, rows: N, into: kbuf.ptr)              // C
            sub.basis.accumulateOuter(s.dln, kbuf.ptr, rows: N, into: uGrad!)
        }
        if stage.hasEmbedding {
            if let sub = subspace, reparam {
                sub.coordinates(s.dres, rows: N, into: kbuf.ptr)
                embeddingBackward(g.wte!, kbuf.ptr, a.ids, N, sub.k)
                if adaptive {
                    // X0 = E'[ids]·Uᵀ + …: dU += dX0ᵀ·E'[ids].
                    embeddingForward(s.dln, a.ids, p.wte!, N, sub.k)
                    sub.basis.accumulateOuter(s.dres, s.dln, rows: N, into: uGrad!)
                }
            } else {
                embeddingBackward(g.wte!, s.dres, a.ids, N, C)
            }
        }
    }

    /// Gradient slot of projector `layer` (a stage holds only its own).
    private func grad(_ layer: Int) -> UnsafeMutablePointer<Float> {
        grads.ptr + layout.tensor(ProjectorConfig.name(layer))!.offset
    }
    /// Gradient slot of an adaptive U.
    private var uGrad: UnsafeMutablePointer<Float>? {
        layout.tensor(Subspace.basisName).map { grads.ptr + $0.offset }
    }

    // X' = E_fixed + ((X − E_fixed)·A)·Aᵀ: what crosses the boundary after this block.
    private func projectorForward(_ a: LayerActs, _ basis: Basis, _ ids: UnsafePointer<Int32>) {
        let N = tokensPerMicrobatch, C = config.dModel
        let out = a.projOut!
        out.update(from: a.res2, count: N * C)
        fixed!.add(out, ids: ids, n: N, sign: -1)
        basis.coordinates(out, rows: N, into: a.projC!)
        basis.expand(a.projC!, rows: N, into: out, accumulate: false)
        fixed!.add(out, ids: ids, n: N)
    }

    // With R = X − E_fixed, C = R·A and G the gradient of X': dR = G·A·Aᵀ and
    // dA = Rᵀ·(G·A) + Gᵀ·C. The first (upstream) half needs R, the second (downstream) half
    // the full G: across a stage boundary each side computes its own and the pipeline adds them.
    private func projectorBackward(_ a: LayerActs, _ basis: Basis, _ dA: UnsafeMutablePointer<Float>,
                                   _ ids: UnsafePointer<Int32>, downstreamHalf: Bool) {
        let N = tokensPerMicrobatch, C = config.dModel, s = scratch
        if downstreamHalf { basis.accumulateOuter(s.dres, a.projC!, rows: N, into: dA) }
        basis.coordinates(s.dres, rows: N, into: kbuf.ptr)          // G·A
        s.dln.update(from: a.res2, count: N * C)
        fixed!.add(s.dln, ids: ids, n: N, sign: -1)                 // R
        basis.accumulateOuter(s.dln, kbuf.ptr, rows: N, into: dA)   // Rᵀ·(G·A)
        basis.expand(kbuf.ptr, rows: N, into: s.dres, accumulate: false)
    }

    // X_next = H + relu²(Norm(H)·W_fc)·W_2, with H = X + Attn(Norm(X))·W_O.
    private func layerForward(_ x: UnsafePointer<Float>, _ a: LayerActs, _ w: LayerParams) {
        let B = batchSize, T = config.seqLen, C = config.dModel, H = config.mlpHidden, NH = config.nHead
        let N = B * T, eps = config.normEps
        t(.norm) { rmsnormForward(a.ln1, a.ln1Rstd, x, w.ln1, N, C, eps: eps) }
        t(.qkv) { linearForward(a.qkv, a.ln1, w.qkv, N, C, 3 * C) }
        progress?()
        t(.rope) { ropeApply(a.qkv, rope, B, T, C, NH) }
        t(.attention) { attentionForward(a.atty, a.att, a.qkv, B, T, C, NH) }
        progress?()
        t(.residual) { a.res1.update(from: x, count: N * C) }
        t(.attnProj) { residualProject(a.res1, a.atty, w.attProj, C, w.reparam, saved: a.attnC, rstd: a.attnR) }
        t(.norm) { rmsnormForward(a.ln2, a.ln2Rstd, a.res1, w.ln2, N, C, eps: eps) }
        t(.fc) { linearForward(a.fch, a.ln2, w.fc, N, C, H) }
        progress?()
        t(.relu2) { reluSquaredForward(a.fca, a.fch, N * H) }
        t(.residual) { a.res2.update(from: a.res1, count: N * C) }
        t(.fcProj) { residualProject(a.res2, a.fca, w.fcProj, H, w.reparam, saved: a.fcC, rstd: a.fcR) }
        progress?()
    }

    /// res (N, C) += y, the sublayer's write: y = inp (N, IN) · W, or through the subspace
    /// y = (inp·W')·Uᵀ; with the sublayer norm y ← y / rms(y), rms taken over the d values
    /// written (for coordinates c: ‖c·Uᵀ‖ = ‖c‖, so rms = ‖c‖/√d). The write before its norm
    /// goes to `saved` (and 1/rms to `rstd`) when a backward needs it.
    private func residualProject(_ res: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>,
                                 _ w: UnsafePointer<Float>, _ IN: Int, _ viaSubspace: Bool,
                                 saved: UnsafeMutablePointer<Float>?, rstd: UnsafeMutablePointer<Float>?) {
        let N = tokensPerMicrobatch, C = config.dModel
        if viaSubspace, let sub = subspace {
            let c = saved ?? kbuf.ptr
            linearForward(c, inp, w, N, IN, sub.k)
            if let rstd {
                gainFreeNormForward(kbuf.ptr, rstd, c, N, sub.k, over: C, eps: config.normEps)
                sub.expand(kbuf.ptr, rows: N, into: res, accumulate: true)
            } else {
                sub.expand(c, rows: N, into: res, accumulate: true)
            }
        } else if let rstd, let y = saved {
            linearForward(y, inp, w, N, IN, C)
            gainFreeNormForward(y, rstd, y, N, C, over: C, eps: config.normEps, accumulateInto: res)
        } else {
            linearForward(res, inp, w, N, IN, C, accumulate: true)
        }
    }

    /// Backward of `residualProject`: dinp (N, IN) = dy·Wᵀ (through U when reparam) and
    /// dW += inpᵀ·dy, with dy the gradient of the write before its norm; dU += dresᵀ·z when U
    /// is trained (the write is z·Uᵀ, z the normed coordinates). `scratchA`/`scratchB` hold
    /// N·C floats each and are free during this call.
    private func residualProjectBackward(_ dinp: UnsafeMutablePointer<Float>, _ dw: UnsafeMutablePointer<Float>,
                                         _ dres: UnsafePointer<Float>, _ inp: UnsafePointer<Float>,
                                         _ w: UnsafePointer<Float>, _ IN: Int, _ viaSubspace: Bool,
                                         saved: UnsafePointer<Float>?, rstd: UnsafePointer<Float>?,
                                         scratchA: UnsafeMutablePointer<Float>, scratchB: UnsafeMutablePointer<Float>) {
        let N = tokensPerMicrobatch, C = config.dModel
        if viaSubspace, let sub = subspace {
            let k = sub.k
            if let ug = uGrad, let c = saved {
                if let rstd {  // z = c·r
                    for i in 0..<N { let r = rstd[i]; for j in 0..<k { scratchB[i * k + j] = c[i * k + j] * r } }
                    sub.basis.accumulateOuter(dres, scratchB, rows: N, into: ug)
                } else {
                    sub.basis.accumulateOuter(dres, c, rows: N, into: ug)
                }
            }
            sub.coordinates(dres, rows: N, into: kbuf.ptr)                 // dz
            if let rstd, let c = saved {
                gainFreeNormBackward(scratchA, kbuf.ptr, c, rstd, N, k, over: C)
                linearBackward(dinp, dw, scratchA, inp, w, N, IN, k)
            } else {
                linearBackward(dinp, dw, kbuf.ptr, inp, w, N, IN, k)
            }
        } else if let rstd, let y = saved {
            gainFreeNormBackward(scratchA, dres, y, rstd, N, C, over: C)
            linearBackward(dinp, dw, scratchA, inp, w, N, IN, C)
        } else {
            linearBackward(dinp, dw, dres, inp, w, N, IN, C)
        }
    }

    // On entry scratch.dres holds dL/dX_next; on exit it holds dL/dX. The residual adds
    // pass the gradient through unchanged, so one buffer carries it across the block.
    private func layerBackward(_ x: UnsafePointer<Float>, _ a: LayerActs, _ w: LayerParams, _ dw: LayerParams) {
        let B = batchSize, T = config.seqLen, C = config.dModel, H = config.mlpHidden, NH = config.nHead
        let N = B * T, s = scratch
        t(.fcProj, true) {
            residualProjectBackward(s.dfc, dw.fcProj, s.dres, a.fca, w.fcProj, H, w.reparam, saved: a.fcC, rstd: a.fcR,
                                    scratchA: s.datty, scratchB: s.dqkv)
        }
        progress?()
        t(.relu2, true) { reluSquaredBackward(s.dfc, s.dfc, a.fch, N * H) }
        t(.fc, true) { linearBackward(s.dln, dw.fc, s.dfc, a.ln2, w.fc, N, C, H) }
        progress?()
        t(.norm, true) { rmsnormBackward(s.dres, dw.ln2, s.dln, a.res1, w.ln2, a.ln2Rstd, N, C) }
        t(.attnProj, true) {
            residualProjectBackward(s.datty, dw.attProj, s.dres, a.atty, w.attProj, C, w.reparam, saved: a.attnC, rstd: a.attnR,
                                    scratchA: s.dln, scratchB: s.dqkv)
        }
        t(.attention, true) { attentionBackward(s.dqkv, s.datt, s.datty, a.qkv, a.att, B, T, C, NH) }
        progress?()
        t(.rope, true) { ropeApply(s.dqkv, rope, B, T, C, NH, inverse: true) }
        t(.qkv, true) { linearBackward(s.dln, dw.qkv, s.dqkv, a.ln1, w.qkv, N, C, 3 * C) }
        t(.norm, true) { rmsnormBackward(s.dres, dw.ln1, s.dln, x, w.ln1, a.ln1Rstd, N, C) }
        progress?()
    }

    /// Σ grad² over this stage's Euclidean parameters (the global norm all-reduces these;
    /// manifold tensors have their own optimiser and are left out).
    public func gradSumSquares() -> Double {
        var s: Double = 0
        let gp = grads.ptr, n = layout.euclideanCount
        var i = 0
        while i < n {
            let hi = min(n, i + 4096)
            var part: Float = 0
            for j in i..<hi { part += gp[j] * gp[j] }
            s += Double(part); i = hi
        }
        return s
    }

    /// Forward FLOPs per token of this stage's matmuls (attention counted causally).
    public var forwardFlopsPerToken: Double {
        let C = Double(config.dModel), H = Double(config.mlpHidden), T = Double(config.seqLen)
        let perLayer = 2 * (3 * C * C + C * C + 2 * C * H) + 2 * 2 * C * (T + 1) / 2
        return Double(stage.layers.count) * perLayer + (stage.hasHead ? 2 * C * Double(config.vocabSize) : 0)
    }
}
