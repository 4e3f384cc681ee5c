/* Storage conversions of the fast CPU path, over arrays: fp16/bf16 to fp32 and back (nearest-even,
 * stochastic, master remainders), bit-identical to kernels/dtype.h's element functions (the
 * reference's and the GPU's). Instantiated per instruction set like the element loops
 * (cpu_instantiate.h): the bf16 and remainder loops are integer arithmetic the compiler vectorises
 * under each target; fp16 uses the F16C / AVX-512F conversion instructions, which round to
 * nearest-even exactly as the software conversion does (only NaN payloads may differ: NaNs keep
 * their positions, docs/SEMANTICS.md). */
#ifndef FOPT_TPL_NAME /* ======================== common part ======================== */
#include <stddef.h>
#include <stdint.h>

#include "cpu_internal.h"
#include "dtype.h"

#define FOPT_TPL_FILE "cpu_convert.c"
#include "cpu_instantiate.h"
#undef FOPT_TPL_FILE

const fopt_cpu_convert *fopt_cpu_converter(int isa) { return FOPT_CPU_PICK(isa, fopt_cpu_convert); }

#else /* ======================== template: one instruction set ======================== */

/* A small layer of 32-bit integer lanes, FOPT_TPL_W of them (AVX-512F: 16, AVX2: 8): load 16-bit
 * values widened (zero- or sign-extended) or float bits, store narrowed to 16 bits or as floats,
 * the integer ops the conversions need, and fp16 to and from floats. Each conversion below is
 * written once over it; the scalar instantiation (and every tail) uses kernels/dtype.h's element
 * functions. */
#define IV(op) FOPT_TPL_NAME(iv_##op)
/* Per width: the lane types, the intrinsics' names (IVX_EPI(add): _mm512_add_epi32 or
 * _mm256_add_epi32, likewise IVX_SI, IVX_PS, IVX_CVT), the half-width integer load and store, the
 * casts, and the ops whose form differs (iota, st16, the compares and the select). */
#if FOPT_TPL_W == 16
#define FOPT_IV 1
typedef __m512i FOPT_TPL_NAME(iv);
typedef __mmask16 FOPT_TPL_NAME(ivm);
#define IVX_EPI(op) _mm512_##op##_epi32
#define IVX_SI(op) _mm512_##op##_si512
#define IVX_PS(op) _mm512_##op##_ps
#define IVX_CVT(op) _mm512_cvt##op
#define IVX_HALF_LD(p) _mm256_loadu_si256((const __m256i *)(p))
#define IVX_HALF_ST(p, x) _mm256_storeu_si256((__m256i *)(p), x)
#define IVX_TO_SI(x) _mm512_castps_si512(x)
#define IVX_TO_PS(x) _mm512_castsi512_ps(x)
FOPT_INLINE FOPT_TPL_TARGET __m512i IV(iota)(void) { return _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15); }
FOPT_INLINE FOPT_TPL_TARGET void IV(st16)(uint16_t *p, __m512i x) { _mm256_storeu_si256((__m256i *)p, _mm512_cvtepi32_epi16(x)); }
/* signed compare: every operand here is below 2^31 */
FOPT_INLINE FOPT_TPL_TARGET __mmask16 IV(gt)(__m512i a, __m512i b) { return _mm512_cmpgt_epi32_mask(a, b); }
FOPT_INLINE FOPT_TPL_TARGET __mmask16 IV(eq)(__m512i a, __m512i b) { return _mm512_cmpeq_epi32_mask(a, b); }
/* m ? x : y */
FOPT_INLINE FOPT_TPL_TARGET __m512i IV(sel)(__mmask16 m, __m512i x, __m512i y) { return _mm512_mask_blend_epi32(m, y, x); }
#elif FOPT_TPL_W == 8
#define FOPT_IV 1
typedef __m256i FOPT_TPL_NAME(iv);
typedef __m256i FOPT_TPL_NAME(ivm);
#define IVX_EPI(op) _mm256_##op##_epi32
#define IVX_SI(op) _mm256_##op##_si256
#define IVX_PS(op) _mm256_##op##_ps
#define IVX_CVT(op) _mm256_cvt##op
#define IVX_HALF_LD(p) _mm_loadu_si128((const __m128i *)(p))
#define IVX_HALF_ST(p, x) _mm_storeu_si128((__m128i *)(p), x)
#define IVX_TO_SI(x) _mm256_castps_si256(x)
#define IVX_TO_PS(x) _mm256_castsi256_ps(x)
FOPT_INLINE FOPT_TPL_TARGET __m256i IV(iota)(void) { return _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7); }
FOPT_INLINE FOPT_TPL_TARGET void IV(st16)(uint16_t *p, __m256i x)
{
    /* keep the low 16 bits (truncation, as vpmovdw does), so the unsigned saturation of the pack
     * changes nothing; the pack works per 128-bit half, the permute joins the halves' results */
    x = _mm256_and_si256(x, _mm256_set1_epi32(0xffff));
    __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(x, x), 0xd8);
    _mm_storeu_si128((__m128i *)p, _mm256_castsi256_si128(packed));
}
FOPT_INLINE FOPT_TPL_TARGET __m256i IV(gt)(__m256i a, __m256i b) { return _mm256_cmpgt_epi32(a, b); }
FOPT_INLINE FOPT_TPL_TARGET __m256i IV(eq)(__m256i a, __m256i b) { return _mm256_cmpeq_epi32(a, b); }
FOPT_INLINE FOPT_TPL_TARGET __m256i IV(sel)(__m256i m, __m256i x, __m256i y) { return _mm256_blendv_epi8(y, x, m); }
#else
#define FOPT_IV 0
#endif

#if FOPT_IV
#define I FOPT_TPL_NAME(iv)
#define M FOPT_TPL_NAME(ivm)
/* The ops written the same way at both widths. */
FOPT_INLINE FOPT_TPL_TARGET I IV(ld16)(const uint16_t *p) { return IVX_CVT(epu16_epi32)(IVX_HALF_LD(p)); }
FOPT_INLINE FOPT_TPL_TARGET I IV(ld16s)(const uint16_t *p) { return IVX_CVT(epi16_epi32)(IVX_HALF_LD(p)); }
FOPT_INLINE FOPT_TPL_TARGET I IV(ldf)(const float *p) { return IVX_TO_SI(IVX_PS(loadu)(p)); }
FOPT_INLINE FOPT_TPL_TARGET void IV(stf)(float *p, I x) { IVX_PS(storeu)(p, IVX_TO_PS(x)); }
FOPT_INLINE FOPT_TPL_TARGET I IV(set1)(uint32_t v) { return IVX_EPI(set1)((int)v); }
FOPT_INLINE FOPT_TPL_TARGET I IV(add)(I a, I b) { return IVX_EPI(add)(a, b); }
FOPT_INLINE FOPT_TPL_TARGET I IV(sub)(I a, I b) { return IVX_EPI(sub)(a, b); }
FOPT_INLINE FOPT_TPL_TARGET I IV(and)(I a, I b) { return IVX_SI(and)(a, b); }
FOPT_INLINE FOPT_TPL_TARGET I IV(or)(I a, I b) { return IVX_SI(or)(a, b); }
FOPT_INLINE FOPT_TPL_TARGET I IV(xor)(I a, I b) { return IVX_SI(xor)(a, b); }
FOPT_INLINE FOPT_TPL_TARGET I IV(mul)(I a, I b) { return IVX_EPI(mullo)(a, b); }
#define FOPT_IV_SRLI(x, k) IVX_EPI(srli)(x, k)
#define FOPT_IV_SLLI(x, k) IVX_EPI(slli)(x, k)
/* fp16 to and from floats (F16C / AVX-512F), round to nearest even */
FOPT_INLINE FOPT_TPL_TARGET void IV(up_f16)(const uint16_t *s, float *d) { IVX_PS(storeu)(d, IVX_CVT(ph_ps)(IVX_HALF_LD(s))); }
FOPT_INLINE FOPT_TPL_TARGET void IV(down_f16)(const float *s, uint16_t *d)
{
    IVX_HALF_ST(d, IVX_CVT(ps_ph)(IVX_PS(loadu)(s), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}
/* Lanes of the bits of a float that is NaN: |bits| > inf's. */
FOPT_INLINE FOPT_TPL_TARGET M IV(isnan)(I u) { return IV(gt)(IV(and)(u, IV(set1)(0x7fffffffu)), IV(set1)(0x7f800000u)); }
/* The quiet NaN of fopt_f32_to_bf16: the sign and 0x7fc0. */
FOPT_INLINE FOPT_TPL_TARGET I IV(qnan)(I u) { return IV(or)(IV(and)(FOPT_IV_SRLI(u, 16), IV(set1)(0x8000u)), IV(set1)(0x7fc0u)); }
/* fopt_f32_to_bf16 on every lane. */
FOPT_INLINE FOPT_TPL_TARGET I IV(rne)(I u)
{
    I r = FOPT_IV_SRLI(IV(add)(IV(add)(u, IV(set1)(0x7fffu)), IV(and)(FOPT_IV_SRLI(u, 16), IV(set1)(1u))), 16);
    return IV(sel)(IV(isnan)(u), IV(qnan)(u), r);
}
/* fopt_hash32 on every lane. */
FOPT_INLINE FOPT_TPL_TARGET I IV(hash)(I x)
{
    x = IV(xor)(x, FOPT_IV_SRLI(x, 16));
    x = IV(mul)(x, IV(set1)(0x7feb352du));
    x = IV(xor)(x, FOPT_IV_SRLI(x, 15));
    x = IV(mul)(x, IV(set1)(0x846ca68bu));
    return IV(xor)(x, FOPT_IV_SRLI(x, 16));
}
#endif

/* The vector part of a conversion loop over i (nothing in the scalar instantiation), then its
 * scalar tail. */
#if FOPT_IV
#define IV_LOOP(stmt)                                                                              \
    for (; i + FOPT_TPL_W <= n; i += FOPT_TPL_W)                                                   \
        stmt;
#else
#define IV_LOOP(stmt)
#endif
/* An array conversion of one input s (type S) to one output d (type D): `vec` on FOPT_TPL_W
 * elements at i, `elem` (kernels/dtype.h) on each of the rest. */
#define CONVERT_1TO1(name, S, D, vec, elem)                                                        \
    static FOPT_TPL_TARGET void FOPT_TPL_NAME(name)(const S *restrict s, D *restrict d, size_t n)  \
    {                                                                                              \
        size_t i = 0;                                                                              \
        IV_LOOP(vec)                                                                               \
        for (; i < n; i++)                                                                         \
            d[i] = elem(s[i]);                                                                     \
    }

CONVERT_1TO1(up_bf16, uint16_t, float, IV(stf)(d + i, FOPT_IV_SLLI(IV(ld16)(s + i), 16)), fopt_bf16_to_f32)
CONVERT_1TO1(down_bf16, float, uint16_t, IV(st16)(d + i, IV(rne)(IV(ldf)(s + i))), fopt_f32_to_bf16)
CONVERT_1TO1(up_f16, uint16_t, float, IV(up_f16)(s + i, d + i), fopt_f16_to_f32)
CONVERT_1TO1(down_f16, float, uint16_t, IV(down_f16)(s + i, d + i), fopt_f32_to_f16)

static FOPT_TPL_TARGET void FOPT_TPL_NAME(down_bf16_sr)(const float *restrict s, uint16_t *restrict d,
                                                        size_t n, uint64_t key, uint64_t first)
{
    const uint32_t high = fopt_sr_high(key, first);
    size_t i = 0;
#if FOPT_IV
    /* while the element index stays within first's 2^32 block, its low half is first's + i */
    const size_t same_high = (first >> 32) == ((first + n - 1) >> 32) ? n : (size_t)((~first & 0xffffffffu) + 1);
    const I k = IV(set1)((uint32_t)key ^ high), lo0 = IV(add)(IV(set1)((uint32_t)first), IV(iota)());
    const I exp_mask = IV(set1)(0x7f800000u);
    for (; i + FOPT_TPL_W <= same_high; i += FOPT_TPL_W) {
        I r16 = FOPT_IV_SRLI(IV(hash)(IV(xor)(IV(add)(lo0, IV(set1)((uint32_t)i)), k)), 16);
        I u = IV(ldf)(s + i);
        I sr = FOPT_IV_SRLI(IV(add)(u, r16), 16);
        /* inf and NaN round as nearest-even does */
        IV(st16)(d + i, IV(sel)(IV(eq)(IV(and)(u, exp_mask), exp_mask), IV(rne)(u), sr));
    }
#endif
    for (; i < n; i++) {
        const uint64_t e = first + i;
        d[i] = fopt_f32_to_bf16_sr(s[i], (e >> 32) == (first >> 32) ? fopt_sr_bits(key, high, e)
                                                                      : fopt_sr_random16(key, e));
    }
}

static FOPT_TPL_TARGET void FOPT_TPL_NAME(rem_decode)(const uint16_t *restrict p, const uint16_t *restrict r,
                                                      float *restrict d, size_t n)
{
    size_t i = 0;
    IV_LOOP(IV(stf)(d + i, IV(add)(FOPT_IV_SLLI(IV(ld16)(p + i), 16), IV(ld16s)(r + i))))
    for (; i < n; i++)
        d[i] = fopt_remainder_decode(p[i], r[i]);
}

static FOPT_TPL_TARGET void FOPT_TPL_NAME(rem_encode)(const float *restrict s, uint16_t *restrict p,
                                                      uint16_t *restrict r, size_t n)
{
    size_t i = 0;
#if FOPT_IV
    for (; i + FOPT_TPL_W <= n; i += FOPT_TPL_W) {
        I u = IV(ldf)(s + i);
        I hi = FOPT_IV_SRLI(IV(add)(u, IV(set1)(0x8000u)), 16);
        M nan = IV(isnan)(u);
        IV(st16)(p + i, IV(sel)(nan, IV(qnan)(u), hi));
        IV(st16)(r + i, IV(sel)(nan, IV(set1)(0), IV(sub)(u, FOPT_IV_SLLI(hi, 16))));
    }
#endif
    for (; i < n; i++)
        fopt_remainder_encode(s[i], &p[i], &r[i]);
}

#undef IV
#undef IV_LOOP
#undef CONVERT_1TO1
#undef I
#undef M
#undef FOPT_IV
#undef FOPT_IV_SRLI
#undef FOPT_IV_SLLI
#undef IVX_EPI
#undef IVX_SI
#undef IVX_PS
#undef IVX_CVT
#undef IVX_HALF_LD
#undef IVX_HALF_ST
#undef IVX_TO_SI
#undef IVX_TO_PS

/* one element, so that the name is a pointer like the element loops' tables */
static const fopt_cpu_convert FOPT_TPL_NAME(fopt_cpu_convert)[1] = {{
    FOPT_TPL_NAME(up_f16),      FOPT_TPL_NAME(up_bf16),    FOPT_TPL_NAME(down_f16),
    FOPT_TPL_NAME(down_bf16),   FOPT_TPL_NAME(down_bf16_sr), FOPT_TPL_NAME(rem_decode),
    FOPT_TPL_NAME(rem_encode),
}};

#endif
