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
}
