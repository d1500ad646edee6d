// `protomodel prepare`: corpus → BPE tokenizer → train/val token shards.
import ArgumentParser
import Foundation
import ProtoCore
import ProtoData

struct Prepare: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a byte-level BPE tokenizer on a corpus and write llm.c-format token shards.")

    @Option(help: "Text file or folder of text files.") var input: String = "data/kjv.txt"
    @Option(help: "Output folder for tokenizer.json and the shards.") var out: String = "data/kjv"
    @Option(name: .customLong("vocab-size"), help: "Tokenizer vocabulary (256 bytes + merges).") var vocabSize: Int = 1024
    @Option(name: .customLong("val-every"), help: "Of every N blocks (100 lines; equal chunks of bytes when the corpus has fewer than 200·N lines), the last goes to validation.") var valEvery: Int = 20
    @Option(name: .customLong("shard-tokens"), help: "Maximum tokens per shard file.") var shardTokens: Int = 50_000_000

    mutating func validate() throws {
        if !(257...65536).contains(vocabSize) { throw ValidationError("--vocab-size \(vocabSize) must be in 257...65536") }
        if valEvery < 2 { throw ValidationError("--val-every \(valEvery) must be at least 2") }
        if shardTokens < 1024 || shardTokens > Int(Int32.max) {
            throw ValidationError("--shard-tokens \(shardTokens) must be in 1024...\(Int32.max) (the llm.c header counts tokens in 32 bits)")
        }
    }

    func run() throws {
        var lastShown = 0
        let st = try DatasetBuilder.build(input: input, out: out, vocabSize: vocabSize, valEvery: valEvery,
                                          shardTokens: shardTokens) { done, total in
            if done - lastShown >= 64 || done == total {
                lastShown = done
                print("\rtokenizer   merges \(done)/\(total)", terminator: done == total ? "\n" : "", to: &stderr)
            }
        }
        print("corpus      \(input): \(st.corpusBytes) bytes (train \(st.trainBytes), val \(st.valBytes))")
        print(String(format: "tokenizer   %d tokens trained in %.1f s", st.vocabSize, st.tokenizerSeconds))
        if st.vocabSize < vocabSize {
            print("note        the corpus supports only \(st.vocabSize) tokens (asked \(vocabSize)): no pair occurs twice more")
        }
        print(String(format: "encode      %.2f MB/s (%d bytes → %d tokens, %.2f bytes/token)", st.encodeMBps, st.corpusBytes,
                     st.trainTokens + st.valTokens, Double(st.corpusBytes) / Double(max(1, st.trainTokens + st.valTokens))))
        print("shards      \(out)/train_*.bin: \(st.trainTokens) tokens, \(out)/val_*.bin: \(st.valTokens) tokens")
    }
}
