// `protomodel train`: one pipeline stage per MPI rank (np=1 is the single-process trainer).
// Rank 0 loads the data, feeds stage 0 and is the only rank that prints or logs.
import ArgumentParser
import Foundation
import ProtoCore
import ProtoData
import ProtoMPI
import ProtoPipeline

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a GPT on prepared token shards, one pipeline stage per MPI rank.",
        discussion: "Run as `mpirun -np S protomodel train ...`; without mpirun it trains in one process.")

    @OptionGroup var model: ModelOptions
    @OptionGroup var options: TrainOptions
    @OptionGroup var pipeline: PipelineOptions
    @OptionGroup var threading: ThreadOptions

    func run() throws {
        try MPIEnv.initialize()
        defer { MPIEnv.finalize() }
        let link = try MPILink(recvTimeout: pipeline.recvTimeout)
        do {
            try train(link)
        } catch let e as StartupFailure {
            throw e  // every rank knows; rank 0 prints it (see main)
        } catch {
            // A failure on one rank: say which, and stop every rank now rather than hang.
            FileHandle.standardError.write(Data("protomodel: rank \(link.rank): \(error)\n".utf8))
            MPIEnv.abort(1)
        }
    }

    private func train(_ link: MPILink) throws {
        let rank = link.rank, size = link.size
        // Checks every rank makes identically: all ranks fail together, rank 0 says why.
        func agreed<T>(_ body: () throws -> T) throws -> T {
            do { return try body() } catch { throw StartupFailure(message: rank == 0 ? "\(error)" : nil) }
        }
        let tc = try agreed { try options.trainConfig() }
        var cfg = try agreed { try model.config() }
        try agreed { try pipeline.apply(to: &cfg) }
        try agreed { try threading.apply() }

        // Rank 0 reads the tokenizer and data; everyone learns the vocabulary from it.
        var loaders: (train: DataLoader, valBatches: [Microbatch], tokenizer: Tokenizer)?
        var failure: Error?
        let evalChunks = (options.evalBatches + tc.microbatches - 1) / tc.microbatches
        if rank == 0 {
            do { loaders = try loadData(cfg: cfg, tc: tc, evalMicrobatches: evalChunks * tc.microbatches) } catch { failure = error }
        }
        let hello = try link.allreduceSum([rank == 0 && failure == nil ? 1 : 0, Double(loaders?.tokenizer.vocabSize ?? 0)])
        if let failure { throw StartupFailure(message: "\(failure)") }
        guard hello[0] == 1 else { throw StartupFailure(message: nil) }
        cfg.vocabSize = Int(hello[1])
        try agreed { try cfg.validate() }
        let split = try agreed { try pipeline.layerSplit(nLayer: cfg.nLayer, stages: size) }

        // Every rank must have been started with the same settings.
        let fingerprint = Self.fingerprint([String(describing: cfg), String(describing: tc), "\(split)",
                                            pipeline.schedule.rawValue, pipeline.codec.rawValue])
        let sum = try link.allreduceSum([fingerprint])[0]
        guard sum == fingerprint * Double(size) else {
            throw StartupFailure(message: "ranks were started with different settings; give every rank the same flags")
        }

        let specs = try StageSpec.stages(split: split, nLayer: cfg.nLayer)
        let sched = PipelineSchedule(kind: pipeline.schedule, stages: size, microbatches: tc.microbatches)
        let stage = PipelineStage(config: cfg, stage: specs[rank], train: tc, schedule: sched,
                                  makeCodec: pipeline.makeCodec, comm: StageComm(link: link, stage: rank, stages: size))
        let trainer = DistributedTrainer(stage: stage, split: split)

        let log = rank == 0 ? try options.log.map { try JSONLWriter(path: $0) } : nil
        let tokensPerStep = tc.microbatches * tc.batchSize * cfg.seqLen
        if rank == 0, let l = loaders {
            print("model       \(cfg.parameterCount) params: d=\(cfg.dModel) L=\(cfg.nLayer) NH=\(cfg.nHead) T=\(cfg.seqLen) V=\(cfg.vocabSize) (preset \(model.preset))")
            print("data        \(options.data): train \(l.train.tokenCount) tokens, val slice \(l.valBatches.count * tc.batchSize * cfg.seqLen) tokens")
            print("pipeline    \(size) stage(s), split \(split.map(String.init).joined(separator: ",")), \(pipeline.schedule.rawValue), codec \(pipeline.describe(cfg)), \(MPIEnv.libraryVersion)")
            print("run         \(tc.steps) steps × \(tokensPerStep) tokens (B=\(tc.batchSize), M=\(tc.microbatches)), lr \(tc.schedule.maxLR)")
            try log?.write(["type": "config", "model": jsonObject(cfg), "train": jsonObject(tc),
                            "versions": RunInfo.versions(mpi: MPIEnv.libraryVersion), "host": RunInfo.host,
                            "git": RunInfo.gitRevision, "world_size": size, "split": split,
                            "schedule": pipeline.schedule.rawValue, "codec": pipeline.codec.rawValue,
                            "codec_detail": pipeline.describe(cfg),
                            "data": options.data, "threads_per_rank": threading.threads])
        }

        let start = Clock.wall()
        var lastVal: Float?
        for step in 0..<tc.steps {
            let batches = loaders.map { l in (0..<tc.microbatches).map { _ in l.train.next() } }
            let report = try trainer.step(step, batches: batches)
            let isLast = step == tc.steps - 1
            var val: Float?
            if isLast || (options.evalEvery > 0 && (step + 1) % options.evalEvery == 0) {
                val = try trainer.evaluate(loaders?.valBatches, chunks: evalChunks)
                lastVal = val ?? lastVal
            }
            guard let r = report else { continue }
            guard r.loss.isFinite else {
                throw NonFiniteError(what: "loss", stage: size - 1, step: step, microbatch: nil)
            }
            let elapsed = Clock.wall() - start
            let eta = elapsed / Double(step + 1) * Double(tc.steps - step - 1)
            var line = String(format: "step %5d/%d | loss %.4f | lr %.2e | %7.1f ms | %7.0f tok/s | ETA %@",
                              step + 1, tc.steps, r.loss, r.lr, r.stepSeconds * 1000, Double(tokensPerStep) / r.stepSeconds,
                              formatDuration(eta))
            if let val { line += String(format: " | val %.4f", val) }
            print(line)
            // Bytes a dense fp32 wire would carry for the same messages (ratio = dense / actual).
            let messages = Double(tc.microbatches * max(0, size - 1))
            let denseBytes = messages * Double(WireBuffer.headerBytes + 4 * tc.batchSize * cfg.seqLen * cfg.dModel)
            let werr = r.wireError
            var rec: [String: Any] = [
                "type": "step", "step": step, "loss": r.loss, "lr": r.lr, "grad_norm": r.gradNorm,
                "step_time_s": r.stepSeconds, "tokens_per_s": Double(tokensPerStep) / r.stepSeconds,
                "bytes_fwd": r.bytesForward, "bytes_bwd": r.bytesBackward,
                "bytes_per_token_fwd": r.bytesForward / Double(tokensPerStep * max(1, size - 1)),
                "bytes_per_token_bwd": r.bytesBackward / Double(tokensPerStep * max(1, size - 1)),
                "compression_fwd": r.bytesForward > 0 ? denseBytes / r.bytesForward : 1,
                "compression_bwd": r.bytesBackward > 0 ? denseBytes / r.bytesBackward : 1,
                "wire_rel_error_fwd": werr.relativeForward, "wire_rel_error_bwd": werr.relativeBackward,
                "bubble_share_wall": r.bubbleShare,
                "stages": r.stages.map { ["fwd_s": $0.forwardSeconds, "bwd_s": $0.backwardSeconds, "opt_s": $0.optimizerSeconds,
                                          "codec_s": $0.codecSeconds, "recv_wait_s": $0.recvWaitSeconds, "wall_s": $0.stepWallSeconds] }]
            if let val { rec["val_loss"] = val }
            try log?.write(rec)
        }
        let whole = try trainer.gatherParameters()
        if rank == 0, let whole, let l = loaders {
            let outDir = URL(fileURLWithPath: options.out)
            try whole.withUnsafeBufferPointer { try ModelFile.save(config: cfg, params: $0, to: outDir.appendingPathComponent("model.bin")) }
            try l.tokenizer.save(to: outDir.appendingPathComponent("tokenizer.json"))
            print(String(format: "done        %d steps in %@, final val loss %.4f; model saved to %@/model.bin",
                         tc.steps, formatDuration(Clock.wall() - start), lastVal ?? .nan, options.out))
        }
    }

    private func loadData(cfg: ModelConfig, tc: TrainConfig, evalMicrobatches: Int)
        throws -> (train: DataLoader, valBatches: [Microbatch], tokenizer: Tokenizer) {
        let dir = URL(fileURLWithPath: options.data)
        let tokenizer = try Tokenizer.load(from: dir.appendingPathComponent("tokenizer.json"))
        if let v = model.vocabSize, v != tokenizer.vocabSize {
            throw ValidationError("--vocab-size \(v) disagrees with \(options.data)/tokenizer.json (\(tokenizer.vocabSize)); drop the flag or re-run prepare")
        }
        let train = try DataLoader(shards: Shard.list(in: dir, split: "train"), vocabSize: tokenizer.vocabSize,
                                   seqLen: cfg.seqLen, batchSize: tc.batchSize, seed: tc.dataSeed, shuffle: true)
        let val = try DataLoader(shards: Shard.list(in: dir, split: "val"), vocabSize: tokenizer.vocabSize,
                                 seqLen: cfg.seqLen, batchSize: tc.batchSize, seed: 0, shuffle: false)
        let vb = val.fixedBatches(evalMicrobatches)
        guard vb.count == evalMicrobatches else {
            throw ValidationError("validation data in \(options.data) has \(vb.count) micro-batches of \(tc.batchSize)×\(cfg.seqLen + 1) tokens, \(evalMicrobatches) needed; lower --eval-batches or --batch-size")
        }
        return (train, vb, tokenizer)
    }

    /// A 40-bit FNV-1a hash (exact in a Double, so an all-reduce can compare it).
    static func fingerprint(_ parts: [String]) -> Double {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in parts.joined(separator: "|").utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
        return Double(h & 0xFF_FFFF_FFFF)
    }
}

/// A failure every rank knows about before training starts (bad flags or data): rank 0
/// reports it and all ranks exit with status 1. `message` is nil on the ranks that only
/// learned that rank 0 failed.
struct StartupFailure: Error, CustomStringConvertible {
    var message: String?
    var description: String { message ?? "" }
}
