/* fopt_bench's implementations over one case in one mode (bench/run.h). */
#define _POSIX_C_SOURCE 200809L
#include "run.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef FOPT_DEVICE_EMULATION
#include "bench_gpu.h"
#endif

/* Device steps slower than this are timed by the validation steps alone (their median). */
#define SLOW_STEP_US 50000.0

/* ---- host data ------------------------------------------------------------------------------ */

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
    float u = 2.0f * bench_rng_unit(bench_rng_next(s)) - 1.0f;
    return u == 0.0f ? 0.5f : u;
}

/* n values of dtype dt: a table of random values (a prime period, so that no tensor boundary
 * lines up with it) repeated; generating every element would cost seconds at 2^28. */
static void fill_random(void *dst, fopt_dtype dt, size_t n, uint64_t seed)
{
    const size_t period = 1048573, es = bench_dtype_size(dt);
    size_t t = n < period ? n : period;
    for (size_t i = 0; i < t; i++)
        bench_store(dt, dst, i, rng_float(&seed));
    for (size_t i = t; i < n; i += t) {
        size_t len = n - i < t ? n - i : t;
        memcpy((char *)dst + i * es, dst, len * es);
    }
}

void case_host_free(case_host *h)
{
    void *all[] = {h->p0, h->g, h->master0, h->p, h->master, h->st[0], h->st[1], h->st[2], h->wp, h->wg,
                   h->wmaster, h->wst[0], h->wst[1], h->wst[2], h->dp, h->dmaster, h->dbuf, h->ref_view[0],
                   h->ref_view[1], h->view[0], h->view[1], h->tensors, h->wtensors};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        free(all[i]);
    memset(h, 0, sizeof *h);
}

/* Tensor list over arrays laid out at `off` (elements), `len` elements each. */
static void host_tensors(const case_host *h, fopt_host_tensor *t, const size_t *off, const size_t *len, void *p,
                         const void *g, void *master, void *const st[3], unsigned states)
{
    for (size_t k = 0; k < h->c->count; k++) {
        t[k] = (fopt_host_tensor){.param = (char *)p + off[k] * h->ps,
                                  .grad = (const char *)g + off[k] * h->ps,
                                  .numel = len[k],
                                  .dtype = h->m->dtype,
                                  .master = master ? (char *)master + off[k] * h->ms : NULL};
        for (int j = 0; j < 3; j++)
            t[k].state[j] = (states >> j & 1u) ? (char *)st[j] + off[k] * h->ss : NULL;
    }
}

bool case_host_init(case_host *h, const bench_case *c, const bench_mode *m)
{
    memset(h, 0, sizeof *h);
    h->c = c;
    h->m = m;
    h->ps = bench_dtype_size(m->dtype);
    h->ms = bench_master_size(m);
    h->ss = bench_dtype_size(m->precision.state_dtype);
    const size_t n = c->padded, w = c->wpadded;
    bool ok = (h->p0 = xmalloc(n * h->ps)) && (h->g = xmalloc(n * h->ps)) && (h->p = xmalloc(n * h->ps)) &&
              (h->wp = xmalloc(w * h->ps)) && (h->wg = xmalloc(w * h->ps)) && (h->dp = xmalloc(w * h->ps));
    for (int k = 0; k < 3 && ok; k++)
        ok = (h->st[k] = xmalloc(n * h->ss)) && (h->wst[k] = xmalloc(w * h->ss));
    if (ok && h->ms) {
        ok = (h->master0 = xmalloc(n * h->ms)) && (h->master = xmalloc(n * h->ms)) &&
             (h->wmaster = xmalloc(w * h->ms)) && (h->dmaster = xmalloc(w * h->ms)) &&
             (h->dbuf = xmalloc(c->max_numel * h->ms));
    }
    for (int k = 0; k < 2 && ok; k++)
        ok = (h->ref_view[k] = xmalloc(w * sizeof(float))) && (h->view[k] = xmalloc(w * sizeof(float)));
    ok = ok && (h->tensors = calloc(c->count, sizeof *h->tensors)) &&
         (h->wtensors = calloc(c->count, sizeof *h->wtensors));
    if (!ok) {
        case_host_free(h);
        return false;
    }
    fill_random(h->p0, m->dtype, n, 0xC0FFEEull ^ (uint64_t)c->total);
    fill_random(h->g, m->dtype, n, 0xBADC0DEull ^ (uint64_t)c->total);
    if (bench_mode_master(m) == BENCH_MASTER_F32)
        bench_to_float(m->dtype, h->p0, h->master0, n);
    else if (h->master0)
        memset(h->master0, 0, n * h->ms); /* remainders of exactly representable masters */
    for (size_t k = 0; k < c->count; k++)
        memcpy((char *)h->wg + c->woff[k] * h->ps, (char *)h->g + c->offset[k] * h->ps, c->win[k] * h->ps);

    /* the global norm of the unscaled grads, for max_grad_norm (every *_ex step then clips) */
    host_tensors(h, h->tensors, c->offset, c->numel, h->p, h->g, NULL, h->st, 0);
    float scale = BENCH_GRAD_SCALE;
    fopt_status st = fopt_grad_sq_sum_cpu_multi(h->tensors, c->count, &scale, &h->sq_sum);
    if (st != FOPT_SUCCESS)
        bench_die("fopt_grad_sq_sum_cpu_multi: %s (%s)", fopt_status_string(st), fopt_last_error());
    h->max_norm = 0.5 * sqrt(h->sq_sum);
    if (!(h->max_norm > 0))
        h->max_norm = 1.0;
    return true;
}

/* ---- views and comparison ------------------------------------------------------------------- */

/* The params (upcast) and masters of windowed arrays (layout c->woff) into view[0], view[1]. */
static void take_views(const case_host *h, const void *wparam, const void *wmaster, float *view[2])
{
    const bench_case *c = h->c;
    bool master = bench_mode_master(h->m) != BENCH_MASTER_NONE;
    for (size_t k = 0; k < c->count; k++)
        for (size_t i = c->woff[k]; i < c->woff[k] + c->win[k]; i++) {
            view[0][i] = bench_load(h->m->dtype, wparam, i);
            if (master)
                view[1][i] = bench_master_value(h->m, wparam, wmaster, i);
        }
}

/* The windows of whole-case arrays (layout c->offset) into windowed arrays (layout c->woff). */
static void to_windows(const case_host *h, const void *src, void *dst, size_t es)
{
    const bench_case *c = h->c;
    if (c->whole) {
        memcpy(dst, src, c->padded * es);
        return;
    }
    for (size_t k = 0; k < c->count; k++)
        memcpy((char *)dst + c->woff[k] * es, (const char *)src + c->offset[k] * es, c->win[k] * es);
}

/* Worst per-tensor relative difference of view from ref_view; NaN if any is NaN. */
static double compare_views(const case_host *h)
{
    const bench_case *c = h->c;
    int nviews = bench_mode_master(h->m) != BENCH_MASTER_NONE ? 2 : 1;
    double worst = 0.0;
    for (int v = 0; v < nviews; v++)
        for (size_t k = 0; k < c->count; k++) {
            double e = bench_max_rel_err(h->view[v] + c->woff[k], h->ref_view[v] + c->woff[k], c->win[k]);
            if (isnan(e))
                return NAN;
            if (e > worst)
                worst = e;
        }
    return worst;
}

/* The grad norm and found_inf of a step-option run against the reference's. */
static double compare_stats(const case_host *h, float norm, int32_t found_inf)
{
    if (found_inf != 0 || isnan(norm))
        return NAN;
    return fabs((double)norm - (double)h->ref_norm) / fabs((double)h->ref_norm);
}

static double max_nan(double a, double b) { return isnan(a) || isnan(b) ? NAN : a > b ? a : b; }

/* ---- the CPU paths -------------------------------------------------------------------------- */

typedef struct cpu_stats {
    float norm;
    int32_t found_inf;
} cpu_stats;

static void cpu_options(const case_host *h, run_kind kind, bool external, cpu_stats *out, fopt_step_options *o,
                        float *scale)
{
    memset(o, 0, sizeof *o);
    if (kind != RUN_STEP_EX)
        return;
    *scale = BENCH_GRAD_SCALE;
    o->grad_scale = scale;
    o->max_grad_norm = h->max_norm;
    o->grad_norm = &out->norm;
    o->found_inf = &out->found_inf;
    o->grad_sq_sum = external ? &h->sq_sum : NULL;
}

static const char *const ref_impl[2] = {"cpu_ref", "cpu_ref_ex"};
static const char *const cpu_impl[2] = {"cpu", "cpu_ex"};

static void row_init(bench_row *row, const case_host *h, const fopt_variant *v, const char *impl, int bytes)
{
    *row = (bench_row){v, h->m, h->c, impl, bytes, false, false, NAN, NAN, NAN};
}

/* Steps the reference or the fast CPU path over `tensors` with kind's options (`external`: the
 * whole case's sum of squares passed in): VALIDATION_STEPS steps, after the last of which the
 * result is checked (the reference's kept as the one every path is compared with, the fast path's
 * compared with it into row->max_err), then on while timed and under rc->cpu_reps steps and
 * rc->cpu_budget seconds; timed, row->median_us gets the median step. */
static void cpu_steps(case_host *h, const fopt_variant *v, run_kind kind, bool reference,
                      const fopt_host_tensor *tensors, bool external, bool timed, const run_config *rc,
                      bench_row *row)
{
    cpu_stats stats = {NAN, -1};
    fopt_step_options opts;
    float scale;
    cpu_options(h, kind, external, &stats, &opts, &scale);
    const int max_steps = rc->cpu_reps > VALIDATION_STEPS ? rc->cpu_reps : VALIDATION_STEPS;
    double *times = calloc((size_t)max_steps, sizeof *times);
    if (!times)
        bench_die("out of host memory");
    int n = 0;
    double start = bench_now_s();
    for (int64_t step = 1;; step++) {
        double t0 = bench_now_s();
        fopt_status st = bench_cpu_multi(v, h->m, reference, step, tensors, h->c->count, &opts);
        double t1 = bench_now_s();
        if (st != FOPT_SUCCESS)
            bench_die("%s %s %s step: %s (%s)", reference ? "reference" : "CPU", v->bench_name, h->m->name,
                      fopt_status_string(st), fopt_last_error());
        times[n++] = t1 - t0;
        if (step == VALIDATION_STEPS && reference) {
            take_views(h, h->wp, h->wmaster, h->ref_view);
            h->ref_norm = stats.norm;
            if (kind == RUN_STEP_EX && stats.found_inf != 0)
                bench_die("reference %s %s: found_inf %d on finite grads", v->bench_name, h->m->name,
                          stats.found_inf);
        } else if (step == VALIDATION_STEPS) {
            to_windows(h, h->p, h->dp, h->ps);
            if (h->ms)
                to_windows(h, h->master, h->dmaster, h->ms);
            take_views(h, h->dp, h->dmaster, h->view);
            row->max_err = compare_views(h);
            if (kind == RUN_STEP_EX)
                row->max_err = max_nan(row->max_err, compare_stats(h, stats.norm, stats.found_inf));
        }
        if (step >= VALIDATION_STEPS && (!timed || n >= max_steps || t1 - start > rc->cpu_budget))
            break;
    }
    if (timed)
        row->median_us = 1e6 * bench_median(times, n);
    free(times);
}

void run_reference(case_host *h, const fopt_variant *v, run_kind kind, const run_config *rc, bench_row *row)
{
    const bench_case *c = h->c;
    const unsigned states = fopt_variant_states(v);
    row_init(row, h, v, ref_impl[kind], bench_bytes_per_elem(v, h->m, kind == RUN_STEP_EX));
    row->reference = true;
    to_windows(h, h->p0, h->wp, h->ps);
    if (h->ms)
        to_windows(h, h->master0, h->wmaster, h->ms);
    for (int k = 0; k < 3; k++)
        if (states >> k & 1u)
            memset(h->wst[k], 0, c->wpadded * h->ss);
    host_tensors(h, h->wtensors, c->woff, c->win, h->wp, h->wg, h->ms ? h->wmaster : NULL, h->wst, states);
    cpu_steps(h, v, kind, true, h->wtensors, !c->whole, c->whole && rc->cpu_rows, rc, row);
    row->max_err = 0.0;
}

void run_cpu(case_host *h, const fopt_variant *v, run_kind kind, const run_config *rc, bench_row *row)
{
    const bench_case *c = h->c;
    const unsigned states = fopt_variant_states(v);
    row_init(row, h, v, cpu_impl[kind], bench_bytes_per_elem(v, h->m, kind == RUN_STEP_EX));
    memcpy(h->p, h->p0, c->padded * h->ps);
    if (h->ms)
        memcpy(h->master, h->master0, c->padded * h->ms);
    for (int k = 0; k < 3; k++)
        if (states >> k & 1u)
            memset(h->st[k], 0, c->padded * h->ss);
    host_tensors(h, h->tensors, c->offset, c->numel, h->p, h->g, h->ms ? h->master : NULL, h->st, states);
    cpu_steps(h, v, kind, false, h->tensors, false, rc->cpu_rows, rc, row);
}

/* ---- device data ---------------------------------------------------------------------------- */

size_t case_dev_bytes(const bench_case *c, const bench_mode *m, bool unfused)
{
    size_t n = c->padded, ps = bench_dtype_size(m->dtype), ss = bench_dtype_size(m->precision.state_dtype);
    size_t bytes = 3 * n * ps                 /* p0, p, g */
                   + 3 * n * ss + n * bench_master_size(m) /* the optimizer's states and master */
                   + ((size_t)64 << 20);     /* tables, work memory, slack */
    if (unfused)
        bytes += 3 * n * sizeof(float) + 2 * c->max_numel * sizeof(float); /* states, scratch */
    return bytes;
}

void case_dev_init(case_dev *d, bench_gpu *g, const case_host *h, bool unfused)
{
    memset(d, 0, sizeof *d);
    const size_t bytes = h->c->padded * h->ps;
    DEV_CHECK(fopt_dev_malloc(&d->p0, bytes));
    DEV_CHECK(fopt_dev_malloc(&d->p, bytes));
    DEV_CHECK(fopt_dev_malloc(&d->g, bytes));
    DEV_CHECK(fopt_dev_malloc(&d->scalars, 16));
    if (unfused)
        for (int k = 0; k < 3; k++)
            DEV_CHECK(fopt_dev_malloc((void **)&d->st[k], h->c->padded * sizeof(float)));
    DEV_CHECK(fopt_dev_memcpy(d->p0, h->p0, bytes));
    DEV_CHECK(fopt_dev_memcpy(d->g, h->g, bytes));
    float scale = BENCH_GRAD_SCALE;
    DEV_CHECK(fopt_dev_memset(d->scalars, 0, 16));
    DEV_CHECK(fopt_dev_memcpy(d->scalars, &scale, sizeof scale));
    /* synchronous copies from pageable memory may still be in flight on the device: finish them
     * before the benchmark's (non-blocking) stream uses the buffers */
    DEV_CHECK(fopt_dev_synchronize());
    (void)g;
}

void case_dev_free(case_dev *d)
{
    DEV_CHECK(fopt_dev_free(d->p0));
    DEV_CHECK(fopt_dev_free(d->p));
    DEV_CHECK(fopt_dev_free(d->g));
    DEV_CHECK(fopt_dev_free(d->scalars));
    for (int k = 0; k < 3; k++)
        DEV_CHECK(fopt_dev_free(d->st[k]));
    memset(d, 0, sizeof *d);
}

/* Restores the initial params in stream order and waits for them. */
static void dev_reset_params(bench_gpu *g, const case_host *h, case_dev *d)
{
    DEV_CHECK(fopt_dev_memcpy_async(d->p, d->p0, h->c->padded * h->ps, g->stream));
    bench_gpu_sync(g);
}

/* Downloads the device params (and the optimizer's masters) on the windows and compares them
 * with the reference. */
static double dev_compare(bench_gpu *g, case_host *h, case_dev *d, fopt_optimizer *opt)
{
    const bench_case *c = h->c;
    bench_gpu_sync(g);
    if (c->whole) {
        DEV_CHECK(fopt_dev_memcpy(h->dp, d->p, c->padded * h->ps));
    } else {
        for (size_t k = 0; k < c->count; k++)
            DEV_CHECK(fopt_dev_memcpy((char *)h->dp + c->woff[k] * h->ps, (char *)d->p + c->offset[k] * h->ps,
                                      c->win[k] * h->ps));
    }
    if (h->ms) {
        for (size_t k = 0; k < c->count; k++) {
            fopt_status st = fopt_state_copy(opt, k, FOPT_SLOT_MASTER, h->dbuf, false);
            if (st != FOPT_SUCCESS)
                bench_die("fopt_state_copy(master of tensor %zu): %s (%s)", k, fopt_status_string(st),
                          fopt_last_error());
            memcpy((char *)h->dmaster + c->woff[k] * h->ms, h->dbuf, c->win[k] * h->ms);
        }
    }
    take_views(h, h->dp, h->dmaster, h->view);
    return compare_views(h);
}

/* ---- fusedopt on the device ----------------------------------------------------------------- */

typedef struct fused_ctx {
    fopt_optimizer *opt;
    const fopt_step_options *opts; /* NULL: fopt_step */
    fopt_dev_graph *graph;         /* set: replay it */
    cudaStream_t stream;
} fused_ctx;

static void fused_step(void *p)
{
    fused_ctx *c = p;
    if (c->graph) {
        DEV_CHECK(fopt_dev_graph_launch(c->graph, c->stream));
        return;
    }
    fopt_status st = c->opts ? fopt_step_ex(c->opt, c->opts, c->stream) : fopt_step(c->opt, c->stream);
    if (st != FOPT_SUCCESS)
        bench_die("%s: %s (%s)", c->opts ? "fopt_step_ex" : "fopt_step", fopt_status_string(st), fopt_last_error());
}

void run_fused(bench_gpu *g, case_host *h, case_dev *d, const fopt_variant *v, run_kind kind, bool graph,
               bool flush, const run_config *rc, bench_row *row)
{
    const bench_case *c = h->c;
    const char *impl = graph ? "fused_graph" : kind == RUN_STEP_EX ? "fused_ex" : "fused";
    row_init(row, h, v, impl, bench_bytes_per_elem(v, h->m, kind == RUN_STEP_EX));
    row->gpu = true;
    dev_reset_params(g, h, d);

    fopt_tensor *t = calloc(c->count, sizeof *t);
    if (!t)
        bench_die("out of host memory");
    for (size_t k = 0; k < c->count; k++)
        t[k] = (fopt_tensor){(char *)d->p + c->offset[k] * h->ps, (char *)d->g + c->offset[k] * h->ps, c->numel[k],
                             h->m->dtype, 0};
    fused_ctx ctx = {NULL, NULL, NULL, g->stream};
    fopt_status st;
    if (v->adam) {
        fopt_adam_config cfg = bench_adam_config(v, h->m, graph);
        st = fopt_adam_create(&ctx.opt, &cfg, t, c->count);
    } else {
        fopt_rmsprop_config cfg = bench_rmsprop_config(v, h->m, graph);
        st = fopt_rmsprop_create(&ctx.opt, &cfg, t, c->count);
    }
    free(t);
    if (st != FOPT_SUCCESS)
        bench_die("creating the %s optimizer (%s%s): %s (%s)", v->bench_name, h->m->name,
                  graph ? ", capturable" : "", fopt_status_string(st), fopt_last_error());

    fopt_step_options opts;
    memset(&opts, 0, sizeof opts);
    float *scalars = d->scalars;
    if (kind == RUN_STEP_EX) {
        opts.grad_scale = &scalars[0];
        opts.max_grad_norm = h->max_norm;
        opts.grad_norm = &scalars[1];
        opts.found_inf = (int32_t *)&scalars[2];
        DEV_CHECK(fopt_dev_memset_async(&scalars[1], 0xff, 2 * sizeof(float), g->stream)); /* NaN, -1 */
        ctx.opts = &opts;
    }
    if (graph) {
        DEV_CHECK(fopt_dev_capture_begin(g->stream));
        st = ctx.opts ? fopt_step_ex(ctx.opt, ctx.opts, g->stream) : fopt_step(ctx.opt, g->stream);
        fopt_dev_graph *gr = NULL;
        cudaError_t err = fopt_dev_capture_end(g->stream, &gr);
        if (st != FOPT_SUCCESS)
            bench_die("capturing fopt_step: %s (%s)", fopt_status_string(st), fopt_last_error());
        DEV_CHECK(err);
        ctx.graph = gr;
    }

    bench_timing tm;
    bench_gpu_run_timed(g, fused_step, &ctx, VALIDATION_STEPS, &tm);
    row->max_err = dev_compare(g, h, d, ctx.opt);
    if (kind == RUN_STEP_EX) {
        struct {
            float norm;
            int32_t found_inf;
        } out;
        DEV_CHECK(fopt_dev_memcpy(&out, &scalars[1], sizeof out));
        row->max_err = max_nan(row->max_err, compare_stats(h, out.norm, out.found_inf));
    }
    int64_t count = fopt_step_count(ctx.opt);
    if (count != VALIDATION_STEPS)
        bench_die("%s %s %s: step count %lld after %d steps", v->bench_name, h->m->name, impl, (long long)count,
                  VALIDATION_STEPS);

    if (tm.median_us < SLOW_STEP_US)
        bench_gpu_time(g, fused_step, &ctx, flush, false, rc->reps, rc->gpu_budget, &tm);
    row->median_us = tm.median_us;
    row->host_us = tm.host_us;
    fopt_dev_graph_destroy(ctx.graph);
    fopt_destroy(ctx.opt);
}

/* ---- the unfused baseline ------------------------------------------------------------------- */

#ifdef FOPT_DEVICE_EMULATION
void run_unfused(bench_gpu *g, void *u, case_host *h, case_dev *d, const fopt_variant *v, bool flush,
                 const run_config *rc, bench_row *row)
{
    (void)g, (void)u, (void)d, (void)flush, (void)rc;
    row_init(row, h, v, "unfused_cublas", 0);
    bench_die("internal: the unfused cuBLAS baseline does not exist on the emulated device");
}
#else
typedef struct unfused_ctx {
    const fopt_variant *v;
    const bench_case *c;
    float *p, *g, *st[3];
    int64_t step;
    bench_unfused *u;
} unfused_ctx;

static void unfused_step(void *p)
{
    unfused_ctx *c = p;
    c->step++;
    for (size_t t = 0; t < c->c->count; t++) {
        size_t off = c->c->offset[t], n = c->c->numel[t];
        float *s[3];
        for (int k = 0; k < 3; k++)
            s[k] = (fopt_variant_states(c->v) >> k & 1u) ? c->st[k] + off : NULL;
        int rc = c->v->adam ? bench_unfused_adam_step(c->u, &c->v->a, c->step, n, c->p + off, c->g + off, s[0],
                                                      s[1], s[2])
                            : bench_unfused_rmsprop_step(c->u, &c->v->r, n, c->p + off, c->g + off, s[0], s[1],
                                                         s[2]);
        if (rc)
            bench_die("unfused step: %s", bench_gpu_error());
    }
}

void run_unfused(bench_gpu *g, void *u, case_host *h, case_dev *d, const fopt_variant *v, bool flush,
                 const run_config *rc, bench_row *row)
{
    if (h->m->dtype != FOPT_FLOAT32 || h->m->precision.state_dtype != FOPT_FLOAT32)
        bench_die("internal: the unfused baseline is fp32 only");
    row_init(row, h, v, "unfused_cublas", bench_bytes_per_elem(v, h->m, false));
    row->gpu = true;
    size_t bytes = h->c->padded * sizeof(float);
    DEV_CHECK(fopt_dev_memcpy_async(d->p, d->p0, bytes, g->stream));
    for (int k = 0; k < 3; k++)
        DEV_CHECK(fopt_dev_memset_async(d->st[k], 0, bytes, g->stream));
    if (bench_unfused_reserve(u, h->c->max_numel))
        bench_die("unfused scratch: %s", bench_gpu_error());
    unfused_ctx c = {v, h->c, d->p, d->g, {d->st[0], d->st[1], d->st[2]}, 0, u};
    bench_timing tm;
    bench_gpu_run_timed(g, unfused_step, &c, VALIDATION_STEPS, &tm);
    row->max_err = dev_compare(g, h, d, NULL);
    /* a list of thousands of tensors makes tens of thousands of launches per step (~0.4 s on an
     * H200): the validation steps are its timing */
    if (tm.median_us < SLOW_STEP_US)
        bench_gpu_time(g, unfused_step, &c, flush, false, rc->reps, rc->gpu_budget, &tm);
    row->median_us = tm.median_us;
    row->host_us = tm.host_us;
}
#endif
