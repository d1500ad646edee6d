// bf16 packing shared by the bf16 kernels (gemm_amx.c, attention.c, gemm_bf16dot.c); not part
// of the public header. fp32 values are rounded to bfloat16 (nearest even) as they are packed
// into blocks of 32-bit bf16 pairs: an AMX A tile (16 rows × 32 bf16 along k), the pair ("VNNI")
// layout TDPBF16PS and VDPBF16PS read (pairs of k × columns), or a panel of either.
#ifndef PM_BF16_PACK_H
#define PM_BF16_PACK_H
#if defined(__x86_64__)
#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include "mask16.h"

// The packing needs AVX512-BF16 only; the AMX kernels (a superset) inline it.
#define BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16,fma")))
#define AMX __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16,fma,amx-tile,amx-bf16")))
#define AMX_INLINE static inline __attribute__((always_inline))

// 16 words (x[i], y[i]) as bf16 pairs: x in the low half, y in the high half.
BF16 AMX_INLINE __m512i pair_across(__m512 x, __m512 y) {
    __m512i lo = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(x));
    __m512i hi = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(y));
    return _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16));
}

// 32 consecutive values (n ≤ 32 of them read, zero past n) as 16 bf16 pairs.
BF16 AMX_INLINE __m512i pair_along(const float *x, int n) {
    __m512 lo = _mm512_maskz_loadu_ps(pm_mask16(n), x), hi = _mm512_maskz_loadu_ps(pm_mask16(n - 16), x + 16);
    return (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
}

// 16 rows of 16 words of bf16 pairs, word (i, w) = (X(i, k0 + 2w), X(i, k0 + 2w + 1)) with
// X(i, k) = x[i·si + k·sk], for 16 indices i and the 16 pairs w of k from k0 = 32·kb; `n` valid
// i (others zero), `kn` valid k from k0 (others zero). Stored i-major (row i = the 16 pairs of
// index i, an A tile) or, when `w_major`, w-major (row w = pair w of the 16 indices, the pair
// layout of a B tile for TDPBF16PS, or of a VDPBF16PS panel); row r at out + r·ld, its first
// `width` (≤ 16) words stored. X read along k (sk == 1) gives i-major registers, X read across i
// (si == 1) gives w-major ones; one 16 × 16 transpose in registers when they differ from what
// is stored.
BF16 static inline void pack_pairs(uint32_t *out, size_t ld, int width, const float *x, size_t si, size_t sk,
                                   int n, int kn, int w_major) {
    __m512i r[16];
    int got_w_major = sk != 1;
    if (!got_w_major) {  // x contiguous in k: one index i at a time
        for (int i = 0; i < 16; i++)
            r[i] = i < n ? pair_along(x + (size_t)i * si, kn) : _mm512_setzero_si512();
    } else {  // x contiguous in i (si == 1): pairs across two rows of k
        __mmask16 m = pm_mask16(n);
        for (int w = 0; w < 16; w++) {
            __m512 a = 2 * w < kn ? _mm512_maskz_loadu_ps(m, x + (size_t)(2 * w) * sk) : _mm512_setzero_ps();
            __m512 b = 2 * w + 1 < kn ? _mm512_maskz_loadu_ps(m, x + (size_t)(2 * w + 1) * sk) : _mm512_setzero_ps();
            r[w] = pair_across(a, b);
        }
    }
    if (got_w_major != w_major) transpose16(r);
    __mmask16 store = pm_mask16(width);
    for (int i = 0; i < 16; i++) _mm512_mask_storeu_epi32(out + ld * i, store, r[i]);
}

// One 16 × 16-word AMX tile, 256 contiguous words (see pack_pairs).
BF16 static inline void pack_tile(uint32_t *out, const float *x, size_t si, size_t sk, int n, int kn, int w_major) {
    pack_pairs(out, 16, 16, x, si, sk, n, kn, w_major);
}

// One row of a 32-wide block of C from its fp32 sums v0, v1 (columns 0–15, 16–31; m0, m1 the
// columns that exist): c = alpha·v + beta·c, c not read when beta == 0 (the sgemm contract).
BF16 AMX_INLINE void store_c_row(float *c, __m512 v0, __m512 v1, float alpha, float beta, __mmask16 m0, __mmask16 m1) {
    __m512 al = _mm512_set1_ps(alpha);
    v0 = _mm512_mul_ps(v0, al);
    v1 = _mm512_mul_ps(v1, al);
    if (beta != 0.0f) {
        __m512 be = _mm512_set1_ps(beta);
        v0 = _mm512_fmadd_ps(be, _mm512_maskz_loadu_ps(m0, c), v0);
        v1 = _mm512_fmadd_ps(be, _mm512_maskz_loadu_ps(m1, c + 16), v1);
    }
    _mm512_mask_storeu_ps(c, m0, v0);
    _mm512_mask_storeu_ps(c + 16, m1, v1);
}

// A calling thread's packing buffer of at least `words` 32-bit words, 64-byte aligned, grown as
// needed and kept for the thread's later products (each file that includes this has its own);
// NULL when out of memory (the old buffer is kept).
static inline uint32_t *pm_thread_scratch(size_t words) {
    static _Thread_local uint32_t *buffer;
    static _Thread_local size_t capacity;
    if (capacity < words) {
        uint32_t *p = aligned_alloc(64, ((words * sizeof(uint32_t) + 63) / 64) * 64);
        if (!p) return NULL;
        free(buffer);
        buffer = p;
        capacity = words;
    }
    return buffer;
}

typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tile_config;

/// Every tile 16 rows × 64 bytes (palette 1): what both AMX kernels use.
AMX static inline void pm_amx_configure_tiles(void) {
    tile_config cfg;
    __builtin_memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) { cfg.rows[t] = 16; cfg.colsb[t] = 64; }
    _tile_loadconfig(&cfg);
}
#endif
#endif
