// Checkpoints across ranks (the file formats are in ProtoPipeline/Checkpoint.swift): every
// rank writes its stage, rank 0 the loader position and — once every stage is on disk — the
// manifest, the DONE marker. Resume takes the newest intact checkpoint of this run and falls
// back past damaged ones, saying so; a fresh run refuses a folder that holds another run's.
import Foundation
import ProtoCore
import ProtoData
import ProtoPipeline

public final class CheckpointManager {
    public let root: URL
    public let keep: Int
    public let identity: CheckpointIdentity
    let link: StageLink

    /// `identity` is this run's (rank 0's holds the data identity; others may have none).
    public init(root: URL, keep: Int, identity: CheckpointIdentity, link: StageLink) {
        self.root = root; self.keep = keep; self.identity = identity; self.link = link
    }

    /// A fresh run (no --resume): the folder must hold no complete checkpoint, or the run's
    /// own pruning would delete them and its model overwrite theirs. Every rank calls this.
    public func requireFresh() throws {
        var problem: String?
        if link.rank == 0, let newest = Checkpoint.complete(in: root).last {
            problem = "\(root.path) already holds checkpoints (newest: step \(newest.step)); pass --resume to continue that run, or choose another --out or --checkpoint-dir for a new one"
        }
        try agree(problem)
    }

    /// Writes this rank's part of the checkpoint after `stepsDone` steps; rank 0 adds the
    /// loader position, the manifest and prunes to the newest `keep`. Returns the folder.
    public func write(_ stage: PipelineStage, stepsDone: Int, position: DataLoader.Position?) throws -> URL {
        let dir = Checkpoint.stepDirectory(root, step: stepsDone)
        // One file per stage: replica 0 writes it (every replica holds the same weights).
        let writer = stage.comm.replica == 0
        let mine = writer ? try Checkpoint.writeStage(stage, rank: stage.stageIndex, to: dir) : nil
        let enc = JSONEncoder(); enc.outputFormatting = .sortedKeys
        let all = try link.gatherData(mine.map { try enc.encode($0) } ?? Data(), root: 0, purpose: "checkpoint files")
        if let all {
            var files = try all.filter { !$0.isEmpty }.map { try JSONDecoder().decode(CheckpointFile.self, from: $0) }
            if let position { files.append(try Checkpoint.writeFile(enc.encode(position), name: "loader.json", to: dir)) }
            try Checkpoint.writeManifest(CheckpointManifest(step: stepsDone, identity: identity, files: files), to: dir)
            AtomicFile.syncFolder(root)
            Checkpoint.prune(root, keep: keep)
        }
        try link.barrier()
        return dir
    }

    /// What resuming found: the step to start at (0: nothing to resume), rank 0's loader
    /// position, and notes for the user (checkpoints skipped as damaged).
    public struct Resumed {
        public var step: Int
        public var position: DataLoader.Position?
        public var notes: [String]
    }

    /// Every rank: loads the newest complete checkpoint that matches this run and is intact on
    /// every rank; a damaged one is skipped (and named) in favour of the one before. A
    /// checkpoint of a different run stops with every difference listed. `windows` is the
    /// training loader's window count (rank 0), to check the saved position against.
    public func resume(_ stage: PipelineStage, resumeNewData: Bool, windows: Int?) throws -> Resumed {
        let rank = link.rank
        var candidates: [Int] = []
        var problem: String?
        if rank == 0 {
            let done = Checkpoint.complete(in: root)
            candidates = done.map(\.step).reversed()
            if let newest = done.last {
                // The newest decides whether this is the same run; damage is handled below.
                if let m = try? Checkpoint.readManifest(newest.dir) {
                    var mine = identity
                    if resumeNewData { mine.data = m.identity.data }
                    let diff = m.identity.differences(from: mine)
                    if !diff.isEmpty { problem = "checkpoint \(newest.dir.path) does not match this run:\n  " + diff.joined(separator: "\n  ") }
                }
            }
        }
        try agree(problem)
        let list = try link.broadcastData(rank == 0 ? try JSONEncoder().encode(candidates) : nil, root: 0)
        candidates = try JSONDecoder().decode([Int].self, from: list)
        var notes: [String] = []
        var damaged: [Int] = []
        for step in candidates {
            let dir = Checkpoint.stepDirectory(root, step: step)
            var failure: String?
            var position: DataLoader.Position?
            do {
                let m = try Checkpoint.readManifest(dir)
                guard m.step == step, m.step >= 1, m.step <= identity.totalSteps else {
                    throw CheckpointError("\(dir.path)/manifest.json says step \(m.step), which is not a step of this \(identity.totalSteps)-step run")
                }
                if rank == 0 {
                    var mine = identity
                    if resumeNewData { mine.data = m.identity.data }
                    let diff = m.identity.differences(from: mine)
                    guard diff.isEmpty else { throw CheckpointError("\(dir.path) belongs to another run: " + diff.joined(separator: "; ")) }
                }
                let s = stage.stageIndex
                guard let entry = m.files.first(where: { $0.name == Checkpoint.stageFileName(rank: s) }) else {
                    throw CheckpointError("\(dir.path)/manifest.json lists no stage file for stage \(s)")
                }
                try Checkpoint.readStage(stage, rank: s, from: dir, expected: entry, manifestVersion: m.version)
                if rank == 0 {
                    let p = try JSONDecoder().decode(DataLoader.Position.self, from: Checkpoint.readFile(name: "loader.json", from: dir, manifest: m))
                    guard p.epoch >= 0, p.epoch <= 1 << 40, p.index >= 0, p.index <= (windows ?? Int.max) else {
                        throw CheckpointError("\(dir.path)/loader.json: position epoch \(p.epoch), window \(p.index) is outside the data (\(windows ?? 0) windows per epoch)")
                    }
                    position = p
                }
            } catch { failure = "rank \(rank): \(error)" }
            // Everyone learns whether every rank could load this one.
            let reports = try link.gatherData(Data((failure ?? "").utf8), root: 0, purpose: "checkpoint load reports")
            let firstFailure = reports?.map { String(decoding: $0, as: UTF8.self) }.first { !$0.isEmpty }
            let verdict = try link.broadcastData(rank == 0 ? Data((firstFailure ?? "").utf8) : nil, root: 0)
            if verdict.isEmpty {
                // The damaged newer ones are moved aside (kept for inspection or repair): left
                // in place they would count as the newest and pruning would delete good ones.
                var problem: String?
                if rank == 0 {
                    for bad in damaged {
                        let from = Checkpoint.stepDirectory(root, step: bad)
                        do {
                            let to = try Self.asideName(root, step: bad)
                            try FileManager.default.moveItem(at: from, to: to)
                            notes.append("moved the damaged checkpoint \(from.lastPathComponent) aside to \(to.path)")
                        } catch {
                            problem = "could not move the damaged checkpoint \(from.path) aside (\(error)); move or remove it, then resume again"
                        }
                    }
                    if !damaged.isEmpty { AtomicFile.syncFolder(root) }
                }
                try agree(problem)
                if rank == 0, let m = try? Checkpoint.readManifest(dir), m.version < 2 {
                    notes.append("checkpoint step \(step) was written by an older protomodel: its FNV-1a checksums miss some kinds of damage; the checkpoints written from now on carry SHA-256")
                }
                return Resumed(step: step, position: position, notes: notes)
            }
            damaged.append(step)
            notes.append("checkpoint step \(step) is damaged (\(String(decoding: verdict, as: UTF8.self))); trying the one before it")
        }
        if !candidates.isEmpty {
            throw ReportedStartupError(rank == 0 ? notes.joined(separator: "\n") + "\nno intact checkpoint left in \(root.path); remove the damaged ones and start without --resume, or restore them" : nil)
        }
        return Resumed(step: 0, position: nil, notes: notes)
    }

    /// `damaged_step_NNNNNN` beside the checkpoints (with .2, .3 … if taken): a name no
    /// listing or pruning of checkpoints picks up.
    static func asideName(_ root: URL, step: Int) throws -> URL {
        let base = String(format: "damaged_step_%06d", step)
        for i in 1...1000 {
            let u = root.appendingPathComponent(i == 1 ? base : "\(base).\(i)")
            if !FileManager.default.fileExists(atPath: u.path) { return u }
        }
        throw CheckpointError("\(root.path) already holds 1000 folders named \(base)*")
    }

    /// All ranks fail together when rank 0 found a problem (rank 0's message).
    private func agree(_ problem: String?) throws {
        let bad = try link.allreduceMax([problem == nil ? 0 : 1])[0]
        if bad != 0 { throw ReportedStartupError(link.rank == 0 ? problem : nil) }
    }
}

/// A failure every rank knows about before training: rank 0 carries the message (nil on
/// the others); the launcher reports it once and all ranks exit together.
public struct ReportedStartupError: Error, CustomStringConvertible {
    public var message: String?
    public init(_ message: String?) { self.message = message }
    public var description: String { message ?? "" }
}
