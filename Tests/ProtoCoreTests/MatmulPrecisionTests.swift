// The bf16 matrix products (`--matmul bf16`), on every kernel this CPU runs (AMX tiles,
// AVX512-BF16 dot products): the same contract as sgemm on inputs rounded to bfloat16, split
// across threads without changing a bit, and a model that trains like the fp32 reference; the
// AMX attention kernels. Skipped on CPUs without a bf16 kernel (the AMX tests without AMX).
import XCTest
import ProtoCore

final class MatmulPrecisionTests: XCTestCase {
    private var savedKernel: MatmulPrecision.BF16Kernel?

    override func setUpWithError() throws {
        try XCTSkipUnless(MatmulPrecision.bf16Available, "this CPU has neither AMX-BF16 nor AVX512-BF16")
        savedKernel = MatmulPrecision.bf16Kernel
    }

    override func tearDown() {
        if savedKernel != nil { MatmulPrecision.bf16Kernel = savedKernel }
    }

    /// Runs `body` once per bf16 kernel this machine has, with MatmulPrecision.bf16Kernel set to it.
    private func forEachKernel(_ body: (MatmulPrecision.BF16Kernel) throws -> Void) rethrows {
        for kernel in MatmulPrecision.BF16Kernel.allCases where kernel.isAvailable {
            MatmulPrecision.bf16Kernel = kernel
            try body(kernel)
        }
    }

    /// The AMX tests: skipped without AMX, else the AMX kernel selected.
    private func requireAMX() throws {
        try XCTSkipUnless(MatmulPrecision.BF16Kernel.amx.isAvailable, "this CPU has no AMX-BF16 (or the OS refused the tile state)")
        MatmulPrecision.bf16Kernel = .amx
    }

    /// x rounded to the nearest bfloat16, ties to even (what the products see).
    private func roundedToBF16(_ x: [Float]) -> [Float] {
        x.map { v in
            let u = v.bitPattern
            return Float(bitPattern: (u &+ 0x7FFF &+ ((u >> 16) & 1)) & 0xFFFF_0000)
        }
    }

    private func product(_ p: MatmulPrecision, transA: Bool, transB: Bool, M: Int, N: Int, K: Int,
                         a: [Float], lda: Int, b: [Float], ldb: Int, alpha: Float, beta: Float,
                         c0: [Float], ldc: Int) -> [Float] {
        var c = c0
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                c.withUnsafeMutableBufferPointer { pc in
                    BLAS.gemmParallel(transA: transA, transB: transB, M: M, N: N, K: K, alpha: alpha,
                                      A: pa.baseAddress!, lda: lda, B: pb.baseAddress!, ldb: ldb,
                                      beta: beta, C: pc.baseAddress!, ldc: ldc, precision: p)
                }
            }
        }
        return c
    }

    /// Every transpose combination on ragged shapes (edges of the AMX kernel's 32 × 32 blocks and
    /// 32-wide steps along k, of the AVX512-BF16 kernel's 12 × 32 blocks, 192-row and 256-value
    /// blocks, odd K), leading dimensions wider than the matrices, alpha and beta, on each kernel:
    /// agrees with fp32 sgemm of the rounded inputs to fp32 summation error, and differs from
    /// sgemm of the unrounded inputs by bf16 rounding (so the bf16 path really ran).
    func testProductIsSgemmOfRoundedInputs() {
        let saved = Parallel.threads
        defer { Parallel.threads = saved }
        Parallel.threads = 1
        var seed: UInt64 = 1
        forEachKernel { kernel in
        for (M, N, K) in [(1, 1, 1), (17, 33, 31), (45, 70, 65), (64, 96, 128), (130, 47, 300), (205, 66, 531)] {
            for transA in [false, true] {
                for transB in [false, true] {
                    let lda = (transA ? M : K) + 3, ldb = (transB ? K : N) + 5, ldc = N + 2
                    let a = randomArray((transA ? K : M) * lda, seed: seed), b = randomArray((transB ? N : K) * ldb, seed: seed + 1)
                    let c0 = randomArray(M * ldc, seed: seed + 2)
                    seed += 3
                    let what = "\(kernel): M=\(M) N=\(N) K=\(K) transA=\(transA) transB=\(transB)"
                    let got = product(.bf16, transA: transA, transB: transB, M: M, N: N, K: K, a: a, lda: lda, b: b, ldb: ldb,
                                      alpha: 1.5, beta: 0.5, c0: c0, ldc: ldc)
                    let want = product(.fp32, transA: transA, transB: transB, M: M, N: N, K: K, a: roundedToBF16(a), lda: lda,
                                       b: roundedToBF16(b), ldb: ldb, alpha: 1.5, beta: 0.5, c0: c0, ldc: ldc)
                    let unrounded = product(.fp32, transA: transA, transB: transB, M: M, N: N, K: K, a: a, lda: lda, b: b, ldb: ldb,
                                            alpha: 1.5, beta: 0.5, c0: c0, ldc: ldc)
                    var worst: Float = 0, moved: Float = 0
                    for i in 0..<M {
                        for j in 0..<N {
                            worst = max(worst, abs(got[i * ldc + j] - want[i * ldc + j]) / Float(K).squareRoot())
                            moved = max(moved, abs(got[i * ldc + j] - unrounded[i * ldc + j]))
                        }
                        for j in N..<ldc { XCTAssertEqual(got[i * ldc + j], c0[i * ldc + j], "\(what): padding column \(j) written") }
                    }
                    XCTAssertLessThan(worst, 1e-5, what)  // fp32 sums in another order: ~1e-7·√K
                    if K >= 31 { XCTAssertGreaterThan(moved, 1e-4, "\(what): no bf16 rounding seen") }
                }
            }
        }
        }
    }

    /// With both kernels on this machine, they agree to fp32 summation error on a model-sized
    /// product (they round the inputs the same way; only the order of the sums differs).
    func testKernelsAgree() throws {
        let kernels = MatmulPrecision.BF16Kernel.allCases.filter(\.isAvailable)
        try XCTSkipUnless(kernels.count > 1, "one bf16 kernel on this machine")
        let M = 96, N = 160, K = 544
        let a = randomArray(M * K, seed: 21), b = randomArray(N * K, seed: 22), c0 = randomArray(M * N, seed: 23)
        let outs = kernels.map { kernel -> [Float] in
            MatmulPrecision.bf16Kernel = kernel
            return product(.bf16, transA: false, transB: true, M: M, N: N, K: K, a: a, lda: K, b: b, ldb: K,
                           alpha: 1, beta: 1, c0: c0, ldc: N)
        }
        let worst = zip(outs[0], outs[1]).map { abs($0 - $1) }.max()!
        XCTAssertLessThan(worst, 1e-5 * Float(K).squareRoot(), "AMX vs AVX512-BF16")
    }

    /// beta = 0 must not read C (it may hold NaN or garbage, as sgemm allows); K = 0 leaves beta·C.
    func testBetaZeroIgnoresC() {
        let M = 40, N = 36, K = 50
        let a = randomArray(M * K, seed: 7), b = randomArray(K * N, seed: 8), c0 = randomArray(M * N, seed: 9)
        forEachKernel { kernel in
            let got = product(.bf16, transA: false, transB: false, M: M, N: N, K: K, a: a, lda: K, b: b, ldb: N,
                              alpha: 1, beta: 0, c0: [Float](repeating: .nan, count: M * N), ldc: N)
            XCTAssertTrue(got.allSatisfy { $0.isFinite }, "\(kernel)")
            let empty = product(.bf16, transA: false, transB: false, M: M, N: N, K: 0, a: a, lda: K, b: b, ldb: N,
                                alpha: 1, beta: 0.5, c0: c0, ldc: N)
            XCTAssertTrue(empty == c0.map { 0.5 * $0 }, "\(kernel): K = 0 must leave beta·C")
        }
    }

    /// Split across threads by rows or by columns, each element's sum runs in the same order:
    /// 1 and 3 workers give the same bits (a split that lost `precision` would not).
    func testThreadsDoNotChangeBits() {
        let saved = Parallel.threads
        defer { Parallel.threads = saved }
        forEachKernel { kernel in
        for (M, N, K, transA) in [(300, 200, 96, false), (96, 400, 300, true)] {
            let a = randomArray(M * K, seed: 11), b = randomArray(K * N, seed: 12), c0 = randomArray(M * N, seed: 13)
            let lda = transA ? M : K
            var outs: [[Float]] = []
            for t in [1, 3] {
                Parallel.threads = t
                outs.append(product(.bf16, transA: transA, transB: false, M: M, N: N, K: K, a: a, lda: lda, b: b, ldb: N,
                                    alpha: 1, beta: 1, c0: c0, ldc: N))
            }
            XCTAssertEqual(outs[0], outs[1], "\(kernel): M=\(M) N=\(N) K=\(K)")
        }
        }
    }

    /// The PyTorch fixture's ten AdamW steps with every linear layer in bf16: the losses stay
    /// within 1 % of PyTorch's fp32 ones, and are not the fp32 losses (the setting took effect).
    func testFixtureTrainsWithBF16LinearLayers() throws {
        let fx = try ReferenceFixture.load()
        var tc = TrainConfig()
        tc.batchSize = fx.B; tc.schedule = fx.schedule; tc.adamw = fx.adamw; tc.gradClip = fx.clip
        let saved = MatmulPrecision.current
        defer { MatmulPrecision.current = saved }
        MatmulPrecision.current = .bf16  // what --matmul bf16 sets
        forEachKernel { kernel in
            let trainer = LocalTrainer(model: StageModel(config: fx.config, stage: .whole(fx.config), batchSize: fx.B), train: tc)
            trainer.model.params.copy(from: fx.params)
            let mb = Microbatch(ids: fx.ids, targets: fx.targets)
            var largest = 0.0
            for s in 0..<fx.steps {
                let loss = Double(trainer.step(s, [mb]).loss)
                assertClose(loss, Double(fx.losses[s]), rtol: 1e-2, "\(kernel): loss at step \(s)")
                largest = max(largest, abs(loss - Double(fx.losses[s])))
            }
            XCTAssertGreaterThan(largest, 1e-6, "\(kernel): bf16 losses equal the fp32 reference: the bf16 products did not run")
            // Attention joins the bf16 products on AMX only (head sizes that are multiples of 32).
            XCTAssertEqual(AttentionKernel.usesAMX(headSize: 32), kernel == .amx, "\(kernel): attention kernel")
        }
    }

    /// The AMX attention kernels against the fp32 sgemm path on the same inputs, over head sizes
    /// 32…256 (96: not a power of two), sequence lengths ending mid-tile and mid-chunk, several
    /// rows and heads: out, P and dqkv within bf16 error but not equal (the bf16 path ran); P
    /// exactly zero where the fp32 path zeroes it and untouched where it writes nothing; each
    /// path's backward after the other's forward (they share P); NaN propagation; and 1 vs 3
    /// threads bit-identical.
    func testAMXAttentionAgainstTheFP32Path() throws {
        try requireAMX()
        let saved = (MatmulPrecision.current, AttentionKernel.fusedEnabled)
        defer { (MatmulPrecision.current, AttentionKernel.fusedEnabled) = saved }
        for (i, (B, T, hs, NH)) in [(1, 70, 32, 2), (2, 37, 64, 3), (1, 256, 64, 2), (1, 100, 128, 1),
                                    (1, 9, 256, 1), (1, 1, 32, 1), (1, 130, 96, 1), (1, 33, 32, 2)].enumerated() {
            let C = hs * NH, seed = UInt64(300 + 4 * i)
            let qkv = buf(randomArray(B * T * 3 * C, seed: seed, std: 0.7))
            let dout = randomArray(B * T * C, seed: seed + 1)
            let att0 = randomArray(B * NH * T * T, seed: 10)
            func use(_ amx: Bool) {
                (MatmulPrecision.current, AttentionKernel.fusedEnabled) = amx ? (.bf16, true) : (.fp32, false)
                XCTAssertEqual(AttentionKernel.usesAMX(headSize: hs), amx)
            }
            func run(forward fwd: Bool, backward bwd: Bool) -> (out: [Float], att: [Float], dqkv: [Float]) {
                let out = buf(randomArray(B * T * C, seed: 7)), att = buf(att0)
                let dqkv = buf(randomArray(B * T * 3 * C, seed: 8)), datt = buf(randomArray(B * NH * T * T, seed: 9))
                use(fwd)
                attentionForward(out.ptr, att.ptr, qkv.ptr, B, T, C, NH)
                use(bwd)
                attentionBackward(dqkv.ptr, datt.ptr, dout, qkv.ptr, att.ptr, B, T, C, NH)
                return (out.toArray(), att.toArray(), dqkv.toArray())
            }
            let a = run(forward: true, backward: true), g = run(forward: false, backward: false)
            let what = "B=\(B) T=\(T) hs=\(hs) NH=\(NH)"
            for (name, x, y) in [("out", a.out, g.out), ("P", a.att, g.att), ("dqkv", a.dqkv, g.dqkv)] {
                let e = relError(x, y)
                XCTAssertLessThan(e, 1.5e-2, "\(name), \(what)")
                if T > 1 || name == "out" { XCTAssertGreaterThan(e, 1e-6, "\(name) equals fp32: the AMX kernels did not run, \(what)") }
            }
            for j in 0..<a.att.count {
                if g.att[j] == 0 { XCTAssertEqual(a.att[j], 0, "P[\(j)] must be zero, \(what)") }
                if g.att[j] == att0[j] { XCTAssertEqual(a.att[j], att0[j], "P[\(j)] must not be written, \(what)") }
            }
            XCTAssertTrue(a.dqkv.allSatisfy { $0.isFinite }, "dqkv finite, \(what)")
            XCTAssertLessThan(relError(run(forward: true, backward: false).dqkv, g.dqkv), 1.5e-2, "AMX forward, fp32 backward, \(what)")
            XCTAssertLessThan(relError(run(forward: false, backward: true).dqkv, g.dqkv), 1.5e-2, "fp32 forward, AMX backward, \(what)")
        }

        (MatmulPrecision.current, AttentionKernel.fusedEnabled) = (.bf16, true)
        let B = 2, T = 40, C = 64, NH = 2
        var q = randomArray(B * T * 3 * C, seed: 31, std: 0.7)
        q[5 * 3 * C + 2] = .nan
        let nanOut = zeros(B * T * C), nanAtt = zeros(B * NH * T * T), nanQKV = buf(q)
        withExtendedLifetime((nanAtt, nanQKV)) { attentionForward(nanOut.ptr, nanAtt.ptr, nanQKV.ptr, B, T, C, NH) }
        XCTAssertFalse(nanOut.toArray().allSatisfy { $0.isFinite }, "a NaN query vanished on the AMX path")

        let threads = Parallel.threads
        defer { Parallel.threads = threads }
        let qkv = buf(randomArray(B * T * 3 * C, seed: 41, std: 0.7)), dout = randomArray(B * T * C, seed: 42)
        var results: [[Float]] = []
        for n in [1, 3] {
            Parallel.threads = n
            let out = zeros(B * T * C), att = zeros(B * NH * T * T), dqkv = zeros(B * T * 3 * C), datt = zeros(B * NH * T * T)
            attentionForward(out.ptr, att.ptr, qkv.ptr, B, T, C, NH)
            attentionBackward(dqkv.ptr, datt.ptr, dout, qkv.ptr, att.ptr, B, T, C, NH)
            results.append(out.toArray() + dqkv.toArray())
        }
        XCTAssertEqual(results[0], results[1], "1 vs 3 threads")
    }

    /// A model whose heads run the AMX attention (head size 32) trains ten AdamW steps on the
    /// fixture's tokens with every product in bf16 within 2.5 % of the same model in fp32 at every
    /// step and 1 % at the last.
    func testModelWithAMXAttentionTrainsLikeFP32() throws {
        try requireAMX()
        let fx = try ReferenceFixture.load()
        var cfg = fx.config
        cfg.dModel = 64; cfg.nHead = 2; cfg.mlpHidden = 256
        var tc = TrainConfig()
        tc.batchSize = fx.B; tc.schedule = fx.schedule; tc.adamw = fx.adamw; tc.gradClip = fx.clip
        let saved = MatmulPrecision.current
        defer { MatmulPrecision.current = saved }
        func losses(_ p: MatmulPrecision) -> [Double] {
            MatmulPrecision.current = p
            XCTAssertEqual(AttentionKernel.label(headSize: cfg.headSize), p == .bf16 ? "bf16 on AMX" : "fused AVX-512")
            let trainer = LocalTrainer(model: StageModel(config: cfg, stage: .whole(cfg), batchSize: fx.B), train: tc)
            let mb = Microbatch(ids: fx.ids, targets: fx.targets)
            return (0..<fx.steps).map { Double(trainer.step($0, [mb]).loss) }
        }
        let fp32 = losses(.fp32), bf16 = losses(.bf16)
        // Step 6 is a bump in both runs (the loss rises), where rounding moves it most (1.8 %).
        for s in 0..<fx.steps { assertClose(bf16[s], fp32[s], rtol: 2.5e-2, "loss at step \(s)") }
        assertClose(bf16.last!, fp32.last!, rtol: 1e-2, "final loss")
        XCTAssertNotEqual(bf16, fp32, "bf16 losses equal the fp32 ones: the bf16 products did not run")
        XCTAssertLessThan(fp32.last!, fp32.first! - 0.1, "the model trains")
    }
}
