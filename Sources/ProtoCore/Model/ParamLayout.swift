// Names, shapes and offsets of a stage's parameters inside its one parameter buffer.

/// One parameter tensor inside the stage's flat buffer.
public struct ParamTensor: Sendable {
    public let name: String        // e.g. "h3.fc" (global layer index, so names match across splits)
    public let shape: [Int]
    public let offset: Int
    public let decay: Bool         // AdamW weight decay applies (matrices yes, norm gains no)
    public let initStd: Float      // 0 means "initialise to ones" (norm gains)
    public var count: Int { shape.reduce(1, *) }
}

/// The ordered list of a stage's tensors. The order is the checkpoint and fixture order.
public struct ParamLayout: Sendable {
    public private(set) var tensors: [ParamTensor] = []
    public private(set) var count = 0

    public init(config c: ModelConfig, stage: StageSpec) {
        let C = c.dModel, H = c.mlpHidden, V = c.vocabSize
        let residualStd = c.initStd / (2 * Float(c.nLayer)).squareRoot()
        if stage.hasEmbedding { add("wte", [V, C], decay: true, std: c.initStd) }
        for l in stage.layers {
            add("h\(l).ln1", [C], decay: false, std: 0)
            add("h\(l).qkv", [C, 3 * C], decay: true, std: c.initStd)
            add("h\(l).attn_proj", [C, C], decay: true, std: residualStd)
            add("h\(l).ln2", [C], decay: false, std: 0)
            add("h\(l).fc", [C, H], decay: true, std: c.initStd)
            add("h\(l).fc_proj", [H, C], decay: true, std: residualStd)
        }
        if stage.hasHead {
            add("lnf", [C], decay: false, std: 0)
            add("lm_head", [C, V], decay: true, std: c.initStd)
        }
    }

    private mutating func add(_ name: String, _ shape: [Int], decay: Bool, std: Float) {
        let t = ParamTensor(name: name, shape: shape, offset: count, decay: decay, initStd: std)
        tensors.append(t)
        count += t.count
    }

    public func tensor(_ name: String) -> ParamTensor? { tensors.first { $0.name == name } }
}
