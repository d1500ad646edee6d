// `protomodel train` (also what `protomodel` alone runs): one pipeline stage per MPI rank
// (np=1 is the single-process trainer). The run itself is ProtoTrain's TrainingRun; this
// file turns flags into its settings and prints what rank 0 reports.
import ArgumentParser
import Foundation
import ProtoCore
import ProtoData
import ProtoMPI
import ProtoPipeline
import ProtoTrain

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a GPT on prepared token shards, one pipeline stage per MPI rank (the default command).",
        discussion: "Run as `mpirun -np S protomodel train ...` (or just `mpirun -np S protomodel`); without mpirun it trains in one process.")

    @OptionGroup var model: ModelOptions
    @OptionGroup var options: TrainOptions
    @OptionGroup var pipeline: PipelineOptions
    @OptionGroup var codec: CodecOptions
    @OptionGroup var checkpoint: CheckpointOptions
    @OptionGroup var threading: ThreadOptions
    @Option(name: .customLong("init-from"), help: "Start from a Hugging Face folder (protomodel's `export`, or any Arcee checkpoint of a supported shape) instead of the seed; the model shape comes from the folder.")
    var initFrom: String?

    func run() throws {
        // A run refused or failed before it wrote anything leaves no empty folders of its own
        // behind (rmdir removes only empty folders, and only those this run made).
        let made = [options.out, checkpoint.directory(out: options.out).path].filter { !FileManager.default.fileExists(atPath: $0) }
        do {
            try runRanks(recvTimeout: pipeline.recvTimeout) { try train($0) }
        } catch {
            for dir in made.reversed() { rmdir(dir) }
            throw error
        }
    }

    private func train(_ link: MPILink) throws {
        let rank = link.rank, size = link.size
        let (choice, agreedSettings) = try agreedCheck(rank: rank) { () -> (Variant, RunSettings) in
            try threading.apply()
            try checkpoint.validate(ranks: size)
            if initFrom != nil && checkpoint.resume { throw CLIError("--init-from starts a new run; --resume continues one from its checkpoints — use one of them") }
            let c = try codec.choice(model: model)
            let s = try runSettings(model: model, options: options, pipeline: pipeline, threading: threading,
                                    extra: ["\(c)", codec.link, "\(checkpoint)", initFrom ?? ""])
            return (c, s)
        }
        var settings = agreedSettings
        var initial: (config: ModelConfig, params: [Float])?
        if let dir = initFrom {
            // Every rank reads the folder itself (it may be missing or damaged on one host
            // only), and all stop together if any rank cannot.
            var problem: String?
            do { initial = try HuggingFace.load(URL(fileURLWithPath: dir)) } catch { problem = "rank \(rank): \(error)" }
            try TrainingRun.agree(link, problem, everyRankSays: true)
            if let loaded = initial {
                try agreedCheck(rank: rank) {
                    let tokURL = URL(fileURLWithPath: options.data).appendingPathComponent("tokenizer.json")
                    if let t = try? Tokenizer.load(from: tokURL), t.vocabSize != loaded.config.vocabSize {
                        throw CLIError("--init-from \(dir): the model has a vocabulary of \(loaded.config.vocabSize) tokens but \(tokURL.path) has \(t.vocabSize); continue it on the data it was trained with (--data)")
                    }
                }
                var base = loaded.config
                base.subspace = nil; base.projector = nil
                settings.model = base
                settings.vocabSize = loaded.config.vocabSize
            }
        }
        let emuLink = try agreedCheck(rank: rank) { () -> LinkModel in
            let l = try LinkModel.parse(codec.link)
            let stages = pipeline.stages ?? size
            if let b = l.boundaries, b.count != stages - 1 {
                throw CLIError("--link '\(codec.link)' gives \(b.count) per-boundary links but \(stages) stage\(stages == 1 ? " has no boundary" : "s have \(stages - 1) boundar\(stages == 2 ? "y" : "ies")"); give one link\(stages > 1 ? ", or one per boundary separated by /" : "")")
            }
            return l
        }
        let run = try TrainingRun(link: link, settings: settings, localRanks: MPIEnv.localSize,
                                  cores: ProcessInfo.processInfo.activeProcessorCount) { cfg, split in
            _ = try choice.config(cfg, split: split)
        }
        let tc = run.tc
        let outDir = URL(fileURLWithPath: options.out)
        // Outputs are checked before any work: the folders exist or can be made and are
        // writable, and the model file fits.
        var problem: String?
        if rank == 0 {
            do {
                try TrainingRun.checkOutputs(out: outDir, log: options.log.map { URL(fileURLWithPath: $0) }, resume: checkpoint.resume,
                                             modelBytes: 4 * run.base.parameterCount * 2 + (1 << 20),
                                             checkpoints: checkpoint.directory(out: options.out))
            } catch { problem = "\(error)" }
        }
        try TrainingRun.agree(link, problem, everyRankSays: false)
        let (trainer, cfg) = try run.makeTrainer(variant: choice, links: [emuLink])
        if let initial {
            // The folder's model, each rank its own tensors; the optimizer starts fresh.
            try agreedCheck(rank: rank) {
                guard cfg == initial.config else {
                    throw CLIError("--init-from \(initFrom!): the folder holds \(initial.config.subspace != nil || initial.config.projector != nil ? "a subspace/projector model" : "a dense model"), but --codec \(choice) trains \(cfg.subspace != nil || cfg.projector != nil ? "a subspace/projector model" : "a dense model") of another shape; use the codec it was trained with (a raw export keeps a subspace model's factors)")
                }
            }
            let whole = ParamLayout(config: cfg, stage: .whole(cfg))
            let mine = trainer.stage.model
            for t in mine.layout.tensors {
                let w = whole.tensor(t.name)!
                initial.params.withUnsafeBufferPointer { (mine.params.ptr + t.offset).update(from: $0.baseAddress! + w.offset, count: t.count) }
            }
        }
        let label = try choice.label(run.base, split: run.split)
        trainer.stage.skipNonFinite = checkpoint.skipNonFinite
        if let (r, s) = try CheckpointOptions.rankStep(checkpoint.debugNaNAt, "--debug-nan-at"), r == rank { trainer.stage.injectNaNAtStep = s }

        // Checkpoints and resume.
        var manager: CheckpointManager?
        var startStep = 0
        var position: DataLoader.Position?
        do {  // Always on: with --checkpoint-every 0 a checkpoint is written only when a stop signal arrives.
            var identity = CheckpointIdentity(worldSize: size, split: run.split, model: cfg, codec: label,
                                              schedule: pipeline.schedule.rawValue, batchSize: tc.batchSize,
                                              microbatches: tc.microbatches, totalSteps: tc.steps, dataSeed: tc.dataSeed,
                                              data: run.data?.identity)
            identity.replicas = run.replicas > 1 ? run.replicas : nil
            identity.optimization = "lr \(tc.schedule.maxLR), min-lr \(tc.schedule.minLR), warmup \(tc.schedule.warmupSteps), "
                + "betas \(tc.adamw.beta1)/\(tc.adamw.beta2), weight-decay \(tc.adamw.weightDecay), grad-clip \(tc.gradClip), "
                + "replica-sync-every \(pipeline.replicaSyncEvery), replica-format \(pipeline.replicaFormat.rawValue)"
            let root = checkpoint.directory(out: options.out)
            var problem: String?
            do { try AtomicFile.checkWritable(root, needBytes: 12 * trainer.stage.model.params.count * 2) } catch { problem = "\(error)" }
            try TrainingRun.agree(link, problem, everyRankSays: true)
            let m = CheckpointManager(root: root, keep: checkpoint.keep, identity: identity, link: link)
            if checkpoint.resume {
                let r = try m.resume(trainer.stage, resumeNewData: checkpoint.resumeNewData, windows: run.data?.trainWindows)
                if rank == 0 { for n in r.notes { print("resume      \(n)") } }
                (startStep, position) = (r.step, r.position)
                if checkpoint.resumeNewData && startStep > 0 {
                    if rank == 0 { print("resume      --resume-new-data: continuing on \(options.data) from the start of its data order") }
                    position = nil
                }
            } else {
                try m.requireFresh()
            }
            manager = m
            StopSignal.install()
        }
        // --resume appends, also when no checkpoint was found yet (its earlier lines stay).
        let log = rank == 0 ? try options.log.map { try JSONLWriter(path: $0, append: startStep > 0 || checkpoint.resume) } : nil
        let tokensPerStep = run.tokensPerStep
        let showEmulated = run.clock == .virtual || !emuLink.isOff
        if rank == 0, let d = run.data {
            print("model       \(cfg.parameterCount) params: d=\(cfg.dModel) L=\(cfg.nLayer) NH=\(cfg.nHead) T=\(cfg.seqLen) V=\(cfg.vocabSize) (preset \(model.presetName()))")
            print("data        \(options.data): train \(d.trainTokens) tokens, val slice \(d.valBatches.count * tc.batchSize * cfg.seqLen) tokens")
            if run.replicas > 1 {
                let cadence = pipeline.replicaSyncEvery > 1
                    ? "local SGD: weights averaged every \(pipeline.replicaSyncEvery) steps and at checkpoints, fp32"
                    : "gradients summed each step, \(pipeline.replicaFormat.rawValue) between replicas"
                print("layout      \(run.stages) stages × \(run.replicas) replicas (\(cadence)):")
                for r in 0..<run.replicas {
                    print("            replica \(r): ranks " + (0..<run.stages).map { String(r * run.stages + $0) }.joined(separator: " ") + (r == 0 ? "  (rank 0 loads the data and feeds every replica)" : ""))
                }
            }
            print("pipeline    \(run.stages) stage(s), split \(run.split.map(String.init).joined(separator: ",")), \(pipeline.schedule.rawValue), codec \(label), \(MPIEnv.libraryVersion)")
            print("link        \(emuLink.isOff ? "off" : emuLink.name + " (\(pipeline.linkModel.rawValue) model)"), \(run.clock.rawValue) clock"
                  + (run.stageSpeed == .native ? "" : String(format: ", stages at %@ (this core %.0f GFLOP/s: compute × %.4g)", run.stageSpeed.description, run.coreFlops / 1e9, run.computeScale)))
            print("run         \(tc.steps) steps × \(tokensPerStep) tokens (B=\(tc.batchSize), M=\(tc.microbatches)), lr \(tc.schedule.maxLR), attention \(AttentionKernel.label(headSize: cfg.headSize))\(threading.matmul == .bf16 ? ", matmul \(MatmulPrecision.current.label)" : "")")
            if let m = manager {
                print("checkpoints \(m.root.path)" + (checkpoint.checkpointEvery > 0 ? " every \(checkpoint.checkpointEvery) steps, keep \(checkpoint.keep)" : " on SIGTERM/SIGUSR1 only")
                      + (checkpoint.resume ? (startStep > 0 ? "; resumed after step \(startStep)" : "; no checkpoint to resume, starting fresh") : ""))
            }
            try log?.write(ConfigRecord(type: startStep > 0 ? "resume" : "config", resumedAtStep: startStep, model: cfg, train: tc,
                                        versions: RunInfo.versions(mpi: MPIEnv.libraryVersion), host: RunInfo.host, git: RunInfo.gitRevision,
                                        worldSize: size, split: run.split, schedule: pipeline.schedule.rawValue, codec: choice.description,
                                        codecDetail: label, link: emuLink.name, clock: run.clock.rawValue,
                                        data: options.data, threadsPerRank: threading.threads, run: run))
        }

        let start = Clock.wall()
        var emulatedTotal = 0.0
        var peakMB: [Double] = []
        var lastReport: StepReport?
        let failAt = try CheckpointOptions.rankStep(checkpoint.debugFailAt, "--debug-fail-at")
        let (perBoundary, denseBytes) = run.wireBaseline(cfg)
        let lastVal: Float?
        do { lastVal = try run.run(trainer, steps: tc.steps, evalEvery: options.evalEvery ?? 50, startStep: startStep,
                                  position: position, checkpoints: manager, checkpointEvery: checkpoint.checkpointEvery,
                                  beforeStep: { step in
                                      if let f = failAt, f.rank == rank, f.step == step {
                                          FileHandle.standardError.write(Data("protomodel: rank \(rank): --debug-fail-at: exiting abruptly at step \(step) (test hook)\n".utf8))
                                          Foundation.exit(9)
                                      }
                                  },
                                  onCheckpoint: { step, dir in if rank == 0 { print("checkpoint  step \(step) written to \(dir.path)") } }) { step, r, val in
            let elapsed = Clock.wall() - start
            let eta = elapsed / Double(step + 1 - startStep) * Double(tc.steps - step - 1)
            let emu = r.emulated[0]
            peakMB = r.stages.map { $0.peakResidentBytes / 1_048_576 }
            lastReport = r
            emulatedTotal += emu.stepSeconds
            var line = String(format: "step %5d/%d | loss %.4f | lr %.2e | %7.1f ms | %7.0f tok/s",
                              step + 1, tc.steps, r.loss, r.lr, r.stepSeconds * 1000, Double(tokensPerStep) / r.stepSeconds)
            if showEmulated {
                line += String(format: " | emulated %7.1f ms, link %2.0f%%", emu.stepSeconds * 1000, emu.linkWaitShare * 100)
            }
            if run.replicas > 1 {
                line += String(format: " | replicas %.0f KB", r.bytesReplica / 1000)
            }
            line += " | ETA " + formatDuration(eta)
            if r.skipped { line += " | SKIPPED (non-finite)" }
            if let val { line += String(format: " | val %.4f", val) }
            print(line)
            try log?.write(StepRecord(r, step: step + 1, tokens: tokensPerStep, perBoundary: perBoundary, denseBytes: denseBytes,
                                      emulatedTotal: emulatedTotal, val: val))
        } } catch let e as StoppedBySignal {
            try log?.write(StopRecord(signal: e.signal, step: e.step))
            throw e
        }
        let whole = try trainer.gatherParameters()
        if rank == 0, let whole, let d = run.data {
            let modelFile = outDir.appendingPathComponent("model.bin")
            try whole.withUnsafeBufferPointer { try ModelFile.save(config: cfg, params: $0, to: modelFile) }
            try d.tokenizer.save(to: outDir.appendingPathComponent("tokenizer.json"))
            if !peakMB.isEmpty {
                print("memory      peak per rank: " + peakMB.map { String(format: "%.0f", $0) }.joined(separator: ", ") + " MiB")
            }
            let bounds = lastReport.map { BoundaryRecord.of($0, link: emuLink) } ?? []
            if emuLink.boundaries != nil {
                for b in bounds {
                    print(String(format: "boundary %2d %@: %.0f / %.0f KB per step each way, receiver link wait %.0f%% / %.0f%% of the step",
                                 b.boundary, b.link, b.bytesFwd / 1000, b.bytesBwd / 1000, 100 * b.linkWaitShareReceiverFwd, 100 * b.linkWaitShareReceiverBwd))
                }
            }
            try log?.write(SummaryRecord(steps: tc.steps, finalValLoss: lastVal, wallS: Clock.wall() - start, emulatedTimeS: emulatedTotal,
                                         peakRssMB: peakMB, modelFile: modelFile.path, boundaries: bounds))
            if startStep >= tc.steps {
                print("done        the checkpoint is at step \(startStep) of \(tc.steps): nothing left to train; model saved to \(options.out)/model.bin")
            } else {
                print(String(format: "done        %d steps in %@, final val loss %.4f; model saved to %@/model.bin",
                             tc.steps, formatDuration(Clock.wall() - start), lastVal ?? Float.nan, options.out))
            }
        }
    }
}
