// Shared by the AVX-512 kernels (not part of the public header): the lane mask of a ragged
// tail, and the 16 × 16 transpose of 32-bit words (packing of panels and tiles).
#ifndef PM_MASK16_H
#define PM_MASK16_H
#if defined(__x86_64__)
#include <immintrin.h>

/// The lane mask selecting the first n of 16 floats: none for n ≤ 0, all for n ≥ 16.
static inline __attribute__((always_inline, target("avx512f"))) __mmask16 pm_mask16(int n) {
    return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n > 0 ? n : 0)) - 1);
}

// In place: the 16 × 16 matrix of 32-bit words in r[0..<16] (r[i] is row i) is transposed.
static inline __attribute__((always_inline, target("avx512f"))) void transpose16(__m512i r[16]) {
    __m512i t[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        r[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
        r[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
        r[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
        r[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
    }
    // r[4q + s] now holds, in 128-bit lane l, words (4l..4l+3) of column 4q.. of rows: lane l of
    // row group q. Two rounds of 128-bit lane shuffles finish the transpose.
    for (int i = 0; i < 4; i++) {
        t[i] = _mm512_shuffle_i32x4(r[i], r[i + 4], 0x88);
        t[i + 4] = _mm512_shuffle_i32x4(r[i], r[i + 4], 0xDD);
        t[i + 8] = _mm512_shuffle_i32x4(r[i + 8], r[i + 12], 0x88);
        t[i + 12] = _mm512_shuffle_i32x4(r[i + 8], r[i + 12], 0xDD);
    }
    for (int i = 0; i < 4; i++) {
        r[i] = _mm512_shuffle_i32x4(t[i], t[i + 8], 0x88);
        r[i + 8] = _mm512_shuffle_i32x4(t[i], t[i + 8], 0xDD);
        r[i + 4] = _mm512_shuffle_i32x4(t[i + 4], t[i + 12], 0x88);
        r[i + 12] = _mm512_shuffle_i32x4(t[i + 4], t[i + 12], 0xDD);
    }
}
#endif
#endif
