// The whole model against PyTorch (fixture made by tools/reference/make_fixture.py) and
// against finite differences.
import XCTest
import Foundation
import ProtoCore

/// The parity fixture: see tools/reference/make_fixture.py for the byte layout.
struct ReferenceFixture {
    static let magic: Int32 = 20261124, version: Int32 = 1
    var config: ModelConfig
    var B: Int, steps: Int
    var schedule: LRSchedule, adamw: AdamWConfig, clip: Float
    var params: [Float], ids: [Int32], targets: [Int32], logits: [Float], loss: Float
    var grads: [Float], losses: [Float]

    static func load() throws -> ReferenceFixture {
        let url = try XCTUnwrap(Bundle.module.url(forResource: "gpt_tiny", withExtension: "bin", subdirectory: "Fixtures"),
                                "fixture missing: run tools/reference/make_fixture.py")
        let data = try Data(contentsOf: url)
        var off = 0
        func ints(_ n: Int) -> [Int32] {
            defer { off += 4 * n }
            return (0..<n).map { i in data.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: off + 4 * i, as: Int32.self) } }
        }
        func floats(_ n: Int) -> [Float] {
            defer { off += 4 * n }
            return (0..<n).map { i in data.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: off + 4 * i, as: Float.self) } }
        }
        let h = ints(64), f = floats(32)
        guard h[0] == magic, h[1] == version else { throw ConfigError.invalid(field: "fixture", reason: "bad magic/version \(h[0])/\(h[1])") }
        let V = Int(h[2]), T = Int(h[3]), L = Int(h[4]), NH = Int(h[5]), C = Int(h[6]), H = Int(h[7])
        let B = Int(h[8]), steps = Int(h[9]), nParams = Int(h[10])
        var cfg = ModelConfig(vocabSize: V, seqLen: T, nLayer: L, nHead: NH, dModel: C, mlpHidden: H)
        cfg.normEps = f[9]; cfg.ropeBase = f[10]
        let N = B * T
        let fx = ReferenceFixture(
            config: cfg, B: B, steps: steps,
            schedule: LRSchedule(maxLR: f[0], minLR: f[1], warmupSteps: Int(f[2]), totalSteps: Int(f[3])),
            adamw: AdamWConfig(beta1: f[4], beta2: f[5], eps: f[6], weightDecay: f[7]), clip: f[8],
            params: floats(nParams), ids: ints(N), targets: ints(N), logits: floats(N * V), loss: floats(1)[0],
            grads: floats(nParams), losses: floats(steps))
        guard off == data.count else { throw ConfigError.invalid(field: "fixture", reason: "size \(data.count), parsed \(off)") }
        return fx
    }
}

final class ModelParityTests: XCTestCase {
    func testForwardBackwardMatchesPyTorch() throws {
        let fx = try ReferenceFixture.load()
        let model = StageModel(config: fx.config, stage: .whole(fx.config), batchSize: fx.B)
        XCTAssertEqual(model.layout.count, fx.params.count, "parameter layout differs from the reference")
        model.params.copy(from: fx.params)
        let N = fx.B * fx.config.seqLen
        let loss = model.forward(slot: 0, ids: fx.ids, targets: fx.targets)!
        assertClose(Double(loss), Double(fx.loss), rtol: 1e-5, "loss")
        let logitErr = relError(model.logits(slot: 0)!, fx.logits, N * fx.config.vocabSize)
        XCTAssertLessThan(logitErr, 1e-5, "logits")
        model.zeroGrad()
        model.backward(slot: 0, lossScale: 1 / Float(N))
        for t in model.layout.tensors {
            let err = fx.grads.withUnsafeBufferPointer { relError(model.grads.ptr + t.offset, $0.baseAddress! + t.offset, t.count) }
            XCTAssertLessThan(err, 1e-4, "gradient of \(t.name)")
        }
    }

    func testTenAdamWStepsMatchPyTorch() throws {
        let fx = try ReferenceFixture.load()
        var tc = TrainConfig()
        tc.batchSize = fx.B; tc.schedule = fx.schedule; tc.adamw = fx.adamw; tc.gradClip = fx.clip
        let trainer = LocalTrainer(model: StageModel(config: fx.config, stage: .whole(fx.config), batchSize: fx.B), train: tc)
        trainer.model.params.copy(from: fx.params)
        let mb = Microbatch(ids: fx.ids, targets: fx.targets)
        for s in 0..<fx.steps {
            let r = trainer.step(s, [mb])
            assertClose(Double(r.loss), Double(fx.losses[s]), rtol: 1e-4, "loss at step \(s)")
        }
        XCTAssertLessThan(fx.losses.last!, fx.losses.first! * 0.7, "reference itself must learn")
    }

    func testWholeModelFiniteDifferences() throws {
        var cfg = try ModelConfig.preset("tiny")
        cfg.initStd = 0.2
        checkWholeModelGradients(cfg, seed: 99)
    }

    func testSplitStagesGiveSameInitialWeights() throws {
        let cfg = try ModelConfig.preset("tiny")
        let whole = StageModel(config: cfg, stage: .whole(cfg), batchSize: 1)
        for s in try StageSpec.stages(split: [1, 1], nLayer: cfg.nLayer) {
            let part = StageModel(config: cfg, stage: s, batchSize: 1)
            for t in part.layout.tensors {
                let w = whole.layout.tensor(t.name)!
                XCTAssertEqual(Array(UnsafeBufferPointer(start: part.params.ptr + t.offset, count: t.count)),
                               Array(UnsafeBufferPointer(start: whole.params.ptr + w.offset, count: w.count)), t.name)
            }
        }
    }
}
