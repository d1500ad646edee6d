// Mixed-precision matrix product on Intel AMX: C = alpha·op(A)·op(B) + beta·C with fp32
// operands in memory, rounded to bfloat16 (nearest even) when packed, products summed in fp32
// by the tile unit (TDPBF16PS). The same contract as cblas_sgemm, row-major.
//
// Blocking: C in blocks of 32 × 32 held in four 16 × 16 fp32 tiles over the whole inner
// dimension; per step of 32 along k, two A tiles (16 rows × 32 bf16) and two B tiles (16 pairs
// of k × 16 columns, the "VNNI" pair layout the tile unit reads) feed four TDPBF16PS. Both
// operands are packed once per call: A block by block of 32 rows, B whole (panels of 32 columns).
// Transposed operands go through a 16 × 16 transpose of 32-bit pairs in registers.
//
// Error: each product sees its inputs with a relative rounding error ≤ 2⁻⁹ (bf16 keeps 8
// significant bits); sums are fp32. This is what PyTorch's CPU autocast to bfloat16 does to a
// matmul's inputs (its outputs are rounded to bf16 as well; ours stay fp32).
#include "ckernels.h"
#include "bf16_pack.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int pm_have_amx_bf16(void) {
    static int state = -1;  // -1 unknown; benign race: every caller computes the same answer
    if (state >= 0) return state;
    __builtin_cpu_init();
    int ok = __builtin_cpu_supports("amx-bf16") && __builtin_cpu_supports("amx-tile") &&
             __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw");
    // Linux hands out the 8 KiB tile state only on request (ARCH_REQ_XCOMP_PERM for
    // XFEATURE_XTILEDATA); without it the first tile instruction kills the process.
    if (ok) ok = syscall(SYS_arch_prctl, 0x1023, 18) == 0;
    state = ok;
    return state;
}

AMX int pm_gemm_amx_bf16(int transA, int transB, int M, int N, int K, float alpha,
                         const float *A, int lda, const float *B, int ldb,
                         float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return 0;
    int KB = (K + 31) / 32, NP = (N + 31) / 32;
    size_t bwords = (size_t)NP * KB * 2 * 256, awords = (size_t)KB * 2 * 256;
    uint32_t *scratch = pm_thread_scratch(bwords + awords);
    if (!scratch) return -1;
    uint32_t *bp = scratch, *ap = scratch + bwords;
    size_t ars = transA ? 1 : (size_t)lda, aks = transA ? (size_t)lda : 1;  // op(A)(r, k) = A[r·ars + k·aks]
    size_t bks = transB ? 1 : (size_t)ldb, bjs = transB ? (size_t)ldb : 1;  // op(B)(k, j) = B[k·bks + j·bjs]
    // B panels: [panel][kb][half] tiles of 256 words.
    for (int p = 0; p < NP; p++)
        for (int kb = 0; kb < KB; kb++)
            for (int h = 0; h < 2; h++) {
                int j0 = 32 * p + 16 * h, k0 = 32 * kb;
                uint32_t *t = bp + (((size_t)p * KB + kb) * 2 + h) * 256;
                if (j0 >= N) { memset(t, 0, 256 * sizeof(uint32_t)); continue; }
                pack_tile(t, B + (size_t)k0 * bks + (size_t)j0 * bjs, bjs, bks, N - j0, K - k0, 1);
            }
    pm_amx_configure_tiles();
    float out[32 * 32];
    for (int i0 = 0; i0 < M; i0 += 32) {
        for (int kb = 0; kb < KB; kb++)
            for (int h = 0; h < 2; h++) {
                int r0 = i0 + 16 * h, k0 = 32 * kb;
                uint32_t *t = ap + ((size_t)kb * 2 + h) * 256;
                if (r0 >= M) { memset(t, 0, 256 * sizeof(uint32_t)); continue; }
                pack_tile(t, A + (size_t)r0 * ars + (size_t)k0 * aks, ars, aks, M - r0, K - k0, 0);
            }
        for (int p = 0; p < NP; p++) {
            _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3);
            const uint32_t *bt = bp + (size_t)p * KB * 512;
            for (int kb = 0; kb < KB; kb++) {
                _tile_loadd(4, ap + (size_t)kb * 512, 64);
                _tile_loadd(5, ap + (size_t)kb * 512 + 256, 64);
                _tile_loadd(6, bt + (size_t)kb * 512, 64);
                _tile_loadd(7, bt + (size_t)kb * 512 + 256, 64);
                _tile_dpbf16ps(0, 4, 6);
                _tile_dpbf16ps(1, 4, 7);
                _tile_dpbf16ps(2, 5, 6);
                _tile_dpbf16ps(3, 5, 7);
            }
            _tile_stored(0, out, 128);
            _tile_stored(1, out + 16, 128);
            _tile_stored(2, out + 16 * 32, 128);
            _tile_stored(3, out + 16 * 32 + 16, 128);
            int j0 = 32 * p, rows = M - i0 < 32 ? M - i0 : 32;
            __mmask16 m0 = pm_mask16(N - j0), m1 = pm_mask16(N - j0 - 16);
            for (int r = 0; r < rows; r++)
                store_c_row(C + (size_t)(i0 + r) * ldc + j0, _mm512_loadu_ps(out + 32 * r),
                            _mm512_loadu_ps(out + 32 * r + 16), alpha, beta, m0, m1);
        }
    }
    _tile_release();
    return 0;
}

#else
int pm_have_amx_bf16(void) { return 0; }
int pm_gemm_amx_bf16(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
                     const float *B, int ldb, float beta, float *C, int ldc) {
    (void)transA; (void)transB; (void)M; (void)N; (void)K; (void)alpha; (void)A; (void)lda;
    (void)B; (void)ldb; (void)beta; (void)C; (void)ldc;
    return -1;
}
#endif
