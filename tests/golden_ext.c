#include "golden_ext.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#define GOLDEN_MAGIC "FOPTGOLD"
#define GOLDEN_EXT_VERSION 2u
/* name 64, 2 x u32, 6 x f64, 6 x u32, one u64 numel, one step record: the least a case takes */
#define GOLDEN_EXT_MIN_CASE_BYTES (64u + 8u + 48u + 24u + 8u + 24u)
#define GOLDEN_EXT_STEP_BYTES 24u /* u32 flags, f32 scale, f64 max_grad_norm, i32, f32 */
#define GOLDEN_EXT_MAX_TENSORS 4096u

enum { F_DECOUPLED = 1, F_AMSGRAD = 2, F_MAXIMIZE = 4, F_CENTERED = 8 };

/* ---------------------------------------------------------------------------------------------
 * Reading
 * ------------------------------------------------------------------------------------------- */

/* A bounded little-endian reader over the whole file. */
typedef struct reader {
    const unsigned char *p;
    size_t left;
    const char *file;
} reader;

static const unsigned char *take(reader *r, size_t bytes)
{
    cr_assert(bytes <= r->left, "%s: truncated (wanted %zu bytes, %zu left)", r->file, bytes,
              r->left);
    const unsigned char *at = r->p;
    r->p += bytes;
    r->left -= bytes;
    return at;
}

static uint64_t le(const unsigned char *b, int bytes)
{
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--)
        v = (v << 8) | b[i];
    return v;
}

static uint32_t get_u32(reader *r) { return (uint32_t)le(take(r, 4), 4); }
static uint64_t get_u64(reader *r) { return le(take(r, 8), 8); }

static float get_f32(reader *r)
{
    uint32_t bits = get_u32(r);
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static double get_f64(reader *r)
{
    uint64_t bits = get_u64(r);
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
}

/* n elements of `elem` (2 or 4) bytes each, little endian, into dst (uint16_t or float). */
static void get_elems(reader *r, void *dst, size_t n, size_t elem)
{
    const unsigned char *b = take(r, n * elem);
    if (elem == 4) {
        float *d = dst;
        for (size_t i = 0; i < n; i++) {
            uint32_t bits = (uint32_t)le(b + 4 * i, 4);
            memcpy(&d[i], &bits, sizeof bits);
        }
    } else {
        uint16_t *d = dst;
        for (size_t i = 0; i < n; i++)
            d[i] = (uint16_t)le(b + 2 * i, 2);
    }
}

static unsigned char *read_whole_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open golden file %s (run scripts/gen_golden.py ext)", path);
    unsigned char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : (size_t)1 << 20;
            unsigned char *nb = realloc(buf, cap);
            cr_assert_not_null(nb, "out of memory reading %s", path);
            buf = nb;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0)
            break;
    }
    cr_assert(!ferror(f), "error reading %s", path);
    fclose(f);
    *size = len;
    return buf;
}

size_t golden_ext_dtype_size(fopt_dtype dt) { return dt == FOPT_FLOAT32 ? 4 : 2; }

static size_t round8(size_t x) { return (x + 7u) & ~(size_t)7u; }

static int slot_used(int optimizer, uint32_t flags, double momentum, int slot)
{
    if (optimizer == GOLDEN_ADAM)
        return slot < 2 || (slot == 2 && (flags & F_AMSGRAD));
    switch (slot) {
    case 0: return 1;
    case 1: return momentum > 0.0;
    case 2: return (flags & F_CENTERED) != 0;
    default: return 0;
    }
}

static void parse_case(reader *r, golden_ext_case *c)
{
    const unsigned char *name = take(r, 64);
    cr_assert(memchr(name, 0, 64) != NULL && name[0] != 0, "%s: case name not NUL-terminated",
              r->file);
    memcpy(c->name, name, 64);

    uint32_t optimizer = get_u32(r), flags = get_u32(r);
    double lr = get_f64(r), b1_alpha = get_f64(r), beta2 = get_f64(r), eps = get_f64(r);
    double wd = get_f64(r), momentum = get_f64(r);
    uint32_t dtype = get_u32(r), state_dtype = get_u32(r), master = get_u32(r);
    uint32_t tensor_count = get_u32(r), steps = get_u32(r), pad = get_u32(r);

    cr_assert(optimizer == GOLDEN_ADAM || optimizer == GOLDEN_RMSPROP, "%s: %s: optimizer %u",
              r->file, c->name, optimizer);
    cr_assert((flags & ~15u) == 0, "%s: %s: unknown flags %#x", r->file, c->name, flags);
    cr_assert(optimizer == GOLDEN_ADAM ? !(flags & F_CENTERED)
                                       : !(flags & (F_DECOUPLED | F_AMSGRAD)),
              "%s: %s: flags %#x do not fit the optimizer", r->file, c->name, flags);
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

    c->optimizer = (int)optimizer;
    c->dtype = (fopt_dtype)dtype;
    c->state_dtype = (fopt_dtype)state_dtype;
    c->master_weights = master != 0;
    c->steps = steps;
    c->tensor_count = tensor_count;
    c->adam = fopt_adam_config_default();
    c->rmsprop = fopt_rmsprop_config_default();
    fopt_precision prec = {.state_dtype = c->state_dtype, .master_weights = c->master_weights};
    if (optimizer == GOLDEN_ADAM) {
        c->adam.lr = lr;
        c->adam.beta1 = b1_alpha;
        c->adam.beta2 = beta2;
        c->adam.eps = eps;
        c->adam.weight_decay = wd;
        c->adam.decoupled_weight_decay = (flags & F_DECOUPLED) != 0;
        c->adam.amsgrad = (flags & F_AMSGRAD) != 0;
        c->adam.maximize = (flags & F_MAXIMIZE) != 0;
        c->adam.precision = prec;
    } else {
        c->rmsprop.lr = lr;
        c->rmsprop.alpha = b1_alpha;
        c->rmsprop.eps = eps;
        c->rmsprop.weight_decay = wd;
        c->rmsprop.momentum = momentum;
        c->rmsprop.centered = (flags & F_CENTERED) != 0;
        c->rmsprop.maximize = (flags & F_MAXIMIZE) != 0;
        c->rmsprop.precision = prec;
    }

    /* Sizes, bounded by what is left of the file before anything is multiplied. */
    const size_t es = golden_ext_dtype_size(c->dtype), ss = golden_ext_dtype_size(c->state_dtype);
    int nslots = 0;
    for (int k = 0; k < 3; k++)
        nslots += slot_used(c->optimizer, flags, momentum, k);
    /* file bytes per element of a tensor: param0, grads, param, master, states */
    const uint64_t per_elem = (uint64_t)es * (2u + (uint64_t)steps) + (master ? 4u : 0u) +
                              (uint64_t)ss * (uint64_t)nslots;
    uint64_t *numel = malloc(tensor_count * sizeof *numel);
    cr_assert_not_null(numel, "out of memory");
    uint64_t total_elems = 0;
    for (uint32_t t = 0; t < tensor_count; t++) {
        numel[t] = get_u64(r);
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
            if (slot_used(c->optimizer, flags, momentum, k))
                x->state[k] = mem, mem += round8(n * ss);
    }
    free(numel);

    for (uint32_t t = 0; t < tensor_count; t++)
        get_elems(r, (void *)c->tensor[t].param0, c->tensor[t].numel, es);
    for (uint32_t k = 0; k < steps; k++) {
        golden_ext_step *s = &c->step[k];
        s->flags = get_u32(r);
        s->grad_scale = get_f32(r);
        s->max_grad_norm = get_f64(r);
        s->found_inf = (int32_t)get_u32(r);
        s->grad_norm = get_f32(r);
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
            get_elems(r, (unsigned char *)c->tensor[t].grads + (size_t)k * n * es, n, es);
        }
    }
    for (uint32_t t = 0; t < tensor_count; t++) {
        golden_ext_tensor *x = &c->tensor[t];
        get_elems(r, (void *)x->param, x->numel, es);
        if (master)
            get_elems(r, (void *)x->master, x->numel, 4);
        for (int k = 0; k < 3; k++)
            if (x->state[k])
                get_elems(r, (void *)x->state[k], x->numel, ss);
    }
}

size_t golden_ext_load(const char *file_name, golden_ext_case **cases)
{
    char path[4096];
    int len = snprintf(path, sizeof path, "%s/%s", FOPT_TEST_DATA_DIR, file_name);
    cr_assert(len > 0 && (size_t)len < sizeof path, "golden path too long");

    size_t size;
    unsigned char *buf = read_whole_file(path, &size);
    reader r = {buf, size, file_name};
    cr_assert(memcmp(take(&r, 8), GOLDEN_MAGIC, 8) == 0, "%s: not a golden file", file_name);
    uint32_t version = get_u32(&r), count = get_u32(&r);
    cr_assert_eq(version, GOLDEN_EXT_VERSION, "%s: version %u, this loader reads %u", file_name,
                 version, GOLDEN_EXT_VERSION);
    cr_assert(count >= 1 && count <= size / GOLDEN_EXT_MIN_CASE_BYTES, "%s: case count %u",
              file_name, count);

    golden_ext_case *cs = calloc(count, sizeof *cs);
    cr_assert_not_null(cs, "out of memory");
    for (uint32_t i = 0; i < count; i++)
        parse_case(&r, &cs[i]);
    cr_assert_eq(r.left, 0, "%s: %zu trailing bytes after %u cases", file_name, r.left, count);
    free(buf);
    *cases = cs;
    return count;
}

void golden_ext_free(golden_ext_case *cases, size_t count)
{
    if (!cases)
        return;
    for (size_t i = 0; i < count; i++)
        free(cases[i].storage_);
    free(cases);
}

int golden_ext_state_used(const golden_ext_case *c, int slot)
{
    if (c->optimizer == GOLDEN_ADAM)
        return slot_used(c->optimizer, c->adam.amsgrad ? F_AMSGRAD : 0, 0.0, slot);
    return slot_used(c->optimizer, c->rmsprop.centered ? F_CENTERED : 0, c->rmsprop.momentum,
                     slot);
}

const char *golden_ext_state_name(const golden_ext_case *c, int slot)
{
    static const char *const adam[3] = {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"};
    static const char *const rms[3] = {"square_avg", "momentum_buffer", "grad_avg"};
    if (slot < 0 || slot > 2)
        return "?";
    return c->optimizer == GOLDEN_ADAM ? adam[slot] : rms[slot];
}

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
            if (golden_ext_state_used(c, k)) {
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
        if (!golden_ext_state_used(c, kind - 2))
            return;
        name = golden_ext_state_name(c, kind - 2), dt = c->state_dtype;
    }
    /* golden_rel_err's measure over the whole list, as one flat vector */
    double scale = 0.0, diff = 0.0;
    size_t diff_t = 0;
    int mismatch = 0;
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
        for (size_t i = 0; i < n; i++) {
            float a = value_at(got, i, dt), b = value_at(want, i, dt);
            if (!isfinite(a) || !isfinite(b)) {
                if (isnan(a) != isnan(b) || (!isnan(a) && a != b))
                    mismatch = 1, diff_t = t;
                continue;
            }
            if (fabs((double)b) > scale)
                scale = fabs((double)b);
            double d = fabs((double)a - (double)b);
            if (d > diff && !mismatch)
                diff = d, diff_t = t;
        }
    }
    double e = mismatch ? INFINITY : diff == 0.0 ? 0.0 : scale > 0.0 ? diff / scale : INFINITY;
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
