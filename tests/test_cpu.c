/* Fast CPU path (fopt_adam_step_cpu, fopt_rmsprop_step_cpu) against the CPU reference.
 *
 * The fast path keeps the reference's operation order and uses no FMA, so every comparison here
 * is bit-exact (NaN matches NaN at the same place; +0 and -0 are told apart). Each variant runs
 * at sizes around every vector width and thread split, with unaligned pointers (every array at a
 * different offset from a 64-byte boundary), several steps from non-zero state, thread counts 1,
 * 2, 3 and the default (with the per-thread grain lowered so that small sizes split too), on
 * every instruction set this CPU has (AVX-512 runs where the CPU has it, e.g. on the GPU hosts). */
#define _POSIX_C_SOURCE 200112L
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "cpu_internal.h"
#include "util.h"

#define NSTEPS 5

static const size_t k_sizes[] = {0, 1, 15, 16, 17, 31, 33, 4097, (1u << 20) + 3};
#define NSIZES (sizeof k_sizes / sizeof k_sizes[0])
static const int k_threads[] = {1, 2, 3, 0};
#define NTHREADS (sizeof k_threads / sizeof k_threads[0])

/* ---------------------------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------------------------- */

/* First index where a and b differ in their bits (NaN equals NaN whatever its payload); n when
 * none does. */
static size_t first_bit_diff(const float *a, const float *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (isnan(a[i]) && isnan(b[i]))
            continue;
        uint32_t x, y;
        memcpy(&x, &a[i], sizeof x);
        memcpy(&y, &b[i], sizeof y);
        if (x != y)
            return i;
    }
    return n;
}

static unsigned bits_of(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return (unsigned)u;
}

static void expect_same(const float *got, const float *want, size_t n, const char *array,
                        const char *where)
{
    size_t i = first_bit_diff(got, want, n);
    if (i != n)
        cr_assert_fail("%s: %s[%zu] = %.9g (0x%08x), reference %.9g; max ulp %u", where, array, i,
                 (double)got[i], bits_of(got[i]),
                 (double)want[i], (unsigned)test_max_ulp(got, want, n));
}

/* A buffer of n floats whose first element sits `off` floats past a 64-byte boundary. */
typedef struct obuf {
    float *base;
    float *p;
} obuf;

static obuf obuf_make(size_t n, size_t off)
{
    obuf b;
    b.base = aligned_alloc(64, ((n + off) * sizeof(float) + 63) / 64 * 64 + 64);
    cr_assert_not_null(b.base);
    b.p = b.base + off;
    return b;
}

static void abs_all(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = fabsf(x[i]);
}

static int isa_count(void) { return (int)fopt_cpu_isa_max() + 1; }

static void force_isa(int isa)
{
    const char *name = fopt_cpu_isa_name((fopt_cpu_isa_level)isa);
    cr_assert_eq(fopt_cpu_force_isa(name), FOPT_SUCCESS, "forcing %s", name);
    cr_assert_str_eq(fopt_cpu_isa(), name);
}

/* Offsets of the fast path's arrays from a 64-byte boundary, for each case: small sizes try every
 * misalignment of the parameter array, the large one a single one (3). The other arrays sit at
 * other offsets (each case mixes alignments). */
static size_t noffsets(size_t n) { return n <= 4097 ? 4 : 1; }
static size_t offset_of(size_t n, size_t k) { return n <= 4097 ? k : 3; }

/* ---------------------------------------------------------------------------------------------
 * The variant check: one optimizer's four arrays (the parameter and three states), stepped
 * NSTEPS times by the reference and by the fast path under every alignment, instruction set and
 * thread count, bit for bit.
 * ------------------------------------------------------------------------------------------- */
#define NARR 4

/* One step of either path over a[0] (the parameter) and the states a[1..3], passing NULL for
 * the states the variant does not use. */
typedef fopt_status (*step_fn)(const void *cfg, bool fast, int64_t t, size_t n, float *const *a,
                               const float *g);

typedef struct optimizer_arrays {
    const char *name;               /* "adam", "rmsprop" */
    const char *const *array_names; /* [NARR] */
    double lo_exp[NARR], hi_exp[NARR];
    unsigned zero_every[NARR];
    bool non_negative[NARR]; /* second moments */
    uint64_t seed;
    step_fn step;
} optimizer_arrays;

static void check_variant(const optimizer_arrays *o, const void *cfg, const char *variant)
{
    fopt_cpu_set_grain(1);
    for (size_t si = 0; si < NSIZES; si++) {
        size_t n = k_sizes[si];
        test_rng r = test_rng_make(o->seed + si);
        float *init[NARR], *ref[NARR], *grads[NSTEPS];
        for (int a = 0; a < NARR; a++) {
            init[a] = test_alloc(n);
            test_fill_magnitudes(&r, init[a], n, o->lo_exp[a], o->hi_exp[a], o->zero_every[a]);
        }
        for (int a = 0; a < NARR; a++)
            if (o->non_negative[a])
                abs_all(init[a], n);
        for (int t = 0; t < NSTEPS; t++) {
            grads[t] = test_alloc(n);
            test_fill_magnitudes(&r, grads[t], n, -6, 1, 19);
        }
        for (int a = 0; a < NARR; a++)
            ref[a] = test_dup(init[a], n);
        for (int t = 0; t < NSTEPS; t++)
            cr_assert_eq(o->step(cfg, false, t + 1, n, ref, grads[t]), FOPT_SUCCESS);

        for (size_t k = 0; k < noffsets(n); k++) {
            size_t off = offset_of(n, k);
            obuf fast[NARR], g[NSTEPS];
            float *fp[NARR];
            for (int a = 0; a < NARR; a++) {
                fast[a] = obuf_make(n, (off + (size_t)a) % 4); /* mixed misalignment */
                fp[a] = fast[a].p;
            }
            for (int t = 0; t < NSTEPS; t++) {
                g[t] = obuf_make(n, (off + 3 * (size_t)t + 1) % 4);
                memcpy(g[t].p, grads[t], n * sizeof(float));
            }
            for (int isa = 0; isa < isa_count(); isa++) {
                force_isa(isa);
                for (size_t ti = 0; ti < NTHREADS; ti++) {
                    cr_assert_eq(fopt_cpu_set_threads(k_threads[ti]), FOPT_SUCCESS);
                    for (int a = 0; a < NARR; a++)
                        memcpy(fp[a], init[a], n * sizeof(float));
                    for (int t = 0; t < NSTEPS; t++)
                        cr_assert_eq(o->step(cfg, true, t + 1, n, fp, g[t].p), FOPT_SUCCESS);
                    char where[160];
                    snprintf(where, sizeof where, "%s %s, n %zu, offset %zu, %s, threads %d",
                             o->name, variant, n, off, fopt_cpu_isa(), fopt_cpu_threads());
                    for (int a = 0; a < NARR; a++)
                        expect_same(fp[a], ref[a], n, o->array_names[a], where);
                }
            }
            for (int a = 0; a < NARR; a++)
                free(fast[a].base);
            for (int t = 0; t < NSTEPS; t++)
                free(g[t].base);
        }
        for (int a = 0; a < NARR; a++) {
            free(init[a]);
            free(ref[a]);
        }
        for (int t = 0; t < NSTEPS; t++)
            free(grads[t]);
    }
    fopt_cpu_force_isa(NULL);
    fopt_cpu_set_threads(0);
    fopt_cpu_set_grain(0);
}

/* ---------------------------------------------------------------------------------------------
 * Adam
 * ------------------------------------------------------------------------------------------- */
enum { A_P, A_M, A_V, A_VMAX };
static const char *const k_adam_names[NARR] = {"param", "exp_avg", "exp_avg_sq",
                                               "max_exp_avg_sq"};

static fopt_status adam_step(const void *cfg_, bool fast, int64_t t, size_t n, float *const *a,
                             const float *g)
{
    const fopt_adam_config *cfg = cfg_;
    return (fast ? fopt_adam_step_cpu : fopt_adam_step_ref)(cfg, t, n, a[A_P], g, a[A_M], a[A_V],
                                                            cfg->amsgrad ? a[A_VMAX] : NULL);
}

static const optimizer_arrays k_adam = {
    "adam", k_adam_names, {-3, -6, -10, -10}, {1, -1, -2, -2}, {17, 11, 13, 0},
    {false, false, true, true}, 1000, adam_step};

/* A Criterion test of the fast path against the reference on one variant: OPT's default config
 * (c) with the statements that follow the label applied. */
#define VARIANT_TEST(test, opt, label, ...)                                                        \
    Test(cpu, test)                                                                                \
    {                                                                                              \
        fopt_##opt##_config c = fopt_##opt##_config_default();                                     \
        __VA_ARGS__;                                                                               \
        check_variant(&k_##opt, &c, label);                                                        \
    }

VARIANT_TEST(adam_defaults, adam, "defaults")
VARIANT_TEST(adam_l2, adam, "L2", c.weight_decay = 0.05)
VARIANT_TEST(adamw, adam, "AdamW", c.lr = 1e-2, c.weight_decay = 0.1, c.decoupled_weight_decay = true)
VARIANT_TEST(adam_amsgrad, adam, "AMSGrad", c.amsgrad = true)
VARIANT_TEST(adamw_amsgrad, adam, "AdamW+AMSGrad", c.amsgrad = true, c.decoupled_weight_decay = true,
             c.weight_decay = 1e-2)
VARIANT_TEST(adam_maximize_l2, adam, "maximize+L2", c.maximize = true, c.weight_decay = 0.01)
/* 1 - beta1 >= 0.5: PyTorch's lerp takes its other form. */
VARIANT_TEST(adam_small_beta1, adam, "small beta1", c.beta1 = 0.3, c.beta2 = 0.5, c.eps = 1e-6)
VARIANT_TEST(adam_everything, adam, "maximize+AdamW+AMSGrad+beta1 0", c.lr = 0.1, c.beta1 = 0.0,
             c.maximize = true, c.amsgrad = true, c.decoupled_weight_decay = true, c.weight_decay = 0.5)

/* ---------------------------------------------------------------------------------------------
 * RMSprop
 * ------------------------------------------------------------------------------------------- */
enum { R_P, R_V, R_BUF, R_GA };
static const char *const k_rms_names[NARR] = {"param", "square_avg", "momentum_buffer",
                                              "grad_avg"};

static fopt_status rmsprop_step(const void *cfg_, bool fast, int64_t t, size_t n,
                                float *const *a, const float *g)
{
    const fopt_rmsprop_config *cfg = cfg_;
    (void)t;
    return (fast ? fopt_rmsprop_step_cpu : fopt_rmsprop_step_ref)(
        cfg, n, a[R_P], g, a[R_V], cfg->momentum > 0.0 ? a[R_BUF] : NULL,
        cfg->centered ? a[R_GA] : NULL);
}

static const optimizer_arrays k_rmsprop = {
    "rmsprop", k_rms_names, {-3, -8, -4, -6}, {1, -1, 0, -2}, {17, 13, 11, 7},
    {false, true, false, false}, 2000, rmsprop_step};

VARIANT_TEST(rmsprop_plain, rmsprop, "plain")
VARIANT_TEST(rmsprop_weight_decay, rmsprop, "weight decay", c.weight_decay = 0.05)
VARIANT_TEST(rmsprop_momentum, rmsprop, "momentum", c.momentum = 0.9)
VARIANT_TEST(rmsprop_centered, rmsprop, "centered", c.centered = true)
VARIANT_TEST(rmsprop_centered_momentum, rmsprop, "centered+momentum+wd", c.centered = true, c.momentum = 0.5,
             c.weight_decay = 0.01)
VARIANT_TEST(rmsprop_maximize, rmsprop, "maximize", c.maximize = true)
/* 1 - alpha >= 0.5: grad_avg's lerp takes PyTorch's other form. */
VARIANT_TEST(rmsprop_small_alpha, rmsprop, "small alpha, centered", c.alpha = 0.3, c.centered = true)
VARIANT_TEST(rmsprop_everything, rmsprop, "alpha 0, everything on", c.alpha = 0.0, c.maximize = true,
             c.centered = true, c.momentum = 0.9, c.weight_decay = 0.1)

/* ---------------------------------------------------------------------------------------------
 * Special values: NaN, infinities, zeros of both signs, subnormals, and the centered variance
 * rounding below zero. The fast path must make the reference's choices bit for bit (AMSGrad's max
 * lets NaN win as torch.maximum does; the centered clamp maps negatives to 0 and keeps NaN).
 * ------------------------------------------------------------------------------------------- */
Test(cpu, special_values_match_reference)
{
    const size_t n = 4097;
    fopt_cpu_set_grain(1);
    for (int isa = 0; isa < isa_count(); isa++) {
        force_isa(isa);
        cr_assert_eq(fopt_cpu_set_threads(2), FOPT_SUCCESS);
        for (int variant = 0; variant < 4; variant++) {
            test_rng r = test_rng_make(77 + (uint64_t)variant);
            float *x[5], *y[5];
            obuf b[5];
            for (int a = 0; a < 5; a++) {
                x[a] = test_alloc(n);
                test_fill_magnitudes(&r, x[a], n, -6, 0, 9);
            }
            for (int a = 0; a < 5; a++)
                for (size_t i = 0; i < n; i++)
                    x[a][i] = test_special(&r, x[a][i]);
            abs_all(x[2], n); /* second moments: NaN and +inf stay, values non-negative */
            abs_all(x[3], n);
            for (int a = 0; a < 5; a++) {
                y[a] = test_dup(x[a], n);
                b[a] = obuf_make(n, (size_t)a % 4 + 1);
                memcpy(b[a].p, x[a], n * sizeof(float));
            }
            /* x: 0 param, 1 grad, 2 second moment, 3 max / momentum, 4 first moment / grad_avg */
            fopt_adam_config ca;
            fopt_rmsprop_config c;
            if (test_special_config(variant, &ca, &c)) {
                for (int t = 1; t <= 3; t++) {
                    cr_assert_eq(fopt_adam_step_ref(&ca, t, n, y[0], y[1], y[4], y[2], y[3]), FOPT_SUCCESS);
                    cr_assert_eq(fopt_adam_step_cpu(&ca, t, n, b[0].p, b[1].p, b[4].p, b[2].p, b[3].p),
                                 FOPT_SUCCESS);
                }
            } else {
                for (int t = 1; t <= 3; t++) {
                    cr_assert_eq(fopt_rmsprop_step_ref(&c, n, y[0], y[1], y[2], y[3], y[4]), FOPT_SUCCESS);
                    cr_assert_eq(fopt_rmsprop_step_cpu(&c, n, b[0].p, b[1].p, b[2].p, b[3].p, b[4].p),
                                 FOPT_SUCCESS);
                }
            }
            char where[96];
            snprintf(where, sizeof where, "special values, variant %d, %s", variant, fopt_cpu_isa());
            for (int a = 0; a < 5; a++) {
                expect_same(b[a].p, y[a], n, a == 1 ? "grad (read only)" : "state", where);
                free(x[a]);
                free(y[a]);
                free(b[a].base);
            }
        }
    }
}

Test(cpu, centered_variance_below_zero_is_clamped)
{
    /* A constant gradient with matching state: v - ga*ga is 0 in exact arithmetic and a few ulp
     * either side after rounding. The reference clamps; so must every instruction set. */
    const size_t n = 1027;
    fopt_rmsprop_config c = fopt_rmsprop_config_default();
    c.centered = true;
    c.eps = 0.0;
    c.alpha = 0.9;
    test_rng r = test_rng_make(5);
    float *p = test_alloc(n), *g = test_alloc(n), *v = test_alloc(n), *ga = test_alloc(n);
    test_fill_uniform(&r, p, n, -1, 1);
    test_fill_uniform(&r, g, n, 0.1f, 3.0f);
    for (size_t i = 0; i < n; i++) {
        v[i] = g[i] * g[i];
        ga[i] = g[i];
    }
    float *rp = test_dup(p, n), *rv = test_dup(v, n), *rga = test_dup(ga, n);
    for (int t = 0; t < 4; t++)
        cr_assert_eq(fopt_rmsprop_step_ref(&c, n, rp, g, rv, NULL, rga), FOPT_SUCCESS);
    size_t clamped = 0;
    for (size_t i = 0; i < n; i++)
        clamped += isinf(rp[i]) || isnan(rp[i]); /* g / (0 + 0): a clamped variance */
    cr_expect_gt(clamped, 0, "the data should round some variances to <= 0");
    for (int isa = 0; isa < isa_count(); isa++) {
        force_isa(isa);
        float *fp = test_dup(p, n), *fv = test_dup(v, n), *fga = test_dup(ga, n);
        for (int t = 0; t < 4; t++)
            cr_assert_eq(fopt_rmsprop_step_cpu(&c, n, fp, g, fv, NULL, fga), FOPT_SUCCESS);
        expect_same(fp, rp, n, "param", fopt_cpu_isa());
        expect_same(fv, rv, n, "square_avg", fopt_cpu_isa());
        expect_same(fga, rga, n, "grad_avg", fopt_cpu_isa());
        free(fp);
        free(fv);
        free(fga);
    }
    free(p);
    free(g);
    free(v);
    free(ga);
    free(rp);
    free(rv);
    free(rga);
}

/* ---------------------------------------------------------------------------------------------
 * Bad input: FOPT_ERROR_INVALID_VALUE, nothing touched, as for the reference.
 * ------------------------------------------------------------------------------------------- */
#define BN 37

typedef struct bufs {
    float b[6][BN];
} bufs;

static bufs bufs_make(void)
{
    bufs x;
    test_rng r = test_rng_make(9);
    for (int a = 0; a < 6; a++)
        test_fill_uniform(&r, x.b[a], BN, 0.1f, 1.0f);
    return x;
}

static void expect_adam_rejected(const fopt_adam_config *cfg, int64_t step, bool null_vmax,
                                 int null_which, const char *what)
{
    bufs x = bufs_make(), orig = x;
    float *ptr[5] = {x.b[0], x.b[1], x.b[2], x.b[3], null_vmax ? NULL : x.b[4]};
    if (null_which >= 0)
        ptr[null_which] = NULL;
    for (int isa = 0; isa < isa_count(); isa++) {
        force_isa(isa);
        cr_expect_eq(fopt_adam_step_ref(cfg, step, BN, ptr[0], ptr[1], ptr[2], ptr[3], ptr[4]),
                     FOPT_ERROR_INVALID_VALUE, "reference, %s", what);
        cr_expect_eq(fopt_adam_step_cpu(cfg, step, BN, ptr[0], ptr[1], ptr[2], ptr[3], ptr[4]),
                     FOPT_ERROR_INVALID_VALUE, "%s (%s)", what, fopt_cpu_isa());
        cr_expect_eq(memcmp(&x, &orig, sizeof x), 0, "%s: a buffer changed", what);
        cr_expect_str_neq(fopt_last_error(), "", "%s: no message", what);
    }
}

Test(cpu, adam_bad_input_changes_nothing)
{
    fopt_adam_config ok = fopt_adam_config_default(), c;
    expect_adam_rejected(NULL, 1, false, -1, "NULL config");
    c = ok; c.lr = -1e-3; expect_adam_rejected(&c, 1, false, -1, "lr < 0");
    c = ok; c.lr = NAN; expect_adam_rejected(&c, 1, false, -1, "lr NaN");
    c = ok; c.lr = INFINITY; expect_adam_rejected(&c, 1, false, -1, "lr inf");
    c = ok; c.beta1 = 1.0; expect_adam_rejected(&c, 1, false, -1, "beta1 1");
    c = ok; c.beta2 = -0.1; expect_adam_rejected(&c, 1, false, -1, "beta2 < 0");
    c = ok; c.eps = -1; expect_adam_rejected(&c, 1, false, -1, "eps < 0");
    c = ok; c.weight_decay = NAN; expect_adam_rejected(&c, 1, false, -1, "wd NaN");
    expect_adam_rejected(&ok, 0, false, -1, "step 0");
    expect_adam_rejected(&ok, -3, false, -1, "step < 0");
    for (int w = 0; w < 4; w++)
        expect_adam_rejected(&ok, 1, false, w, "a NULL buffer");
    c = ok; c.amsgrad = true; expect_adam_rejected(&c, 1, true, -1, "amsgrad without max");
}

static void expect_rms_rejected(const fopt_rmsprop_config *cfg, int null_which, const char *what)
{
    bufs x = bufs_make(), orig = x;
    float *ptr[5] = {x.b[0], x.b[1], x.b[2], x.b[3], x.b[4]};
    if (null_which >= 0)
        ptr[null_which] = NULL;
    for (int isa = 0; isa < isa_count(); isa++) {
        force_isa(isa);
        cr_expect_eq(fopt_rmsprop_step_ref(cfg, BN, ptr[0], ptr[1], ptr[2], ptr[3], ptr[4]),
                     FOPT_ERROR_INVALID_VALUE, "reference, %s", what);
        cr_expect_eq(fopt_rmsprop_step_cpu(cfg, BN, ptr[0], ptr[1], ptr[2], ptr[3], ptr[4]),
                     FOPT_ERROR_INVALID_VALUE, "%s (%s)", what, fopt_cpu_isa());
        cr_expect_eq(memcmp(&x, &orig, sizeof x), 0, "%s: a buffer changed", what);
    }
}

Test(cpu, rmsprop_bad_input_changes_nothing)
{
    fopt_rmsprop_config ok = fopt_rmsprop_config_default(), c;
    expect_rms_rejected(NULL, -1, "NULL config");
    c = ok; c.lr = -1; expect_rms_rejected(&c, -1, "lr < 0");
    c = ok; c.alpha = 1.5; expect_rms_rejected(&c, -1, "alpha > 1");
    c = ok; c.alpha = NAN; expect_rms_rejected(&c, -1, "alpha NaN");
    c = ok; c.eps = INFINITY; expect_rms_rejected(&c, -1, "eps inf");
    c = ok; c.momentum = -0.5; expect_rms_rejected(&c, -1, "momentum < 0");
    c = ok; c.weight_decay = -1; expect_rms_rejected(&c, -1, "wd < 0");
    for (int w = 0; w < 3; w++)
        expect_rms_rejected(&ok, w, "a NULL buffer");
    c = ok; c.momentum = 0.9; expect_rms_rejected(&c, 3, "momentum without buffer");
    c = ok; c.centered = true; expect_rms_rejected(&c, 4, "centered without grad_avg");
}

Test(cpu, zero_elements_is_a_checked_no_op)
{
    float p = 1, g = 2, m = 3, v = 4;
    fopt_adam_config a = fopt_adam_config_default();
    fopt_rmsprop_config r = fopt_rmsprop_config_default();
    cr_expect_eq(fopt_adam_step_cpu(&a, 1, 0, &p, &g, &m, &v, NULL), FOPT_SUCCESS);
    cr_expect_eq(fopt_rmsprop_step_cpu(&r, 0, &p, &g, &v, NULL, NULL), FOPT_SUCCESS);
    cr_expect(p == 1 && g == 2 && m == 3 && v == 4);
    cr_expect_eq(fopt_adam_step_cpu(&a, 1, 0, NULL, &g, &m, &v, NULL), FOPT_ERROR_INVALID_VALUE);
    cr_expect_eq(fopt_rmsprop_step_cpu(&r, 0, &p, NULL, &v, NULL, NULL), FOPT_ERROR_INVALID_VALUE);
}

Test(cpu, unused_optional_buffers_are_ignored)
{
    /* Without AMSGrad / momentum / centered the optional pointers may be anything non-NULL too,
     * and are not touched. */
    enum { N = 100 };
    float p[N], g[N], m[N], v[N], extra[N], extra2[N];
    test_rng r = test_rng_make(3);
    test_fill_uniform(&r, p, N, -1, 1);
    test_fill_uniform(&r, g, N, -1, 1);
    test_fill_uniform(&r, m, N, -1, 1);
    test_fill_uniform(&r, v, N, 0, 1);
    for (int i = 0; i < N; i++)
        extra[i] = extra2[i] = 42.0f;
    fopt_adam_config a = fopt_adam_config_default();
    cr_expect_eq(fopt_adam_step_cpu(&a, 1, N, p, g, m, v, extra), FOPT_SUCCESS);
    fopt_rmsprop_config rc = fopt_rmsprop_config_default();
    cr_expect_eq(fopt_rmsprop_step_cpu(&rc, N, p, g, v, extra, extra2), FOPT_SUCCESS);
    for (int i = 0; i < N; i++)
        cr_assert(extra[i] == 42.0f && extra2[i] == 42.0f, "optional buffer written at %d", i);
}

/* ---------------------------------------------------------------------------------------------
 * Threads, instruction sets, partition
 * ------------------------------------------------------------------------------------------- */
Test(cpu, set_threads)
{
    cr_assert_eq(fopt_cpu_set_threads(3), FOPT_SUCCESS);
    if (fopt_cpu_multithreaded())
        cr_expect_eq(fopt_cpu_threads(), 3);
    cr_expect_eq(fopt_cpu_set_threads(-1), FOPT_ERROR_INVALID_VALUE);
    cr_expect_str_neq(fopt_last_error(), "");
    if (fopt_cpu_multithreaded())
        cr_expect_eq(fopt_cpu_threads(), 3, "a failed call must not change the count");
    cr_assert_eq(fopt_cpu_set_threads(0), FOPT_SUCCESS);
    cr_expect_geq(fopt_cpu_threads(), 1);
}

Test(cpu, threads_from_environment)
{
    cr_assert_eq(setenv("FOPT_NUM_THREADS", "5", 1), 0);
    cr_assert_eq(fopt_cpu_set_threads(0), FOPT_SUCCESS); /* re-reads the environment */
    if (fopt_cpu_multithreaded())
        cr_expect_eq(fopt_cpu_threads(), 5);
    cr_assert_eq(fopt_cpu_set_threads(2), FOPT_SUCCESS); /* an explicit count wins */
    if (fopt_cpu_multithreaded())
        cr_expect_eq(fopt_cpu_threads(), 2);
    cr_assert_eq(setenv("FOPT_NUM_THREADS", "lots", 1), 0);
    cr_assert_eq(fopt_cpu_set_threads(0), FOPT_SUCCESS);
    cr_expect_geq(fopt_cpu_threads(), 1, "a bad value falls back to every core");
    unsetenv("FOPT_NUM_THREADS");
    fopt_cpu_set_threads(0);
}

Test(cpu, isa_names_and_forcing)
{
    unsetenv("FOPT_CPU_ISA"); /* automatic then means the best set */
    const char *best = fopt_cpu_isa_name(fopt_cpu_isa_max());
    cr_assert_not_null(best);
    cr_expect(strcmp(fopt_cpu_isa(), "scalar") == 0 || strcmp(fopt_cpu_isa(), "avx2") == 0 ||
              strcmp(fopt_cpu_isa(), "avx512") == 0);
    cr_expect_eq(fopt_cpu_force_isa("scalar"), FOPT_SUCCESS);
    cr_expect_str_eq(fopt_cpu_isa(), "scalar");
    cr_expect_eq(fopt_cpu_force_isa("sse9"), FOPT_ERROR_INVALID_VALUE);
    cr_expect_str_eq(fopt_cpu_isa(), "scalar", "a failed call must not change the choice");
    if (fopt_cpu_isa_max() < FOPT_CPU_ISA_AVX512) {
        cr_expect_eq(fopt_cpu_force_isa("avx512"), FOPT_ERROR_NOT_SUPPORTED);
        cr_expect_str_eq(fopt_cpu_isa(), "scalar");
    }
    cr_expect_eq(fopt_cpu_force_isa(NULL), FOPT_SUCCESS);
    cr_expect_str_eq(fopt_cpu_isa(), best);
    cr_log_info("fast CPU path: %s, %d threads", fopt_cpu_isa(), fopt_cpu_threads());
}

Test(cpu, isa_from_environment)
{
    cr_assert_eq(setenv("FOPT_CPU_ISA", "scalar", 1), 0);
    cr_assert_eq(fopt_cpu_force_isa(NULL), FOPT_SUCCESS); /* automatic: re-reads the variable */
    cr_expect_str_eq(fopt_cpu_isa(), "scalar");
    cr_assert_eq(setenv("FOPT_CPU_ISA", "avx1024", 1), 0);
    cr_assert_eq(fopt_cpu_force_isa("auto"), FOPT_SUCCESS);
    cr_expect_str_eq(fopt_cpu_isa(), fopt_cpu_isa_name(fopt_cpu_isa_max()), "unknown names are ignored");
    unsetenv("FOPT_CPU_ISA");
    cr_assert_eq(fopt_cpu_force_isa(NULL), FOPT_SUCCESS);
    cr_expect_str_eq(fopt_cpu_isa(), fopt_cpu_isa_name(fopt_cpu_isa_max()));
}

Test(cpu, partition_covers_and_aligns)
{
    static const size_t ns[] = {0, 1, 15, 16, 17, 100, 4097, 65536, 1000003};
    float *base = aligned_alloc(64, 64 * 4);
    cr_assert_not_null(base);
    for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++)
        for (int nt = 1; nt <= 7; nt++)
            for (int off = 0; off < 16; off++) {
                size_t n = ns[k];
                const float *ref = base + off;
                cr_assert_eq(fopt_cpu_split(n, ref, nt, 0), 0);
                cr_assert_eq(fopt_cpu_split(n, ref, nt, nt), n);
                for (int t = 0; t < nt; t++) {
                    size_t b = fopt_cpu_split(n, ref, nt, t), e = fopt_cpu_split(n, ref, nt, t + 1);
                    cr_assert_leq(b, e, "n %zu nt %d t %d", n, nt, t);
                    if (t > 0 && b > 0 && b < n)
                        cr_assert_eq((uintptr_t)(ref + b) % 64, 0, "n %zu nt %d t %d off %d: boundary %zu",
                                     n, nt, t, off, b);
                    /* balanced: no range longer than an even share plus alignment slack */
                    cr_assert_leq(e - b, n / (size_t)nt + 32, "n %zu nt %d t %d", n, nt, t);
                }
            }
    free(base);
}

Test(cpu, roofline_loop_adds)
{
    const size_t n = 4099;
    fopt_cpu_set_grain(1);
    cr_assert_eq(fopt_cpu_set_threads(3), FOPT_SUCCESS);
    for (int isa = 0; isa < isa_count(); isa++) {
        force_isa(isa);
        test_rng r = test_rng_make(11);
        float *ro = test_alloc(n), *a = test_alloc(n + 1), *b = test_alloc(n);
        test_fill_uniform(&r, ro, n, -1, 1);
        test_fill_uniform(&r, a, n + 1, -1, 1);
        test_fill_uniform(&r, b, n, -1, 1);
        float *a0 = test_dup(a + 1, n), *b0 = test_dup(b, n);
        float *rw[2] = {a + 1, b};
        fopt_cpu_roofline(n, ro, rw, 2);
        for (size_t i = 0; i < n; i++) {
            cr_assert(a[i + 1] == a0[i] + ro[i], "%s: a[%zu]", fopt_cpu_isa(), i);
            cr_assert(b[i] == b0[i] + ro[i], "%s: b[%zu]", fopt_cpu_isa(), i);
        }
        free(ro);
        free(a);
        free(b);
        free(a0);
        free(b0);
    }
}
