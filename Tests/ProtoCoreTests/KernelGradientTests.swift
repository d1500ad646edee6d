// Finite-difference checks of every kernel's backward against its forward.
import XCTest
import ProtoCore

final class KernelGradientTests: XCTestCase {
    func testRMSNorm() {
        let N = 5, C = 12
        let x = buf(randomArray(N * C, seed: 1)), w = buf(randomArray(C, seed: 2, std: 0.5).map { $0 + 1 })
        let r = randomArray(N * C, seed: 3)
        let out = zeros(N * C), rstd = zeros(N), dx = zeros(N * C), dw = zeros(C)
        func f() -> Double { rmsnormForward(out.ptr, rstd.ptr, x.ptr, w.ptr, N, C, eps: 1e-5); return readout(out.ptr, r) }
        _ = f()
        rmsnormBackward(dx.ptr, dw.ptr, r, x.ptr, w.ptr, rstd.ptr, N, C)
        checkGradient("rmsnorm dx", x: x.ptr, analytic: dx.ptr, count: N * C, f: f)
        checkGradient("rmsnorm dw", x: w.ptr, analytic: dw.ptr, count: C, f: f)
    }

    func testLinear() {
        let N = 6, C = 7, OC = 5
        let x = buf(randomArray(N * C, seed: 4)), w = buf(randomArray(C * OC, seed: 5))
        let r = randomArray(N * OC, seed: 6)
        let out = zeros(N * OC), dx = zeros(N * C), dw = zeros(C * OC)
        func f() -> Double { linearForward(out.ptr, x.ptr, w.ptr, N, C, OC); return readout(out.ptr, r) }
        _ = f()
        linearBackward(dx.ptr, dw.ptr, r, x.ptr, w.ptr, N, C, OC)
        checkGradient("linear dx", x: x.ptr, analytic: dx.ptr, count: N * C, f: f)
        checkGradient("linear dw", x: w.ptr, analytic: dw.ptr, count: C * OC, f: f)
    }

    func testReluSquared() {
        let n = 40
        let x = buf(randomArray(n, seed: 7))
        let r = randomArray(n, seed: 8)
        let out = zeros(n), dx = zeros(n)
        func f() -> Double { reluSquaredForward(out.ptr, x.ptr, n); return readout(out.ptr, r) }
        _ = f()
        reluSquaredBackward(dx.ptr, r, x.ptr, n)
        checkGradient("relu² dx", x: x.ptr, analytic: dx.ptr, count: n, eps: 1e-3, f: f)
    }

    func testEmbedding() {
        let V = 5, C = 4, N = 7
        let wte = buf(randomArray(V * C, seed: 9))
        let ids: [Int32] = [0, 3, 3, 1, 4, 0, 3]
        let r = randomArray(N * C, seed: 10)
        let out = zeros(N * C), dw = zeros(V * C)
        func f() -> Double { embeddingForward(out.ptr, ids, wte.ptr, N, C); return readout(out.ptr, r) }
        _ = f()
        embeddingBackward(dw.ptr, r, ids, N, C)
        checkGradient("embedding dwte", x: wte.ptr, analytic: dw.ptr, count: V * C, f: f)
        XCTAssertEqual(dw.ptr[2 * C], 0, "row 2 is never looked up")
    }

    func testCrossEntropy() {
        let N = 4, V = 9
        let logits = buf(randomArray(N * V, seed: 11))
        let t: [Int32] = [0, 8, 3, 3]
        let losses = zeros(N), lse = zeros(N), d = zeros(N * V)
        func f() -> Double { Double(crossEntropyForward(losses.ptr, lse.ptr, logits.ptr, t, N, V)) }
        _ = f()
        crossEntropyBackward(d.ptr, logits.ptr, lse.ptr, t, N, V, scale: 1 / Float(N))
        checkGradient("cross-entropy dlogits", x: logits.ptr, analytic: d.ptr, count: N * V, eps: 1e-2, f: f)
    }

    func testRoPEInverseIsTranspose() {
        // Backward of a rotation is its transpose: <rope(a), b> == <a, rope⁻¹(b)>.
        let B = 2, T = 5, C = 8, NH = 2, n = B * T * 3 * C
        let table = RoPETable(T: T, headSize: C / NH, base: 10000)
        let a0 = randomArray(n, seed: 12), b0 = randomArray(n, seed: 13)
        let a = buf(a0), b = buf(b0)
        ropeApply(a.ptr, table, B, T, C, NH)
        ropeApply(b.ptr, table, B, T, C, NH, inverse: true)
        assertClose(readout(a.ptr, b0), readout(b.ptr, a0), rtol: 1e-5, "rope adjoint")
        XCTAssertGreaterThan(relError(a.toArray(), a0), 1e-3, "rope rotates positions > 0")
        ropeApply(a.ptr, table, B, T, C, NH, inverse: true)
        XCTAssertLessThan(relError(a.toArray(), a0), 1e-6, "rope then inverse is identity")
    }

    func testAttentionAcrossRowBlocks() {
        checkAttentionGradient(C: 8, NH: 2)  // head size 4: the sgemm path
    }

    func testFusedAttentionGradient() throws {
        try XCTSkipUnless(AttentionKernel.cpuHasFused, "this CPU has no AVX-512: the fused attention kernels never run here")
        XCTAssertTrue(AttentionKernel.usesFused(headSize: 16))
        checkAttentionGradient(C: 32, NH: 2)  // head size 16: the fused kernels
    }

    /// The fused AVX-512 attention against the sgemm path on the same inputs: outputs, the
    /// probabilities P (every column; P starts from the same non-zero values, so a path that
    /// stopped zeroing what the other path's backward reads would show) and dqkv, over head
    /// sizes 16…256, sequence lengths that end mid-tile and mid-panel, several rows and heads;
    /// and each path's backward after the other's forward (they share P).
    func testFusedAttentionMatchesTheSgemmPath() throws {
        try XCTSkipUnless(AttentionKernel.cpuHasFused, "this CPU has no AVX-512: the fused attention kernels never run here")
        defer { AttentionKernel.fusedEnabled = true }
        for (i, (B, T, hs, NH)) in [(1, 70, 16, 2), (2, 37, 32, 3), (1, 256, 32, 2), (1, 100, 64, 2),
                                    (1, 19, 128, 1), (1, 9, 256, 1), (1, 1, 32, 1), (1, 130, 128, 1)].enumerated() {
            let C = hs * NH, seed = UInt64(100 + 4 * i)
            let qkv = buf(randomArray(B * T * 3 * C, seed: seed, std: 0.7))
            let dout = randomArray(B * T * C, seed: seed + 1)
            func run(forward fwd: Bool, backward bwd: Bool) -> (out: [Float], att: [Float], dqkv: [Float]) {
                let out = buf(randomArray(B * T * C, seed: 7)), att = buf(randomArray(B * NH * T * T, seed: 10))
                let dqkv = buf(randomArray(B * T * 3 * C, seed: 8)), datt = buf(randomArray(B * NH * T * T, seed: 9))
                AttentionKernel.fusedEnabled = fwd
                XCTAssertEqual(AttentionKernel.usesFused(headSize: hs), fwd)
                attentionForward(out.ptr, att.ptr, qkv.ptr, B, T, C, NH)
                AttentionKernel.fusedEnabled = bwd
                attentionBackward(dqkv.ptr, datt.ptr, dout, qkv.ptr, att.ptr, B, T, C, NH)
                return (out.toArray(), att.toArray(), dqkv.toArray())
            }
            let f = run(forward: true, backward: true), g = run(forward: false, backward: false)
            let what = "B=\(B) T=\(T) hs=\(hs) NH=\(NH)"
            XCTAssertLessThan(relError(f.out, g.out), 2e-6, "out, \(what)")
            XCTAssertLessThan(relError(f.att, g.att), 2e-6, "P, \(what)")
            XCTAssertLessThan(relError(f.dqkv, g.dqkv), 2e-6, "dqkv, \(what)")
            XCTAssertTrue(f.dqkv.allSatisfy { $0.isFinite }, "dqkv finite, \(what)")
            XCTAssertLessThan(relError(run(forward: true, backward: false).dqkv, g.dqkv), 2e-6, "fused forward, sgemm backward, \(what)")
            XCTAssertLessThan(relError(run(forward: false, backward: true).dqkv, g.dqkv), 2e-6, "sgemm forward, fused backward, \(what)")
        }
    }

    /// Which path runs is decided (and logged) per head size, CPU and switch.
    func testAttentionPathChoice() {
        defer { AttentionKernel.fusedEnabled = AttentionKernel.cpuHasFused }
        for hs in [16, 32, 64, 128, 256] {
            XCTAssertEqual(AttentionKernel.label(headSize: hs), AttentionKernel.cpuHasFused ? "fused AVX-512" : "sgemm")
        }
        for hs in [4, 8, 48, 96, 512] { XCTAssertEqual(AttentionKernel.label(headSize: hs), "sgemm", "head size \(hs)") }
        AttentionKernel.fusedEnabled = false
        XCTAssertEqual(AttentionKernel.label(headSize: 32), "sgemm")
    }

    /// A NaN in a query or key reaches the output on both paths (the finite-loss checks rely
    /// on it): the fused softmax must not clamp it into a finite probability.
    func testAttentionPropagatesNaNOnBothPaths() {
        defer { AttentionKernel.fusedEnabled = AttentionKernel.cpuHasFused }
        let B = 1, T = 20, hs = 16, NH = 1, C = hs * NH
        for fused in [false, true] where !fused || AttentionKernel.cpuHasFused {
            for (what, at) in [("query", 5 * 3 * C + 2), ("key", 3 * 3 * C + C + 1)] {
                AttentionKernel.fusedEnabled = fused
                var q = randomArray(B * T * 3 * C, seed: 31, std: 0.7)
                q[at] = .nan
                let qkv = buf(q), out = zeros(B * T * C), att = zeros(B * NH * T * T)
                attentionForward(out.ptr, att.ptr, qkv.ptr, B, T, C, NH)
                XCTAssertFalse(out.toArray().allSatisfy { $0.isFinite }, "\(fused ? "fused" : "sgemm") path: a NaN \(what) vanished")
            }
        }
    }

    /// Kernels that split work across threads give the same bits with 1 and with 3 workers:
    /// attention (per-worker panel buffers), the RMSNorm gain gradient (split by channels) and
    /// AdamW (segments of decayed and undecayed tensors cut by the workers' chunks).
    func testThreadCountDoesNotChangeResults() {
        let saved = Parallel.threads
        defer { Parallel.threads = saved }
        func attention() -> [Float] {
            let B = 2, T = 40, C = 64, NH = 2
            let qkv = buf(randomArray(B * T * 3 * C, seed: 41, std: 0.7)), dout = randomArray(B * T * C, seed: 42)
            let out = zeros(B * T * C), att = zeros(B * NH * T * T), dqkv = zeros(B * T * 3 * C), datt = zeros(B * NH * T * T)
            attentionForward(out.ptr, att.ptr, qkv.ptr, B, T, C, NH)
            attentionBackward(dqkv.ptr, datt.ptr, dout, qkv.ptr, att.ptr, B, T, C, NH)
            return out.toArray() + dqkv.toArray()
        }
        func norm() -> [Float] {
            let N = 300, C = 96
            let x = buf(randomArray(N * C, seed: 43)), w = buf(randomArray(C, seed: 44)), dy = randomArray(N * C, seed: 45)
            let out = zeros(N * C), rstd = zeros(N), dx = zeros(N * C), dw = zeros(C)
            rmsnormForward(out.ptr, rstd.ptr, x.ptr, w.ptr, N, C, eps: 1e-5)
            rmsnormBackward(dx.ptr, dw.ptr, dy, x.ptr, w.ptr, rstd.ptr, N, C)
            return out.toArray() + dx.toArray() + dw.toArray()
        }
        func adam() -> [Float] {
            var cfg = ModelConfig(vocabSize: 300, seqLen: 16, nLayer: 2, nHead: 2, dModel: 64)
            cfg.seed = 3
            let layout = ParamLayout(config: cfg, stage: .whole(cfg))
            XCTAssertGreaterThan(layout.count, 1 << 16, "large enough for several AdamW chunks")
            let p = buf(randomArray(layout.count, seed: 46)), g = buf(randomArray(layout.count, seed: 47))
            let opt = AdamW(layout: layout, config: AdamWConfig())
            for _ in 0..<3 { opt.step(params: p, grads: g, lr: 1e-2, gradScale: 0.5) }
            return p.toArray()
        }
        Parallel.threads = 1
        let one = (attention(), norm(), adam())
        Parallel.threads = 3
        let three = (attention(), norm(), adam())
        XCTAssertEqual(one.0, three.0, "attention")
        XCTAssertEqual(one.1, three.1, "rmsnorm")
        XCTAssertEqual(one.2, three.2, "AdamW")
    }

    private func checkAttentionGradient(C: Int, NH: Int, file: StaticString = #filePath, line: UInt = #line) {
        // T = 70 > 64 exercises two causal row blocks.
        let B = 1, T = 70
        let qkv = buf(randomArray(B * T * 3 * C, seed: 14, std: 0.5))
        let r = randomArray(B * T * C, seed: 15)
        let out = zeros(B * T * C), att = zeros(B * NH * T * T), dqkv = zeros(B * T * 3 * C), datt = zeros(B * NH * T * T)
        func f() -> Double { attentionForward(out.ptr, att.ptr, qkv.ptr, B, T, C, NH); return readout(out.ptr, r) }
        _ = f()
        // Causality: row t of the probabilities sums to 1 over keys 0...t and is 0 beyond.
        let probs = att.toArray()
        for t in [0, 63, 64, 69] {
            let row = probs[(t * T)..<(t * T + T)]
            assertClose(Double(row.prefix(t + 1).reduce(0, +)), 1, rtol: 1e-5, "att row \(t) sum")
            XCTAssertEqual(row.dropFirst(t + 1).reduce(0, +), 0, "att row \(t) is causal")
        }
        attentionBackward(dqkv.ptr, datt.ptr, r, qkv.ptr, att.ptr, B, T, C, NH)
        checkGradient("attention dqkv", x: qkv.ptr, analytic: dqkv.ptr, count: B * T * 3 * C, samples: 10, eps: 1e-2, f: f)
    }
}
