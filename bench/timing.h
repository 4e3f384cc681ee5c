/* The device side of fopt_bench's timing: which device runs the GPU rows, its copy bandwidth, and
 * the timing of one step function.
 *
 * Real build: a CUDA device through the CUDA runtime for what the device layer does not cover
 * (properties, free memory, events); CUDA events around each step, before each step either a read
 * of 3x the L2 size (L2 flush) or a 20 us spin kernel so that the host enqueues the step while the
 * device is busy and the events hold device time only; the median over the repetitions.
 *
 * Emulated build (-DFOPT_DEVICE_EMULATION=ON): the device layer runs every kernel on the calling
 * CPU thread, so a step is timed with the host clock, no L2 flush or spin exists, and no copy
 * bandwidth is measured. These timings say how fast the emulation is, nothing about a GPU: every
 * caller marks them as emulated.
 *
 * Device memory, copies, streams and graphs go through the library's device layer
 * (src/gpu/device.h) in both builds; a device-layer failure ends the program (DEV_CHECK). */
#ifndef FOPT_BENCH_TIMING_H
#define FOPT_BENCH_TIMING_H

#include <stdbool.h>
#include <stddef.h>

#include <cuda_runtime_api.h>

#include "bench_common.h"
#include "device.h"

#define DEV_CHECK(expr)                                                                            \
    do {                                                                                           \
        cudaError_t dev_err_ = (expr);                                                             \
        if (dev_err_ != cudaSuccess)                                                               \
            bench_die("%s failed at %s:%d: %s", #expr, __FILE__, __LINE__,                         \
                      fopt_dev_error_string(dev_err_));                                            \
    } while (0)

typedef struct bench_gpu {
    bool available;     /* a device runs the GPU rows: a CUDA device or the emulated one */
    bool emulated;      /* the emulated device: timings are of the host CPU, not of a GPU */
    char why_not[256];  /* why not available */
    char name[256];     /* CSV device column */
    char info[512];     /* the "GPU: ..." line (real device) */
    size_t l2_bytes;    /* 0 when unknown (emulated) */
    cudaStream_t stream;
    double copy_gbs;    /* device-to-device copy bandwidth, read + write; 0: not measured */
    size_t copy_bytes;
    /* private */
    void *events;
    int ev_pairs;
    void *flush_buf;
    float *sink;
    size_t flush_n;
} bench_gpu;

/* Finds the device (none with cpu_only), creates the stream and the flush buffer. */
void bench_gpu_init(bench_gpu *g, bool cpu_only);
void bench_gpu_shutdown(bench_gpu *g);
/* Real device: measures copy_gbs (a 1 GiB device-to-device copy, or less when memory is short,
 * median of 15). Emulated: leaves 0. */
void bench_gpu_measure_copy(bench_gpu *g);
/* Free device memory in bytes (emulated: the host's available memory). */
size_t bench_gpu_free_bytes(bench_gpu *g);
/* Waits for the benchmark's stream. */
void bench_gpu_sync(bench_gpu *g);

/* A step to time: enqueues one step on the benchmark's stream. */
typedef void (*bench_step_fn)(void *ctx);

typedef struct bench_timing {
    double median_us; /* device time per step (emulated: host wall clock) */
    double host_us;   /* host time to enqueue one step (NAN on the emulated device) */
    int reps;
} bench_timing;

/* Runs n steps of fn back to back (no flush, no spin), each between its own events (emulated: the
 * host clock), and gives their median: the validation steps, which also time steps too slow
 * (over 50 ms) for the cache state to matter or to be repeated many times. */
void bench_gpu_run_timed(bench_gpu *g, bench_step_fn fn, void *ctx, int n, bench_timing *out);

/* Times fn: warm-up (steps already run count as warm-up when `warm` is false), then up to
 * max_reps steps within `budget` seconds (at least 5; 3 for steps over 50 ms; 1 emulated), each
 * after an L2 flush (`flush`) or a spin. */
void bench_gpu_time(bench_gpu *g, bench_step_fn fn, void *ctx, bool flush, bool warm, int max_reps,
                    double budget, bench_timing *out);

#endif
