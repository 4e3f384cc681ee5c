/* The Adam / AdamW CPU reference: PyTorch's golden vectors, hand-checkable properties, and one
 * check per invalid-input rule (status and every buffer byte-identical). */
#include <float.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "fusedopt.h"
#include "golden.h"
#include "ref_checks.h"
#include "util.h"

#define GOLDEN_TOL 1e-5

/* ---------------------------------------------------------------------------------------------
 * Golden vectors
 * ------------------------------------------------------------------------------------------- */

Test(adam_ref, matches_pytorch_on_every_golden_case)
{
    double worst = golden_check_file("golden_adam.bin", fopt_adam_step_ref, NULL, GOLDEN_TOL,
                                     "adam_ref");
    cr_log_info("adam_ref: worst relative error over the golden cases %.3g", worst);
}

/* Guards against a regenerated file that lost coverage. */
Test(adam_ref, golden_file_covers_every_variant)
{
    golden_case *cs;
    size_t count = golden_load("golden_adam.bin", &cs);
    int plain = 0, l2 = 0, adamw = 0, ams = 0, ams_w = 0, maxi = 0, maxi_wd = 0, other_lerp = 0;
    int step1 = 0, late = 0, tiny_n = 0, big_odd_n = 0, overflow = 0;
    for (size_t i = 0; i < count; i++) {
        const golden_case *c = &cs[i];
        const fopt_adam_config *a = &c->adam;
        cr_assert_eq(c->optimizer, GOLDEN_ADAM, "%s is not an Adam case", c->name);
        plain += !a->amsgrad && !a->maximize && a->weight_decay == 0.0;
        l2 += !a->decoupled_weight_decay && a->weight_decay > 0.0;
        adamw += a->decoupled_weight_decay && a->weight_decay > 0.0;
        ams += a->amsgrad;
        ams_w += a->amsgrad && a->decoupled_weight_decay;
        maxi += a->maximize;
        maxi_wd += a->maximize && a->weight_decay > 0.0;
        other_lerp += (float)(1.0 - a->beta1) >= 0.5f;
        step1 += c->steps == 1 && c->first_step == 1;
        late += c->first_step >= 1000000;
        tiny_n += c->n <= 5;
        big_odd_n += c->n >= 1000 && c->n % 2 == 1;
        for (size_t j = 0; j < c->n; j++)
            if (isinf(c->state[1][j])) {
                overflow++;
                break;
            }
        cr_expect(c->steps >= 25 || c->steps == 1 || c->first_step > 1, "%s: %u steps", c->name,
                  c->steps);
    }
    golden_free(cs, count);
    cr_expect(plain && l2 && adamw && ams && ams_w && maxi && maxi_wd && other_lerp);
    cr_expect(step1 && late && tiny_n && big_odd_n && overflow);
}

/* ---------------------------------------------------------------------------------------------
 * Properties
 * ------------------------------------------------------------------------------------------- */

typedef struct adam_run {
    size_t n;
    float *p, *g, *m, *v, *vmax;
} adam_run;

static adam_run run_make(size_t n, uint64_t seed)
{
    float *b[5];
    ref_bufs_make(n, seed, b);
    return (adam_run){n, b[0], b[1], b[2], b[3], b[4]};
}

static void run_free(adam_run *a) { ref_bufs_free((float *[5]){a->p, a->g, a->m, a->v, a->vmax}); }

static fopt_status run_step(const fopt_adam_config *cfg, int64_t step, adam_run *a)
{
    return fopt_adam_step_ref(cfg, step, a->n, a->p, a->g, a->m, a->v,
                              cfg->amsgrad ? a->vmax : NULL);
}

/* At step 1 from zero state, m/sqrt(v) after bias correction is g/|g|: every parameter moves by
 * lr against its gradient's sign (eps = 1e-8 is negligible for |g| >= 1e-3), whatever the betas. */
Test(adam_ref, first_step_moves_each_param_by_lr)
{
    fopt_adam_config cfgs[3] = {fopt_adam_config_default(), fopt_adam_config_default(),
                                fopt_adam_config_default()};
    cfgs[1].beta1 = 0.3, cfgs[1].beta2 = 0.95, cfgs[1].lr = 3e-2;
    cfgs[2].amsgrad = true, cfgs[2].beta1 = 0.0, cfgs[2].lr = 0.25;
    for (int k = 0; k < 3; k++) {
        adam_run a = run_make(1001, 10 + (uint64_t)k);
        float *p0 = test_dup(a.p, a.n);
        cr_assert_eq(run_step(&cfgs[k], 1, &a), FOPT_SUCCESS);
        for (size_t i = 0; i < a.n; i++) {
            double want = p0[i] - (a.g[i] > 0 ? cfgs[k].lr : -cfgs[k].lr);
            /* lr * 2e-5 for eps (|g| >= 1e-3) and the ulp of the bias corrections, plus p's own
             * rounding */
            double tol = cfgs[k].lr * 2e-5 + 2.0 * 0x1p-24 * fabs(want);
            cr_assert(fabs(a.p[i] - want) <= tol, "cfg %d, i %zu: g %g, p %.9g -> %.9g, want %.9g",
                      k, i, a.g[i], p0[i], a.p[i], want);
        }
        free(p0);
        run_free(&a);
    }
}

/* AMSGrad keeps the running max of the raw second moment v (not of v / bias correction), leaves
 * the moments themselves as plain Adam computes them, and never takes a larger step than Adam. */
Test(adam_ref, amsgrad_keeps_running_max_of_raw_v)
{
    const size_t n = 257;
    fopt_adam_config cfg = fopt_adam_config_default();
    cfg.amsgrad = true;
    cfg.beta2 = 0.9; /* v falls quickly once the gradients shrink */
    fopt_adam_config plain = cfg;
    plain.amsgrad = false;
    adam_run a = run_make(n, 20), b = run_make(n, 20);
    float *want_max = test_alloc(n);
    memset(want_max, 0, n * sizeof(float));
    test_rng r = test_rng_make(21);
    int fell = 0;
    for (int64_t t = 1; t <= 40; t++) {
        /* large gradients for 10 steps, then 1000x smaller */
        test_fill_magnitudes(&r, a.g, n, t <= 10 ? 0.0 : -3.0, t <= 10 ? 1.0 : -2.0, 0);
        memcpy(b.g, a.g, n * sizeof(float));
        float *p_before = test_dup(a.p, n);
        cr_assert_eq(run_step(&cfg, t, &a), FOPT_SUCCESS);
        memcpy(b.p, p_before, n * sizeof(float)); /* same starting point for one plain step */
        cr_assert_eq(run_step(&plain, t, &b), FOPT_SUCCESS);
        for (size_t i = 0; i < n; i++) {
            cr_assert_eq(a.m[i], b.m[i], "t %lld, i %zu: amsgrad changed exp_avg", (long long)t, i);
            cr_assert_eq(a.v[i], b.v[i], "t %lld, i %zu: amsgrad changed exp_avg_sq", (long long)t,
                         i);
            if (a.v[i] > want_max[i])
                want_max[i] = a.v[i];
            cr_assert_eq(a.vmax[i], want_max[i], "t %lld, i %zu: max %g, want %g (v %g)",
                         (long long)t, i, a.vmax[i], want_max[i], a.v[i]);
            float step_ams = fabsf(a.p[i] - p_before[i]), step_adam = fabsf(b.p[i] - p_before[i]);
            cr_assert(step_ams <= step_adam, "t %lld, i %zu: amsgrad step %g larger than Adam's %g",
                      (long long)t, i, step_ams, step_adam);
            /* where the max is in use (and the step above rounding), the step must be smaller */
            if (a.vmax[i] > 4.0f * a.v[i] && step_adam > 1e-5f) {
                fell++;
                cr_assert(step_ams < step_adam, "t %lld, i %zu: max %g > v %g but the step is %g",
                          (long long)t, i, a.vmax[i], a.v[i], step_ams);
            }
        }
        free(p_before);
    }
    cr_expect(fell > 0, "the max never exceeded v: the test does not exercise the max");
    free(want_max);
    run_free(&a), run_free(&b);
}

/* maximize with gradient g gives bit-identical results to minimizing with -g. */
Test(adam_ref, maximize_equals_negated_gradient)
{
    fopt_adam_config cfgs[3] = {fopt_adam_config_default(), fopt_adam_config_default(),
                                fopt_adam_config_default()};
    cfgs[1].weight_decay = 0.1;
    cfgs[2].weight_decay = 0.1, cfgs[2].decoupled_weight_decay = true, cfgs[2].amsgrad = true;
    for (int k = 0; k < 3; k++) {
        fopt_adam_config mx = cfgs[k];
        mx.maximize = true;
        adam_run a = run_make(101, 30), b = run_make(101, 30);
        for (int64_t t = 1; t <= 5; t++) {
            for (size_t i = 0; i < b.n; i++)
                b.g[i] = -a.g[i];
            cr_assert_eq(run_step(&mx, t, &a), FOPT_SUCCESS);
            cr_assert_eq(run_step(&cfgs[k], t, &b), FOPT_SUCCESS);
        }
        cr_expect_eq(memcmp(a.p, b.p, a.n * sizeof(float)), 0, "cfg %d: param differs", k);
        cr_expect_eq(memcmp(a.m, b.m, a.n * sizeof(float)), 0, "cfg %d: exp_avg differs", k);
        cr_expect_eq(memcmp(a.v, b.v, a.n * sizeof(float)), 0, "cfg %d: exp_avg_sq differs", k);
        cr_expect_eq(memcmp(a.vmax, b.vmax, a.n * sizeof(float)), 0, "cfg %d: max differs", k);
        run_free(&a), run_free(&b);
    }
}

/* A zero gradient from zero state moves nothing (without decay), and AdamW then only decays. */
Test(adam_ref, zero_gradient_without_decay_leaves_param_unchanged)
{
    fopt_adam_config cfg = fopt_adam_config_default();
    adam_run a = run_make(64, 40);
    memset(a.g, 0, a.n * sizeof(float));
    float *p0 = test_dup(a.p, a.n);
    for (int64_t t = 1; t <= 3; t++)
        cr_assert_eq(run_step(&cfg, t, &a), FOPT_SUCCESS);
    cr_expect_eq(memcmp(a.p, p0, a.n * sizeof(float)), 0);

    cfg.decoupled_weight_decay = true;
    cfg.weight_decay = 0.1;
    cfg.lr = 0.01;
    memcpy(a.p, p0, a.n * sizeof(float));
    cr_assert_eq(run_step(&cfg, 1, &a), FOPT_SUCCESS);
    const float decay = (float)(1.0 - 0.01 * 0.1);
    for (size_t i = 0; i < a.n; i++)
        cr_expect_eq(a.p[i], p0[i] * decay, "i %zu: %.9g, want %.9g", i, a.p[i], p0[i] * decay);
    free(p0);
    run_free(&a);
}

/* lr 0 leaves the parameter bit-identical (also with L2 and decoupled decay) while the moments
 * still update. */
Test(adam_ref, zero_lr_leaves_param_unchanged)
{
    fopt_adam_config cfgs[3] = {fopt_adam_config_default(), fopt_adam_config_default(),
                                fopt_adam_config_default()};
    cfgs[1].weight_decay = 0.5;
    cfgs[2].weight_decay = 0.5, cfgs[2].decoupled_weight_decay = true, cfgs[2].amsgrad = true;
    for (int k = 0; k < 3; k++) {
        cfgs[k].lr = 0.0;
        adam_run a = run_make(99, 50);
        float *p0 = test_dup(a.p, a.n);
        for (int64_t t = 1; t <= 3; t++)
            cr_assert_eq(run_step(&cfgs[k], t, &a), FOPT_SUCCESS);
        cr_expect_eq(memcmp(a.p, p0, a.n * sizeof(float)), 0, "cfg %d: param moved", k);
        int moved = 0;
        for (size_t i = 0; i < a.n; i++)
            moved += a.m[i] != 0.0f && a.v[i] > 0.0f;
        cr_expect_eq(moved, (int)a.n, "cfg %d: moments did not update", k);
        free(p0);
        run_free(&a);
    }
}

/* n == 0 succeeds and writes nothing; an unused max buffer is never written. */
Test(adam_ref, empty_call_succeeds_and_touches_nothing)
{
    fopt_adam_config cfg = fopt_adam_config_default();
    cfg.amsgrad = true;
    adam_run a = run_make(8, 60);
    adam_run b = run_make(8, 60);
    cr_assert_eq(fopt_adam_step_ref(&cfg, 1, 0, a.p, a.g, a.m, a.v, a.vmax), FOPT_SUCCESS);
    cr_expect_eq(memcmp(a.p, b.p, 8 * sizeof(float)), 0);
    cr_expect_eq(memcmp(a.g, b.g, 8 * sizeof(float)), 0);
    cr_expect_eq(memcmp(a.m, b.m, 8 * sizeof(float)), 0);
    cr_expect_eq(memcmp(a.v, b.v, 8 * sizeof(float)), 0);
    cr_expect_eq(memcmp(a.vmax, b.vmax, 8 * sizeof(float)), 0);
    run_free(&a), run_free(&b);
}

Test(adam_ref, max_buffer_is_ignored_without_amsgrad)
{
    fopt_adam_config cfg = fopt_adam_config_default();
    adam_run a = run_make(33, 70);
    for (size_t i = 0; i < a.n; i++)
        a.vmax[i] = 1234.5f;
    cr_assert_eq(fopt_adam_step_ref(&cfg, 1, a.n, a.p, a.g, a.m, a.v, a.vmax), FOPT_SUCCESS);
    for (size_t i = 0; i < a.n; i++)
        cr_expect_eq(a.vmax[i], 1234.5f, "i %zu written", i);
    run_free(&a);
}

/* The edges of every range are valid: lr 0, betas 0, eps 0, wd 0, and very late steps. */
Test(adam_ref, accepts_the_edges_of_every_range)
{
    fopt_adam_config cfg = fopt_adam_config_default();
    cfg.lr = 0.0, cfg.beta1 = 0.0, cfg.beta2 = 0.0, cfg.eps = 0.0, cfg.weight_decay = 0.0;
    adam_run a = run_make(16, 80);
    cr_expect_eq(run_step(&cfg, 1, &a), FOPT_SUCCESS);
    run_free(&a);

    cfg = fopt_adam_config_default();
    cfg.beta1 = nextafter(1.0, 0.0), cfg.beta2 = nextafter(1.0, 0.0);
    a = run_make(16, 81);
    cr_expect_eq(run_step(&cfg, 1, &a), FOPT_SUCCESS);
    run_free(&a);

    cfg = fopt_adam_config_default();
    a = run_make(16, 82);
    cr_expect_eq(run_step(&cfg, INT64_MAX, &a), FOPT_SUCCESS);
    for (size_t i = 0; i < a.n; i++)
        cr_expect(isfinite(a.p[i]), "step INT64_MAX gave a non-finite param at %zu", i);
    run_free(&a);
}

/* ---------------------------------------------------------------------------------------------
 * Invalid input: FOPT_ERROR_INVALID_VALUE and every buffer byte-identical
 * ------------------------------------------------------------------------------------------- */

enum { NULL_PARAM = 1, NULL_GRAD = 2, NULL_EXP_AVG = 4, NULL_EXP_AVG_SQ = 8, NULL_MAX = 16 };

static fopt_status adam_step5(const void *cfg, int64_t step, size_t n, float *const *b)
{
    return fopt_adam_step_ref(cfg, step, n, b[0], b[1], b[2], b[3], b[4]);
}

static const ref_optimizer k_adam = {
    {"param", "grad", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"}, 8u | 16u, 0xADA0, adam_step5};

static void expect_rejected(const fopt_adam_config *cfg, int64_t step, size_t n_call,
                            unsigned null_mask, const char *rule)
{
    ref_expect_rejected(&k_adam, cfg, step, n_call, null_mask, rule);
}

static fopt_adam_config amsgrad_cfg(void)
{
    fopt_adam_config cfg = fopt_adam_config_default();
    cfg.amsgrad = true;
    cfg.weight_decay = 0.01;
    return cfg;
}

static void expect_null_rejected(unsigned null_mask, const char *rule)
{
    fopt_adam_config cfg = amsgrad_cfg();
    expect_rejected(&cfg, 1, 37, null_mask, rule);
    expect_rejected(&cfg, 1, 0, null_mask, rule); /* n == 0 still checks pointers */
}

Test(adam_ref, rejects_null_param) { expect_null_rejected(NULL_PARAM, "NULL param"); }
Test(adam_ref, rejects_null_grad) { expect_null_rejected(NULL_GRAD, "NULL grad"); }
Test(adam_ref, rejects_null_exp_avg) { expect_null_rejected(NULL_EXP_AVG, "NULL exp_avg"); }
Test(adam_ref, rejects_null_exp_avg_sq)
{
    expect_null_rejected(NULL_EXP_AVG_SQ, "NULL exp_avg_sq");
}
Test(adam_ref, rejects_null_max_buffer_with_amsgrad)
{
    expect_null_rejected(NULL_MAX, "amsgrad with NULL max_exp_avg_sq");
}

Test(adam_ref, rejects_null_config)
{
    expect_rejected(NULL, 1, 37, 0, "NULL config");
    expect_rejected(NULL, 1, 0, 0, "NULL config");
}

Test(adam_ref, rejects_step_below_one)
{
    const int64_t steps[] = {0, -1, -1000000, INT64_MIN};
    fopt_adam_config cfg = amsgrad_cfg();
    for (size_t k = 0; k < sizeof steps / sizeof steps[0]; k++) {
        char rule[64];
        snprintf(rule, sizeof rule, "step %lld", (long long)steps[k]);
        expect_rejected(&cfg, steps[k], 37, 0, rule);
        expect_rejected(&cfg, steps[k], 0, 0, rule);
    }
}

/* One hyper-parameter set to each bad value, on plain Adam, AdamW and AMSGrad configurations. */
static void expect_field_rejected(size_t offset, const char *field, const double *bad, size_t nbad)
{
    fopt_adam_config bases[3] = {fopt_adam_config_default(), amsgrad_cfg(), amsgrad_cfg()};
    bases[2].decoupled_weight_decay = true;
    ref_expect_field_rejected(&k_adam, bases, 3, sizeof bases[0], offset, field, bad, nbad);
}

Test(adam_ref, rejects_bad_lr)
{
    const double bad[] = {NAN, INFINITY, -INFINITY, -1e-3, -DBL_MIN};
    expect_field_rejected(offsetof(fopt_adam_config, lr), "lr", bad, sizeof bad / sizeof *bad);
}

Test(adam_ref, rejects_bad_eps)
{
    const double bad[] = {NAN, INFINITY, -INFINITY, -1e-8};
    expect_field_rejected(offsetof(fopt_adam_config, eps), "eps", bad, sizeof bad / sizeof *bad);
}

Test(adam_ref, rejects_bad_weight_decay)
{
    const double bad[] = {NAN, INFINITY, -INFINITY, -0.01};
    expect_field_rejected(offsetof(fopt_adam_config, weight_decay), "weight_decay", bad,
                          sizeof bad / sizeof *bad);
}

Test(adam_ref, rejects_beta1_outside_zero_to_one)
{
    const double bad[] = {1.0, 1.5, -0.1, -DBL_MIN, NAN, INFINITY, -INFINITY};
    expect_field_rejected(offsetof(fopt_adam_config, beta1), "beta1", bad,
                          sizeof bad / sizeof *bad);
}

Test(adam_ref, rejects_beta2_outside_zero_to_one)
{
    const double bad[] = {1.0, 1.5, -0.1, -DBL_MIN, NAN, INFINITY, -INFINITY};
    expect_field_rejected(offsetof(fopt_adam_config, beta2), "beta2", bad,
                          sizeof bad / sizeof *bad);
}
