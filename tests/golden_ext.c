#include "golden_ext.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#define GOLDEN_EXT_VERSION 2u
/* name 64, 2 x u32, 6 x f64, 6 x u32, one u64 numel, one step record: the least a case takes */
#define GOLDEN_EXT_MIN_CASE_BYTES (64u + 8u + 48u + 24u + 8u + 24u)
#define GOLDEN_EXT_STEP_BYTES 24u /* u32 flags, f32 scale, f64 max_grad_norm, i32, f32 */
#define GOLDEN_EXT_MAX_TENSORS 4096u

/* ---------------------------------------------------------------------------------------------
 * Reading
 * ------------------------------------------------------------------------------------------- */

size_t golden_ext_dtype_size(fopt_dtype dt) { return dt == FOPT_FLOAT32 ? 4 : 2; }

static size_t round8(size_t x) { return (x + 7u) & ~(size_t)7u; }

static int state_used(const golden_ext_case *c, int slot)
{
    return golden_slot_used(c->optimizer, &c->adam, &c->rmsprop, slot);
}

static void parse_case(golden_reader *r, void *case_)
{
    golden_ext_case *c = case_;
    golden_read_head(r, c->name, &c->optimizer, &c->adam, &c->rmsprop);
    uint32_t dtype = golden_get_u32(r), state_dtype = golden_get_u32(r), master = golden_get_u32(r);
    uint32_t tensor_count = golden_get_u32(r), steps = golden_get_u32(r), pad = golden_get_u32(r);

    cr_assert(dtype <= FOPT_BFLOAT16, "%s: %s: dtype %u", r->file, c->name, dtype);
    cr_assert(state_dtype == FOPT_FLOAT32 || state_dtype == FOPT_BFLOAT16,
              "%s: %s: state dtype %u", r->file, c->name, state_dtype);
    cr_assert(master <= 1 && (!master || dtype != FOPT_FLOAT32),
              "%s: %s: master weights %u with dtype %u", r->file, c->name, master, dtype);
    cr_assert(pad == 0, "%s: %s: nonzero pad", r->file, c->name);
    cr_assert(steps >= 1 && tensor_count >= 1 && tensor_count <= GOLDEN_EXT_MAX_TENSORS,
              "%s: %s: steps %u, tensors %u", r->file, c->name, steps, tensor_count);
    cr_assert(steps <= r->left / GOLDEN_EXT_STEP_BYTES, "%s: %s: %u steps exceed the file",
              r->file, c->name, steps);

    c->dtype = (fopt_dtype)dtype;
    c->state_dtype = (fopt_dtype)state_dtype;
    c->master_weights = master != 0;
    c->steps = steps;
    c->tensor_count = tensor_count;
    fopt_precision prec = {.state_dtype = c->state_dtype, .master_weights = c->master_weights};
    c->adam.precision = prec;
    c->rmsprop.precision = prec;

    /* Sizes, bounded by what is left of the file before anything is multiplied. */
    const size_t es = golden_ext_dtype_size(c->dtype), ss = golden_ext_dtype_size(c->state_dtype);
    int nslots = 0;
    for (int k = 0; k < 3; k++)
        nslots += state_used(c, k);
    /* file bytes per element of a tensor: param0, grads, param, master, states */
    const uint64_t per_elem = (uint64_t)es * (2u + (uint64_t)steps) + (master ? 4u : 0u) +
                              (uint64_t)ss * (uint64_t)nslots;
    uint64_t *numel = malloc(tensor_count * sizeof *numel);
    cr_assert_not_null(numel, "out of memory");
    uint64_t total_elems = 0;
    for (uint32_t t = 0; t < tensor_count; t++) {
        numel[t] = golden_get_u64(r);
        cr_assert(numel[t] >= 1 && numel[t] <= r->left / per_elem,
                  "%s: %s: tensor %u has %llu elements, more than the file holds", r->file,
                  c->name, t, (unsigned long long)numel[t]);
        total_elems += numel[t];
        cr_assert(total_elems <= r->left / per_elem, "%s: %s: tensors exceed the file", r->file,
                  c->name);
    }

    /* One allocation: step records, tensor records, then every array 8-byte aligned. */
    size_t bytes = round8(steps * sizeof(golden_ext_step)) +
                   round8(tensor_count * sizeof(golden_ext_tensor));
    for (uint32_t t = 0; t < tensor_count; t++) {
        size_t n = (size_t)numel[t];
        bytes += round8(n * es) * 2 + round8(n * es * steps) + (master ? round8(n * 4) : 0) +
                 round8(n * ss) * (size_t)nslots;
    }
    unsigned char *mem = calloc(1, bytes);
    cr_assert_not_null(mem, "out of memory for %s", c->name);
    c->storage_ = mem;
    c->step = (golden_ext_step *)mem;
    mem += round8(steps * sizeof(golden_ext_step));
    c->tensor = (golden_ext_tensor *)mem;
    mem += round8(tensor_count * sizeof(golden_ext_tensor));
    for (uint32_t t = 0; t < tensor_count; t++) {
        golden_ext_tensor *x = &c->tensor[t];
        size_t n = (size_t)numel[t];
        x->numel = n;
        x->param0 = mem, mem += round8(n * es);
        x->grads = mem, mem += round8(n * es * steps);
        x->param = mem, mem += round8(n * es);
        if (master)
            x->master = (const float *)mem, mem += round8(n * 4);
        for (int k = 0; k < 3; k++)
            if (state_used(c, k))
                x->state[k] = mem, mem += round8(n * ss);
    }
    free(numel);

    for (uint32_t t = 0; t < tensor_count; t++)
        golden_get_elems(r, (void *)c->tensor[t].param0, c->tensor[t].numel, es);
    for (uint32_t k = 0; k < steps; k++) {
        golden_ext_step *s = &c->step[k];
        s->flags = golden_get_u32(r);
        s->grad_scale = golden_get_f32(r);
        s->max_grad_norm = golden_get_f64(r);
        s->found_inf = (int32_t)golden_get_u32(r);
        s->grad_norm = golden_get_f32(r);
        cr_assert((s->flags & ~7u) == 0, "%s: %s: step %u: unknown step flags %#x", r->file,
                  c->name, k, s->flags);
        cr_assert(isfinite(s->grad_scale) && s->grad_scale > 0.0f &&
                      ((s->flags & GOLDEN_EXT_SCALE) || s->grad_scale == 1.0f),
                  "%s: %s: step %u: grad_scale %g", r->file, c->name, k, (double)s->grad_scale);
        cr_assert(isfinite(s->max_grad_norm) && s->max_grad_norm >= 0.0,
                  "%s: %s: step %u: max_grad_norm %g", r->file, c->name, k, s->max_grad_norm);
        cr_assert(s->found_inf == 0 || (s->found_inf == 1 && (s->flags & GOLDEN_EXT_CHECK_INF)),
                  "%s: %s: step %u: found_inf %d", r->file, c->name, k, (int)s->found_inf);
        cr_assert(s->found_inf || isfinite(s->grad_norm), "%s: %s: step %u: grad_norm %g",
                  r->file, c->name, k, (double)s->grad_norm);
        for (uint32_t t = 0; t < tensor_count; t++) {
            size_t n = c->tensor[t].numel;
            golden_get_elems(r, (unsigned char *)c->tensor[t].grads + (size_t)k * n * es, n, es);
        }
    }
    for (uint32_t t = 0; t < tensor_count; t++) {
        golden_ext_tensor *x = &c->tensor[t];
        golden_get_elems(r, (void *)x->param, x->numel, es);
        if (master)
            golden_get_elems(r, (void *)x->master, x->numel, 4);
        for (int k = 0; k < 3; k++)
            if (x->state[k])
                golden_get_elems(r, (void *)x->state[k], x->numel, ss);
    }
}

GOLDEN_DEFINE_LOAD(golden_ext_load, golden_ext_free, golden_ext_case, GOLDEN_EXT_VERSION, GOLDEN_EXT_MIN_CASE_BYTES,
                   parse_case)

/* ---------------------------------------------------------------------------------------------
 * 16-bit values
 * ------------------------------------------------------------------------------------------- */

float golden_ext_to_float(uint16_t bits, fopt_dtype dt)
{
    uint32_t u;
    if (dt == FOPT_BFLOAT16) {
        u = (uint32_t)bits << 16;
    } else {
        uint32_t sign = (uint32_t)(bits & 0x8000u) << 16, exp = (bits >> 10) & 0x1fu,
                 man = bits & 0x3ffu;
        if (exp == 0x1f) {
            u = sign | 0x7f800000u | (man << 13); /* inf, NaN (payload kept) */
        } else if (exp != 0) {
            u = sign | ((exp + 112u) << 23) | (man << 13);
        } else if (man == 0) {
            u = sign; /* +-0 */
        } else {       /* subnormal: man * 2^-24, exact in fp32 */
            float f = (float)man * 0x1p-24f;
            memcpy(&u, &f, sizeof u);
            u |= sign;
        }
    }
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static int is_nan16(uint16_t b, fopt_dtype dt)
{
    return dt == FOPT_BFLOAT16 ? (b & 0x7f80u) == 0x7f80u && (b & 0x7fu)
                               : (b & 0x7c00u) == 0x7c00u && (b & 0x3ffu);
}

static int is_inf16(uint16_t b, fopt_dtype dt)
{
    return (b & 0x7fffu) == (dt == FOPT_BFLOAT16 ? 0x7f80u : 0x7c00u);
}

uint32_t golden_ext_ulp16(const uint16_t *a, const uint16_t *b, size_t n, fopt_dtype dt,
                          size_t *differing)
{
    uint32_t worst = 0;
    size_t diff = 0;
    for (size_t i = 0; i < n; i++) {
        uint16_t x = a[i], y = b[i];
        uint32_t d;
        if (x == y || ((x & 0x7fffu) == 0 && (y & 0x7fffu) == 0) ||
            (is_nan16(x, dt) && is_nan16(y, dt))) {
            d = 0;
        } else if (is_nan16(x, dt) || is_nan16(y, dt) || is_inf16(x, dt) || is_inf16(y, dt)) {
            d = UINT32_MAX;
        } else {
            /* sign-magnitude to a monotone integer; +0 and -0 both map to 0 */
            int32_t ox = (x & 0x8000u) ? -(int32_t)(x & 0x7fffu) : (int32_t)(x & 0x7fffu);
            int32_t oy = (y & 0x8000u) ? -(int32_t)(y & 0x7fffu) : (int32_t)(y & 0x7fffu);
            d = (uint32_t)(ox > oy ? ox - oy : oy - ox);
        }
        if (d) {
            diff++;
            if (d > worst)
                worst = d;
        }
    }
    if (differing)
        *differing = diff;
    return worst;
}

/* ---------------------------------------------------------------------------------------------
 * Replay
 * ------------------------------------------------------------------------------------------- */

/* The buffers a replay steps: per tensor param (dtype), master (float) and three state slots. */
typedef struct live {
    fopt_host_tensor *ht;
    size_t count;
    size_t es, ss;
} live;

static void *xmalloc(size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);
    cr_assert_not_null(p, "out of memory");
    return p;
}

static live live_make(const golden_ext_case *c)
{
    live L = {xmalloc(c->tensor_count * sizeof(fopt_host_tensor)), c->tensor_count,
              golden_ext_dtype_size(c->dtype), golden_ext_dtype_size(c->state_dtype)};
    for (size_t t = 0; t < c->tensor_count; t++) {
        const golden_ext_tensor *x = &c->tensor[t];
        fopt_host_tensor *h = &L.ht[t];
        memset(h, 0, sizeof *h);
        h->numel = x->numel;
        h->dtype = c->dtype;
        h->param = xmalloc(x->numel * L.es);
        memcpy(h->param, x->param0, x->numel * L.es);
        if (c->master_weights) {
            float *m = xmalloc(x->numel * sizeof(float));
            for (size_t i = 0; i < x->numel; i++)
                m[i] = golden_ext_to_float(((const uint16_t *)x->param0)[i], c->dtype);
            h->master = m;
        }
        for (int k = 0; k < 3; k++)
            if (state_used(c, k)) {
                h->state[k] = calloc(x->numel ? x->numel : 1, L.ss); /* zero bits = 0.0 */
                cr_assert_not_null(h->state[k], "out of memory");
            }
    }
    return L;
}

static void live_free(live *L)
{
    for (size_t t = 0; t < L->count; t++) {
        free(L->ht[t].param);
        free(L->ht[t].master);
        for (int k = 0; k < 3; k++)
            free(L->ht[t].state[k]);
    }
    free(L->ht);
}

/* Every byte of the live buffers, in a fixed order (to check that a skipped step changed
 * nothing). */
static size_t live_bytes(const live *L)
{
    size_t b = 0;
    for (size_t t = 0; t < L->count; t++) {
        const fopt_host_tensor *h = &L->ht[t];
        b += h->numel * L->es + (h->master ? h->numel * 4 : 0);
        for (int k = 0; k < 3; k++)
            b += h->state[k] ? h->numel * L->ss : 0;
    }
    return b;
}

static void live_snapshot(const live *L, unsigned char *dst)
{
    for (size_t t = 0; t < L->count; t++) {
        const fopt_host_tensor *h = &L->ht[t];
        memcpy(dst, h->param, h->numel * L->es), dst += h->numel * L->es;
        if (h->master)
            memcpy(dst, h->master, h->numel * 4), dst += h->numel * 4;
        for (int k = 0; k < 3; k++)
            if (h->state[k])
                memcpy(dst, h->state[k], h->numel * L->ss), dst += h->numel * L->ss;
    }
}

static float value_at(const void *p, size_t i, fopt_dtype dt)
{
    return dt == FOPT_FLOAT32 ? ((const float *)p)[i]
                              : golden_ext_to_float(((const uint16_t *)p)[i], dt);
}

static void set_what(char *dst, size_t size, const char *kind, size_t t)
{
    snprintf(dst, size, "%s (t%zu)", kind, t);
}

/* Compares one kind over the tensor list and folds it into r. */
static void compare_kind(const golden_ext_case *c, const golden_ext_tensor *x,
                         const fopt_host_tensor *h, int kind, golden_ext_result *r)
{
    const char *name;
    fopt_dtype dt;
    if (kind == 0) {
        name = "param", dt = c->dtype;
    } else if (kind == 1) {
        if (!c->master_weights)
            return;
        name = "master", dt = FOPT_FLOAT32;
    } else {
        if (!state_used(c, kind - 2))
            return;
        name = golden_slot_name(c->optimizer, kind - 2), dt = c->state_dtype;
    }
    /* golden_rel_err's measure over the whole list, as one flat vector */
    golden_err acc = {0.0, 0.0, 0};
    size_t diff_t = 0;
    for (size_t t = 0; t < c->tensor_count; t++) {
        const void *got = kind == 0 ? h[t].param : kind == 1 ? h[t].master : h[t].state[kind - 2];
        const void *want = kind == 0   ? x[t].param
                           : kind == 1 ? (const void *)x[t].master
                                       : x[t].state[kind - 2];
        const size_t n = x[t].numel;
        char what[64];
        set_what(what, sizeof what, name, t);
        if (dt == FOPT_FLOAT32) {
            double e = golden_rel_err(got, want, n);
            if (!(e <= r->fp32_tensor_err)) {
                r->fp32_tensor_err = e;
                snprintf(r->fp32_tensor_what, sizeof r->fp32_tensor_what, "%s", what);
            }
            r->count32 += n;
        } else {
            size_t d;
            uint32_t u = golden_ext_ulp16(got, want, n, dt, &d);
            r->count16 += n;
            r->diff16 += d;
            if (u > r->ulp16) {
                r->ulp16 = u;
                snprintf(r->ulp16_what, sizeof r->ulp16_what, "%s", what);
            }
        }
        for (size_t i = 0; i < n; i++)
            if (golden_err_add(&acc, value_at(got, i, dt), value_at(want, i, dt)))
                diff_t = t;
    }
    double e = golden_err_value(&acc);
    double *worst = dt == FOPT_FLOAT32 ? &r->fp32_err : &r->rel16_err;
    char *what = dt == FOPT_FLOAT32 ? r->fp32_what : r->rel16_what;
    if (!(e <= *worst)) {
        *worst = e;
        set_what(what, sizeof r->fp32_what, name, diff_t);
    }
}

void golden_ext_replay(const golden_ext_case *c, golden_ext_adam_fn adam,
                       golden_ext_rmsprop_fn rmsprop, golden_ext_result *result)
{
    golden_ext_result r;
    memset(&r, 0, sizeof r);
    if (c->optimizer == GOLDEN_ADAM)
        cr_assert_not_null(adam, "%s: no Adam step function given", c->name);
    else
        cr_assert_not_null(rmsprop, "%s: no RMSprop step function given", c->name);

    live L = live_make(c);
    size_t snap_bytes = live_bytes(&L);
    unsigned char *before = xmalloc(snap_bytes), *after = xmalloc(snap_bytes);

    int64_t step = 1;
    for (uint32_t k = 0; k < c->steps; k++) {
        const golden_ext_step *s = &c->step[k];
        for (size_t t = 0; t < c->tensor_count; t++)
            L.ht[t].grad =
                (const unsigned char *)c->tensor[t].grads + (size_t)k * L.ht[t].numel * L.es;

        float scale = s->grad_scale, norm = NAN;
        int32_t found = -1;
        fopt_step_options o;
        memset(&o, 0, sizeof o);
        o.grad_scale = (s->flags & GOLDEN_EXT_SCALE) ? &scale : NULL;
        o.max_grad_norm = s->max_grad_norm;
        o.grad_norm = (s->flags & GOLDEN_EXT_WANT_NORM) ? &norm : NULL;
        o.found_inf = (s->flags & GOLDEN_EXT_CHECK_INF) ? &found : NULL;
        const fopt_step_options *opts = (s->flags || s->max_grad_norm > 0.0) ? &o : NULL;

        if (s->found_inf)
            live_snapshot(&L, before);
        fopt_status st = c->optimizer == GOLDEN_ADAM
                             ? adam(&c->adam, step, L.ht, L.count, opts)
                             : rmsprop(&c->rmsprop, step, L.ht, L.count, opts);
        cr_assert_eq(st, FOPT_SUCCESS, "%s: step %u (counter %lld) returned %s (%s)", c->name, k,
                     (long long)step, fopt_status_string(st), fopt_last_error());

        if (s->flags & GOLDEN_EXT_CHECK_INF) {
            if (found != s->found_inf)
                r.found_inf_mismatch++;
            if (found == 0)
                step++;
        } else {
            step++;
        }
        if (s->found_inf) {
            live_snapshot(&L, after);
            if (memcmp(before, after, snap_bytes) != 0)
                r.skipped_changed++;
        } else if (s->flags & GOLDEN_EXT_WANT_NORM) {
            double want = s->grad_norm, e;
            if (norm == s->grad_norm)
                e = 0.0;
            else if (!isfinite(norm) || want == 0.0)
                e = INFINITY;
            else
                e = fabs((double)norm - want) / fabs(want);
            r.norm_compared++;
            if (!(e <= r.norm_err))
                r.norm_err = e;
        }
    }
    r.steps_counted = step - 1;

    for (int kind = 0; kind < 5; kind++)
        compare_kind(c, c->tensor, L.ht, kind, &r);
    free(before);
    free(after);
    live_free(&L);
    *result = r;
}

static const golden_ext_tol *tol_for(const golden_ext_case *c, const golden_ext_tol *fp32_states,
                                     const golden_ext_tol *bf16_states)
{
    return c->state_dtype == FOPT_BFLOAT16 ? bf16_states : fp32_states;
}

double golden_ext_check_file(const char *file_name, golden_ext_adam_fn adam,
                             golden_ext_rmsprop_fn rmsprop, const golden_ext_tol *fp32_states,
                             const golden_ext_tol *bf16_states, const char *label,
                             golden_ext_result *total)
{
    golden_ext_case *cases;
    size_t count = golden_ext_load(file_name, &cases);
    const int verbose = getenv("FOPT_GOLDEN_VERBOSE") != NULL;
    golden_ext_result all;
    memset(&all, 0, sizeof all);
    for (size_t i = 0; i < count; i++) {
        const golden_ext_case *c = &cases[i];
        const golden_ext_tol *tol = tol_for(c, fp32_states, bf16_states);
        golden_ext_result r;
        golden_ext_replay(c, adam, rmsprop, &r);
        const double allowed16 = fmax(1.0, tol->diff16_frac * (double)r.count16);
        cr_expect_eq(r.found_inf_mismatch, 0u,
                     "%s: golden case %s: found_inf differs from PyTorch's in %u steps", label,
                     c->name, r.found_inf_mismatch);
        cr_expect_eq(r.skipped_changed, 0u,
                     "%s: golden case %s: %u skipped steps changed a buffer", label, c->name,
                     r.skipped_changed);
        cr_expect(r.norm_err <= GOLDEN_EXT_NORM_TOL,
                  "%s: golden case %s: grad_norm differs from PyTorch's by %.3g (tolerance %.3g)",
                  label, c->name, r.norm_err, GOLDEN_EXT_NORM_TOL);
        cr_expect(r.fp32_err <= tol->fp32,
                  "%s: golden case %s: %s differs from PyTorch by %.3g (tolerance %.3g)", label,
                  c->name, r.fp32_what, r.fp32_err, tol->fp32);
        cr_expect(r.rel16_err <= tol->rel16,
                  "%s: golden case %s: %s differs from PyTorch by %.3g (tolerance %.3g)", label,
                  c->name, r.rel16_what, r.rel16_err, tol->rel16);
        cr_expect(r.ulp16 <= tol->ulp16,
                  "%s: golden case %s: %s differs from PyTorch by %u ulp (tolerance %u)", label,
                  c->name, r.ulp16_what, r.ulp16, tol->ulp16);
        cr_expect((double)r.diff16 <= allowed16,
                  "%s: golden case %s: %zu of %zu 16-bit values differ from PyTorch's (at most "
                  "%.0f allowed)",
                  label, c->name, r.diff16, r.count16, floor(allowed16));
        if (verbose)
            fprintf(stderr,
                    "%s %-50s steps %2lld norm %.2g | fp32 %.3g %-20s | 16-bit %.3g %-20s "
                    "%5u ulp %-20s %4zu/%-5zu differ\n",
                    label, c->name, (long long)r.steps_counted, r.norm_err, r.fp32_err,
                    r.fp32_what, r.rel16_err, r.rel16_what, r.ulp16, r.ulp16_what, r.diff16,
                    r.count16);

        all.steps_counted += r.steps_counted;
        all.found_inf_mismatch += r.found_inf_mismatch;
        all.skipped_changed += r.skipped_changed;
        all.norm_compared += r.norm_compared;
        if (!(r.norm_err <= all.norm_err))
            all.norm_err = r.norm_err;
        if (!(r.fp32_err <= all.fp32_err)) {
            all.fp32_err = r.fp32_err;
            snprintf(all.fp32_what, sizeof all.fp32_what, "%.40s", c->name);
        }
        if (!(r.fp32_tensor_err <= all.fp32_tensor_err)) {
            all.fp32_tensor_err = r.fp32_tensor_err;
            snprintf(all.fp32_tensor_what, sizeof all.fp32_tensor_what, "%.40s", c->name);
        }
        if (!(r.rel16_err <= all.rel16_err)) {
            all.rel16_err = r.rel16_err;
            snprintf(all.rel16_what, sizeof all.rel16_what, "%.40s", c->name);
        }
        if (r.ulp16 > all.ulp16) {
            all.ulp16 = r.ulp16;
            snprintf(all.ulp16_what, sizeof all.ulp16_what, "%.40s", c->name);
        }
        all.diff16 += r.diff16;
        all.count16 += r.count16;
        all.count32 += r.count32;
    }
    if (verbose)
        fprintf(stderr,
                "%s %s: worst fp32 %.3g (%s; per tensor %.3g in %s), worst 16-bit %.3g (%s), "
                "%u ulp (%s), %zu/%zu 16-bit values differ, worst grad_norm %.3g over %u steps\n",
                label, file_name, all.fp32_err, all.fp32_what, all.fp32_tensor_err,
                all.fp32_tensor_what, all.rel16_err, all.rel16_what, all.ulp16, all.ulp16_what,
                all.diff16, all.count16, all.norm_err, all.norm_compared);
    golden_ext_free(cases, count);
    if (total)
        *total = all;
    return all.fp32_err;
}
