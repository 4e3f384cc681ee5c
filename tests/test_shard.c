/* ZeRO-1 shards: optimizers over ranges of a tensor list's concatenated elements, whose results
 * put together are one unsharded optimizer's bit for bit.
 *
 * The reference run steps the whole list with fopt_*_step_ref_multi. Each shard run splits the
 * list into `world` ranges and steps every range on its own: through the CPU _multi entry points
 * over fopt_shard_pieces (reference, fast path, host-run kernels), each range keeping its state in
 * buffers of its own, and through shard optimizers on the device (the emulated one in an emulated
 * build; the shard_gpu suites report SKIP without a device). Both runs clip by the norm of the
 * rank-order sum of the ranges' partials, as a sharded job must (fusedopt.h, "Sharded optimizer
 * state"). Compared bit for bit: params, every state, the fp32 masters, each range's partial on
 * every path.
 *
 * Lists live in flat buffers (tensor k at its first element in the concatenation), as the
 * reduce-scatter and all-gather of a real job need them. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "dtype.h"
#include "fusedopt.h"
#include "internal.h"
#include "util.h"

/* A build without CUDA (FOPT_TEST_KERNELS 0) runs the CPU paths and the argument checks only: no
 * host-run kernels, no device (the shard_gpu suites are left out). */
#if FOPT_TEST_KERNELS
#include "device.h"
#include "host_run.h"

static void require_device(void)
{
    if (!test_have_cuda_device())
        cr_skip_test("no CUDA device");
}

TestSuite(shard_gpu, .init = require_device);
#endif

/* ---- what is stepped ------------------------------------------------------------------------ */

typedef struct mode {
    const char *name;
    fopt_dtype dtype;       /* params and grads */
    bool master;            /* fp32 master weights */
    bool sr;                /* stochastic rounding of bf16 params */
    fopt_dtype state_dtype;
} mode;

static const mode FP32 = {"fp32", FOPT_FLOAT32, false, false, FOPT_FLOAT32};
static const mode BF16_MASTER = {"bf16 + fp32 master", FOPT_BFLOAT16, true, false, FOPT_FLOAT32};
static const mode BF16_SR = {"bf16 stochastic rounding, bf16 states", FOPT_BFLOAT16, false, true, FOPT_BFLOAT16};

/* An optimizer and its config: AdamW, or RMSprop with momentum and centered (every state slot). */
typedef struct optim {
    bool adam;
    fopt_adam_config a;
    fopt_rmsprop_config r;
    unsigned states; /* bits of fopt_slot */
} optim;

static optim optim_make(bool adam, const mode *m)
{
    optim o;
    memset(&o, 0, sizeof o);
    o.adam = adam;
    fopt_precision pr = {m->state_dtype, m->master, m->sr, false, 77};
    o.a = fopt_adam_config_default();
    o.a.lr = 1e-2;
    o.a.decoupled_weight_decay = true;
    o.a.weight_decay = 0.1;
    o.a.precision = pr;
    o.r = fopt_rmsprop_config_default();
    o.r.momentum = 0.9;
    o.r.centered = true;
    o.r.weight_decay = 0.01;
    o.r.precision = pr;
    o.states = adam ? 3u : 7u;
    return o;
}

/* The CPU paths over a call's host tensors. */
typedef enum path { PATH_REF = 0, PATH_CPU = 1, PATH_KERNELS = 2, PATHS = FOPT_TEST_KERNELS ? 3 : 2 } path;
static const char *const path_name[] = {"reference", "fast CPU path", "host-run kernels"};

static fopt_status cpu_step(path p, const optim *o, int64_t step, const fopt_host_tensor *t, size_t n,
                            const fopt_step_options *opts)
{
#if FOPT_TEST_KERNELS
    if (p == PATH_KERNELS)
        return o->adam ? fopt_adam_step_kernels_host(&o->a, step, t, n, opts)
                       : fopt_rmsprop_step_kernels_host(&o->r, step, t, n, opts);
#endif
    if (o->adam)
        return p == PATH_REF ? fopt_adam_step_ref_multi(&o->a, step, t, n, opts)
                             : fopt_adam_step_cpu_multi(&o->a, step, t, n, opts);
    return p == PATH_REF ? fopt_rmsprop_step_ref_multi(&o->r, step, t, n, opts)
                         : fopt_rmsprop_step_cpu_multi(&o->r, step, t, n, opts);
}

/* A range's partial: the reference's, or the fast path's (the host-run kernels have no entry point
 * of their own for it; the device's is compared in the GPU runs). */
static double cpu_partial(path p, const fopt_host_tensor *t, size_t n)
{
    double s = -1.0;
    if (p == PATH_REF)
        FOPT_OK(fopt_grad_sq_sum_ref_multi(t, n, NULL, &s));
    else
        FOPT_OK(fopt_grad_sq_sum_cpu_multi(t, n, NULL, &s));
    return s;
}

/* ---- a list over flat host buffers ---------------------------------------------------------- */

typedef struct flat {
    size_t count, total;
    const size_t *numel;
    size_t *start;  /* start[k]: tensor k's first element; start[count] = total */
    size_t pb, sb;  /* bytes of a param/grad element, of a state element */
} flat;

static flat flat_make(const size_t *numel, size_t count, const mode *m)
{
    flat f = {count, 0, numel, calloc(count + 1, sizeof(size_t)), m->dtype == FOPT_FLOAT32 ? 4u : 2u,
              m->state_dtype == FOPT_FLOAT32 ? 4u : 2u};
    cr_assert_not_null(f.start);
    for (size_t k = 0; k < count; k++) {
        f.start[k] = f.total;
        f.total += numel[k];
    }
    f.start[count] = f.total;
    return f;
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    cr_assert_not_null(p);
    return p;
}

/* Values as fp32 written to a buffer of dtype dt. */
static void store_as(void *dst, fopt_dtype dt, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (dt == FOPT_FLOAT32)
            ((float *)dst)[i] = x[i];
        else
            ((uint16_t *)dst)[i] = fopt_f32_to_bf16(x[i]);
    }
}

static float load_as(const void *src, fopt_dtype dt, size_t i)
{
    return dt == FOPT_FLOAT32 ? ((const float *)src)[i] : fopt_bf16_to_f32(((const uint16_t *)src)[i]);
}

/* The initial params, and the grads of step `step`: full-mantissa values over several magnitudes. */
static void make_params(const flat *f, const mode *m, void *out)
{
    float *x = xcalloc(f->total, sizeof(float));
    test_rng r = test_rng_make(1234);
    test_fill_uniform(&r, x, f->total, -1.0f, 1.0f);
    store_as(out, m->dtype, x, f->total);
    free(x);
}

static void make_grads(const flat *f, const mode *m, int step, void *out)
{
    float *x = xcalloc(f->total, sizeof(float));
    test_rng r = test_rng_make(99 + 7919 * (uint64_t)step);
    test_fill_magnitudes(&r, x, f->total, -3.0, 0.5, 17);
    store_as(out, m->dtype, x, f->total);
    free(x);
}

/* The host tensors of the whole list over flat buffers (state/master NULL where absent). */
static fopt_host_tensor *flat_tensors(const flat *f, const mode *m, const optim *o, void *param,
                                      const void *grad, float *master, void *const state[3])
{
    fopt_host_tensor *t = xcalloc(f->count, sizeof *t);
    for (size_t k = 0; k < f->count; k++) {
        t[k].param = (char *)param + f->start[k] * f->pb;
        t[k].grad = (const char *)grad + f->start[k] * f->pb;
        t[k].numel = f->numel[k];
        t[k].dtype = m->dtype;
        t[k].master = master ? master + f->start[k] : NULL;
        for (int j = 0; j < 3; j++)
            t[k].state[j] = (o->states >> j & 1u) ? (char *)state[j] + f->start[k] * f->sb : NULL;
    }
    return t;
}

/* A whole-list model on the host: flat params, grads, masters (fp32, bf16 params with master
 * weights), states. */
typedef struct host_model {
    void *param, *grad;
    float *master;
    void *state[3];
    fopt_host_tensor *t;
} host_model;

static void host_model_make(host_model *h, const flat *f, const mode *m, const optim *o)
{
    h->param = xcalloc(f->total, f->pb);
    h->grad = xcalloc(f->total, f->pb);
    make_params(f, m, h->param);
    h->master = NULL;
    if (m->master) {
        h->master = xcalloc(f->total, sizeof(float));
        for (size_t i = 0; i < f->total; i++)
            h->master[i] = load_as(h->param, m->dtype, i);
    }
    for (int j = 0; j < 3; j++)
        h->state[j] = (o->states >> j & 1u) ? xcalloc(f->total, f->sb) : NULL;
    h->t = flat_tensors(f, m, o, h->param, h->grad, h->master, h->state);
}

static void host_model_free(host_model *h)
{
    TEST_FREE_ALL(h->param, h->grad, h->master, h->state[0], h->state[1], h->state[2], h->t);
}

/* One rank of a CPU shard: its pieces, and state (and master) buffers holding its range only. */
typedef struct cpu_shard {
    uint64_t begin, end;
    fopt_host_tensor *pieces;
    size_t n;
    float *master;
    void *state[3];
} cpu_shard;

static void cpu_shard_make(cpu_shard *s, const flat *f, const mode *m, const optim *o,
                           const fopt_host_tensor *whole, uint64_t begin, uint64_t end)
{
    const size_t len = (size_t)(end - begin);
    s->begin = begin;
    s->end = end;
    s->pieces = xcalloc(f->count, sizeof *s->pieces);
    FOPT_OK(fopt_shard_pieces(whole, f->count, begin, end, s->pieces, &s->n));
    s->master = NULL;
    if (m->master) {
        s->master = xcalloc(len, sizeof(float));
        for (size_t i = 0; i < len; i++) /* filled before step 1, as the caller must */
            s->master[i] = load_as(whole[0].param, m->dtype, (size_t)begin + i);
    }
    size_t at = 0;
    for (int j = 0; j < 3; j++)
        s->state[j] = (o->states >> j & 1u) ? xcalloc(len, f->sb) : NULL;
    for (size_t p = 0; p < s->n; p++) {
        if (s->master)
            s->pieces[p].master = s->master + at;
        for (int j = 0; j < 3; j++)
            s->pieces[p].state[j] = s->state[j] ? (char *)s->state[j] + at * f->sb : NULL;
        at += s->pieces[p].numel;
    }
    cr_assert_eq(at, len, "the pieces cover the range");
}

static void cpu_shard_free(cpu_shard *s)
{
    free(s->pieces);
    free(s->master);
    for (int j = 0; j < 3; j++)
        free(s->state[j]);
}

/* The rank-order sum of the ranges' partials: s = 0, then s += partial[r] for r = 0, 1, ... */
static double rank_order_sum(const double *partials, int world)
{
    double s = 0.0;
    for (int r = 0; r < world; r++)
        s += partials[r];
    return s;
}

/* ---- the device side ------------------------------------------------------------------------ */
#if FOPT_TEST_KERNELS

typedef struct gpu_model {
    void *param, *grad;     /* device, flat */
    double *partial, *total;
    fopt_tensor *t;
} gpu_model;

static void gpu_model_make(gpu_model *g, const flat *f, const mode *m, const void *host_param)
{
    CUDA_OK(fopt_dev_malloc(&g->param, (f->total ? f->total : 1) * f->pb));
    CUDA_OK(fopt_dev_malloc(&g->grad, (f->total ? f->total : 1) * f->pb));
    CUDA_OK(fopt_dev_malloc((void **)&g->partial, sizeof(double)));
    CUDA_OK(fopt_dev_malloc((void **)&g->total, sizeof(double)));
    CUDA_OK(fopt_dev_memcpy(g->param, host_param, f->total * f->pb));
    g->t = xcalloc(f->count, sizeof *g->t);
    for (size_t k = 0; k < f->count; k++)
        g->t[k] = (fopt_tensor){(char *)g->param + f->start[k] * f->pb, (char *)g->grad + f->start[k] * f->pb,
                                f->numel[k], m->dtype, (uint32_t)(k % 2)};
}

static void gpu_model_free(gpu_model *g)
{
    fopt_dev_free(g->param);
    fopt_dev_free(g->grad);
    fopt_dev_free(g->partial);
    fopt_dev_free(g->total);
    free(g->t);
}

static fopt_optimizer *create_shard(const optim *o, const gpu_model *g, const flat *f, uint64_t begin, uint64_t end)
{
    fopt_optimizer *opt = NULL;
    if (o->adam)
        FOPT_OK(fopt_adam_create_shard(&opt, &o->a, g->t, f->count, begin, end));
    else
        FOPT_OK(fopt_rmsprop_create_shard(&opt, &o->r, g->t, f->count, begin, end));
    return opt;
}

static double gpu_partial(fopt_optimizer *opt, const gpu_model *g)
{
    double s;
    FOPT_OK(fopt_grad_sq_sum(opt, NULL, g->partial, 0));
    CUDA_OK(fopt_dev_memcpy(&s, g->partial, sizeof s));
    return s;
}

/* The state of shard `opt` over [begin, end) against the flat reference state, through
 * fopt_state_copy (whole-list tensor indices, the shard's part of each tensor). */
static void expect_gpu_state(fopt_optimizer *opt, const flat *f, const optim *o, const mode *m,
                             const host_model *ref, uint64_t begin, uint64_t end, const char *what)
{
    void *buf = xcalloc(f->total, 4);
    for (size_t k = 0; k < f->count; k++) {
        uint64_t lo, hi;
        fopt_shard_part(f->start[k], f->numel[k], begin, end, &lo, &hi);
        for (int j = 0; j < 4; j++) {
            const bool kept = j < 3 ? (o->states >> j & 1u) != 0 : m->master;
            if (!kept)
                continue;
            const size_t eb = j < 3 ? f->sb : 4;
            const char *want = j < 3 ? (const char *)ref->state[j] : (const char *)ref->master;
            memset(buf, 0xa5, f->total * 4);
            FOPT_OK(fopt_state_copy(opt, k, (fopt_slot)j, buf, false));
            cr_assert(memcmp(buf, want + (f->start[k] + lo) * eb, (size_t)(hi - lo) * eb) == 0,
                      "%s: tensor %zu slot %d differs from the unsharded run", what, k, j);
            /* nothing beyond the shard's part of the tensor was written */
            unsigned char *b = buf;
            cr_assert(b[(hi - lo) * eb] == 0xa5, "%s: tensor %zu slot %d: more than its part copied", what, k, j);
        }
    }
    free(buf);
}
#endif

/* ---- one split, every path ------------------------------------------------------------------ */

#define STEPS 3
#define MAX_WORLD 4

/* Steps the list split at bounds[0..world] on every CPU path (and on the device when `gpu`) and
 * compares everything with the unsharded reference run. */
static void check_split(const size_t *numel, size_t count, const mode *m, bool adam,
                        const uint64_t *bounds, int world, bool gpu)
{
    const optim o = optim_make(adam, m);
    const flat f = flat_make(numel, count, m);
    char what[160];
    int len = snprintf(what, sizeof what, "%s %s, split", adam ? "adamw" : "rmsprop", m->name);
    for (int r = 0; r <= world && len < (int)sizeof what - 8; r++)
        len += snprintf(what + len, sizeof what - (size_t)len, " %llu", (unsigned long long)bounds[r]);
    fopt_step_options opts;
    memset(&opts, 0, sizeof opts);
    opts.max_grad_norm = 1.0; /* the grads' norm is larger: every step clips */
    double ref_part[MAX_WORLD];

    /* the unsharded reference, clipping by the rank-order sum of its ranges' partials */
    host_model ref;
    host_model_make(&ref, &f, m, &o);
    cpu_shard ref_split[MAX_WORLD];
    for (int r = 0; r < world; r++)
        cpu_shard_make(&ref_split[r], &f, m, &o, ref.t, bounds[r], bounds[r + 1]);

    /* every CPU path, sharded */
    host_model run[PATHS];
    cpu_shard sh[PATHS][MAX_WORLD];
    for (int p = 0; p < PATHS; p++) {
        host_model_make(&run[p], &f, m, &o);
        for (int r = 0; r < world; r++)
            cpu_shard_make(&sh[p][r], &f, m, &o, run[p].t, bounds[r], bounds[r + 1]);
    }
#if FOPT_TEST_KERNELS
    /* the device, sharded, all shards over one pair of flat buffers */
    gpu_model g;
    fopt_optimizer *opt[MAX_WORLD] = {NULL};
    if (gpu) {
        gpu_model_make(&g, &f, m, ref.param);
        for (int r = 0; r < world; r++)
            opt[r] = create_shard(&o, &g, &f, bounds[r], bounds[r + 1]);
    }
#endif

    for (int step = 1; step <= STEPS; step++) {
        make_grads(&f, m, step, ref.grad);
        for (int r = 0; r < world; r++)
            ref_part[r] = cpu_partial(PATH_REF, ref_split[r].pieces, ref_split[r].n);
        const double total = rank_order_sum(ref_part, world);
        opts.grad_sq_sum = &total;
        FOPT_OK(cpu_step(PATH_REF, &o, step, ref.t, count, &opts));

        for (int p = 0; p < PATHS; p++) {
            memcpy(run[p].grad, ref.grad, f.total * f.pb);
            double part[MAX_WORLD];
            for (int r = 0; r < world; r++) {
                part[r] = cpu_partial(p, sh[p][r].pieces, sh[p][r].n);
                cr_assert(memcmp(&part[r], &ref_part[r], sizeof(double)) == 0,
                          "%s: %s: range %d's partial %.17g, the reference's %.17g", what, path_name[p], r,
                          part[r], ref_part[r]);
            }
            const double t = rank_order_sum(part, world);
            fopt_step_options so = opts;
            so.grad_sq_sum = &t;
            for (int r = 0; r < world; r++)
                FOPT_OK(cpu_step((path)p, &o, step, sh[p][r].pieces, sh[p][r].n, &so));
        }
#if FOPT_TEST_KERNELS
        if (gpu) {
            CUDA_OK(fopt_dev_memcpy(g.grad, ref.grad, f.total * f.pb));
            double part[MAX_WORLD];
            for (int r = 0; r < world; r++) {
                part[r] = gpu_partial(opt[r], &g);
                cr_assert(memcmp(&part[r], &ref_part[r], sizeof(double)) == 0,
                          "%s: device: range %d's partial %.17g, the reference's %.17g", what, r, part[r],
                          ref_part[r]);
            }
            const double t = rank_order_sum(part, world);
            CUDA_OK(fopt_dev_memcpy(g.total, &t, sizeof t));
            fopt_step_options so = opts;
            so.grad_sq_sum = g.total; /* a device pointer for fopt_step_ex */
            for (int r = 0; r < world; r++)
                FOPT_OK(fopt_step_ex(opt[r], &so, 0));
        }
#endif
    }

    for (int p = 0; p < PATHS; p++) {
        cr_assert(memcmp(run[p].param, ref.param, f.total * f.pb) == 0, "%s: %s: params differ", what, path_name[p]);
        for (int r = 0; r < world; r++) {
            const cpu_shard *s = &sh[p][r];
            const size_t n = (size_t)(s->end - s->begin);
            for (int j = 0; j < 3; j++)
                if (s->state[j])
                    cr_assert(memcmp(s->state[j], (char *)ref.state[j] + s->begin * f.sb, n * f.sb) == 0,
                              "%s: %s: range %d's state %d differs", what, path_name[p], r, j);
            if (s->master)
                cr_assert(memcmp(s->master, ref.master + s->begin, n * sizeof(float)) == 0,
                          "%s: %s: range %d's master differs", what, path_name[p], r);
        }
    }
#if FOPT_TEST_KERNELS
    if (gpu) {
        void *out = xcalloc(f.total, f.pb);
        CUDA_OK(fopt_dev_memcpy(out, g.param, f.total * f.pb));
        cr_assert(memcmp(out, ref.param, f.total * f.pb) == 0, "%s: device: params differ", what);
        free(out);
        for (int r = 0; r < world; r++) {
            cr_assert_eq(fopt_step_count(opt[r]), STEPS);
            expect_gpu_state(opt[r], &f, &o, m, &ref, bounds[r], bounds[r + 1], what);
            fopt_destroy(opt[r]);
        }
        gpu_model_free(&g);
    }
#else
    cr_assert(!gpu, "a build without CUDA has no device");
#endif
    for (int p = 0; p < PATHS; p++) {
        for (int r = 0; r < world; r++)
            cpu_shard_free(&sh[p][r]);
        host_model_free(&run[p]);
    }
    for (int r = 0; r < world; r++)
        cpu_shard_free(&ref_split[r]);
    host_model_free(&ref);
    free(f.start);
}

/* A small list: a 1-element tensor, an empty one, boundaries inside tensors for most splits. */
static const size_t SMALL[] = {5, 1, 0, 18, 3, 9}; /* 36 elements; tensor 3 is [6, 24) */
#define SMALL_COUNT (sizeof SMALL / sizeof SMALL[0])

/* Every split of `total` elements into 1..MAX_WORLD ranges with aligned inner boundaries
 * (repeated boundaries: empty ranges). Returns how many were checked. */
static int every_split(const size_t *numel, size_t count, const mode *m, bool adam, bool gpu)
{
    size_t total = 0;
    for (size_t k = 0; k < count; k++)
        total += numel[k];
    uint64_t pos[64];
    int npos = 0;
    for (uint64_t x = 0; x < total; x += FOPT_SHARD_ALIGN)
        pos[npos++] = x;
    pos[npos++] = total;
    int checked = 0;
    for (int world = 1; world <= MAX_WORLD; world++) {
        int idx[MAX_WORLD] = {0}; /* inner boundaries as indices into pos, non-decreasing */
        for (;;) {
            uint64_t b[MAX_WORLD + 1];
            b[0] = 0;
            b[world] = total;
            for (int i = 1; i < world; i++)
                b[i] = pos[idx[i]];
            check_split(numel, count, m, adam, b, world, gpu);
            checked++;
            int i = world - 1;
            while (i >= 1 && idx[i] == npos - 1)
                i--;
            if (i < 1)
                break;
            idx[i]++;
            for (int j = i + 1; j < world; j++)
                idx[j] = idx[i];
        }
    }
    return checked;
}

/* fopt_shard_bounds splits of a list for world 1..MAX_WORLD. */
static void bounds_splits(const size_t *numel, size_t count, const mode *m, bool adam, bool gpu)
{
    size_t total = 0;
    for (size_t k = 0; k < count; k++)
        total += numel[k];
    for (int world = 1; world <= MAX_WORLD; world++) {
        uint64_t b[MAX_WORLD + 1];
        FOPT_OK(fopt_shard_bounds(total, world, b));
        check_split(numel, count, m, adam, b, world, gpu);
    }
}

/* Large tensors: ranges start inside a tensor and span several statistics chunks. */
static const size_t LARGE[] = {20000, 7, 40000, 13};
#define LARGE_COUNT (sizeof LARGE / sizeof LARGE[0])

/* The same splits on the CPU paths (suite shard_cpu, gpu false) and the GPU object (shard_gpu). */
#define SPLIT_TESTS(suite, gpu)                                                                    \
    Test(suite, every_split_of_a_small_list_steps_as_the_whole_list_fp32)                          \
    {                                                                                              \
        cr_expect_eq(every_split(SMALL, SMALL_COUNT, &FP32, true, gpu), 1 + 6 + 21 + 56);          \
    }                                                                                              \
    Test(suite, every_split_of_a_small_list_steps_as_the_whole_list_bf16_master)                   \
    {                                                                                              \
        every_split(SMALL, SMALL_COUNT, &BF16_MASTER, true, gpu);                                  \
    }                                                                                              \
    Test(suite, every_split_of_a_small_list_steps_as_the_whole_list_bf16_stochastic_rounding)      \
    {                                                                                              \
        every_split(SMALL, SMALL_COUNT, &BF16_SR, true, gpu);                                      \
    }                                                                                              \
    Test(suite, large_tensors_split_by_shard_bounds_step_as_the_whole_list)                        \
    {                                                                                              \
        bounds_splits(LARGE, LARGE_COUNT, &FP32, true, gpu);                                       \
        bounds_splits(LARGE, LARGE_COUNT, &BF16_SR, true, gpu);                                    \
        bounds_splits(LARGE, LARGE_COUNT, &BF16_MASTER, false, gpu);                               \
    }

SPLIT_TESTS(shard_cpu, false)

#if FOPT_TEST_KERNELS
SPLIT_TESTS(shard_gpu, true)

Test(shard_gpu, rmsprop_every_split_of_a_small_list_steps_as_the_whole_list)
{
    every_split(SMALL, SMALL_COUNT, &FP32, false, true);
    every_split(SMALL, SMALL_COUNT, &BF16_SR, false, true);
}
#endif

/* ---- fopt_shard_bounds, fopt_shard_pieces --------------------------------------------------- */

Test(shard_args, bounds_cover_the_list_in_equal_aligned_ranges_and_empty_ones_past_its_end)
{
    const uint64_t totals[] = {0, 1, 7, 8, 9, 36, 100, 1000003, 60020};
    for (size_t i = 0; i < sizeof totals / sizeof totals[0]; i++) {
        for (int world = 1; world <= 9; world++) {
            uint64_t b[10];
            const uint64_t total = totals[i];
            FOPT_OK(fopt_shard_bounds(total, world, b));
            const uint64_t per = ((total + 7) / 8 + (uint64_t)world - 1) / (uint64_t)world * 8;
            cr_expect_eq(b[0], 0u);
            cr_expect_eq(b[world], total);
            for (int r = 0; r < world; r++) {
                cr_expect(b[r] <= b[r + 1]);
                cr_expect(b[r + 1] - b[r] <= per, "total %llu world %d: rank %d holds more than S", (unsigned long long)total, world, r);
                cr_expect(b[r] % FOPT_SHARD_ALIGN == 0 || b[r] == total);
                /* a rank holds S unless the list ends inside or before its range */
                cr_expect(b[r + 1] - b[r] == per || b[r + 1] == total);
                FOPT_OK(fopt_shard_range_check(total, b[r], b[r + 1]));
            }
        }
    }
    uint64_t b[5];
    FOPT_OK(fopt_shard_bounds(20, 4, b)); /* 20 elements, 4 ranks: 8, 8, 4 and an empty range */
    cr_expect(b[1] == 8 && b[2] == 16 && b[3] == 20 && b[4] == 20);
    cr_expect_eq(fopt_shard_bounds(20, 0, b), FOPT_ERROR_INVALID_VALUE);
    cr_expect_eq(fopt_shard_bounds(20, 2, NULL), FOPT_ERROR_INVALID_VALUE);
    cr_expect_eq(fopt_shard_bounds(((uint64_t)1 << 62) + 1, 2, b), FOPT_ERROR_INVALID_VALUE);
}

Test(shard_args, pieces_carry_the_tensor_index_and_element_offset_of_the_whole_list)
{
    float p[36], g[36];
    fopt_host_tensor t[SMALL_COUNT];
    memset(t, 0, sizeof t);
    size_t at = 0;
    for (size_t k = 0; k < SMALL_COUNT; k++) {
        t[k] = (fopt_host_tensor){.param = p + at, .grad = g + at, .numel = SMALL[k], .dtype = FOPT_FLOAT32};
        at += SMALL[k];
    }
    fopt_host_tensor pc[SMALL_COUNT];
    size_t n = 99;
    /* [8, 32): the middle of tensor 3, all of tensor 4, the start of tensor 5 */
    FOPT_OK(fopt_shard_pieces(t, SMALL_COUNT, 8, 32, pc, &n));
    cr_assert_eq(n, 3u);
    cr_expect(pc[0].piece && pc[0].tensor == 3 && pc[0].elem_offset == 2 && pc[0].numel == 16);
    cr_expect(pc[0].param == p + 8 && pc[0].grad == g + 8);
    cr_expect(pc[1].tensor == 4 && pc[1].elem_offset == 0 && pc[1].numel == 3 && pc[1].param == p + 24);
    cr_expect(pc[2].tensor == 5 && pc[2].elem_offset == 0 && pc[2].numel == 5 && pc[2].grad == g + 27);
    cr_expect(pc[0].master == NULL && pc[0].state[0] == NULL);
    /* pieces of pieces keep the whole list's indices */
    fopt_host_tensor pp[3];
    size_t m = 0;
    FOPT_OK(fopt_shard_pieces(pc, 1, 8, 16, pp, &m));
    cr_expect(m == 1 && pp[0].tensor == 3 && pp[0].elem_offset == 10 && pp[0].numel == 8 && pp[0].param == p + 16);
    /* an empty range has no piece; the whole list gives every non-empty tensor */
    FOPT_OK(fopt_shard_pieces(t, SMALL_COUNT, 16, 16, pc, &n));
    cr_expect_eq(n, 0u);
    FOPT_OK(fopt_shard_pieces(t, SMALL_COUNT, 0, 36, pc, &n));
    cr_expect_eq(n, 5u);
    cr_expect(pc[2].tensor == 3 && pc[2].numel == 18 && pc[2].elem_offset == 0);
}

Test(shard_args, bad_ranges_are_rejected_with_nothing_written_or_allocated)
{
    static float fp[36], fg[36]; /* never dereferenced: ranges are checked first */
    fopt_host_tensor h[SMALL_COUNT];
    size_t at = 0;
    for (size_t k = 0; k < SMALL_COUNT; k++) {
        h[k] = (fopt_host_tensor){.param = fp + at, .grad = fg + at, .numel = SMALL[k], .dtype = FOPT_FLOAT32};
        at += SMALL[k];
    }
    const uint64_t bad[][2] = {{16, 8}, {0, 37}, {40, 40}, {4, 16}, {8, 12}, {8, 35}, {36, 35}};
#if FOPT_TEST_KERNELS /* the shard optimizers: with the GPU object */
    fopt_tensor t[SMALL_COUNT];
    for (size_t k = 0; k < SMALL_COUNT; k++)
        t[k] = (fopt_tensor){h[k].param, h[k].grad, SMALL[k], FOPT_FLOAT32, 0};
    fopt_adam_config a = fopt_adam_config_default();
    fopt_rmsprop_config r = fopt_rmsprop_config_default();
    const long long live = fopt_emu_live_bytes();
#endif
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
#if FOPT_TEST_KERNELS
        fopt_optimizer *out = (fopt_optimizer *)(uintptr_t)0xdeadbeef;
        cr_expect_eq(fopt_adam_create_shard(&out, &a, t, SMALL_COUNT, bad[i][0], bad[i][1]), FOPT_ERROR_INVALID_VALUE,
                     "[%llu, %llu)", (unsigned long long)bad[i][0], (unsigned long long)bad[i][1]);
        cr_expect(strstr(fopt_last_error(), "shard range"), "%s", fopt_last_error());
        cr_expect_eq(fopt_rmsprop_create_shard(&out, &r, t, SMALL_COUNT, bad[i][0], bad[i][1]), FOPT_ERROR_INVALID_VALUE);
        cr_expect_eq(out, (fopt_optimizer *)(uintptr_t)0xdeadbeef, "*out was written by a failing create");
#endif
        fopt_host_tensor pc[SMALL_COUNT];
        memset(pc, 0x5a, sizeof pc);
        size_t n = 12345;
        cr_expect_eq(fopt_shard_pieces(h, SMALL_COUNT, bad[i][0], bad[i][1], pc, &n), FOPT_ERROR_INVALID_VALUE);
        cr_expect_eq(n, 12345u);
        const unsigned char *b = (const unsigned char *)pc;
        for (size_t j = 0; j < sizeof pc; j++)
            cr_assert_eq(b[j], 0x5a, "pieces written by a failing call");
    }
#if FOPT_TEST_KERNELS
    cr_expect_eq(fopt_emu_live_bytes(), live, "device memory left allocated");
    fopt_optimizer *out = NULL;
    cr_expect_eq(fopt_adam_create_shard(&out, NULL, t, SMALL_COUNT, 0, 8), FOPT_ERROR_INVALID_VALUE);
    cr_expect_eq(fopt_rmsprop_create_shard(&out, NULL, t, SMALL_COUNT, 0, 8), FOPT_ERROR_INVALID_VALUE);
#endif
    size_t n;
    cr_expect_eq(fopt_shard_pieces(h, SMALL_COUNT, 0, 8, NULL, &n), FOPT_ERROR_INVALID_VALUE);
    cr_expect_eq(fopt_shard_pieces(NULL, 2, 0, 0, h, &n), FOPT_ERROR_INVALID_VALUE);
    /* a NULL param is an error only where the range needs it */
    h[5].param = NULL;
    fopt_host_tensor pc[SMALL_COUNT];
    FOPT_OK(fopt_shard_pieces(h, SMALL_COUNT, 0, 24, pc, &n));
    cr_expect_eq(fopt_shard_pieces(h, SMALL_COUNT, 24, 36, pc, &n), FOPT_ERROR_INVALID_VALUE);
}

Test(shard_args, pieces_with_out_of_range_indices_are_rejected)
{
    float p[8] = {0}, g[8] = {0}, m[8] = {0}, v[8] = {0};
    fopt_host_tensor t = {.param = p, .grad = g, .numel = 8, .dtype = FOPT_FLOAT32, .state = {m, v, NULL}};
    t.piece = true;
    t.tensor = (size_t)UINT32_MAX + 1;
    fopt_adam_config a = fopt_adam_config_default();
    cr_expect_eq(fopt_adam_step_ref_multi(&a, 1, &t, 1, NULL), FOPT_ERROR_INVALID_VALUE);
    cr_expect_eq(fopt_adam_step_cpu_multi(&a, 1, &t, 1, NULL), FOPT_ERROR_INVALID_VALUE);
    t.tensor = 3;
    t.elem_offset = (uint64_t)INT64_MAX - 4;
    cr_expect_eq(fopt_adam_step_ref_multi(&a, 1, &t, 1, NULL), FOPT_ERROR_INVALID_VALUE);
    t.elem_offset = 1000;
    FOPT_OK(fopt_adam_step_ref_multi(&a, 1, &t, 1, NULL));
}

/* ---- statistics: what the rank-order sum is, and is not ------------------------------------- */

/* The partials of the ranges of `b`, summed in rank order (fast CPU path). */
static double split_total(const fopt_host_tensor *t, size_t count, const uint64_t *b, int world)
{
    double part[MAX_WORLD];
    fopt_host_tensor *pc = xcalloc(count, sizeof *pc);
    for (int r = 0; r < world; r++) {
        size_t n;
        FOPT_OK(fopt_shard_pieces(t, count, b[r], b[r + 1], pc, &n));
        FOPT_OK(fopt_grad_sq_sum_cpu_multi(pc, n, NULL, &part[r]));
    }
    free(pc);
    return rank_order_sum(part, world);
}

static fopt_host_tensor *large_list(float *g, size_t *total)
{
    fopt_host_tensor *t = xcalloc(LARGE_COUNT, sizeof *t);
    size_t at = 0;
    for (size_t k = 0; k < LARGE_COUNT; k++) {
        t[k] = (fopt_host_tensor){.param = g + at, .grad = g + at, .numel = LARGE[k], .dtype = FOPT_FLOAT32};
        at += LARGE[k];
    }
    *total = at;
    return t;
}

Test(shard_stats, one_range_is_the_whole_list_sum_and_other_splits_agree_to_rounding_only)
{
    size_t total = 0;
    for (size_t k = 0; k < LARGE_COUNT; k++)
        total += LARGE[k];
    float *g = xcalloc(total, sizeof(float));
    test_rng r = test_rng_make(5);
    test_fill_magnitudes(&r, g, total, -3.0, 1.0, 0);
    fopt_host_tensor *t = large_list(g, &total);
    double whole;
    FOPT_OK(fopt_grad_sq_sum_cpu_multi(t, LARGE_COUNT, NULL, &whole));
    uint64_t b[MAX_WORLD + 1];
    FOPT_OK(fopt_shard_bounds(total, 1, b));
    const double one = split_total(t, LARGE_COUNT, b, 1);
    cr_expect(memcmp(&one, &whole, sizeof one) == 0, "world 1: %.17g, whole list %.17g", one, whole);
    /* More ranges sum the same squares in another order: equal to the last few bits only. This is
     * why a one-process run that must match a sharded one sums the same ranges' partials. */
    int differ = 0;
    for (int world = 2; world <= MAX_WORLD; world++) {
        FOPT_OK(fopt_shard_bounds(total, world, b));
        const double s = split_total(t, LARGE_COUNT, b, world);
        cr_expect(fabs(s - whole) <= 1e-13 * whole, "world %d: %.17g, whole list %.17g", world, s, whole);
        differ += memcmp(&s, &whole, sizeof s) != 0;
        /* the same ranges always give the same bits */
        const double again = split_total(t, LARGE_COUNT, b, world);
        cr_expect(memcmp(&s, &again, sizeof s) == 0);
    }
    cr_expect(differ > 0, "expected some split to round differently from the whole-list sum");
    free(t);
    free(g);
}

Test(shard_stats, exact_sums_agree_for_every_split)
{
    /* grads that are multiples of 2^-12 below 2^3: every partial sum is exact in double, so every
     * order gives the same bits (the examples' per-rank grads are made so for their sums) */
    size_t total = 0;
    for (size_t k = 0; k < LARGE_COUNT; k++)
        total += LARGE[k];
    float *g = xcalloc(total, sizeof(float));
    test_rng r = test_rng_make(6);
    for (size_t i = 0; i < total; i++)
        g[i] = (float)((int64_t)(test_rng_next(&r) % 65536) - 32768) / 4096.0f;
    fopt_host_tensor *t = large_list(g, &total);
    double whole;
    FOPT_OK(fopt_grad_sq_sum_ref_multi(t, LARGE_COUNT, NULL, &whole));
    for (int world = 1; world <= MAX_WORLD; world++) {
        uint64_t b[MAX_WORLD + 1];
        FOPT_OK(fopt_shard_bounds(total, world, b));
        const double s = split_total(t, LARGE_COUNT, b, world);
        cr_expect(memcmp(&s, &whole, sizeof s) == 0, "world %d: %.17g, whole list %.17g", world, s, whole);
    }
    free(t);
    free(g);
}

/* ---- the device object: checkpoints, state copies, rebinding, skipped steps ------------------ */
#if FOPT_TEST_KERNELS

/* A small fp32 AdamW problem on the device over SMALL: flat buffers and the tensor list. */
typedef struct small_gpu {
    flat f;
    gpu_model g;
    optim o;
    void *host_param, *host_grad;
} small_gpu;

static void small_gpu_make(small_gpu *s)
{
    s->o = optim_make(true, &FP32);
    s->f = flat_make(SMALL, SMALL_COUNT, &FP32);
    s->host_param = xcalloc(s->f.total, 4);
    s->host_grad = xcalloc(s->f.total, 4);
    make_params(&s->f, &FP32, s->host_param);
    gpu_model_make(&s->g, &s->f, &FP32, s->host_param);
}

static void small_gpu_grads(small_gpu *s, int step)
{
    make_grads(&s->f, &FP32, step, s->host_grad);
    CUDA_OK(fopt_dev_memcpy(s->g.grad, s->host_grad, s->f.total * 4));
}

static void small_gpu_free(small_gpu *s)
{
    gpu_model_free(&s->g);
    free(s->host_param);
    free(s->host_grad);
    free(s->f.start);
}

static void *save(fopt_optimizer *opt, size_t *size)
{
    *size = fopt_state_size(opt);
    void *buf = xcalloc(*size, 1);
    FOPT_OK(fopt_state_save(opt, buf, *size));
    return buf;
}

Test(shard_gpu, checkpoint_loads_only_into_the_same_range_of_the_same_list)
{
    small_gpu s;
    small_gpu_make(&s);
    fopt_optimizer *a = create_shard(&s.o, &s.g, &s.f, 8, 24);
    small_gpu_grads(&s, 1);
    FOPT_OK(fopt_step(a, 0));
    size_t size;
    void *ckpt = save(a, &size);

    /* another range of the same list: rejected, nothing changed */
    fopt_optimizer *other = create_shard(&s.o, &s.g, &s.f, 16, 32);
    size_t before_size, after_size;
    void *before = save(other, &before_size);
    cr_expect_eq(fopt_state_load(other, ckpt, size), FOPT_ERROR_INVALID_VALUE);
    cr_expect(strstr(fopt_last_error(), "holds elements [8, 24)"), "%s", fopt_last_error());
    void *after = save(other, &after_size);
    cr_assert_eq(before_size, after_size);
    cr_expect(memcmp(before, after, before_size) == 0, "a rejected load changed the optimizer");
    cr_expect_eq(fopt_step_count(other), 0);

    /* the same range: restored, and it steps on exactly as the original */
    fopt_optimizer *same = create_shard(&s.o, &s.g, &s.f, 8, 24);
    FOPT_OK(fopt_state_load(same, ckpt, size));
    cr_expect_eq(fopt_step_count(same), 1);
    size_t n2;
    void *again = save(same, &n2);
    cr_expect(memcmp(again, ckpt, size) == 0);
    free(again);

    /* the unsharded optimizer is the shard [0, total): their checkpoints are interchangeable, and
     * shards of the whole list do not load into it */
    fopt_optimizer *whole = NULL, *full = create_shard(&s.o, &s.g, &s.f, 0, s.f.total);
    FOPT_OK(fopt_adam_create(&whole, &s.o.a, s.g.t, SMALL_COUNT));
    size_t full_size;
    void *full_ckpt = save(full, &full_size);
    FOPT_OK(fopt_state_load(whole, full_ckpt, full_size));
    cr_expect_eq(fopt_state_load(whole, ckpt, size), FOPT_ERROR_INVALID_VALUE);
    free(full_ckpt);

    fopt_destroy(a);
    fopt_destroy(other);
    fopt_destroy(same);
    fopt_destroy(whole);
    fopt_destroy(full);
    free(ckpt);
    free(before);
    free(after);
    small_gpu_free(&s);
}

Test(shard_gpu, state_copy_takes_whole_list_indices_and_copies_the_shards_part)
{
    small_gpu s;
    small_gpu_make(&s);
    /* [16, 32): tensor 3 ([6, 24)) from its element 10, tensor 4 whole, tensor 5's first 5 */
    fopt_optimizer *sh = create_shard(&s.o, &s.g, &s.f, 16, 32);
    fopt_optimizer *whole = NULL;
    gpu_model g2;
    gpu_model_make(&g2, &s.f, &FP32, s.host_param);
    FOPT_OK(fopt_adam_create(&whole, &s.o.a, g2.t, SMALL_COUNT));
    small_gpu_grads(&s, 1);
    CUDA_OK(fopt_dev_memcpy(g2.grad, s.host_grad, s.f.total * 4));
    FOPT_OK(fopt_step(sh, 0));
    FOPT_OK(fopt_step(whole, 0));
    float want[18], got[18];
    const size_t expect_at[SMALL_COUNT] = {0, 0, 0, 10, 0, 0}, expect_n[SMALL_COUNT] = {0, 0, 0, 8, 3, 5};
    for (size_t k = 0; k < SMALL_COUNT; k++) {
        for (int i = 0; i < 18; i++)
            got[i] = -1.0f;
        FOPT_OK(fopt_state_copy(sh, k, FOPT_SLOT_EXP_AVG_SQ, got, false));
        FOPT_OK(fopt_state_copy(whole, k, FOPT_SLOT_EXP_AVG_SQ, want, false));
        cr_expect(memcmp(got, want + expect_at[k], expect_n[k] * sizeof(float)) == 0, "tensor %zu", k);
        cr_expect_eq(got[expect_n[k]], -1.0f, "tensor %zu: copied more than the shard's part", k);
    }
    /* writing in: the shard's part of tensor 3 */
    float ones[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    FOPT_OK(fopt_state_copy(sh, 3, FOPT_SLOT_EXP_AVG, ones, true));
    FOPT_OK(fopt_state_copy(sh, 3, FOPT_SLOT_EXP_AVG, got, false));
    cr_expect(memcmp(got, ones, sizeof ones) == 0);
    cr_expect_eq(fopt_state_copy(sh, SMALL_COUNT, FOPT_SLOT_EXP_AVG, got, false), FOPT_ERROR_INVALID_VALUE);
    cr_expect_eq(fopt_state_copy(sh, 3, FOPT_SLOT_MAX_EXP_AVG_SQ, got, false), FOPT_ERROR_INVALID_VALUE);
    fopt_destroy(sh);
    fopt_destroy(whole);
    gpu_model_free(&g2);
    small_gpu_free(&s);
}

Test(shard_gpu, rebind_moves_a_shard_to_new_buffers_of_the_whole_list)
{
    small_gpu s;
    small_gpu_make(&s);
    /* a is created over s.g and moved to `mine`; b is created over `moved`: both hold the same
     * initial params */
    gpu_model moved, mine;
    gpu_model_make(&moved, &s.f, &FP32, s.host_param);
    gpu_model_make(&mine, &s.f, &FP32, s.host_param);
    fopt_optimizer *a = create_shard(&s.o, &s.g, &s.f, 8, 24);
    fopt_optimizer *b = create_shard(&s.o, &moved, &s.f, 8, 24);
    FOPT_OK(fopt_rebind(a, mine.t, SMALL_COUNT, 0));
    for (int step = 1; step <= 2; step++) {
        small_gpu_grads(&s, step);
        CUDA_OK(fopt_dev_memcpy(moved.grad, s.host_grad, s.f.total * 4));
        CUDA_OK(fopt_dev_memcpy(mine.grad, s.host_grad, s.f.total * 4));
        FOPT_OK(fopt_step(a, 0));
        FOPT_OK(fopt_step(b, 0));
    }
    float x[36], y[36], z[36];
    CUDA_OK(fopt_dev_memcpy(x, mine.param, sizeof x));
    CUDA_OK(fopt_dev_memcpy(y, moved.param, sizeof y));
    CUDA_OK(fopt_dev_memcpy(z, s.g.param, sizeof z));
    cr_expect(memcmp(x, y, sizeof x) == 0, "the rebound shard steps as one created there");
    cr_expect(memcmp(z, s.host_param, sizeof z) == 0, "the old buffers were written after rebinding");
    cr_expect(memcmp(x, s.host_param, 8 * 4) == 0 && memcmp(x + 24, (float *)s.host_param + 24, 12 * 4) == 0,
              "elements outside the range were written");
    cr_expect(memcmp(x + 8, (float *)s.host_param + 8, 16 * 4) != 0, "the range was not stepped");
    /* the whole list, with the same numel per tensor, is what rebind takes */
    fopt_tensor t[SMALL_COUNT];
    memcpy(t, mine.t, sizeof t);
    t[0].numel = 4;
    cr_expect_eq(fopt_rebind(a, t, SMALL_COUNT, 0), FOPT_ERROR_INVALID_VALUE);
    fopt_destroy(a);
    fopt_destroy(b);
    gpu_model_free(&moved);
    gpu_model_free(&mine);
    small_gpu_free(&s);
}

Test(shard_gpu, an_inf_in_one_shard_skips_the_step_on_every_shard)
{
    small_gpu s;
    small_gpu_make(&s);
    const uint64_t b[3] = {0, 16, 36};
    fopt_optimizer *opt[2];
    for (int r = 0; r < 2; r++)
        opt[r] = create_shard(&s.o, &s.g, &s.f, b[r], b[r + 1]);
    int32_t *found;
    CUDA_OK(fopt_dev_malloc((void **)&found, 2 * sizeof *found));
    for (int step = 1; step <= 2; step++) {
        make_grads(&s.f, &FP32, step, s.host_grad);
        if (step == 1)
            ((float *)s.host_grad)[30] = INFINITY; /* in rank 1's range */
        CUDA_OK(fopt_dev_memcpy(s.g.grad, s.host_grad, s.f.total * 4));
        double part[2];
        for (int r = 0; r < 2; r++)
            part[r] = gpu_partial(opt[r], &s.g);
        cr_expect(isfinite(part[0]) && (step == 2) == (isfinite(part[1]) != 0));
        const double total = rank_order_sum(part, 2);
        CUDA_OK(fopt_dev_memcpy(s.g.total, &total, sizeof total));
        fopt_step_options o;
        memset(&o, 0, sizeof o);
        o.max_grad_norm = 1.0;
        o.grad_sq_sum = s.g.total;
        for (int r = 0; r < 2; r++) {
            o.found_inf = found + r;
            FOPT_OK(fopt_step_ex(opt[r], &o, 0));
        }
        int32_t f[2];
        CUDA_OK(fopt_dev_memcpy(f, found, sizeof f));
        cr_expect(f[0] == (step == 1) && f[1] == (step == 1), "step %d: found_inf %d %d", step, f[0], f[1]);
        for (int r = 0; r < 2; r++)
            cr_expect_eq(fopt_step_count(opt[r]), step - 1);
        if (step == 1) {
            float x[36];
            CUDA_OK(fopt_dev_memcpy(x, s.g.param, sizeof x));
            cr_expect(memcmp(x, s.host_param, sizeof x) == 0, "a skipped step changed params");
        }
    }
    fopt_dev_free(found);
    for (int r = 0; r < 2; r++)
        fopt_destroy(opt[r]);
    small_gpu_free(&s);
}

Test(shard_gpu, an_empty_range_is_a_shard_that_steps_nothing_and_sums_zero)
{
    small_gpu s;
    small_gpu_make(&s);
    fopt_optimizer *e = create_shard(&s.o, &s.g, &s.f, 36, 36), *mid = create_shard(&s.o, &s.g, &s.f, 16, 16);
    small_gpu_grads(&s, 1);
    cr_expect_eq(gpu_partial(e, &s.g), 0.0);
    cr_expect_eq(gpu_partial(mid, &s.g), 0.0);
    FOPT_OK(fopt_step(e, 0));
    FOPT_OK(fopt_step(mid, 0));
    cr_expect_eq(fopt_step_count(e), 1);
    float x[36];
    CUDA_OK(fopt_dev_memcpy(x, s.g.param, sizeof x));
    cr_expect(memcmp(x, s.host_param, sizeof x) == 0);
    size_t size;
    void *ckpt = save(e, &size);
    FOPT_OK(fopt_state_load(e, ckpt, size));
    cr_expect_eq(fopt_state_load(mid, ckpt, size), FOPT_ERROR_INVALID_VALUE);
    free(ckpt);
    fopt_destroy(e);
    fopt_destroy(mid);
    small_gpu_free(&s);
}
#endif
