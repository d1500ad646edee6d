// Causal multi-head self-attention over the fused qkv activation. Three paths with one
// contract: with bf16 products (`--matmul bf16`) on a CPU with AMX and a head size that is a
// multiple of 32, the AMX kernels of CKernels (attention.c; tiles of 16 query rows, products in
// bf16 with fp32 sums, softmax and dS in fp32); otherwise the fused AVX-512 fp32 kernels (tiles
// of 8 query rows, the tile's scores stay in cache) where the CPU has AVX-512 and the head size
// is 16, 32, 64, 128 or 256; otherwise every product in sgemm, rows in blocks so the upper
// triangle of QKᵀ is never computed. P is saved in one layout, so any backward follows any forward.
import CKernels
import Foundation

/// Row-block size for the causal products (every path zeroes P up to the end of a row's block;
/// a multiple of 32, so the fused kernels' tiles of 8 or 16 rows never cross a block end and the
/// AMX backward's 32-row chunks of Pᵀ read zeros past the diagonal).
let attentionBlock = 64

public enum AttentionKernel {
    /// True when this CPU runs the fused AVX-512 attention kernels.
    public static let cpuHasFused = pm_have_avx512() != 0
    /// Use the fused kernels where they apply (default: where the CPU has them). False forces
    /// the sgemm path everywhere (tests compare the two; `bench-engine --attention sgemm`).
    nonisolated(unsafe) public static var fusedEnabled = cpuHasFused

    /// What runs for a head of `headSize` values, as logged: "bf16 on AMX", "fused AVX-512" or "sgemm".
    public static func label(headSize: Int) -> String {
        usesAMX(headSize: headSize) ? "bf16 on AMX" : usesFused(headSize: headSize) ? "fused AVX-512" : "sgemm"
    }

    /// Whether a head of `headSize` values runs the fused kernels (AVX-512 fp32 or AMX bf16).
    public static func usesFused(headSize: Int) -> Bool {
        guard fusedEnabled && cpuHasFused else { return false }
        if usesAMX(headSize: headSize) { return true }
        switch headSize {
        case 16, 32, 64, 128, 256: return true
        default: return false
        }
    }

    /// Whether a head of `headSize` values runs the bf16 AMX kernels: MatmulPrecision.current bf16
    /// on the AMX kernel (under AVX512-BF16 attention stays fp32), the fused kernels enabled, and a
    /// head size that is a multiple of 32.
    public static func usesAMX(headSize: Int) -> Bool {
        MatmulPrecision.current == .bf16 && fusedEnabled && cpuHasFused && MatmulPrecision.bf16Kernel == .amx && headSize % 32 == 0
    }
}

/// Reads qkv(B,T,3C) (q,k already rotated); writes probs att(B,NH,T,T) (row t holds
/// softmax over keys 0...t, zero up to the end of its row block; later columns are never
/// written, so they stay as the caller left them) and out(B,T,C) with heads side by side.
public func attentionForward(_ out: UnsafeMutablePointer<Float>, _ att: UnsafeMutablePointer<Float>,
                             _ qkv: UnsafePointer<Float>, _ B: Int, _ T: Int, _ C: Int, _ NH: Int) {
    let hs = C / NH, C3 = 3 * C
    let scale = 1 / Float(hs).squareRoot()
    precondition(attentionBlock % 32 == 0, "the fused kernels zero P to block ends that tiles of 8 or 16 rows never cross")
    if AttentionKernel.usesAMX(headSize: hs) {
        forEachHead(B * NH, scratch: pm_attention_amx_scratch_words(Int32(T), Int32(hs)), of: UInt32.self) { bh, scratch in
            let b = bh / NH, h = bh % NH, q = qkv + b * T * C3 + h * hs
            pm_attention_forward_head_amx(att + bh * T * T, out + b * T * C + h * hs, Int32(C), q, q + C, q + 2 * C,
                                          Int32(C3), Int32(T), Int32(hs), scale, Int32(attentionBlock), scratch)
        }
        return
    }
    if AttentionKernel.usesFused(headSize: hs) {
        forEachHead(B * NH, scratch: (T + 15) / 16 * 16 * hs, of: Float.self) { bh, panels in
            let b = bh / NH, h = bh % NH, q = qkv + b * T * C3 + h * hs
            pm_attention_forward_head(att + bh * T * T, out + b * T * C + h * hs, Int32(C), q, q + C, q + 2 * C,
                                      Int32(C3), Int32(T), Int32(hs), scale, Int32(attentionBlock), panels)
        }
        return
    }
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
                    softmaxRow(row, t + 1)
                    (row + t + 1).update(repeating: 0, count: r1 - t - 1)  // PV reads columns < r1
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
    if AttentionKernel.usesAMX(headSize: hs) {
        forEachHead(B * NH, scratch: pm_attention_amx_scratch_words(Int32(T), Int32(hs)), of: UInt32.self) { bh, scratch in
            let b = bh / NH, h = bh % NH, q = qkv + b * T * C3 + h * hs, dq = dqkv + b * T * C3 + h * hs
            pm_attention_backward_head_amx(dq, dq + C, dq + 2 * C, datt + bh * T * T, dout + b * T * C + h * hs, Int32(C),
                                           q, q + C, q + 2 * C, Int32(C3), att + bh * T * T, Int32(T), Int32(hs), scale, scratch)
        }
        return
    }
    if AttentionKernel.usesFused(headSize: hs) {
        forEachHead(B * NH, scratch: (T + 15) / 16 * 16 * hs, of: Float.self) { bh, panels in
            let b = bh / NH, h = bh % NH, q = qkv + b * T * C3 + h * hs, dq = dqkv + b * T * C3 + h * hs
            pm_attention_backward_head(dq, dq + C, dq + 2 * C, datt + bh * T * T, dout + b * T * C + h * hs, Int32(C),
                                       q, q + C, q + 2 * C, Int32(C3), att + bh * T * T, Int32(T), Int32(hs), scale, panels)
        }
        return
    }
    Parallel.chunks(B * NH, minPerChunk: 1) { lo, hi in
        for bh in lo..<hi {
            let b = bh / NH, h = bh % NH
            let q = qkv + b * T * C3 + h * hs, k = q + C, v = q + 2 * C
            let dq = dqkv + b * T * C3 + h * hs, dk = dq + C, dv = dq + 2 * C
            let P = att + bh * T * T, dP = datt + bh * T * T
            let dO = dout + b * T * C + h * hs
            // Row blocks run last to first: the last block's dK, dV products cover every key
            // row, so they overwrite (beta 0) and no zeroing pass is needed; dQ rows belong
            // to one block each.
            let nBlocks = (T + attentionBlock - 1) / attentionBlock
            for blk in stride(from: nBlocks - 1, through: 0, by: -1) {
                let r0 = blk * attentionBlock, r1 = min(T, r0 + attentionBlock), rc = r1 - r0
                let kvBeta: Float = blk == nBlocks - 1 ? 0 : 1
                BLAS.gemm(transB: true, M: rc, N: r1, K: hs, A: dO + r0 * C, lda: C, B: v, ldb: C3,
                          C: dP + r0 * T, ldc: T)
                for t in r0..<r1 {
                    let p = P + t * T, d = dP + t * T
                    let s = dot(p, d, t + 1)
                    for j in 0...t { d[j] = p[j] * (d[j] - s) * scale }
                    (d + t + 1).update(repeating: 0, count: r1 - t - 1)
                }
                BLAS.gemm(M: rc, N: hs, K: r1, A: dP + r0 * T, lda: T, B: k, ldb: C3,
                          C: dq + r0 * C3, ldc: C3)
                BLAS.gemm(transA: true, M: r1, N: hs, K: rc, A: dP + r0 * T, lda: T, B: q + r0 * C3, ldb: C3,
                          beta: kvBeta, C: dk, ldc: C3)
                BLAS.gemm(transA: true, M: r1, N: hs, K: rc, A: P + r0 * T, lda: T, B: dO + r0 * C, ldb: C,
                          beta: kvBeta, C: dv, ldc: C3)
            }
        }
    }
}

/// body(bh, scratch) for every (batch row, head) bh < count, split across the workers; each
/// worker has its own scratch of `words` elements for the fused kernels' packed operands.
private func forEachHead<T>(_ count: Int, scratch words: Int, of _: T.Type, _ body: (Int, UnsafeMutablePointer<T>) -> Void) {
    Parallel.chunks(count, minPerChunk: 1) { lo, hi in
        withUnsafeTemporaryAllocation(of: T.self, capacity: words) { scratch in
            for bh in lo..<hi { body(bh, scratch.baseAddress!) }
        }
    }
}
