// corpus → tokenizer → shards, written into a staging folder and moved into place whole,
// so a failure never leaves a tokenizer that does not match its shards.
import Foundation
import ProtoCore

public struct DatasetStats: Sendable {
    public var corpusBytes: Int
    public var trainBytes: Int
    public var valBytes: Int
    public var vocabSize: Int
    public var trainTokens: Int
    public var valTokens: Int
    public var tokenizerSeconds: Double
    public var encodeSeconds: Double
    public var encodeMBps: Double { Double(corpusBytes) / max(encodeSeconds, 1e-9) / 1e6 }
}

public enum DatasetBuilder {
    /// Builds `out` (tokenizer.json, train_NNN.bin, val_NNN.bin, meta.json) from `input`.
    /// An existing `out` is replaced only after everything was written successfully.
    public static func build(input: String, out: String, vocabSize: Int, valEvery: Int, shardTokens: Int,
                             progress: ((Int, Int) -> Void)? = nil) throws -> DatasetStats {
        let text = try Corpus.read(input)
        let (train, val) = Corpus.split(text, valEvery: valEvery)
        guard !val.isEmpty, !train.isEmpty else {
            throw DataError.tooSmall(path: input, problem: "\(text.count) bytes in \(text.split(separator: 0x0A).count) lines leave one split empty with --val-every \(valEvery) (validation takes 100-line blocks); use a larger corpus or a smaller --val-every")
        }
        let t0 = Date()
        let tok = try Tokenizer.train(train, vocabSize: vocabSize, progress: progress)
        let tokSecs = Date().timeIntervalSince(t0)
        let t1 = Date()
        let trainTok = tok.encode(train), valTok = tok.encode(val)
        let encSecs = Date().timeIntervalSince(t1)

        let outURL = URL(fileURLWithPath: out)
        let staging = URL(fileURLWithPath: out + ".partial-\(getpid())")
        try? FileManager.default.removeItem(at: staging)
        try FileManager.default.createDirectory(at: staging, withIntermediateDirectories: true)
        do {
            try tok.save(to: staging.appendingPathComponent("tokenizer.json"))
            for (name, toks) in [("train", trainTok), ("val", valTok)] {
                for (i, lo) in stride(from: 0, to: toks.count, by: shardTokens).enumerated() {
                    try Shard.write(Array(toks[lo..<min(toks.count, lo + shardTokens)]),
                                    to: staging.appendingPathComponent(String(format: "%@_%03d.bin", name, i)))
                }
            }
            let meta: [String: Any] = ["source": input, "bytes": text.count, "vocab_size": tok.vocabSize,
                                       "train_tokens": trainTok.count, "val_tokens": valTok.count, "val_every": valEvery]
            try AtomicFile.write(try JSONSerialization.data(withJSONObject: meta, options: [.sortedKeys, .prettyPrinted]),
                                 to: staging.appendingPathComponent("meta.json"))
            if FileManager.default.fileExists(atPath: outURL.path) { try FileManager.default.removeItem(at: outURL) }
            try FileManager.default.moveItem(at: staging, to: outURL)
        } catch {
            try? FileManager.default.removeItem(at: staging)
            throw error
        }
        return DatasetStats(corpusBytes: text.count, trainBytes: train.count, valBytes: val.count, vocabSize: tok.vocabSize,
                            trainTokens: trainTok.count, valTokens: valTok.count, tokenizerSeconds: tokSecs, encodeSeconds: encSecs)
    }
}
