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
    @OptionGroup var codec: CodecOptions
    @OptionGroup var checkpoint: CheckpointOptions
    @OptionGroup var threading: ThreadOptions

    func run() throws {
        try runRanks(recvTimeout: pipeline.recvTimeout) { try train($0) }
    }

    private func train(_ link: MPILink) throws {
        let choice = try agreedCheck(rank: link.rank) { try codec.choice() }
        let session = try Session(link: link, model: model, options: options, pipeline: pipeline, threading: threading,
                                  check: { cfg, split in
                                      var c = cfg; try choice.apply(to: &c, split: split); _ = try LinkModel.parse(codec.link)
                                      try checkpoint.validate(ranks: link.size)
                                  },
                                  fingerprint: ["\(choice)", codec.link, "\(checkpoint.enabled)", "\(checkpoint.checkpointEvery)", "\(checkpoint.resume)"])
        let emuLink = try LinkModel.parse(codec.link)
        let (trainer, cfg) = try session.makeTrainer(choice: choice, links: [emuLink], schedule: pipeline.schedule)
        let rank = link.rank, size = link.size, tc = session.tc
        trainer.stage.skipNonFinite = checkpoint.skipNonFinite
        if let (r, s) = try CheckpointOptions.rankStep(checkpoint.debugNaNAt, "--debug-nan-at"), r == rank { trainer.stage.injectNaNAtStep = s }

        // Checkpoints and resume.
        var recovery: Recovery?
        var startStep = 0
        var position: DataLoader.Position?
        if checkpoint.enabled {
            let identity = CheckpointIdentity(worldSize: size, split: session.split, model: cfg, codec: choice.label(dModel: cfg.dModel),
                                              schedule: pipeline.schedule.rawValue, batchSize: tc.batchSize,
                                              microbatches: tc.microbatches, totalSteps: tc.steps, dataSeed: tc.dataSeed,
                                              data: session.data?.identity)
            let r = Recovery(session: session, options: checkpoint, root: checkpoint.directory(out: options.out), identity: identity)
            if checkpoint.resume {
                (startStep, position) = try r.resume(trainer)
                if checkpoint.resumeNewData && startStep > 0 && rank == 0 {
                    print("resume      --resume-new-data: continuing on \(options.data) from the start of its data order")
                    position = nil
                }
            }
            recovery = r
            installStopHandlers()
        }
        let log = rank == 0 ? try options.log.map { try JSONLWriter(path: $0, append: startStep > 0) } : nil
        let tokensPerStep = session.tokensPerStep
        let showEmulated = session.clock == .virtual || !emuLink.isOff
        if rank == 0, let d = session.data {
            print("model       \(cfg.parameterCount) params: d=\(cfg.dModel) L=\(cfg.nLayer) NH=\(cfg.nHead) T=\(cfg.seqLen) V=\(cfg.vocabSize) (preset \(model.preset))")
            print("data        \(options.data): train \(d.trainTokens) tokens, val slice \(d.valBatches.count * tc.batchSize * cfg.seqLen) tokens")
            print("pipeline    \(size) stage(s), split \(session.split.map(String.init).joined(separator: ",")), \(pipeline.schedule.rawValue), codec \(choice.label(dModel: cfg.dModel)), \(MPIEnv.libraryVersion)")
            print("link        \(emuLink.isOff ? "off" : emuLink.name), \(session.clock.rawValue) clock")
            print("run         \(tc.steps) steps × \(tokensPerStep) tokens (B=\(tc.batchSize), M=\(tc.microbatches)), lr \(tc.schedule.maxLR)")
            if let r = recovery {
                print("checkpoints \(r.root.path)" + (checkpoint.checkpointEvery > 0 ? " every \(checkpoint.checkpointEvery) steps, keep \(checkpoint.keep)" : " on SIGTERM/SIGUSR1 only")
                      + (checkpoint.resume ? (startStep > 0 ? "; resumed after step \(startStep)" : "; no checkpoint to resume, starting fresh") : ""))
            }
            try log?.write(["type": startStep > 0 ? "resume" : "config", "resumed_at_step": startStep, "model": jsonObject(cfg), "train": jsonObject(tc),
                            "versions": RunInfo.versions(mpi: MPIEnv.libraryVersion), "host": RunInfo.host,
                            "git": RunInfo.gitRevision, "world_size": size, "split": session.split,
                            "schedule": pipeline.schedule.rawValue, "codec": choice.kind.rawValue, "codec_detail": choice.label(dModel: cfg.dModel),
                            "link": emuLink.name, "clock": session.clock.rawValue,
                            "data": options.data, "threads_per_rank": threading.threads])
        }

        let start = Clock.wall()
        var emulatedTotal = 0.0
        var peakMB: [Double] = []
        let failAt = try CheckpointOptions.rankStep(checkpoint.debugFailAt, "--debug-fail-at")
        let lastVal = try session.run(trainer, steps: tc.steps, evalEvery: options.evalEvery ?? 50, startStep: startStep,
                                      position: position, recovery: recovery, failAt: failAt,
                                      onCheckpoint: { step, dir in if rank == 0 { print("checkpoint  step \(step) written to \(dir.path)") } }) { step, r, val in
            let elapsed = Clock.wall() - start
            let eta = elapsed / Double(step + 1 - startStep) * Double(tc.steps - step - 1)
            let emu = r.emulated[0]
            peakMB = r.stages.map { $0.peakResidentBytes / 1_048_576 }
            emulatedTotal += emu.stepSeconds
            var line = String(format: "step %5d/%d | loss %.4f | lr %.2e | %7.1f ms | %7.0f tok/s",
                              step + 1, tc.steps, r.loss, r.lr, r.stepSeconds * 1000, Double(tokensPerStep) / r.stepSeconds)
            if showEmulated {
                line += String(format: " | emulated %7.1f ms, link %2.0f%%", emu.stepSeconds * 1000, emu.linkWaitShare * 100)
            }
            line += " | ETA " + formatDuration(eta)
            if r.skipped { line += " | SKIPPED (non-finite)" }
            if let val { line += String(format: " | val %.4f", val) }
            print(line)
            let (perBoundary, denseBytes) = session.wireBaseline(cfg)
            let werr = r.wireError
            var rec: [String: Any] = [
                "type": "step", "step": step + 1, "loss": r.loss, "lr": r.lr, "grad_norm": r.gradNorm,
                "step_time_s": r.stepSeconds, "tokens_per_s": Double(tokensPerStep) / r.stepSeconds,
                "step_time_emulated_s": emu.stepSeconds, "tokens_per_s_emulated": Double(tokensPerStep) / max(emu.stepSeconds, 1e-12),
                "emulated_time_s": emulatedTotal,
                "compute_share": emu.computeShare, "link_wait_share": emu.linkWaitShare, "bubble_share": emu.bubbleShare,
                "bytes_fwd": r.bytesForward, "bytes_bwd": r.bytesBackward,
                "bytes_per_token_fwd": r.bytesForward / perBoundary, "bytes_per_token_bwd": r.bytesBackward / perBoundary,
                "compression_fwd": r.bytesForward > 0 ? denseBytes / r.bytesForward : 1,
                "compression_bwd": r.bytesBackward > 0 ? denseBytes / r.bytesBackward : 1,
                "wire_rel_error_fwd": werr.relativeForward, "wire_rel_error_bwd": werr.relativeBackward,
                "bubble_share_wall": r.bubbleShare,
                "stages": r.stages.enumerated().map { i, s -> [String: Any] in
                    ["fwd_s": s.forwardSeconds, "bwd_s": s.backwardSeconds, "opt_s": s.optimizerSeconds,
                     "codec_s": s.codecSeconds, "recv_wait_s": s.recvWaitSeconds, "wall_s": s.stepWallSeconds,
                     "link_wait_s": emu.perRank[i].linkWait, "idle_s": emu.perRank[i].idle,
                     "peak_rss_mb": s.peakResidentBytes / 1_048_576] }]
            if let val { rec["val_loss"] = val }
            if r.skipped {  // JSON has no NaN: a skipped step's loss and norm are null
                rec["skipped"] = true
                if !r.loss.isFinite { rec["loss"] = NSNull() }
                if !r.gradNorm.isFinite { rec["grad_norm"] = NSNull() }
            }
            try log?.write(rec)
        }
        let whole = try trainer.gatherParameters()
        if rank == 0, let whole, let d = session.data {
            let outDir = URL(fileURLWithPath: options.out)
            try whole.withUnsafeBufferPointer { try ModelFile.save(config: cfg, params: $0, to: outDir.appendingPathComponent("model.bin")) }
            try d.tokenizer.save(to: outDir.appendingPathComponent("tokenizer.json"))
            if !peakMB.isEmpty {
                print("memory      peak per rank: " + peakMB.map { String(format: "%.0f", $0) }.joined(separator: ", ") + " MiB")
            }
            print(String(format: "done        %d steps in %@, final val loss %.4f; model saved to %@/model.bin",
                         tc.steps, formatDuration(Clock.wall() - start), lastVal ?? .nan, options.out))
        }
    }
}
