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
        try checkOutput(out, input: input)
        let text = try Corpus.read(input)
        let (train, val) = Corpus.split(text, valEvery: valEvery)
        guard !val.isEmpty, !train.isEmpty else {
            throw DataError.tooSmall(path: input, problem: "\(text.count) byte(s) cannot be split into a training and a validation part; give a corpus of at least \(valEvery) words")
        }
        let t0 = Date()
        let tok = try Tokenizer.train(train, vocabSize: vocabSize, progress: progress)
        let tokSecs = Date().timeIntervalSince(t0)
        let t1 = Date()
        let trainTok = tok.encode(train), valTok = tok.encode(val)
        let encSecs = Date().timeIntervalSince(t1)

        // Normalised first: for "data/kjv/" or "." a staging name made by appending to the
        // text would land inside the output, and replacing the output would delete it.
        let outURL = URL(fileURLWithPath: out).standardizedFileURL
        let staging = outURL.deletingLastPathComponent().appendingPathComponent(".\(outURL.lastPathComponent).partial-\(getpid())")
        try? FileManager.default.removeItem(at: staging)
        try AtomicFile.makeFolder(staging)
        do {
            try tok.save(to: staging.appendingPathComponent("tokenizer.json"))
            for (name, toks) in [("train", trainTok), ("val", valTok)] {
                for (i, lo) in stride(from: 0, to: toks.count, by: shardTokens).enumerated() {
                    try Shard.write(Array(toks[lo..<min(toks.count, lo + shardTokens)]),
                                    to: staging.appendingPathComponent(String(format: "%@_%03d.bin", name, i)))
                }
            }
            let meta: [String: Any] = ["source": input, "bytes": text.count, "vocab_size": tok.vocabSize,
                                       "train_tokens": trainTok.count, "val_tokens": valTok.count, "val_every": valEvery,
                                       "tokenizer_sha256": Digest.sha256(try FileIO.read(staging.appendingPathComponent("tokenizer.json")))]
            try AtomicFile.write(try JSONSerialization.data(withJSONObject: meta, options: [.sortedKeys, .prettyPrinted]),
                                 to: staging.appendingPathComponent("meta.json"))
            // Replace an earlier output only after everything is written (checked above: it
            // holds nothing but what prepare writes).
            if FileManager.default.fileExists(atPath: outURL.path) { try FileManager.default.removeItem(at: outURL) }
            guard rename(staging.path, outURL.path) == 0 else {
                throw DataError.io(path: out, problem: "cannot move the new data into place: \(AtomicFile.explain(errno))")
            }
        } catch {
            try? FileManager.default.removeItem(at: staging)
            throw error
        }
        return DatasetStats(corpusBytes: text.count, trainBytes: train.count, valBytes: val.count, vocabSize: tok.vocabSize,
                            trainTokens: trainTok.count, valTokens: valTok.count, tokenizerSeconds: tokSecs, encodeSeconds: encSecs)
    }

    /// Files `prepare` writes into its output folder.
    static func isPreparedFile(_ name: String) -> Bool {
        if name == "tokenizer.json" || name == "meta.json" { return true }
        for p in ["train_", "val_"] where name.hasPrefix(p) && name.hasSuffix(".bin") {
            return name.dropFirst(p.count).dropLast(4).allSatisfy(\.isNumber)
        }
        return false
    }

    /// `out` must be new, or a folder an earlier `prepare` wrote (meta.json and nothing but
    /// the tokenizer and shards): prepare never deletes what it did not create.
    static func checkOutput(_ out: String, input: String) throws {
        let fm = FileManager.default
        let outPath = URL(fileURLWithPath: out).standardizedFileURL.path
        let inPath = URL(fileURLWithPath: input).standardizedFileURL.path
        if inPath == outPath || inPath.hasPrefix(outPath.hasSuffix("/") ? outPath : outPath + "/") {
            throw DataError.io(path: out, problem: "the output folder would contain the input \(input); choose another --out (e.g. data/NAME)")
        }
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: out, isDirectory: &isDir) else { return }
        guard isDir.boolValue else {
            throw DataError.io(path: out, problem: "exists and is a file, not a folder; choose another --out")
        }
        let names = (try? fm.contentsOfDirectory(atPath: out)) ?? []
        if names.isEmpty { return }
        let foreign = names.filter { !isPreparedFile($0) }
        guard foreign.isEmpty, names.contains("meta.json") else {
            let example = (foreign.first ?? names.first).map { " (e.g. \($0))" } ?? ""
            throw DataError.io(path: out, problem: "exists and holds files `protomodel prepare` did not write\(example); it is left untouched — choose another --out or empty it yourself")
        }
    }
}

/// Where training data comes from and what to do when it is not there.
public enum PreparedData {
    /// The folder `protomodel prepare` writes by default (from scripts/setup.sh's data/kjv.txt).
    public static let defaultFolder = "data/kjv"

    /// Throws, naming the one command that makes the data, when `dir` holds no prepared data,
    /// or prepared data that no longer matches its meta.json (`checkAgainstMeta`).
    public static func check(_ dir: String) throws {
        let tok = (dir as NSString).appendingPathComponent("tokenizer.json")
        guard !FileManager.default.fileExists(atPath: tok) else { return try checkAgainstMeta(dir) }
        let isDefault = URL(fileURLWithPath: dir).standardizedFileURL.path == URL(fileURLWithPath: defaultFolder).standardizedFileURL.path
        let fix = isDefault
            ? "make the default data with `scripts/setup.sh && protomodel prepare` (run from the checkout; setup writes data/kjv.txt)"
            : "make it with `protomodel prepare --input YOUR_TEXT --out \(dir)`"
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: dir, isDirectory: &isDir) {
            throw DataError.io(path: dir, problem: isDir.boolValue
                ? "holds no prepared data (no tokenizer.json) — \(fix)"
                : "is a file, not a folder of prepared data — give --data the folder `protomodel prepare --out` wrote")
        }
        throw DataError.missing(path: dir, fix: "no prepared data (tokenizer.json and shards); " + fix)
    }

    /// The folder against its meta.json (when `prepare` wrote one): the shards of each split
    /// hold the token counts it recorded (a shard missing, added or from another prepare
    /// would change what trains, silently), and tokenizer.json is the one it wrote (when
    /// recorded: folders prepared since 2026-12-01). Throws DataError naming the fix.
    public static func checkAgainstMeta(_ dir: String) throws {
        let url = URL(fileURLWithPath: dir)
        guard let meta = (try? JSONSerialization.jsonObject(with: Data(contentsOf: url.appendingPathComponent("meta.json")))) as? [String: Any] else { return }
        let fix = "run `protomodel prepare` again to rebuild \(dir)"
        for split in ["train", "val"] {
            guard let want = (meta["\(split)_tokens"] as? NSNumber)?.intValue else { continue }
            let shards = try Shard.list(in: url, split: split)
            var have = 0
            for s in shards {
                guard let n = Shard.headerTokenCount(s) else { throw DataError.badShard(path: s.path, problem: "no readable shard header") }
                have += n
            }
            guard have == want else {
                throw DataError.io(path: dir, problem: "meta.json records \(want) \(split) tokens but the \(shards.count) \(split)_*.bin shards hold \(have) (a shard is missing, extra or from another prepare) — \(fix)")
            }
        }
        if let want = meta["tokenizer_sha256"] as? String {
            let tok = url.appendingPathComponent("tokenizer.json")
            guard Digest.sha256(try FileIO.read(tok)) == want else {
                throw DataError.badTokenizer(path: tok.path, problem: "is not the tokenizer the shards of \(dir) were written with (meta.json records another SHA-256)")
            }
        }
    }
}
