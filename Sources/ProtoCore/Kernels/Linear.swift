// Bias-free linear layer with the weight stored (in, out): y = x · W. Every product is sgemm,
// or bf16 (AMX or AVX512-BF16) when `MatmulPrecision.current` says so.

/// out(N,OC) = inp(N,C) · W(C,OC); adds into `out` when `accumulate`.
public func linearForward(_ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>,
                          _ weight: UnsafePointer<Float>, _ N: Int, _ C: Int, _ OC: Int,
                          accumulate: Bool = false) {
    BLAS.gemmParallel(M: N, N: OC, K: C, A: inp, lda: C, B: weight, ldb: OC,
              beta: accumulate ? 1 : 0, C: out, ldc: OC, precision: MatmulPrecision.current)
}

/// dinp(N,C) (+)= dout · Wᵀ (overwrites unless `accumulateInput`); dweight(C,OC) += inpᵀ · dout.
/// Pass nil for `dinp` when the input needs no gradient.
public func linearBackward(_ dinp: UnsafeMutablePointer<Float>?, _ dweight: UnsafeMutablePointer<Float>,
                           _ dout: UnsafePointer<Float>, _ inp: UnsafePointer<Float>,
                           _ weight: UnsafePointer<Float>, _ N: Int, _ C: Int, _ OC: Int,
                           accumulateInput: Bool = false) {
    if let dinp {
        BLAS.gemmParallel(transB: true, M: N, N: C, K: OC, A: dout, lda: OC, B: weight, ldb: OC,
                  beta: accumulateInput ? 1 : 0, C: dinp, ldc: C, precision: MatmulPrecision.current)
    }
    BLAS.gemmParallel(transA: true, M: C, N: OC, K: N, A: inp, lda: C, B: dout, ldb: OC,
              beta: 1, C: dweight, ldc: OC, precision: MatmulPrecision.current)
}
