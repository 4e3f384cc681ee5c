#include "golden.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "util.h"

#define GOLDEN_MAGIC "FOPTGOLD"
#define GOLDEN_VERSION 1u
#define GOLDEN_HEADER_BYTES 144u /* name 64, 2 x u32, 6 x f64, i64, 2 x u32, u64 */

enum { F_DECOUPLED = 1, F_AMSGRAD = 2, F_MAXIMIZE = 4, F_CENTERED = 8 };

/* ---------------------------------------------------------------------------------------------
 * Reading (both formats)
 * ------------------------------------------------------------------------------------------- */

const unsigned char *golden_take(golden_reader *r, size_t bytes)
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

uint32_t golden_get_u32(golden_reader *r) { return (uint32_t)le(golden_take(r, 4), 4); }
uint64_t golden_get_u64(golden_reader *r) { return le(golden_take(r, 8), 8); }

float golden_get_f32(golden_reader *r)
{
    uint32_t bits = golden_get_u32(r);
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

double golden_get_f64(golden_reader *r)
{
    uint64_t bits = golden_get_u64(r);
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
}

void golden_get_elems(golden_reader *r, void *dst, size_t n, size_t elem_size)
{
    const unsigned char *b = golden_take(r, n * elem_size);
    if (elem_size == 4) {
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

static unsigned char *read_whole_file(const char *path, const char *gen_args, size_t *size)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open golden file %s (run scripts/gen_golden.py%s)", path,
                       gen_args);
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

size_t golden_read_cases(const char *file_name, uint32_t version, size_t min_case_bytes,
                         size_t case_size, void (*parse)(golden_reader *r, void *c), void **cases)
{
    char path[4096];
    int len = snprintf(path, sizeof path, "%s/%s", FOPT_TEST_DATA_DIR, file_name);
    cr_assert(len > 0 && (size_t)len < sizeof path, "golden path too long");

    size_t size;
    unsigned char *buf = read_whole_file(path, version == 1 ? "" : " ext", &size);
    golden_reader r = {buf, size, file_name};
    cr_assert(memcmp(golden_take(&r, 8), GOLDEN_MAGIC, 8) == 0, "%s: not a golden file",
              file_name);
    uint32_t got = golden_get_u32(&r), count = golden_get_u32(&r);
    cr_assert_eq(got, version, "%s: version %u, this loader reads %u", file_name, got, version);
    cr_assert(count >= 1 && count <= size / min_case_bytes, "%s: case count %u", file_name,
              count);

    unsigned char *cs = calloc(count, case_size);
    cr_assert_not_null(cs, "out of memory");
    for (uint32_t i = 0; i < count; i++)
        parse(&r, cs + i * case_size);
    cr_assert_eq(r.left, 0, "%s: %zu trailing bytes after %u cases", file_name, r.left, count);
    free(buf);
    *cases = cs;
    return count;
}

void golden_free_cases(void *cases, size_t count, size_t case_size, size_t storage_offset)
{
    if (!cases)
        return;
    for (size_t i = 0; i < count; i++) {
        void *storage;
        memcpy(&storage, (unsigned char *)cases + i * case_size + storage_offset, sizeof storage);
        free(storage);
    }
    free(cases);
}

void golden_read_head(golden_reader *r, char name[64], int *optimizer, fopt_adam_config *adam,
                      fopt_rmsprop_config *rmsprop)
{
    const unsigned char *at = golden_take(r, 64);
    cr_assert(memchr(at, 0, 64) != NULL && at[0] != 0, "%s: case name not NUL-terminated",
              r->file);
    memcpy(name, at, 64);

    uint32_t opt = golden_get_u32(r), flags = golden_get_u32(r);
    double lr = golden_get_f64(r), b1_alpha = golden_get_f64(r), beta2 = golden_get_f64(r);
    double eps = golden_get_f64(r), wd = golden_get_f64(r), momentum = golden_get_f64(r);

    cr_assert(opt == GOLDEN_ADAM || opt == GOLDEN_RMSPROP, "%s: %s: optimizer %u", r->file, name,
              opt);
    cr_assert((flags & ~15u) == 0, "%s: %s: unknown flags %#x", r->file, name, flags);
    cr_assert(opt == GOLDEN_ADAM ? !(flags & F_CENTERED) : !(flags & (F_DECOUPLED | F_AMSGRAD)),
              "%s: %s: flags %#x do not fit the optimizer", r->file, name, flags);

    *optimizer = (int)opt;
    *adam = fopt_adam_config_default();
    *rmsprop = fopt_rmsprop_config_default();
    /* lr, eps, weight_decay and maximize mean the same to both optimizers */
    adam->lr = rmsprop->lr = lr;
    adam->eps = rmsprop->eps = eps;
    adam->weight_decay = rmsprop->weight_decay = wd;
    adam->maximize = rmsprop->maximize = (flags & F_MAXIMIZE) != 0;
    if (opt == GOLDEN_ADAM) {
        adam->beta1 = b1_alpha;
        adam->beta2 = beta2;
        adam->decoupled_weight_decay = (flags & F_DECOUPLED) != 0;
        adam->amsgrad = (flags & F_AMSGRAD) != 0;
    } else {
        rmsprop->alpha = b1_alpha;
        rmsprop->momentum = momentum;
        rmsprop->centered = (flags & F_CENTERED) != 0;
    }
}

/* ---------------------------------------------------------------------------------------------
 * Format 1
 * ------------------------------------------------------------------------------------------- */

static void parse_case(golden_reader *r, void *case_)
{
    golden_case *c = case_;
    golden_read_head(r, c->name, &c->optimizer, &c->adam, &c->rmsprop);
    int64_t first_step = (int64_t)golden_get_u64(r);
    uint32_t steps = golden_get_u32(r), pad = golden_get_u32(r);
    uint64_t n = golden_get_u64(r);

    cr_assert(pad == 0, "%s: %s: nonzero pad", r->file, c->name);
    cr_assert(steps >= 1 && n >= 1, "%s: %s: steps %u, n %llu", r->file, c->name, steps,
              (unsigned long long)n);
    cr_assert(first_step >= 1 && (c->optimizer == GOLDEN_ADAM || first_step == 1),
              "%s: %s: first_step %lld", r->file, c->name, (long long)first_step);
    /* The arrays must fit in what is left of the file: bounds n and steps before multiplying. */
    uint64_t per_n = 8u + (uint64_t)steps;
    cr_assert(n <= r->left / 4 / per_n, "%s: %s: %llu elements x %u steps exceed the file",
              r->file, c->name, (unsigned long long)n, steps);

    c->first_step = first_step;
    c->steps = steps;
    c->n = (size_t)n;

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
    golden_get_elems(r, c->storage_, total, 4);
}

GOLDEN_DEFINE_LOAD(golden_load, golden_free, golden_case, GOLDEN_VERSION, GOLDEN_HEADER_BYTES, parse_case)

int golden_slot_used(int optimizer, const fopt_adam_config *adam,
                     const fopt_rmsprop_config *rmsprop, int slot)
{
    if (optimizer == GOLDEN_ADAM)
        return slot < 2 || (slot == 2 && adam->amsgrad);
    switch (slot) {
    case 0: return 1;
    case 1: return rmsprop->momentum > 0.0;
    case 2: return rmsprop->centered;
    default: return 0;
    }
}

const char *golden_slot_name(int optimizer, int slot)
{
    static const char *const adam[3] = {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"};
    static const char *const rms[3] = {"square_avg", "momentum_buffer", "grad_avg"};
    if (slot < 0 || slot > 2)
        return "?";
    return optimizer == GOLDEN_ADAM ? adam[slot] : rms[slot];
}

int golden_state_used(const golden_case *c, int slot)
{
    return golden_slot_used(c->optimizer, &c->adam, &c->rmsprop, slot);
}

const char *golden_state_name(const golden_case *c, int slot)
{
    return golden_slot_name(c->optimizer, slot);
}

int golden_err_add(golden_err *e, float a, float b)
{
    if (!isfinite(a) || !isfinite(b)) {
        /* a finite value against a non-finite one, NaN against inf, or inf of the other sign */
        if (isnan(a) != isnan(b) || (!isnan(a) && a != b)) {
            e->mismatch = 1;
            return 1;
        }
        return 0;
    }
    double mb = fabs((double)b);
    if (mb > e->scale)
        e->scale = mb;
    double d = fabs((double)a - (double)b);
    if (d > e->diff && !e->mismatch) {
        e->diff = d;
        return 1;
    }
    return 0;
}

double golden_err_value(const golden_err *e)
{
    if (e->mismatch)
        return INFINITY;
    if (e->diff == 0.0)
        return 0.0;
    return e->scale > 0.0 ? e->diff / e->scale : INFINITY;
}

double golden_rel_err(const float *a, const float *b, size_t n)
{
    golden_err e = {0.0, 0.0, 0};
    for (size_t i = 0; i < n; i++)
        golden_err_add(&e, a[i], b[i]);
    return golden_err_value(&e);
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
