// Shared by the AVX-512 kernels (not part of the public header).
#ifndef PM_MASK16_H
#define PM_MASK16_H
#if defined(__x86_64__)
#include <immintrin.h>

/// The lane mask selecting the first n of 16 floats: none for n ≤ 0, all for n ≥ 16.
static inline __attribute__((always_inline, target("avx512f"))) __mmask16 pm_mask16(int n) {
    return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n > 0 ? n : 0)) - 1);
}
#endif
#endif
