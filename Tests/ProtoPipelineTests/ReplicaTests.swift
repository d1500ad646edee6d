// Data-parallel replicas of every stage: R pipelines over the same global batch compute the
// single pipeline's losses and weights, every replica holds the same bits, and the gradient
// exchange is counted.
import XCTest
import ProtoCore
@testable import ProtoPipeline

final class ReplicaTests: XCTestCase {
    func testReplicasMatchOnePipeline() throws {
        for word in ["dense", "subspace:4", "subspace:4:adaptive", "projector:4"] {
            var (cfg, tc) = pipelineConfig()
            tc.microbatches = 6
            let spec = try CodecSpec.parse(word)
            try spec.apply(to: &cfg, split: [2, 2])
            let data = syntheticBatches(cfg, B: tc.batchSize, M: tc.microbatches, steps: 5, seed: 21)
            for kind in ScheduleKind.allCases {
                let one = try InProcessPipeline(config: cfg, split: [2, 2], train: tc, schedule: kind) { spec.makeCodec(model: $0) }
                let ref = try data.enumerated().map { try one.trainStep($0, $1) }
                for R in [2, 3] {
                    let p = try InProcessPipeline(config: cfg, split: [2, 2], train: tc, schedule: kind, replicas: R) { spec.makeCodec(model: $0) }
                    for (s, batch) in data.enumerated() {
                        let r = try p.trainStep(s, batch)
                        assertRel(r.loss, ref[s].loss, 1e-5, "\(word) \(kind) R=\(R) step \(s)")
                        // The same gradient, not R times it (Adam alone would hide the scale).
                        assertRel(Float(r.gradNorm), Float(ref[s].gradNorm), 1e-5, "\(word) \(kind) R=\(R) step \(s): gradient norm")
                    }
                    for t in one.stages[0].model.layout.tensors + one.stages[1].model.layout.tensors {
                        let w = try XCTUnwrap(one.parameter(t.name))
                        XCTAssertLessThan(relErr(try XCTUnwrap(p.parameter(t.name)), w), 1e-5, "\(word) \(kind) R=\(R): \(t.name)")
                    }
                    // Replicas of a stage hold the same bits.
                    for s in 0..<2 {
                        let a = p.stages[s].model.params.toArray()
                        for r in 1..<R { XCTAssertEqual(p.stages[r * 2 + s].model.params.toArray(), a, "\(word) R=\(R): replica \(r) of stage \(s)") }
                    }
                    // Each stage's group sends R−1 parts to its root and R−1 sums back.
                    let expected = (0..<2).reduce(0.0) { acc, s in
                        let rows = (p.stages[s].model.grads.count + 255) / 256
                        return acc + Double(2 * (R - 1) * (WireBuffer.headerBytes + rows * 256 * 4))
                    }
                    XCTAssertEqual(p.lastMetrics.reduce(0) { $0 + $1.bytesSentReplica }, expected, "the exchange is counted, every message once")
                    XCTAssertEqual(p.evaluate(data[0]), one.evaluate(data[0]), accuracy: 1e-5)
                }
            }
        }
    }

    func testLossyReplicaFormatTrains() throws {
        var (cfg, tc) = pipelineConfig()
        tc.microbatches = 4
        cfg.seed = 9
        let data = syntheticBatches(cfg, B: tc.batchSize, M: tc.microbatches, steps: 4, seed: 2)
        let exact = try InProcessPipeline(config: cfg, split: [2, 2], train: tc, schedule: .oneFOneB, replicas: 2) { _ in DenseCodec() }
        let q = try InProcessPipeline(config: cfg, split: [2, 2], train: tc, schedule: .oneFOneB, replicas: 2, replicaFormat: .bf16) { _ in DenseCodec() }
        var last = (Float(0), Float(0))
        for (s, b) in data.enumerated() { last = (try exact.trainStep(s, b).loss, try q.trainStep(s, b).loss) }
        XCTAssert(last.1.isFinite)
        XCTAssertNotEqual(last.0, last.1, "bf16 gradients are lossy")
        XCTAssertEqual(last.0, last.1, accuracy: 0.05 * last.0, "and close")
        let bytes = (exact.lastMetrics.reduce(0) { $0 + $1.bytesSentReplica }, q.lastMetrics.reduce(0) { $0 + $1.bytesSentReplica })
        XCTAssertLessThan(bytes.1, bytes.0 * 0.6, "bf16 halves the exchange")
    }

    /// Local SGD (H = 2, R = 2) equals two independent pipelines, each on its replica's
    /// micro-batches with its own clipping and Adam moments, whose weights are averaged after
    /// every second step; at those steps the replicas hold the same bits.
    func testLocalSGDIsIndependentPipelinesAveragedEveryH() throws {
        for word in ["dense", "subspace:4"] {
            var (cfg, tc) = pipelineConfig()
            tc.microbatches = 4
            tc.gradClip = 0.5  // clipping on: each replica must clip by its own norm
            let spec = try CodecSpec.parse(word)
            try spec.apply(to: &cfg, split: [2, 2])
            let R = 2, H = 2, S = 2
            let data = syntheticBatches(cfg, B: tc.batchSize, M: tc.microbatches, steps: 5, seed: 33)
            let p = try InProcessPipeline(config: cfg, split: [2, 2], train: tc, schedule: .oneFOneB, replicas: R,
                                          replicaSyncEvery: H) { spec.makeCodec(model: $0) }
            var half = tc
            half.microbatches = tc.microbatches / R
            let refs = try (0..<R).map { _ in try InProcessPipeline(config: cfg, split: [2, 2], train: half, schedule: .oneFOneB) { spec.makeCodec(model: $0) } }
            let exact = try InProcessPipeline(config: cfg, split: [2, 2], train: tc, schedule: .oneFOneB, replicas: R) { spec.makeCodec(model: $0) }
            var drift = 0.0
            for (step, batch) in data.enumerated() {
                let r = try p.trainStep(step, batch)
                _ = try exact.trainStep(step, batch)
                var losses: [Float] = []
                for (k, ref) in refs.enumerated() {
                    losses.append(try ref.trainStep(step, Array(batch[(k * half.microbatches)..<((k + 1) * half.microbatches)])).loss)
                }
                assertRel(r.loss, losses.reduce(0, +) / Float(R), 1e-5, "\(word) step \(step): loss is the replicas' mean")
                if (step + 1) % H == 0 {
                    for s in 0..<S {
                        let a = refs[0].stages[s].model.params, b = refs[1].stages[s].model.params
                        for i in 0..<a.count { var v = a.ptr[i]; v += b.ptr[i]; v *= 1 / Float(R); a.ptr[i] = v; b.ptr[i] = v }
                        XCTAssertEqual(p.stages[s].model.params.toArray(), p.stages[S + s].model.params.toArray(), "\(word) step \(step): replicas equal after the sync")
                    }
                } else {
                    drift = max(drift, relErr(p.stages[S].model.params.toArray(), p.stages[0].model.params.toArray()))
                }
                for k in 0..<R {
                    for s in 0..<S {
                        XCTAssertLessThan(relErr(p.stages[k * S + s].model.params.toArray(), refs[k].stages[s].model.params.toArray()), 1e-6,
                                          "\(word) step \(step): replica \(k) stage \(s) = its own pipeline")
                    }
                }
            }
            XCTAssertGreaterThan(drift, 1e-4, "\(word): between syncs the replicas drift apart")
            XCTAssertGreaterThan(relErr(p.stages[0].model.params.toArray(), exact.stages[0].model.params.toArray()), 1e-4,
                                 "\(word): local SGD is not exact data parallelism")
            // Weights only cross every H steps: 5 steps, H = 2 → 2 exchanges of the weights.
            let syncs = data.indices.filter { ($0 + 1) % H == 0 }.count
            XCTAssertEqual(syncs, 2)
            // A checkpoint's sync also averages the Adam moments: afterwards every replica holds one state.
            _ = try p.runAll { st in var met = StageStepMetrics(); try st.averageReplicas(optimizerState: true, &met); return met }
            for s in 0..<S {
                XCTAssertEqual(p.stages[s].optimizer.m.toArray(), p.stages[S + s].optimizer.m.toArray(), "\(word): Adam m averaged")
                XCTAssertEqual(p.stages[s].optimizer.v.toArray(), p.stages[S + s].optimizer.v.toArray(), "\(word): Adam v averaged")
                XCTAssertEqual(p.stages[s].model.params.toArray(), p.stages[S + s].model.params.toArray())
            }
        }
    }
}
