// Checkpoints, resume, signals and test fault injection for `train`.
import ArgumentParser
import Foundation
import ProtoCore
import ProtoData
import ProtoMPI
import ProtoPipeline

struct CheckpointOptions: ParsableArguments {
    @Option(name: .customLong("checkpoint-dir"), help: "Folder for checkpoints (default OUT/checkpoints when checkpointing or resuming).")
    var checkpointDir: String?
    @Option(name: .customLong("checkpoint-every"), help: "Write a checkpoint every N steps (0: only when stopped by SIGTERM/SIGUSR1, if --checkpoint-dir or --resume is given).")
    var checkpointEvery: Int = 0
    @Option(name: .customLong("keep"), help: "Complete checkpoints to keep (older ones are deleted).")
    var keep: Int = 3
    @Flag(help: "Resume from the newest complete checkpoint in the checkpoint folder (start fresh if there is none).")
    var resume = false
    @Flag(name: .customLong("resume-new-data"), help: "With --resume: continue on a --data folder other than the checkpoint's (on purpose), from the start of its data order.")
    var resumeNewData = false
    @Flag(name: .customLong("skip-nonfinite"), help: "Skip the update of a step whose loss or gradients are NaN/inf instead of stopping the run.")
    var skipNonFinite = false
    @Option(name: .customLong("debug-fail-at"), help: ArgumentHelp("Test hook: RANK:STEP makes that rank exit abruptly at step STEP (1-based, as the console counts).", visibility: .hidden))
    var debugFailAt: String?
    @Option(name: .customLong("debug-nan-at"), help: ArgumentHelp("Test hook: RANK:STEP poisons that rank's gradients at step STEP (1-based).", visibility: .hidden))
    var debugNaNAt: String?

    /// Whether checkpoints are written or read at all.
    var enabled: Bool { checkpointDir != nil || checkpointEvery > 0 || resume }

    func directory(out: String) -> URL {
        URL(fileURLWithPath: checkpointDir ?? (out as NSString).appendingPathComponent("checkpoints"))
    }

    static func rankStep(_ text: String?, _ flag: String) throws -> (rank: Int, step: Int)? {
        guard let text else { return nil }
        let p = text.split(separator: ":").map { Int($0) }
        guard p.count == 2, let r = p[0], let s = p[1], r >= 0, s >= 1 else { throw ValidationError("\(flag) '\(text)' must be RANK:STEP with STEP ≥ 1 (as the console counts), e.g. 2:5") }
        return (r, s)
    }

    func validate(ranks: Int) throws {
        if checkpointEvery < 0 { throw ValidationError("--checkpoint-every \(checkpointEvery) must be ≥ 0") }
        if keep < 1 { throw ValidationError("--keep \(keep) must be at least 1 (the newest checkpoint is always kept)") }
        if resumeNewData && !resume { throw ValidationError("--resume-new-data only applies with --resume") }
        for (text, flag) in [(debugFailAt, "--debug-fail-at"), (debugNaNAt, "--debug-nan-at")] {
            if let (r, _) = try Self.rankStep(text, flag), r >= ranks { throw ValidationError("\(flag): rank \(r) does not exist (\(ranks) ranks)") }
        }
    }
}

/// The signal that asked the run to stop (0: none). Written by the signal handler only.
nonisolated(unsafe) var pendingStopSignal: Int32 = 0

/// SIGTERM (Slurm's time limit) and SIGUSR1 (`sbatch --signal=USR1@T`) ask for a checkpoint
/// and a clean stop at the end of the current step.
func installStopHandlers() {
    for sig in [SIGTERM, SIGUSR1] {
        signal(sig) { s in pendingStopSignal = s }
    }
}

/// The run stopped on a signal after writing a checkpoint; exit status 75 (EX_TEMPFAIL)
/// tells a job script to requeue.
struct StoppedBySignal: Error, CustomStringConvertible {
    var signal: Int32
    var step: Int
    var description: String { "stopped by signal \(signal) after step \(step); checkpoint written — rerun with --resume to continue" }
}

struct Recovery {
    let session: Session
    let options: CheckpointOptions
    let root: URL
    let identity: CheckpointIdentity

    /// Every rank: writes its stage; rank 0 writes the loader position and, after all
    /// stages are on disk, the manifest (the DONE marker); then prunes old checkpoints.
    func write(_ trainer: DistributedTrainer, stepsDone: Int, loader: DataLoader?) throws -> URL {
        let link = session.link
        let dir = Checkpoint.stepDirectory(root, step: stepsDone)
        let mine = try Checkpoint.writeStage(trainer.stage, rank: link.rank, to: dir)
        let sum = UInt64(mine.checksum, radix: 16)!
        let all = try link.gather([Double(mine.bytes), Double(sum >> 32), Double(sum & 0xFFFF_FFFF)], root: 0)
        if let all {
            var files = all.enumerated().map { r, v in
                CheckpointFile(name: Checkpoint.stageFileName(rank: r), bytes: Int(v[0]),
                               checksum: String(format: "%016llx", (UInt64(v[1]) << 32) | UInt64(v[2])))
            }
            if let loader {
                let enc = JSONEncoder(); enc.outputFormatting = .sortedKeys
                files.append(try Checkpoint.writeFile(enc.encode(loader.position), name: "loader.json", to: dir))
            }
            try Checkpoint.writeManifest(CheckpointManifest(step: stepsDone, identity: identity, files: files), to: dir)
            Checkpoint.prune(root, keep: options.keep)
        }
        try link.barrier()
        return dir
    }

    /// Every rank: finds the newest complete checkpoint (rank 0 decides), checks it against
    /// this run, and loads this rank's stage. Returns the step to start at and, on rank 0,
    /// the loader position.
    func resume(_ trainer: DistributedTrainer) throws -> (step: Int, position: DataLoader.Position?) {
        let link = session.link, rank = link.rank
        var step = 0, problem: String?
        if rank == 0 {
            if let newest = Checkpoint.complete(in: root).last {
                do {
                    let m = try Checkpoint.readManifest(newest.dir)
                    var mine = identity
                    if options.resumeNewData { mine.data = m.identity.data }  // the user said so
                    let diff = m.identity.differences(from: mine)
                    if diff.isEmpty { step = m.step } else {
                        problem = "checkpoint \(newest.dir.path) does not match this run:\n  " + diff.joined(separator: "\n  ")
                    }
                } catch { problem = "\(error)" }
            }
        }
        let agreed = try link.allreduceSum([problem == nil ? 0 : 1, Double(step)])
        if agreed[0] != 0 { throw StartupFailure(message: rank == 0 ? problem : nil) }
        step = Int(agreed[1])
        guard step > 0 else { return (0, nil) }
        // Every rank loads its own stage from the shared folder and checks it.
        let dir = Checkpoint.stepDirectory(root, step: step)
        var failure: String?
        var position: DataLoader.Position?
        do {
            let m = try Checkpoint.readManifest(dir)
            guard let entry = m.files.first(where: { $0.name == Checkpoint.stageFileName(rank: rank) }) else {
                throw CheckpointError("\(dir.path)/manifest.json lists no stage file for rank \(rank)")
            }
            try Checkpoint.readStage(trainer.stage, rank: rank, from: dir, expected: entry)
            if rank == 0 {
                position = try JSONDecoder().decode(DataLoader.Position.self, from: Checkpoint.readFile(name: "loader.json", from: dir, manifest: m))
            }
        } catch { failure = "\(error)" }
        if let failure { FileHandle.standardError.write(Data("protomodel: rank \(rank): cannot resume: \(failure)\n".utf8)) }
        let failed = try link.allreduceSum([failure == nil ? 0 : 1])[0]
        if failed != 0 { throw StartupFailure(message: nil) }
        return (step, position)
    }
}
