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

static FOPT_TPL_TARGET void FOPT_TPL_NAME(up_bf16)(const uint16_t *restrict s, float *restrict d, size_t n)
{
    for (size_t i = 0; i < n; i++)
        d[i] = fopt_bf16_to_f32(s[i]);
}

/* Nearest-even without a branch, so that the loop vectorises. */
static FOPT_TPL_TARGET void FOPT_TPL_NAME(down_bf16)(const float *restrict s, uint16_t *restrict d, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t u = fopt_f32_bits(s[i]);
        uint32_t r = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
        uint32_t nan = ((u >> 16) & 0x8000u) | 0x7fc0u;
        d[i] = (uint16_t)((u & 0x7fffffffu) > 0x7f800000u ? nan : r);
    }
}

static FOPT_TPL_TARGET void FOPT_TPL_NAME(down_bf16_sr)(const float *restrict s, uint16_t *restrict d,
                                                        size_t n, uint64_t key, uint64_t first)
{
    for (size_t i = 0; i < n; i++)
        d[i] = fopt_f32_to_bf16_sr(s[i], fopt_sr_random16(key, first + i));
}

static FOPT_TPL_TARGET void FOPT_TPL_NAME(rem_decode)(const uint16_t *restrict p, const uint16_t *restrict r,
                                                      float *restrict d, size_t n)
{
    for (size_t i = 0; i < n; i++)
        d[i] = fopt_f32_from_bits(((uint32_t)p[i] << 16) + (uint32_t)(int32_t)(int16_t)r[i]);
}

static FOPT_TPL_TARGET void FOPT_TPL_NAME(rem_encode)(const float *restrict s, uint16_t *restrict p,
                                                      uint16_t *restrict r, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t u = fopt_f32_bits(s[i]);
        uint32_t hi = (u + 0x8000u) >> 16;
        int nan = (u & 0x7fffffffu) > 0x7f800000u;
        p[i] = (uint16_t)(nan ? (((u >> 16) & 0x8000u) | 0x7fc0u) : hi);
        r[i] = (uint16_t)(nan ? 0u : u - (hi << 16));
    }
}

#if FOPT_TPL_W == 8
static FOPT_TPL_TARGET void FOPT_TPL_NAME(up_f16)(const uint16_t *restrict s, float *restrict d, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(d + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(s + i))));
    for (; i < n; i++)
        d[i] = fopt_f16_to_f32(s[i]);
}

static FOPT_TPL_TARGET void FOPT_TPL_NAME(down_f16)(const float *restrict s, uint16_t *restrict d, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(d + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(s + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    for (; i < n; i++)
        d[i] = fopt_f32_to_f16(s[i]);
}
#elif FOPT_TPL_W == 16
static FOPT_TPL_TARGET void FOPT_TPL_NAME(up_f16)(const uint16_t *restrict s, float *restrict d, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(d + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(s + i))));
    for (; i < n; i++)
        d[i] = fopt_f16_to_f32(s[i]);
}

static FOPT_TPL_TARGET void FOPT_TPL_NAME(down_f16)(const float *restrict s, uint16_t *restrict d, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i *)(d + i),
                            _mm512_cvtps_ph(_mm512_loadu_ps(s + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    for (; i < n; i++)
        d[i] = fopt_f32_to_f16(s[i]);
}
#else
static FOPT_TPL_TARGET void FOPT_TPL_NAME(up_f16)(const uint16_t *restrict s, float *restrict d, size_t n)
{
    for (size_t i = 0; i < n; i++)
        d[i] = fopt_f16_to_f32(s[i]);
}

static FOPT_TPL_TARGET void FOPT_TPL_NAME(down_f16)(const float *restrict s, uint16_t *restrict d, size_t n)
{
    for (size_t i = 0; i < n; i++)
        d[i] = fopt_f32_to_f16(s[i]);
}
#endif

/* one element, so that the name is a pointer like the element loops' tables */
static const fopt_cpu_convert FOPT_TPL_NAME(fopt_cpu_convert)[1] = {{
    FOPT_TPL_NAME(up_f16),      FOPT_TPL_NAME(up_bf16),    FOPT_TPL_NAME(down_f16),
    FOPT_TPL_NAME(down_bf16),   FOPT_TPL_NAME(down_bf16_sr), FOPT_TPL_NAME(rem_decode),
    FOPT_TPL_NAME(rem_encode),
}};

#endif
