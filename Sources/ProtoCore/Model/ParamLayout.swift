// Names, shapes and offsets of a stage's parameters inside its one parameter buffer.

/// One parameter tensor inside the stage's flat buffer.
public struct ParamTensor: Sendable {
    public let name: String        // e.g. "h3.fc" (global layer index, so names match across splits)
    public let shape: [Int]
    public let offset: Int
    public let decay: Bool         // AdamW weight decay applies (matrices yes, norm gains no)
    public let initStd: Float      // 0 means "initialise to ones" (norm gains), unless `zeros`
    /// Starts at zero (per-layer token embeddings).
    public let zeros: Bool
    /// Writes into the residual stream under the subspace constraint: shape (in, k) in
    /// reparam mode, (in, d) kept in span(U) in projected mode.
    public let subspace: Bool
    /// An orthonormal basis (d, k) trained on the Grassmann manifold (adaptive U, projectors):
    /// not in AdamW, not in the clipped gradient norm; its gradient may be split over stages.
    public let manifold: Bool
    public var count: Int { shape.reduce(1, *) }
}

/// The ordered list of a stage's tensors. The order is the checkpoint and fixture order;
/// manifold tensors come last, so AdamW and the gradient norm cover one prefix.
public struct ParamLayout: Sendable {
    public private(set) var tensors: [ParamTensor] = []
    public private(set) var count = 0
    /// Values before the first manifold tensor (all of them when there is none).
    public private(set) var euclideanCount = 0

    public init(config c: ModelConfig, stage: StageSpec) {
        let C = c.dModel, H = c.mlpHidden, V = c.vocabSize
        let residualStd = c.initStd / (2 * Float(c.nLayer)).squareRoot()
        // Output width of a constrained tensor: k coordinates (reparam) or d (projected).
        let out = c.subspace.map { $0.mode == .reparam ? $0.rank : C } ?? C
        if stage.hasEmbedding { add("wte", [V, out], decay: true, std: c.initStd, subspace: c.subspace != nil) }
        // (projector models: wte is E_S, dense; E_fixed is added to it)
        for l in stage.layers {
            let sub = c.isConstrained(layer: l)
            add("h\(l).ln1", [C], decay: false, std: 0)
            add("h\(l).qkv", [C, 3 * C], decay: true, std: c.initStd)
            add("h\(l).attn_proj", [C, sub ? out : C], decay: true, std: residualStd, subspace: sub)
            add("h\(l).ln2", [C], decay: false, std: 0)
            add("h\(l).fc", [C, H], decay: true, std: c.initStd)
            add("h\(l).fc_proj", [H, sub ? out : C], decay: true, std: residualStd, subspace: sub)
            if c.hasLayerEmbedding { add("h\(l).emb", [V, C], decay: true, std: 0, zeros: true) }
        }
        if stage.hasHead {
            add("lnf", [C], decay: false, std: 0)
            add("lm_head", [C, V], decay: true, std: c.initStd)
        }
        euclideanCount = count
        if let s = c.subspace, s.adaptive != nil { add(Subspace.basisName, [C, s.rank], decay: false, std: 1, manifold: true) }
        if let p = c.projector {
            // A stage holds the projector after each of its layers and the one its input crossed.
            for l in p.boundaries where stage.layers.contains(l) || l == stage.layers.lowerBound - 1 {
                add(ProjectorConfig.name(l), [C, p.rank], decay: false, std: 1, manifold: true)
            }
        }
    }

    private mutating func add(_ name: String, _ shape: [Int], decay: Bool, std: Float, subspace: Bool = false,
                              manifold: Bool = false, zeros: Bool = false) {
        let t = ParamTensor(name: name, shape: shape, offset: count, decay: decay, initStd: std, zeros: zeros,
                            subspace: subspace, manifold: manifold)
        tensors.append(t)
        count += t.count
    }

    public func tensor(_ name: String) -> ParamTensor? { tensors.first { $0.name == name } }
}
