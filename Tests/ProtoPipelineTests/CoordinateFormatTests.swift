// Stacked quantization of subspace coordinates: byte counts, round-trip error bounds, the
// fp8 e4m3 table, and a quantized subspace codec whose reported error is the real one.
import XCTest
import ProtoCore
@testable import ProtoPipeline

final class CoordinateFormatTests: XCTestCase {
    func roundTrip(_ f: CoordinateFormat, _ x: [Float], rows: Int, k: Int) -> (sent: [Float], decoded: [Float], bytes: Int) {
        var sent = x
        let raw = UnsafeMutableRawPointer.allocate(byteCount: f.rowBytes(k: k) * rows, alignment: 8)
        defer { raw.deallocate() }
        f.encode(&sent, rows: rows, k: k, into: raw)
        var out = [Float](repeating: .nan, count: rows * k)
        f.decode(raw, rows: rows, k: k, into: &out)
        return (sent, out, f.rowBytes(k: k) * rows)
    }

    func testEveryFormatRoundTripsWithinItsStep() {
        let rows = 9, k = 13  // odd k exercises the int4 padding nibble
        var x = randomArray(rows * k, seed: 4, std: 3)
        x[5] = 0; for j in 0..<k { x[2 * k + j] = 0 }  // an all-zero row
        let bounds: [CoordinateFormat: Float] = [.fp32: 0, .bf16: 1.0 / 256, .int8: 0.5 / 127, .fp8: 1.0 / 16, .int4: 0.5 / 7]
        for f in CoordinateFormat.allCases {
            let (sent, out, bytes) = roundTrip(f, x, rows: rows, k: k)
            XCTAssertEqual(sent, out, "\(f): the sender's rounded copy is what the receiver decodes")
            XCTAssertEqual(bytes, rows * f.rowBytes(k: k))
            for r in 0..<rows {
                let amax = (0..<k).map { abs(x[r * k + $0]) }.max()!
                for j in 0..<k {
                    let i = r * k + j
                    // Relative formats (bf16, fp8) bound the error by the value; scaled integers by the row's absmax (+ bf16 scale rounding).
                    let tol = f == .bf16 || f == .fp8 ? abs(x[i]) * bounds[f]! + amax * 1e-3 : amax * bounds[f]! * 1.01
                    XCTAssertEqual(out[i], x[i], accuracy: max(tol, 0), "\(f) row \(r) value \(j)")
                }
            }
        }
        XCTAssertEqual(CoordinateFormat.int8.rowBytes(k: 16), 18)
        XCTAssertEqual(CoordinateFormat.int4.rowBytes(k: 13), 9)
        XCTAssertEqual(CoordinateFormat.fp8.rowBytes(k: 16), 18)
    }

    func testNonFiniteValueMakesItsRowNaN() throws {
        let rows = 3, k = 8
        for bad in [Float.nan, .infinity, -.infinity] {
            var x = randomArray(rows * k, seed: 6, std: 1)
            x[k + 3] = bad
            for f in CoordinateFormat.allCases where f != .fp32 && f != .bf16 {
                let (sent, out, _) = roundTrip(f, x, rows: rows, k: k)
                XCTAssert(out[k..<(2 * k)].allSatisfy { $0.isNaN }, "\(f) \(bad): the row with it decodes to NaN")
                XCTAssert(sent[k..<(2 * k)].allSatisfy { $0.isNaN }, "\(f) \(bad): and so does the sender's copy")
                XCTAssert(out[0..<k].allSatisfy { $0.isFinite } && out[(2 * k)...].allSatisfy { $0.isFinite }, "\(f): other rows are untouched")
            }
            // The dense int8 codec too.
            let c = Int8Codec(), y = FloatBuffer(count: rows * k)
            var e = (0.0, 0.0)
            let b = x.withUnsafeBufferPointer { c.encode($0.baseAddress!, rows, k, &e) }
            try c.decode(b, y.ptr, rows, k, "test")
            XCTAssert((k..<(2 * k)).allSatisfy { y.ptr[$0].isNaN }, "int8 codec \(bad)")
            XCTAssert((0..<k).allSatisfy { y.ptr[$0].isFinite })
        }
    }

    func testFP8TableAndRounding() {
        XCTAssertEqual(FP8E4M3.decode(0x7E), 448)
        XCTAssertEqual(FP8E4M3.decode(0x01), 0x1p-9, "smallest subnormal")
        XCTAssertEqual(FP8E4M3.decode(0x08), 0x1p-6, "smallest normal")
        XCTAssertEqual(FP8E4M3.decode(0x38), 1)
        XCTAssert(FP8E4M3.decode(0x7F).isNaN)
        for c in 0..<0x7F { XCTAssertEqual(FP8E4M3.encode(FP8E4M3.decode(UInt8(c))), UInt8(c), "code \(c) round-trips") }
        XCTAssertEqual(FP8E4M3.encode(-1), 0xB8)
        XCTAssertEqual(FP8E4M3.encode(1e6), 0x7E, "saturates")
        XCTAssertEqual(FP8E4M3.encode(1.0625), 0x38, "a tie goes to the even code (1.0)")
        XCTAssertEqual(FP8E4M3.encode(1.1875), 0x3A, "a tie goes to the even code (1.25)")
        XCTAssertEqual(FP8E4M3.encode(1.05), 0x38)
        XCTAssertEqual(FP8E4M3.encode(1.07), 0x39, "nearer to 1.125 than to 1.0")
        XCTAssertEqual(FP8E4M3.encode(1.1), 0x39)
    }

    func testQuantizedSubspaceCodecReportsItsError() throws {
        var cfg = ModelConfig(vocabSize: 48, seqLen: 8, nLayer: 4, nHead: 2, dModel: 16)
        cfg.subspace = SubspaceConfig(rank: 6, mode: .reparam)
        let sub = Subspace(config: cfg)
        let n = 10, d = 16, k = 6
        let coords = randomArray(n * k, seed: 9)
        var x = [Float](repeating: 0, count: n * d)
        let ids = (0..<n).map { Int32($0 * 5 % 48) }
        sub.expand(coords, rows: n, into: &x, accumulate: false)
        sub.addFixed(&x, ids: ids, n: n)
        for f in CoordinateFormat.allCases {
          for gf in Set([f, .int4, .fp32]) {
            let c = SubspaceCodec(subspace: sub, format: f, gradFormat: gf)
            let b = c.encodeForward(x, ids: ids, n: n, d: d)
            XCTAssertEqual(b.count, WireBuffer.headerBytes + 2 * n + n * f.rowBytes(k: k), "\(f): ids + coordinates")
            var y = [Float](repeating: 0, count: n * d), rid = [Int32](repeating: 0, count: n)
            try c.decodeForward(b, into: &y, ids: &rid, n: n, d: d)
            XCTAssertEqual(rid, ids, "\(f): ids stay exact")
            XCTAssertEqual(c.errorStats.relativeForward, relErr(y, x), accuracy: 1e-5, "\(f): reported forward error is the real one")
            if f == .fp32 { XCTAssertLessThan(relErr(y, x), 1e-6) } else { XCTAssertGreaterThan(relErr(y, x), 1e-5) }
            let g = randomArray(n * d, seed: 10)
            let gb = c.encodeBackward(g, ids: ids, n: n, d: d)
            XCTAssertEqual(gb.count, WireBuffer.headerBytes + n * gf.rowBytes(k: k), "\(f)/\(gf): gradients in their own format")
            var gy = [Float](repeating: 0, count: n * d)
            try c.decodeBackward(gb, into: &gy, ids: ids, n: n, d: d)
            var exact = g
            let scratch = FloatBuffer(count: n * k)
            exact.withUnsafeMutableBufferPointer { sub.project($0.baseAddress!, rows: n, scratch: scratch.ptr) }
            XCTAssertEqual(c.errorStats.relativeBackward, gf == .fp32 ? 0 : relErr(gy, exact), accuracy: 1e-5,
                           "\(f)/\(gf): backward error is measured against the exact G·U·Uᵀ")
            if gf == .fp32 { XCTAssertLessThan(relErr(gy, exact), 1e-6) } else { XCTAssertGreaterThan(relErr(gy, exact), 1e-5) }
          }
        }
    }

    /// `bwd=FORMAT`: in a real pipeline step, activations stay exact while gradients travel as
    /// int4, and each direction's messages have its own format's size.
    func testGradientsTravelInTheirOwnFormat() throws {
        let (base, tc) = pipelineConfig()
        let spec = try CodecSpec.parse("subspace:4:bwd=int4")
        var cfg = base
        try spec.apply(to: &cfg, split: [2, 2])
        let data = syntheticBatches(cfg, B: tc.batchSize, M: tc.microbatches, steps: 1, seed: 5)
        let local = LocalTrainer(model: StageModel(config: cfg, stage: .whole(cfg), batchSize: tc.batchSize), train: tc)
        let ref = local.step(0, data[0]).loss
        let p = try InProcessPipeline(config: cfg, split: [2, 2], train: tc, schedule: .oneFOneB) { spec.makeCodec(model: $0) }
        assertRel(try p.trainStep(0, data[0]).loss, ref, 1e-5, "the forward pass is exact")
        let sender = p.lastMetrics[0], receiver = p.lastMetrics[1]
        XCTAssertLessThan(sender.wireError.relativeForward, 1e-5, "activations exact")
        XCTAssertGreaterThan(receiver.wireError.relativeBackward, 1e-3, "gradients rounded to int4")
        XCTAssertLessThan(receiver.wireError.relativeBackward, 0.3)
        let n = tc.batchSize * cfg.seqLen, M = Double(tc.microbatches), k = 4
        XCTAssertEqual(sender.bytesSentForward, M * Double(WireBuffer.headerBytes + 2 * n + n * CoordinateFormat.fp32.rowBytes(k: k)))
        XCTAssertEqual(receiver.bytesSentBackward, M * Double(WireBuffer.headerBytes + n * CoordinateFormat.int4.rowBytes(k: k)))
    }

    func testDenseQuantizedCodecs() throws {
        let n = 7, d = 20
        let x = randomArray(n * d, seed: 12)
        let ids = [Int32](repeating: 0, count: n)
        for (word, f) in [("int4", CoordinateFormat.int4), ("fp8", .fp8)] {
            let c = try CodecSpec.parse(word).makeCodec(model: StageModel(config: ModelConfig(vocabSize: 8, seqLen: 2, nLayer: 1, nHead: 1, dModel: 4), stage: .whole(ModelConfig(vocabSize: 8, seqLen: 2, nLayer: 1, nHead: 1, dModel: 4)), batchSize: 1))
            let b = c.encodeForward(x, ids: ids, n: n, d: d)
            XCTAssertEqual(b.count, WireBuffer.headerBytes + n * f.rowBytes(k: d), "\(word): d values + a bf16 scale per token")
            var y = [Float](repeating: 0, count: n * d), rid = ids
            try c.decodeForward(b, into: &y, ids: &rid, n: n, d: d)
            XCTAssertEqual(c.errorStats.relativeForward, relErr(y, x), accuracy: 1e-6, "\(word): reported error is the real one")
            XCTAssertGreaterThan(relErr(y, x), 1e-3)
            XCTAssertLessThan(relErr(y, x), f == .int4 ? 0.25 : 0.06)
        }
    }

    func testCodecSpecWordsRoundTrip() throws {
        for w in ["dense", "bf16", "int8", "int4", "fp8", "topk:0.25", "projector:8:int8", "projector:8:fixed", "subspace:16:adaptive:every=4:ulr=0.1", "subspace", "subspace:16", "subspace:16:projected", "subspace:8:int8",
                  "subspace:32:fp8", "subspace:24:reparam:int4", "subspace:38:int8:bwd=int4", "projector:8:int8:bwd=int4:fixed",
                  "subspace:16:bwd=bf16:adaptive:every=2"] {
            XCTAssertEqual(try CodecSpec.parse(w).description, w, "'\(w)' reads back")
        }
        let s = try CodecSpec.parse("subspace:16:int4")
        XCTAssertEqual(s.coords, .int4)
        XCTAssertEqual(s.label(dModel: 128), "subspace k=16 int4")
        let a = try CodecSpec.parse("subspace:38:int8:bwd=int4")
        XCTAssertEqual(a.coords, .int8)
        XCTAssertEqual(a.backwardCoords, .int4)
        XCTAssertEqual(a.label(dModel: 128), "subspace k=38 int8/int4")
        XCTAssertEqual(try CodecSpec.parse("subspace:16:int8:bwd=int8").description, "subspace:16:int8", "one spelling for one codec")
        XCTAssertEqual(try CodecSpec.parse("subspace:16:int8:bwd=int8"), try CodecSpec.parse("subspace:16:int8"), "equal as values too")
        XCTAssertNotEqual(try CodecSpec.parse("subspace:16:int8:bwd=int4"), try CodecSpec.parse("subspace:16:int8"))
        XCTAssertEqual(try CodecSpec.parse("subspace:16:bwd=int8").label(dModel: 128), "subspace k=16 fp32/int8")
        for bad in ["subspace:16:int8:fp8", "dense:3", "topk:x", "zip", "subspace:banana", "subspace:16:bwd=int3",
                    "subspace:16:bwd=int4:bwd=int8", "int8:bwd=int4"] {
            XCTAssertThrowsError(try CodecSpec.parse(bad), "'\(bad)' is refused") { XCTAssert("\($0)".contains(bad)) }
        }
        var cfg = ModelConfig(vocabSize: 48, seqLen: 8, nLayer: 4, nHead: 2, dModel: 16)
        XCTAssertThrowsError(try CodecSpec.parse("subspace:16").apply(to: &cfg, split: [4])) { XCTAssert("\($0)".contains("1..<16")) }
        // Variants: a codec word plus model levers.
        for w in ["subspace:4+efixed=1+norm", "dense+norm", "subspace:4:int8+efixed=0.5+mlp=equal", "int4+mlp=48", "subspace:4:int8+efixed=1+norm+layeremb"] {
            XCTAssertEqual(try Variant.parse(w).description, w)
        }
        let v = try Variant.parse("subspace:4+efixed=1+norm+mlp=equal")
        let vc = try v.config(cfg, split: [1, 1, 1, 1])
        XCTAssertEqual(vc.fixedEmbeddingStd, 1)
        XCTAssertEqual(vc.sublayerNorm, true)
        XCTAssertLessThan(abs(vc.parameterCount - cfg.parameterCount), vc.nLayer * (cfg.dModel + 4) * 16, "MLP widened to the dense parameter count")
        XCTAssertGreaterThan(vc.mlpHidden, cfg.mlpHidden)
        for bad in ["dense+foo", "subspace:4+efixed=-1", "int8+mlp=x"] { XCTAssertThrowsError(try Variant.parse(bad), bad) }
        // E_fixed exists in subspace and projector models only: the lever elsewhere is refused, not ignored.
        for w in ["dense+efixed=2", "int8+efixed=1"] {
            XCTAssertThrowsError(try Variant.parse(w).config(cfg, split: [1, 1, 1, 1]), w) { XCTAssert("\($0)".contains("has no E_fixed"), "\($0)") }
        }
    }
}

func randomArray(_ n: Int, seed: UInt64, std: Float = 1) -> [Float] {
    var r = SplitMix64(seed: seed), a = [Float](repeating: 0, count: n)
    a.withUnsafeMutableBufferPointer { r.fillNormal($0.baseAddress!, n, std: std) }
    return a
}
