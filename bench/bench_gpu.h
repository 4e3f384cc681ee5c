/* GPU helpers of fopt_bench, callable from C, real CUDA build only: the unfused baseline
 * (bench/unfused.cu) and the timing kernels (bench/timing_kernels.cu).
 *
 * The unfused baseline is what a naive port of an optimizer looks like: every operation of the
 * update is its own pass over memory, through cuBLAS level-1 calls (copy, scal, axpy) where one
 * fits and a one-line elementwise kernel where none does, tensor after tensor. It shows what
 * fusion buys. Its scalars are derived on the host in double, as fusedopt's are; the element
 * order of operations differs (axpy/scal instead of the lerp form), so its results differ from
 * the reference by rounding, which the benchmark reports.
 *
 * Every function returns 0 on success, else -1 with a message for bench_gpu_error(). None exits. */
#ifndef FOPT_BENCH_GPU_H
#define FOPT_BENCH_GPU_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#include "fusedopt.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The message of the last failure ("" if none). */
const char *bench_gpu_error(void);
/* Records a failure message (printf-style) and returns -1. */
int bench_gpu_fail(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

typedef struct bench_unfused bench_unfused;

/* A cuBLAS handle bound to `stream` plus two scratch vectors, grown on demand. */
int bench_unfused_create(bench_unfused **out, cudaStream_t stream);
/* Makes the scratch vectors hold at least max_numel elements (the largest tensor of a list). */
int bench_unfused_reserve(bench_unfused *u, size_t max_numel);
void bench_unfused_destroy(bench_unfused *u);

/* One Adam/AdamW/AMSGrad step over one tensor, enqueued on the handle's stream. */
int bench_unfused_adam_step(bench_unfused *u, const fopt_adam_config *cfg, int64_t step, size_t n,
                            float *param, const float *grad, float *exp_avg, float *exp_avg_sq,
                            float *max_exp_avg_sq);
/* One RMSprop step over one tensor (momentum_buffer / grad_avg as the variant needs). */
int bench_unfused_rmsprop_step(bench_unfused *u, const fopt_rmsprop_config *cfg, size_t n,
                               float *param, const float *grad, float *square_avg,
                               float *momentum_buffer, float *grad_avg);

/* Reads `n` floats of `buf` (evicting whatever the L2 cache held) and writes one float to `sink`
 * only if the sum is impossible, so the compiler keeps the reads and the L2 stays clean. */
int bench_l2_flush(const float *buf, size_t n, float *sink, cudaStream_t stream);

/* Keeps the GPU busy for about `ns` nanoseconds, so that the host enqueues the next timed step
 * while the device is still working and the timed region holds device time only. */
int bench_spin(unsigned ns, cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
