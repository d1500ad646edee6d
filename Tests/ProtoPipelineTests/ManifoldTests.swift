// Trained bases (SPEC §2): the adaptive shared U with an exact wire and the learned
// per-boundary projectors. The N-stage pipeline matches one process step for step, every
// copy of a basis stays bit-identical, the wire stays exact after every update, and the
// Grassmann step keeps the basis orthonormal and moves only its span.
import XCTest
import ProtoCore
@testable import ProtoPipeline

final class ManifoldTests: XCTestCase {
    func config(_ word: String, split: [Int]) throws -> (ModelConfig, TrainConfig, CodecSpec) {
        var (cfg, tc) = pipelineConfig()
        let spec = try CodecSpec.parse(word)
        try spec.apply(to: &cfg, split: split)
        // Large enough to move the bases; at 2e-2 the projector run on split [1, 3] amplified step
        // 0's round-off (1e-7, as on every split) 10× a step, to 3e-4 in the loss by step 3.
        tc.schedule = LRSchedule(maxLR: 1e-2, minLR: 1e-3, warmupSteps: 1, totalSteps: 6)
        return (cfg, tc, spec)
    }

    /// Step 0's gradients of every tensor, one process vs the pipeline (after the pipeline
    /// has added the parts of shared bases): equal to float round-off.
    func testFirstStepGradientsMatchOneProcess() throws {
        for word in ["subspace:4:adaptive", "projector:4", "subspace:4:adaptive+norm", "subspace:4+norm", "projector:4+norm"] {
            for split in [[1, 3], [1, 1, 1, 1], [2, 2]] {
                var (cfg, tc, spec) = try config(word.replacingOccurrences(of: "+norm", with: ""), split: split)
                cfg.sublayerNorm = word.hasSuffix("+norm")
                tc.schedule = LRSchedule(maxLR: 1e-12, minLR: 1e-12, warmupSteps: 1, totalSteps: 6)  // gradients, no movement
                let data = syntheticBatches(cfg, B: tc.batchSize, M: tc.microbatches, steps: 1, seed: 11)
                let local = LocalTrainer(model: StageModel(config: cfg, stage: .whole(cfg), batchSize: tc.batchSize), train: tc)
                _ = local.step(0, data[0])
                let p = try InProcessPipeline(config: cfg, split: split, train: tc, schedule: .gpipe) { spec.makeCodec(model: $0) }
                _ = try p.trainStep(0, data[0])
                for t in local.model.layout.tensors {
                    let g = Array(UnsafeBufferPointer(start: local.model.grads.ptr + t.offset, count: t.count))
                    for st in p.stages {
                        guard let pt = st.model.layout.tensor(t.name) else { continue }
                        let pg = Array(UnsafeBufferPointer(start: st.model.grads.ptr + pt.offset, count: pt.count))
                        XCTAssertLessThan(relErr(pg, g), 1e-5, "\(word) split \(split) stage \(st.stageIndex): gradient of \(t.name)")
                    }
                }
            }
        }
    }

    func testPipelineMatchesOneProcessAndCopiesStayIdentical() throws {
        for word in ["subspace:4:adaptive", "projector:4", "subspace:4:adaptive:every=2:ulr=0.5", "projector:4:int8"] {
            for split in [[1, 1, 1, 1], [2, 2], [1, 3]] {
                let (cfg, tc, spec) = try config(word, split: split)
                let lossy = spec.coords != .fp32
                let data = syntheticBatches(cfg, B: tc.batchSize, M: tc.microbatches, steps: 6, seed: 11)
                let local = LocalTrainer(model: StageModel(config: cfg, stage: .whole(cfg), batchSize: tc.batchSize), train: tc)
                let ref = data.enumerated().map { local.step($0, $1).loss }
                XCTAssertLessThan(ref.last!, ref.first!, "\(word): the one-process model learns")
                for kind in ScheduleKind.allCases {
                    let p = try InProcessPipeline(config: cfg, split: split, train: tc, schedule: kind) { spec.makeCodec(model: $0) }
                    for (s, batch) in data.enumerated() {
                        let loss = try p.trainStep(s, batch).loss
                        // Gradients agree to round-off (above); Adam's normalisation and the
                        // retraction amplify it on near-zero entries over the steps: 1e-4.
                        if !lossy { assertRel(loss, ref[s], 1e-4, "\(word) split \(split) \(kind) step \(s) loss") }
                        for (i, m) in p.lastMetrics.dropLast().enumerated() where !lossy {
                            XCTAssertLessThan(m.wireError.relativeForward, 1e-5, "\(word) split \(split) stage \(i) step \(s): the wire is exact")
                        }
                        // Every stage holding a basis holds the same bits.
                        var hashes: [String: Set<UInt64>] = [:]
                        for st in p.stages {
                            for t in st.model.manifoldTensors {
                                let b = Basis(d: t.shape[0], k: t.shape[1], at: st.model.params.ptr + t.offset)
                                hashes[t.name, default: []].insert(b.hash)
                                XCTAssertLessThan(b.orthonormalityError(), 1e-5, "\(word): \(t.name) stays orthonormal")
                            }
                        }
                        for (name, h) in hashes { XCTAssertEqual(h.count, 1, "\(word) split \(split) step \(s): copies of \(name) differ") }
                    }
                    if lossy { continue }
                    for t in local.model.layout.tensors {
                        let w = Array(UnsafeBufferPointer(start: local.model.params.ptr + t.offset, count: t.count))
                        XCTAssertLessThan(relErr(try XCTUnwrap(p.parameter(t.name)), w), 2e-3, "\(word) split \(split) \(kind): \(t.name)")
                    }
                    let sync = p.lastMetrics.map(\.bytesSentSync)
                    if split.count > 1 && (spec.training?.every ?? 1) == 1 {
                        XCTAssertGreaterThan(sync.reduce(0, +), 0, "\(word): keeping copies identical costs counted bytes")
                    }
                }
                // The bases really moved away from their seeds.
                for t in local.model.manifoldTensors {
                    var seeded = [Float](repeating: 0, count: t.count)
                    Basis.seed(&seeded, d: t.shape[0], k: t.shape[1], seed: cfg.seed, name: t.name)
                    let now = Array(UnsafeBufferPointer(start: local.model.params.ptr + t.offset, count: t.count))
                    XCTAssertGreaterThan(relErr(now, seeded), 1e-3, "\(word): \(t.name) trained")
                }
            }
        }
    }

    func testSyncBytesAreCounted() throws {
        let (cfg, tc, spec) = try config("subspace:4:adaptive", split: [1, 1, 1, 1])
        let data = syntheticBatches(cfg, B: tc.batchSize, M: tc.microbatches, steps: 1, seed: 3)
        let p = try InProcessPipeline(config: cfg, split: [1, 1, 1, 1], train: tc, schedule: .oneFOneB) { spec.makeCodec(model: $0) }
        _ = try p.trainStep(0, data[0])
        let msg = Double(WireBuffer.headerBytes + 8 + 4 * cfg.dModel * 4)
        // Ranks 1…3 send their part of G_U to rank 0, which sends the sum back to each.
        XCTAssertEqual(p.lastMetrics.map(\.bytesSentSync), [3 * msg, msg, msg, msg])
        let (pcfg, ptc, pspec) = try config("projector:4", split: [1, 1, 1, 1])
        let q = try InProcessPipeline(config: pcfg, split: [1, 1, 1, 1], train: ptc, schedule: .oneFOneB) { pspec.makeCodec(model: $0) }
        _ = try q.trainStep(0, data[0])
        // Each boundary's two stages swap their parts of dA.
        XCTAssertEqual(q.lastMetrics.map(\.bytesSentSync), [msg, 2 * msg, 2 * msg, msg])
    }

    func testDivergedCopiesStopTheRun() throws {
        let (cfg, tc, spec) = try config("projector:4", split: [2, 2])
        let data = syntheticBatches(cfg, B: tc.batchSize, M: tc.microbatches, steps: 1, seed: 3)
        let p = try InProcessPipeline(config: cfg, split: [2, 2], train: tc, schedule: .oneFOneB) { spec.makeCodec(model: $0) }
        let t = p.stages[1].model.layout.tensor("proj1.A")!
        p.stages[1].model.params.ptr[t.offset] += 1e-6
        XCTAssertThrowsError(try p.trainStep(0, data[0])) { XCTAssert("\($0)".contains("differs"), "\($0)") }
    }

    func testGrassmannStep() {
        let d = 12, k = 3
        var basis = [Float](repeating: 0, count: d * k)
        Basis.seed(&basis, d: d, k: k, seed: 1, name: "test")
        let cfg = AdamWConfig()
        // A gradient inside span(M) (G = M·X) has no tangent part: the span does not move.
        var x = [Float](repeating: 0, count: k * k)
        for i in 0..<(k * k) { x[i] = Float(i % 5) - 2 }
        var g = [Float](repeating: 0, count: d * k)
        for r in 0..<d { for j in 0..<k { for i in 0..<k { g[r * k + j] += basis[r * k + i] * x[i * k + j] } } }
        var m = [Float](repeating: 0, count: d * k), v = m
        var b1 = basis, gNorm = 0.0
        for x in g { gNorm += Double(x * x) }
        GrassmannAdam.step(&b1, grad: &g, m: &m, v: &v, d: d, k: k, lr: 0.1, t: 1, config: cfg)
        var tangent = 0.0
        for x in g { tangent += Double(x * x) }
        XCTAssertLessThan((tangent / gNorm).squareRoot(), 1e-6, "a gradient along the span has no tangent part")
        // Ascent on alignment with a direction w outside the span: f = −‖Mᵀw‖², so dL/dM = −2·w·(wᵀM).
        let w = (0..<d).map { Float(($0 * 7) % 5) - 2 }
        func align(_ b: [Float]) -> Double {
            var s = 0.0
            for j in 0..<k { var dot = 0.0; for r in 0..<d { dot += Double(w[r] * b[r * k + j]) }; s += dot * dot }
            return s
        }
        var b = basis, m2 = [Float](repeating: 0, count: d * k), v2 = m2
        var twin = basis, m3 = m2, v3 = m2
        let start = align(b)
        for t in 1...20 {
            var gb = [Float](repeating: 0, count: d * k), gt = gb
            for j in 0..<k {
                var dot: Float = 0, dt: Float = 0
                for r in 0..<d { dot += w[r] * b[r * k + j]; dt += w[r] * twin[r * k + j] }
                for r in 0..<d { gb[r * k + j] = -2 * w[r] * dot; gt[r * k + j] = -2 * w[r] * dt }
            }
            GrassmannAdam.step(&b, grad: &gb, m: &m2, v: &v2, d: d, k: k, lr: 0.05, t: t, config: cfg)
            GrassmannAdam.step(&twin, grad: &gt, m: &m3, v: &v3, d: d, k: k, lr: 0.05, t: t, config: cfg)
        }
        XCTAssertGreaterThan(align(b), start * 1.5, "the span turns towards w")
        XCTAssertEqual(b, twin, "the same inputs give the same bits")
        XCTAssertLessThan(Basis(d: d, k: k, at: &b).orthonormalityError(), 1e-6)
    }
}
