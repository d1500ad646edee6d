// Hand-vectorised CPU kernels that Swift cannot express at full speed (Swift builds for
// baseline x86-64: no AVX-512, no FMA). Each kernel is compiled for AVX-512 only and chosen
// at run time: callers ask pm_have_avx512() and otherwise use their portable path.
#ifndef PM_CKERNELS_H
#define PM_CKERNELS_H

#include <stddef.h>
#include <stdint.h>

/// 1 when this CPU runs the AVX-512 kernels below (avx512f and fma), else 0.
int pm_have_avx512(void);

/// Causal self-attention forward for one (batch row, head), fused per tile of 8 query rows:
/// S = scale·Q·Kᵀ over keys 0...t, softmax, O = P·V — the S/P tile stays in cache.
/// q, k, v: rows t = 0..<T at stride ld (the fused qkv activation), hs values each.
/// P (T×T, row stride T): row t holds softmax over keys 0...t and zeros from t+1 to the end of
/// its row block of `block` rows (the backward's blocking); later columns are not written.
/// o: rows at stride ldo. scratch: at least ((T + 15) / 16)·16·hs floats.
/// Requires hs ∈ {16, 32, 64, 128, 256}, block % 8 == 0, and pm_have_avx512().
void pm_attention_forward_head(float *P, float *o, int ldo,
                               const float *q, const float *k, const float *v, int ld,
                               int T, int hs, float scale, int block, float *scratch);

/// Backward of pm_attention_forward_head for one (batch row, head): writes (overwrites)
/// dq, dk, dv (rows at stride ld) from dO (rows at stride ldo), q, k, v and P. dP (T×T,
/// row stride T) is scratch, as is `scratch` (((T + 15) / 16)·16·hs floats).
/// dV = Pᵀ·dO, dP = dO·Vᵀ, dS = P ⊙ (dP − rowsum(P ⊙ dP)), dQ = scale·dS·K, dK = scale·dSᵀ·Q.
void pm_attention_backward_head(float *dq, float *dk, float *dv, float *dP,
                                const float *dO, int ldo,
                                const float *q, const float *k, const float *v, int ld,
                                const float *P, int T, int hs, float scale, float *scratch);

/// Words (uint32) of scratch the two AMX attention kernels below need for T rows of hs values.
size_t pm_attention_amx_scratch_words(int T, int hs);

/// pm_attention_forward_head with its two products (S = Q·Kᵀ, O = P·V) on AMX: Q, K, V and P
/// rounded to bfloat16 (nearest even) as they enter a product, sums in fp32; the softmax and
/// everything written (P, o) fp32, P in the same layout. Tiles of 16 query rows.
/// scratch: pm_attention_amx_scratch_words(T, hs) words (any alignment).
/// Requires hs % 32 == 0, block % 32 == 0, and pm_have_amx_bf16().
void pm_attention_forward_head_amx(float *P, float *o, int ldo,
                                   const float *q, const float *k, const float *v, int ld,
                                   int T, int hs, float scale, int block, uint32_t *scratch);

/// pm_attention_backward_head with its four products (dP = dO·Vᵀ, dQ = dS·K, dK = dSᵀ·Q,
/// dV = Pᵀ·dO) on AMX, operands rounded to bfloat16 as above; dS fp32. Same contract and
/// requirements as the fp32 kernel, P from either forward (its rows zero to 32-key chunk ends).
void pm_attention_backward_head_amx(float *dq, float *dk, float *dv, float *dP,
                                    const float *dO, int ldo,
                                    const float *q, const float *k, const float *v, int ld,
                                    const float *P, int T, int hs, float scale, uint32_t *scratch);

/// out[i] = max(inp[i], 0)² for i < n (elementwise.c; Swift's max: NaN passes). Requires pm_have_avx512().
void pm_relu2_forward(float *out, const float *inp, long n);

/// dinp[i] = dout[i]·2·max(inp[i], 0) for i < n; dinp may alias dout. Requires pm_have_avx512().
void pm_relu2_backward(float *dinp, const float *dout, const float *inp, long n);

/// One AdamW update of n parameters (ProtoCore's AdamW.step, the same operations in the same
/// order): g' = g·grad_scale; m = b1·m + (1 − b1)·g'; v = b2·v + (1 − b2)·g'·g';
/// p = p·decay − step_size·m / (√v / bc2_sqrt + eps). Requires pm_have_avx512().
void pm_adamw_update(float *p, const float *g, float *mom, float *vel, long n, float grad_scale,
                     float b1, float one_minus_b1, float b2, float one_minus_b2, float decay,
                     float step_size, float bc2_sqrt, float eps);

/// RoPE in place on the q and k parts of rows n0..<n1 of qkv (rows of 3C: q, k, v; NH heads of
/// hs = C/NH, rotated in halves): a' = a·cos − b·s, b' = b·cos + a·s with s = sign·sin, the
/// tables' row t = n mod T (half = hs/2 values each). sign −1 is the inverse (the backward).
void pm_rope_rows(float *qkv, const float *cos_t, const float *sin_t, long n0, long n1, int T, int C, int NH, float sign);

/// y[c] = x[c]·r·w[c] for c < n (the RMSNorm forward's row, rstd r).
void pm_scale_gain(float *y, const float *x, float r, const float *w, int n);

/// dx[c] += r·(dy[c]·w[c] − x[c]·r·mean) for c < n (the RMSNorm backward's row).
void pm_rmsnorm_backward_row(float *dx, const float *dy, const float *w, const float *x, float r, float mean, int n);

/// acc[c] += a[c]·b[c]·r for c < n (the RMSNorm gain gradient, one row).
void pm_add_product_scaled(float *acc, const float *a, const float *b, float r, int n);

/// 1 when this CPU and OS run pm_gemm_amx_bf16: AMX-BF16 tiles, AVX512-BF16, and Linux granted the
/// process the tile state (asked for on the first call). Cheap after the first call.
int pm_have_amx_bf16(void);

/// C(M×N) = alpha·op(A)·op(B) + beta·C, row-major, like cblas_sgemm (op(A) is M×K, stored K×M
/// when transA; op(B) is K×N, stored N×K when transB) — but A and B are rounded to bfloat16
/// (nearest even) and multiplied on the AMX tile unit with fp32 sums. C is not read when beta == 0.
/// Single-threaded; callers split C across threads. Returns 0, or -1 when out of memory (C untouched).
/// Requires pm_have_amx_bf16().
int pm_gemm_amx_bf16(int transA, int transB, int M, int N, int K, float alpha,
                     const float *A, int lda, const float *B, int ldb,
                     float beta, float *C, int ldc);

/// 1 when this CPU runs pm_gemm_avx512_bf16 (AVX512-BF16 with AVX512-F/BW/VL: AMD Zen 4 and newer,
/// Intel Cooper Lake, Sapphire Rapids and newer). Cheap after the first call.
int pm_have_avx512_bf16(void);

/// The contract and rounding of pm_gemm_amx_bf16 on AVX512-BF16 dot products (VDPBF16PS), for
/// CPUs without AMX. Sums run in another order than the AMX kernel's (results differ by fp32
/// rounding); split across threads by rows or columns of C, the bits do not change.
/// Returns 0, or -1 when out of memory (C untouched). Requires pm_have_avx512_bf16().
int pm_gemm_avx512_bf16(int transA, int transB, int M, int N, int K, float alpha,
                        const float *A, int lda, const float *B, int ldb,
                        float beta, float *C, int ldc);

#endif
