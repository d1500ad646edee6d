// The checkpoint, resume and fault-injection flags of `train` (the work is ProtoTrain's CheckpointManager).
import ArgumentParser
import Foundation
import ProtoCore
import ProtoData
import ProtoMPI
import ProtoPipeline

struct CheckpointOptions: ParsableArguments {
    @Option(name: .customLong("checkpoint-dir"), help: "Folder for checkpoints (default OUT/checkpoints).")
    var checkpointDir: String?
    @Option(name: .customLong("checkpoint-every"), help: "Write a checkpoint every N steps and at the end (0: only when stopped by SIGTERM/SIGUSR1, so a preempted run loses nothing).")
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
