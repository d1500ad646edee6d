// Per-layer token embeddings (the `+layeremb` lever): each block's table lives with the block,
// so every split and schedule trains the one-process model step for step, the subspace wire
// stays exact, and nothing about the tables crosses a boundary.
import XCTest
import ProtoCore
@testable import ProtoPipeline

final class LayerEmbeddingTests: XCTestCase {
    func testPipelineMatchesOneProcessAndTheWireStaysExact() throws {
        for word in ["subspace:4+efixed=1+norm+layeremb", "projector:4+layeremb", "subspace:4:adaptive+layeremb"] {
            let (base, tc) = pipelineConfig()
            let v = try Variant.parse(word)
            XCTAssert(v.layerEmbedding)
            for split in [[1, 1, 1, 1], [2, 2], [1, 3]] {
                let cfg = try v.config(base, split: split)
                XCTAssert(cfg.hasLayerEmbedding)
                let data = syntheticBatches(cfg, B: tc.batchSize, M: tc.microbatches, steps: 6, seed: 17)
                let local = LocalTrainer(model: StageModel(config: cfg, stage: .whole(cfg), batchSize: tc.batchSize), train: tc)
                let ref = data.enumerated().map { local.step($0, $1).loss }
                XCTAssertLessThan(ref.last!, ref.first!, "\(word): the one-process model learns")
                for kind in ScheduleKind.allCases {
                    let p = try InProcessPipeline(config: cfg, split: split, train: tc, schedule: kind) { v.spec.makeCodec(model: $0) }
                    for (s, batch) in data.enumerated() {
                        assertRel(try p.trainStep(s, batch).loss, ref[s], 1e-4, "\(word) split \(split) \(kind) step \(s) loss")
                        for (i, m) in p.lastMetrics.dropLast().enumerated() where cfg.projector == nil {
                            XCTAssertLessThan(m.wireError.relativeForward, 1e-5, "\(word) split \(split) stage \(i) step \(s): the wire is exact")
                        }
                    }
                    for t in local.model.layout.tensors {
                        let w = Array(UnsafeBufferPointer(start: local.model.params.ptr + t.offset, count: t.count))
                        XCTAssertLessThan(relErr(try XCTUnwrap(p.parameter(t.name)), w), 2e-3, "\(word) split \(split) \(kind): \(t.name)")
                    }
                }
                // The tables trained away from zero, and they are the tokens' own rows only.
                let t = try XCTUnwrap(local.model.layout.tensor("h1.emb"))
                let p1 = UnsafeBufferPointer(start: local.model.params.ptr + t.offset, count: t.count)
                let seen = Set(data.flatMap { $0.flatMap(\.ids) })
                for id in 0..<cfg.vocabSize {
                    let row = p1[(id * cfg.dModel)..<((id + 1) * cfg.dModel)]
                    // AdamW's decay leaves a zero row at zero; a seen token's row moves.
                    XCTAssertEqual(row.contains { $0 != 0 }, seen.contains(Int32(id)), "\(word): row \(id) of h1.emb")
                }
            }
        }
    }

    func testCodecsWithoutTokenIdsAreRefused() throws {
        let (base, _) = pipelineConfig()
        for word in ["dense+layeremb", "int8+layeremb", "topk+layeremb"] {
            XCTAssertThrowsError(try Variant.parse(word).config(base, split: [2, 2]), word) {
                XCTAssert("\($0)".contains("need the token ids on every stage"), "\($0)")
            }
            XCTAssertNoThrow(try Variant.parse(word).config(base, split: [4]), "\(word): one stage needs no wire")
        }
        // The check reads CodecSpec.carriesIds; the codecs the spec makes must agree with it.
        for kind in CodecKind.allCases {
            let spec = CodecSpec(kind: kind, rankK: kind == .subspace || kind == .projector ? 4 : nil)
            var cfg = base
            try spec.apply(to: &cfg, split: [2, 2])
            let stages = try StageSpec.stages(split: [2, 2], nLayer: cfg.nLayer)
            let codec = spec.makeCodec(model: StageModel(config: cfg, stage: stages[0], batchSize: 2))
            XCTAssertEqual(codec.carriesIds, spec.carriesIds, "\(kind): the spec and its codec disagree about carrying ids")
        }
    }

    func testPlainDenseIsTheReferenceWhereverItIsListed() throws {
        func ref(_ words: [String]) throws -> Int? { Variant.referenceIndex(try words.map(Variant.parse)) }
        XCTAssertEqual(try ref(["dense+layeremb", "subspace:4", "dense"]), 2, "not the dense model with a lever")
        XCTAssertEqual(try ref(["subspace:4", "dense+norm", "dense+layeremb"]), 1, "no plain dense: the first dense variant")
        XCTAssertNil(try ref(["subspace:4", "int8"]))
    }

    func testBoundaryBytesDoNotChange() throws {
        // The subspace message already carries the token ids the next stage's tables need.
        let (base, tc) = pipelineConfig()
        let data = syntheticBatches(base, B: tc.batchSize, M: tc.microbatches, steps: 1, seed: 3)
        var bytes: [[Double]] = []
        for word in ["subspace:4:int8+norm", "subspace:4:int8+norm+layeremb"] {
            let v = try Variant.parse(word)
            let cfg = try v.config(base, split: [2, 2])
            let p = try InProcessPipeline(config: cfg, split: [2, 2], train: tc, schedule: .oneFOneB) { v.spec.makeCodec(model: $0) }
            _ = try p.trainStep(0, data[0])
            bytes.append(p.lastMetrics.map { $0.bytesSentForward + $0.bytesSentBackward + $0.bytesSentSync })
        }
        XCTAssertEqual(bytes[0], bytes[1])
        XCTAssertGreaterThan(bytes[0].reduce(0, +), 0)
    }
}
