/* fopt_bench: fusedopt's fused GPU step against an unfused GPU port (cuBLAS level-1 + one-line
 * kernels), the fast CPU path and the CPU reference, measured against the device's copy
 * bandwidth.
 *
 * Cases: single tensors of 2^min .. 2^max elements (step 2 by default), the parameter shapes of
 * GPT-2 small (148 tensors, 124.4M elements) and 10,000 small tensors of random sizes 1..4096.
 * Optimizers: adam, adamw, amsgrad, rmsprop, rmsprop_momentum, rmsprop_centered,
 * rmsprop_centered_momentum.
 *
 * How it measures
 *   - Data: parameters and gradients uniform in (-1, 1), never zero, fixed seed; states start at
 *     zero as in any optimizer. Each tensor of a list starts 16-byte aligned in one allocation.
 *   - GPU: one CUDA event pair around each step; before each step either a read of 3x the L2 size
 *     (when the step's bytes are under 4x L2, so no step finds its data in the cache) or a 20 us
 *     spin kernel, so the host enqueues the step while the device is busy and the events hold
 *     device time. Warm-up first; the median over the repetitions is reported. Repetitions are
 *     capped by --reps and by a time budget per case.
 *   - CPU: wall clock around each step over all tensors; the median of the timed steps (at least
 *     the validation steps; more while the time budget allows).
 *   - Bytes: the fewest an fp32 step must move (Adam/AdamW 28 B per element, AMSGrad 36, RMSprop
 *     20, momentum or centered 28, both 36), also for the unfused baseline, which moves more, so
 *     that the GB/s and % columns compare. Copy bandwidth: a 1 GiB cudaMemcpy device to device,
 *     bytes read plus bytes written, median of 15.
 *   - max_rel_err: every implementation takes K steps from the same initial data as the CPU
 *     reference; per tensor max|p - p_ref| / max|p_ref|, the largest over the tensors.
 *
 * Without a CUDA device the GPU rows are skipped (said so at the top and the bottom) and the CPU
 * rows are still measured; the exit status is 0. With a device, a CUDA error exits non-zero. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cuda_runtime_api.h>

#include "bench_common.h"
#include "bench_gpu.h"
#include "fusedopt.h"

const char bench_program[] = "fopt_bench";

#define VALIDATION_STEPS 3

/* ---- small utilities ------------------------------------------------------------------------ */

static void *xmalloc(size_t bytes)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? bytes : 64) != 0)
        return NULL;
    return p;
}

/* Uniform in (-1, 1), never exactly zero. */
static float rng_float(uint64_t *s)
{
    float u = bench_rng_unit(bench_rng_next(s));
    return 2.0f * u - 1.0f == 0.0f ? 0.5f : 2.0f * u - 1.0f;
}

/* ---- tensor lists --------------------------------------------------------------------------- */

typedef struct tensor_list {
    char name[32]; /* "2^20", "gpt2_small", "small_10k" */
    size_t count;
    size_t *numel;
    size_t *offset;   /* element offset in the shared buffers, a multiple of 4 (16 bytes) */
    size_t total;     /* elements */
    size_t padded;    /* buffer length in elements */
    size_t max_numel; /* largest tensor */
} tensor_list;

static void list_finish(tensor_list *L)
{
    L->total = L->padded = L->max_numel = 0;
    for (size_t i = 0; i < L->count; i++) {
        L->offset[i] = L->padded;
        L->padded += (L->numel[i] + 3) & ~(size_t)3;
        L->total += L->numel[i];
        if (L->numel[i] > L->max_numel)
            L->max_numel = L->numel[i];
    }
}

static void list_alloc(tensor_list *L, size_t count)
{
    L->count = count;
    L->numel = calloc(count, sizeof *L->numel);
    L->offset = calloc(count, sizeof *L->offset);
    if (!L->numel || !L->offset)
        bench_die("out of host memory");
}

static void list_free(tensor_list *L)
{
    free(L->numel);
    free(L->offset);
    memset(L, 0, sizeof *L);
}

static void list_single(tensor_list *L, int log2n)
{
    list_alloc(L, 1);
    snprintf(L->name, sizeof L->name, "2^%d", log2n);
    L->numel[0] = (size_t)1 << log2n;
    list_finish(L);
}

/* GPT-2 small (124M): token and position embeddings, 12 blocks, final layer norm. */
static void list_gpt2(tensor_list *L)
{
    const size_t d = 768, vocab = 50257, ctx = 1024, layers = 12;
    list_alloc(L, 2 + 12 * layers + 2);
    snprintf(L->name, sizeof L->name, "gpt2_small");
    size_t k = 0;
    L->numel[k++] = vocab * d; /* wte */
    L->numel[k++] = ctx * d;   /* wpe */
    for (size_t l = 0; l < layers; l++) {
        L->numel[k++] = d;          /* ln_1.weight */
        L->numel[k++] = d;          /* ln_1.bias */
        L->numel[k++] = d * 3 * d;  /* attn.c_attn.weight */
        L->numel[k++] = 3 * d;      /* attn.c_attn.bias */
        L->numel[k++] = d * d;      /* attn.c_proj.weight */
        L->numel[k++] = d;          /* attn.c_proj.bias */
        L->numel[k++] = d;          /* ln_2.weight */
        L->numel[k++] = d;          /* ln_2.bias */
        L->numel[k++] = d * 4 * d;  /* mlp.c_fc.weight */
        L->numel[k++] = 4 * d;      /* mlp.c_fc.bias */
        L->numel[k++] = 4 * d * d;  /* mlp.c_proj.weight */
        L->numel[k++] = d;          /* mlp.c_proj.bias */
    }
    L->numel[k++] = d; /* ln_f.weight */
    L->numel[k++] = d; /* ln_f.bias */
    list_finish(L);
}

/* 10,000 tensors of 1..4096 elements (odd sizes included), fixed seed. */
static void list_small(tensor_list *L)
{
    list_alloc(L, 10000);
    snprintf(L->name, sizeof L->name, "small_10k");
    uint64_t s = 12345;
    for (size_t i = 0; i < L->count; i++)
        L->numel[i] = 1 + (size_t)(bench_rng_next(&s) % 4096);
    list_finish(L);
}

/* Per tensor max|a - ref| / max|ref|, the largest over the tensors; NaN if any is NaN. */
static double max_rel_err(const tensor_list *L, const float *a, const float *ref)
{
    double worst = 0.0;
    for (size_t t = 0; t < L->count; t++) {
        double rel = bench_max_rel_err(a + L->offset[t], ref + L->offset[t], L->numel[t]);
        if (isnan(rel))
            return NAN;
        if (rel > worst)
            worst = rel;
    }
    return worst;
}

/* ---- options -------------------------------------------------------------------------------- */

typedef struct options {
    const char *csv;
    bool quick;
    int min_log2, max_log2, log2_step;
    bool max_log2_set;
    int reps;
    bool lists;
    bool cpu_only;
    double time_budget; /* seconds; 0 = none */
    double case_budget; /* seconds per implementation and case */
    bool selected[BENCH_MAX_VARIANTS];
} options;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: fopt_bench [options]\n"
            "  --csv FILE          write the results as CSV\n"
            "  --quick             fewer sizes and repetitions (a smoke run)\n"
            "  --min-log2 N        smallest single tensor 2^N (default 10)\n"
            "  --max-log2 N        largest single tensor 2^N (default 28 with a GPU, 22 without)\n"
            "  --log2-step N       size step in powers of two (default 2)\n"
            "  --optimizers LIST   comma-separated: adam,adamw,amsgrad,rmsprop,rmsprop_momentum,\n"
            "                      rmsprop_centered,rmsprop_centered_momentum or all (default all)\n"
            "  --reps N            most timed repetitions per case (default 100)\n"
            "  --no-lists          skip the GPT-2 and 10,000-tensor lists\n"
            "  --cpu-only          skip the GPU even when one is present\n"
            "  --time-budget S     start no new case after S seconds (default: none)\n"
            "  --help\n");
}

static int parse_int(const char *s, const char *what)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < 0 || v > 1000000)
        bench_die("bad value '%s' for %s", s, what);
    return (int)v;
}

static void parse_options(int argc, char **argv, options *o, const bench_variant *vars, int nvars)
{
    memset(o, 0, sizeof *o);
    o->min_log2 = 10;
    o->max_log2 = 28;
    o->log2_step = 2;
    o->reps = 100;
    o->lists = true;
    o->case_budget = 0.4;
    for (int i = 0; i < nvars; i++)
        o->selected[i] = true;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED_VAL()                                                                          \
    do {                                                                                    \
        if (!val)                                                                           \
            bench_die("%s needs a value", a);                                               \
        i++;                                                                                \
    } while (0)
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            exit(0);
        } else if (!strcmp(a, "--csv")) {
            NEED_VAL();
            o->csv = val;
        } else if (!strcmp(a, "--quick")) {
            o->quick = true;
        } else if (!strcmp(a, "--min-log2")) {
            NEED_VAL();
            o->min_log2 = parse_int(val, a);
        } else if (!strcmp(a, "--max-log2")) {
            NEED_VAL();
            o->max_log2 = parse_int(val, a);
            o->max_log2_set = true;
        } else if (!strcmp(a, "--log2-step")) {
            NEED_VAL();
            o->log2_step = parse_int(val, a);
            if (o->log2_step < 1)
                bench_die("--log2-step must be >= 1");
        } else if (!strcmp(a, "--reps")) {
            NEED_VAL();
            o->reps = parse_int(val, a);
            if (o->reps < 1)
                bench_die("--reps must be >= 1");
        } else if (!strcmp(a, "--no-lists")) {
            o->lists = false;
        } else if (!strcmp(a, "--cpu-only")) {
            o->cpu_only = true;
        } else if (!strcmp(a, "--time-budget")) {
            NEED_VAL();
            o->time_budget = parse_int(val, a);
        } else if (!strcmp(a, "--optimizers")) {
            NEED_VAL();
            if (strcmp(val, "all")) {
                for (int k = 0; k < nvars; k++)
                    o->selected[k] = false;
                char *copy = strdup(val);
                if (!copy)
                    bench_die("out of host memory");
                for (char *tok = strtok(copy, ","); tok; tok = strtok(NULL, ",")) {
                    int k = 0;
                    while (k < nvars && strcmp(tok, vars[k].name))
                        k++;
                    if (k == nvars)
                        bench_die("unknown optimizer '%s' (see --help)", tok);
                    o->selected[k] = true;
                }
                free(copy);
            }
        } else {
            usage(stderr);
            bench_die("unknown option '%s'", a);
        }
#undef NEED_VAL
    }
    if (o->max_log2 > 34)
        bench_die("--max-log2 %d is more than this benchmark allocates (34)", o->max_log2);
    if (o->quick) {
        if (o->reps > 20)
            o->reps = 20;
        o->case_budget = 0.15;
        if (o->log2_step < 4)
            o->log2_step = 4;
    }
}

/* ---- CSV and table -------------------------------------------------------------------------- */

typedef struct output {
    FILE *csv;
    char cpu_device[160];
    char gpu_device[256];
    double copy_gbs; /* 0 without a GPU */
} output;

static void sanitize(char *s)
{
    for (; *s; s++)
        if (*s == ',' || *s == '"' || *s == '\n')
            *s = ' ';
}

typedef struct result {
    const char *impl;
    double median_us; /* NAN: not measured */
    double max_err;   /* NAN: not measured */
    double host_us;   /* GPU rows: host time to enqueue one step; NAN otherwise */
    bool gpu;
} result;

static void table_header(void)
{
    printf("%-8s %-17s %-14s %-10s %7s %11s %11s %9s %8s %6s %8s %8s %11s %8s\n", "optimizer",
           "variant", "impl", "case", "tensors", "elements", "median_us", "Gelem/s", "GB/s",
           "%copy", "x_cpu", "x_ref", "max_rel_err", "host_us");
}

static void emit(output *out, const bench_variant *v, const tensor_list *L, const result *r,
                 double cpu_us, double ref_us)
{
    int bpe = bench_bytes_per_elem(v);
    double secs = r->median_us * 1e-6;
    double gbs = (double)L->total * bpe / secs * 1e-9;
    double gelems = (double)L->total / secs * 1e-9;
    double pct = r->gpu && out->copy_gbs > 0 ? 100.0 * gbs / out->copy_gbs : NAN;
    double x_cpu = cpu_us / r->median_us, x_ref = ref_us / r->median_us;
    char pct_s[16] = "-", xcpu_s[16] = "-", xref_s[16] = "-", err_s[16] = "-", host_s[16] = "-";
    if (!isnan(pct))
        snprintf(pct_s, sizeof pct_s, "%.1f", pct);
    if (!isnan(x_cpu) && r->gpu)
        snprintf(xcpu_s, sizeof xcpu_s, "%.2f", x_cpu);
    if (!isnan(x_ref) && strcmp(r->impl, "cpu_ref"))
        snprintf(xref_s, sizeof xref_s, "%.2f", x_ref);
    if (!isnan(r->max_err))
        snprintf(err_s, sizeof err_s, "%.2e", r->max_err);
    else if (strcmp(r->impl, "cpu_ref"))
        snprintf(err_s, sizeof err_s, "NaN");
    if (!isnan(r->host_us))
        snprintf(host_s, sizeof host_s, "%.1f", r->host_us);
    printf("%-8s %-17s %-14s %-10s %7zu %11zu %11.2f %9.3f %8.1f %6s %8s %8s %11s %8s\n",
           v->optimizer, v->variant, r->impl, L->name, L->count, L->total, r->median_us, gelems,
           gbs, pct_s, xcpu_s, xref_s, err_s, host_s);
    fflush(stdout);
    if (out->csv) {
        fprintf(out->csv, "%s,%s,%s,fp32,%zu,%zu,%.3f,%d,%.3f,", v->optimizer, v->variant, r->impl,
                L->count, L->total, r->median_us, bpe, gbs);
        if (!isnan(pct))
            fprintf(out->csv, "%.2f", pct);
        fputc(',', out->csv);
        if (!strcmp(r->impl, "cpu_ref"))
            fprintf(out->csv, "0");
        else if (isnan(r->max_err))
            fprintf(out->csv, "nan");
        else
            fprintf(out->csv, "%.3e", r->max_err);
        fprintf(out->csv, ",%s\n", r->gpu ? out->gpu_device : out->cpu_device);
        fflush(out->csv);
    }
}

/* ---- host data and the CPU paths ------------------------------------------------------------ */

typedef struct host_data {
    float *p0, *g;    /* initial parameters, gradients */
    float *p, *st[3]; /* working parameters and states */
    float *ref_p;     /* reference parameters after VALIDATION_STEPS steps */
    float *gpu_p;     /* GPU parameters downloaded after VALIDATION_STEPS steps */
} host_data;

static void host_free(host_data *h)
{
    free(h->p0);
    free(h->g);
    free(h->p);
    for (int i = 0; i < 3; i++)
        free(h->st[i]);
    free(h->ref_p);
    free(h->gpu_p);
    memset(h, 0, sizeof *h);
}

static bool host_alloc(host_data *h, const tensor_list *L, bool gpu)
{
    size_t bytes = L->padded * sizeof(float);
    memset(h, 0, sizeof *h);
    h->p0 = xmalloc(bytes);
    h->g = xmalloc(bytes);
    h->p = xmalloc(bytes);
    h->ref_p = xmalloc(bytes);
    bool ok = h->p0 && h->g && h->p && h->ref_p;
    for (int i = 0; i < 3; i++)
        ok = ok && (h->st[i] = xmalloc(bytes));
    if (gpu)
        ok = ok && (h->gpu_p = xmalloc(bytes));
    if (!ok) {
        host_free(h);
        return false;
    }
    uint64_t s = 0xC0FFEEull ^ (uint64_t)L->total;
    for (size_t i = 0; i < L->padded; i++)
        h->p0[i] = rng_float(&s);
    for (size_t i = 0; i < L->padded; i++)
        h->g[i] = rng_float(&s);
    return true;
}

static fopt_status cpu_step(const bench_variant *v, bool ref, int64_t step, const tensor_list *L,
                            host_data *h)
{
    for (size_t t = 0; t < L->count; t++) {
        fopt_status st = bench_cpu_step(v, ref, step, L->offset[t], L->numel[t], h->p, h->g, h->st);
        if (st != FOPT_SUCCESS)
            return st;
    }
    return FOPT_SUCCESS;
}

/* Runs the reference (ref) or the fast CPU path from the initial data; times every step. After
 * VALIDATION_STEPS steps the reference keeps its parameters in ref_p and the fast path compares
 * with them. */
static void run_cpu(const bench_variant *v, bool ref, const tensor_list *L, host_data *h,
                    int max_steps, double budget, result *r)
{
    size_t bytes = L->padded * sizeof(float);
    memcpy(h->p, h->p0, bytes);
    for (int i = 0; i < 3; i++)
        memset(h->st[i], 0, bytes);
    double *times = calloc((size_t)max_steps + VALIDATION_STEPS, sizeof *times);
    if (!times)
        bench_die("out of host memory");
    int n = 0;
    double start = bench_now_s();
    for (int64_t step = 1;; step++) {
        double t0 = bench_now_s();
        fopt_status st = cpu_step(v, ref, step, L, h);
        double t1 = bench_now_s();
        if (st != FOPT_SUCCESS)
            bench_die("%s step failed: %s (%s)", ref ? "reference" : "CPU", fopt_status_string(st),
                fopt_last_error());
        times[n++] = t1 - t0;
        if (step == VALIDATION_STEPS) {
            if (ref)
                memcpy(h->ref_p, h->p, bytes);
            else
                r->max_err = max_rel_err(L, h->p, h->ref_p);
        }
        if (step >= VALIDATION_STEPS && (n >= max_steps || t1 - start > budget))
            break;
    }
    r->median_us = 1e6 * bench_median(times, n);
    r->max_err = ref ? 0.0 : r->max_err;
    free(times);
}

/* ---- GPU ------------------------------------------------------------------------------------ */

#define CUDA_CHECK(expr)                                                                    \
    do {                                                                                    \
        cudaError_t err_ = (expr);                                                          \
        if (err_ != cudaSuccess)                                                            \
            bench_die("%s failed at %s:%d: %s", #expr, __FILE__, __LINE__,                  \
                      cudaGetErrorString(err_));                                            \
    } while (0)

#define BENCH_CHECK(expr)                                                                   \
    do {                                                                                    \
        if ((expr) != 0)                                                                    \
            bench_die("%s failed: %s", #expr, bench_gpu_error());                           \
    } while (0)

typedef struct gpu_ctx {
    bool available;
    char why_not[256];
    int sms, mem_clock_khz, bus_bits;
    size_t l2_bytes, total_mem;
    cudaStream_t stream;
    cudaEvent_t *ev;
    int ev_pairs;
    float *flush_buf, *sink;
    size_t flush_n;
    bench_unfused *unfused;
} gpu_ctx;

static void gpu_init(gpu_ctx *g, output *out, bool cpu_only)
{
    memset(g, 0, sizeof *g);
    if (cpu_only) {
        snprintf(g->why_not, sizeof g->why_not, "--cpu-only given");
        return;
    }
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess || count == 0) {
        snprintf(g->why_not, sizeof g->why_not, "no CUDA device (cudaGetDeviceCount: %s)",
                 err != cudaSuccess ? cudaGetErrorString(err) : "0 devices");
        (void)cudaGetLastError();
        return;
    }
    int dev = 0;
    CUDA_CHECK(cudaSetDevice(dev));
    struct cudaDeviceProp prop;
    CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
    int l2 = 0;
    CUDA_CHECK(cudaDeviceGetAttribute(&g->sms, cudaDevAttrMultiProcessorCount, dev));
    CUDA_CHECK(cudaDeviceGetAttribute(&g->mem_clock_khz, cudaDevAttrMemoryClockRate, dev));
    CUDA_CHECK(cudaDeviceGetAttribute(&g->bus_bits, cudaDevAttrGlobalMemoryBusWidth, dev));
    CUDA_CHECK(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, dev));
    g->l2_bytes = (size_t)l2;
    g->total_mem = prop.totalGlobalMem;
    snprintf(out->gpu_device, sizeof out->gpu_device, "%.200s", prop.name);
    sanitize(out->gpu_device);
    /* a blocking stream: it orders after the plain cudaMemcpy/cudaMemset calls below */
    CUDA_CHECK(cudaStreamCreate(&g->stream));
    g->flush_n = 3 * g->l2_bytes / sizeof(float);
    if (g->flush_n < ((size_t)32 << 20) / sizeof(float))
        g->flush_n = ((size_t)32 << 20) / sizeof(float);
    CUDA_CHECK(cudaMalloc((void **)&g->flush_buf, g->flush_n * sizeof(float)));
    CUDA_CHECK(cudaMemset(g->flush_buf, 0x3c, g->flush_n * sizeof(float))); /* ~0.0117f each */
    CUDA_CHECK(cudaMalloc((void **)&g->sink, sizeof(float)));
    BENCH_CHECK(bench_unfused_create(&g->unfused, g->stream));
    g->available = true;
}

static void gpu_events(gpu_ctx *g, int pairs)
{
    if (pairs <= g->ev_pairs)
        return;
    cudaEvent_t *ev = realloc(g->ev, 2 * (size_t)pairs * sizeof *ev);
    if (!ev)
        bench_die("out of host memory");
    g->ev = ev;
    for (int i = 2 * g->ev_pairs; i < 2 * pairs; i++)
        CUDA_CHECK(cudaEventCreate(&g->ev[i]));
    g->ev_pairs = pairs;
}

static void gpu_shutdown(gpu_ctx *g)
{
    if (!g->available)
        return;
    bench_unfused_destroy(g->unfused);
    for (int i = 0; i < 2 * g->ev_pairs; i++)
        cudaEventDestroy(g->ev[i]);
    free(g->ev);
    cudaFree(g->flush_buf);
    cudaFree(g->sink);
    cudaStreamDestroy(g->stream);
}

/* Device-to-device copy bandwidth in GB/s, counting bytes read plus bytes written. */
static double measure_copy_bw(gpu_ctx *g, size_t *bytes_out)
{
    size_t free_b = 0, total_b = 0;
    CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
    size_t bytes = (size_t)1 << 30;
    while (bytes > ((size_t)64 << 20) && 2 * bytes > free_b / 2)
        bytes /= 2;
    void *src, *dst;
    CUDA_CHECK(cudaMalloc(&src, bytes));
    CUDA_CHECK(cudaMalloc(&dst, bytes));
    CUDA_CHECK(cudaMemset(src, 0x3c, bytes));
    enum { REPS = 15 };
    gpu_events(g, REPS);
    for (int i = 0; i < 3; i++)
        CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, g->stream));
    for (int i = 0; i < REPS; i++) {
        CUDA_CHECK(cudaEventRecord(g->ev[2 * i], g->stream));
        CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, g->stream));
        CUDA_CHECK(cudaEventRecord(g->ev[2 * i + 1], g->stream));
    }
    CUDA_CHECK(cudaStreamSynchronize(g->stream));
    double t[REPS];
    for (int i = 0; i < REPS; i++) {
        float ms = 0;
        CUDA_CHECK(cudaEventElapsedTime(&ms, g->ev[2 * i], g->ev[2 * i + 1]));
        t[i] = ms * 1e-3;
    }
    CUDA_CHECK(cudaFree(src));
    CUDA_CHECK(cudaFree(dst));
    *bytes_out = bytes;
    return 2.0 * (double)bytes / bench_median(t, REPS) * 1e-9;
}

typedef int (*gpu_step_fn)(void *ctx);

typedef struct fused_ctx {
    fopt_optimizer *opt;
    cudaStream_t stream;
} fused_ctx;

static int fused_step(void *p)
{
    fused_ctx *c = p;
    fopt_status st = fopt_step(c->opt, c->stream);
    if (st != FOPT_SUCCESS)
        bench_die("fopt_step: %s (%s)", fopt_status_string(st), fopt_last_error());
    return 0;
}

typedef struct unfused_ctx {
    const bench_variant *v;
    const tensor_list *L;
    float *p, *g, *st[3];
    int64_t step;
    bench_unfused *u;
} unfused_ctx;

static int unfused_step(void *p)
{
    unfused_ctx *c = p;
    c->step++;
    for (size_t t = 0; t < c->L->count; t++) {
        size_t off = c->L->offset[t], n = c->L->numel[t];
        float *s[3];
        bench_state_ptrs(c->v, c->st, off, s);
        int rc = c->v->is_adam ? bench_unfused_adam_step(c->u, &c->v->adam, c->step, n, c->p + off,
                                                         c->g + off, s[0], s[1], s[2])
                               : bench_unfused_rmsprop_step(c->u, &c->v->rms, n, c->p + off,
                                                            c->g + off, s[0], s[1], s[2]);
        if (rc)
            bench_die("unfused step: %s", bench_gpu_error());
    }
    return 0;
}

/* Warm-up, then `reps` (at most) steps each between its own event pair, each preceded by an L2
 * flush (flush) or a short spin. Median device time and median host enqueue time, in us. */
static void gpu_time(gpu_ctx *g, gpu_step_fn fn, void *ctx, bool flush, int max_reps,
                     double budget, result *r)
{
    gpu_events(g, max_reps > 1 ? max_reps : 1);
    /* warm-up, and an estimate of one step for the repetition count */
    enum { WARM = 3 };
    CUDA_CHECK(cudaEventRecord(g->ev[0], g->stream));
    for (int i = 0; i < WARM; i++)
        fn(ctx);
    CUDA_CHECK(cudaEventRecord(g->ev[1], g->stream));
    CUDA_CHECK(cudaStreamSynchronize(g->stream));
    float ms = 0;
    CUDA_CHECK(cudaEventElapsedTime(&ms, g->ev[0], g->ev[1]));
    double est = ms * 1e-3 / WARM + (flush ? 60e-6 : 20e-6);
    int reps = (int)(budget / est);
    reps = reps < 5 ? 5 : reps > max_reps ? max_reps : reps;
    gpu_events(g, reps);

    double *dev = calloc((size_t)reps, sizeof *dev), *host = calloc((size_t)reps, sizeof *host);
    if (!dev || !host)
        bench_die("out of host memory");
    for (int i = 0; i < reps; i++) {
        if (flush)
            BENCH_CHECK(bench_l2_flush(g->flush_buf, g->flush_n, g->sink, g->stream));
        else
            BENCH_CHECK(bench_spin(20000, g->stream));
        CUDA_CHECK(cudaEventRecord(g->ev[2 * i], g->stream));
        double t0 = bench_now_s();
        fn(ctx);
        host[i] = bench_now_s() - t0;
        CUDA_CHECK(cudaEventRecord(g->ev[2 * i + 1], g->stream));
    }
    CUDA_CHECK(cudaStreamSynchronize(g->stream));
    CUDA_CHECK(cudaGetLastError());
    for (int i = 0; i < reps; i++) {
        CUDA_CHECK(cudaEventElapsedTime(&ms, g->ev[2 * i], g->ev[2 * i + 1]));
        dev[i] = ms * 1e-3;
    }
    r->median_us = 1e6 * bench_median(dev, reps);
    r->host_us = 1e6 * bench_median(host, reps);
    free(dev);
    free(host);
}

/* Device buffers of one case: parameters, gradients, and the unfused baseline's states. */
typedef struct gpu_case {
    float *p0, *p, *g, *st[3]; /* p0: the initial parameters, to restart each implementation */
} gpu_case;

static size_t gpu_case_bytes(const tensor_list *L)
{
    /* p0, p, g, 3 unfused states, fusedopt's states (at most 3), unfused scratch (2) */
    return L->padded * sizeof(float) * 9 + L->max_numel * sizeof(float) * 2 + ((size_t)64 << 20);
}

static void gpu_case_alloc(gpu_case *d, const tensor_list *L, const host_data *h)
{
    size_t bytes = L->padded * sizeof(float);
    memset(d, 0, sizeof *d);
    CUDA_CHECK(cudaMalloc((void **)&d->p0, bytes));
    CUDA_CHECK(cudaMalloc((void **)&d->p, bytes));
    CUDA_CHECK(cudaMalloc((void **)&d->g, bytes));
    for (int i = 0; i < 3; i++)
        CUDA_CHECK(cudaMalloc((void **)&d->st[i], bytes));
    CUDA_CHECK(cudaMemcpy(d->g, h->g, bytes, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(d->p0, h->p0, bytes, cudaMemcpyHostToDevice));
}

static void gpu_case_free(gpu_case *d)
{
    CUDA_CHECK(cudaFree(d->p0));
    CUDA_CHECK(cudaFree(d->p));
    CUDA_CHECK(cudaFree(d->g));
    for (int i = 0; i < 3; i++)
        CUDA_CHECK(cudaFree(d->st[i]));
}

/* VALIDATION_STEPS steps from the initial parameters, compared with the reference; then timed. */
static void run_gpu(gpu_ctx *g, gpu_step_fn fn, void *ctx, const tensor_list *L, host_data *h,
                    gpu_case *d, bool flush, const options *o, result *r)
{
    size_t bytes = L->padded * sizeof(float);
    for (int i = 0; i < VALIDATION_STEPS; i++)
        fn(ctx);
    CUDA_CHECK(cudaStreamSynchronize(g->stream));
    CUDA_CHECK(cudaGetLastError());
    CUDA_CHECK(cudaMemcpy(h->gpu_p, d->p, bytes, cudaMemcpyDeviceToHost));
    r->max_err = max_rel_err(L, h->gpu_p, h->ref_p);
    gpu_time(g, fn, ctx, flush, o->reps, o->case_budget, r);
}

static void gpu_fused(gpu_ctx *g, const bench_variant *v, const tensor_list *L, host_data *h,
                      gpu_case *d, bool flush, const options *o, result *r)
{
    size_t bytes = L->padded * sizeof(float);
    CUDA_CHECK(cudaMemcpyAsync(d->p, d->p0, bytes, cudaMemcpyDeviceToDevice, g->stream));
    fopt_tensor *t = calloc(L->count, sizeof *t);
    if (!t)
        bench_die("out of host memory");
    for (size_t i = 0; i < L->count; i++)
        t[i] = (fopt_tensor){d->p + L->offset[i], d->g + L->offset[i], L->numel[i], FOPT_FLOAT32, 0};
    fused_ctx c = {NULL, g->stream};
    fopt_status st = v->is_adam ? fopt_adam_create(&c.opt, &v->adam, t, L->count)
                                : fopt_rmsprop_create(&c.opt, &v->rms, t, L->count);
    free(t);
    if (st != FOPT_SUCCESS)
        bench_die("creating the %s optimizer: %s (%s)", v->name, fopt_status_string(st),
            fopt_last_error());
    run_gpu(g, fused_step, &c, L, h, d, flush, o, r);
    fopt_destroy(c.opt);
}

static void gpu_unfused(gpu_ctx *g, const bench_variant *v, const tensor_list *L, host_data *h,
                        gpu_case *d, bool flush, const options *o, result *r)
{
    size_t bytes = L->padded * sizeof(float);
    CUDA_CHECK(cudaMemcpyAsync(d->p, d->p0, bytes, cudaMemcpyDeviceToDevice, g->stream));
    for (int i = 0; i < 3; i++)
        CUDA_CHECK(cudaMemsetAsync(d->st[i], 0, bytes, g->stream));
    BENCH_CHECK(bench_unfused_reserve(g->unfused, L->max_numel));
    unfused_ctx c = {v, L, d->p, d->g, {d->st[0], d->st[1], d->st[2]}, 0, g->unfused};
    /* a list of thousands of tensors makes tens of thousands of launches per step */
    run_gpu(g, unfused_step, &c, L, h, d, flush, o, r);
}

/* ---- main ----------------------------------------------------------------------------------- */

typedef struct summary_item {
    double worst_pct_big_adam; /* fp32 Adam, single tensor >= 2^26: the lowest % of copy bw */
    bool have_big_adam;
    double gpt2_pct;
    bool have_gpt2;
    double small_us, small_host_us, small_over_us;
    bool have_small;
} summary_item;

int main(int argc, char **argv)
{
    bench_variant vars[BENCH_MAX_VARIANTS];
    int nvars = bench_make_variants(vars);
    options o;
    parse_options(argc, argv, &o, vars, nvars);
    double t_start = bench_now_s();

    output out;
    memset(&out, 0, sizeof out);
    char model[128];
    bench_cpu_model(model, sizeof model, "cpu");
    snprintf(out.cpu_device, sizeof out.cpu_device, "%s (%d threads %s)", model,
             fopt_cpu_threads(), fopt_cpu_isa());
    sanitize(out.cpu_device);

    gpu_ctx g;
    gpu_init(&g, &out, o.cpu_only);
    if (!g.available && !o.max_log2_set)
        o.max_log2 = 22; /* keeps a CPU-only run short */

    printf("fopt_bench: fusedopt %s, fp32\n", fopt_version());
    printf("CPU: %s\n", out.cpu_device);
    if (g.available) {
        size_t copy_bytes = 0;
        out.copy_gbs = measure_copy_bw(&g, &copy_bytes);
        double theo = 2.0 * g.mem_clock_khz * 1e3 * g.bus_bits / 8 * 1e-9;
        printf("GPU: %s, %d SMs, L2 %.0f MB, %.1f GiB, memory clock %.0f MHz x %d bits "
               "(theoretical %.0f GB/s)\n",
               out.gpu_device, g.sms, g.l2_bytes / 1e6, g.total_mem / 1073741824.0,
               g.mem_clock_khz / 1e3, g.bus_bits, theo);
        printf("copy bandwidth: %.1f GB/s (cudaMemcpy device to device of %zu MiB, read + write, "
               "median of 15)\n",
               out.copy_gbs, copy_bytes >> 20);
    } else {
        printf("GPU: none - %s. GPU columns (fused, unfused_cublas) SKIPPED; CPU paths only.\n",
               g.why_not);
    }
    printf("max_rel_err: after %d steps from the same data, per tensor max|p - p_ref| / "
           "max|p_ref| (worst tensor)\n",
           VALIDATION_STEPS);
    printf("bytes: the minimum an fp32 step moves (Adam 28 B/elem, AMSGrad 36, RMSprop 20, "
           "momentum/centered 28, both 36), also for unfused_cublas\n\n");

    if (o.csv) {
        out.csv = bench_csv_open(o.csv);
    }

    /* cases: the lists first, then single tensors from the largest down, so that the target
     * cases run first when --time-budget cuts a run short */
    int ncases = 0;
    tensor_list cases[64];
    if (o.lists) {
        list_gpt2(&cases[ncases++]);
        list_small(&cases[ncases++]);
    }
    if (o.quick && g.available && o.max_log2 >= 26 && o.min_log2 <= 26 &&
        (26 - o.min_log2) % o.log2_step != 0)
        list_single(&cases[ncases++], 26); /* the target size, also in a quick run */
    int top = o.max_log2 - (o.max_log2 - o.min_log2) % o.log2_step;
    for (int k = top; k >= o.min_log2 && ncases < 64; k -= o.log2_step)
        list_single(&cases[ncases++], k);

    int nsel = 0;
    for (int i = 0; i < nvars; i++)
        nsel += o.selected[i];
    int total_items = ncases * nsel, done = 0;
    bool tty = isatty(STDERR_FILENO);
    bool budget_hit = false;
    double last_progress = t_start;
    summary_item sum;
    memset(&sum, 0, sizeof sum);
    sum.worst_pct_big_adam = INFINITY;

    table_header();
    for (int c = 0; c < ncases && !budget_hit; c++) {
        tensor_list *L = &cases[c];
        host_data h;
        if (!host_alloc(&h, L, g.available)) {
            printf("# %s: skipped, not enough host memory for %zu elements\n", L->name, L->total);
            done += nsel;
            continue;
        }
        bool gpu_ok = g.available;
        gpu_case d;
        if (gpu_ok) {
            size_t free_b = 0, total_b = 0;
            CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
            if (gpu_case_bytes(L) > free_b) {
                printf("# %s: GPU rows skipped, needs %.1f GB of device memory, %.1f GB free\n",
                       L->name, gpu_case_bytes(L) / 1e9, free_b / 1e9);
                gpu_ok = false;
            } else {
                gpu_case_alloc(&d, L, &h);
            }
        }
        /* CPU steps are slow at large sizes: fewer of them, within a time budget */
        int cpu_reps = o.quick ? 5 : 20;
        double cpu_budget = o.quick ? 0.1 : 0.3;
        for (int vi = 0; vi < nvars; vi++) {
            if (!o.selected[vi])
                continue;
            const bench_variant *v = &vars[vi];
            int bpe = bench_bytes_per_elem(v);
            if (o.time_budget > 0 && bench_now_s() - t_start > o.time_budget) {
                budget_hit = true;
                break;
            }
            done++;
            if (tty) {
                fprintf(stderr, "\r[%3d/%3d] %-26s %-10s %6.0f s elapsed ", done, total_items,
                        v->name, L->name, bench_now_s() - t_start);
            } else if (bench_now_s() - last_progress > 15.0) {
                fprintf(stderr, "progress: %d/%d (%s %s), %.0f s elapsed\n", done, total_items,
                        v->name, L->name, bench_now_s() - t_start);
                last_progress = bench_now_s();
            }
            result ref = {"cpu_ref", NAN, NAN, NAN, false};
            result cpu = {"cpu", NAN, NAN, NAN, false};
            run_cpu(v, true, L, &h, cpu_reps, cpu_budget, &ref);
            run_cpu(v, false, L, &h, cpu_reps, cpu_budget, &cpu);
            result fused = {"fused", NAN, NAN, NAN, true};
            result unf = {"unfused_cublas", NAN, NAN, NAN, true};
            if (gpu_ok) {
                bool flush = (double)L->total * bpe < 4.0 * (double)g.l2_bytes;
                gpu_fused(&g, v, L, &h, &d, flush, &o, &fused);
                gpu_unfused(&g, v, L, &h, &d, flush, &o, &unf);
            }
            if (tty)
                fprintf(stderr, "\r%70s\r", "");
            if (gpu_ok) {
                emit(&out, v, L, &fused, cpu.median_us, ref.median_us);
                emit(&out, v, L, &unf, cpu.median_us, ref.median_us);
            }
            emit(&out, v, L, &cpu, cpu.median_us, ref.median_us);
            emit(&out, v, L, &ref, cpu.median_us, ref.median_us);

            if (gpu_ok && !strcmp(v->name, "adam")) {
                double gbs = (double)L->total * bpe / (fused.median_us * 1e-6) * 1e-9;
                double pct = 100.0 * gbs / out.copy_gbs;
                if (L->count == 1 && L->total >= ((size_t)1 << 26)) {
                    sum.have_big_adam = true;
                    if (pct < sum.worst_pct_big_adam)
                        sum.worst_pct_big_adam = pct;
                } else if (!strcmp(L->name, "gpt2_small")) {
                    sum.have_gpt2 = true;
                    sum.gpt2_pct = pct;
                } else if (!strcmp(L->name, "small_10k")) {
                    sum.have_small = true;
                    sum.small_us = fused.median_us;
                    sum.small_host_us = fused.host_us;
                    sum.small_over_us =
                        fused.median_us - (double)L->total * bpe / (out.copy_gbs * 1e9) * 1e6;
                }
            }
        }
        printf("\n");
        if (gpu_ok)
            gpu_case_free(&d);
        host_free(&h);
    }
    if (budget_hit)
        printf("# time budget of %.0f s reached: the remaining cases were not run\n",
               o.time_budget);

    printf("== summary (%.0f s) ==\n", bench_now_s() - t_start);
    if (!g.available) {
        printf("GPU rows SKIPPED: %s. The GPU figures are still to be taken on a GPU machine "
               "(scripts/gpu_check.sh).\n",
               g.why_not);
    } else {
        printf("device: %s, copy bandwidth %.1f GB/s\n", out.gpu_device, out.copy_gbs);
        if (sum.have_big_adam)
            printf("target fp32 Adam, one tensor >= 2^26: %.1f%% of copy bandwidth (>= 90%%): %s\n",
                   sum.worst_pct_big_adam, sum.worst_pct_big_adam >= 90.0 ? "MET" : "MISSED");
        if (sum.have_gpt2)
            printf("target fp32 Adam, GPT-2 small list: %.1f%% of copy bandwidth (>= 85%%): %s\n",
                   sum.gpt2_pct, sum.gpt2_pct >= 85.0 ? "MET" : "MISSED");
        if (sum.have_small)
            printf("fp32 Adam, 10,000 small tensors: %.1f us per step on the device, %.1f us over "
                   "the copy-bandwidth time of its bytes; host enqueue %.1f us\n",
                   sum.small_us, sum.small_over_us, sum.small_host_us);
    }
    if (out.csv) {
        fclose(out.csv);
        printf("CSV: %s\n", o.csv);
    }
    for (int c = 0; c < ncases; c++)
        list_free(&cases[c]);
    gpu_shutdown(&g);
    return 0;
}
