// Checkpoints: resuming equals the uninterrupted run; damaged or mismatched checkpoints are
// refused with a message that names the problem; non-finite steps stop or are skipped.
import XCTest
import ProtoCore
@testable import ProtoPipeline

final class CheckpointTests: XCTestCase {
    var root: URL!
    override func setUpWithError() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("pm-ckpt-\(UUID().uuidString)")
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: root) }

    func identity(_ cfg: ModelConfig, _ tc: TrainConfig, split: [Int]) -> CheckpointIdentity {
        CheckpointIdentity(worldSize: split.count, split: split, model: cfg, codec: "dense", schedule: "1f1b",
                           batchSize: tc.batchSize, microbatches: tc.microbatches, totalSteps: 6, dataSeed: tc.dataSeed)
    }

    /// Writes every stage of `p` as one checkpoint after `step` steps.
    func save(_ p: InProcessPipeline, step: Int, id: CheckpointIdentity) throws -> URL {
        let dir = Checkpoint.stepDirectory(root, step: step)
        let files = try p.stages.enumerated().map { try Checkpoint.writeStage($1, rank: $0, to: dir) }
        try Checkpoint.writeManifest(CheckpointManifest(step: step, identity: id, files: files), to: dir)
        return dir
    }

    func load(_ p: InProcessPipeline, from dir: URL) throws {
        let m = try Checkpoint.readManifest(dir)
        for (r, s) in p.stages.enumerated() { try Checkpoint.readStage(s, rank: r, from: dir, expected: m.files[r], manifestVersion: m.version) }
    }

    func testResumeEqualsUninterrupted() throws {
        // Dense, projected subspace, adaptive U and learned projectors: a trained basis is a
        // parameter (its Grassmann-Adam moments in the optimizer's m and v), so it resumes too.
        for word in ["dense", "subspace:4:projected", "subspace:4:adaptive", "projector:4"] {
            var (cfg, tc) = pipelineConfig()
            let spec = try CodecSpec.parse(word)
            try spec.apply(to: &cfg, split: [1, 2, 1])
            let sub = word
            let data = syntheticBatches(cfg, B: tc.batchSize, M: tc.microbatches, steps: 6, seed: 4)
            let make = { try InProcessPipeline(config: cfg, split: [1, 2, 1], train: tc, schedule: .oneFOneB) { spec.makeCodec(model: $0) } }
            let full = try make()
            let ref = data.enumerated().map { full.step($0, $1).loss }
            let first = try make()
            for s in 0..<3 { _ = first.step(s, data[s]) }
            let dir = try save(first, step: 3, id: identity(cfg, tc, split: [1, 2, 1]))
            let resumed = try make()
            try load(resumed, from: dir)
            for s in 3..<6 { XCTAssertEqual(resumed.step(s, data[s]).loss, ref[s], "subspace \(sub): step \(s) after resume") }
            for t in full.stages[1].model.layout.tensors {
                XCTAssertEqual(resumed.parameter(t.name), full.parameter(t.name), "\(sub): \(t.name) after resume")
            }
            if let t = full.stages[1].model.manifoldTensors.first {
                var seeded = [Float](repeating: 0, count: t.count)
                Basis.seed(&seeded, d: t.shape[0], k: t.shape[1], seed: cfg.seed, name: t.name)
                XCTAssertNotEqual(full.parameter(t.name), seeded, "\(sub): \(t.name) was trained, so the resume test covers it")
            }
        }
    }

    func testDamagedCheckpointsAreRefused() throws {
        let (cfg, tc) = pipelineConfig()
        let p = try InProcessPipeline(config: cfg, split: [2, 2], train: tc, schedule: .gpipe) { _ in DenseCodec() }
        let dir = try save(p, step: 2, id: identity(cfg, tc, split: [2, 2]))
        let file = dir.appendingPathComponent(Checkpoint.stageFileName(rank: 1))
        var bytes = try Data(contentsOf: file)
        // Flipped byte: checksum.
        bytes[100] ^= 0xFF
        try bytes.write(to: file)
        XCTAssertThrowsError(try load(p, from: dir)) { XCTAssert("\($0)".contains("checksum"), "\($0)") }
        // Truncated.
        try bytes.prefix(bytes.count / 2).write(to: file)
        XCTAssertThrowsError(try load(p, from: dir)) { XCTAssert("\($0)".contains("truncated"), "\($0)") }
        // Missing manifest: not a complete checkpoint, and `complete(in:)` skips it.
        try FileManager.default.removeItem(at: dir.appendingPathComponent("manifest.json"))
        XCTAssertThrowsError(try Checkpoint.readManifest(dir)) { XCTAssert("\($0)".contains("not a complete checkpoint")) }
        XCTAssertTrue(Checkpoint.complete(in: root).isEmpty)
        // Garbage manifest.
        try Data("{not json".utf8).write(to: dir.appendingPathComponent("manifest.json"))
        XCTAssertThrowsError(try Checkpoint.readManifest(dir)) { XCTAssert("\($0)".contains("not a readable manifest (damaged JSON)"), "\($0)") }
        // A stage file of another rank.
        let d2 = try save(p, step: 3, id: identity(cfg, tc, split: [2, 2]))
        let m = try Checkpoint.readManifest(d2)
        XCTAssertThrowsError(try Checkpoint.readStage(p.stages[0], rank: 0, from: d2, expected: m.files[1], manifestVersion: m.version)) { _ in }
    }

    func testMismatchSaysWhatDiffers() throws {
        let (cfg, tc) = pipelineConfig()
        let a = identity(cfg, tc, split: [2, 2])
        var b = a
        b.worldSize = 4; b.split = [1, 1, 1, 1]; b.codec = "subspace k=4"; b.model.dModel = 32
        let d = a.differences(from: b)
        XCTAssertEqual(d.count, 4, "\(d)")
        XCTAssert(d[0].contains("world size: checkpoint has 2, this run has 4"))
        XCTAssert(d.contains { $0.contains("--split 2,2") })
        XCTAssert(d.contains { $0.contains("model shape") && $0.contains("d=16") })
        XCTAssertTrue(a.differences(from: a).isEmpty)
        // Other training data or another tokenizer: refused, naming the way to do it on purpose.
        var c = a, e = a
        c.data = DataIdentity(shards: ["train_000.bin:2733572"], tokenizerSHA256: String(repeating: "a", count: 64))
        e.data = DataIdentity(shards: ["train_000.bin:322"], tokenizerSHA256: String(repeating: "b", count: 64))
        let dd = c.differences(from: e)
        XCTAssertEqual(dd.count, 2, "\(dd)")
        XCTAssert(dd.allSatisfy { $0.contains("--resume-new-data") })
        XCTAssert(dd.contains { $0.contains("train_000.bin:2733572") && $0.contains("train_000.bin:322") })
        XCTAssertTrue(c.differences(from: a).isEmpty, "a checkpoint without a data identity (older protomodel) is not compared")
        // Other update settings (here the learning rate) are refused; older checkpoints are not compared.
        var f = a, g = a
        f.optimization = "lr 0.003, grad-clip 1.0"; g.optimization = "lr 0.001, grad-clip 1.0"
        XCTAssertEqual(f.differences(from: g).count, 1)
        XCTAssert(f.differences(from: g)[0].contains("training settings: checkpoint has lr 0.003"), "\(f.differences(from: g))")
        XCTAssertTrue(a.differences(from: g).isEmpty)
    }

    func testPruneKeepsNewestAndDropsIncomplete() throws {
        let (cfg, tc) = pipelineConfig()
        let p = try InProcessPipeline(config: cfg, split: [4], train: tc, schedule: .gpipe) { _ in DenseCodec() }
        for s in [1, 2, 3, 4] { _ = try save(p, step: s, id: identity(cfg, tc, split: [4])) }
        try FileManager.default.createDirectory(at: Checkpoint.stepDirectory(root, step: 0), withIntermediateDirectories: true)
        Checkpoint.prune(root, keep: 2)
        XCTAssertEqual(Checkpoint.complete(in: root).map(\.step), [3, 4])
        XCTAssertFalse(FileManager.default.fileExists(atPath: Checkpoint.stepDirectory(root, step: 0).path))
    }

    func testNonFiniteGradientsStopOrSkip() throws {
        let (cfg, tc) = pipelineConfig()
        let data = syntheticBatches(cfg, B: tc.batchSize, M: tc.microbatches, steps: 3, seed: 4)
        let p = try InProcessPipeline(config: cfg, split: [2, 2], train: tc, schedule: .oneFOneB) { _ in DenseCodec() }
        p.stages[0].injectNaNAtStep = 2   // the second step, as the console counts
        _ = p.step(0, data[0])
        XCTAssertThrowsError(try p.runAll { try $0.trainStep(1, batches: $0.isFirst ? data[1] : nil) }) {
            XCTAssert("\($0)".contains("non-finite gradient norm"), "\($0)")
            XCTAssert("\($0)".contains("at step 2"), "the error counts steps like the console: \($0)")
            XCTAssert("\($0)".contains("checkpoints up to step 1 hold no damage"), "\($0)")
        }
        // Skipping: the poisoned step leaves every weight untouched, the next one trains.
        let q = try InProcessPipeline(config: cfg, split: [2, 2], train: tc, schedule: .oneFOneB) { _ in DenseCodec() }
        for s in q.stages { s.skipNonFinite = true }
        q.stages[1].injectNaNAtStep = 2
        _ = q.step(0, data[0])
        let before = q.parameter("h0.qkv")!
        _ = q.step(1, data[1])
        XCTAssertTrue(q.lastMetrics.contains { $0.skipped })
        XCTAssertEqual(q.parameter("h0.qkv")!, before, "a skipped step changes no weight")
        XCTAssert(q.step(2, data[2]).loss.isFinite)
        XCTAssertNotEqual(q.parameter("h0.qkv")!, before)
    }
}
