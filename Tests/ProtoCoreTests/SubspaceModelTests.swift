// The subspace model (SPEC §2): U is orthonormal and reproducible, the constrained layers'
// gradients are right (finite differences) in both modes, and the constraint holds.
import XCTest
@testable import ProtoCore

final class SubspaceModelTests: XCTestCase {
    func subspaceConfig(_ mode: SubspaceMode, k: Int = 4) throws -> ModelConfig {
        var cfg = try ModelConfig.preset("tiny")
        cfg.initStd = 0.2
        cfg.nLayer = 3
        cfg.subspace = SubspaceConfig(rank: k, mode: mode)
        return cfg
    }

    func testBasisIsOrthonormalAndReproducible() throws {
        let cfg = try subspaceConfig(.reparam, k: 8)
        let a = Subspace(config: cfg), b = Subspace(config: cfg)
        XCTAssertEqual(a.basis.toArray(), b.basis.toArray(), "every rank rebuilds the same U")
        XCTAssertEqual(a.fixedEmbedding.toArray(), b.fixedEmbedding.toArray(), "every rank rebuilds the same E_fixed")
        let d = a.d, k = a.k
        for i in 0..<k {
            for j in 0..<k {
                var dot = 0.0
                for r in 0..<d { dot += Double(a.basis.ptr[r * k + i]) * Double(a.basis.ptr[r * k + j]) }
                XCTAssertEqual(dot, i == j ? 1 : 0, accuracy: 1e-6, "UᵀU[\(i),\(j)]")
            }
        }
        var other = cfg; other.seed += 1
        XCTAssertNotEqual(Subspace(config: other).basis.toArray(), a.basis.toArray(), "U depends on the seed")
    }

    func testShapesFollowTheMode() throws {
        let re = try subspaceConfig(.reparam), pr = try subspaceConfig(.projected)
        let lr = ParamLayout(config: re, stage: .whole(re)), lp = ParamLayout(config: pr, stage: .whole(pr))
        XCTAssertEqual(lr.tensor("wte")!.shape, [re.vocabSize, 4])
        XCTAssertEqual(lr.tensor("h0.attn_proj")!.shape, [re.dModel, 4])
        XCTAssertEqual(lr.tensor("h1.fc_proj")!.shape, [re.mlpHidden, 4])
        XCTAssertEqual(lr.tensor("h2.fc_proj")!.shape, [re.mlpHidden, re.dModel], "the last block stays dense")
        XCTAssertFalse(lr.tensor("h2.attn_proj")!.subspace)
        XCTAssertEqual(lp.tensor("h0.attn_proj")!.shape, [pr.dModel, pr.dModel])
        XCTAssertTrue(lp.tensor("h0.attn_proj")!.subspace)
        XCTAssertThrowsError(try { var c = re; c.subspace!.rank = re.dModel; try c.validate() }()) {
            XCTAssert("\($0)".contains("rank-k"))
        }
    }

    func testGradientsMatchFiniteDifferencesInBothModes() throws {
        for mode in SubspaceMode.allCases {
            let cfg = try subspaceConfig(mode)
            checkWholeModelGradients(cfg, seed: 7, label: "\(mode) ")
        }
    }

    func testTrainedBasesGradientsMatchFiniteDifferences() throws {
        // dU summed over every use of U (constrained writes and the embedding), and dA of
        // each projector (both halves), against central differences of the loss.
        var cfg = try subspaceConfig(.reparam)
        cfg.subspace!.adaptive = ManifoldTraining()
        checkWholeModelGradients(cfg, seed: 8, label: "adaptive ")
        var pc = try ModelConfig.preset("tiny")
        pc.initStd = 0.2; pc.nLayer = 3
        pc.projector = ProjectorConfig(rank: 4, boundaries: [0, 1])
        checkWholeModelGradients(pc, seed: 9, label: "projector ")
    }

    func testSublayerNormGradientsInEveryModel() throws {
        // Gain-free RMSNorm on sublayer outputs: dense, both subspace modes, an adaptive U
        // (dU through the normed coordinates) and projectors, against finite differences. A
        // normed write is scale-invariant in its weights and strongly curved where they are
        // small, so the differences take a smaller step (1e-3) than the other checks.
        var dense = try ModelConfig.preset("tiny")
        dense.initStd = 0.2; dense.nLayer = 3; dense.sublayerNorm = true
        checkWholeModelGradients(dense, seed: 10, label: "dense+norm ", eps: 1e-3)
        for mode in SubspaceMode.allCases {
            var c = try subspaceConfig(mode)
            c.sublayerNorm = true
            checkWholeModelGradients(c, seed: 11, label: "\(mode)+norm ", eps: 1e-3)
        }
        var a = try subspaceConfig(.reparam)
        a.sublayerNorm = true; a.subspace!.adaptive = ManifoldTraining()
        checkWholeModelGradients(a, seed: 12, label: "adaptive+norm ", eps: 1e-3)
        var p = dense
        p.projector = ProjectorConfig(rank: 4, boundaries: [0, 1])
        checkWholeModelGradients(p, seed: 13, label: "projector+norm ", eps: 1e-3)
    }

    /// Per-layer token embeddings P_l start at zero; give them values so they shape the loss.
    func fillLayerEmbeddings(_ model: StageModel, std: Float = 0.3) {
        for t in model.layout.tensors where t.name.hasSuffix(".emb") {
            var rng = SplitMix64(seed: SplitMix64.derive(99, t.name))
            rng.fillNormal(model.params.ptr + t.offset, t.count, std: std)
        }
    }

    func testLayerEmbeddingGradientsInEveryModel() throws {
        // Block l reads X + P_l[ids] and passes on X plus its writes: dP_l[ids] = dX − dOut.
        // Dense, both subspace modes with the sublayer norm, an adaptive U and projectors.
        var dense = try ModelConfig.preset("tiny")
        dense.initStd = 0.2; dense.nLayer = 3; dense.layerEmbedding = true
        checkWholeModelGradients(dense, seed: 20, label: "dense+layeremb ", prepare: { self.fillLayerEmbeddings($0) })
        for mode in SubspaceMode.allCases {
            var c = try subspaceConfig(mode)
            c.sublayerNorm = true; c.layerEmbedding = true
            checkWholeModelGradients(c, seed: 21, label: "\(mode)+norm+layeremb ", eps: 1e-3, prepare: { self.fillLayerEmbeddings($0) })
        }
        var a = try subspaceConfig(.reparam)
        a.layerEmbedding = true; a.subspace!.adaptive = ManifoldTraining()
        checkWholeModelGradients(a, seed: 22, label: "adaptive+layeremb ", prepare: { self.fillLayerEmbeddings($0) })
        var p = dense
        p.projector = ProjectorConfig(rank: 4, boundaries: [0, 1])
        checkWholeModelGradients(p, seed: 23, label: "projector+layeremb ", prepare: { self.fillLayerEmbeddings($0) })
    }

    func testLayerEmbeddingStartsAsTheModelWithoutAndKeepsTheStreamInTheSubspace() throws {
        var base = try subspaceConfig(.reparam)
        base.sublayerNorm = true
        var cfg = base
        cfg.layerEmbedding = true
        let plain = StageModel(config: base, stage: .whole(base), batchSize: 1)
        let model = StageModel(config: cfg, stage: .whole(cfg), batchSize: 1)
        XCTAssertEqual(model.layout.tensor("h2.emb")?.shape, [cfg.vocabSize, cfg.dModel])
        XCTAssertEqual(cfg.parameterCount - base.parameterCount, cfg.nLayer * cfg.vocabSize * cfg.dModel)
        let N = cfg.seqLen
        let ids = (0..<N).map { Int32(($0 * 7) % cfg.vocabSize) }
        let l0 = try XCTUnwrap(plain.forward(slot: 0, ids: ids, targets: ids))
        XCTAssertEqual(try XCTUnwrap(model.forward(slot: 0, ids: ids, targets: ids)), l0,
                       "zero tables and the same seed: the same weights and the same loss to the bit")
        fillLayerEmbeddings(model, std: 1)
        let l1 = try XCTUnwrap(model.forward(slot: 0, ids: ids, targets: ids))
        XCTAssertGreaterThan(abs(l1 - l0), 1e-3, "the tables shape what the blocks read")
        // What a block passes on stays in E_fixed[ids] + span(U): the tables are not carried.
        let sub = try XCTUnwrap(model.subspace), C = cfg.dModel
        for l in 0..<(cfg.nLayer - 1) {
            var r = Array(UnsafeBufferPointer(start: model.slots[0].layers[l].out, count: N * C))
            r.withUnsafeMutableBufferPointer { sub.addFixed($0.baseAddress!, ids: ids, n: N, sign: -1) }
            let leak = r.withUnsafeMutableBufferPointer { sub.leakage($0.baseAddress!, rows: N) }
            XCTAssertLessThan(leak, 1e-5, "block \(l)'s output")
        }
    }

    func testSublayerNormNormalisesEveryWrite() throws {
        // With the norm on, every sublayer adds a write of RMS 1 (over d) to the residual.
        var cfg = try subspaceConfig(.reparam)
        cfg.sublayerNorm = true
        let model = StageModel(config: cfg, stage: .whole(cfg), batchSize: 1)
        let N = cfg.seqLen
        let ids = (0..<N).map { Int32($0 % cfg.vocabSize) }
        _ = model.forward(slot: 0, ids: ids, targets: ids)
        let la = model.slots[0].layers[0], C = cfg.dModel
        for i in 0..<N {
            var ss = 0.0
            for c in 0..<C { let d = Double(la.res1[i * C + c]) - Double(model.slots[0].input[i * C + c]); ss += d * d }
            XCTAssertEqual((ss / Double(C)).squareRoot(), 1, accuracy: 1e-2, "token \(i): the attention write has RMS 1 (up to the norm's eps)")
        }
    }

    func testTrainingKeepsWeightsInTheSubspace() throws {
        for mode in SubspaceMode.allCases {
            var cfg = try subspaceConfig(mode)
            cfg.initStd = 0.02
            let model = StageModel(config: cfg, stage: .whole(cfg), batchSize: 2)
            XCTAssertLessThan(model.subspaceLeakage(), 1e-5, "\(mode): after initialisation")
            var tc = TrainConfig()
            tc.batchSize = 2; tc.microbatches = 1
            tc.schedule = LRSchedule(maxLR: 1e-2, minLR: 1e-3, warmupSteps: 1, totalSteps: 5)
            let trainer = LocalTrainer(model: model, train: tc)
            var rng = SplitMix64(seed: 3)
            let N = 2 * cfg.seqLen
            var losses: [Float] = []
            for s in 0..<5 {
                let ids = (0..<N).map { _ in Int32(rng.int(below: 8)) }
                losses.append(trainer.step(s, [Microbatch(ids: ids, targets: ids.map { ($0 + 1) % 8 })]).loss)
            }
            XCTAssertLessThan(losses.last!, losses.first!, "\(mode): the subspace model learns")
            XCTAssertLessThan(model.subspaceLeakage(), 1e-5, "\(mode): after 5 AdamW steps")
        }
    }

    func testLeakageCheckCanFail() throws {
        let cfg = try subspaceConfig(.projected)
        let model = StageModel(config: cfg, stage: .whole(cfg), batchSize: 1)
        let t = model.layout.tensor("h0.fc_proj")!
        model.params.ptr[t.offset] += 0.5  // push one weight out of span(U)
        XCTAssertGreaterThan(model.subspaceLeakage(), 1e-3)
        model.enforceConstraint()
        XCTAssertLessThan(model.subspaceLeakage(), 1e-5, "projection restores the constraint")
    }
}
