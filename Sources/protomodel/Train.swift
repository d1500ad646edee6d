// `protomodel train`: trains on the prepared data; rank 0 logs.
import ArgumentParser
import Foundation
import ProtoCore
import ProtoData

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Train a GPT on prepared token shards.")

    @OptionGroup var model: ModelOptions
    @OptionGroup var options: TrainOptions
    @OptionGroup var threading: ThreadOptions

    func run() throws {
        let dataDir = URL(fileURLWithPath: options.data)
        let tokenizer = try Tokenizer.load(from: dataDir.appendingPathComponent("tokenizer.json"))
        var cfg = try model.config()
        if let v = model.vocabSize, v != tokenizer.vocabSize {
            throw ValidationError("--vocab-size \(v) disagrees with \(options.data)/tokenizer.json (\(tokenizer.vocabSize)); drop the flag or re-run prepare")
        }
        cfg.vocabSize = tokenizer.vocabSize
        try cfg.validate()
        let tc = try options.trainConfig()
        try threading.apply()
        let trainData = try DataLoader(shards: Shard.list(in: dataDir, split: "train"), vocabSize: cfg.vocabSize,
                                       seqLen: cfg.seqLen, batchSize: tc.batchSize, seed: tc.dataSeed, shuffle: true)
        let valData = try DataLoader(shards: Shard.list(in: dataDir, split: "val"), vocabSize: cfg.vocabSize,
                                     seqLen: cfg.seqLen, batchSize: tc.batchSize, seed: 0, shuffle: false)
        let valBatches = valData.fixedBatches(options.evalBatches)

        let trainer = LocalTrainer(model: StageModel(config: cfg, stage: .whole(cfg), batchSize: tc.batchSize), train: tc)
        let runner: StepRunner = trainer
        let log = try options.log.map { try JSONLWriter(path: $0) }
        let tokensPerStep = tc.microbatches * tc.batchSize * cfg.seqLen
        print("model       \(cfg.parameterCount) params: d=\(cfg.dModel) L=\(cfg.nLayer) NH=\(cfg.nHead) T=\(cfg.seqLen) V=\(cfg.vocabSize) (preset \(model.preset))")
        print("data        \(options.data): train \(trainData.tokenCount) tokens, val slice \(valBatches.count * tc.batchSize * cfg.seqLen) tokens")
        print("run         \(tc.steps) steps × \(tokensPerStep) tokens (B=\(tc.batchSize), M=\(tc.microbatches)), lr \(tc.schedule.maxLR), 1 process, \(threading.threads) thread(s)")
        try log?.write(["type": "config", "model": jsonObject(cfg), "train": jsonObject(tc),
                        "versions": RunInfo.versions(mpi: nil), "host": RunInfo.host, "git": RunInfo.gitRevision,
                        "world_size": 1, "data": options.data, "threads": threading.threads])

        let start = Date()
        var lastVal: Float?
        for step in 0..<tc.steps {
            let t0 = Date()
            let batches = (0..<tc.microbatches).map { _ in trainData.next() }
            let r = runner.step(step, batches)
            let dt = Date().timeIntervalSince(t0)
            guard r.loss.isFinite else {
                throw ValidationError("loss became \(r.loss) at step \(step); lower --lr or keep --grad-clip on")
            }
            var rec: [String: Any] = ["type": "step", "step": step, "loss": r.loss, "lr": r.lr, "grad_norm": r.gradNorm,
                                      "step_time_s": dt, "tokens_per_s": Double(tokensPerStep) / dt,
                                      "bytes_fwd": 0, "bytes_bwd": 0]
            let isLast = step == tc.steps - 1
            if isLast || (options.evalEvery > 0 && (step + 1) % options.evalEvery == 0) {
                let v = runner.evaluate(valBatches)
                lastVal = v
                rec["val_loss"] = v
            }
            let elapsed = Date().timeIntervalSince(start)
            let eta = elapsed / Double(step + 1) * Double(tc.steps - step - 1)
            var line = String(format: "step %5d/%d | loss %.4f | lr %.2e | %6.1f ms | %7.0f tok/s | ETA %@",
                              step + 1, tc.steps, r.loss, r.lr, dt * 1000, Double(tokensPerStep) / dt, formatDuration(eta))
            if let v = rec["val_loss"] as? Float { line += String(format: " | val %.4f", v) }
            print(line)
            try log?.write(rec)
        }
        let outDir = URL(fileURLWithPath: options.out)
        try ModelFile.save(config: cfg, params: UnsafeBufferPointer(trainer.model.params.buffer), to: outDir.appendingPathComponent("model.bin"))
        try tokenizer.save(to: outDir.appendingPathComponent("tokenizer.json"))
        print(String(format: "done        %d steps in %@, final val loss %.4f; model saved to %@/model.bin",
                     tc.steps, formatDuration(Date().timeIntervalSince(start)), lastVal ?? .nan, options.out))
    }
}
