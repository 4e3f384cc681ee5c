/* fopt_bench's device, copy bandwidth and step timing (bench/timing.h). */
#define _POSIX_C_SOURCE 200809L
#include "timing.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef FOPT_DEVICE_EMULATION
#include "bench_gpu.h"

#define CUDA_CHECK(expr)                                                                           \
    do {                                                                                           \
        cudaError_t err_ = (expr);                                                                 \
        if (err_ != cudaSuccess)                                                                   \
            bench_die("%s failed at %s:%d: %s", #expr, __FILE__, __LINE__, cudaGetErrorString(err_)); \
    } while (0)
#define BENCH_CHECK(expr)                                                                          \
    do {                                                                                           \
        if ((expr) != 0)                                                                           \
            bench_die("%s failed: %s", #expr, bench_gpu_error());                                  \
    } while (0)
#endif

#ifndef FOPT_DEVICE_EMULATION
static void sanitize(char *s)
{
    for (; *s; s++)
        if (*s == ',' || *s == '"' || *s == '\n')
            *s = ' ';
}
#endif

void bench_gpu_init(bench_gpu *g, bool cpu_only)
{
    memset(g, 0, sizeof *g);
    if (cpu_only) {
        snprintf(g->why_not, sizeof g->why_not, "--cpu-only given");
        return;
    }
    int count = 0;
    cudaError_t err = fopt_dev_count(&count);
    if (err != cudaSuccess || count == 0) {
        int driver = 0, runtime = 0;
        if (err == cudaErrorInsufficientDriver && fopt_dev_versions(&driver, &runtime) == cudaSuccess && driver == 0)
            snprintf(g->why_not, sizeof g->why_not, "no CUDA driver or device (no CUDA driver is installed)");
        else
            snprintf(g->why_not, sizeof g->why_not, "no CUDA device (cudaGetDeviceCount: %s)",
                     err != cudaSuccess ? fopt_dev_error_string(err) : "0 devices");
        (void)fopt_dev_last_error();
        return;
    }
    DEV_CHECK(fopt_dev_set(0));
    g->emulated = fopt_dev_emulated() != 0;
#ifdef FOPT_DEVICE_EMULATION
    snprintf(g->name, sizeof g->name, "emulated device (host CPU)");
    snprintf(g->info, sizeof g->info, "EMULATED device: no GPU; the kernels run on this CPU, one "
                                      "thread. Timings of GPU rows are NOT GPU figures");
#else
    struct cudaDeviceProp prop;
    CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
    int sms = 0, clock_khz = 0, bus_bits = 0, l2 = 0;
    CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
    CUDA_CHECK(cudaDeviceGetAttribute(&clock_khz, cudaDevAttrMemoryClockRate, 0));
    CUDA_CHECK(cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, 0));
    CUDA_CHECK(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, 0));
    g->l2_bytes = (size_t)l2;
    snprintf(g->name, sizeof g->name, "%.200s", prop.name);
    sanitize(g->name);
    double theo = 2.0 * clock_khz * 1e3 * bus_bits / 8 * 1e-9;
    snprintf(g->info, sizeof g->info,
             "%s, %d SMs, L2 %.0f MB, %.1f GiB, memory clock %.0f MHz x %d bits (theoretical %.0f GB/s)",
             g->name, sms, g->l2_bytes / 1e6, prop.totalGlobalMem / 1073741824.0, clock_khz / 1e3,
             bus_bits, theo);
#endif
    DEV_CHECK(fopt_dev_stream_create(&g->stream));
#ifndef FOPT_DEVICE_EMULATION
    g->flush_n = 3 * g->l2_bytes / sizeof(float);
    if (g->flush_n < ((size_t)32 << 20) / sizeof(float))
        g->flush_n = ((size_t)32 << 20) / sizeof(float);
    DEV_CHECK(fopt_dev_malloc(&g->flush_buf, g->flush_n * sizeof(float)));
    DEV_CHECK(fopt_dev_memset(g->flush_buf, 0x3c, g->flush_n * sizeof(float))); /* ~0.0117f each */
    DEV_CHECK(fopt_dev_malloc((void **)&g->sink, sizeof(float)));
    DEV_CHECK(fopt_dev_synchronize());
#endif
    g->available = true;
}

#ifndef FOPT_DEVICE_EMULATION
static void events_reserve(bench_gpu *g, int pairs)
{
    if (pairs <= g->ev_pairs)
        return;
    cudaEvent_t *ev = realloc(g->events, 2 * (size_t)pairs * sizeof *ev);
    if (!ev)
        bench_die("out of host memory");
    g->events = ev;
    for (int i = 2 * g->ev_pairs; i < 2 * pairs; i++)
        CUDA_CHECK(cudaEventCreate(&ev[i]));
    g->ev_pairs = pairs;
}
#endif

void bench_gpu_shutdown(bench_gpu *g)
{
    if (!g->available)
        return;
#ifndef FOPT_DEVICE_EMULATION
    cudaEvent_t *ev = g->events;
    for (int i = 0; i < 2 * g->ev_pairs; i++)
        cudaEventDestroy(ev[i]);
#endif
    free(g->events);
    (void)fopt_dev_free(g->flush_buf);
    (void)fopt_dev_free(g->sink);
    (void)fopt_dev_stream_destroy(g->stream);
    memset(g, 0, sizeof *g);
}

void bench_gpu_sync(bench_gpu *g)
{
    DEV_CHECK(fopt_dev_stream_synchronize(g->stream));
    DEV_CHECK(fopt_dev_last_error());
}

size_t bench_gpu_free_bytes(bench_gpu *g)
{
    (void)g;
#ifdef FOPT_DEVICE_EMULATION
    long pages = sysconf(_SC_AVPHYS_PAGES), size = sysconf(_SC_PAGESIZE);
    return pages > 0 && size > 0 ? (size_t)pages * (size_t)size : SIZE_MAX;
#else
    size_t free_b = 0, total_b = 0;
    CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
    return free_b;
#endif
}

void bench_gpu_measure_copy(bench_gpu *g)
{
#ifdef FOPT_DEVICE_EMULATION
    g->copy_gbs = 0.0;
#else
    size_t bytes = (size_t)1 << 30, free_b = bench_gpu_free_bytes(g);
    while (bytes > ((size_t)64 << 20) && 2 * bytes > free_b / 2)
        bytes /= 2;
    void *src, *dst;
    DEV_CHECK(fopt_dev_malloc(&src, bytes));
    DEV_CHECK(fopt_dev_malloc(&dst, bytes));
    DEV_CHECK(fopt_dev_memset_async(src, 0x3c, bytes, g->stream));
    enum { REPS = 15 };
    events_reserve(g, REPS);
    cudaEvent_t *ev = g->events;
    for (int i = 0; i < 3; i++)
        DEV_CHECK(fopt_dev_memcpy_async(dst, src, bytes, g->stream));
    for (int i = 0; i < REPS; i++) {
        CUDA_CHECK(cudaEventRecord(ev[2 * i], g->stream));
        DEV_CHECK(fopt_dev_memcpy_async(dst, src, bytes, g->stream));
        CUDA_CHECK(cudaEventRecord(ev[2 * i + 1], g->stream));
    }
    bench_gpu_sync(g);
    double t[REPS];
    for (int i = 0; i < REPS; i++) {
        float ms = 0;
        CUDA_CHECK(cudaEventElapsedTime(&ms, ev[2 * i], ev[2 * i + 1]));
        t[i] = ms * 1e-3;
    }
    DEV_CHECK(fopt_dev_free(src));
    DEV_CHECK(fopt_dev_free(dst));
    g->copy_bytes = bytes;
    g->copy_gbs = 2.0 * (double)bytes / bench_median(t, REPS) * 1e-9;
#endif
}

#ifdef FOPT_DEVICE_EMULATION
void bench_gpu_run_timed(bench_gpu *g, bench_step_fn fn, void *ctx, int n, bench_timing *out)
{
    (void)g;
    double *t = calloc((size_t)n, sizeof *t);
    if (!t)
        bench_die("out of host memory");
    for (int i = 0; i < n; i++) {
        double t0 = bench_now_s();
        fn(ctx);
        t[i] = bench_now_s() - t0;
    }
    out->median_us = 1e6 * bench_median(t, n);
    out->host_us = NAN;
    out->reps = n;
    free(t);
}

/* The emulated device runs each step to completion inside fn: the host clock is the time. */
void bench_gpu_time(bench_gpu *g, bench_step_fn fn, void *ctx, bool flush, bool warm, int max_reps,
                    double budget, bench_timing *out)
{
    (void)g;
    (void)flush;
    if (warm)
        fn(ctx);
    double t[5];
    int n = 0;
    double start = bench_now_s();
    do {
        double t0 = bench_now_s();
        fn(ctx);
        t[n++] = bench_now_s() - t0;
    } while (n < 5 && n < max_reps && bench_now_s() - start < budget);
    out->median_us = 1e6 * bench_median(t, n);
    out->host_us = NAN;
    out->reps = n;
}
#else
/* n steps, each between two events (after an L2 flush or a spin when `gap`), and the medians of
 * their device and host times. */
static void time_steps(bench_gpu *g, bench_step_fn fn, void *ctx, int n, bool gap, bool flush, bench_timing *out)
{
    events_reserve(g, n);
    cudaEvent_t *ev = g->events;
    double *dev = calloc((size_t)n, sizeof *dev), *host = calloc((size_t)n, sizeof *host);
    if (!dev || !host)
        bench_die("out of host memory");
    for (int i = 0; i < n; i++) {
        if (gap && flush)
            BENCH_CHECK(bench_l2_flush(g->flush_buf, g->flush_n, g->sink, g->stream));
        else if (gap)
            BENCH_CHECK(bench_spin(20000, g->stream));
        CUDA_CHECK(cudaEventRecord(ev[2 * i], g->stream));
        double t0 = bench_now_s();
        fn(ctx);
        host[i] = bench_now_s() - t0;
        CUDA_CHECK(cudaEventRecord(ev[2 * i + 1], g->stream));
    }
    bench_gpu_sync(g);
    for (int i = 0; i < n; i++) {
        float ms = 0;
        CUDA_CHECK(cudaEventElapsedTime(&ms, ev[2 * i], ev[2 * i + 1]));
        dev[i] = ms * 1e-3;
    }
    out->median_us = 1e6 * bench_median(dev, n);
    out->host_us = 1e6 * bench_median(host, n);
    out->reps = n;
    free(dev);
    free(host);
}

void bench_gpu_run_timed(bench_gpu *g, bench_step_fn fn, void *ctx, int n, bench_timing *out)
{
    time_steps(g, fn, ctx, n, false, false, out);
}

void bench_gpu_time(bench_gpu *g, bench_step_fn fn, void *ctx, bool flush, bool warm, int max_reps,
                    double budget, bench_timing *out)
{
    events_reserve(g, 2);
    cudaEvent_t *ev = g->events;
    /* one step (or three) for an estimate of the repetition count; warm-up as well */
    int est_steps = warm ? 3 : 1;
    CUDA_CHECK(cudaEventRecord(ev[0], g->stream));
    for (int i = 0; i < est_steps; i++)
        fn(ctx);
    CUDA_CHECK(cudaEventRecord(ev[1], g->stream));
    bench_gpu_sync(g);
    float ms = 0;
    CUDA_CHECK(cudaEventElapsedTime(&ms, ev[0], ev[1]));
    double step_s = ms * 1e-3 / est_steps;
    double est = step_s + (flush ? 60e-6 : 20e-6);
    int floor_reps = step_s > 50e-3 ? 3 : 5;
    int reps = (int)(budget / est);
    reps = reps < floor_reps ? floor_reps : reps;
    reps = reps > max_reps ? max_reps : reps;
    time_steps(g, fn, ctx, reps, true, flush, out);
}
#endif
