// The model's shape and its named presets. Saved into every run log and checkpoint.

/// GPT decoder shape. B, T, C, V, NH mean the same everywhere in protomodel.
public struct ModelConfig: Codable, Equatable, Sendable {
    /// V: vocabulary size (must match the tokenizer).
    public var vocabSize: Int
    /// T: sequence length (tokens per row of a micro-batch).
    public var seqLen: Int
    /// L: number of transformer blocks.
    public var nLayer: Int
    /// NH: attention heads; head size is dModel / nHead and must be even (RoPE).
    public var nHead: Int
    /// C: model width.
    public var dModel: Int
    /// MLP hidden width (4·C by default).
    public var mlpHidden: Int
    public var ropeBase: Float = 10000
    public var normEps: Float = 1e-5
    /// Standard deviation of the initial weights; residual output projections use initStd / sqrt(2L).
    public var initStd: Float = 0.02
    /// Seed for the initial weights (and the shared subspace U, E_fixed).
    public var seed: UInt64 = 1337
    /// Protocol Models subspace constraint (nil: the ordinary dense model).
    public var subspace: SubspaceConfig? = nil
    /// Learned per-boundary projections (SPEC §2, way 2; nil: none). Exclusive with `subspace`.
    public var projector: ProjectorConfig? = nil
    /// Standard deviation of E_fixed (nil: initStd). The authors' entries draw it N(0, 1).
    public var fixedEmbeddingStd: Float? = nil
    /// Gain-free RMSNorm on every sublayer output before it joins the residual stream
    /// (the authors' production config; keeps writes in span(U)). nil/false: off.
    public var sublayerNorm: Bool? = nil
    public var normalizesSublayers: Bool { sublayerNorm ?? false }
    /// Per-layer token embeddings: block l owns a trainable table P_l (V, C), zero at start,
    /// and reads X + P_l[ids]; the stream it passes on is X plus its writes, without P_l[ids].
    /// Nothing more crosses a boundary (every stage holds the micro-batch's token ids), and a
    /// subspace model's stream stays in E_fixed[ids] + span(U). nil/false: off.
    public var layerEmbedding: Bool? = nil
    public var hasLayerEmbedding: Bool { layerEmbedding ?? false }

    public init(vocabSize: Int, seqLen: Int, nLayer: Int, nHead: Int, dModel: Int,
                mlpHidden: Int? = nil, seed: UInt64 = 1337) {
        self.vocabSize = vocabSize; self.seqLen = seqLen; self.nLayer = nLayer
        self.nHead = nHead; self.dModel = dModel; self.mlpHidden = mlpHidden ?? 4 * dModel
        self.seed = seed
    }

    public var headSize: Int { dModel / nHead }

    /// Checks every field; the error names the field and what would be valid.
    public func validate() throws {
        func bad(_ field: String, _ why: String) -> ConfigError { .invalid(field: field, reason: why) }
        // Upper bounds keep every size product far from Int overflow and every matrix
        // dimension within the 32-bit sizes BLAS takes.
        if vocabSize < 2 || vocabSize > 65536 { throw bad("vocab-size", "\(vocabSize) must be in 2...65536 (tokens are stored as uint16)") }
        if seqLen < 1 || seqLen > 1 << 20 { throw bad("seq-len", "\(seqLen) must be in 1...\(1 << 20)") }
        if nLayer < 1 || nLayer > 4096 { throw bad("n-layer", "\(nLayer) must be in 1...4096") }
        if nHead < 1 || nHead > 4096 { throw bad("n-head", "\(nHead) must be in 1...4096") }
        if dModel < 2 || dModel > 1 << 16 || dModel % nHead != 0 { throw bad("d-model", "\(dModel) must be a multiple of n-head (\(nHead)) in 2...\(1 << 16)") }
        if headSize % 2 != 0 { throw bad("d-model", "head size \(headSize) = d-model/n-head must be even for RoPE") }
        if mlpHidden < 1 || mlpHidden > 1 << 20 { throw bad("mlp-hidden", "\(mlpHidden) must be in 1...\(1 << 20)") }
        if !(normEps > 0 && normEps.isFinite) { throw ConfigError.problem("norm eps \(normEps) must be a positive number") }
        if let s = subspace, s.rank < 1 || s.rank >= dModel {
            throw bad("rank-k", "\(s.rank) must be in 1..<d-model (\(dModel)); the subspace must be smaller than the model width")
        }
        if let a = subspace?.adaptive {
            if subspace?.mode != .reparam { throw ConfigError.problem("an adaptive U needs the reparam subspace mode (projected mode keeps a fixed U)") }
            try a.validate()
        }
        if let p = projector {
            if subspace != nil { throw ConfigError.problem("a model has either a shared subspace or per-boundary projectors, not both") }
            if p.rank < 1 || p.rank >= dModel { throw bad("rank-k", "\(p.rank) must be in 1..<d-model (\(dModel))") }
            if p.boundaries != p.boundaries.sorted() || Set(p.boundaries).count != p.boundaries.count
                || p.boundaries.contains(where: { $0 < 0 || $0 >= nLayer - 1 }) {
                throw ConfigError.problem("projector boundaries \(p.boundaries) must be distinct, increasing layer indices in 0..<\(nLayer - 1)")
            }
            try p.training?.validate()
        }
        if let e = fixedEmbeddingStd, !(e > 0 && e.isFinite) { throw bad("efixed-std", "\(e) must be a positive number") }
    }

    /// Whether block `layer`'s W_O and W_2 are kept in span(U): every block but the last,
    /// whose output never crosses a stage boundary (the last stage always holds it).
    public func isConstrained(layer: Int) -> Bool { subspace != nil && layer < nLayer - 1 }

    /// Whether the model adds E_fixed[ids] to its embedding (subspace and projector models).
    public var hasFixedEmbedding: Bool { subspace != nil || projector != nil }

    /// Named presets: `tiny` for tests, `small` (default) trains in minutes on 2 cores and
    /// has 8 layers so `mpirun -np 8` gives one block per stage, `engine` is the engine
    /// benchmark shape (d=256, 4 layers, 4 heads, seq 256, vocab 256).
    public static func preset(_ name: String) throws -> ModelConfig {
        switch name {
        case "tiny": return ModelConfig(vocabSize: 64, seqLen: 16, nLayer: 2, nHead: 2, dModel: 32)
        case "small": return ModelConfig(vocabSize: 1024, seqLen: 128, nLayer: 8, nHead: 4, dModel: 128)
        case "engine": return ModelConfig(vocabSize: 256, seqLen: 256, nLayer: 4, nHead: 4, dModel: 256)
        case "medium": return ModelConfig(vocabSize: 1024, seqLen: 256, nLayer: 8, nHead: 8, dModel: 256)
        default: throw ConfigError.invalid(field: "preset", reason: "unknown preset '\(name)'; choose one of \(presetNames.joined(separator: ", "))")
        }
    }

    public static let presetNames = ["tiny", "small", "engine", "medium"]

    /// Parameter count of the whole model.
    public var parameterCount: Int { ParamLayout(config: self, stage: .whole(self)).count }

    /// The MLP width (a multiple of 16) that brings the parameter count closest to `target`:
    /// the parameters a subspace model frees, reinvested in its MLPs (SPEC §2 levers).
    public func mlpHidden(matching target: Int) -> Int {
        var best = mlpHidden, bestGap = Int.max
        var c = self
        for h in stride(from: 16, through: 16 * mlpHidden, by: 16) {
            c.mlpHidden = h
            let gap = abs(c.parameterCount - target)
            if gap < bestGap { best = h; bestGap = gap }
        }
        return best
    }
}

/// Learned per-boundary projections: after each boundary layer l the residual stream becomes
/// E_fixed[ids] + (X − E_fixed[ids])·A_l·A_lᵀ, with A_l (d×k) orthonormal and trained on the
/// Grassmann manifold (fixed at its seed when `training` is nil). Writes are dense.
public struct ProjectorConfig: Codable, Equatable, Sendable {
    public var rank: Int
    /// Layers after which a projection sits (the pipeline's stage boundaries).
    public var boundaries: [Int]
    public var training: ManifoldTraining?
    public init(rank: Int, boundaries: [Int], training: ManifoldTraining? = ManifoldTraining()) {
        self.rank = rank; self.boundaries = boundaries; self.training = training
    }
    public static func name(_ layer: Int) -> String { "proj\(layer).A" }
}

extension ManifoldTraining {
    func validate() throws {
        if every < 1 { throw ConfigError.problem("codec setting every=\(every) must be at least 1") }
        if !(lrScale > 0 && lrScale.isFinite) { throw ConfigError.problem("codec setting ulr=\(lrScale) must be a positive number") }
    }
}

public enum ConfigError: Error, CustomStringConvertible, Equatable {
    /// A flag's value is wrong: reads "--FIELD REASON", where REASON starts with the value.
    case invalid(field: String, reason: String)
    /// A setting without a flag of its own (or a combination) is wrong.
    case problem(String)
    public var description: String {
        switch self {
        case let .invalid(field, reason): return "--\(field) \(reason)"
        case let .problem(text): return text
        }
    }
}
