// Yields (inputs, targets) micro-batches from token shards. Deterministic from a seed and
// resumable: its whole state is (epoch, index).
import Foundation
import ProtoCore

public final class DataLoader {
    /// Where the loader is; saving and restoring it resumes the exact batch sequence.
    public struct Position: Codable, Equatable, Sendable {
        public var epoch: Int
        public var index: Int   // windows consumed in this epoch
        public init(epoch: Int = 0, index: Int = 0) { self.epoch = epoch; self.index = index }
    }

    public let seqLen: Int
    public let batchSize: Int
    public let seed: UInt64
    public let shuffle: Bool
    private let shards: [[UInt16]]
    /// Window starts: (shard, offset); each window is seqLen + 1 tokens inside one shard.
    private let windows: [(Int32, Int32)]
    private var order: [Int32] = []
    public private(set) var position = Position()
    public var windowCount: Int { windows.count }
    public var tokenCount: Int { shards.reduce(0) { $0 + $1.count } }

    /// Loads `urls` (checked against `vocabSize`). Training loaders shuffle windows per
    /// epoch; evaluation loaders read them in order.
    public init(shards urls: [URL], vocabSize: Int, seqLen: Int, batchSize: Int, seed: UInt64, shuffle: Bool) throws {
        self.seqLen = seqLen; self.batchSize = batchSize; self.seed = seed; self.shuffle = shuffle
        shards = try urls.map { try Shard.read($0, vocabSize: vocabSize) }
        var w: [(Int32, Int32)] = []
        for (s, toks) in shards.enumerated() where toks.count > seqLen {
            for off in stride(from: 0, to: toks.count - seqLen, by: seqLen) { w.append((Int32(s), Int32(off))) }
        }
        guard w.count <= Int(Int32.max) else {  // the epoch order holds 32-bit window numbers
            throw DataError.tooSmall(path: urls.map(\.path).joined(separator: ", "),
                                     problem: "\(w.count) windows of \(seqLen + 1) tokens are more than 2³¹−1 per epoch; train on part of the shards or a longer --seq-len")
        }
        guard w.count >= batchSize else {
            throw DataError.tooSmall(path: urls.map(\.path).joined(separator: ", "),
                                     problem: "\(shards.reduce(0) { $0 + $1.count }) tokens make \(w.count) window\(w.count == 1 ? "" : "s") of \(seqLen + 1), fewer than one batch of \(batchSize); use more data, a smaller --batch-size or a shorter --seq-len")
        }
        windows = w
        restore(Position())
    }

    /// Jumps to a saved position after checking it lies within this data (a checkpoint's
    /// loader.json is untrusted input).
    public func restore(checked p: Position) throws {
        guard p.epoch >= 0, p.epoch <= 1 << 40, p.index >= 0, p.index <= windows.count else {
            throw DataError.tooSmall(path: "loader position", problem: "epoch \(p.epoch), window \(p.index) is outside this data's \(windows.count) windows per epoch")
        }
        restore(p)
    }

    /// Jumps to `p` (as saved by `position`).
    public func restore(_ p: Position) {
        position = p
        order = (0..<Int32(windows.count)).map { $0 }
        if shuffle {
            var rng = SplitMix64(seed: SplitMix64.derive(seed, "epoch \(p.epoch)"))
            for i in stride(from: order.count - 1, to: 0, by: -1) { order.swapAt(i, rng.int(below: i + 1)) }
        }
    }

    /// The next B rows: ids are window[0..<T], targets window[1...T].
    public func next() -> Microbatch {
        let T = seqLen
        var ids = [Int32](), targets = [Int32]()
        ids.reserveCapacity(batchSize * T); targets.reserveCapacity(batchSize * T)
        for _ in 0..<batchSize {
            if position.index >= order.count { restore(Position(epoch: position.epoch + 1, index: 0)) }
            let (s, off) = windows[Int(order[position.index])]
            let toks = shards[Int(s)]
            for j in 0..<T {
                ids.append(Int32(toks[Int(off) + j])); targets.append(Int32(toks[Int(off) + j + 1]))
            }
            position.index += 1
        }
        return Microbatch(ids: ids, targets: targets)
    }

    /// `count` batches in order after skipping the first `skip` (a fixed validation slice),
    /// without moving the loader. Fewer come back when the data runs out.
    public func fixedBatches(_ count: Int, skip: Int = 0) -> [Microbatch] {
        let saved = position
        restore(Position())
        let avail = max(0, windows.count / batchSize - skip)
        for _ in 0..<min(skip, windows.count / batchSize) { _ = next() }
        let n = min(count, avail)
        let out = (0..<n).map { _ in next() }
        restore(saved)
        return out
    }
}
