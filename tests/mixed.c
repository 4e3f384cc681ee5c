/* Helpers of the mixed-precision and step-option suites (tests/mixed.h). */
#include "mixed.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "cpu_internal.h"
#include "dtype.h"
#if FOPT_TEST_KERNELS
#include "host_run.h"
#endif

/* ---- configs ---------------------------------------------------------------------------------- */

const fopt_variant *mx_variant(const char *name)
{
    for (size_t i = 0; i < fopt_variant_count; i++)
        if (strcmp(fopt_variants[i].name, name) == 0)
            return &fopt_variants[i];
    cr_assert_fail("no variant named %s in bench/variants.c", name);
    return NULL;
}

mx_config mx_config_make(const fopt_variant *v, fopt_precision pr)
{
    mx_config c;
    memset(&c, 0, sizeof c);
    c.v = v;
    c.a = v->a;
    c.r = v->r;
    if (v->adam)
        c.a.precision = pr;
    else
        c.r.precision = pr;
    return c;
}

mx_config mx_rmsprop(double lr, double alpha, double eps, fopt_precision pr)
{
    mx_config c = mx_config_make(mx_variant("rmsprop"), pr);
    c.r.lr = lr;
    c.r.alpha = alpha;
    c.r.eps = eps;
    c.r.weight_decay = 0.0;
    c.r.momentum = 0.0;
    c.r.centered = false;
    c.r.maximize = false;
    return c;
}

const fopt_precision *mx_precision(const mx_config *c) { return c->v->adam ? &c->a.precision : &c->r.precision; }
fopt_precision *mx_precision_mut(mx_config *c) { return c->v->adam ? &c->a.precision : &c->r.precision; }

unsigned mx_states(const mx_config *c)
{
    if (c->v->adam)
        return 3u | (c->a.amsgrad ? 4u : 0u);
    return 1u | (c->r.momentum > 0.0 ? 2u : 0u) | (c->r.centered ? 4u : 0u);
}

fopt_master_mode mx_master_mode(const mx_config *c, fopt_dtype dtype)
{
    const fopt_precision *pr = mx_precision(c);
    if (dtype == FOPT_FLOAT32 || !pr->master_weights)
        return FOPT_MASTER_NONE;
    return pr->master_remainder && dtype == FOPT_BFLOAT16 ? FOPT_MASTER_REMAINDER : FOPT_MASTER_F32;
}

const char *mx_dtype_name(fopt_dtype d)
{
    return d == FOPT_FLOAT32 ? "fp32" : d == FOPT_FLOAT16 ? "fp16" : d == FOPT_BFLOAT16 ? "bf16" : "?";
}

size_t mx_dtype_bytes(fopt_dtype d) { return d == FOPT_FLOAT32 ? 4 : 2; }

const char *mx_precision_name(const fopt_precision *pr, char *buf, size_t len)
{
    snprintf(buf, len, "%s states, %s", mx_dtype_name(pr->state_dtype),
             pr->stochastic_rounding ? "stochastic rounding"
             : pr->master_remainder  ? "master remainder"
             : pr->master_weights    ? "fp32 master"
                                     : "no master");
    return buf;
}

/* ---- bits ------------------------------------------------------------------------------------ */

uint32_t mx_bits(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    return u;
}

float mx_float(uint32_t u)
{
    float x;
    memcpy(&x, &u, 4);
    return x;
}

bool mx_is_nan16(uint16_t h, fopt_dtype d)
{
    return d == FOPT_FLOAT16 ? (h & 0x7fffu) > 0x7c00u : (h & 0x7fffu) > 0x7f80u;
}

float mx_get(const void *p, fopt_dtype d, size_t i)
{
    switch (d) {
    case FOPT_FLOAT16: return fopt_f16_to_f32(((const uint16_t *)p)[i]);
    case FOPT_BFLOAT16: return fopt_bf16_to_f32(((const uint16_t *)p)[i]);
    default: return ((const float *)p)[i];
    }
}

void mx_put(void *p, fopt_dtype d, size_t i, float x)
{
    switch (d) {
    case FOPT_FLOAT16: ((uint16_t *)p)[i] = fopt_f32_to_f16(x); break;
    case FOPT_BFLOAT16: ((uint16_t *)p)[i] = fopt_f32_to_bf16(x); break;
    default: ((float *)p)[i] = x; break;
    }
}

/* ---- buffers ----------------------------------------------------------------------------------- */

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    cr_assert_not_null(p, "out of host memory");
    return p;
}

static mx_buf buf_make(size_t bytes, size_t off_bytes)
{
    mx_buf b;
    b.total = (MX_GUARD + off_bytes + bytes + MX_GUARD + 63) / 64 * 64;
    b.alloc = aligned_alloc(64, b.total);
    cr_assert_not_null(b.alloc, "out of host memory for %zu bytes", b.total);
    memset(b.alloc, MX_GUARD_BYTE, b.total);
    b.p = b.alloc + MX_GUARD + off_bytes;
    b.bytes = bytes;
    memset(b.p, 0, bytes);
    return b;
}

static bool buf_guards_ok(const mx_buf *b)
{
    if (!b->alloc)
        return true;
    const unsigned char *p = b->p;
    for (const unsigned char *q = b->alloc; q < p; q++)
        if (*q != MX_GUARD_BYTE)
            return false;
    for (const unsigned char *q = p + b->bytes; q < b->alloc + b->total; q++)
        if (*q != MX_GUARD_BYTE)
            return false;
    return true;
}

/* Signed values, log-uniform between 10^lo and 10^hi (a uniform binary exponent and random
 * significand bits), about one in zero_every exactly 0. */
static void fill_values(test_rng *r, void *p, fopt_dtype d, size_t n, double lo, double hi, unsigned zero_every)
{
    const int e_lo = (int)floor(lo * 3.321928094887362), e_hi = (int)ceil(hi * 3.321928094887362);
    const uint64_t span = (uint64_t)(e_hi - e_lo);
    for (size_t i = 0; i < n; i++) {
        const uint64_t b = test_rng_next(r);
        float x = 0.0f;
        if (!(zero_every && (b >> 40) % zero_every == 0)) {
            const int e = e_lo + (int)((b >> 32 & 0xff) % span);
            x = mx_float((uint32_t)(b & 1) << 31 | (uint32_t)(e + 127) << 23 | (uint32_t)(b >> 1 & 0x7fffffu));
        }
        mx_put(p, d, i, x);
    }
}

/* A set of count tensors with these specs, its per-tensor arrays zeroed. */
static mx_set *set_alloc(const mx_spec *spec, size_t count, fopt_dtype state_dtype)
{
    mx_set *s = xcalloc(1, sizeof *s);
    s->count = count;
    s->state_dtype = state_dtype;
    s->spec = xcalloc(count, sizeof *s->spec);
    memcpy(s->spec, spec, count * sizeof *spec);
    s->param = xcalloc(count, sizeof(mx_buf));
    s->grad = xcalloc(count, sizeof(mx_buf));
    s->master = xcalloc(count, sizeof(mx_buf));
    for (int j = 0; j < FOPT_MAX_STATES; j++)
        s->state[j] = xcalloc(count, sizeof(mx_buf));
    s->t = xcalloc(count, sizeof *s->t);
    s->mm = xcalloc(count, sizeof *s->mm);
    return s;
}

mx_set *mx_set_make(const mx_config *c, const mx_spec *spec, size_t count, uint64_t seed)
{
    test_rng r = test_rng_make(seed);
    const unsigned states = mx_states(c);
    const fopt_precision *pr = mx_precision(c);
    mx_set *s = set_alloc(spec, count, pr->state_dtype);
    const size_t sb = mx_dtype_bytes(pr->state_dtype);
    for (size_t k = 0; k < count; k++) {
        const mx_spec *sp = &spec[k];
        const size_t eb = mx_dtype_bytes(sp->dtype), n = sp->numel;
        s->mm[k] = mx_master_mode(c, sp->dtype);
        s->param[k] = buf_make(n * eb, sp->param_off * eb);
        s->grad[k] = buf_make(n * eb, sp->grad_off * eb);
        fill_values(&r, s->param[k].p, sp->dtype, n, -3.0, 1.0, 17);
        s->t[k].param = s->param[k].p;
        s->t[k].grad = s->grad[k].p;
        s->t[k].numel = n;
        s->t[k].dtype = sp->dtype;
        if (s->mm[k] != FOPT_MASTER_NONE) {
            const size_t mb = s->mm[k] == FOPT_MASTER_F32 ? 4 : 2;
            s->master[k] = buf_make(n * mb, sp->master_off * mb);
            if (s->mm[k] == FOPT_MASTER_F32)
                for (size_t i = 0; i < n; i++)
                    ((float *)s->master[k].p)[i] = mx_get(s->param[k].p, sp->dtype, i);
            s->t[k].master = s->master[k].p;
        }
        for (int j = 0; j < FOPT_MAX_STATES; j++)
            if (states >> j & 1u) {
                s->state[j][k] = buf_make(n * sb, sp->state_off[j] * sb);
                s->t[k].state[j] = s->state[j][k].p;
            }
    }
    return s;
}

static mx_buf buf_clone(const mx_buf *b)
{
    mx_buf c = *b;
    if (!b->alloc)
        return c;
    c.alloc = aligned_alloc(64, b->total);
    cr_assert_not_null(c.alloc);
    memcpy(c.alloc, b->alloc, b->total);
    c.p = c.alloc + ((unsigned char *)b->p - b->alloc);
    return c;
}

mx_set *mx_set_clone(const mx_set *s)
{
    const size_t n = s->count;
    mx_set *c = set_alloc(s->spec, n, s->state_dtype);
    memcpy(c->mm, s->mm, n * sizeof *c->mm);
    for (size_t k = 0; k < n; k++) {
        c->param[k] = buf_clone(&s->param[k]);
        c->grad[k] = buf_clone(&s->grad[k]);
        c->master[k] = buf_clone(&s->master[k]);
        c->t[k] = s->t[k];
        c->t[k].param = c->param[k].p;
        c->t[k].grad = c->grad[k].p;
        c->t[k].master = s->t[k].master ? c->master[k].p : NULL;
        for (int j = 0; j < FOPT_MAX_STATES; j++) {
            c->state[j][k] = buf_clone(&s->state[j][k]);
            c->t[k].state[j] = s->t[k].state[j] ? c->state[j][k].p : NULL;
        }
    }
    return c;
}

void mx_set_free(mx_set *s)
{
    if (!s)
        return;
    for (size_t k = 0; k < s->count; k++) {
        free(s->param[k].alloc);
        free(s->grad[k].alloc);
        free(s->master[k].alloc);
        for (int j = 0; j < FOPT_MAX_STATES; j++)
            free(s->state[j][k].alloc);
    }
    free(s->param);
    free(s->grad);
    free(s->master);
    for (int j = 0; j < FOPT_MAX_STATES; j++)
        free(s->state[j]);
    free(s->t);
    free(s->spec);
    free(s->mm);
    free(s);
}

void mx_set_fill_grads(mx_set *s, test_rng *r, double lo_exp, double hi_exp, unsigned zero_every)
{
    for (size_t k = 0; k < s->count; k++)
        fill_values(r, s->grad[k].p, s->spec[k].dtype, s->spec[k].numel, lo_exp, hi_exp, zero_every);
}

void mx_set_copy_grads(mx_set *dst, const mx_set *src)
{
    for (size_t k = 0; k < src->count; k++)
        memcpy(dst->grad[k].p, src->grad[k].p, src->grad[k].bytes);
}

float mx_param_value(const mx_set *s, size_t k, size_t i)
{
    switch (s->mm[k]) {
    case FOPT_MASTER_F32: return ((const float *)s->master[k].p)[i];
    case FOPT_MASTER_REMAINDER:
        return fopt_remainder_decode(((const uint16_t *)s->param[k].p)[i], ((const uint16_t *)s->master[k].p)[i]);
    default: return mx_get(s->param[k].p, s->spec[k].dtype, i);
    }
}

size_t mx_set_total(const mx_set *s)
{
    size_t n = 0;
    for (size_t k = 0; k < s->count; k++)
        n += s->spec[k].numel;
    return n;
}

/* ---- comparisons -------------------------------------------------------------------------------- */

/* First element where two buffers of `kind` differ under the NaN rule; n when none. kind: a dtype,
 * or -1 for exact 16-bit integers (remainders). */
static size_t first_diff(const void *a, const void *b, int kind, size_t n, uint32_t *va, uint32_t *vb)
{
    if (memcmp(a, b, n * (kind == FOPT_FLOAT32 ? 4 : 2)) == 0)
        return n;
    if (kind == FOPT_FLOAT32) {
        const float *x = a, *y = b;
        for (size_t i = 0; i < n; i++) {
            if (isnan(x[i]) && isnan(y[i]))
                continue;
            if (mx_bits(x[i]) != mx_bits(y[i])) {
                *va = mx_bits(x[i]);
                *vb = mx_bits(y[i]);
                return i;
            }
        }
        return n;
    }
    const uint16_t *x = a, *y = b;
    for (size_t i = 0; i < n; i++) {
        if (kind >= 0 && mx_is_nan16(x[i], (fopt_dtype)kind) && mx_is_nan16(y[i], (fopt_dtype)kind))
            continue;
        if (x[i] != y[i]) {
            *va = x[i];
            *vb = y[i];
            return i;
        }
    }
    return n;
}

static bool same_buf(const mx_set *s, size_t k, const mx_buf *a, const mx_buf *b, int kind, const char *what,
                     char *msg, size_t len)
{
    if (!a->alloc)
        return true;
    uint32_t va = 0, vb = 0;
    size_t n = s->spec[k].numel;
    size_t i = first_diff(a->p, b->p, kind, n, &va, &vb);
    if (i == n)
        return true;
    const mx_spec *sp = &s->spec[k];
    snprintf(msg, len,
             "tensor %zu (numel %zu, %s, offsets param %u grad %u master %u states %u/%u/%u) %s[%zu]: "
             "0x%08x vs 0x%08x",
             k, sp->numel, mx_dtype_name(sp->dtype), sp->param_off, sp->grad_off, sp->master_off,
             sp->state_off[0], sp->state_off[1], sp->state_off[2], what, i, (unsigned)va, (unsigned)vb);
    return false;
}

bool mx_set_same(const mx_set *a, const mx_set *b, char *msg, size_t len)
{
    static const char *const state_names[FOPT_MAX_STATES] = {"state[0]", "state[1]", "state[2]"};
    for (size_t k = 0; k < a->count; k++) {
        const int d = (int)a->spec[k].dtype;
        if (!same_buf(a, k, &a->param[k], &b->param[k], d, "param", msg, len) ||
            !same_buf(a, k, &a->grad[k], &b->grad[k], d, "grad", msg, len) ||
            !same_buf(a, k, &a->master[k], &b->master[k], a->mm[k] == FOPT_MASTER_F32 ? FOPT_FLOAT32 : -1,
                      a->mm[k] == FOPT_MASTER_F32 ? "master" : "remainder", msg, len))
            return false;
        for (int j = 0; j < FOPT_MAX_STATES; j++)
            if (!same_buf(a, k, &a->state[j][k], &b->state[j][k], (int)a->state_dtype, state_names[j], msg, len))
                return false;
    }
    return true;
}

bool mx_set_guards_ok(const mx_set *s, char *msg, size_t len)
{
    for (size_t k = 0; k < s->count; k++) {
        const mx_buf *bufs[3 + FOPT_MAX_STATES] = {&s->param[k], &s->grad[k], &s->master[k],
                                                   &s->state[0][k], &s->state[1][k], &s->state[2][k]};
        static const char *const names[] = {"param", "grad", "master", "state[0]", "state[1]", "state[2]"};
        for (int b = 0; b < 3 + FOPT_MAX_STATES; b++)
            if (!buf_guards_ok(bufs[b])) {
                snprintf(msg, len, "tensor %zu (numel %zu): a write outside %s", k, s->spec[k].numel, names[b]);
                return false;
            }
    }
    return true;
}

size_t mx_set_params_changed(const mx_set *a, const mx_set *b)
{
    size_t changed = 0;
    for (size_t k = 0; k < a->count; k++) {
        const size_t eb = mx_dtype_bytes(a->spec[k].dtype);
        const unsigned char *x = a->param[k].p, *y = b->param[k].p;
        for (size_t i = 0; i < a->spec[k].numel; i++)
            changed += memcmp(x + i * eb, y + i * eb, eb) != 0;
    }
    return changed;
}

/* ---- snapshots ------------------------------------------------------------------------------- */

struct mx_snapshot {
    size_t nbufs;
    unsigned char **img;
};

static const mx_buf *snap_buf(const mx_set *s, size_t idx)
{
    size_t k = idx / (3 + FOPT_MAX_STATES), b = idx % (3 + FOPT_MAX_STATES);
    switch (b) {
    case 0: return &s->param[k];
    case 1: return &s->grad[k];
    case 2: return &s->master[k];
    default: return &s->state[b - 3][k];
    }
}

mx_snapshot *mx_snapshot_take(const mx_set *s)
{
    mx_snapshot *snap = xcalloc(1, sizeof *snap);
    snap->nbufs = s->count * (3 + FOPT_MAX_STATES);
    snap->img = xcalloc(snap->nbufs, sizeof *snap->img);
    for (size_t i = 0; i < snap->nbufs; i++) {
        const mx_buf *b = snap_buf(s, i);
        if (!b->alloc)
            continue;
        snap->img[i] = malloc(b->total);
        cr_assert_not_null(snap->img[i]);
        memcpy(snap->img[i], b->alloc, b->total);
    }
    return snap;
}

bool mx_snapshot_same(const mx_snapshot *snap, const mx_set *s, char *msg, size_t len)
{
    static const char *const names[] = {"param", "grad", "master", "state[0]", "state[1]", "state[2]"};
    for (size_t i = 0; i < snap->nbufs; i++) {
        const mx_buf *b = snap_buf(s, i);
        if (!b->alloc)
            continue;
        for (size_t j = 0; j < b->total; j++)
            if (snap->img[i][j] != b->alloc[j]) {
                long off = (long)j - (long)((unsigned char *)b->p - b->alloc);
                snprintf(msg, len, "tensor %zu's %s changed at byte %ld (0x%02x -> 0x%02x)",
                         i / (3 + FOPT_MAX_STATES), names[i % (3 + FOPT_MAX_STATES)], off, snap->img[i][j],
                         b->alloc[j]);
                return false;
            }
    }
    return true;
}

void mx_snapshot_free(mx_snapshot *snap)
{
    if (!snap)
        return;
    for (size_t i = 0; i < snap->nbufs; i++)
        free(snap->img[i]);
    free(snap->img);
    free(snap);
}

/* ---- paths ----------------------------------------------------------------------------------- */

const char *mx_path_name(mx_path p)
{
    static const char *const names[] = {"reference", "fast CPU path", "host-run kernels",
                                        "host-run kernels (small chunks, device scalars)"};
    return (unsigned)p < MX_PATHS ? names[p] : "?";
}

fopt_status mx_step(mx_path p, const mx_config *c, int64_t step, const fopt_host_tensor *t, size_t count,
                    const fopt_step_options *o)
{
    const bool adam = c->v->adam;
    switch (p) {
    case MX_REF:
        return adam ? fopt_adam_step_ref_multi(&c->a, step, t, count, o)
                    : fopt_rmsprop_step_ref_multi(&c->r, step, t, count, o);
    case MX_CPU:
        return adam ? fopt_adam_step_cpu_multi(&c->a, step, t, count, o)
                    : fopt_rmsprop_step_cpu_multi(&c->r, step, t, count, o);
#if FOPT_TEST_KERNELS
    case MX_HOST:
    case MX_HOST_SMALL: {
        fopt_host_run_set_mode(p == MX_HOST ? (fopt_host_run_mode){0, 0}
                                            : (fopt_host_run_mode){FOPT_MIN_CHUNK_SHIFT, 1});
        fopt_status st = adam ? fopt_adam_step_kernels_host(&c->a, step, t, count, o)
                              : fopt_rmsprop_step_kernels_host(&c->r, step, t, count, o);
        fopt_host_run_set_mode((fopt_host_run_mode){0, 0});
        return st;
    }
#endif
    default: break;
    }
    cr_assert_fail("unknown path %d", (int)p);
    return FOPT_ERROR_INVALID_VALUE;
}

fopt_status mx_sq_sum(mx_path p, const fopt_host_tensor *t, size_t count, const float *scale, double *out)
{
    if (p == MX_REF)
        return fopt_grad_sq_sum_ref_multi(t, count, scale, out);
    if (p == MX_CPU)
        return fopt_grad_sq_sum_cpu_multi(t, count, scale, out);
    cr_assert_fail("no sum-of-squares entry point for %s", mx_path_name(p));
    return FOPT_ERROR_INVALID_VALUE;
}

int mx_isa_count(void) { return (int)fopt_cpu_isa_max() + 1; }

const char *mx_isa_name(int isa) { return fopt_cpu_isa_name((fopt_cpu_isa_level)isa); }

void mx_cpu_use(int isa, int threads)
{
    const char *name = mx_isa_name(isa);
    cr_assert_eq(fopt_cpu_force_isa(name), FOPT_SUCCESS, "forcing %s: %s", name, fopt_last_error());
    cr_assert_str_eq(fopt_cpu_isa(), name);
    cr_assert_eq(fopt_cpu_set_threads(threads), FOPT_SUCCESS);
    fopt_cpu_set_grain(1);
}

void mx_cpu_reset(void)
{
    fopt_cpu_force_isa(NULL);
    fopt_cpu_set_threads(0);
    fopt_cpu_set_grain(0);
}

/* ---- conversion oracles -------------------------------------------------------------------- */

double mx_f16_value(uint16_t h)
{
    unsigned e = h >> 10 & 0x1fu, m = h & 0x3ffu;
    return e == 0 ? ldexp((double)m, -24) : ldexp((double)(1024u + m), (int)e - 25);
}

double mx_bf16_value(uint16_t h)
{
    unsigned e = h >> 7 & 0xffu, m = h & 0x7fu;
    return e == 0 ? ldexp((double)m, -133) : ldexp((double)(128u + m), (int)e - 134);
}

/* The two neighbours of a finite a >= 0 among the non-negative 16-bit values: the largest
 * pattern lo with value(lo) <= a (found from a's exponent and significand in double, not by bit
 * manipulation of the pattern), and lo + 1 (the patterns of each format increase with the value,
 * and the one after the largest finite value is inf, counted as the next power of two). Then the
 * nearer one by exact double arithmetic, ties to the even pattern or away from zero. */
static uint16_t f16_floor_pattern(double a)
{
    if (a < 0x1p-14) /* zero or subnormal: a / 2^-24 truncated */
        return (uint16_t)floor(ldexp(a, 24));
    int e = ilogb(a); /* -14 .. 15 */
    if (e > 15)
        return 0x7c00u;
    double m = floor(ldexp(a, 10 - e)); /* 1024 .. 2047 */
    return (uint16_t)(((unsigned)(e + 15) << 10) | (unsigned)(m - 1024.0));
}

static uint16_t bf16_floor_pattern(double a)
{
    if (a < 0x1p-126) /* zero or subnormal: a / 2^-133 truncated */
        return (uint16_t)floor(ldexp(a, 133));
    int e = ilogb(a); /* -126 .. 127 */
    double m = floor(ldexp(a, 7 - e)); /* 128 .. 255 */
    return (uint16_t)(((unsigned)(e + 127) << 7) | (unsigned)(m - 128.0));
}

static uint16_t nearest(double a, double (*value)(uint16_t), uint16_t (*floor_pattern)(double), uint16_t top,
                        bool ties_away)
{
    if (a >= value(top))
        return top;
    uint16_t lo = floor_pattern(a), hi = (uint16_t)(lo + 1);
    double dlo = a - value(lo), dhi = value(hi) - a; /* both exact: a and the values share a grid */
    if (dlo < dhi)
        return lo;
    if (dlo > dhi)
        return hi;
    return ties_away ? hi : (lo & 1u) ? hi : lo;
}

/* x rounded to the 16-bit format of value() and floor_pattern() (top: its infinity, qnan: its quiet
 * NaN), sign kept. */
static uint16_t round16(float x, double (*value)(uint16_t), uint16_t (*floor_pattern)(double), uint16_t top,
                        uint16_t qnan, bool ties_away)
{
    uint16_t sign = (mx_bits(x) >> 31) ? 0x8000u : 0u;
    if (isnan(x))
        return sign | qnan;
    return sign | nearest(fabs((double)x), value, floor_pattern, top, ties_away);
}

uint16_t mx_oracle_f16(float x) { return round16(x, mx_f16_value, f16_floor_pattern, 0x7c00u, 0x7e00u, false); }
uint16_t mx_oracle_bf16(float x) { return round16(x, mx_bf16_value, bf16_floor_pattern, 0x7f80u, 0x7fc0u, false); }

uint16_t mx_oracle_bf16_ties_away(float x)
{
    return round16(x, mx_bf16_value, bf16_floor_pattern, 0x7f80u, 0x7fc0u, true);
}

float mx_oracle_f16_to_f32(uint16_t h)
{
    const bool neg = h & 0x8000u;
    if ((h & 0x7fffu) > 0x7c00u)
        return neg ? -NAN : NAN;
    if ((h & 0x7fffu) == 0x7c00u)
        return neg ? -INFINITY : INFINITY;
    float v = (float)mx_f16_value(h & 0x7fffu);
    return neg ? -v : v;
}

/* ---- one step on every path, compared ------------------------------------------------------- */

#define MX_NORM_UNSET 0x7fbadbadu /* a NaN pattern no path writes */
#define MX_FOUND_UNSET (-7)

void mx_step_and_compare(const mx_config *c, int64_t step, mx_set *const *sets, int npaths,
                         const fopt_step_options *o, const char *what)
{
    float norm[MX_PATHS];
    int32_t found[MX_PATHS];
    char msg[512];
    for (int p = 0; p < npaths; p++) {
        fopt_step_options op;
        if (o) {
            op = *o;
            norm[p] = mx_float(MX_NORM_UNSET);
            found[p] = MX_FOUND_UNSET;
            op.grad_norm = o->grad_norm ? &norm[p] : NULL;
            op.found_inf = o->found_inf ? &found[p] : NULL;
        }
        fopt_status st = mx_step((mx_path)p, c, step, sets[p]->t, sets[p]->count, o ? &op : NULL);
        cr_assert_eq(st, FOPT_SUCCESS, "%s: step %lld on the %s: %s", what, (long long)step,
                     mx_path_name((mx_path)p), fopt_last_error());
        if (!mx_set_guards_ok(sets[p], msg, sizeof msg))
            cr_assert_fail("%s: step %lld on the %s: %s", what, (long long)step, mx_path_name((mx_path)p), msg);
    }
    for (int p = 1; p < npaths; p++) {
        if (!mx_set_same(sets[p], sets[MX_REF], msg, sizeof msg))
            cr_assert_fail("%s: step %lld: the %s differs from the reference: %s", what, (long long)step,
                           mx_path_name((mx_path)p), msg);
        if (o && o->grad_norm) {
            cr_assert(mx_bits(norm[0]) != MX_NORM_UNSET, "%s: step %lld: the reference wrote no grad_norm", what,
                      (long long)step);
            cr_assert(mx_bits(norm[p]) == mx_bits(norm[0]) || (isnan(norm[p]) && isnan(norm[0])),
                      "%s: step %lld: grad_norm of the %s %.9g (0x%08x), reference %.9g (0x%08x)", what,
                      (long long)step, mx_path_name((mx_path)p), (double)norm[p], (unsigned)mx_bits(norm[p]),
                      (double)norm[0], (unsigned)mx_bits(norm[0]));
        }
        if (o && o->found_inf) {
            cr_assert(found[0] == 0 || found[0] == 1, "%s: step %lld: reference found_inf %d", what,
                      (long long)step, (int)found[0]);
            cr_assert_eq(found[p], found[0], "%s: step %lld: found_inf of the %s %d, reference %d", what,
                         (long long)step, mx_path_name((mx_path)p), (int)found[p], (int)found[0]);
        }
    }
    if (o && o->grad_norm)
        *o->grad_norm = norm[0];
    if (o && o->found_inf)
        *o->found_inf = found[0];
}

mx_set *mx_step_every_isa(const mx_config *c, const mx_set *start, int64_t step,
                          const fopt_step_options *o, int first_threads, const char *label)
{
    mx_set *out = NULL;
    for (int isa = 0; isa < mx_isa_count(); isa++) {
        mx_set *sets[MX_PATHS];
        for (int p = 0; p < MX_PATHS; p++)
            sets[p] = mx_set_clone(start);
        mx_cpu_use(isa, isa % 2 ? 3 - first_threads : first_threads);
        char what[256];
        snprintf(what, sizeof what, "%s (fast path %s)", label, mx_isa_name(isa));
        mx_step_and_compare(c, step, sets, MX_PATHS, o, what);
        for (int p = 1; p < MX_PATHS; p++)
            mx_set_free(sets[p]);
        if (out)
            mx_set_free(out);
        out = sets[0];
    }
    mx_cpu_reset();
    return out;
}

void mx_expect_skip(const mx_config *c, const mx_set *s, const float *scale, const double *ext, bool norm_nan,
                    const char *label)
{
    char msg[512];
    for (int p = 0; p < MX_PATHS; p++)
        for (int isa = 0; isa < (p == MX_CPU ? mx_isa_count() : 1); isa++) {
            mx_set *t = mx_set_clone(s);
            mx_snapshot *snap = mx_snapshot_take(t);
            if (p == MX_CPU)
                mx_cpu_use(isa, 2);
            float norm = 0.0f;
            int32_t found = -1;
            fopt_step_options o = {.grad_scale = scale, .max_grad_norm = 0.5, .grad_norm = &norm, .found_inf = &found,
                                   .zero_grads = true, .grad_sq_sum = ext};
            cr_assert_eq(mx_step((mx_path)p, c, 3, t->t, t->count, &o), FOPT_SUCCESS, "%s", fopt_last_error());
            cr_assert_eq(found, 1, "%s: %s: found_inf %d", label, mx_path_name((mx_path)p), (int)found);
            if (norm_nan)
                cr_assert(isnan(norm), "%s: %s: grad_norm %g, want NaN", label, mx_path_name((mx_path)p), (double)norm);
            else
                cr_assert(!isfinite(norm), "%s: %s: grad_norm %g", label, mx_path_name((mx_path)p), (double)norm);
            if (!mx_snapshot_same(snap, t, msg, sizeof msg))
                cr_assert_fail("%s: %s: the skipped step wrote: %s", label, mx_path_name((mx_path)p), msg);
            mx_snapshot_free(snap);
            mx_set_free(t);
        }
    mx_cpu_reset();
}

/* ---- an independent model of the storage rules ------------------------------------------------ */

static float model_up(const void *p, fopt_dtype d, size_t i)
{
    switch (d) {
    case FOPT_FLOAT16: return mx_oracle_f16_to_f32(((const uint16_t *)p)[i]);
    case FOPT_BFLOAT16: return mx_float((uint32_t)((const uint16_t *)p)[i] << 16);
    default: return ((const float *)p)[i];
    }
}

static void model_down(void *p, fopt_dtype d, size_t i, float x)
{
    switch (d) {
    case FOPT_FLOAT16: ((uint16_t *)p)[i] = mx_oracle_f16(x); break;
    case FOPT_BFLOAT16: ((uint16_t *)p)[i] = mx_oracle_bf16(x); break;
    default: ((float *)p)[i] = x; break;
    }
}

double mx_model_sq_sum(const mx_set *s, const float *scale)
{
    double outer[1024] = {0.0};
    size_t np = 0;
    for (size_t k = 0; k < s->count; k++) {
        const size_t n = s->spec[k].numel;
        for (size_t begin = 0; begin < n; begin += 16384) {
            double lanes[1024] = {0.0};
            for (size_t j = 0; j < 16384 && begin + j < n; j++) {
                float u = model_up(s->grad[k].p, s->spec[k].dtype, begin + j);
                if (scale)
                    u = u / *scale;
                lanes[j % 1024] += (double)u * (double)u;
            }
            for (int w = 1; w < 1024; w *= 2)
                for (int l = 0; l < 1024; l += 2 * w)
                    lanes[l] += lanes[l + w];
            outer[np % 1024] += lanes[0];
            np++;
        }
    }
    for (int w = 1; w < 1024; w *= 2)
        for (int l = 0; l < 1024; l += 2 * w)
            outer[l] += outer[l + w];
    return outer[0];
}

void mx_model_step(const mx_config *c, int64_t step, mx_set *s, const fopt_step_options *o)
{
    const fopt_precision *pr = mx_precision(c);
    const unsigned states = mx_states(c);
    const float *scale = o ? o->grad_scale : NULL;
    float coef = 1.0f;
    const bool clip = o && o->max_grad_norm > 0.0;
    if (o && (clip || o->grad_norm || o->found_inf || o->grad_sq_sum)) {
        double total = o->grad_sq_sum ? *o->grad_sq_sum : mx_model_sq_sum(s, scale);
        const bool bad = isnan(total) || isinf(total);
        if (o->grad_norm)
            *o->grad_norm = (float)sqrt(total);
        if (o->found_inf) {
            *o->found_inf = bad;
            if (bad)
                return;
        }
        if (clip) {
            double cd = o->max_grad_norm / (sqrt(total) + 1e-6);
            coef = (cd < 1.0 || isnan(cd)) ? (float)cd : 1.0f;
        }
    }
    /* the math: the flat fp32 reference on one element at a time */
    fopt_adam_config a = c->a;
    fopt_rmsprop_config r = c->r;
    memset(&a.precision, 0, sizeof a.precision);
    memset(&r.precision, 0, sizeof r.precision);
    for (size_t k = 0; k < s->count; k++) {
        const fopt_dtype d = s->spec[k].dtype;
        const uint64_t key = fopt_sr_key(pr->seed, step, k);
        for (size_t i = 0; i < s->spec[k].numel; i++) {
            float p;
            if (s->mm[k] == FOPT_MASTER_F32)
                p = ((float *)s->master[k].p)[i];
            else if (s->mm[k] == FOPT_MASTER_REMAINDER)
                p = mx_float(((uint32_t)((uint16_t *)s->param[k].p)[i] << 16) +
                             (uint32_t)(int32_t)(int16_t)((uint16_t *)s->master[k].p)[i]);
            else
                p = model_up(s->param[k].p, d, i);
            float g = model_up(s->grad[k].p, d, i);
            if (scale)
                g = g / *scale;
            if (clip)
                g = g * coef;
            float st[FOPT_MAX_STATES] = {0.0f, 0.0f, 0.0f};
            for (int j = 0; j < FOPT_MAX_STATES; j++)
                if (states >> j & 1u)
                    st[j] = model_up(s->state[j][k].p, s->state_dtype, i);
            fopt_status status = c->v->adam
                                     ? fopt_adam_step_ref(&a, step, 1, &p, &g, &st[0], &st[1], &st[2])
                                     : fopt_rmsprop_step_ref(&r, 1, &p, &g, &st[0], &st[1], &st[2]);
            cr_assert_eq(status, FOPT_SUCCESS, "model step: %s", fopt_last_error());
            if (o && o->zero_grads)
                model_down(s->grad[k].p, d, i, 0.0f);
            uint16_t *p16 = s->param[k].p;
            if (s->mm[k] == FOPT_MASTER_F32) {
                ((float *)s->master[k].p)[i] = p;
                model_down(s->param[k].p, d, i, p);
            } else if (s->mm[k] == FOPT_MASTER_REMAINDER) {
                uint16_t hi = mx_oracle_bf16_ties_away(p);
                p16[i] = hi;
                ((uint16_t *)s->master[k].p)[i] = isnan(p) ? 0 : (uint16_t)(mx_bits(p) - ((uint32_t)hi << 16));
            } else if (pr->stochastic_rounding && d == FOPT_BFLOAT16) {
                if (isnan(p) || isinf(p))
                    p16[i] = mx_oracle_bf16(p);
                else
                    p16[i] = (uint16_t)((mx_bits(p) + fopt_sr_random16(key, i)) >> 16);
            } else {
                model_down(s->param[k].p, d, i, p);
            }
            for (int j = 0; j < FOPT_MAX_STATES; j++)
                if (states >> j & 1u)
                    model_down(s->state[j][k].p, s->state_dtype, i, st[j]);
        }
    }
}
