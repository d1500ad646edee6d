// Mixed-precision matrix product with AVX512-BF16 dot products (VDPBF16PS), for CPUs that have
// AVX512-BF16 but no AMX tiles (AMD Zen 4 and newer, Intel Cooper Lake): the contract and the
// rounding of pm_gemm_amx_bf16 (cblas_sgemm, row-major; operands rounded to bfloat16, nearest
// even, as they are packed; fp32 sums and result).
//
// Blocking after BLIS (Van Zee & van de Geijn, "BLIS: A Framework for Rapidly Instantiating BLAS
// Functionality", ACM TOMS 41(3), 2015): op(B) is packed in blocks of KC values of k × all N
// columns, as panels of NR = 32 columns; op(A) in blocks of MC rows × KC, as panels of MR = 12
// rows. Both are stored as pairs of k (the layout VDPBF16PS reads: one 32-bit word holds
// (x(k), x(k+1)) in bf16), so a panel row is one pair of k. The micro-kernel keeps a 12 × 32
// block of C in 24 registers; per pair of k it loads 32 words of B and broadcasts 12 words of
// A into 24 VDPBF16PS, each adding A(i,k)·B(k,j) + A(i,k+1)·B(k+1,j) to 16 sums. The B
// micro-panel (KC/2 × 32 words, 16 KiB) stays in L1 while the A panels stream from L2.
//
// Each element of C is summed in the same order whatever block of C a call covers, so a
// product split across threads by rows or columns gives the same bits.
#include "ckernels.h"
#include "bf16_pack.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include <stdint.h>

#define MR 12
#define NR 32
#define KC 256  // values of k per block (128 pairs)
#define MC 192

int pm_have_avx512_bf16(void) {
    static int state = -1;  // -1 unknown; benign race: every caller computes the same answer
    if (state >= 0) return state;
    __builtin_cpu_init();
    state = __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw") &&
            __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512f");
    return state;
}

// c (rows × cols of a 12 × 32 block, row stride ldc) = alpha·Σ a·b + beta·c over kp pairs of k;
// a: kp rows of MR words, b: kp rows of NR words. beta == 0 does not read c.
BF16 static void micro_kernel(int kp, const uint32_t *a, const uint32_t *b, float *c, size_t ldc,
                              float alpha, float beta, int rows, int cols) {
    __m512 acc[MR][2];
    for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    for (int p = 0; p < kp; p++) {
        __m512bh b0 = (__m512bh)_mm512_load_si512(b), b1 = (__m512bh)_mm512_load_si512(b + 16);
        for (int i = 0; i < MR; i++) {
            __m512bh ai = (__m512bh)_mm512_set1_epi32((int)a[i]);
            acc[i][0] = _mm512_dpbf16_ps(acc[i][0], ai, b0);
            acc[i][1] = _mm512_dpbf16_ps(acc[i][1], ai, b1);
        }
        a += MR;
        b += NR;
    }
    __mmask16 m0 = pm_mask16(cols), m1 = pm_mask16(cols - 16);
    for (int i = 0; i < rows; i++) store_c_row(c + (size_t)i * ldc, acc[i][0], acc[i][1], alpha, beta, m0, m1);
}

// A panel of `width` (MR or NR) indices i < n of X(i, k) = x[i·si + k·sk], k < kc, as rows of
// pairs of k: row w at out + w·width. Rows are written 16 pairs at a time, so the panel has room
// for kc rounded up to 32 values of k (the extra rows are zero and never read).
BF16 static void pack_panel(uint32_t *out, int width, const float *x, size_t si, size_t sk, int n, int kc) {
    for (int k0 = 0; k0 < kc; k0 += 32)
        for (int i0 = 0; i0 < width; i0 += 16) {
            int w = width - i0 < 16 ? width - i0 : 16, ni = n - i0 < w ? n - i0 : w;
            pack_pairs(out + (size_t)(k0 / 2) * width + i0, (size_t)width, w,
                       x + (size_t)i0 * si + (size_t)k0 * sk, si, sk, ni > 0 ? ni : 0, kc - k0, 1);
        }
}

BF16 int pm_gemm_avx512_bf16(int transA, int transB, int M, int N, int K, float alpha,
                             const float *A, int lda, const float *B, int ldb,
                             float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return 0;
    size_t ars = transA ? 1 : (size_t)lda, aks = transA ? (size_t)lda : 1;  // op(A)(r, k) = A[r·ars + k·aks]
    size_t bks = transB ? 1 : (size_t)ldb, bjs = transB ? (size_t)ldb : 1;  // op(B)(k, j) = B[k·bks + j·bjs]
    int NP = (N + NR - 1) / NR;
    size_t panel_rows = KC / 2;  // pairs of k in a full block (a multiple of 16)
    size_t bwords = (size_t)NP * NR * panel_rows, awords = (size_t)((MC + MR - 1) / MR) * MR * panel_rows;
    uint32_t *scratch = pm_thread_scratch(bwords + awords);
    if (!scratch) return -1;
    uint32_t *bp = scratch, *ap = scratch + bwords;
    int blocks = K > 0 ? (K + KC - 1) / KC : 1;  // K == 0 still scales C by beta
    for (int blk = 0; blk < blocks; blk++) {
        int pc = blk * KC, kc = K - pc < KC ? K - pc : KC;
        if (kc < 0) kc = 0;
        int kp = (kc + 1) / 2;
        float bet = blk == 0 ? beta : 1.0f;
        for (int p = 0; p < NP; p++)
            pack_panel(bp + (size_t)p * NR * panel_rows, NR, B + (size_t)pc * bks + (size_t)p * NR * bjs,
                       bjs, bks, N - p * NR, kc);
        for (int ic = 0; ic < M; ic += MC) {
            int mc = M - ic < MC ? M - ic : MC, MP = (mc + MR - 1) / MR;
            for (int q = 0; q < MP; q++)
                pack_panel(ap + (size_t)q * MR * panel_rows, MR, A + (size_t)(ic + q * MR) * ars + (size_t)pc * aks,
                           ars, aks, mc - q * MR, kc);
            for (int p = 0; p < NP; p++)
                for (int q = 0; q < MP; q++) {
                    int rows = mc - q * MR, cols = N - p * NR;
                    micro_kernel(kp, ap + (size_t)q * MR * panel_rows, bp + (size_t)p * NR * panel_rows,
                                 C + (size_t)(ic + q * MR) * ldc + (size_t)p * NR, (size_t)ldc, alpha, bet,
                                 rows < MR ? rows : MR, cols < NR ? cols : NR);
                }
        }
    }
    return 0;
}

#else
int pm_have_avx512_bf16(void) { return 0; }
int pm_gemm_avx512_bf16(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
                        const float *B, int ldb, float beta, float *C, int ldc) {
    (void)transA; (void)transB; (void)M; (void)N; (void)K; (void)alpha; (void)A; (void)lda;
    (void)B; (void)ldb; (void)beta; (void)C; (void)ldc;
    return -1;
}
#endif
