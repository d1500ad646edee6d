// What `train` and `bench` share: the start-up every rank goes through (rank 0 loads the
// data, all ranks agree on the model and settings or stop together) and the step loop.
import ArgumentParser
import Foundation
import ProtoCore
import ProtoData
import ProtoMPI
import ProtoPipeline

struct LoadedData {
    var makeTrainLoader: () throws -> DataLoader
    var trainTokens: Int
    var valBatches: [Microbatch]
    var tokenizer: Tokenizer
    /// Shards and tokenizer hash, for the checkpoint identity.
    var identity: DataIdentity
}

final class Session {
    let link: MPILink
    var rank: Int { link.rank }
    var size: Int { link.size }
    let tc: TrainConfig
    /// The model shape before a codec applies its subspace (vocabulary from the tokenizer).
    let base: ModelConfig
    let split: [Int]
    let data: LoadedData?  // rank 0 only
    let evalChunks: Int
    let clock: ClockMode

    /// Every rank runs this. `check` validates what depends on the model shape (codecs,
    /// links) identically on every rank; `fingerprint` lists settings every rank must share.
    init(link: MPILink, model: ModelOptions, options: TrainOptions, pipeline: PipelineOptions, threading: ThreadOptions,
         check: (ModelConfig, [Int]) throws -> Void, fingerprint: [String]) throws {
        self.link = link
        let rank = link.rank, size = link.size
        func agreed<T>(_ body: () throws -> T) throws -> T { try agreedCheck(rank: rank, body) }
        tc = try agreed { try options.trainConfig() }
        var cfg = try agreed { try model.config() }
        try agreed { try threading.apply() }
        evalChunks = (options.evalBatches + tc.microbatches - 1) / tc.microbatches

        // Rank 0 reads the tokenizer and data; everyone learns the vocabulary from it.
        var loaded: LoadedData?
        var failure: Error?
        if rank == 0 {
            do { loaded = try Self.loadData(options: options, model: model, cfg: cfg, tc: tc, evalMicrobatches: evalChunks * tc.microbatches) } catch { failure = error }
        }
        let hello = try link.allreduceSum([rank == 0 && failure == nil ? 1 : 0, Double(loaded?.tokenizer.vocabSize ?? 0)])
        if let failure { throw StartupFailure(message: "\(failure)") }
        guard hello[0] == 1 else { throw StartupFailure(message: nil) }
        cfg.vocabSize = Int(hello[1])
        try agreed { try cfg.validate() }
        let split = try agreed { try pipeline.layerSplit(nLayer: cfg.nLayer, stages: size) }
        self.split = split
        try agreed { try check(cfg, split) }
        base = cfg
        data = loaded

        // Every rank must have been started with the same settings.
        let fp = Self.fingerprint([String(describing: cfg), String(describing: tc), "\(split)", pipeline.schedule.rawValue,
                                   pipeline.clock.rawValue] + fingerprint)
        let sum = try link.allreduceSum([fp])[0]
        guard sum == fp * Double(size) else {
            throw StartupFailure(message: rank == 0 ? "ranks were started with different settings; give every rank the same flags" : nil)
        }
        clock = pipeline.clockMode(localRanks: MPIEnv.localSize)
    }

    private static func loadData(options: TrainOptions, model: ModelOptions, cfg: ModelConfig, tc: TrainConfig,
                                 evalMicrobatches: Int) throws -> LoadedData {
        let dir = URL(fileURLWithPath: options.data)
        try PreparedData.check(options.data)
        let tokenizer = try Tokenizer.load(from: dir.appendingPathComponent("tokenizer.json"))
        if let v = model.vocabSize, v != tokenizer.vocabSize {
            throw ValidationError("--vocab-size \(v) disagrees with \(options.data)/tokenizer.json (\(tokenizer.vocabSize)); drop the flag or re-run prepare")
        }
        let trainShards = try Shard.list(in: dir, split: "train")
        let make = {
            try DataLoader(shards: trainShards, vocabSize: tokenizer.vocabSize, seqLen: cfg.seqLen,
                           batchSize: tc.batchSize, seed: tc.dataSeed, shuffle: true)
        }
        let first = try make()
        let val = try DataLoader(shards: Shard.list(in: dir, split: "val"), vocabSize: tokenizer.vocabSize,
                                 seqLen: cfg.seqLen, batchSize: tc.batchSize, seed: 0, shuffle: false)
        let vb = val.fixedBatches(evalMicrobatches)
        guard vb.count == evalMicrobatches else {
            throw ValidationError("validation data in \(options.data) has \(vb.count) micro-batches of \(tc.batchSize)×\(cfg.seqLen + 1) tokens, \(evalMicrobatches) needed; lower --eval-batches or --batch-size")
        }
        let tokBytes = try Data(contentsOf: dir.appendingPathComponent("tokenizer.json"))
        let shardIDs = try trainShards.map { u -> String in
            let size = (try FileManager.default.attributesOfItem(atPath: u.path)[.size] as? NSNumber)?.intValue ?? -1
            return "\(u.lastPathComponent):\(size)"
        }
        return LoadedData(makeTrainLoader: make, trainTokens: first.tokenCount, valBatches: vb, tokenizer: tokenizer,
                          identity: DataIdentity(shards: shardIDs, tokenizerSHA256: Digest.sha256(tokBytes)))
    }

    /// A fresh model (from the seed) with `choice` on the wire, following `links`.
    func makeTrainer(choice: CodecSpec, links: [LinkModel], schedule: ScheduleKind) throws -> (DistributedTrainer, ModelConfig) {
        var cfg = base
        try choice.apply(to: &cfg, split: split)
        let specs = try StageSpec.stages(split: split, nLayer: cfg.nLayer)
        let sched = PipelineSchedule(kind: schedule, stages: size, microbatches: tc.microbatches)
        try link.barrier()  // a shared epoch for the sleep clock
        let time = EmulatedTime(mode: clock, links: links, epoch: Clock.wall())
        let stage = PipelineStage(config: cfg, stage: specs[rank], train: tc, schedule: sched,
                                  makeCodec: { choice.makeCodec(model: $0) }, comm: StageComm(link: link, stage: rank, stages: size), time: time)
        return (DistributedTrainer(stage: stage, split: split), cfg)
    }

    /// Trains steps `startStep..<steps` (data order from the seed, restored to `position`
    /// when resuming); `onStep` sees every step's report (rank 0) and the validation loss when
    /// one was taken. With `recovery`, checkpoints every N steps and on SIGTERM/SIGUSR1.
    /// Returns the last validation loss (rank 0).
    @discardableResult
    func run(_ trainer: DistributedTrainer, steps: Int, evalEvery: Int, startStep: Int = 0,
             position: DataLoader.Position? = nil, recovery: Recovery? = nil, failAt: (rank: Int, step: Int)? = nil,
             onCheckpoint: (Int, URL) throws -> Void = { _, _ in },
             onStep: (Int, StepReport, Float?) throws -> Void) throws -> Float? {
        let loader = try data?.makeTrainLoader()
        if let position { loader?.restore(position) }
        var lastVal: Float?
        for step in startStep..<steps {
            if let f = failAt, f.rank == rank, f.step == step + 1 {
                FileHandle.standardError.write(Data("protomodel: rank \(rank): --debug-fail-at: exiting abruptly at step \(step + 1) (test hook)\n".utf8))
                exit(9)
            }
            let batches = loader.map { l in (0..<tc.microbatches).map { _ in l.next() } }
            let report: StepReport?
            do { report = try trainer.step(step, batches: batches) } catch {
                throw StepFailure(rank: rank, step: step + 1, underlying: error)
            }
            var val: Float?
            if step == steps - 1 || (evalEvery > 0 && (step + 1) % evalEvery == 0) {
                val = try trainer.evaluate(data?.valBatches, chunks: evalChunks)
                lastVal = val ?? lastVal
            }
            if let r = report {
                guard r.loss.isFinite || r.skipped else { throw NonFiniteError(what: "loss", stage: size - 1, step: step + 1, microbatch: nil) }
                try onStep(step, r, val)
            }
            if let recovery {
                // One scalar all-reduce: a signal seen by any rank stops every rank at this step.
                let stop = Int32(try link.allreduceMax([Double(pendingStopSignal)])[0])
                let every = recovery.options.checkpointEvery
                if stop != 0 || (every > 0 && (step + 1) % every == 0) || (step + 1 == steps && every > 0) {
                    let dir = try recovery.write(trainer, stepsDone: step + 1, loader: loader)
                    try onCheckpoint(step + 1, dir)
                }
                if stop != 0 { throw StoppedBySignal(signal: stop, step: step + 1) }
            }
        }
        return lastVal
    }

    var tokensPerStep: Int { tc.microbatches * tc.batchSize * base.seqLen }

    /// Tokens crossing all boundaries per step (to turn bytes into bytes/token), and the
    /// bytes a dense fp32 wire would carry for the same messages (the compression baseline).
    func wireBaseline(_ cfg: ModelConfig) -> (tokens: Double, denseBytes: Double) {
        let boundaries = max(0, size - 1)
        let message = WireBuffer.headerBytes + 4 * tc.batchSize * cfg.seqLen * cfg.dModel
        return (Double(tokensPerStep * max(1, boundaries)), Double(tc.microbatches * boundaries * message))
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

/// An error on one rank during a step: says which rank, which step (1-based, as the console
/// counts), and what failed.
struct StepFailure: Error, CustomStringConvertible {
    var rank: Int
    var step: Int
    var underlying: Error
    var description: String { "step \(step): \(underlying)" }
}

/// A failure already reported (by rank 0) with every rank synchronised: exit 1 quietly.
struct ReportedFailure: Error {}

/// A check every rank makes identically: if it fails, all ranks fail together and rank 0
/// alone says why.
func agreedCheck<T>(rank: Int, _ body: () throws -> T) throws -> T {
    do { return try body() } catch { throw StartupFailure(message: rank == 0 ? "\(error)" : nil) }
}

/// Runs `body` on every rank; a failure on one rank is reported with its rank and stops
/// the whole job at once (MPI_Abort) instead of leaving the others waiting.
func runRanks(recvTimeout: Double, _ body: (MPILink) throws -> Void) throws {
    try MPIEnv.initialize()
    defer { MPIEnv.finalize() }
    let link: MPILink
    do { link = try MPILink(recvTimeout: recvTimeout) } catch {
        // Same environment on every rank, so every rank fails here: rank 0 reports, all leave together.
        if MPIEnv.rank == 0 { FileHandle.standardError.write(Data("Error: \(error)\n".utf8)) }
        MPIEnv.barrier()
        throw ReportedFailure()
    }
    do {
        try body(link)
    } catch let e as StartupFailure {
        // Every rank knows. Rank 0 reports, then all leave together: a rank that exited
        // first would let mpirun kill rank 0 before it printed the reason.
        if link.rank == 0, let m = e.message { FileHandle.standardError.write(Data("Error: \(m)\n".utf8)) }
        try? link.barrier()
        throw ReportedFailure()
    } catch let e as StoppedBySignal {
        if link.rank == 0 { FileHandle.standardError.write(Data("protomodel: \(e)\n".utf8)) }
        throw ExitCode(75)
    } catch {
        FileHandle.standardError.write(Data("protomodel: rank \(link.rank): \(error)\n".utf8))
        MPIEnv.abort(1)
    }
}

/// The JSON form of a step report's emulated timings.
func emulatedRecord(_ e: EmulatedStep) -> [String: Any] {
    ["link": e.link.name, "clock": e.clock.rawValue, "step_time_s": e.stepSeconds,
     "compute_share": e.computeShare, "link_wait_share": e.linkWaitShare, "bubble_share": e.bubbleShare]
}
