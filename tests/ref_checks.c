#include "ref_checks.h"

#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "util.h"

/* ---- the two optimizers --------------------------------------------------------------------- */

static fopt_status adam_step(const void *cfg, int64_t step, size_t n, float *const *b)
{
    return fopt_adam_step_ref(cfg, step, n, b[0], b[1], b[2], b[3], b[4]);
}

static fopt_status rmsprop_step(const void *cfg, int64_t step, size_t n, float *const *b)
{
    (void)step;
    return fopt_rmsprop_step_ref(cfg, n, b[0], b[1], b[2], b[3], b[4]);
}

static void adam_config(void *out, int which, double wd)
{
    fopt_adam_config c = fopt_adam_config_default();
    if (which > 0)
        c.weight_decay = wd;
    if (which > 1)
        c.decoupled_weight_decay = true, c.amsgrad = true;
    memcpy(out, &c, sizeof c);
}

static void rmsprop_config(void *out, int which, double wd)
{
    fopt_rmsprop_config c = fopt_rmsprop_config_default();
    if (which > 0)
        c.weight_decay = wd, c.momentum = 0.9;
    if (which > 1)
        c.centered = true, c.momentum = 0.5;
    memcpy(out, &c, sizeof c);
}

/* The variants each golden file must cover (with the shapes ref_check_golden_coverage wants of
 * both), and for RMSprop a case that starts from a warm state. */
static const char *const k_adam_variants[] = {
    "plain", "L2", "AdamW", "AMSGrad", "AMSGrad+AdamW", "maximize", "maximize+wd", "lerp's other form",
    "first step >= 10^6"};

static void adam_variants(const golden_case *c, bool v[REF_MAX_VARIANTS])
{
    const fopt_adam_config *a = &c->adam;
    const bool wd = a->weight_decay > 0.0, dec = a->decoupled_weight_decay;
    const bool has[] = {!a->amsgrad && !a->maximize && !wd, !dec && wd, dec && wd, a->amsgrad, a->amsgrad && dec,
                        a->maximize, a->maximize && wd, (float)(1.0 - a->beta1) >= 0.5f,
                        c->first_step >= 1000000};
    memcpy(v, has, sizeof has);
}

static const char *const k_rmsprop_variants[] = {
    "plain", "weight decay", "momentum", "centered", "centered+momentum", "maximize",
    "grad_avg lerp's other form", "eps >= 1e-3", "warm start"};

static void rmsprop_variants(const golden_case *c, bool v[REF_MAX_VARIANTS])
{
    const fopt_rmsprop_config *o = &c->rmsprop;
    bool warm = false;
    for (size_t j = 0; j < c->n && !warm; j++)
        warm = c->state0[0][j] != 0.0f;
    const bool wd = o->weight_decay > 0.0, mom = o->momentum > 0.0;
    const bool has[] = {!wd && !mom && !o->centered && !o->maximize, wd, mom, o->centered, o->centered && mom,
                        o->maximize, o->centered && (float)(1.0 - o->alpha) >= 0.5f, o->eps >= 1e-3, warm};
    memcpy(v, has, sizeof has);
}

const ref_optimizer ref_adam = {
    "adam",
    {"param", "grad", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"},
    1u << REF_S1 | 1u << REF_S2,
    1u << REF_S0 | 1u << REF_S1,
    0xADA0,
    sizeof(fopt_adam_config),
    offsetof(fopt_adam_config, lr),
    offsetof(fopt_adam_config, maximize),
    adam_step,
    adam_config,
    "golden_adam.bin",
    GOLDEN_ADAM,
    1,
    k_adam_variants,
    sizeof k_adam_variants / sizeof k_adam_variants[0],
    adam_variants,
};

const ref_optimizer ref_rmsprop = {
    "rmsprop",
    {"param", "grad", "square_avg", "momentum_buffer", "grad_avg"},
    1u << REF_S0,
    1u << REF_S0,
    0x2A50,
    sizeof(fopt_rmsprop_config),
    offsetof(fopt_rmsprop_config, lr),
    offsetof(fopt_rmsprop_config, maximize),
    rmsprop_step,
    rmsprop_config,
    "golden_rmsprop.bin",
    GOLDEN_RMSPROP,
    0,
    k_rmsprop_variants,
    sizeof k_rmsprop_variants / sizeof k_rmsprop_variants[0],
    rmsprop_variants,
};

/* Bad values of the hyper-parameters, by the range they must be in. */
static const double k_bad_non_negative[] = {NAN, INFINITY, -INFINITY, -DBL_MIN, -1e-8, -1e-3, -0.01, -0.9};
static const double k_bad_beta[] = {1.0, 1.5, -0.1, -DBL_MIN, NAN, INFINITY, -INFINITY};      /* [0, 1) */
static const double k_bad_alpha[] = {-0.1, -DBL_MIN, 1.0 + DBL_EPSILON, 2.0, NAN, INFINITY, -INFINITY}; /* [0, 1] */
#define BAD(a) a, sizeof a / sizeof a[0]

static const struct {
    const ref_optimizer *o;
    const char *name;
    size_t offset;
    const double *bad;
    size_t nbad;
} k_fields[] = {
    {&ref_adam, "lr", offsetof(fopt_adam_config, lr), BAD(k_bad_non_negative)},
    {&ref_adam, "eps", offsetof(fopt_adam_config, eps), BAD(k_bad_non_negative)},
    {&ref_adam, "weight_decay", offsetof(fopt_adam_config, weight_decay), BAD(k_bad_non_negative)},
    {&ref_adam, "beta1", offsetof(fopt_adam_config, beta1), BAD(k_bad_beta)},
    {&ref_adam, "beta2", offsetof(fopt_adam_config, beta2), BAD(k_bad_beta)},
    {&ref_rmsprop, "lr", offsetof(fopt_rmsprop_config, lr), BAD(k_bad_non_negative)},
    {&ref_rmsprop, "eps", offsetof(fopt_rmsprop_config, eps), BAD(k_bad_non_negative)},
    {&ref_rmsprop, "weight_decay", offsetof(fopt_rmsprop_config, weight_decay), BAD(k_bad_non_negative)},
    {&ref_rmsprop, "momentum", offsetof(fopt_rmsprop_config, momentum), BAD(k_bad_non_negative)},
    {&ref_rmsprop, "alpha", offsetof(fopt_rmsprop_config, alpha), BAD(k_bad_alpha)},
};

/* ---- buffers and steps ---------------------------------------------------------------------- */

ref_bufs ref_bufs_make(size_t n, uint64_t seed)
{
    test_rng r = test_rng_make(seed);
    ref_bufs a = {n, {NULL}};
    for (int k = 0; k < REF_BUFS; k++)
        a.b[k] = test_alloc(n);
    test_fill_uniform(&r, a.b[REF_P], n, -1.0f, 1.0f);
    test_fill_magnitudes(&r, a.b[REF_G], n, -3.0, 2.0, 0);
    for (int k = REF_S0; k < REF_BUFS; k++)
        memset(a.b[k], 0, n * sizeof(float));
    return a;
}

void ref_bufs_free(ref_bufs *a)
{
    for (int k = 0; k < REF_BUFS; k++)
        free(a->b[k]);
}

fopt_status ref_step(const ref_optimizer *o, const void *cfg, int64_t step, ref_bufs *a)
{
    return o->step(cfg, step, a->n, a->b);
}

/* A config of the optimizer's in malloc'ed memory (aligned for it). */
static void *config_of(const ref_optimizer *o, int which, double wd)
{
    void *c = malloc(o->cfg_size);
    cr_assert_not_null(c);
    o->config(c, which, wd);
    return c;
}

/* ---- invalid input -------------------------------------------------------------------------- */

void ref_expect_rejected(const ref_optimizer *o, const void *cfg, int64_t step, size_t n_call,
                         unsigned null_mask, const char *rule)
{
    const size_t n = 37;
    test_rng r = test_rng_make(o->reject_seed + null_mask + n_call);
    float *buf[REF_BUFS], *copy[REF_BUFS], *arg[REF_BUFS];
    for (int k = 0; k < REF_BUFS; k++) {
        buf[k] = test_alloc(n);
        test_fill_magnitudes(&r, buf[k], n, -3.0, 1.0, 0);
        if (o->non_negative & (1u << k))
            for (size_t i = 0; i < n; i++)
                buf[k][i] = fabsf(buf[k][i]);
        copy[k] = test_dup(buf[k], n);
        arg[k] = (null_mask & (1u << k)) ? NULL : buf[k];
    }
    fopt_status st = o->step(cfg, step, n_call, arg);
    cr_expect_eq(st, FOPT_ERROR_INVALID_VALUE, "%s: %s (n %zu): got %s", o->name, rule, n_call,
                 fopt_status_string(st));
    cr_expect(fopt_last_error()[0] != '\0', "%s: %s: no error message", o->name, rule);
    for (int k = 0; k < REF_BUFS; k++) {
        cr_expect_eq(memcmp(buf[k], copy[k], n * sizeof(float)), 0, "%s: %s (n %zu): %s changed",
                     o->name, rule, n_call, o->names[k]);
        free(buf[k]), free(copy[k]);
    }
}

void ref_check_null_buffers(const ref_optimizer *o)
{
    void *cfg = config_of(o, 2, 0.01); /* every buffer in use */
    for (int k = 0; k < REF_BUFS; k++) {
        char rule[64];
        snprintf(rule, sizeof rule, "NULL %s", o->names[k]);
        ref_expect_rejected(o, cfg, 1, 37, 1u << k, rule);
        ref_expect_rejected(o, cfg, 1, 0, 1u << k, rule); /* n == 0 still checks pointers */
    }
    free(cfg);
}

void ref_check_null_config(const ref_optimizer *o)
{
    ref_expect_rejected(o, NULL, 1, 37, 0, "NULL config");
    ref_expect_rejected(o, NULL, 1, 0, 0, "NULL config");
}

void ref_check_bad_hyper_parameters(const ref_optimizer *o)
{
    for (size_t f = 0; f < sizeof k_fields / sizeof k_fields[0]; f++) {
        if (k_fields[f].o != o)
            continue;
        for (int which = 0; which < 3; which++)
            for (size_t k = 0; k < k_fields[f].nbad; k++) {
                unsigned char *cfg = config_of(o, which, 0.01);
                memcpy(cfg + k_fields[f].offset, &k_fields[f].bad[k], sizeof(double));
                char rule[96];
                snprintf(rule, sizeof rule, "%s = %g (base config %d)", k_fields[f].name,
                         k_fields[f].bad[k], which);
                ref_expect_rejected(o, cfg, 1, 37, 0, rule);
                free(cfg);
            }
    }
}

/* ---- properties ----------------------------------------------------------------------------- */

void ref_check_maximize_negates_grad(const ref_optimizer *o)
{
    for (int which = 0; which < 3; which++) {
        unsigned char *cfg = config_of(o, which, 0.1), *mx = config_of(o, which, 0.1);
        const bool yes = true;
        memcpy(mx + o->maximize_offset, &yes, sizeof yes);
        ref_bufs a = ref_bufs_make(101, 30), b = ref_bufs_make(101, 30);
        for (int64_t t = 1; t <= 5; t++) {
            for (size_t i = 0; i < b.n; i++)
                b.b[REF_G][i] = -a.b[REF_G][i];
            cr_assert_eq(ref_step(o, mx, t, &a), FOPT_SUCCESS);
            cr_assert_eq(ref_step(o, cfg, t, &b), FOPT_SUCCESS);
        }
        for (int k = 0; k < REF_BUFS; k++)
            if (k != REF_G)
                cr_expect_eq(memcmp(a.b[k], b.b[k], a.n * sizeof(float)), 0, "%s config %d: %s differs",
                             o->name, which, o->names[k]);
        ref_bufs_free(&a), ref_bufs_free(&b);
        free(cfg), free(mx);
    }
}

void ref_check_zero_lr_keeps_param(const ref_optimizer *o)
{
    for (int which = 0; which < 3; which++) {
        unsigned char *cfg = config_of(o, which, 0.5);
        const double zero = 0.0;
        memcpy(cfg + o->lr_offset, &zero, sizeof zero);
        ref_bufs a = ref_bufs_make(99, 50);
        float *p0 = test_dup(a.b[REF_P], a.n);
        for (int64_t t = 1; t <= 3; t++)
            cr_assert_eq(ref_step(o, cfg, t, &a), FOPT_SUCCESS);
        cr_expect_eq(memcmp(a.b[REF_P], p0, a.n * sizeof(float)), 0, "%s config %d: param moved", o->name,
                     which);
        for (int k = REF_S0; k < REF_BUFS; k++)
            for (size_t i = 0; (o->moving >> k & 1u) && i < a.n; i++)
                cr_expect(a.b[k][i] != 0.0f, "%s config %d, i %zu: %s did not update", o->name, which, i,
                          o->names[k]);
        free(p0);
        ref_bufs_free(&a);
        free(cfg);
    }
}

void ref_check_empty_call(const ref_optimizer *o)
{
    void *cfg = config_of(o, 2, 0.01); /* every buffer in use */
    ref_bufs a = ref_bufs_make(8, 60), b = ref_bufs_make(8, 60);
    cr_assert_eq(o->step(cfg, 1, 0, a.b), FOPT_SUCCESS);
    for (int k = 0; k < REF_BUFS; k++)
        cr_expect_eq(memcmp(a.b[k], b.b[k], 8 * sizeof(float)), 0, "%s: %s written", o->name, o->names[k]);
    ref_bufs_free(&a), ref_bufs_free(&b);
    free(cfg);
}

void ref_check_golden_cases(const ref_optimizer *o)
{
    char label[32];
    snprintf(label, sizeof label, "%s_ref", o->name);
    const bool adam = o->golden_optimizer == GOLDEN_ADAM;
    double worst = golden_check_file(o->golden_file, adam ? fopt_adam_step_ref : NULL,
                                     adam ? NULL : fopt_rmsprop_step_ref, 1e-5, label);
    cr_log_info("%s: worst relative error over the golden cases %.3g", label, worst);
}

void ref_check_golden_coverage(const ref_optimizer *o)
{
    cr_assert(o->n_variants <= REF_MAX_VARIANTS);
    golden_case *cs;
    size_t n_cases = golden_load(o->golden_file, &cs);
    int step1 = 0, tiny_n = 0, big_odd_n = 0, overflow = 0, seen[REF_MAX_VARIANTS] = {0};
    for (size_t i = 0; i < n_cases; i++) {
        const golden_case *c = &cs[i];
        cr_assert_eq(c->optimizer, o->golden_optimizer, "%s: %s is of optimizer %d", o->golden_file,
                     c->name, c->optimizer);
        step1 += c->steps == 1 && c->first_step == 1;
        tiny_n += c->n <= 5;
        big_odd_n += c->n >= 1000 && c->n % 2 == 1;
        for (size_t j = 0; j < c->n; j++)
            if (isinf(c->state[o->golden_sq_slot][j])) {
                overflow++;
                break;
            }
        cr_expect(c->steps >= 25 || c->steps == 1 || c->first_step > 1, "%s: %u steps", c->name,
                  c->steps);
        bool v[REF_MAX_VARIANTS] = {false};
        o->variants(c, v);
        for (size_t k = 0; k < o->n_variants; k++)
            seen[k] += v[k];
    }
    golden_free(cs, n_cases);
    cr_expect(step1 && tiny_n && big_odd_n && overflow, "%s: step1 %d, tiny %d, big odd %d, overflow %d",
              o->golden_file, step1, tiny_n, big_odd_n, overflow);
    for (size_t k = 0; k < o->n_variants; k++)
        cr_expect(seen[k] > 0, "%s: no case of variant %s", o->golden_file, o->variant_names[k]);
}
