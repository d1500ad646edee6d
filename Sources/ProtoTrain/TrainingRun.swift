// The run loop as a library type (torchtitan's Trainer): the start-up every rank goes through
// (all ranks agree on their settings, per-node choices are made once, rank 0 loads the data),
// the step loop with evaluation, checkpoint and stop cadence, and the stage set-up. It runs
// over any StageLink, so XCTest drives it with in-memory ranks; the CLI only builds the
// settings from flags and prints what it reports.
import Foundation
import ProtoCore
import ProtoData
import ProtoPipeline

/// The emulator clock a run asks for; `auto` is resolved once for the whole job.
public enum ClockRequest: String, CaseIterable, Codable, Sendable { case auto, virtual, sleep }

/// Everything a run's ranks must agree on, as parsed from each rank's command line.
public struct RunSettings: Codable, Equatable, Sendable {
    /// The model shape before a codec applies; the vocabulary comes from the tokenizer.
    public var model: ModelConfig
    /// --vocab-size when given (it must match the tokenizer).
    public var vocabSize: Int?
    public var train: TrainConfig
    public var split: [Int]?
    public var schedule: ScheduleKind
    public var clock: ClockRequest
    /// Validation micro-batches (rounded up to whole groups of M).
    public var evalBatches: Int
    public var data: String
    public var threads: Int
    /// Pipeline stages (nil: one per rank). Ranks beyond them are data-parallel replicas:
    /// world size = stages × replicas, replica r's stage s on rank r·stages + s.
    public var stages: Int?
    /// How gradients travel between replicas (fp32, bf16, int8).
    public var replicaFormat: CoordinateFormat = .fp32
    /// 1: replicas sum gradients every step; H > 1: local SGD, weights averaged every H steps.
    public var replicaSyncEvery = 1
    /// How emulated links share latency and transfer.
    public var linkKind: LinkKind = .speedrun
    /// Emulated stage speed (StageSpeed syntax: native, 30tflops, x1000).
    public var stageSpeed: String = "native"
    /// Command-specific settings every rank must share (codec words, links, checkpoint flags).
    public var extra: [String]
    /// What to do when ranks differ in `extra` words a host's hardware decides rather than its
    /// flags (e.g. the bf16 kernel under `--bf16-kernel auto`), keyed by word prefix; set by the
    /// command that makes the words. Advice only: not part of what ranks compare.
    public var extraAdvice: [String: String] = [:]
    enum CodingKeys: String, CodingKey {
        case model, vocabSize, train, split, schedule, clock, evalBatches, data, threads, stages, replicaFormat
        case replicaSyncEvery, linkKind, stageSpeed, extra
    }
    public init(model: ModelConfig, vocabSize: Int?, train: TrainConfig, split: [Int]?, schedule: ScheduleKind,
                clock: ClockRequest, evalBatches: Int, data: String, threads: Int, linkKind: LinkKind = .speedrun,
                stageSpeed: String = "native", extra: [String]) {
        self.model = model; self.vocabSize = vocabSize; self.train = train; self.split = split; self.schedule = schedule
        self.clock = clock; self.evalBatches = evalBatches; self.data = data; self.threads = threads
        self.linkKind = linkKind; self.stageSpeed = stageSpeed; self.extra = extra
    }
}

/// What rank 0 loads: the training data (a loader per run of the data order), the fixed
/// validation slice, the tokenizer and the data's identity for checkpoints.
public struct LoadedData {
    public var makeTrainLoader: () throws -> DataLoader
    public var trainTokens: Int
    public var trainWindows: Int
    public var valBatches: [Microbatch]
    public var tokenizer: Tokenizer
    public var identity: DataIdentity

    /// Loads `dir` for a model of `cfg` and `tc`, with `valMicrobatches` of validation.
    public static func load(_ dir: String, cfg: ModelConfig, vocabSize: Int?, tc: TrainConfig, valMicrobatches: Int) throws -> LoadedData {
        try PreparedData.check(dir)
        let url = URL(fileURLWithPath: dir)
        let tokenizer = try Tokenizer.load(from: url.appendingPathComponent("tokenizer.json"))
        if let v = vocabSize, v != tokenizer.vocabSize {
            throw ConfigError.invalid(field: "vocab-size", reason: "\(v) disagrees with \(dir)/tokenizer.json (\(tokenizer.vocabSize)); drop the flag or re-run prepare")
        }
        let trainShards = try Shard.list(in: url, split: "train")
        let make = {
            try DataLoader(shards: trainShards, vocabSize: tokenizer.vocabSize, seqLen: cfg.seqLen,
                           batchSize: tc.batchSize, seed: tc.dataSeed, shuffle: true)
        }
        let first = try make()
        let val = try DataLoader(shards: Shard.list(in: url, split: "val"), vocabSize: tokenizer.vocabSize,
                                 seqLen: cfg.seqLen, batchSize: tc.batchSize, seed: 0, shuffle: false)
        let vb = val.fixedBatches(valMicrobatches)
        guard vb.count == valMicrobatches else {
            throw DataError.tooSmall(path: dir, problem: "its validation data has \(vb.count) micro-batches of \(tc.batchSize)×\(cfg.seqLen + 1) tokens, \(valMicrobatches) needed; lower --eval-batches, --batch-size or --seq-len, or prepare more data")
        }
        let tokBytes = try FileIO.read(url.appendingPathComponent("tokenizer.json"))
        let shardIDs = trainShards.map { u -> String in
            let size = (try? FileManager.default.attributesOfItem(atPath: u.path)[.size] as? NSNumber)?.intValue ?? -1
            return "\(u.lastPathComponent):\(size)"
        }
        return LoadedData(makeTrainLoader: make, trainTokens: first.tokenCount, trainWindows: first.windowCount, valBatches: vb,
                          tokenizer: tokenizer, identity: DataIdentity(shards: shardIDs, tokenizerSHA256: Digest.sha256(tokBytes)))
    }
}

/// SIGTERM (Slurm's time limit, preemption) and SIGUSR1 (`sbatch --signal=B:USR1@T`, forwarded
/// by the job script) ask for a checkpoint and a clean stop at the end of the current step.
public enum StopSignal {
    /// The signal that asked the run to stop (0: none). Written by the handler only.
    nonisolated(unsafe) public static var pending: Int32 = 0
    public static func install() {
        for sig in [SIGTERM, SIGUSR1] { signal(sig) { s in StopSignal.pending = s } }
    }
}

/// The run stopped on a signal after writing a checkpoint; exit status 75 (EX_TEMPFAIL)
/// tells a job script to requeue.
public struct StoppedBySignal: Error, CustomStringConvertible {
    public var signal: Int32
    public var step: Int
    public var description: String { "stopped by signal \(signal) after step \(step); checkpoint written — rerun with --resume to continue" }
}

/// An error on one rank during a step: which rank, which step (1-based), what failed.
public struct StepFailure: Error, CustomStringConvertible {
    public var rank: Int
    public var step: Int
    public var underlying: Error
    public var description: String { "step \(step): \(underlying)" }
}

public final class TrainingRun {
    public let link: StageLink
    public var rank: Int { link.rank }
    public var size: Int { link.size }
    /// Pipeline stages S and data-parallel replicas R (S·R = world size); this rank's stage and replica.
    public let stages: Int
    public var replicas: Int { link.size / stages }
    public var stage: Int { link.rank % stages }
    public var replica: Int { link.rank / stages }
    public let settings: RunSettings
    public let tc: TrainConfig
    /// The model shape before a codec applies (vocabulary from the tokenizer).
    public let base: ModelConfig
    public let split: [Int]
    /// Rank 0 only.
    public let data: LoadedData?
    public let evalChunks: Int
    /// The clock every rank uses (auto resolved once for the whole job).
    public let clock: ClockMode
    /// The emulated stage speed, rank 0's measured core rate (FLOP/s, single-thread sgemm of
    /// the model's MLP shape in thread CPU time) and the resulting charge per CPU second.
    public let stageSpeed: StageSpeed
    public let coreFlops: Double
    public let computeScale: Double

    /// Start-up, on every rank. `check` validates what depends on the model shape and split
    /// (codecs, links) the same way on every rank. Any failure stops every rank together with
    /// rank 0's message (`ReportedStartupError`). `localRanks`/`cores` describe this rank's node.
    public init(link: StageLink, settings: RunSettings, localRanks: Int, cores: Int,
                check: (ModelConfig, [Int]) throws -> Void) throws {
        self.link = link
        self.settings = settings
        let rank = link.rank
        // 1. Every rank was started with the same settings: rank 0's are sent to all, and any
        //    rank that differs says in which.
        let enc = JSONEncoder(); enc.outputFormatting = .sortedKeys
        let mine = try enc.encode(settings)
        let reference = try link.broadcastData(rank == 0 ? mine : nil, root: 0)
        var problem: String?
        if reference != mine {
            let a = (try? JSONSerialization.jsonObject(with: reference)) as? [String: Any] ?? [:]
            let b = (try? JSONSerialization.jsonObject(with: mine)) as? [String: Any] ?? [:]
            let keys = Set(a.keys).union(b.keys).filter { k in
                !(((a[k]).map { "\($0)" } ?? "") == ((b[k]).map { "\($0)" } ?? ""))
            }.sorted()
            problem = "rank \(rank) was started with other settings than rank 0 (\(keys.isEmpty ? "settings" : keys.joined(separator: ", ")) differ); give every rank the same flags"
            // The extra words name codecs, links and the product kernel: say which differ, and what
            // the command that made them advises (a word a host's CPU decides differs under the same flags).
            let wordsA = (a["extra"] as? [String]) ?? [], wordsB = (b["extra"] as? [String]) ?? []
            if keys.contains("extra") {
                let only0 = wordsA.filter { !wordsB.contains($0) }, onlyMe = wordsB.filter { !wordsA.contains($0) }
                problem! += ": rank 0 has [\(only0.joined(separator: ", "))], rank \(rank) [\(onlyMe.joined(separator: ", "))]"
                let advice = settings.extraAdvice.filter { key, _ in (only0 + onlyMe).contains { $0.hasPrefix(key) } }
                for text in Set(advice.values).sorted() { problem! += " — " + text }
            }
        }
        try Self.agree(link, problem, everyRankSays: true)
        tc = settings.train
        // 2. Per-node choices, made once: the clock is virtual if any node has more ranks than cores.
        switch settings.clock {
        case .virtual: clock = .virtual
        case .sleep: clock = .sleep
        case .auto: clock = try link.allreduceMax([localRanks > cores ? 1 : 0])[0] != 0 ? .virtual : .sleep
        }
        // 3. Rank 0 loads the data; everyone learns the vocabulary from it.
        var cfg = settings.model
        evalChunks = (settings.evalBatches + tc.microbatches - 1) / tc.microbatches
        var loaded: LoadedData?
        problem = nil
        if rank == 0 {
            do { loaded = try LoadedData.load(settings.data, cfg: cfg, vocabSize: settings.vocabSize, tc: tc, valMicrobatches: evalChunks * tc.microbatches) }
            catch { problem = "\(error)" }
        }
        try Self.agree(link, problem, everyRankSays: false)
        cfg.vocabSize = Int(try link.allreduceMax([Double(loaded?.tokenizer.vocabSize ?? 0)])[0])
        // 4. Shape checks every rank makes identically.
        var split: [Int] = []
        let S = settings.stages ?? link.size
        problem = nil
        do {
            try cfg.validate()
            guard S >= 1, link.size % S == 0 else {
                throw ConfigError.invalid(field: "stages", reason: "\(S) does not divide the \(link.size) ranks; run stages × replicas ranks (e.g. -np \(S * max(1, link.size / max(S, 1))))")
            }
            let R = link.size / S
            guard settings.replicaSyncEvery == 1 || R > 1 else {
                throw ConfigError.invalid(field: "replica-sync-every", reason: "\(settings.replicaSyncEvery) needs data-parallel replicas, and this run has one pipeline (run -np S·R with --stages S, R ≥ 2, or leave it at 1)")
            }
            guard tc.microbatches % R == 0 else {
                throw ConfigError.invalid(field: "microbatches", reason: "\(tc.microbatches) cannot be shared by \(R) replicas; give a multiple of \(R) (each replica runs M/R micro-batches of the step)")
            }
            split = try settings.split ?? StageSpec.evenSplit(nLayer: cfg.nLayer, stages: S)
            guard split.count == S else {
                throw ConfigError.invalid(field: "split", reason: "\(split.map(String.init).joined(separator: ",")) has \(split.count) stages but the pipeline has \(S) (\(link.size) ranks\(R > 1 ? " = \(S) stages × \(R) replicas" : "")); give one layer count per stage (or change -np / --stages)")
            }
            let specs = try StageSpec.stages(split: split, nLayer: cfg.nLayer)
            try check(cfg, split)
            let slots = PipelineSchedule(kind: settings.schedule, stages: S, microbatches: tc.microbatches / R).maxInFlight(stage: link.rank % S)
            try StageModel.checkFits(config: cfg, stage: specs[link.rank % S], batchSize: tc.batchSize, slots: slots)
        } catch { problem = link.rank == 0 ? "\(error)" : "rank \(link.rank): \(error)" }
        try Self.agree(link, problem, everyRankSays: true)
        self.split = split
        stages = S
        base = cfg
        data = loaded
        // 5. Emulated stage speed: rank 0 measures this core, everyone uses its figure.
        problem = nil
        var speed = StageSpeed.native
        do {
            speed = try StageSpeed.parse(settings.stageSpeed)
            if speed != .native && clock != .virtual {
                throw ConfigError.invalid(field: "stage-speed", reason: "\(settings.stageSpeed) needs the virtual clock (--clock virtual): a faster stage cannot be emulated by sleeping")
            }
        } catch { problem = "\(error)" }
        try Self.agree(link, problem, everyRankSays: false)
        stageSpeed = speed
        var rate = 0.0
        if case .target = speed, rank == 0 {
            rate = EngineBenchmark.coreFlops(M: min(1024, tc.batchSize * cfg.seqLen), K: cfg.dModel, N: cfg.mlpHidden)
        }
        coreFlops = try link.allreduceMax([rate])[0]
        computeScale = speed.scale(coreFlops: coreFlops)
    }

    /// A fresh pipeline stage for this rank with `variant` (codec and model levers), following
    /// `links` (each under the run's link model, compute charged at its stage speed), and the
    /// trainer over it. Checks that every rank rebuilt the same E_fixed and U
    /// from the seed.
    public func makeTrainer(variant: Variant, links: [LinkModel]) throws -> (DistributedTrainer, ModelConfig) {
        let cfg = try variant.config(base, split: split)
        let spec = variant.spec
        let specs = try StageSpec.stages(split: split, nLayer: cfg.nLayer)
        let sched = PipelineSchedule(kind: settings.schedule, stages: stages, microbatches: tc.microbatches / replicas)
        try link.barrier()  // a shared epoch for the sleep clock
        // The run's link model and stage speed apply to every link this trainer follows.
        let followed = links.map { l -> LinkModel in var l = l; l.kind = settings.linkKind; return l }
        let time = EmulatedTime(mode: clock, links: followed, epoch: Clock.wall(), computeScale: computeScale)
        let stage = PipelineStage(config: cfg, stage: specs[self.stage], train: tc, schedule: sched,
                                  makeCodec: { spec.makeCodec(model: $0) },
                                  comm: StageComm(link: link, stage: self.stage, stages: stages, replica: replica, replicas: replicas), time: time)
        stage.replicaFormat = settings.replicaFormat
        if settings.replicaSyncEvery > 1 {
            // Every rank sees the same codec, so all refuse together.
            guard stage.model.manifoldTraining == nil else {
                throw ConfigError.invalid(field: "replica-sync-every", reason: "\(settings.replicaSyncEvery) (local SGD) cannot run with an adaptive U or learned projectors, whose gradient sync spans every replica; use 1 or a fixed-subspace codec")
            }
            stage.replicaSyncEvery = settings.replicaSyncEvery
        }
        try requireSameSeededTensors(Self.seededDigest(stage.model, adaptive: cfg.subspace?.adaptive != nil))
        return (DistributedTrainer(stage: stage, split: split), cfg)
    }

    /// Checks a run's outputs before any work: `out` exists or can be made, is writable and
    /// has room for `modelBytes`; the log's folder is writable. A new run (not `resume`)
    /// writes model.bin and tokenizer.json into `out` and starts its log afresh, so it refuses
    /// an `out` that holds either (another run's, or prepared data) and a non-empty log,
    /// naming the fix. Throws `IOError` or `ConfigError`.
    public static func checkOutputs(out: URL, log: URL?, resume: Bool, modelBytes: Int, checkpoints: URL? = nil) throws {
        // Prepared data is never a run's folder, resumed or not: its checkpoints or model would
        // land among the shards.
        for (flag, dir) in [("--out", out)] + (checkpoints.map { [("--checkpoint-dir", $0)] } ?? []) {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
            if names.contains("meta.json"), let shard = names.sorted().first(where: { $0.hasSuffix(".bin") && ($0.hasPrefix("train_") || $0.hasPrefix("val_")) }) {
                throw ConfigError.problem("\(flag) \(dir.path) holds prepared data (meta.json, \(shard)); a run must not write among the shards — choose another \(flag)")
            }
        }
        var isDir: ObjCBool = false
        if let log, FileManager.default.fileExists(atPath: log.path, isDirectory: &isDir), isDir.boolValue {
            throw ConfigError.problem("--log \(log.path) is a folder; give a file path, e.g. --log \(log.appendingPathComponent("train.jsonl").path)")
        }
        if !resume {
            for name in ["model.bin", "tokenizer.json"] where FileManager.default.fileExists(atPath: out.appendingPathComponent(name).path) {
                throw ConfigError.problem("--out \(out.path) already holds \(name) (another run's, or prepared data); a new run would overwrite it — choose another --out, or pass --resume to continue that run")
            }
            if let log, let size = (try? FileManager.default.attributesOfItem(atPath: log.path))?[.size] as? Int, size > 0 {
                throw ConfigError.problem("--log \(log.path) already holds a log; a new run would start it afresh — choose another --log, or pass --resume to continue that run")
            }
        }
        // Refusals first: a refused run leaves no folder behind.
        try AtomicFile.checkWritable(out, needBytes: modelBytes)
        if let log { try AtomicFile.checkWritable(log.deletingLastPathComponent()) }
    }

    /// SHA-256 (hex) of what a stage rebuilds from the seed rather than trains or receives,
    /// by tensor: E_fixed, the seeded bases of learned projectors (as a fresh stage holds
    /// them), and a fixed U.
    static func seededDigest(_ model: StageModel, adaptive: Bool) -> [String: String] {
        func sha(_ p: UnsafePointer<Float>, _ n: Int) -> String { Digest.sha256(UnsafeRawBufferPointer(start: p, count: 4 * n)) }
        var digest: [String: String] = [:]
        if let f = model.fixed { digest["E_fixed"] = sha(f.table.ptr, f.table.count) }
        // A fresh stage holds its seeded bases as built (makeTrainer runs before any step or resume).
        for t in model.manifoldTensors { digest[t.name] = sha(model.params.ptr + t.offset, t.count) }
        if let u = model.subspace, !adaptive { digest["U"] = sha(u.basis.ptr, u.d * u.k) }
        return digest
    }

    /// E_fixed and the seeded bases come from each node's own libm and BLAS: every rank must
    /// have rebuilt the same bits (`digest`, from `seededDigest`), or every rank stops with
    /// the ranks that differ named.
    func requireSameSeededTensors(_ digest: [String: String]) throws {
        let enc = JSONEncoder(); enc.outputFormatting = [.sortedKeys]
        let all = try link.gatherData(try enc.encode(digest), root: 0, purpose: "E_fixed and U digests")
        // Ranks hold different tensors (a projector lives on the two stages of its boundary):
        // each tensor's digest must equal the first rank's that holds it.
        var first: [String: String] = [:]
        var differing: [Int] = []
        for (rank, data) in (all ?? []).enumerated() {
            guard let d = try? JSONDecoder().decode([String: String].self, from: data) else { differing.append(rank); continue }
            var differs = false
            for (name, sha) in d.sorted(by: { $0.key < $1.key }) {
                if let seen = first[name] { differs = differs || seen != sha } else { first[name] = sha }
            }
            if differs { differing.append(rank) }
        }
        try Self.agree(link, differing.isEmpty ? nil : "ranks \(differing.map(String.init).joined(separator: ", ")) rebuilt a different E_fixed or U from the seed than rank 0 (different CPU arithmetic or protomodel build); run every rank with the same build on the same kind of CPU", everyRankSays: false)
    }

    /// Trains steps `startStep..<steps` (data order from the seed, restored to `position`
    /// when resuming). `beforeStep` runs on every rank before each step (test hooks);
    /// `onStep` sees every step's report and validation loss (rank 0). With `checkpoints`,
    /// writes one every `checkpointEvery` steps, at the end, and when a stop signal arrives
    /// (then throws `StoppedBySignal`). Returns the last validation loss (rank 0).
    @discardableResult
    public func run(_ trainer: DistributedTrainer, steps: Int, evalEvery: Int, startStep: Int = 0,
                    position: DataLoader.Position? = nil, checkpoints: CheckpointManager? = nil, checkpointEvery: Int = 0,
                    beforeStep: (Int) throws -> Void = { _ in },
                    onCheckpoint: (Int, URL) throws -> Void = { _, _ in },
                    onStep: (Int, StepReport, Float?) throws -> Void) throws -> Float? {
        let loader = try data?.makeTrainLoader()
        if let position { try loader?.restore(checked: position) }
        var lastVal: Float?
        for step in startStep..<steps {
            try beforeStep(step + 1)
            let batches = loader.map { l in (0..<tc.microbatches).map { _ in l.next() } }
            let report: StepReport?
            do { report = try trainer.step(step, batches: batches) } catch {
                throw StepFailure(rank: rank, step: step + 1, underlying: error)
            }
            var val: Float?
            if step == steps - 1 || (evalEvery > 0 && (step + 1) % evalEvery == 0) {
                do { val = try trainer.evaluate(data?.valBatches, chunks: evalChunks) } catch {
                    throw StepFailure(rank: rank, step: step + 1, underlying: error)
                }
                lastVal = val ?? lastVal
            }
            if let r = report {
                guard r.loss.isFinite || r.skipped else { throw NonFiniteError(what: "loss", stage: stages - 1, step: step + 1, microbatch: nil) }
                try onStep(step, r, val)
            }
            if let checkpoints {
                // One scalar all-reduce: a signal seen by any rank stops every rank at this step.
                let stop = Int32(try link.allreduceMax([Double(StopSignal.pending)])[0])
                if stop != 0 || (checkpointEvery > 0 && ((step + 1) % checkpointEvery == 0 || step + 1 == steps)) {
                    // Local SGD: a checkpoint is a sync point for weights and Adam moments, so
                    // replica 0's copy is every replica's state and a resume continues exactly.
                    if trainer.stage.replicaSyncEvery > 1 {
                        var met = StageStepMetrics()
                        try trainer.stage.averageReplicas(optimizerState: true, &met)
                    }
                    let dir = try checkpoints.write(trainer.stage, stepsDone: step + 1, position: loader?.position)
                    try onCheckpoint(step + 1, dir)
                }
                if stop != 0 { throw StoppedBySignal(signal: stop, step: step + 1) }
            }
        }
        return lastVal
    }

    public var tokensPerStep: Int { tc.microbatches * tc.batchSize * base.seqLen }

    /// Tokens crossing all boundaries per step (to turn bytes into bytes/token), and the
    /// bytes a dense fp32 wire would carry for the same messages (the compression baseline).
    /// Every replica's boundaries count: each carries its own share of the step's tokens.
    public func wireBaseline(_ cfg: ModelConfig) -> (tokens: Double, denseBytes: Double) {
        let boundaries = max(0, stages - 1)
        let message = WireBuffer.headerBytes + 4 * tc.batchSize * cfg.seqLen * cfg.dModel
        return (Double(tokensPerStep * max(1, boundaries)), Double(tc.microbatches * boundaries * message))
    }

    /// Every rank fails together when `problem` is set: on rank 0 (`everyRankSays` false: only
    /// rank 0 can have one) or on any rank (the first one's message is reported by rank 0).
    public static func agree(_ link: StageLink, _ problem: String?, everyRankSays: Bool) throws {
        if everyRankSays {
            let reports = try link.gatherData(Data((problem ?? "").utf8), root: 0, purpose: "start-up problems")
            let first = reports?.map { String(decoding: $0, as: UTF8.self) }.first { !$0.isEmpty }
            let verdict = try link.broadcastData(link.rank == 0 ? Data((first ?? "").utf8) : nil, root: 0)
            if !verdict.isEmpty { throw ReportedStartupError(link.rank == 0 ? String(decoding: verdict, as: UTF8.self) : nil) }
            return
        }
        let bad = try link.allreduceMax([problem == nil ? 0 : 1])[0]
        if bad != 0 { throw ReportedStartupError(link.rank == 0 ? problem : nil) }
    }
}

/// A check every rank makes identically: if it fails, all ranks fail together and rank 0
/// alone says why.
public func agreedCheck<T>(rank: Int, _ body: () throws -> T) throws -> T {
    do { return try body() } catch { throw ReportedStartupError(rank == 0 ? "\(error)" : nil) }
}
