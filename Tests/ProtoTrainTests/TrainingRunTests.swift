// The run loop with in-memory ranks (one thread each): start-up agreement, checkpoints with
// fallback past damage, the fresh-run guard, a stop signal mid-run, a rank that stops
// answering, and the typed log records.
import XCTest
import ProtoCore
import ProtoData
@testable import ProtoPipeline
@testable import ProtoTrain

final class TrainingRunTests: XCTestCase {
    static var dataDir: URL = {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pm-train-tests-\(getpid())")
        try? FileManager.default.removeItem(at: dir)
        try! FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let words = ["the", "and", "of", "LORD", "said", "unto", "him", "shall", "be", "in", "God", "land", "king", "house"]
        var s = "", x: UInt64 = 7
        for l in 0..<2400 {
            s += "\(l % 30 + 1) "
            for _ in 0..<(5 + l % 7) { x = x &* 6364136223846793005 &+ 1442695040888963407; s += words[Int(x >> 33) % words.count] + " " }
            s += "end.\n"
        }
        try! Data(s.utf8).write(to: dir.appendingPathComponent("corpus.txt"))
        _ = try! DatasetBuilder.build(input: dir.appendingPathComponent("corpus.txt").path, out: dir.appendingPathComponent("data").path,
                                      vocabSize: 300, valEvery: 10, shardTokens: 1 << 20)
        return dir
    }()

    var work: URL!
    override func setUpWithError() throws {
        work = FileManager.default.temporaryDirectory.appendingPathComponent("pm-run-\(UUID().uuidString)")
    }
    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: work)
        StopSignal.pending = 0
    }

    func settings(steps: Int = 4, threads: Int = 1, data: String? = nil) throws -> RunSettings {
        var cfg = try ModelConfig.preset("tiny")
        cfg.nLayer = 2
        var tc = TrainConfig()
        tc.batchSize = 2; tc.microbatches = 2; tc.steps = steps
        tc.schedule = LRSchedule(maxLR: 1e-2, minLR: 1e-3, warmupSteps: 1, totalSteps: steps)
        return RunSettings(model: cfg, vocabSize: nil, train: tc, split: nil, schedule: .oneFOneB, clock: .virtual, evalBatches: 2,
                           data: data ?? Self.dataDir.appendingPathComponent("data").path, threads: threads, extra: ["dense"])
    }

    /// Runs `body(rank, link)` on `ranks` in-memory ranks; returns each rank's error (nil: none).
    func onRanks(_ ranks: Int = 2, timeout: Double = 20, _ body: @escaping @Sendable (Int, InMemoryLink) throws -> Void) -> [Error?] {
        let hub = InMemoryHub(size: ranks)
        hub.timeout = timeout
        let links = hub.links()
        nonisolated(unsafe) var errors = [Error?](repeating: nil, count: ranks)
        let lock = NSLock()
        try? runOnThreads(ranks) { r in
            do { try body(r, links[r]) } catch { lock.lock(); errors[r] = error; lock.unlock() }
        }
        return errors
    }

    /// Trains `steps` on every rank with checkpoints in `root`; returns rank 0's per-step losses.
    func train(_ s: RunSettings, root: URL, every: Int, resume: Bool = false, steps: Int? = nil,
               beforeStep: @escaping @Sendable (Int, Int) throws -> Void = { _, _ in }) -> (losses: [Int: Float], errors: [Error?], notes: [String]) {
        nonisolated(unsafe) var losses: [Int: Float] = [:]
        nonisolated(unsafe) var notes: [String] = []
        let errors = onRanks { r, link in
            let run = try TrainingRun(link: link, settings: s, localRanks: 2, cores: 2) { _, _ in }
            let (trainer, cfg) = try run.makeTrainer(variant: Variant(spec: CodecSpec()), links: [.off])
            let id = CheckpointIdentity(worldSize: 2, split: run.split, model: cfg, codec: "dense", schedule: "1f1b", batchSize: 2,
                                        microbatches: 2, totalSteps: s.train.steps, dataSeed: s.train.dataSeed, data: run.data?.identity)
            let m = CheckpointManager(root: root, keep: 5, identity: id, link: link)
            var start = 0
            var position: DataLoader.Position?
            if resume {
                let res = try m.resume(trainer.stage, resumeNewData: false, windows: run.data?.trainWindows)
                (start, position) = (res.step, res.position)
                if r == 0 { notes = res.notes }
            } else {
                try m.requireFresh()
            }
            try run.run(trainer, steps: s.train.steps, evalEvery: 0, startStep: start, position: position, checkpoints: m,
                        checkpointEvery: every, beforeStep: { try beforeStep(r, $0) }) { step, report, _ in losses[step + 1] = report.loss }
        }
        return (losses, errors, notes)
    }

    func testResumeFallsBackPastADamagedCheckpoint() throws {
        let s = try settings(steps: 6)
        let full = train(s, root: work.appendingPathComponent("a"), every: 2)
        XCTAssert(full.errors.allSatisfy { $0 == nil }, "\(full.errors)")
        XCTAssertEqual(full.losses.count, 6)
        let root = work.appendingPathComponent("b")
        let first = train(s, root: root, every: 2) { _, step in if step == 5 { throw CheckpointError("simulated crash at step 5") } }
        XCTAssertNotNil(first.errors[0] ?? first.errors[1], "the crash stops the run")
        XCTAssertEqual(Checkpoint.complete(in: root).map(\.step), [2, 4])
        // Damage the newest checkpoint: resume says so and continues from step 2.
        let stageFile = Checkpoint.stepDirectory(root, step: 4).appendingPathComponent(Checkpoint.stageFileName(rank: 1))
        var bytes = try Data(contentsOf: stageFile)
        bytes[200] ^= 0x40
        try bytes.write(to: stageFile)
        let resumed = train(s, root: root, every: 2, resume: true)
        XCTAssert(resumed.errors.allSatisfy { $0 == nil }, "\(resumed.errors)")
        XCTAssertEqual(resumed.notes.count, 2, "\(resumed.notes)")
        XCTAssert(resumed.notes[0].contains("step 4 is damaged") && resumed.notes[0].contains("rank 1"), resumed.notes[0])
        // The damaged one is kept, moved where pruning cannot count it as the newest.
        XCTAssert(resumed.notes[1].contains("moved the damaged checkpoint step_000004 aside"), resumed.notes[1])
        let aside = root.appendingPathComponent("damaged_step_000004")
        XCTAssertEqual(try Data(contentsOf: aside.appendingPathComponent(Checkpoint.stageFileName(rank: 1))), bytes, "kept as it was")
        XCTAssertEqual(resumed.losses.keys.sorted(), [3, 4, 5, 6], "resumed after step 2")
        for s in 3...6 { XCTAssertEqual(resumed.losses[s], full.losses[s], "step \(s) equals the uninterrupted run") }
    }

    /// Rewrites checkpoint `dir` through `edit` (manifest and files by name) and records
    /// every file's size and checksum as `version` would (2: SHA-256, 1: FNV-1a).
    func rewrite(_ dir: URL, version: Int = 2, _ edit: (inout CheckpointManifest, inout [String: Data]) throws -> Void) throws {
        var m = try Checkpoint.readManifest(dir)
        var files: [String: Data] = [:]
        for f in m.files { files[f.name] = try Data(contentsOf: dir.appendingPathComponent(f.name)) }
        try edit(&m, &files)
        m.version = version
        m.files = try m.files.map { f in
            let data = files[f.name]!
            try data.write(to: dir.appendingPathComponent(f.name))
            return CheckpointFile(name: f.name, bytes: data.count,
                                  checksum: version == 1 ? Checkpoint.versionOneChecksum(data) : Checkpoint.checksum(data))
        }
        try Checkpoint.writeManifest(m, to: dir)
    }

    func testResumeChecksTheStepAndLoaderPositionAManifestVouchesFor() throws {
        let s = try settings(steps: 4)
        let root = work.appendingPathComponent("e")
        XCTAssert(train(s, root: root, every: 2).errors.allSatisfy { $0 == nil })
        // Checksums intact, contents impossible: only the range checks can catch these.
        try rewrite(Checkpoint.stepDirectory(root, step: 4)) { _, files in
            var p = try JSONSerialization.jsonObject(with: files["loader.json"]!) as! [String: Any]
            p["index"] = -5
            files["loader.json"] = try JSONSerialization.data(withJSONObject: p)
        }
        let past = Checkpoint.stepDirectory(root, step: 40)
        try FileManager.default.copyItem(at: Checkpoint.stepDirectory(root, step: 2), to: past)
        try rewrite(past) { m, _ in m.step = 40 }
        let r = train(s, root: root, every: 2, resume: true)
        XCTAssert(r.errors.allSatisfy { $0 == nil }, "\(r.errors)")
        XCTAssert(r.notes.count >= 2, "\(r.notes)")
        XCTAssert(r.notes[0].contains("step 40 is damaged") && r.notes[0].contains("not a step of this 4-step run"), r.notes[0])
        XCTAssert(r.notes[1].contains("step 4 is damaged") && r.notes[1].contains("outside the data"), r.notes[1])
        XCTAssertEqual(r.losses.keys.sorted(), [3, 4], "resumed from step 2, and the run ended at its --steps")
    }

    func testVersionOneCheckpointsResumeAndVersionTwoTakesSHA256Only() throws {
        let s = try settings(steps: 4)
        let full = train(s, root: work.appendingPathComponent("f"), every: 0)
        let root = work.appendingPathComponent("g")
        let crashed = train(s, root: root, every: 2) { _, step in if step == 3 { throw CheckpointError("simulated crash") } }
        XCTAssertNotNil(crashed.errors[0] ?? crashed.errors[1])
        XCTAssertEqual(Checkpoint.complete(in: root).map(\.step), [2])
        try rewrite(Checkpoint.stepDirectory(root, step: 2), version: 1) { _, _ in }
        let r = train(s, root: root, every: 2, resume: true)
        XCTAssert(r.errors.allSatisfy { $0 == nil }, "\(r.errors)")
        XCTAssert(r.notes.contains { $0.contains("step 2 was written by an older protomodel") }, "\(r.notes)")
        for step in 3...4 { XCTAssertEqual(r.losses[step], full.losses[step], "step \(step) equals the uninterrupted run") }
        // A version-2 manifest recording the weaker checksum is not accepted.
        try rewrite(Checkpoint.stepDirectory(root, step: 4), version: 1) { _, _ in }
        var m = try Checkpoint.readManifest(Checkpoint.stepDirectory(root, step: 4))
        m.version = 2
        try Checkpoint.writeManifest(m, to: Checkpoint.stepDirectory(root, step: 4))
        let again = train(s, root: root, every: 2, resume: true)
        XCTAssert(again.notes.first?.contains("step 4 is damaged") ?? false, "\(again.notes)")
        XCTAssertEqual(again.losses.keys.sorted(), [3, 4], "resumed from step 2")
    }

    func testFreshRunRefusesAFolderWithCheckpoints() throws {
        let s = try settings(steps: 2)
        let root = work.appendingPathComponent("c")
        XCTAssert(train(s, root: root, every: 2).errors.allSatisfy { $0 == nil })
        let again = train(s, root: root, every: 2)
        let message = (again.errors[0] as? ReportedStartupError)?.message ?? ""
        XCTAssert(message.contains("already holds checkpoints") && message.contains("--resume"), message)
        XCTAssertNotNil(again.errors[1], "every rank stops")
        XCTAssertEqual(Checkpoint.complete(in: root).map(\.step), [2], "nothing of the earlier run was touched")
    }

    func testOutputsAreCheckedBeforeAnyWork() throws {
        let out = work.appendingPathComponent("out"), log = work.appendingPathComponent("run.jsonl")
        try TrainingRun.checkOutputs(out: out, log: log, resume: false, modelBytes: 1 << 20)
        XCTAssert(FileManager.default.fileExists(atPath: out.path), "the folder is made")
        // Another run's model, or a data folder's tokenizer: refused for a new run, fine to resume.
        for name in ["model.bin", "tokenizer.json"] {
            let f = out.appendingPathComponent(name)
            try Data("x".utf8).write(to: f)
            XCTAssertThrowsError(try TrainingRun.checkOutputs(out: out, log: nil, resume: false, modelBytes: 0)) {
                XCTAssert("\($0)".contains("already holds \(name)") && "\($0)".contains("--resume"), "\($0)")
            }
            XCTAssertNoThrow(try TrainingRun.checkOutputs(out: out, log: nil, resume: true, modelBytes: 0))
            try FileManager.default.removeItem(at: f)
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: out.path), [], "the checks leave nothing behind")
        }
        try Data("{}\n".utf8).write(to: log)
        XCTAssertThrowsError(try TrainingRun.checkOutputs(out: out, log: log, resume: false, modelBytes: 0)) {
            XCTAssert("\($0)".contains("already holds a log"), "\($0)")
        }
        XCTAssertEqual(try String(contentsOf: log, encoding: .utf8), "{}\n", "the log is untouched")
        // A folder given as --log, and prepared data as --out or --checkpoint-dir (resumed or not).
        XCTAssertThrowsError(try TrainingRun.checkOutputs(out: out, log: work, resume: true, modelBytes: 0)) {
            XCTAssert("\($0)".contains("is a folder; give a file path"), "\($0)")
        }
        let data = work.appendingPathComponent("data")
        try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true)
        for name in ["meta.json", "tokenizer.json", "train_000.bin"] { try Data("x".utf8).write(to: data.appendingPathComponent(name)) }
        for resume in [false, true] {
            XCTAssertThrowsError(try TrainingRun.checkOutputs(out: out, log: nil, resume: resume, modelBytes: 0, checkpoints: data)) {
                XCTAssert("\($0)".contains("--checkpoint-dir \(data.path) holds prepared data"), "\($0)")
            }
            XCTAssertThrowsError(try TrainingRun.checkOutputs(out: data, log: nil, resume: resume, modelBytes: 0)) {
                XCTAssert("\($0)".contains("--out \(data.path) holds prepared data"), "\($0)")
            }
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: data.path).sorted(), ["meta.json", "tokenizer.json", "train_000.bin"])
        let unmade = work.appendingPathComponent("never")
        XCTAssertThrowsError(try TrainingRun.checkOutputs(out: unmade, log: log, resume: false, modelBytes: 0))
        XCTAssertFalse(FileManager.default.fileExists(atPath: unmade.path), "a refused run leaves no folder behind")
        // A regular file where the folder should be; more bytes than any disk has.
        let file = work.appendingPathComponent("file")
        try Data("keep".utf8).write(to: file)
        XCTAssertThrowsError(try TrainingRun.checkOutputs(out: file, log: nil, resume: false, modelBytes: 0)) {
            XCTAssert("\($0)".contains(file.path), "\($0)")
        }
        XCTAssertEqual(try Data(contentsOf: file), Data("keep".utf8))
        XCTAssertThrowsError(try TrainingRun.checkOutputs(out: out, log: nil, resume: false, modelBytes: Int(1) << 60)) {
            XCTAssert("\($0)".contains("MiB free"), "\($0)")
        }
    }

    func testStopSignalCheckpointsAndStopsEveryRank() throws {
        let s = try settings(steps: 6)
        let root = work.appendingPathComponent("d")
        // The signal reaches rank 1 only, during step 3: every rank stops after step 3.
        let r = train(s, root: root, every: 0) { rank, step in if rank == 1 && step == 3 { StopSignal.pending = SIGUSR1 } }
        for e in r.errors { XCTAssertEqual((e as? StoppedBySignal)?.step, 3, "\(String(describing: e))") }
        XCTAssertEqual(Checkpoint.complete(in: root).map(\.step), [3])
    }

    func testSettingsMustAgree() throws {
        let a = try settings(), b = try settings(threads: 2)
        let errors = onRanks { r, link in _ = try TrainingRun(link: link, settings: r == 0 ? a : b, localRanks: 1, cores: 2) { _, _ in } }
        let m = (errors[0] as? ReportedStartupError)?.message ?? ""
        XCTAssert(m.contains("rank 1") && m.contains("threads"), m)
        XCTAssert(errors[1] is ReportedStartupError)
        // Hosts with different bf16 kernels under --bf16-kernel auto: the words that differ, and the fix.
        var amxWords = try settings(), dotWords = try settings()
        amxWords.extra += ["matmul=bf16", "attention=bf16"]; dotWords.extra += ["matmul=bf16", "bf16-kernel=avx512-bf16"]
        // The advice the CLI attaches on every rank (ThreadOptions.settingAdvice), named by word prefix.
        let advice = ["bf16-kernel=": "pass --bf16-kernel avx512-bf16", "attention=bf16": "pass --bf16-kernel avx512-bf16"]
        amxWords.extraAdvice = advice; dotWords.extraAdvice = advice
        let (amx, dot) = (amxWords, dotWords)
        let e3 = onRanks { r, link in _ = try TrainingRun(link: link, settings: r == 0 ? amx : dot, localRanks: 1, cores: 2) { _, _ in } }
        let m3 = (e3[0] as? ReportedStartupError)?.message ?? ""
        XCTAssert(m3.contains("rank 0 has [attention=bf16], rank 1 [bf16-kernel=avx512-bf16]") && m3.contains("pass --bf16-kernel avx512-bf16"), m3)
        // Missing data: rank 0 names the folder and the command that makes it; every rank stops.
        let c = try settings(data: work.appendingPathComponent("nowhere").path)
        let e2 = onRanks { _, link in _ = try TrainingRun(link: link, settings: c, localRanks: 1, cores: 2) { _, _ in } }
        let m2 = (e2[0] as? ReportedStartupError)?.message ?? ""
        XCTAssert(m2.contains("nowhere") && m2.contains("protomodel prepare"), m2)
        XCTAssertNotNil(e2[1])
    }

    func testRanksThatRebuildADifferentEFixedOrUStop() throws {
        let settings = try settings(steps: 1)
        nonisolated(unsafe) var digests = [[String: String]](repeating: [:], count: 2)
        let lock = NSLock()
        let errors = onRanks { r, link in
            let run = try TrainingRun(link: link, settings: settings, localRanks: 2, cores: 2) { _, _ in }
            let (trainer, _) = try run.makeTrainer(variant: Variant(spec: CodecSpec(kind: .subspace, rankK: 4)), links: [.off])
            let model = trainer.stage.model
            let d0 = TrainingRun.seededDigest(model, adaptive: false)
            // One ulp of E_fixed, or of U, is another digest.
            model.fixed!.table.ptr[7] = model.fixed!.table.ptr[7].nextUp
            let d1 = TrainingRun.seededDigest(model, adaptive: false)
            model.subspace!.basis.ptr[3] = model.subspace!.basis.ptr[3].nextDown
            let d2 = TrainingRun.seededDigest(model, adaptive: false)
            XCTAssertNotEqual(d0, d1); XCTAssertNotEqual(d1, d2)
            lock.lock(); digests[r] = d0; lock.unlock()
            // Rank 1 as a node whose libm rounds differently: every rank stops, rank 1 named.
            try run.requireSameSeededTensors(r == 1 ? d1 : d0)
        }
        XCTAssertEqual(digests[0], digests[1], "the same build rebuilds the same bits on every rank")
        let m = (errors[0] as? ReportedStartupError)?.message ?? "\(String(describing: errors[0]))"
        XCTAssert(m.contains("ranks 1 rebuilt a different E_fixed or U"), m)
        XCTAssertNotNil(errors[1], "every rank stops")
    }

    func testClockAutoIsOneChoiceForTheJob() throws {
        var auto = try settings(steps: 1)
        auto.clock = .auto
        let s = auto
        nonisolated(unsafe) var clocks = [ClockMode?](repeating: nil, count: 2)
        // Rank 1's node is oversubscribed, rank 0's is not: both take the virtual clock.
        let errors = onRanks { r, link in
            clocks[r] = try TrainingRun(link: link, settings: s, localRanks: r == 0 ? 1 : 4, cores: 2) { _, _ in }.clock
        }
        XCTAssert(errors.allSatisfy { $0 == nil })
        XCTAssertEqual(clocks, [.virtual, .virtual])
    }

    func testStageSpeedAndLinkModelReachTheTrainer() throws {
        var fast = try settings(steps: 1)
        fast.stageSpeed = "x1000"; fast.linkKind = .streaming
        let slow = try settings(steps: 1)
        let lossy = try LinkModel.parse("1mbit:10ms")
        nonisolated(unsafe) var seen: [[Double]] = []  // per run: emulated step on the off link, slowest rank's compute
        for s in [slow, fast] {
            let errors = onRanks { r, link in
                let run = try TrainingRun(link: link, settings: s, localRanks: 2, cores: 2) { _, _ in }
                let (trainer, _) = try run.makeTrainer(variant: Variant(spec: CodecSpec()), links: [.off, lossy])
                XCTAssertEqual(trainer.stage.time.computeScale, s.stageSpeed == "x1000" ? 0.001 : 1)
                XCTAssertEqual(trainer.stage.time.links.map(\.kind), [s.linkKind, s.linkKind])
                try run.run(trainer, steps: 1, evalEvery: 0) { _, report, _ in
                    if r == 0 {
                        seen.append([report.emulated[0].stepSeconds, report.stages.map(\.computeSeconds).max()!,
                                     report.emulated[1].linkWaitShare, report.emulated[1].computeShare, report.emulated[0].computeShare])
                    }
                }
            }
            XCTAssert(errors.allSatisfy { $0 == nil }, "\(errors)")
        }
        XCTAssertEqual(seen.count, 2)
        // Native: the off-link step is at least the slowest rank's compute; ×1000: a thousandth of it.
        XCTAssertGreaterThanOrEqual(seen[0][0], seen[0][1] * 0.999)
        XCTAssertLessThan(seen[1][0], seen[1][1] * 0.01)
        XCTAssertGreaterThan(seen[1][0], 0)
        // The shares use compute as charged: at ×1000 over 1 Mbit/s the step is the link's.
        XCTAssertGreaterThan(seen[1][2], 0.5, "link-wait share at ×1000 over 1mbit:10ms")
        XCTAssertLessThan(seen[1][3], 0.05, "compute share at ×1000 over 1mbit:10ms")
        XCTAssertGreaterThan(seen[1][4], 0.3, "compute share at ×1000 without a link: compute and bubbles only")
    }

    func testAStoppedRankEndsTheOthersWithinTheTimeout() throws {
        let s = try settings(steps: 4)
        let t0 = Date()
        let r = onRanks(timeout: 1.5) { rank, link in
            let run = try TrainingRun(link: link, settings: s, localRanks: 2, cores: 2) { _, _ in }
            let (trainer, _) = try run.makeTrainer(variant: Variant(spec: CodecSpec()), links: [.off])
            try run.run(trainer, steps: 4, evalEvery: 0, beforeStep: { step in if rank == 1 && step == 2 { Thread.sleep(forTimeInterval: 4) } }) { _, _, _ in }
        }
        let message = "\(r[0].map { "\($0)" } ?? "")"
        XCTAssert(message.contains("step 2") && message.contains("waited") && message.contains("rank 1"), message)
        XCTAssertLessThan(Date().timeIntervalSince(t0), 12, "no hang")
        // Collectives time out the same way.
        let c = onRanks(timeout: 1) { rank, link in if rank == 0 { _ = try link.allreduceSum([1]) } }
        XCTAssert("\(c[0].map { "\($0)" } ?? "")".contains("collective"), "\(String(describing: c[0]))")
    }

    func testOneRankThrowingEndsEveryRank() throws {
        struct Boom: Error, CustomStringConvertible { var description: String { "boom on rank 1" } }
        let s = try settings(steps: 4)
        let t0 = Date()
        let r = onRanks(timeout: 1.5) { rank, link in
            let run = try TrainingRun(link: link, settings: s, localRanks: 2, cores: 2) { _, _ in }
            let (trainer, _) = try run.makeTrainer(variant: Variant(spec: CodecSpec()), links: [.off])
            try run.run(trainer, steps: 4, evalEvery: 0, beforeStep: { step in if rank == 1 && step == 2 { throw Boom() } }) { _, _, _ in }
        }
        XCTAssertEqual(r.count, 2)
        XCTAssert("\(r[1].map { "\($0)" } ?? "")".contains("boom on rank 1"), "the thrower reports its own error: \(String(describing: r[1]))")
        let other = "\(r[0].map { "\($0)" } ?? "")"
        XCTAssert(other.contains("rank 1") && other.contains("waited"), "the other rank ends naming the rank it waited for: \(other)")
        XCTAssertLessThan(Date().timeIntervalSince(t0), 12, "no hang")
    }

    /// Every key a record writes (nested records' too), for comparing with the README.
    func keys(_ value: Any) -> Set<String> {
        if let d = value as? [String: Any] { return d.reduce(into: Set(d.keys)) { $0.formUnion(keys($1.value)) } }
        if let a = value as? [Any] { return a.reduce(into: Set<String>()) { $0.formUnion(keys($1)) } }
        return []
    }

    /// The backticked names in the README run-log bullet that starts with `{"type":"TYPE"}`
    /// (`a_fwd/bwd` counts as `a_fwd` and `a_bwd`).
    func documentedKeys(_ type: String) throws -> Set<String> {
        let readme = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../README.md")
        let text = try String(contentsOf: readme, encoding: .utf8)
        guard let section = text.components(separatedBy: "### The run log").dropFirst().first?.components(separatedBy: "\n## ").first,
              let bullet = section.components(separatedBy: "\n- ").first(where: { $0.hasPrefix("`{\"type\":\"\(type)\"}`") }) else {
            XCTFail("README has no run-log bullet for \(type)"); return []
        }
        let re = try NSRegularExpression(pattern: "`([a-z_]+(?:/[a-z_]+)?)`")
        var out = Set<String>()
        for m in re.matches(in: bullet, range: NSRange(bullet.startIndex..., in: bullet)) {
            let word = String(bullet[Range(m.range(at: 1), in: bullet)!])
            let parts = word.split(separator: "/").map(String.init)
            if parts.count == 2, let cut = parts[0].lastIndex(of: "_") {
                out.insert(parts[0]); out.insert(String(parts[0][...cut]) + parts[1])
            } else { out.insert(word) }
        }
        return out
    }

    func testLogRecordsAreTheDocumentedSchema() throws {
        var m = StageStepMetrics()
        m.timing = [LinkTiming()]
        let e = EmulatedStep(link: .off, clock: .virtual, stepSeconds: 0.5, computeShare: 0.5, linkWaitShare: 0.25, bubbleShare: 0.25,
                             perRank: [(0.25, 0.125, 0.125)])
        var report = StepReport(step: 0, loss: 2, lr: 1e-3, gradNorm: 1, stepSeconds: 0.5, stages: [m])
        report.emulated = [e]
        report.stages[0].skipped = true
        let step = StepRecord(report, step: 1, tokens: 100, perBoundary: 100, denseBytes: 400, emulatedTotal: 0.5, val: 2.5)
        let summary = SummaryRecord(steps: 1, finalValLoss: 2.5, wallS: 1, emulatedTimeS: 1, peakRssMB: [1], modelFile: "m",
                                    boundaries: [BoundaryRecord(boundary: 0, link: "off", bytesFwd: 1, bytesBwd: 1,
                                                                linkWaitShareReceiverFwd: 0, linkWaitShareReceiverBwd: 0)])
        let records: [(String, Encodable)] = [("step", step), ("stop", StopRecord(signal: 15, step: 3)), ("summary", summary)]
        for (type, record) in records {
            let json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(record))
            let written = keys(json).subtracting(["type"]), documented = try documentedKeys(type)
            XCTAssertEqual(written.subtracting(documented).sorted(), [], "\(type): written but not in the README")
            XCTAssertEqual(documented.subtracting(written).sorted(), [], "\(type): in the README but not written")
        }
    }

    func testStepRecordIsTheDocumentedSchema() throws {
        var m = StageStepMetrics()
        m.lossSum = 2; m.bytesSentForward = 100; m.bytesSentSync = 8
        m.timing = [LinkTiming()]
        let e = EmulatedStep(link: .off, clock: .virtual, stepSeconds: 0.5, computeShare: 0.5, linkWaitShare: 0.25, bubbleShare: 0.25,
                             perRank: [(0.25, 0.125, 0.125)])
        var report = StepReport(step: 0, loss: .nan, lr: 1e-3, gradNorm: 1, stepSeconds: 0.5, stages: [m])
        report.emulated = [e]
        let rec = StepRecord(report, step: 1, tokens: 100, perBoundary: 100, denseBytes: 400, emulatedTotal: 0.5, val: 2.5)
        let json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(rec)) as! [String: Any]
        for key in ["step", "lr", "grad_norm", "step_time_s", "tokens_per_s", "step_time_emulated_s", "link_wait_share",
                    "bytes_per_token_fwd", "compression_fwd", "wire_rel_error_fwd", "val_loss", "stages", "bytes_sync"] {
            XCTAssertNotNil(json[key], "\(key) is in the record")
        }
        XCTAssertNil(json["loss"], "a non-finite loss is written as null (left out), never as NaN")
        XCTAssertEqual(json["step"] as? Int, 1)
        XCTAssertEqual(json["compression_fwd"] as? Double, 4)
        XCTAssertEqual((json["stages"] as? [[String: Any]])?.first?["sync_bytes"] as? Double, 8)
    }
}
