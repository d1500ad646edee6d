// `protomodel export` and `protomodel eval`: a trained model as a Hugging Face folder that
// transformers opens, and one loss anyone can reproduce on the same windows.
import ArgumentParser
import Foundation
import ProtoCore
import ProtoData

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a trained model as a Hugging Face folder (ArceeForCausalLM, safetensors, tokenizer.json).",
        discussion: "Subspace models go out as the equivalent dense model. --raw keeps protomodel's own tensors (for `train --init-from`).")

    @Option(name: .customLong("run"), help: "Run folder written by `protomodel train` (model.bin, tokenizer.json).") var runDir: String = "runs/latest"
    @Option(help: "Output folder (created; an existing folder must be empty or an earlier export).") var out: String
    @Flag(help: "Write bfloat16 weights instead of float32.") var bf16 = false
    @Flag(help: "Keep protomodel's own tensors and config (subspace factors, projectors): for protomodel, not transformers.") var raw = false

    func run() throws {
        let dir = URL(fileURLWithPath: runDir), outDir = URL(fileURLWithPath: out)
        let model = try ModelFile.load(dir.appendingPathComponent("model.bin"))
        let tok = try Tokenizer.load(from: dir.appendingPathComponent("tokenizer.json"))
        guard tok.vocabSize == model.config.vocabSize else {
            throw CLIError("\(runDir)/tokenizer.json has \(tok.vocabSize) tokens but the model expects \(model.config.vocabSize); the two files come from different runs")
        }
        if !raw, let why = HuggingFace.unsupported(model.config) { throw CLIError(why) }
        try HuggingFace.checkExportFolder(outDir)  // never overwrite what export did not write
        try HuggingFace.export(model, tokenizer: tok, to: outDir, bf16: bf16, raw: raw)
        let c = model.config
        print("export      \(out): \(raw ? "protomodel tensors (raw)" : "ArceeForCausalLM") d=\(c.dModel) L=\(c.nLayer) NH=\(c.nHead) V=\(c.vocabSize) T=\(c.seqLen), \(bf16 ? "bf16" : "fp32")"
              + (c.subspace != nil && !raw ? ", subspace model written as its dense equivalent" : ""))
        if !raw {
            print("load with  from transformers import AutoModelForCausalLM, AutoTokenizer")
            print("           m = AutoModelForCausalLM.from_pretrained(\"\(out)\"); t = AutoTokenizer.from_pretrained(\"\(out)\")")
        }
    }
}

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Mean next-token cross-entropy on the validation split (single process).",
        discussion: "Windows of T+1 tokens taken consecutively, without overlap, from the start of the validation shards: inputs are the first T tokens, targets the last T. The same windows give the same number in any implementation.")

    @Option(help: "A run folder (model.bin) or a Hugging Face folder (config.json, model.safetensors).") var model: String = "runs/latest"
    @Option(help: "Data folder (its val_*.bin shards).") var data: String = "data/kjv"
    @Option(help: "Score at most this many target tokens (whole windows; default: all).") var tokens: Int?
    @Flag(help: "Print one JSON object (loss, tokens, windows).") var json = false
    @OptionGroup var threading: ThreadOptions

    func run() throws {
        try threading.apply()
        let dir = URL(fileURLWithPath: model)
        let m: StageModel
        if FileManager.default.fileExists(atPath: dir.appendingPathComponent("model.bin").path) {
            m = try ModelFile.load(dir.appendingPathComponent("model.bin"))
        } else {
            let (cfg, params) = try HuggingFace.load(dir)
            m = StageModel(config: cfg, stage: .whole(cfg), batchSize: 1)
            m.params.copy(from: params)
        }
        let cfg = m.config, T = cfg.seqLen
        try PreparedData.check(data)
        // The model's own tokenizer (a run folder's, or the one an export keeps) must be the data's.
        let dataTok = URL(fileURLWithPath: data).appendingPathComponent("tokenizer.json")
        let runFolder = FileManager.default.fileExists(atPath: dir.appendingPathComponent("model.bin").path)
        let modelTok = dir.appendingPathComponent(runFolder ? "tokenizer.json" : "protomodel_tokenizer.json")
        if FileManager.default.fileExists(atPath: modelTok.path),
           !(try Tokenizer.load(from: modelTok)).isSame(as: try Tokenizer.load(from: dataTok)) {
            throw CLIError("--model \(model) was trained with another tokenizer than \(dataTok.path) (\(modelTok.lastPathComponent) differs): a loss on these shards would mean nothing; evaluate on the data the model was trained with")
        }
        let shards = try Shard.list(in: URL(fileURLWithPath: data), split: "val")
        let stream = try shards.flatMap { try Shard.read($0, vocabSize: cfg.vocabSize) }
        var windows = stream.count / (T + 1)
        if let n = tokens {
            guard n >= T else { throw CLIError("--tokens \(n) is less than one window (\(T) targets)") }
            windows = min(windows, n / T)
        }
        guard windows > 0 else { throw CLIError("\(data) has \(stream.count) validation tokens, fewer than one window of \(T + 1)") }
        var total = 0.0
        for w in 0..<windows {
            let win = stream[(w * (T + 1))..<((w + 1) * (T + 1))].map { Int32($0) }
            total += Double(m.forward(slot: 0, ids: Array(win[0..<T]), targets: Array(win[1...T]))!)
        }
        let loss = total / Double(windows)
        if json {
            let obj: [String: Any] = ["loss": loss, "tokens": windows * T, "windows": windows, "seq_len": T, "model": model, "data": data]
            print(String(decoding: try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]), as: UTF8.self))
        } else {
            print(String(format: "eval        %@ on %@: loss %.6f over %d tokens (%d windows of %d)", model, data, loss, windows * T, windows, T + 1))
        }
    }
}
