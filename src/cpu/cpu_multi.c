/* The fast CPU path's multi-tensor driver, behind every fopt_*_step_cpu* entry point.
 *
 * The elements of all tensors of a call form one index space, split into one contiguous range per
 * thread (so a thousand small tensors share the cores as well as one large tensor does). Within a
 * range each tensor piece runs the optimizer's fp32 SIMD element loop (src/cpu/<opt>_cpu.c):
 * directly on the caller's arrays when everything is fp32 and no grad transform applies, else in
 * blocks of FOPT_CPU_BLOCK elements converted to fp32 on the stack (param or master, grad scaled
 * and clipped, states), stepped, and converted back. The conversions (cpu_convert.c) and the
 * statistics' summation order are the reference's, so every result is bit-identical to it. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_internal.h"
#include "dtype.h"
#include "stats.h"

#define FOPT_CPU_BLOCK 512

typedef struct multi_ctx {
    fopt_cpu_kernel fn;
    const fopt_cpu_convert *cv;
    const fopt_group_scalars *s;
    const fopt_host_tensor *t;
    size_t count;
    const size_t *start; /* start[k]: index of tensor k's first element; start[count] = total */
    const fopt_precision *pr;
    unsigned states;
    const float *scale;
    int clip, zero_grads;
    float coef;
    int64_t step;
} multi_ctx;

static void up_values(const multi_ctx *c, const void *src, fopt_dtype dt, size_t off, float *dst, size_t m)
{
    if (dt == FOPT_FLOAT16)
        c->cv->up_f16((const uint16_t *)src + off, dst, m);
    else if (dt == FOPT_BFLOAT16)
        c->cv->up_bf16((const uint16_t *)src + off, dst, m);
    else
        memcpy(dst, (const float *)src + off, m * sizeof(float));
}

static void down_values(const multi_ctx *c, const float *src, void *dst, fopt_dtype dt, size_t off, size_t m)
{
    if (dt == FOPT_FLOAT16)
        c->cv->down_f16(src, (uint16_t *)dst + off, m);
    else if (dt == FOPT_BFLOAT16)
        c->cv->down_bf16(src, (uint16_t *)dst + off, m);
    else
        memcpy((float *)dst + off, src, m * sizeof(float));
}

/* Elements [lo, hi) of tensor k. */
static void piece(const multi_ctx *c, size_t k, size_t lo, size_t hi)
{
    const fopt_host_tensor *t = &c->t[k];
    const fopt_master_mode mm = fopt_master_mode_of(c->pr, t->dtype);
    const fopt_dtype sdt = c->pr->state_dtype;
    float *st[FOPT_MAX_STATES];
    for (unsigned j = 0; j < FOPT_MAX_STATES; j++)
        st[j] = (c->states >> j & 1u) ? (float *)t->state[j] : NULL;
    const int grad_as_is = !c->scale && !c->clip;

    if (t->dtype == FOPT_FLOAT32 && sdt == FOPT_FLOAT32 && grad_as_is && !c->zero_grads) {
        c->fn(c->s, hi - lo, (float *)t->param + lo, (const float *)t->grad + lo, st[0] ? st[0] + lo : NULL,
              st[1] ? st[1] + lo : NULL, st[2] ? st[2] + lo : NULL);
        return;
    }

    const int stochastic = c->pr->stochastic_rounding && t->dtype == FOPT_BFLOAT16 && mm == FOPT_MASTER_NONE;
    const uint64_t key = stochastic ? fopt_sr_key(c->pr->seed, c->step, fopt_host_tensor_index(t, k)) : 0;
    const uint64_t first = fopt_host_elem_offset(t); /* SR element index of element 0 */
    const size_t eb = t->dtype == FOPT_FLOAT32 ? 4 : 2;
    float P[FOPT_CPU_BLOCK], G[FOPT_CPU_BLOCK], S[FOPT_MAX_STATES][FOPT_CPU_BLOCK];
    for (size_t b = lo; b < hi; b += FOPT_CPU_BLOCK) {
        const size_t m = hi - b < FOPT_CPU_BLOCK ? hi - b : FOPT_CPU_BLOCK;
        float *p = P;
        if (mm == FOPT_MASTER_F32)
            p = (float *)t->master + b; /* stepped in place */
        else if (mm == FOPT_MASTER_REMAINDER)
            c->cv->rem_decode((const uint16_t *)t->param + b, (const uint16_t *)t->master + b, P, m);
        else if (t->dtype == FOPT_FLOAT32)
            p = (float *)t->param + b;
        else
            up_values(c, t->param, t->dtype, b, P, m);

        const float *g = G;
        if (t->dtype == FOPT_FLOAT32 && grad_as_is) {
            g = (const float *)t->grad + b;
        } else {
            up_values(c, t->grad, t->dtype, b, G, m);
            if (c->scale) {
                const float sc = *c->scale;
                for (size_t i = 0; i < m; i++)
                    G[i] = G[i] / sc;
            }
            if (c->clip)
                for (size_t i = 0; i < m; i++)
                    G[i] = G[i] * c->coef;
        }
        float *sp[FOPT_MAX_STATES] = {NULL, NULL, NULL};
        for (unsigned j = 0; j < FOPT_MAX_STATES; j++) {
            if (!st[j])
                continue;
            if (sdt == FOPT_FLOAT32) {
                sp[j] = st[j] + b;
            } else {
                c->cv->up_bf16((const uint16_t *)t->state[j] + b, S[j], m);
                sp[j] = S[j];
            }
        }
        if (c->zero_grads) /* g holds what the step needs (in G, or fp32 read before the call) */
            if (g != G) {
                memcpy(G, g, m * sizeof(float));
                g = G;
            }
        if (c->zero_grads)
            memset((char *)t->grad + b * eb, 0, m * eb);

        c->fn(c->s, m, p, g, sp[0], sp[1], sp[2]);

        if (mm == FOPT_MASTER_F32)
            down_values(c, p, t->param, t->dtype, b, m);
        else if (mm == FOPT_MASTER_REMAINDER)
            c->cv->rem_encode(P, (uint16_t *)t->param + b, (uint16_t *)t->master + b, m);
        else if (stochastic)
            c->cv->down_bf16_sr(P, (uint16_t *)t->param + b, m, key, first + b);
        else if (t->dtype != FOPT_FLOAT32)
            down_values(c, P, t->param, t->dtype, b, m);
        if (sdt != FOPT_FLOAT32)
            for (unsigned j = 0; j < FOPT_MAX_STATES; j++)
                if (st[j])
                    c->cv->down_bf16(S[j], (uint16_t *)t->state[j] + b, m);
    }
}

/* The tensor holding element i of the index space: the last k with start[k] <= i. */
static size_t tensor_of(const size_t *start, size_t count, size_t i)
{
    size_t lo = 0, hi = count; /* start[lo] <= i < start[hi] */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (start[mid] <= i)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

static void multi_range(void *vctx, size_t b, size_t e)
{
    const multi_ctx *c = vctx;
    for (size_t k = tensor_of(c->start, c->count, b); k < c->count && c->start[k] < e; k++) {
        size_t lo = b > c->start[k] ? b - c->start[k] : 0;
        size_t hi = (e < c->start[k + 1] ? e : c->start[k + 1]) - c->start[k];
        if (lo < hi)
            piece(c, k, lo, hi);
    }
}

/* ---- statistics: the order of kernels/stats.h, chunks in parallel ---- */

typedef struct stats_ctx {
    const fopt_host_tensor *t;
    size_t count;
    const size_t *chunk_start; /* chunk_start[k]: tensor k's first chunk; [count] = total */
    const float *scale;
    const fopt_cpu_convert *cv;
    double *partials;
} stats_ctx;

static double chunk_partial(const stats_ctx *c, const fopt_host_tensor *t, size_t begin, size_t len)
{
    double lanes[FOPT_STAT_LANES] = {0.0};
    float buf[FOPT_STAT_LANES];
    for (size_t off = 0; off < len; off += FOPT_STAT_LANES) {
        const size_t m = len - off < FOPT_STAT_LANES ? len - off : FOPT_STAT_LANES;
        const float *x = buf;
        if (t->dtype == FOPT_FLOAT16)
            c->cv->up_f16((const uint16_t *)t->grad + begin + off, buf, m);
        else if (t->dtype == FOPT_BFLOAT16)
            c->cv->up_bf16((const uint16_t *)t->grad + begin + off, buf, m);
        else
            x = (const float *)t->grad + begin + off;
        if (c->scale) {
            const float sc = *c->scale;
            for (size_t l = 0; l < m; l++) {
                const float u = x[l] / sc;
                lanes[l] = lanes[l] + (double)u * (double)u;
            }
        } else {
            for (size_t l = 0; l < m; l++)
                lanes[l] = lanes[l] + (double)x[l] * (double)x[l];
        }
    }
    return fopt_stat_tree(lanes);
}

static void stats_range(void *vctx, size_t b, size_t e)
{
    const stats_ctx *c = vctx;
    for (size_t k = tensor_of(c->chunk_start, c->count, b); k < c->count && c->chunk_start[k] < e; k++) {
        const fopt_host_tensor *t = &c->t[k];
        for (size_t ch = b > c->chunk_start[k] ? b : c->chunk_start[k]; ch < c->chunk_start[k + 1] && ch < e; ch++) {
            size_t begin = (ch - c->chunk_start[k]) * (size_t)FOPT_CHUNK;
            size_t len = t->numel - begin < FOPT_CHUNK ? t->numel - begin : FOPT_CHUNK;
            c->partials[ch] = chunk_partial(c, t, begin, len);
        }
    }
}

/* start[k] = items before tensor k, start[count] = all: items are elements (shift 0) or chunks of
 * 2^shift elements. NULL (with the failure recorded) when the host is out of memory. */
static size_t *prefix_sums(const fopt_host_tensor *tensors, size_t count, unsigned shift)
{
    size_t *start = malloc((count + 1) * sizeof *start);
    if (!start) {
        fopt_fail(FOPT_ERROR_OUT_OF_MEMORY, "host allocation for %zu tensors failed", count);
        return NULL;
    }
    size_t total = 0;
    for (size_t k = 0; k < count; k++) {
        start[k] = total;
        total += (size_t)fopt_chunks_for(tensors[k].numel, shift);
    }
    start[count] = total;
    return start;
}

/* The sum of squares in the fixed order; FOPT_ERROR_OUT_OF_MEMORY when the partials don't fit. */
static fopt_status cpu_sq_sum(const fopt_host_tensor *tensors, size_t count, const float *scale, double *out)
{
    size_t *chunk_start = prefix_sums(tensors, count, FOPT_CHUNK_SHIFT);
    if (!chunk_start)
        return FOPT_ERROR_OUT_OF_MEMORY;
    const size_t chunks = chunk_start[count];
    double *partials = malloc((chunks ? chunks : 1) * sizeof *partials);
    if (!partials) {
        free(chunk_start);
        return fopt_fail(FOPT_ERROR_OUT_OF_MEMORY, "host allocation of %zu partial sums failed", chunks);
    }
    stats_ctx c = {tensors, count, chunk_start, scale, fopt_cpu_converter(fopt_cpu_isa_current()), partials};
    fopt_cpu_parallel_grain(chunks, 4, NULL, stats_range, &c);
    double outer[FOPT_STAT_LANES] = {0.0};
    for (size_t p = 0; p < chunks; p++)
        outer[p % FOPT_STAT_LANES] = outer[p % FOPT_STAT_LANES] + partials[p];
    *out = fopt_stat_tree(outer);
    free(partials);
    free(chunk_start);
    return FOPT_SUCCESS;
}

fopt_status fopt_grad_sq_sum_cpu_multi(const fopt_host_tensor *tensors, size_t count,
                                       const float *grad_scale, double *sq_sum)
{
    fopt_status st = fopt_sq_sum_check(tensors, count, grad_scale, sq_sum);
    if (st != FOPT_SUCCESS)
        return st;
    if ((st = cpu_sq_sum(tensors, count, grad_scale, sq_sum)) == FOPT_SUCCESS)
        *sq_sum = fopt_stat_total(*sq_sum, grad_scale);
    return st;
}

/* ---- the driver ---- */

fopt_status fopt_cpu_multi(const fopt_desc *d, const fopt_any_config *cfg, int64_t step,
                           const fopt_host_tensor *tensors, size_t count,
                           const fopt_step_options *opts)
{
    multi_ctx c;
    memset(&c, 0, sizeof c);
    c.scale = opts ? opts->grad_scale : NULL;
    c.clip = opts && opts->max_grad_norm > 0.0;
    c.coef = 1.0f;
    if (fopt_options_need_stats(opts)) {
        double total;
        fopt_status st;
        if (opts->grad_sq_sum)
            total = *opts->grad_sq_sum;
        else if ((st = cpu_sq_sum(tensors, count, c.scale, &total)) != FOPT_SUCCESS)
            return st;
        if (fopt_options_verdict(opts, total, &c.coef))
            return FOPT_SUCCESS; /* found_inf: nothing is updated */
    }
    c.zero_grads = opts && opts->zero_grads;

    size_t *start = prefix_sums(tensors, count, 0);
    if (!start)
        return FOPT_ERROR_OUT_OF_MEMORY;
    const size_t total = start[count];

    const int isa = fopt_cpu_isa_current();
    const fopt_group_scalars s = fopt_cpu_scalars(d, cfg, step);
    c.fn = d->cpu_kernel(isa, &s);
    c.cv = fopt_cpu_converter(isa);
    c.s = &s;
    c.t = tensors;
    c.count = count;
    c.start = start;
    c.pr = fopt_cfg_precision(d, cfg);
    c.states = d->states(cfg);
    c.step = step;
    if (total > 0)
        fopt_cpu_parallel(total, count == 1 ? tensors[0].param : NULL, multi_range, &c);
    free(start);
    return FOPT_SUCCESS;
}

/* ---- public entry points ----
 * fopt_adam_step_cpu, fopt_rmsprop_step_cpu, fopt_adam_step_cpu_multi, fopt_rmsprop_step_cpu_multi */
FOPT_DEFINE_FLAT_ENTRIES(cpu, fopt_cpu_multi)
FOPT_DEFINE_MULTI_ENTRIES(fopt_adam_step_cpu_multi, fopt_rmsprop_step_cpu_multi, fopt_cpu_multi)
