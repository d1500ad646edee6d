// The JSON Lines run log: one typed record per line. The record types below are the log's
// schema (field names as written, snake_case); README "Run log" lists them.
import Foundation
import ProtoCore
import ProtoPipeline

/// First line of a log (and of each resumed segment): everything needed to reproduce the run.
public struct ConfigRecord: Codable, Sendable {
    public var type: String              // "config", or "resume" for a resumed run's segment
    public var resumedAtStep: Int        // steps already done when this segment started
    public var model: ModelConfig
    public var train: TrainConfig
    public var versions: [String: String]
    public var host: String
    public var git: String
    public var worldSize: Int
    public var split: [Int]
    public var schedule: String
    public var codec: String
    public var codecDetail: String
    public var link: String
    public var clock: String
    public var data: String
    public var threadsPerRank: Int
    /// The attention kernels rank 0 runs: "bf16 on AMX", "fused AVX-512" or "sgemm" (AttentionKernel).
    public var attention: String
    /// The matrix products of the linear layers and attention: "fp32", "bf16 on AMX" or
    /// "bf16 on AVX512-BF16" (`--matmul`, `--bf16-kernel`).
    public var matmul: String
    /// The link model (speedrun or streaming), the emulated stage speed, the core rate it is
    /// relative to (GFLOP/s) and what one CPU second is charged.
    public var linkModel: String
    public var stageSpeed: String
    public var coreGflops: Double
    public var computeScale: Double
    enum CodingKeys: String, CodingKey {
        case type, model, train, versions, host, git, split, schedule, codec, link, clock, data, attention, matmul
        case resumedAtStep = "resumed_at_step", worldSize = "world_size", codecDetail = "codec_detail", threadsPerRank = "threads_per_rank"
        case linkModel = "link_model", stageSpeed = "stage_speed", coreGflops = "core_gflops", computeScale = "compute_scale"
    }
    public init(type: String, resumedAtStep: Int, model: ModelConfig, train: TrainConfig, versions: [String: String], host: String,
                git: String, worldSize: Int, split: [Int], schedule: String, codec: String, codecDetail: String, link: String,
                clock: String, data: String, threadsPerRank: Int, run: TrainingRun) {
        self.type = type; self.resumedAtStep = resumedAtStep; self.model = model; self.train = train; self.versions = versions
        self.host = host; self.git = git; self.worldSize = worldSize; self.split = split; self.schedule = schedule
        self.codec = codec; self.codecDetail = codecDetail; self.link = link; self.clock = clock; self.data = data
        self.threadsPerRank = threadsPerRank
        attention = AttentionKernel.label(headSize: model.headSize)
        matmul = MatmulPrecision.current.label
        linkModel = run.settings.linkKind.rawValue; stageSpeed = run.stageSpeed.description
        coreGflops = run.coreFlops / 1e9; computeScale = run.computeScale
    }
}

/// One stage's part of a step record.
public struct StageRecord: Codable, Sendable {
    public var fwdS: Double, bwdS: Double, optS: Double, codecS: Double
    public var recvWaitS: Double, wallS: Double, linkWaitS: Double, idleS: Double
    public var peakRssMB: Double
    public var syncBytes: Double
    enum CodingKeys: String, CodingKey {
        case fwdS = "fwd_s", bwdS = "bwd_s", optS = "opt_s", codecS = "codec_s", recvWaitS = "recv_wait_s", wallS = "wall_s"
        case linkWaitS = "link_wait_s", idleS = "idle_s", peakRssMB = "peak_rss_mb", syncBytes = "sync_bytes"
    }
}

/// One optimizer step. `step` counts from 1, as the console does. A skipped step's loss and
/// gradient norm may be non-finite: they are written as null.
public struct StepRecord: Codable, Sendable {
    public var type = "step"
    public var step: Int
    public var loss: Float?
    public var lr: Float
    public var gradNorm: Double?
    public var stepTimeS: Double
    public var tokensPerS: Double
    public var stepTimeEmulatedS: Double
    public var tokensPerSEmulated: Double
    public var emulatedTimeS: Double
    public var computeShare: Double, linkWaitShare: Double, bubbleShare: Double, bubbleShareWall: Double
    public var bytesFwd: Double, bytesBwd: Double, bytesSync: Double
    /// Data-parallel gradient traffic between replicas (all ranks) and its emulated time.
    public var bytesReplica: Double, replicaTimeS: Double
    public var bytesPerTokenFwd: Double, bytesPerTokenBwd: Double
    public var compressionFwd: Double, compressionBwd: Double
    public var wireRelErrorFwd: Double, wireRelErrorBwd: Double
    public var valLoss: Float?
    public var skipped: Bool?
    public var stages: [StageRecord]
    enum CodingKeys: String, CodingKey {
        case type, step, loss, lr, stages, skipped
        case gradNorm = "grad_norm", stepTimeS = "step_time_s", tokensPerS = "tokens_per_s"
        case stepTimeEmulatedS = "step_time_emulated_s", tokensPerSEmulated = "tokens_per_s_emulated", emulatedTimeS = "emulated_time_s"
        case computeShare = "compute_share", linkWaitShare = "link_wait_share", bubbleShare = "bubble_share", bubbleShareWall = "bubble_share_wall"
        case bytesFwd = "bytes_fwd", bytesBwd = "bytes_bwd", bytesSync = "bytes_sync"
        case bytesReplica = "bytes_replica", replicaTimeS = "replica_time_s"
        case bytesPerTokenFwd = "bytes_per_token_fwd", bytesPerTokenBwd = "bytes_per_token_bwd"
        case compressionFwd = "compression_fwd", compressionBwd = "compression_bwd"
        case wireRelErrorFwd = "wire_rel_error_fwd", wireRelErrorBwd = "wire_rel_error_bwd", valLoss = "val_loss"
    }

    /// The record of `report`: `tokens` per step, `perBoundary` tokens crossing all boundaries
    /// per step, `denseBytes` what a dense fp32 wire would carry for the same messages.
    public init(_ r: StepReport, step: Int, tokens: Int, perBoundary: Double, denseBytes: Double, emulatedTotal: Double, val: Float?) {
        let emu = r.emulated[0], w = r.wireError
        self.step = step
        loss = r.loss.isFinite ? r.loss : nil
        lr = r.lr
        gradNorm = r.gradNorm.isFinite ? r.gradNorm : nil
        stepTimeS = r.stepSeconds; tokensPerS = Double(tokens) / r.stepSeconds
        stepTimeEmulatedS = emu.stepSeconds; tokensPerSEmulated = Double(tokens) / max(emu.stepSeconds, 1e-12)
        emulatedTimeS = emulatedTotal
        computeShare = emu.computeShare; linkWaitShare = emu.linkWaitShare; bubbleShare = emu.bubbleShare; bubbleShareWall = r.bubbleShare
        bytesFwd = r.bytesForward; bytesBwd = r.bytesBackward; bytesSync = r.stages.reduce(0) { $0 + $1.bytesSentSync }
        bytesReplica = r.bytesReplica; replicaTimeS = r.stages.map(\.replicaSeconds).max() ?? 0
        bytesPerTokenFwd = r.bytesForward / perBoundary; bytesPerTokenBwd = r.bytesBackward / perBoundary
        compressionFwd = r.bytesForward > 0 ? denseBytes / r.bytesForward : 1
        compressionBwd = r.bytesBackward > 0 ? denseBytes / r.bytesBackward : 1
        wireRelErrorFwd = w.relativeForward; wireRelErrorBwd = w.relativeBackward
        valLoss = val
        skipped = r.skipped ? true : nil
        stages = r.stages.enumerated().map { i, s in
            StageRecord(fwdS: s.forwardSeconds, bwdS: s.backwardSeconds, optS: s.optimizerSeconds, codecS: s.codecSeconds,
                        recvWaitS: s.recvWaitSeconds, wallS: s.stepWallSeconds, linkWaitS: emu.perRank[i].linkWait,
                        idleS: emu.perRank[i].idle, peakRssMB: s.peakResidentBytes / 1_048_576, syncBytes: s.bytesSentSync)
        }
    }
}

/// The last line of a run stopped by a signal after writing its checkpoint (job scripts
/// requeue on it: mpirun reports SIGTERM as a failure even when every rank stopped cleanly).
public struct StopRecord: Codable, Sendable {
    public var type = "stop"
    public var signal: Int32
    public var step: Int
    public init(signal: Int32, step: Int) { self.signal = signal; self.step = step }
}

/// One pipeline boundary over the last step: its link and its traffic each way; link wait
/// is that of the receiving stages (a stage between two boundaries waits on both).
public struct BoundaryRecord: Codable, Sendable {
    public var boundary: Int
    public var link: String
    public var bytesFwd: Double, bytesBwd: Double
    public var linkWaitShareReceiverFwd: Double, linkWaitShareReceiverBwd: Double
    enum CodingKeys: String, CodingKey {
        case boundary, link
        case bytesFwd = "bytes_fwd", bytesBwd = "bytes_bwd"
        case linkWaitShareReceiverFwd = "link_wait_share_receiver_fwd", linkWaitShareReceiverBwd = "link_wait_share_receiver_bwd"
    }

    /// Every boundary of `report` (its first emulated link).
    public static func of(_ r: StepReport, link: LinkModel) -> [BoundaryRecord] {
        guard r.stages.count > 1, let e = r.emulated.first else { return [] }
        let step = max(e.stepSeconds, 1e-12)
        return (0..<(r.stages.count - 1)).map { b in
            BoundaryRecord(boundary: b, link: link.link(boundary: b).name,
                           bytesFwd: r.stages[b].bytesSentForward, bytesBwd: r.stages[b + 1].bytesSentBackward,
                           linkWaitShareReceiverFwd: e.perRank[b + 1].linkWait / step, linkWaitShareReceiverBwd: e.perRank[b].linkWait / step)
        }
    }
}

/// The last line of a finished run.
public struct SummaryRecord: Codable, Sendable {
    public var type = "summary"
    public var steps: Int
    public var finalValLoss: Float?
    public var wallS: Double
    public var emulatedTimeS: Double
    public var peakRssMB: [Double]
    public var modelFile: String
    public var boundaries: [BoundaryRecord]
    enum CodingKeys: String, CodingKey {
        case type, steps, boundaries
        case finalValLoss = "final_val_loss", wallS = "wall_s", emulatedTimeS = "emulated_time_s", peakRssMB = "peak_rss_mb", modelFile = "model_file"
    }
    public init(steps: Int, finalValLoss: Float?, wallS: Double, emulatedTimeS: Double, peakRssMB: [Double], modelFile: String,
                boundaries: [BoundaryRecord] = []) {
        self.steps = steps; self.finalValLoss = finalValLoss; self.wallS = wallS; self.emulatedTimeS = emulatedTimeS
        self.peakRssMB = peakRssMB; self.modelFile = modelFile; self.boundaries = boundaries
    }
}

/// The emulated timing of one step on one link (bench logs follow several links at once).
public struct EmulatedRecord: Codable, Sendable {
    public var link: String, clock: String
    public var stepTimeS: Double, computeShare: Double, linkWaitShare: Double, bubbleShare: Double
    enum CodingKeys: String, CodingKey {
        case link, clock
        case stepTimeS = "step_time_s", computeShare = "compute_share", linkWaitShare = "link_wait_share", bubbleShare = "bubble_share"
    }
    public init(_ e: EmulatedStep) {
        link = e.link.name; clock = e.clock.rawValue; stepTimeS = e.stepSeconds
        computeShare = e.computeShare; linkWaitShare = e.linkWaitShare; bubbleShare = e.bubbleShare
    }
}

/// One step of one codec in `protomodel bench`.
public struct BenchStepRecord: Codable, Sendable {
    public var type = "step"
    public var codec: String
    public var step: Int
    public var loss: Float?
    public var stepTimeS: Double
    public var bytesFwd: Double, bytesBwd: Double, bytesSync: Double
    public var emulated: [EmulatedRecord]
    public var valLoss: Float?
    enum CodingKeys: String, CodingKey {
        case type, codec, step, loss, emulated
        case stepTimeS = "step_time_s", bytesFwd = "bytes_fwd", bytesBwd = "bytes_bwd", bytesSync = "bytes_sync", valLoss = "val_loss"
    }
    public init(codec: String, step: Int, report r: StepReport, val: Float?) {
        self.codec = codec; self.step = step; loss = r.loss.isFinite ? r.loss : nil; stepTimeS = r.stepSeconds
        bytesFwd = r.bytesForward; bytesBwd = r.bytesBackward; bytesSync = r.stages.reduce(0) { $0 + $1.bytesSentSync }
        emulated = r.emulated.map(EmulatedRecord.init); valLoss = val
    }
}

/// The first line of a bench log.
public struct BenchConfigRecord: Codable, Sendable {
    public var type = "config"
    public var model: ModelConfig, train: TrainConfig
    public var versions: [String: String], host: String, git: String
    public var worldSize: Int, split: [Int]
    public var codecs: String, links: String, clock: String
    enum CodingKeys: String, CodingKey {
        case type, model, train, versions, host, git, split, codecs, links, clock
        case worldSize = "world_size"
    }
    public init(model: ModelConfig, train: TrainConfig, versions: [String: String], host: String, git: String, worldSize: Int,
                split: [Int], codecs: String, links: String, clock: String) {
        self.model = model; self.train = train; self.versions = versions; self.host = host; self.git = git
        self.worldSize = worldSize; self.split = split; self.codecs = codecs; self.links = links; self.clock = clock
    }
}

/// Writes typed records as JSON Lines, one per line, flushed as written.
public final class JSONLWriter {
    private let handle: FileHandle
    public let path: String
    private let encoder: JSONEncoder = { let e = JSONEncoder(); e.outputFormatting = [.sortedKeys]; return e }()

    /// Creates the log at `path`, or with `append` continues an existing one.
    public init(path: String, append: Bool = false) throws {
        self.path = path
        let url = URL(fileURLWithPath: path)
        try AtomicFile.makeFolder(url.deletingLastPathComponent())
        if !(append && FileManager.default.fileExists(atPath: path)) {
            guard FileManager.default.createFile(atPath: path, contents: nil) else {
                throw IOError(path: path, problem: "cannot create the log file (check the folder exists and is writable)")
            }
        }
        do { handle = try FileHandle(forWritingTo: url) } catch {
            throw IOError(path: path, problem: "cannot open the log for writing: \(AtomicFile.explain(access(path, W_OK) == 0 ? EIO : errno))")
        }
        if append { try handle.seekToEnd() }
    }

    public func write<T: Encodable>(_ record: T) throws {
        var data = try encoder.encode(record)
        data.append(0x0A)
        try handle.write(contentsOf: data)
    }

    deinit { try? handle.close() }
}
