// Which part of the model a pipeline stage owns.

/// A contiguous range of blocks, plus the embedding on the first stage and the final
/// norm, LM head and loss on the last. The single-process model is `.whole(config)`.
public struct StageSpec: Codable, Equatable, Sendable {
    public var layers: Range<Int>
    public var hasEmbedding: Bool
    public var hasHead: Bool

    public init(layers: Range<Int>, hasEmbedding: Bool, hasHead: Bool) {
        self.layers = layers; self.hasEmbedding = hasEmbedding; self.hasHead = hasHead
    }

    public static func whole(_ c: ModelConfig) -> StageSpec {
        StageSpec(layers: 0..<c.nLayer, hasEmbedding: true, hasHead: true)
    }

    /// Stages for a split given as layer counts per stage (e.g. [2,1,1]). The counts must
    /// be positive and cover every layer exactly once.
    public static func stages(split: [Int], nLayer: Int) throws -> [StageSpec] {
        guard !split.isEmpty else { throw ConfigError.invalid(field: "split", reason: "is empty; give one layer count per stage, e.g. 2,2,1,1") }
        if let z = split.firstIndex(where: { $0 < 1 }) {
            throw ConfigError.invalid(field: "split", reason: "\(split.map(String.init).joined(separator: ",")): stage \(z) gets \(split[z]) layers; every stage needs at least 1")
        }
        let total = split.reduce(0, +)
        guard total == nLayer else {
            throw ConfigError.invalid(field: "split", reason: "\(split.map(String.init).joined(separator: ",")) covers \(total) layers but the model has \(nLayer); the counts must add up to n-layer")
        }
        var out: [StageSpec] = [], lo = 0
        for (s, n) in split.enumerated() {
            out.append(StageSpec(layers: lo..<(lo + n), hasEmbedding: s == 0, hasHead: s == split.count - 1))
            lo += n
        }
        return out
    }

    /// The default split of L layers over S stages: as even as possible, earlier stages
    /// take the remainder (the last stage also carries the LM head).
    public static func evenSplit(nLayer: Int, stages: Int) throws -> [Int] {
        guard stages >= 1, stages <= nLayer else {
            throw ConfigError.problem("\(stages) stages for \(nLayer) layers; need 1 ≤ stages ≤ n-layer (fewer stages — fewer ranks, or a smaller --stages — or a deeper model)")
        }
        return (0..<stages).map { nLayer / stages + ($0 < nLayer % stages ? 1 : 0) }
    }
}
