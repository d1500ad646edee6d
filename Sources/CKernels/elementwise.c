// Element-wise kernels of the training step in AVX-512: ReLU² forward and backward, the AdamW
// update, RoPE, and the per-element parts of RMSNorm (its sums stay in Swift). Swift compiles its own loops over raw pointers to scalar SSE (the pointers may
// alias, so LLVM does not vectorise them); these do the same arithmetic sixteen lanes at a time.
// Same operations in the same order, no fused multiply-adds (contraction is off below), and
// max(x, 0) with Swift's rule (0 ≥ x ? 0 : x, so NaN passes and −0 becomes +0): the results
// are bit for bit those of the Swift loops (ProtoCore's portable paths), which XCTests check.
#include "ckernels.h"
#include "mask16.h"

#pragma clang fp contract(off)

#if defined(__x86_64__)
#include <immintrin.h>

#define AVX512 __attribute__((target("avx512f")))

// Swift's max(x, 0): 0 where 0 ≥ x (ordered), else x (NaN stays NaN).
AVX512 static inline __attribute__((always_inline)) __m512 relu(__m512 x) {
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LE_OQ), x, _mm512_setzero_ps());
}

AVX512 void pm_relu2_forward(float *out, const float *inp, long n) {
    for (long i = 0; i < n; i += 16) {
        __mmask16 m = pm_mask16((int)(n - i < 16 ? n - i : 16));
        __m512 r = relu(_mm512_maskz_loadu_ps(m, inp + i));
        _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(r, r));
    }
}

AVX512 void pm_relu2_backward(float *dinp, const float *dout, const float *inp, long n) {
    __m512 two = _mm512_set1_ps(2.0f);
    for (long i = 0; i < n; i += 16) {
        __mmask16 m = pm_mask16((int)(n - i < 16 ? n - i : 16));
        __m512 d = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, dout + i), two);
        _mm512_mask_storeu_ps(dinp + i, m, _mm512_mul_ps(d, relu(_mm512_maskz_loadu_ps(m, inp + i))));
    }
}

AVX512 void pm_adamw_update(float *p, const float *g, float *mom, float *vel, long n, float grad_scale,
                            float b1, float one_minus_b1, float b2, float one_minus_b2, float decay,
                            float step_size, float bc2_sqrt, float eps) {
    __m512 gs = _mm512_set1_ps(grad_scale), vb1 = _mm512_set1_ps(b1), vc1 = _mm512_set1_ps(one_minus_b1);
    __m512 vb2 = _mm512_set1_ps(b2), vc2 = _mm512_set1_ps(one_minus_b2), f = _mm512_set1_ps(decay);
    __m512 ss = _mm512_set1_ps(step_size), bc = _mm512_set1_ps(bc2_sqrt), ve = _mm512_set1_ps(eps);
    for (long i = 0; i < n; i += 16) {
        __mmask16 k = pm_mask16((int)(n - i < 16 ? n - i : 16));
        __m512 gi = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, g + i), gs);
        __m512 m = _mm512_add_ps(_mm512_mul_ps(vb1, _mm512_maskz_loadu_ps(k, mom + i)), _mm512_mul_ps(vc1, gi));
        __m512 v = _mm512_add_ps(_mm512_mul_ps(vb2, _mm512_maskz_loadu_ps(k, vel + i)),
                                 _mm512_mul_ps(_mm512_mul_ps(vc2, gi), gi));
        __m512 den = _mm512_add_ps(_mm512_div_ps(_mm512_sqrt_ps(v), bc), ve);
        __m512 q = _mm512_sub_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(k, p + i), f),
                                 _mm512_div_ps(_mm512_mul_ps(ss, m), den));
        _mm512_mask_storeu_ps(mom + i, k, m);
        _mm512_mask_storeu_ps(vel + i, k, v);
        _mm512_mask_storeu_ps(p + i, k, q);
    }
}

AVX512 void pm_rope_rows(float *qkv, const float *cos_t, const float *sin_t, long n0, long n1,
                         int T, int C, int NH, float sign) {
    int hs = C / NH, half = hs / 2;
    __m512 sg = _mm512_set1_ps(sign);
    for (long n = n0; n < n1; n++) {
        const float *cs = cos_t + (n % T) * half, *sn = sin_t + (n % T) * half;
        for (int part = 0; part < 2; part++)  // q, then k
            for (int h = 0; h < NH; h++) {
                float *v = qkv + n * 3 * C + part * C + h * hs;
                for (int i = 0; i < half; i += 16) {
                    __mmask16 m = pm_mask16(half - i);
                    __m512 a = _mm512_maskz_loadu_ps(m, v + i), b = _mm512_maskz_loadu_ps(m, v + i + half);
                    __m512 c = _mm512_maskz_loadu_ps(m, cs + i), s = _mm512_mul_ps(sg, _mm512_maskz_loadu_ps(m, sn + i));
                    _mm512_mask_storeu_ps(v + i, m, _mm512_sub_ps(_mm512_mul_ps(a, c), _mm512_mul_ps(b, s)));
                    _mm512_mask_storeu_ps(v + i + half, m, _mm512_add_ps(_mm512_mul_ps(b, c), _mm512_mul_ps(a, s)));
                }
            }
    }
}

AVX512 void pm_scale_gain(float *y, const float *x, float r, const float *w, int n) {
    __m512 vr = _mm512_set1_ps(r);
    for (int c = 0; c < n; c += 16) {
        __mmask16 m = pm_mask16(n - c);
        _mm512_mask_storeu_ps(y + c, m, _mm512_mul_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + c), vr),
                                                      _mm512_maskz_loadu_ps(m, w + c)));
    }
}

AVX512 void pm_rmsnorm_backward_row(float *dx, const float *dy, const float *w, const float *x, float r, float mean, int n) {
    __m512 vr = _mm512_set1_ps(r), vm = _mm512_set1_ps(mean);
    for (int c = 0; c < n; c += 16) {
        __mmask16 k = pm_mask16(n - c);
        __m512 g = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, dy + c), _mm512_maskz_loadu_ps(k, w + c));
        __m512 xm = _mm512_mul_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(k, x + c), vr), vm);
        __m512 d = _mm512_mul_ps(vr, _mm512_sub_ps(g, xm));
        _mm512_mask_storeu_ps(dx + c, k, _mm512_add_ps(_mm512_maskz_loadu_ps(k, dx + c), d));
    }
}

AVX512 void pm_add_product_scaled(float *acc, const float *a, const float *b, float r, int n) {
    __m512 vr = _mm512_set1_ps(r);
    for (int c = 0; c < n; c += 16) {
        __mmask16 k = pm_mask16(n - c);
        __m512 t = _mm512_mul_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(k, a + c), _mm512_maskz_loadu_ps(k, b + c)), vr);
        _mm512_mask_storeu_ps(acc + c, k, _mm512_add_ps(_mm512_maskz_loadu_ps(k, acc + c), t));
    }
}

#else  // not x86-64: callers take their portable paths (pm_have_avx512() is 0).
void pm_relu2_forward(float *out, const float *inp, long n) { __builtin_trap(); }
void pm_relu2_backward(float *dinp, const float *dout, const float *inp, long n) { __builtin_trap(); }
void pm_adamw_update(float *p, const float *g, float *mom, float *vel, long n, float grad_scale,
                     float b1, float one_minus_b1, float b2, float one_minus_b2, float decay,
                     float step_size, float bc2_sqrt, float eps) { __builtin_trap(); }
void pm_rope_rows(float *qkv, const float *cos_t, const float *sin_t, long n0, long n1, int T, int C, int NH,
                  float sign) { __builtin_trap(); }
void pm_scale_gain(float *y, const float *x, float r, const float *w, int n) { __builtin_trap(); }
void pm_rmsnorm_backward_row(float *dx, const float *dy, const float *w, const float *x, float r, float mean,
                             int n) { __builtin_trap(); }
void pm_add_product_scaled(float *acc, const float *a, const float *b, float r, int n) { __builtin_trap(); }
#endif
