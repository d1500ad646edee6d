// Causal multi-head self-attention over the fused qkv activation, with every product in
// sgemm. Rows are processed in blocks so the upper triangle of QKᵀ is never computed.
import Foundation

/// Row-block size for the causal products.
let attentionBlock = 64

/// Reads qkv(B,T,3C) (q,k already rotated); writes probs att(B,NH,T,T) (row t holds
/// softmax over keys 0...t, zero beyond) and out(B,T,C) with heads side by side.
public func attentionForward(_ out: UnsafeMutablePointer<Float>, _ att: UnsafeMutablePointer<Float>,
                             _ qkv: UnsafePointer<Float>, _ B: Int, _ T: Int, _ C: Int, _ NH: Int) {
    let hs = C / NH, C3 = 3 * C
    let scale = 1 / Float(hs).squareRoot()
    Parallel.chunks(B * NH, minPerChunk: 1) { lo, hi in
        for bh in lo..<hi {
            let b = bh / NH, h = bh % NH
            let q = qkv + b * T * C3 + h * hs, k = q + C, v = q + 2 * C
            let P = att + bh * T * T
            let o = out + b * T * C + h * hs
            var r0 = 0
            while r0 < T {
                let r1 = min(T, r0 + attentionBlock), rc = r1 - r0
                // S[r0:r1, 0:r1] = scale · Q[r0:r1] K[0:r1]ᵀ
                BLAS.gemm(transB: true, M: rc, N: r1, K: hs, alpha: scale, A: q + r0 * C3, lda: C3,
                          B: k, ldb: C3, C: P + r0 * T, ldc: T)
                for t in r0..<r1 {
                    let row = P + t * T
                    var mx = -Float.infinity
                    for j in 0...t { mx = max(mx, row[j]) }
                    var sum: Float = 0
                    for j in 0...t { let e = expf(row[j] - mx); row[j] = e; sum += e }
                    let inv = 1 / sum
                    for j in 0...t { row[j] *= inv }
                    for j in (t + 1)..<T { row[j] = 0 }
                }
                // O[r0:r1] = P[r0:r1, 0:r1] · V[0:r1]
                BLAS.gemm(M: rc, N: hs, K: r1, A: P + r0 * T, lda: T, B: v, ldb: C3, C: o + r0 * C, ldc: C)
                r0 = r1
            }
        }
    }
}

/// Writes dqkv(B,T,3C) (overwrites) from dout(B,T,C); `datt` (B,NH,T,T) is scratch.
/// In forward O = P·V and P = softmax(S), so dV = Pᵀ·dO, dP = dO·Vᵀ,
/// dS = P ⊙ (dP − rowsum(P ⊙ dP)), and with S = scale·QKᵀ: dQ = scale·dS·K, dK = scale·dSᵀ·Q.
public func attentionBackward(_ dqkv: UnsafeMutablePointer<Float>, _ datt: UnsafeMutablePointer<Float>,
                              _ dout: UnsafePointer<Float>, _ qkv: UnsafePointer<Float>,
                              _ att: UnsafePointer<Float>, _ B: Int, _ T: Int, _ C: Int, _ NH: Int) {
    let hs = C / NH, C3 = 3 * C
    let scale = 1 / Float(hs).squareRoot()
    Parallel.chunks(B * NH, minPerChunk: 1) { lo, hi in
        for bh in lo..<hi {
            let b = bh / NH, h = bh % NH
            let q = qkv + b * T * C3 + h * hs, k = q + C, v = q + 2 * C
            let dq = dqkv + b * T * C3 + h * hs, dk = dq + C, dv = dq + 2 * C
            for t in 0..<T { for i in 0..<hs { dq[t * C3 + i] = 0; dk[t * C3 + i] = 0; dv[t * C3 + i] = 0 } }
            let P = att + bh * T * T, dP = datt + bh * T * T
            let dO = dout + b * T * C + h * hs
            var r0 = 0
            while r0 < T {
                let r1 = min(T, r0 + attentionBlock), rc = r1 - r0
                BLAS.gemm(transB: true, M: rc, N: r1, K: hs, A: dO + r0 * C, lda: C, B: v, ldb: C3,
                          C: dP + r0 * T, ldc: T)
                for t in r0..<r1 {
                    let p = P + t * T, d = dP + t * T
                    var s: Float = 0
                    for j in 0...t { s += p[j] * d[j] }
                    for j in 0...t { d[j] = p[j] * (d[j] - s) * scale }
                    for j in (t + 1)..<r1 { d[j] = 0 }
                }
                BLAS.gemm(M: rc, N: hs, K: r1, A: dP + r0 * T, lda: T, B: k, ldb: C3,
                          beta: 1, C: dq + r0 * C3, ldc: C3)
                BLAS.gemm(transA: true, M: r1, N: hs, K: rc, A: dP + r0 * T, lda: T, B: q + r0 * C3, ldb: C3,
                          beta: 1, C: dk, ldc: C3)
                BLAS.gemm(transA: true, M: r1, N: hs, K: rc, A: P + r0 * T, lda: T, B: dO + r0 * C, ldb: C,
                          beta: 1, C: dv, ldc: C3)
                r0 = r1
            }
        }
    }
}
