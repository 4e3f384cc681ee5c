/* The model of the two ZeRO-1 examples (zero1_mpi.c on the CPU, zero1_nccl.cu on the GPUs): the
 * parameter list, the initial params and each rank's gradient contribution, the same functions on
 * the host and on the device. */
#ifndef ZERO1_MODEL_H
#define ZERO1_MODEL_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __CUDACC__
#define ZERO1_HD __host__ __device__
#else
#define ZERO1_HD
#endif

/* Tensors of odd sizes in one flat fp32 buffer: 8029 params. */
static const size_t ZERO1_SIZES[] = {1000, 37, 4099, 1, 777, 2051, 64};
#define ZERO1_COUNT (sizeof ZERO1_SIZES / sizeof ZERO1_SIZES[0])
#define ZERO1_STEPS 20
#define ZERO1_INF_STEP 7 /* the iteration whose grads hold an inf (an AMP overflow) */

/* A 32-bit integer hash (the examples build against the installed headers only, so this is not
 * the library's kernels/dtype.h fopt_hash32, though it is the same function). */
ZERO1_HD static inline uint32_t zero1_hash32(uint32_t x)
{
    x = (x ^ (x >> 16)) * 0x7feb352du;
    x = (x ^ (x >> 15)) * 0x846ca68bu;
    return x ^ (x >> 16);
}

/* Param i before the first step, in [-0.5, 0.5]. */
static inline float zero1_initial_param(size_t i)
{
    return (float)((int)(zero1_hash32((uint32_t)i) % 2001u) - 1000) / 2000.0f;
}

/* Rank r's gradient contribution for param i at iteration `it`: the gradient of
 * 0.5 * (w - target_r)^2 quantised to a multiple of 2^-12 in [-8, 8], times the loss scale (a
 * power of 2). Each contribution then has at most 16 significant bits, so sums of up to 2^8 of
 * them are exact in fp32: the sum over ranks is the same whatever order MPI's or NCCL's reduction
 * adds them in, and the sharded run and the one-process run step the same grads. Each operation is
 * one IEEE operation, the same on host and device (zero1_nccl is built with --fmad=false). */
ZERO1_HD static inline float zero1_contribution(int r, int it, size_t i, float w, float scale)
{
    if (it == ZERO1_INF_STEP && r == 0 && i == 4242)
        return INFINITY;
    const float target =
        (float)((int)(zero1_hash32((uint32_t)i * 2654435761u ^ (uint32_t)r * 40503u) % 2001u) - 1000) / 1000.0f;
    float q = rintf((w - target) * 4096.0f);
    q = q > 32768.0f ? 32768.0f : q < -32768.0f ? -32768.0f : q;
    return q / 4096.0f * scale;
}

#endif
