#include "golden.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "util.h"

#define GOLDEN_MAGIC "FOPTGOLD"
#define GOLDEN_VERSION 1u
#define GOLDEN_HEADER_BYTES 144u /* name 64, 2 x u32, 6 x f64, i64, 2 x u32, u64 */

enum { F_DECOUPLED = 1, F_AMSGRAD = 2, F_MAXIMIZE = 4, F_CENTERED = 8 };

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

static uint64_t get_le(reader *r, int bytes)
{
    const unsigned char *b = take(r, (size_t)bytes);
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--)
        v = (v << 8) | b[i];
    return v;
}

static uint32_t get_u32(reader *r) { return (uint32_t)get_le(r, 4); }
static uint64_t get_u64(reader *r) { return get_le(r, 8); }

static double get_f64(reader *r)
{
    uint64_t bits = get_u64(r);
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
}

static void get_f32s(reader *r, float *dst, size_t n)
{
    const unsigned char *b = take(r, n * 4);
    for (size_t i = 0; i < n; i++) {
        uint32_t bits = (uint32_t)b[4 * i] | (uint32_t)b[4 * i + 1] << 8 |
                        (uint32_t)b[4 * i + 2] << 16 | (uint32_t)b[4 * i + 3] << 24;
        memcpy(&dst[i], &bits, sizeof bits);
    }
}

static unsigned char *read_whole_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open golden file %s (run scripts/gen_golden.py)", path);
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

static void parse_case(reader *r, golden_case *c)
{
    const unsigned char *name = take(r, 64);
    cr_assert(memchr(name, 0, 64) != NULL && name[0] != 0, "%s: case name not NUL-terminated",
              r->file);
    memcpy(c->name, name, 64);

    uint32_t optimizer = get_u32(r), flags = get_u32(r);
    double lr = get_f64(r), b1_alpha = get_f64(r), beta2 = get_f64(r), eps = get_f64(r);
    double wd = get_f64(r), momentum = get_f64(r);
    int64_t first_step = (int64_t)get_u64(r);
    uint32_t steps = get_u32(r), pad = get_u32(r);
    uint64_t n = get_u64(r);

    cr_assert(optimizer == GOLDEN_ADAM || optimizer == GOLDEN_RMSPROP, "%s: %s: optimizer %u",
              r->file, c->name, optimizer);
    cr_assert((flags & ~15u) == 0, "%s: %s: unknown flags %#x", r->file, c->name, flags);
    cr_assert(optimizer == GOLDEN_ADAM ? !(flags & F_CENTERED)
                                       : !(flags & (F_DECOUPLED | F_AMSGRAD)),
              "%s: %s: flags %#x do not fit the optimizer", r->file, c->name, flags);
    cr_assert(pad == 0, "%s: %s: nonzero pad", r->file, c->name);
    cr_assert(steps >= 1 && n >= 1, "%s: %s: steps %u, n %llu", r->file, c->name, steps,
              (unsigned long long)n);
    cr_assert(first_step >= 1 && (optimizer == GOLDEN_ADAM || first_step == 1),
              "%s: %s: first_step %lld", r->file, c->name, (long long)first_step);
    /* The arrays must fit in what is left of the file: bounds n and steps before multiplying. */
    uint64_t per_n = 8u + (uint64_t)steps;
    cr_assert(n <= r->left / 4 / per_n, "%s: %s: %llu elements x %u steps exceed the file",
              r->file, c->name, (unsigned long long)n, steps);

    c->optimizer = (int)optimizer;
    c->first_step = first_step;
    c->steps = steps;
    c->n = (size_t)n;
    c->adam = fopt_adam_config_default();
    c->rmsprop = fopt_rmsprop_config_default();
    if (optimizer == GOLDEN_ADAM) {
        c->adam.lr = lr;
        c->adam.beta1 = b1_alpha;
        c->adam.beta2 = beta2;
        c->adam.eps = eps;
        c->adam.weight_decay = wd;
        c->adam.decoupled_weight_decay = (flags & F_DECOUPLED) != 0;
        c->adam.amsgrad = (flags & F_AMSGRAD) != 0;
        c->adam.maximize = (flags & F_MAXIMIZE) != 0;
    } else {
        c->rmsprop.lr = lr;
        c->rmsprop.alpha = b1_alpha;
        c->rmsprop.eps = eps;
        c->rmsprop.weight_decay = wd;
        c->rmsprop.momentum = momentum;
        c->rmsprop.centered = (flags & F_CENTERED) != 0;
        c->rmsprop.maximize = (flags & F_MAXIMIZE) != 0;
    }

    size_t total = c->n * (size_t)per_n;
    c->storage_ = malloc(total * sizeof(float));
    cr_assert_not_null(c->storage_, "out of memory for %s", c->name);
    float *at = c->storage_;
    c->param0 = at, at += c->n;
    for (int i = 0; i < 3; i++)
        c->state0[i] = at, at += c->n;
    c->grads = at, at += c->n * steps;
    c->param = at, at += c->n;
    for (int i = 0; i < 3; i++)
        c->state[i] = at, at += c->n;
    get_f32s(r, c->storage_, total);
}

size_t golden_load(const char *file_name, golden_case **cases)
{
    char path[4096];
    int len = snprintf(path, sizeof path, "%s/%s", FOPT_TEST_DATA_DIR, file_name);
    cr_assert(len > 0 && (size_t)len < sizeof path, "golden path too long");

    size_t size;
    unsigned char *buf = read_whole_file(path, &size);
    reader r = {buf, size, file_name};
    cr_assert(memcmp(take(&r, 8), GOLDEN_MAGIC, 8) == 0, "%s: not a golden file", file_name);
    uint32_t version = get_u32(&r), count = get_u32(&r);
    cr_assert_eq(version, GOLDEN_VERSION, "%s: version %u, this loader reads %u", file_name,
                 version, GOLDEN_VERSION);
    cr_assert(count >= 1 && count <= size / GOLDEN_HEADER_BYTES, "%s: case count %u", file_name,
              count);

    golden_case *cs = calloc(count, sizeof *cs);
    cr_assert_not_null(cs, "out of memory");
    for (uint32_t i = 0; i < count; i++)
        parse_case(&r, &cs[i]);
    cr_assert_eq(r.left, 0, "%s: %zu trailing bytes after %u cases", file_name, r.left, count);
    free(buf);
    *cases = cs;
    return count;
}

void golden_free(golden_case *cases, size_t count)
{
    if (!cases)
        return;
    for (size_t i = 0; i < count; i++)
        free(cases[i].storage_);
    free(cases);
}

int golden_state_used(const golden_case *c, int slot)
{
    if (c->optimizer == GOLDEN_ADAM)
        return slot < 2 || (slot == 2 && c->adam.amsgrad);
    switch (slot) {
    case 0: return 1;
    case 1: return c->rmsprop.momentum > 0.0;
    case 2: return c->rmsprop.centered;
    default: return 0;
    }
}

const char *golden_state_name(const golden_case *c, int slot)
{
    static const char *const adam[3] = {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"};
    static const char *const rms[3] = {"square_avg", "momentum_buffer", "grad_avg"};
    if (slot < 0 || slot > 2)
        return "?";
    return c->optimizer == GOLDEN_ADAM ? adam[slot] : rms[slot];
}

double golden_rel_err(const float *a, const float *b, size_t n)
{
    double scale = 0.0, err = 0.0;
    for (size_t i = 0; i < n; i++) {
        int fa = isfinite(a[i]), fb = isfinite(b[i]);
        if (!fa || !fb) {
            if (fa != fb)
                return INFINITY;
            if (isnan(a[i]) != isnan(b[i]) || (!isnan(a[i]) && a[i] != b[i]))
                return INFINITY; /* NaN vs inf, or inf of the other sign */
            continue;
        }
        double mb = fabs((double)b[i]);
        if (mb > scale)
            scale = mb;
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > err)
            err = d;
    }
    if (err == 0.0)
        return 0.0;
    return scale > 0.0 ? err / scale : INFINITY;
}

double golden_replay(const golden_case *c, golden_adam_fn adam, golden_rmsprop_fn rmsprop,
                     const char **what)
{
    const size_t n = c->n;
    float *p = test_dup(c->param0, n);
    float *s[3];
    for (int i = 0; i < 3; i++)
        s[i] = golden_state_used(c, i) ? test_dup(c->state0[i], n) : NULL;

    for (uint32_t k = 0; k < c->steps; k++) {
        const float *g = c->grads + (size_t)k * n;
        fopt_status st;
        if (c->optimizer == GOLDEN_ADAM) {
            cr_assert_not_null(adam, "%s: no Adam step function given", c->name);
            st = adam(&c->adam, c->first_step + (int64_t)k, n, p, g, s[0], s[1], s[2]);
        } else {
            cr_assert_not_null(rmsprop, "%s: no RMSprop step function given", c->name);
            st = rmsprop(&c->rmsprop, n, p, g, s[0], s[1], s[2]);
        }
        cr_assert_eq(st, FOPT_SUCCESS, "%s: step %u returned %s (%s)", c->name, k,
                     fopt_status_string(st), fopt_last_error());
    }

    double worst = golden_rel_err(p, c->param, n);
    const char *worst_what = "param";
    for (int i = 0; i < 3; i++) {
        if (!s[i])
            continue;
        double e = golden_rel_err(s[i], c->state[i], n);
        if (!(e <= worst)) { /* also takes a NaN error */
            worst = e;
            worst_what = golden_state_name(c, i);
        }
    }
    free(p);
    for (int i = 0; i < 3; i++)
        free(s[i]);
    if (what)
        *what = worst_what;
    return worst;
}

double golden_check_file(const char *file_name, golden_adam_fn adam, golden_rmsprop_fn rmsprop,
                         double tol, const char *label)
{
    golden_case *cases;
    size_t count = golden_load(file_name, &cases);
    const int verbose = getenv("FOPT_GOLDEN_VERBOSE") != NULL;
    double worst = 0.0;
    for (size_t i = 0; i < count; i++) {
        const char *what = "";
        double e = golden_replay(&cases[i], adam, rmsprop, &what);
        cr_expect(e <= tol, "%s: golden case %s: %s differs from PyTorch by %.3g (tolerance %.3g)",
                  label, cases[i].name, what, e, tol);
        if (verbose)
            fprintf(stderr, "%s %-48s %-16s %.3g\n", label, cases[i].name, what, e);
        if (!(e <= worst))
            worst = e;
    }
    golden_free(cases, count);
    return worst;
}
