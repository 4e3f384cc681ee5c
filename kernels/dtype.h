/* Storage types: exact upcasts to fp32, rounding back (nearest-even, stochastic), the master
 * remainder encoding and the counter-based random bits of stochastic rounding. Plain integer
 * arithmetic on bit patterns, so the CPU reference, the fast CPU path and the kernels (these are
 * __host__ __device__ under nvcc) produce the same bits. docs/SEMANTICS.md, "Mixed precision".
 * Not installed. */
#ifndef FUSEDOPT_DTYPE_H
#define FUSEDOPT_DTYPE_H

#include <stdint.h>
#include <string.h>

#ifdef __CUDACC__
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#define FOPT_HDI __host__ __device__ static inline
#else
#define FOPT_HDI static inline
#endif

FOPT_HDI uint32_t fopt_f32_bits(float x)
{
#ifdef __CUDA_ARCH__
    return __float_as_uint(x);
#else
    uint32_t u;
    memcpy(&u, &x, 4);
    return u;
#endif
}

FOPT_HDI float fopt_f32_from_bits(uint32_t u)
{
#ifdef __CUDA_ARCH__
    return __uint_as_float(u);
#else
    float x;
    memcpy(&x, &u, 4);
    return x;
#endif
}

/* ---- bf16: the top half of an fp32 ---- */

FOPT_HDI float fopt_bf16_to_f32(uint16_t h) { return fopt_f32_from_bits((uint32_t)h << 16); }

/* Nearest-even. NaN gives a quiet NaN (0x7fc0 with the input's sign on the host; the device's
 * conversion instruction, which rounds the same way, gives its canonical NaN). */
FOPT_HDI uint16_t fopt_f32_to_bf16(float x)
{
#ifdef __CUDA_ARCH__
    return __bfloat16_as_ushort(__float2bfloat16_rn(x));
#endif
    uint32_t u = fopt_f32_bits(x);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) & 0x8000u) | 0x7fc0u;
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

/* Stochastic: add 16 random bits to the low half of the pattern and truncate, so x rounds up with
 * probability (its low half) / 2^16 and E[result] = x. inf and NaN round as nearest-even does. */
FOPT_HDI uint16_t fopt_f32_to_bf16_sr(float x, uint32_t random16)
{
    uint32_t u = fopt_f32_bits(x);
    if ((u & 0x7f800000u) == 0x7f800000u)
        return fopt_f32_to_bf16(x);
    return (uint16_t)((u + (random16 & 0xffffu)) >> 16);
}

/* ---- fp16 (IEEE binary16) ---- */

FOPT_HDI float fopt_f16_to_f32(uint16_t h)
{
#ifdef __CUDA_ARCH__
    return __half2float(__ushort_as_half(h));
#endif
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
    if (exp == 0x1fu) /* inf, NaN (payload kept) */
        return fopt_f32_from_bits(sign | 0x7f800000u | (man << 13));
    if (exp != 0)
        return fopt_f32_from_bits(sign | ((exp + 112u) << 23) | (man << 13));
    if (man == 0)
        return fopt_f32_from_bits(sign);
    /* subnormal: man * 2^-24, exact in fp32 */
    float m = (float)man * 5.9604644775390625e-8f;
    return fopt_f32_from_bits(sign | fopt_f32_bits(m));
}

/* Nearest-even, overflow to inf, subnormals kept. NaN gives a quiet NaN (0x7e00 with the input's
 * sign on the host; the device's conversion instruction gives its canonical NaN). */
FOPT_HDI uint16_t fopt_f32_to_f16(float x)
{
#ifdef __CUDA_ARCH__
    return __half_as_ushort(__float2half_rn(x));
#endif
    uint32_t u = fopt_f32_bits(x);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u)
        return sign | 0x7e00u;
    if (a >= 0x477ff000u) /* >= 65520 = max half + half an ulp: rounds to inf */
        return sign | 0x7c00u;
    if (a >= 0x38800000u) { /* >= 2^-14: normal half */
        uint32_t r = a + 0xfffu + ((a >> 13) & 1u) - 0x38000000u; /* rebias 127 -> 15 */
        return sign | (uint16_t)(r >> 13);
    }
    if (a < 0x33000000u) /* < 2^-25: rounds to 0 (2^-25 itself is a tie to even 0) */
        return sign;
    /* subnormal half: value / 2^-24 rounded to nearest-even integer */
    uint32_t e = a >> 23;                     /* 102..112 */
    uint32_t m = (a & 0x7fffffu) | 0x800000u; /* 24-bit significand */
    uint32_t shift = 126u - e;                /* 14..24: m >> shift is the integer part */
    uint32_t q = m >> shift, rem = m & ((1u << shift) - 1u), halfway = 1u << (shift - 1u);
    if (rem > halfway || (rem == halfway && (q & 1u)))
        q++;
    return sign | (uint16_t)q;
}

/* ---- master remainder: fp32 master = bf16 param (top half) + signed 16-bit remainder ----
 * The param is the master rounded to nearest with ties away from zero (the pattern's low half
 * >= 0x8000 rounds up), so the remainder (low pattern minus the param's) lies in
 * [-0x8000, 0x7fff] and every finite master round-trips exactly. Nearest-even cannot: an even
 * param would have 2^16 + 1 masters rounding to it. A NaN master becomes the quiet NaN 0x7fc0 with
 * remainder 0. */
FOPT_HDI void fopt_remainder_encode(float master, uint16_t *param, uint16_t *remainder)
{
    uint32_t u = fopt_f32_bits(master);
    if ((u & 0x7fffffffu) > 0x7f800000u) {
        *param = (uint16_t)((u >> 16) & 0x8000u) | 0x7fc0u;
        *remainder = 0;
        return;
    }
    uint32_t p = (u + 0x8000u) >> 16;
    *param = (uint16_t)p;
    *remainder = (uint16_t)(u - (p << 16));
}

FOPT_HDI float fopt_remainder_decode(uint16_t param, uint16_t remainder)
{
    return fopt_f32_from_bits(((uint32_t)param << 16) + (uint32_t)(int32_t)(int16_t)remainder);
}

/* ---- random bits of stochastic rounding ----
 * A pure function of (seed, step, tensor index, element index): the key mixes the first three
 * once per tensor and step (splitmix64's finaliser); the element index's high half is mixed with
 * the key's once per 2^32 elements (fopt_sr_high), so each element costs one round of a 32-bit
 * integer hash (lowbias32). The top 16 bits of the result are used. docs/SEMANTICS.md. */
FOPT_HDI uint64_t fopt_mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

FOPT_HDI uint32_t fopt_hash32(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x7feb352du;
    x ^= x >> 15;
    x *= 0x846ca68bu;
    x ^= x >> 16;
    return x;
}

FOPT_HDI uint64_t fopt_sr_key(uint64_t seed, int64_t step, uint64_t tensor)
{
    return fopt_mix64(fopt_mix64(seed ^ fopt_mix64((uint64_t)step)) + tensor);
}

/* The part shared by 2^32 consecutive elements: the high halves of element index and key. */
FOPT_HDI uint32_t fopt_sr_high(uint64_t key, uint64_t element)
{
    return fopt_hash32((uint32_t)(element >> 32) ^ (uint32_t)(key >> 32));
}

/* The 16 random bits of an element, given fopt_sr_high(key, element). */
FOPT_HDI uint32_t fopt_sr_bits(uint64_t key, uint32_t high, uint64_t element)
{
    return fopt_hash32((uint32_t)element ^ (uint32_t)key ^ high) >> 16;
}

FOPT_HDI uint32_t fopt_sr_random16(uint64_t key, uint64_t element)
{
    return fopt_sr_bits(key, fopt_sr_high(key, element), element);
}

#endif
