// The N-stage pipeline computes the same losses and updates as the single-process model.
import XCTest
import ProtoCore
import ProtoData
@testable import ProtoPipeline

func syntheticBatches(_ cfg: ModelConfig, B: Int, M: Int, steps: Int, seed: UInt64) -> [[Microbatch]] {
    var rng = SplitMix64(seed: seed)
    let N = B * cfg.seqLen
    return (0..<steps).map { _ in
        (0..<M).map { _ in
            var t = [Int32](repeating: 0, count: N + 1)
            for i in 1...N { t[i] = rng.uniform() < 0.2 ? Int32(rng.int(below: cfg.vocabSize)) : (t[i - 1] * 5 + 3) % Int32(cfg.vocabSize) }
            return Microbatch(ids: Array(t[0..<N]), targets: Array(t[1...N]))
        }
    }
}

func pipelineConfig() -> (ModelConfig, TrainConfig) {
    var cfg = ModelConfig(vocabSize: 48, seqLen: 8, nLayer: 4, nHead: 2, dModel: 16)
    cfg.seed = 5
    var tc = TrainConfig()
    tc.batchSize = 2; tc.microbatches = 3
    tc.schedule = LRSchedule(maxLR: 1e-2, minLR: 1e-3, warmupSteps: 2, totalSteps: 6)
    tc.gradClip = 0.5   // small enough to clip, so the global norm all-reduce matters
    return (cfg, tc)
}

final class PipelineParityTests: XCTestCase {
    func runLocal(_ cfg: ModelConfig, _ tc: TrainConfig, _ data: [[Microbatch]]) -> ([Float], LocalTrainer) {
        let t = LocalTrainer(model: StageModel(config: cfg, stage: .whole(cfg), batchSize: tc.batchSize), train: tc)
        return (data.enumerated().map { t.step($0, $1).loss }, t)
    }

    func testEverySplitAndScheduleMatchesOneProcess() throws {
        let (cfg, tc) = pipelineConfig()
        let data = syntheticBatches(cfg, B: tc.batchSize, M: tc.microbatches, steps: 6, seed: 11)
        let (ref, local) = runLocal(cfg, tc, data)
        XCTAssertLessThan(ref.last!, ref.first!, "the reference learns")
        let splits: [[Int]] = [[4], [2, 2], [1, 3], [3, 1], [1, 1, 2], [2, 1, 1], [1, 1, 1, 1]]
        for split in splits {
            for kind in ScheduleKind.allCases {
                let p = try InProcessPipeline(config: cfg, split: split, train: tc, schedule: kind) { _ in DenseCodec() }
                let losses = data.enumerated().map { p.step($0, $1).loss }
                for (s, (a, b)) in zip(losses, ref).enumerated() {
                    assertRel(a, b, 1e-5, "split \(split) \(kind) step \(s) loss")
                }
                for t in local.model.layout.tensors {
                    let w = Array(UnsafeBufferPointer(start: local.model.params.ptr + t.offset, count: t.count))
                    let pw = try XCTUnwrap(p.parameter(t.name), "\(t.name) missing from split \(split)")
                    XCTAssertLessThan(relErr(pw, w), 1e-5, "split \(split) \(kind): \(t.name) after 6 updates")
                }
            }
        }
    }

    func testEvaluationMatchesOneProcess() throws {
        let (cfg, tc) = pipelineConfig()
        let data = syntheticBatches(cfg, B: tc.batchSize, M: tc.microbatches, steps: 2, seed: 3)
        let local = LocalTrainer(model: StageModel(config: cfg, stage: .whole(cfg), batchSize: tc.batchSize), train: tc)
        let p = try InProcessPipeline(config: cfg, split: [1, 2, 1], train: tc, schedule: .oneFOneB) { _ in DenseCodec() }
        assertRel(p.evaluate(data[0] + data[1]), local.evaluate(data[0] + data[1]), 1e-6, "validation loss")
    }

    func testMetricsCountBoundaryBytes() throws {
        let (cfg, tc) = pipelineConfig()
        let data = syntheticBatches(cfg, B: tc.batchSize, M: tc.microbatches, steps: 1, seed: 3)
        let p = try InProcessPipeline(config: cfg, split: [2, 1, 1], train: tc, schedule: .gpipe) { _ in DenseCodec() }
        _ = p.step(0, data[0])
        let N = tc.batchSize * cfg.seqLen, M = Double(tc.microbatches)
        let msg = Double(WireBuffer.headerBytes + 4 * N * cfg.dModel)
        XCTAssertEqual(p.lastMetrics.map(\.bytesSentForward), [M * msg, M * msg, 0])
        XCTAssertEqual(p.lastMetrics.map(\.bytesSentBackward), [0, M * msg, M * msg])
        XCTAssertEqual(p.lastMetrics[0].bytesSentTargets, M * Double(WireBuffer.headerBytes + 4 * N))
        // Peak memory travels with the metrics (Linux reports it; the record round-trips it,
        // non-finite values included).
        XCTAssertGreaterThan(p.lastMetrics[0].peakResidentBytes, 1e6)
        XCTAssertEqual(try StageStepMetrics.decoded(p.lastMetrics[1].encoded()), p.lastMetrics[1])
        var odd = p.lastMetrics[1]
        odd.lossSum = .infinity; odd.gradSumSquares = -.infinity; odd.skipped = true
        let back = try StageStepMetrics.decoded(odd.encoded())
        XCTAssertEqual(back.lossSum, .infinity); XCTAssertEqual(back.gradSumSquares, -.infinity); XCTAssert(back.skipped)
        odd.lossSum = .nan
        XCTAssert(try StageStepMetrics.decoded(odd.encoded()).lossSum.isNaN)
    }

    func testBadSplitsAreRefused() {
        XCTAssertThrowsError(try StageSpec.stages(split: [2, 1], nLayer: 4)) { XCTAssert("\($0)".contains("covers 3 layers but the model has 4")) }
        XCTAssertThrowsError(try StageSpec.stages(split: [2, 0, 2], nLayer: 4)) { XCTAssert("\($0)".contains("at least 1")) }
        XCTAssertThrowsError(try StageSpec.evenSplit(nLayer: 4, stages: 5)) { XCTAssert("\($0)".contains("5 stages for 4 layers")) }
        XCTAssertEqual(try StageSpec.evenSplit(nLayer: 10, stages: 4), [3, 3, 2, 2])
    }
}

func relErr(_ a: [Float], _ b: [Float]) -> Double {
    var num = 0.0, den = 0.0
    for i in 0..<a.count { let d = Double(a[i]) - Double(b[i]); num += d * d; den += Double(b[i]) * Double(b[i]) }
    return (num / max(den, 1e-30)).squareRoot()
}

func assertRel(_ a: Float, _ b: Float, _ tol: Double, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertLessThanOrEqual(abs(Double(a) - Double(b)), tol * abs(Double(b)), "\(what): \(a) vs \(b)", file: file, line: line)
}

final class ConvergenceRunTests: XCTestCase {
    /// One variant of the convergence benchmark: validation at the intervals asked for, bytes
    /// per token as the wire counts them, and the same figures when run twice (same data order).
    func testRunRecordsValidationAndBytes() throws {
        let (cfg, tc0) = pipelineConfig()
        var tc = tc0
        tc.steps = 6
        let data = syntheticBatches(cfg, B: tc.batchSize, M: tc.microbatches, steps: 8, seed: 4)
        func once(_ spec: CodecSpec) throws -> ConvergenceResult {
            var i = 0
            return try Convergence.run(label: spec.description, config: cfg, spec: spec, train: tc, split: [2, 1, 1],
                                       schedule: .oneFOneB, fingerprint: "t", nextStep: { defer { i += 1 }; return data[i] },
                                       validation: data[7], evalEvery: 4) { _ in }
        }
        let dense = try once(CodecSpec())
        XCTAssertEqual(dense.validation.map(\.step), [4, 6])
        let N = Double(tc.batchSize * cfg.seqLen)
        XCTAssertEqual(dense.bytesPerTokenForward, (4 * N * Double(cfg.dModel) + 16) / N, accuracy: 1e-9)
        XCTAssertEqual(dense.bytesPerTokenBackward, dense.bytesPerTokenForward, accuracy: 1e-9)
        XCTAssertEqual(dense.wireErrorForward, 0)
        XCTAssertEqual(try once(CodecSpec()).validation, dense.validation, "same data order and seed, same figures")
        let q = try once(try CodecSpec.parse("subspace:4:int8"))
        XCTAssertEqual(q.bytesPerTokenForward, (N * (2 + 2 + 4) + 16) / N, accuracy: 1e-9, "uint16 id + bf16 scale + 4 int8 coordinates")
        XCTAssertGreaterThan(q.wireErrorForward, 0)
        XCTAssertNotEqual(q.validation.last!.loss, dense.validation.last!.loss)
    }
}
