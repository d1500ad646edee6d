// A model variant as the benchmarks name it: a codec word plus model levers (SPEC §2), e.g.
// `subspace:16:int8+efixed=1+norm`. The levers change the model, so a variant is compared
// with dense at equal tokens like any codec.
import ProtoCore

public struct Variant: Equatable, Sendable, CustomStringConvertible {
    public var spec: CodecSpec
    /// E_fixed's standard deviation (+efixed=STD).
    public var efixed: Float?
    /// Gain-free RMSNorm on sublayer outputs (+norm).
    public var norm = false
    /// MLP width (+mlp=WIDTH), or the dense model's parameter count (+mlp=equal).
    public var mlp: MLPWidth?
    /// Per-layer token embeddings (+layeremb): every block reads X + P_l[ids].
    public var layerEmbedding = false

    public enum MLPWidth: Equatable, Sendable { case width(Int), equalParameters }

    public init(spec: CodecSpec, efixed: Float? = nil, norm: Bool = false, mlp: MLPWidth? = nil, layerEmbedding: Bool = false) {
        self.spec = spec; self.efixed = efixed; self.norm = norm; self.mlp = mlp; self.layerEmbedding = layerEmbedding
    }

    public static let leverSyntax = "+efixed=STD (E_fixed's standard deviation), +norm (gain-free RMSNorm on sublayer outputs), +mlp=WIDTH or +mlp=equal (MLP width matching the dense model's parameter count), +layeremb (a trainable token embedding per block, added to what the block reads)"

    /// Parses `CODEC[+efixed=STD][+norm][+mlp=WIDTH|equal][+layeremb]`.
    public static func parse(_ text: String) throws -> Variant {
        let parts = text.split(separator: "+", omittingEmptySubsequences: false).map(String.init)
        var v = Variant(spec: try CodecSpec.parse(parts[0]))
        for p in parts.dropFirst() {
            let kv = p.split(separator: "=", maxSplits: 1).map(String.init)
            switch (kv.first ?? "", kv.count) {
            case ("efixed", 2):
                guard let x = Float(kv[1]), x > 0, x.isFinite else { throw ConfigError.problem("'\(text)': efixed=STD needs a positive number") }
                v.efixed = x
            case ("norm", 1):
                v.norm = true
            case ("layeremb", 1):
                v.layerEmbedding = true
            case ("mlp", 2):
                if kv[1] == "equal" { v.mlp = .equalParameters }
                else if let w = Int(kv[1]), w >= 1 { v.mlp = .width(w) }
                else { throw ConfigError.problem("'\(text)': mlp=WIDTH needs a whole number, or mlp=equal") }
            default:
                throw ConfigError.problem("'\(text)': after the codec word, + takes \(leverSyntax)")
            }
        }
        return v
    }

    /// Which of `variants` the others are measured against: plain `dense` (no levers) if listed,
    /// else the first dense-codec variant (e.g. `dense+norm`), else none.
    public static func referenceIndex(_ variants: [Variant]) -> Int? {
        variants.firstIndex { $0.description == "dense" } ?? variants.firstIndex { $0.spec.kind == .dense }
    }

    /// The word `parse` reads back.
    public var description: String {
        spec.description + (efixed.map { "+efixed=\(Self.short($0))" } ?? "") + (norm ? "+norm" : "")
            + (mlp.map { m -> String in if case let .width(w) = m { return "+mlp=\(w)" } else { return "+mlp=equal" } } ?? "")
            + (layerEmbedding ? "+layeremb" : "")
    }

    /// The model this variant trains: `base` with the levers and the codec's shape applied.
    public func config(_ base: ModelConfig, split: [Int]) throws -> ModelConfig {
        var c = base
        if efixed != nil && spec.kind != .subspace && spec.kind != .projector {
            throw ConfigError.problem("'\(description)': +efixed applies to subspace and projector models only (a \(spec.kind.rawValue) model has no E_fixed)")
        }
        if let e = efixed { c.fixedEmbeddingStd = e }
        if norm { c.sublayerNorm = true }
        if layerEmbedding { c.layerEmbedding = true }
        try spec.apply(to: &c, split: split)
        switch mlp {
        case .width(let w): c.mlpHidden = w
        case .equalParameters: c.mlpHidden = c.mlpHidden(matching: base.parameterCount)
        case nil: break
        }
        try c.validate()
        return c
    }

    /// A short name for tables, e.g. "subspace k=16 int8 E_fixed σ=1 +norm".
    public func label(_ base: ModelConfig, split: [Int]) throws -> String {
        let c = try config(base, split: split)
        return spec.label(dModel: base.dModel) + (efixed.map { " E_fixed σ=\(Self.short($0))" } ?? "")
            + (norm ? " +norm" : "") + (mlp != nil ? " MLP \(c.mlpHidden)" : "") + (layerEmbedding ? " +layer emb" : "")
    }

    static func short(_ x: Float) -> String { x == x.rounded() && abs(x) < 1e6 ? String(Int(x)) : "\(x)" }
}
