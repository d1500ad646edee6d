// The AVX-512 element-wise kernels (CKernels/elementwise.c) against the Swift loops they stand
// in for: the same bits on every length (tails of 16 lanes, several threads' chunks) and on the
// values where "the same arithmetic" is easy to get wrong (NaN, ±0, ±∞, subnormals).
import XCTest
import ProtoCore

final class VectorKernelTests: XCTestCase {
    override func setUpWithError() throws {
        try XCTSkipUnless(VectorKernels.cpuHasAVX512, "this CPU has no AVX-512: only the Swift loops run here")
    }
    override func tearDown() { VectorKernels.enabled = VectorKernels.cpuHasAVX512 }

    private func bits(_ x: [Float]) -> [UInt32] { x.map(\.bitPattern) }

    /// Random values with the awkward ones sprinkled in.
    private func awkward(_ n: Int, seed: UInt64) -> [Float] {
        var x = randomArray(n, seed: seed)
        let special: [Float] = [.nan, 0, -0.0, .infinity, -.infinity, .leastNonzeroMagnitude, -.leastNonzeroMagnitude,
                                Float(bitPattern: 0x000A_BCDE), -Float(bitPattern: 0x000A_BCDE)]  // subnormals
        for (j, s) in special.enumerated() where j * 7 < n { x[j * 7] = s }
        return x
    }

    func testReluSquaredMatchesTheSwiftLoopsBitForBit() {
        let saved = Parallel.threads
        defer { Parallel.threads = saved }
        Parallel.threads = 3
        for n in [1, 15, 16, 17, 100, 200_003] {
            let inp = buf(awkward(n, seed: UInt64(n))), dout = awkward(n, seed: UInt64(n) + 1)
            func run(_ vector: Bool) -> (fwd: [Float], bwd: [Float], aliased: [Float]) {
                VectorKernels.enabled = vector
                let out = zeros(n), dinp = zeros(n), inPlace = buf(dout)
                reluSquaredForward(out.ptr, inp.ptr, n)
                reluSquaredBackward(dinp.ptr, dout, inp.ptr, n)
                reluSquaredBackward(inPlace.ptr, inPlace.ptr, inp.ptr, n)  // dinp aliasing dout
                return (out.toArray(), dinp.toArray(), inPlace.toArray())
            }
            let v = run(true), s = run(false)
            XCTAssertEqual(bits(v.fwd), bits(s.fwd), "forward, n=\(n)")
            XCTAssertEqual(bits(v.bwd), bits(s.bwd), "backward, n=\(n)")
            XCTAssertEqual(bits(v.aliased), bits(s.aliased), "backward in place, n=\(n)")
        }
    }

    /// Three AdamW steps over a model's layout (decayed and undecayed tensors, several chunks)
    /// with a clipping scale: parameters and both moments identical to the bit.
    func testAdamWMatchesTheSwiftLoopBitForBit() {
        var cfg = ModelConfig(vocabSize: 300, seqLen: 16, nLayer: 2, nHead: 2, dModel: 64)
        cfg.seed = 3
        let layout = ParamLayout(config: cfg, stage: .whole(cfg))
        let g = buf(awkward(layout.count, seed: 47))
        func run(_ vector: Bool) -> [Float] {
            VectorKernels.enabled = vector
            let p = buf(awkward(layout.count, seed: 46))
            let opt = AdamW(layout: layout, config: AdamWConfig())
            for s in 0..<3 { opt.step(params: p, grads: g, lr: 1e-2 * Float(s + 1), gradScale: 0.5) }
            return p.toArray() + opt.m.toArray() + opt.v.toArray()
        }
        XCTAssertEqual(bits(run(true)), bits(run(false)))
    }

    /// RoPE forward and inverse on ragged head sizes (half = 24: a masked tail; half = 8), and
    /// RMSNorm forward and backward (the per-element parts) on widths 96 and 40, several threads.
    func testRoPEAndRMSNormMatchTheSwiftLoopsBitForBit() {
        let saved = Parallel.threads
        defer { Parallel.threads = saved }
        Parallel.threads = 3
        for (B, T, C, NH) in [(2, 37, 96, 2), (3, 20, 64, 4)] {
            let table = RoPETable(T: T, headSize: C / NH, base: 10000)
            let x0 = awkward(B * T * 3 * C, seed: 60)
            func run(_ vector: Bool) -> [Float] {
                VectorKernels.enabled = vector
                let a = buf(x0), b = buf(x0)
                ropeApply(a.ptr, table, B, T, C, NH)
                ropeApply(b.ptr, table, B, T, C, NH, inverse: true)
                return a.toArray() + b.toArray()
            }
            XCTAssertEqual(bits(run(true)), bits(run(false)), "RoPE B=\(B) T=\(T) C=\(C) NH=\(NH)")
        }
        for (N, C) in [(300, 96), (77, 40)] {
            let x = buf(awkward(N * C, seed: 61)), w = buf(randomArray(C, seed: 62)), dy = awkward(N * C, seed: 63)
            func run(_ vector: Bool) -> [Float] {
                VectorKernels.enabled = vector
                let out = zeros(N * C), rstd = zeros(N), dx = buf(randomArray(N * C, seed: 64)), dw = buf(randomArray(C, seed: 65))
                rmsnormForward(out.ptr, rstd.ptr, x.ptr, w.ptr, N, C, eps: 1e-5)
                rmsnormBackward(dx.ptr, dw.ptr, dy, x.ptr, w.ptr, rstd.ptr, N, C)
                return out.toArray() + rstd.toArray() + dx.toArray() + dw.toArray()
            }
            XCTAssertEqual(bits(run(true)), bits(run(false)), "RMSNorm N=\(N) C=\(C)")
        }
    }
}
