// Fused causal attention for one (batch row, head) in AVX-512, tile by tile of 8 query rows.
// Per tile the forward computes S = scale·Q·Kᵀ for keys 0..<tile end, the softmax of each row
// and O = P·V while the tile's rows of P are still in L1; the backward does the same with dP,
// dS, dQ and accumulates dK, dV. The same products through sgemm (the portable path in
// Attention.swift) run at a third of the machine's rate on these shapes (inner size hs = 32
// or 64 and blocks of 64 rows), mostly in packing and call overhead.
//
// Register tiles: S-like products hold 8 rows × 32 keys (16 zmm accumulators, K packed into
// panels of 16 keys so a key panel is one load); O-like products and the rank-8 updates of dK
// and dV hold 8 rows × 32 values (16 for hs = 16) and walk hs in chunks of that width, so a
// tile reads each row of V, K, Q or dK/dV once whatever hs is. Rows past the end of a tile
// reuse the last valid row (read, never stored), so every tile runs the same unrolled code.
#include "ckernels.h"
#include "mask16.h"
#include "bf16_pack.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include <math.h>
#include <stddef.h>

#define AVX512 __attribute__((target("avx512f,fma")))
#define INLINE static inline __attribute__((always_inline))

int pm_have_avx512(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
}

// e^x with the polynomial of FastMath.swift's expPoly (x clamped to [-87, 88]).
AVX512 INLINE __m512 exp512(__m512 x) {
    // NaN stays NaN: vmaxps/vminps return the second operand when either is NaN, so x goes second.
    x = _mm512_min_ps(_mm512_set1_ps(88.0f), _mm512_max_ps(_mm512_set1_ps(-87.0f), x));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.69314575f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.4286068e-6f), r);
    __m512 p = _mm512_set1_ps(1.0f / 720);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

// In place: row[0..<n] <- softmax(row[0..<n]).
AVX512 static void softmax_row(float *row, int n) {
    __m512 mx = _mm512_set1_ps(-INFINITY);
    for (int j = 0; j < n; j += 16)
        mx = _mm512_max_ps(mx, _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), pm_mask16(n - j), row + j));
    __m512 shift = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
    __m512 sum = _mm512_setzero_ps();
    for (int j = 0; j < n; j += 16) {
        __mmask16 m = pm_mask16(n - j);
        __m512 e = _mm512_maskz_mov_ps(m, exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, row + j), shift)));
        sum = _mm512_add_ps(sum, e);
        _mm512_mask_storeu_ps(row + j, m, e);
    }
    __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(sum));
    for (int j = 0; j < n; j += 16) {
        __mmask16 m = pm_mask16(n - j);
        _mm512_mask_storeu_ps(row + j, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, row + j), inv));
    }
}

AVX512 static void zero_floats(float *x, int n) {
    for (int j = 0; j < n; j += 16) _mm512_mask_storeu_ps(x + j, pm_mask16(n - j), _mm512_setzero_ps());
}

// Rows t0..<t0 + nr of P (row stride T) hold scores for keys 0...t and beyond: each becomes the
// softmax over keys 0...t, then zeros to the end of its row block (the O product of its tile
// and the backward's products read whole tiles and chunks of them).
AVX512 static void causal_softmax_rows(float *P, int T, int t0, int nr, int block) {
    for (int t = t0; t < t0 + nr; t++) {
        float *row = P + (size_t)t * T;
        softmax_row(row, t + 1);
        int end = (t / block + 1) * block;
        if (end > T) end = T;
        zero_floats(row + t + 1, end - t - 1);
    }
}

// panels[p][d][i] = X[16p + i][d] for rows 0..<n (stride ld), zero past n; hs % 16 == 0.
// Each 16 × 16 block is one in-register transpose (transpose16).
AVX512 static void pack_panels(float *panels, const float *X, int ld, int n, int hs) {
    int np = (n + 15) / 16;
    for (int p = 0; p < np; p++) {
        float *dst = panels + (size_t)p * hs * 16;
        int rows = n - 16 * p < 16 ? n - 16 * p : 16;
        for (int d0 = 0; d0 < hs; d0 += 16) {
            __m512i r[16];
            for (int i = 0; i < 16; i++)
                r[i] = i < rows ? _mm512_loadu_si512(X + (size_t)(16 * p + i) * ld + d0) : _mm512_setzero_si512();
            transpose16(r);
            for (int c = 0; c < 16; c++) _mm512_storeu_si512(dst + (size_t)(d0 + c) * 16, r[c]);
        }
    }
}

// out[r][c] = alpha · Σ_d A[r][d]·X[c][d] for rows r < nr (≤ 8) and columns c < ncols, with X
// packed in panels of 16 rows; out rows at stride ldo.
AVX512 static void rows_times_panels(float *out, int ldo, const float *A, int lda, int nr,
                                     const float *panels, int ncols, int hs, float alpha) {
    const float *a[8];
    for (int r = 0; r < 8; r++) a[r] = A + (size_t)(r < nr ? r : nr - 1) * lda;
    __m512 al = _mm512_set1_ps(alpha);
    int np = (ncols + 15) / 16;
    int p = 0;
    for (; p + 2 <= np; p += 2) {
        const float *k0 = panels + (size_t)p * hs * 16, *k1 = k0 + hs * 16;
        __m512 c0[8], c1[8];
        for (int r = 0; r < 8; r++) { c0[r] = _mm512_setzero_ps(); c1[r] = _mm512_setzero_ps(); }
        for (int d = 0; d < hs; d++) {
            __m512 x0 = _mm512_loadu_ps(k0 + d * 16), x1 = _mm512_loadu_ps(k1 + d * 16);
            for (int r = 0; r < 8; r++) {
                __m512 b = _mm512_set1_ps(a[r][d]);
                c0[r] = _mm512_fmadd_ps(b, x0, c0[r]);
                c1[r] = _mm512_fmadd_ps(b, x1, c1[r]);
            }
        }
        __mmask16 m0 = pm_mask16(ncols - 16 * p), m1 = pm_mask16(ncols - 16 * p - 16);
        for (int r = 0; r < nr; r++) {
            _mm512_mask_storeu_ps(out + (size_t)r * ldo + 16 * p, m0, _mm512_mul_ps(c0[r], al));
            _mm512_mask_storeu_ps(out + (size_t)r * ldo + 16 * p + 16, m1, _mm512_mul_ps(c1[r], al));
        }
    }
    if (p < np) {
        const float *k0 = panels + (size_t)p * hs * 16;
        __m512 c0[8];
        for (int r = 0; r < 8; r++) c0[r] = _mm512_setzero_ps();
        for (int d = 0; d < hs; d++) {
            __m512 x0 = _mm512_loadu_ps(k0 + d * 16);
            for (int r = 0; r < 8; r++) c0[r] = _mm512_fmadd_ps(_mm512_set1_ps(a[r][d]), x0, c0[r]);
        }
        __mmask16 m0 = pm_mask16(ncols - 16 * p);
        for (int r = 0; r < nr; r++)
            _mm512_mask_storeu_ps(out + (size_t)r * ldo + 16 * p, m0, _mm512_mul_ps(c0[r], al));
    }
}

// out[r][0..<hs] = Σ_{j<nk} W[r][j]·X[j][0..<hs] for rows r < nr (≤ 8), in column chunks of
// NV vectors: the register tile is 8 rows × 16·NV columns (8·NV ≤ 16 accumulators), so a tile
// reads each row of X once however large hs is.
AVX512 INLINE void rows_times_matrix_t(float *out, int ldo, const float *W, int ldw, int nr,
                                       const float *X, int ldx, int nk, int hs, const int NV) {
    const float *w[8];
    for (int r = 0; r < 8; r++) w[r] = W + (size_t)(r < nr ? r : nr - 1) * ldw;
    for (int c0 = 0; c0 < hs; c0 += 16 * NV) {
        __m512 acc[16];
        for (int i = 0; i < 8 * NV; i++) acc[i] = _mm512_setzero_ps();
        for (int j = 0; j < nk; j++) {
            const float *x = X + (size_t)j * ldx + c0;
            __m512 xv[2];
            for (int c = 0; c < NV; c++) xv[c] = _mm512_loadu_ps(x + 16 * c);
            for (int r = 0; r < 8; r++) {
                __m512 b = _mm512_set1_ps(w[r][j]);
                for (int c = 0; c < NV; c++) acc[r * NV + c] = _mm512_fmadd_ps(b, xv[c], acc[r * NV + c]);
            }
        }
        for (int r = 0; r < nr; r++)
            for (int c = 0; c < NV; c++) _mm512_storeu_ps(out + (size_t)r * ldo + c0 + 16 * c, acc[r * NV + c]);
    }
}

// Y[j][0..<hs] += Σ_{r<nr} W[r][j]·X[r][0..<hs] for j < nk (the transposed product, as a
// rank-nr update of Y's rows), in column chunks of NV vectors: the chunk of X's 8 rows stays in
// registers and each row of Y is loaded and stored once per tile. Sums run r = 0, 1, … per element.
AVX512 INLINE void rank_update_t(float *Y, int ldy, const float *W, int ldw, int nr,
                                 const float *X, int ldx, int nk, int hs, const int NV) {
    const float *w[8];
    for (int r = 0; r < 8; r++) w[r] = W + (size_t)(r < nr ? r : nr - 1) * ldw;
    for (int c0 = 0; c0 < hs; c0 += 16 * NV) {
        __m512 xr[16];
        for (int r = 0; r < 8; r++)
            for (int c = 0; c < NV; c++)
                xr[r * NV + c] = r < nr ? _mm512_loadu_ps(X + (size_t)r * ldx + c0 + 16 * c) : _mm512_setzero_ps();
        int j = 0;
        for (; j + 4 <= nk; j += 4) {  // four rows of Y at once: independent chains for the FMA units
            float *y = Y + (size_t)j * ldy + c0;
            __m512 acc[4][2];
            for (int u = 0; u < 4; u++)
                for (int c = 0; c < NV; c++) acc[u][c] = _mm512_loadu_ps(y + (size_t)u * ldy + 16 * c);
            for (int r = 0; r < 8; r++)
                for (int u = 0; u < 4; u++) {
                    __m512 b = _mm512_set1_ps(w[r][j + u]);
                    for (int c = 0; c < NV; c++) acc[u][c] = _mm512_fmadd_ps(b, xr[r * NV + c], acc[u][c]);
                }
            for (int u = 0; u < 4; u++)
                for (int c = 0; c < NV; c++) _mm512_storeu_ps(y + (size_t)u * ldy + 16 * c, acc[u][c]);
        }
        for (; j < nk; j++) {
            float *y = Y + (size_t)j * ldy + c0;
            __m512 acc[2];
            for (int c = 0; c < NV; c++) acc[c] = _mm512_loadu_ps(y + 16 * c);
            for (int r = 0; r < 8; r++) {
                __m512 b = _mm512_set1_ps(w[r][j]);
                for (int c = 0; c < NV; c++) acc[c] = _mm512_fmadd_ps(b, xr[r * NV + c], acc[c]);
            }
            for (int c = 0; c < NV; c++) _mm512_storeu_ps(y + 16 * c, acc[c]);
        }
    }
}

// Column chunks of two vectors (one for hs = 16); callers check the head size first.
AVX512 static void rows_times_matrix(float *out, int ldo, const float *W, int ldw, int nr,
                                     const float *X, int ldx, int nk, int hs) {
    if (hs == 16) rows_times_matrix_t(out, ldo, W, ldw, nr, X, ldx, nk, hs, 1);
    else rows_times_matrix_t(out, ldo, W, ldw, nr, X, ldx, nk, hs, 2);
}

AVX512 static void rank_update(float *Y, int ldy, const float *W, int ldw, int nr,
                               const float *X, int ldx, int nk, int hs) {
    if (hs == 16) rank_update_t(Y, ldy, W, ldw, nr, X, ldx, nk, hs, 1);
    else rank_update_t(Y, ldy, W, ldw, nr, X, ldx, nk, hs, 2);
}

AVX512 static float dot_n(const float *a, const float *b, int n) {
    __m512 s = _mm512_setzero_ps();
    for (int j = 0; j < n; j += 16) {
        __mmask16 m = pm_mask16(n - j);
        s = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + j), _mm512_maskz_loadu_ps(m, b + j), s);
    }
    return _mm512_reduce_add_ps(s);
}

AVX512 void pm_attention_forward_head(float *P, float *o, int ldo,
                                      const float *q, const float *k, const float *v, int ld,
                                      int T, int hs, float scale, int block, float *scratch) {
    pack_panels(scratch, k, ld, T, hs);
    for (int t0 = 0; t0 < T; t0 += 8) {
        int nr = T - t0 < 8 ? T - t0 : 8, kmax = t0 + nr;
        rows_times_panels(P + (size_t)t0 * T, T, q + (size_t)t0 * ld, ld, nr, scratch, kmax, hs, scale);
        causal_softmax_rows(P, T, t0, nr, block);
        rows_times_matrix(o + (size_t)t0 * ldo, ldo, P + (size_t)t0 * T, T, nr, v, ld, kmax, hs);
    }
}

AVX512 void pm_attention_backward_head(float *dq, float *dk, float *dv, float *dP,
                                       const float *dO, int ldo,
                                       const float *q, const float *k, const float *v, int ld,
                                       const float *P, int T, int hs, float scale, float *scratch) {
    for (int j = 0; j < T; j++) {
        zero_floats(dk + (size_t)j * ld, hs);
        zero_floats(dv + (size_t)j * ld, hs);
    }
    pack_panels(scratch, v, ld, T, hs);
    for (int t0 = 0; t0 < T; t0 += 8) {
        int nr = T - t0 < 8 ? T - t0 : 8, kmax = t0 + nr;
        float *dS = dP + (size_t)t0 * T;
        const float *Pt = P + (size_t)t0 * T;
        rows_times_panels(dS, T, dO + (size_t)t0 * ldo, ldo, nr, scratch, kmax, hs, 1.0f);  // dP = dO·Vᵀ
        for (int r = 0; r < nr; r++) {
            int t = t0 + r;
            const float *p = Pt + (size_t)r * T;
            float *d = dS + (size_t)r * T;
            __m512 s = _mm512_set1_ps(dot_n(p, d, t + 1)), sc = _mm512_set1_ps(scale);
            for (int j = 0; j <= t; j += 16) {
                __mmask16 m = pm_mask16(t + 1 - j);
                __m512 pv = _mm512_maskz_loadu_ps(m, p + j), dv_ = _mm512_maskz_loadu_ps(m, d + j);
                _mm512_mask_storeu_ps(d + j, m, _mm512_mul_ps(_mm512_mul_ps(pv, _mm512_sub_ps(dv_, s)), sc));
            }
            zero_floats(d + t + 1, kmax - t - 1);
        }
        rows_times_matrix(dq + (size_t)t0 * ld, ld, dS, T, nr, k, ld, kmax, hs);   // dQ = dS·K
        rank_update(dk, ld, dS, T, nr, q + (size_t)t0 * ld, ld, kmax, hs);         // dK += dSᵀ·Q
        rank_update(dv, ld, Pt, T, nr, dO + (size_t)t0 * ldo, ldo, kmax, hs);      // dV += Pᵀ·dO
    }
}


// ---- bf16 on AMX (`--matmul bf16`) ----
// The same two kernels with every product on the tile unit: Q, K, V, dO, P and dS rounded to
// bf16 (nearest even) as they are packed, sums in fp32; softmax, dS and everything stored stay
// fp32, so P has the fp32 kernels' layout and either backward can follow either forward.
// Per head, the operands every query block reads (K, V; in the backward V, K, Q, dO) are packed
// once as B tiles; a block of 16 query rows packs its own A tiles. dK and dV are products over
// query rows (dSᵀ·Q, Pᵀ·dO), so they run after the query blocks, one block of 16 keys at a
// time over the queries that can see it, with C in tiles over the whole inner dimension.

// B tiles of a head's rows used across the inner dimension: B(k, j) = x[j·ld + k] (k < hs, the
// inner index; j < rows), for S = Q·Kᵀ and dP = dO·Vᵀ. Tile (kc, n) at dst + (kc·NN + n)·256,
// NN = ⌈rows/16⌉, kc < hs/32.
AMX static void pack_rows_across(uint32_t *dst, const float *x, int ld, int rows, int hs) {
    int nn = (rows + 15) / 16;
    for (int kc = 0; kc < hs / 32; kc++)
        for (int n = 0; n < nn; n++)
            pack_tile(dst + ((size_t)kc * nn + n) * 256, x + (size_t)16 * n * ld + 32 * kc, ld, 1,
                      rows - 16 * n, hs - 32 * kc, 1);
}

// B tiles of a head's rows used along the inner dimension: B(k, j) = x[k·ld + j] (k < rows, the
// inner index; j < hs), for O = P·V, dQ = dS·K, dK = dSᵀ·Q, dV = Pᵀ·dO. Tile (kc, n) at
// dst + (kc·hs/16 + n)·256, kc < ⌈rows/32⌉; rows past the end are zero.
AMX static void pack_rows_along(uint32_t *dst, const float *x, int ld, int rows, int hs) {
    int nn = hs / 16;
    for (int kc = 0; kc < (rows + 31) / 32; kc++)
        for (int n = 0; n < nn; n++)
            pack_tile(dst + ((size_t)kc * nn + n) * 256, x + (size_t)32 * kc * ld + 16 * n, 1, ld,
                      16, rows - 32 * kc, 1);
}

// nkc A tiles (256 words apart) of a 16-row block: A(r, k) = x[r·si + k·sk] for r < nr, k < kn.
AMX static void pack_a_tiles(uint32_t *dst, const float *x, size_t si, size_t sk, int nr, int kn) {
    for (int kc = 0; 32 * kc < kn; kc++)
        pack_tile(dst + (size_t)kc * 256, x + (size_t)32 * kc * sk, si, sk, nr, kn - 32 * kc, 0);
}

// out[r][c] = alpha · Σ_kc (A[kc]·B[kc][c/16])[r][c%16] for r < nr, c < ncols (row stride ldo);
// A: nkc tiles 256 words apart; B tile (kc, n) at B + kc·bkc + n·256, n < ⌈ncols/16⌉.
// Four C tiles at a time share each A tile.
AMX static void block_product(float *out, size_t ldo, int nr, int ncols, float alpha,
                              const uint32_t *A, int nkc, const uint32_t *B, size_t bkc) {
    float tmp[16 * 64];
    __m512 al = _mm512_set1_ps(alpha);
    int nn = (ncols + 15) / 16;
    for (int n0 = 0; n0 < nn; n0 += 4) {
        int g = nn - n0 < 4 ? nn - n0 : 4;
        _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3);
        for (int kc = 0; kc < nkc; kc++) {
            const uint32_t *b = B + (size_t)kc * bkc + (size_t)n0 * 256;
            _tile_loadd(4, A + (size_t)kc * 256, 64);
            _tile_loadd(5, b, 64);
            _tile_dpbf16ps(0, 4, 5);
            if (g > 1) { _tile_loadd(6, b + 256, 64); _tile_dpbf16ps(1, 4, 6); }
            if (g > 2) { _tile_loadd(7, b + 512, 64); _tile_dpbf16ps(2, 4, 7); }
            if (g > 3) { _tile_loadd(5, b + 768, 64); _tile_dpbf16ps(3, 4, 5); }
        }
        _tile_stored(0, tmp, 256);
        _tile_stored(1, tmp + 16, 256);
        _tile_stored(2, tmp + 32, 256);
        _tile_stored(3, tmp + 48, 256);
        for (int r = 0; r < nr; r++)
            for (int i = 0; i < g; i++) {
                int c0 = 16 * (n0 + i);
                _mm512_mask_storeu_ps(out + r * ldo + c0, pm_mask16(ncols - c0),
                                      _mm512_mul_ps(_mm512_loadu_ps(tmp + 64 * r + 16 * i), al));
            }
    }
}

size_t pm_attention_amx_scratch_words(int T, int hs) {
    size_t t32 = (size_t)(T + 31) / 32 * 32;
    size_t ablocks = t32 / 32 > (size_t)hs / 32 ? t32 / 32 : (size_t)hs / 32;
    return 4 * t32 * (size_t)hs / 2 + ablocks * 256;
}

AMX void pm_attention_forward_head_amx(float *P, float *o, int ldo,
                                       const float *q, const float *k, const float *v, int ld,
                                       int T, int hs, float scale, int block, uint32_t *scratch) {
    size_t t32 = (size_t)(T + 31) / 32 * 32, nkey = (size_t)(T + 15) / 16;
    uint32_t *kt = scratch, *vt = kt + t32 * hs / 2, *at = vt + t32 * hs / 2;
    pm_amx_configure_tiles();
    pack_rows_across(kt, k, ld, T, hs);
    pack_rows_along(vt, v, ld, T, hs);
    for (int t0 = 0; t0 < T; t0 += 16) {
        int nr = T - t0 < 16 ? T - t0 : 16, kmax = t0 + nr;
        pack_a_tiles(at, q + (size_t)t0 * ld, ld, 1, nr, hs);
        block_product(P + (size_t)t0 * T, T, nr, kmax, scale, at, hs / 32, kt, nkey * 256);  // S
        causal_softmax_rows(P, T, t0, nr, block);
        pack_a_tiles(at, P + (size_t)t0 * T, T, 1, nr, kmax);
        block_product(o + (size_t)t0 * ldo, ldo, nr, hs, 1.0f, at, (kmax + 31) / 32, vt, (size_t)hs / 16 * 256);
    }
    _tile_release();
}

AMX void pm_attention_backward_head_amx(float *dq, float *dk, float *dv, float *dP,
                                        const float *dO, int ldo,
                                        const float *q, const float *k, const float *v, int ld,
                                        const float *P, int T, int hs, float scale, uint32_t *scratch) {
    size_t t32 = (size_t)(T + 31) / 32 * 32, nkey = (size_t)(T + 15) / 16, bkc = (size_t)hs / 16 * 256;
    uint32_t *vt = scratch, *kt = vt + t32 * hs / 2, *qt = kt + t32 * hs / 2, *dot = qt + t32 * hs / 2;
    uint32_t *at = dot + t32 * hs / 2;
    pm_amx_configure_tiles();
    pack_rows_across(vt, v, ld, T, hs);
    pack_rows_along(kt, k, ld, T, hs);
    pack_rows_along(qt, q, ld, T, hs);
    pack_rows_along(dot, dO, ldo, T, hs);
    __m512 sc = _mm512_set1_ps(scale);
    for (int t0 = 0; t0 < T; t0 += 16) {
        int nr = T - t0 < 16 ? T - t0 : 16, kmax = t0 + nr;
        pack_a_tiles(at, dO + (size_t)t0 * ldo, ldo, 1, nr, hs);
        block_product(dP + (size_t)t0 * T, T, nr, kmax, 1.0f, at, hs / 32, vt, nkey * 256);  // dP = dO·Vᵀ
        for (int r = 0; r < nr; r++) {
            int t = t0 + r;
            const float *p = P + (size_t)t * T;
            float *d = dP + (size_t)t * T;
            __m512 s = _mm512_set1_ps(dot_n(p, d, t + 1));
            for (int j = 0; j <= t; j += 16) {
                __mmask16 m = pm_mask16(t + 1 - j);
                __m512 pv = _mm512_maskz_loadu_ps(m, p + j), dv_ = _mm512_maskz_loadu_ps(m, d + j);
                _mm512_mask_storeu_ps(d + j, m, _mm512_mul_ps(_mm512_mul_ps(pv, _mm512_sub_ps(dv_, s)), sc));
            }
            // dS is zero past t up to the end of t's 32-key chunk: this block's dQ and the dK
            // products below read whole chunks.
            int end = (t / 32 + 1) * 32;
            if (end > T) end = T;
            zero_floats(d + t + 1, end - t - 1);
        }
        pack_a_tiles(at, dP + (size_t)t0 * T, T, 1, nr, kmax);
        block_product(dq + (size_t)t0 * ld, ld, nr, hs, 1.0f, at, (kmax + 31) / 32, kt, bkc);  // dQ = dS·K
    }
    // Key j gets contributions from queries t ≥ j: the block of keys j0..j0+15 sums over query
    // chunks from the one holding j0 (rows there before j0 are zero in dS and P, see above).
    for (int j0 = 0; j0 < T; j0 += 16) {
        int nk = T - j0 < 16 ? T - j0 : 16, c0 = j0 / 32, nq = T - 32 * c0;
        pack_a_tiles(at, dP + (size_t)32 * c0 * T + j0, 1, T, nk, nq);
        block_product(dk + (size_t)j0 * ld, ld, nk, hs, 1.0f, at, (nq + 31) / 32, qt + c0 * bkc, bkc);  // dK = dSᵀ·Q
        pack_a_tiles(at, P + (size_t)32 * c0 * T + j0, 1, T, nk, nq);
        block_product(dv + (size_t)j0 * ld, ld, nk, hs, 1.0f, at, (nq + 31) / 32, dot + c0 * bkc, bkc);  // dV = Pᵀ·dO
    }
    _tile_release();
}

#else  // not x86-64: no AVX-512 here, callers take their portable path.

int pm_have_avx512(void) { return 0; }

void pm_attention_forward_head(float *P, float *o, int ldo, const float *q, const float *k, const float *v, int ld,
                               int T, int hs, float scale, int block, float *scratch) {
    __builtin_trap();  // unreachable: pm_have_avx512() is 0
}

void pm_attention_backward_head(float *dq, float *dk, float *dv, float *dP, const float *dO, int ldo,
                                const float *q, const float *k, const float *v, int ld,
                                const float *P, int T, int hs, float scale, float *scratch) {
    __builtin_trap();  // unreachable: pm_have_avx512() is 0
}

size_t pm_attention_amx_scratch_words(int T, int hs) { (void)T; (void)hs; return 0; }

void pm_attention_forward_head_amx(float *P, float *o, int ldo, const float *q, const float *k, const float *v,
                                   int ld, int T, int hs, float scale, int block, uint32_t *scratch) {
    __builtin_trap();  // unreachable: pm_have_amx_bf16() is 0
}

void pm_attention_backward_head_amx(float *dq, float *dk, float *dv, float *dP, const float *dO, int ldo,
                                    const float *q, const float *k, const float *v, int ld,
                                    const float *P, int T, int hs, float scale, uint32_t *scratch) {
    __builtin_trap();  // unreachable: pm_have_amx_bf16() is 0
}
#endif
