// A wire codec with its settings, as a value: parsed from one word (`subspace:16:int8`),
// applied to the model shape (subspace models are different models), named in tables and
// logs, and turned into a codec per stage. Adding a codec means a case here and its class.
import ProtoCore

/// The codec names the command line accepts.
public enum CodecKind: String, CaseIterable, Sendable {
    case dense, bf16, int8, int4, fp8, topk, subspace, projector
}

/// One wire codec and its settings: dense, bf16, int8, int4, fp8, topk[:FRACTION],
/// subspace[:K][:reparam|projected][:FORMAT][:bwd=FORMAT][:adaptive][:every=N][:ulr=X],
/// projector[:K][:FORMAT][:bwd=FORMAT][:fixed][:every=N][:ulr=X]; FORMAT is fp32|bf16|int8|fp8|int4.
/// `bwd=FORMAT` gives the backward (gradient) coordinates their own format; without it both
/// directions use FORMAT.
/// `adaptive` trains the shared U (SPEC §2 way 1); `projector` is the learned per-boundary
/// projection model (way 2; `fixed` keeps its seeded projections); `every`/`ulr` set how
/// often such a basis is stepped and its learning rate relative to the model's.
public struct CodecSpec: Equatable, Sendable, CustomStringConvertible {
    public var kind: CodecKind = .dense
    /// Subspace rank k (default d/8).
    public var rankK: Int?
    public var mode: SubspaceMode?
    /// Number format of the subspace coordinates on the wire (forward, and backward unless
    /// `gradCoords` is set).
    public var coords: CoordinateFormat = .fp32
    /// Number format of the backward (gradient) coordinates when it differs from `coords`.
    /// Gradients take fewer bits than activations: measured, 4-bit gradients cost a fraction
    /// of what 4-bit activations do (README, "Compression that keeps convergence").
    public var gradCoords: CoordinateFormat?
    /// The format the backward coordinates travel in.
    public var backwardCoords: CoordinateFormat { gradCoords ?? coords }
    /// `gradCoords` when it differs from `coords`: `int8:bwd=int8` is spelled and named `int8`,
    /// so one codec has one word (and one cached `converge` run).
    private var distinctGradCoords: CoordinateFormat? { gradCoords == coords ? nil : gradCoords }
    public var topkFraction: Double?
    /// A trained basis (adaptive U, learned projectors) and how it trains; nil keeps it fixed.
    public var training: ManifoldTraining?

    public init(kind: CodecKind = .dense, rankK: Int? = nil, mode: SubspaceMode? = nil,
                coords: CoordinateFormat = .fp32, gradCoords: CoordinateFormat? = nil, topkFraction: Double? = nil,
                training: ManifoldTraining? = nil) {
        self.kind = kind; self.rankK = rankK; self.mode = mode; self.coords = coords; self.gradCoords = gradCoords
        self.topkFraction = topkFraction; self.training = training
    }

    /// Equal when they encode the same wire: `bwd=` equal to the forward format counts as absent.
    public static func == (a: CodecSpec, b: CodecSpec) -> Bool {
        a.kind == b.kind && a.rankK == b.rankK && a.mode == b.mode && a.coords == b.coords
            && a.backwardCoords == b.backwardCoords && a.topkFraction == b.topkFraction && a.training == b.training
    }

    public static let syntax = "dense, bf16, int8, int4, fp8, topk[:FRACTION], subspace[:K][:reparam|projected][:FORMAT][:bwd=FORMAT][:adaptive][:every=N][:ulr=X], projector[:K][:FORMAT][:bwd=FORMAT][:fixed][:every=N][:ulr=X] with FORMAT fp32|bf16|int8|fp8|int4"

    /// Parses one codec word, e.g. `subspace:16:int8` or `topk:0.1`.
    public static func parse(_ text: String) throws -> CodecSpec {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard let first = parts.first, let kind = CodecKind(rawValue: first) else {
            throw ConfigError.invalid(field: "codec", reason: "'\(text)': expected one of \(syntax)")
        }
        var c = CodecSpec(kind: kind)
        if kind == .projector { c.training = ManifoldTraining() }
        var sawFormat = false, fixed = false
        func bad(_ why: String) -> ConfigError { .invalid(field: "codec", reason: "'\(text)': \(why)") }
        for p in parts.dropFirst() {
            if kind == .subspace || kind == .projector, let eq = p.firstIndex(of: "=") {
                let key = p[..<eq], value = p[p.index(after: eq)...]
                switch key {
                case "every":
                    guard let n = Int(value), n >= 1 else { throw bad("every=N needs a whole number N ≥ 1") }
                    c.training = c.training ?? ManifoldTraining(); c.training!.every = n
                case "ulr":
                    guard let x = Float(value), x > 0, x.isFinite else { throw bad("ulr=X needs a positive number X") }
                    c.training = c.training ?? ManifoldTraining(); c.training!.lrScale = x
                case "bwd":
                    guard c.gradCoords == nil, let f = CoordinateFormat(rawValue: String(value)) else {
                        throw bad("bwd=FORMAT (once) needs one of \(CoordinateFormat.allCases.map(\.rawValue).joined(separator: "|"))")
                    }
                    c.gradCoords = f
                default: throw bad("unknown setting '\(key)'; use every=N, ulr=X or bwd=FORMAT")
                }
                continue
            }
            switch kind {
            case .topk:
                guard c.topkFraction == nil, let f = Double(p) else {
                    throw ConfigError.invalid(field: "codec", reason: "'\(text)': topk takes one fraction, e.g. topk:0.1")
                }
                c.topkFraction = f
            case .subspace:
                if let k = Int(p), c.rankK == nil { c.rankK = k }
                else if let m = SubspaceMode(rawValue: p), c.mode == nil { c.mode = m }
                else if let f = CoordinateFormat(rawValue: p), !sawFormat { c.coords = f; sawFormat = true }
                else if p == "adaptive" { c.training = c.training ?? ManifoldTraining() }
                else {
                    throw bad("subspace takes K, reparam|projected, one of \(CoordinateFormat.allCases.map(\.rawValue).joined(separator: "|")), bwd=FORMAT, adaptive, every=N, ulr=X; e.g. subspace:16:int8")
                }
            case .projector:
                if let k = Int(p), c.rankK == nil { c.rankK = k }
                else if let f = CoordinateFormat(rawValue: p), !sawFormat { c.coords = f; sawFormat = true }
                else if p == "fixed" { fixed = true }
                else { throw bad("projector takes K, a coordinate format, bwd=FORMAT, fixed, every=N, ulr=X; e.g. projector:16:int8") }
            default:
                throw bad("\(kind.rawValue) takes no settings")
            }
        }
        if fixed {
            guard c.training == ManifoldTraining() else { throw bad("a fixed projector takes no every= or ulr=") }
            c.training = nil
        }
        if c.mode == .projected && c.training != nil { throw bad("an adaptive U needs the reparam mode") }
        return c
    }

    /// Settings words of a trained basis (`adaptive`, `every=N`, `ulr=X`) for `description`.
    private var trainingWords: [String] {
        guard let t = training else { return kind == .projector ? ["fixed"] : [] }
        return (kind == .subspace ? ["adaptive"] : []) + (t.every != 1 ? ["every=\(t.every)"] : [])
            + (t.lrScale != 1 ? ["ulr=\(t.lrScale)"] : [])
    }

    /// The word `parse` reads back.
    public var description: String {
        switch kind {
        case .subspace, .projector:
            return ([kind.rawValue] + (rankK.map { [String($0)] } ?? []) + (mode.map { [$0.rawValue] } ?? [])
                    + (coords == .fp32 ? [] : [coords.rawValue]) + (distinctGradCoords.map { ["bwd=\($0.rawValue)"] } ?? [])
                    + trainingWords).joined(separator: ":")
        case .topk: return "topk" + (topkFraction.map { ":\($0)" } ?? "")
        default: return kind.rawValue
        }
    }

    /// Whether this codec's forward messages carry the token ids, so that every stage sees
    /// them (the subspace and projector messages; `WireCodec.carriesIds` of the codec it makes
    /// agrees, checked by XCTest). Known before any codec exists, so a config can be checked.
    public var carriesIds: Bool { kind == .subspace || kind == .projector }

    /// Subspace rank for a model of width d.
    public func rank(dModel: Int) -> Int { rankK ?? max(1, dModel / 8) }

    /// Checks the settings and applies the subspace or projector choice to the model shape.
    /// `split` (layers per stage) places the projectors on the stage boundaries.
    public func apply(to config: inout ModelConfig, split: [Int]) throws {
        if let f = topkFraction, !(f > 0 && f <= 1) {
            throw ConfigError.invalid(field: "topk-fraction", reason: "\(f) must be in (0, 1]")
        }
        config.subspace = nil
        config.projector = nil
        if config.hasLayerEmbedding && split.count > 1 && !carriesIds {
            // Block tables are looked up by token id; only messages that carry the ids
            // bring them to the stages after the first.
            throw ConfigError.problem("per-layer token embeddings (+layeremb, --layer-embedding) need the token ids on every stage, which only the subspace and projector codecs carry; the \(kind.rawValue) codec does not — use --codec subspace or projector, or one stage")
        }
        guard kind == .subspace || kind == .projector else { return }
        let k = rank(dModel: config.dModel)
        guard k >= 1 && k < config.dModel else {
            throw ConfigError.invalid(field: "rank-k", reason: "\(k) must be in 1..<\(config.dModel) (d-model); the subspace must be narrower than the model")
        }
        if kind == .subspace {
            config.subspace = SubspaceConfig(rank: k, mode: mode ?? .reparam, adaptive: training)
        } else {
            var b: [Int] = [], l = 0
            for n in split.dropLast() { l += n; b.append(l - 1) }
            config.projector = ProjectorConfig(rank: k, boundaries: b, training: training)
        }
        try config.validate()
    }

    /// A short name for tables and logs, e.g. "subspace k=16 int8", "topk 0.1".
    public func label(dModel: Int) -> String {
        switch kind {
        case .subspace, .projector:
            let t = training.map { t in (t.every != 1 ? " every \(t.every)" : "") + (t.lrScale != 1 ? " ulr \(t.lrScale)" : "") } ?? ""
            return "\(kind.rawValue) k=\(rank(dModel: dModel))" + ((mode ?? .reparam) == .projected ? " projected" : "")
                + (kind == .subspace && training != nil ? " adaptive" : "") + (kind == .projector && training == nil ? " fixed" : "")
                + t + (coords == .fp32 && distinctGradCoords == nil ? "" : " \(coords.rawValue)")
                + (distinctGradCoords.map { "/\($0.rawValue)" } ?? "")
        case .topk: return "topk \(topkFraction ?? 0.1)"
        default: return kind.rawValue
        }
    }

    /// The codec a stage uses (the subspace codec shares the stage model's U and E_fixed).
    public func makeCodec(model: StageModel) -> WireCodec {
        switch kind {
        case .dense: return DenseCodec()
        case .bf16: return BF16Codec()
        case .int8: return Int8Codec()
        case .int4: return QuantizedCodec(format: .int4)
        case .fp8: return QuantizedCodec(format: .fp8)
        case .topk: return TopKCodec(fraction: topkFraction ?? 0.1)
        case .subspace: return SubspaceCodec(subspace: model.subspace!, format: coords, gradFormat: backwardCoords)
        case .projector:
            let lo = model.stage.layers.lowerBound, hi = model.stage.layers.upperBound
            let input = model.projectors[lo - 1], output = model.stage.hasHead ? nil : model.projectors[hi - 1]
            // One stage holding the whole model has no boundary: nothing crosses (the model
            // still applies its projectors between its blocks).
            guard input != nil || output != nil else { return DenseCodec() }
            return SubspaceCodec(fixed: model.fixed!, input: input, output: output, format: coords, gradFormat: backwardCoords)
        }
    }
}
