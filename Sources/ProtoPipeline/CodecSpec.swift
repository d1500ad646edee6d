// A wire codec with its settings, as a value: parsed from one word (`subspace:16:int8`),
// applied to the model shape (subspace models are different models), named in tables and
// logs, and turned into a codec per stage. Adding a codec means a case here and its class.
import ProtoCore

/// The codec names the command line accepts.
public enum CodecKind: String, CaseIterable, Sendable {
    case dense, bf16, int8, topk, subspace
}

/// One wire codec and its settings: dense, bf16, int8, topk[:FRACTION],
/// subspace[:K][:reparam|projected][:fp32|bf16|int8|fp8|int4].
public struct CodecSpec: Equatable, Sendable, CustomStringConvertible {
    public var kind: CodecKind = .dense
    /// Subspace rank k (default d/8).
    public var rankK: Int?
    public var mode: SubspaceMode?
    /// Number format of the subspace coordinates on the wire.
    public var coords: CoordinateFormat = .fp32
    public var topkFraction: Double?

    public init(kind: CodecKind = .dense, rankK: Int? = nil, mode: SubspaceMode? = nil,
                coords: CoordinateFormat = .fp32, topkFraction: Double? = nil) {
        self.kind = kind; self.rankK = rankK; self.mode = mode; self.coords = coords; self.topkFraction = topkFraction
    }

    public static let syntax = "dense, bf16, int8, topk[:FRACTION], subspace[:K][:reparam|projected][:fp32|bf16|int8|fp8|int4]"

    /// Parses one codec word, e.g. `subspace:16:int8` or `topk:0.1`.
    public static func parse(_ text: String) throws -> CodecSpec {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard let first = parts.first, let kind = CodecKind(rawValue: first) else {
            throw ConfigError.invalid(field: "codec", reason: "'\(text)': expected one of \(syntax)")
        }
        var c = CodecSpec(kind: kind)
        var sawFormat = false
        for p in parts.dropFirst() {
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
                else {
                    throw ConfigError.invalid(field: "codec", reason: "'\(text)': subspace takes K, reparam|projected and one of \(CoordinateFormat.allCases.map(\.rawValue).joined(separator: "|")), e.g. subspace:16:int8")
                }
            default:
                throw ConfigError.invalid(field: "codec", reason: "'\(text)': \(kind.rawValue) takes no settings")
            }
        }
        return c
    }

    /// The word `parse` reads back.
    public var description: String {
        switch kind {
        case .subspace:
            return (["subspace"] + (rankK.map { [String($0)] } ?? []) + (mode.map { [$0.rawValue] } ?? [])
                    + (coords == .fp32 ? [] : [coords.rawValue])).joined(separator: ":")
        case .topk: return "topk" + (topkFraction.map { ":\($0)" } ?? "")
        default: return kind.rawValue
        }
    }

    /// Subspace rank for a model of width d.
    public func rank(dModel: Int) -> Int { rankK ?? max(1, dModel / 8) }

    /// Checks the settings and applies the subspace choice to the model shape.
    public func apply(to config: inout ModelConfig) throws {
        if let f = topkFraction, !(f > 0 && f <= 1) {
            throw ConfigError.invalid(field: "topk-fraction", reason: "\(f) must be in (0, 1]")
        }
        config.subspace = nil
        if kind == .subspace {
            let k = rank(dModel: config.dModel)
            guard k >= 1 && k < config.dModel else {
                throw ConfigError.invalid(field: "rank-k", reason: "\(k) must be in 1..<\(config.dModel) (d-model); the subspace must be narrower than the model")
            }
            config.subspace = SubspaceConfig(rank: k, mode: mode ?? .reparam)
        }
    }

    /// A short name for tables and logs, e.g. "subspace k=16 int8", "topk 0.1".
    public func label(dModel: Int) -> String {
        switch kind {
        case .subspace:
            return "subspace k=\(rank(dModel: dModel))" + ((mode ?? .reparam) == .projected ? " projected" : "")
                + (coords == .fp32 ? "" : " \(coords.rawValue)")
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
        case .topk: return TopKCodec(fraction: topkFraction ?? 0.1)
        case .subspace: return SubspaceCodec(subspace: model.subspace!, format: coords)
        }
    }
}
