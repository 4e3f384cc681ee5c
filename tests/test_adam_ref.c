/* The Adam / AdamW CPU reference: hand-checkable properties and one check per invalid-input rule
 * (status and every buffer byte-identical); the golden vectors and the shared checks: test_ref_common.c. */
#include <float.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "fusedopt.h"
#include "ref_checks.h"
#include "util.h"

/* ---------------------------------------------------------------------------------------------
 * Properties (those both references have: test_ref_common.c)
 * ------------------------------------------------------------------------------------------- */

enum { P = REF_P, G = REF_G, M = REF_S0, V = REF_S1, VMAX = REF_S2 };

/* At step 1 from zero state, m/sqrt(v) after bias correction is g/|g|: every parameter moves by
 * lr against its gradient's sign (eps = 1e-8 is negligible for |g| >= 1e-3), whatever the betas. */
Test(adam_ref, first_step_moves_each_param_by_lr)
{
    fopt_adam_config cfgs[3] = {fopt_adam_config_default(), fopt_adam_config_default(),
                                fopt_adam_config_default()};
    cfgs[1].beta1 = 0.3, cfgs[1].beta2 = 0.95, cfgs[1].lr = 3e-2;
    cfgs[2].amsgrad = true, cfgs[2].beta1 = 0.0, cfgs[2].lr = 0.25;
    for (int k = 0; k < 3; k++) {
        ref_bufs a = ref_bufs_make(1001, 10 + (uint64_t)k);
        float *p0 = test_dup(a.b[P], a.n);
        cr_assert_eq(ref_step(&ref_adam, &cfgs[k], 1, &a), FOPT_SUCCESS);
        for (size_t i = 0; i < a.n; i++) {
            double want = p0[i] - (a.b[G][i] > 0 ? cfgs[k].lr : -cfgs[k].lr);
            /* lr * 2e-5 for eps (|g| >= 1e-3) and the ulp of the bias corrections, plus p's own
             * rounding */
            double tol = cfgs[k].lr * 2e-5 + 2.0 * 0x1p-24 * fabs(want);
            cr_assert(fabs(a.b[P][i] - want) <= tol, "cfg %d, i %zu: g %g, p %.9g -> %.9g, want %.9g",
                      k, i, a.b[G][i], p0[i], a.b[P][i], want);
        }
        free(p0);
        ref_bufs_free(&a);
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
    ref_bufs a = ref_bufs_make(n, 20), b = ref_bufs_make(n, 20);
    float *want_max = test_alloc(n);
    memset(want_max, 0, n * sizeof(float));
    test_rng r = test_rng_make(21);
    int fell = 0;
    for (int64_t t = 1; t <= 40; t++) {
        /* large gradients for 10 steps, then 1000x smaller */
        test_fill_magnitudes(&r, a.b[G], n, t <= 10 ? 0.0 : -3.0, t <= 10 ? 1.0 : -2.0, 0);
        memcpy(b.b[G], a.b[G], n * sizeof(float));
        float *p_before = test_dup(a.b[P], n);
        cr_assert_eq(ref_step(&ref_adam, &cfg, t, &a), FOPT_SUCCESS);
        memcpy(b.b[P], p_before, n * sizeof(float)); /* same starting point for one plain step */
        cr_assert_eq(ref_step(&ref_adam, &plain, t, &b), FOPT_SUCCESS);
        for (size_t i = 0; i < n; i++) {
            cr_assert_eq(a.b[M][i], b.b[M][i], "t %lld, i %zu: amsgrad changed exp_avg", (long long)t, i);
            cr_assert_eq(a.b[V][i], b.b[V][i], "t %lld, i %zu: amsgrad changed exp_avg_sq", (long long)t,
                         i);
            if (a.b[V][i] > want_max[i])
                want_max[i] = a.b[V][i];
            cr_assert_eq(a.b[VMAX][i], want_max[i], "t %lld, i %zu: max %g, want %g (v %g)",
                         (long long)t, i, a.b[VMAX][i], want_max[i], a.b[V][i]);
            float step_ams = fabsf(a.b[P][i] - p_before[i]), step_adam = fabsf(b.b[P][i] - p_before[i]);
            cr_assert(step_ams <= step_adam, "t %lld, i %zu: amsgrad step %g larger than Adam's %g",
                      (long long)t, i, step_ams, step_adam);
            /* where the max is in use (and the step above rounding), the step must be smaller */
            if (a.b[VMAX][i] > 4.0f * a.b[V][i] && step_adam > 1e-5f) {
                fell++;
                cr_assert(step_ams < step_adam, "t %lld, i %zu: max %g > v %g but the step is %g",
                          (long long)t, i, a.b[VMAX][i], a.b[V][i], step_ams);
            }
        }
        free(p_before);
    }
    cr_expect(fell > 0, "the max never exceeded v: the test does not exercise the max");
    free(want_max);
    ref_bufs_free(&a), ref_bufs_free(&b);
}

/* A zero gradient from zero state moves nothing (without decay), and AdamW then only decays. */
Test(adam_ref, zero_gradient_without_decay_leaves_param_unchanged)
{
    fopt_adam_config cfg = fopt_adam_config_default();
    ref_bufs a = ref_bufs_make(64, 40);
    memset(a.b[G], 0, a.n * sizeof(float));
    float *p0 = test_dup(a.b[P], a.n);
    for (int64_t t = 1; t <= 3; t++)
        cr_assert_eq(ref_step(&ref_adam, &cfg, t, &a), FOPT_SUCCESS);
    cr_expect_eq(memcmp(a.b[P], p0, a.n * sizeof(float)), 0);

    cfg.decoupled_weight_decay = true;
    cfg.weight_decay = 0.1;
    cfg.lr = 0.01;
    memcpy(a.b[P], p0, a.n * sizeof(float));
    cr_assert_eq(ref_step(&ref_adam, &cfg, 1, &a), FOPT_SUCCESS);
    const float decay = (float)(1.0 - 0.01 * 0.1);
    for (size_t i = 0; i < a.n; i++)
        cr_expect_eq(a.b[P][i], p0[i] * decay, "i %zu: %.9g, want %.9g", i, a.b[P][i], p0[i] * decay);
    free(p0);
    ref_bufs_free(&a);
}

Test(adam_ref, max_buffer_is_ignored_without_amsgrad)
{
    fopt_adam_config cfg = fopt_adam_config_default();
    ref_bufs a = ref_bufs_make(33, 70);
    for (size_t i = 0; i < a.n; i++)
        a.b[VMAX][i] = 1234.5f;
    cr_assert_eq(fopt_adam_step_ref(&cfg, 1, a.n, a.b[P], a.b[G], a.b[M], a.b[V], a.b[VMAX]), FOPT_SUCCESS);
    for (size_t i = 0; i < a.n; i++)
        cr_expect_eq(a.b[VMAX][i], 1234.5f, "i %zu written", i);
    ref_bufs_free(&a);
}

/* The edges of every range are valid: lr 0, betas 0, eps 0, wd 0, and very late steps. */
Test(adam_ref, accepts_the_edges_of_every_range)
{
    fopt_adam_config cfg = fopt_adam_config_default();
    cfg.lr = 0.0, cfg.beta1 = 0.0, cfg.beta2 = 0.0, cfg.eps = 0.0, cfg.weight_decay = 0.0;
    ref_bufs a = ref_bufs_make(16, 80);
    cr_expect_eq(ref_step(&ref_adam, &cfg, 1, &a), FOPT_SUCCESS);
    ref_bufs_free(&a);

    cfg = fopt_adam_config_default();
    cfg.beta1 = nextafter(1.0, 0.0), cfg.beta2 = nextafter(1.0, 0.0);
    a = ref_bufs_make(16, 81);
    cr_expect_eq(ref_step(&ref_adam, &cfg, 1, &a), FOPT_SUCCESS);
    ref_bufs_free(&a);

    cfg = fopt_adam_config_default();
    a = ref_bufs_make(16, 82);
    cr_expect_eq(ref_step(&ref_adam, &cfg, INT64_MAX, &a), FOPT_SUCCESS);
    for (size_t i = 0; i < a.n; i++)
        cr_expect(isfinite(a.b[P][i]), "step INT64_MAX gave a non-finite param at %zu", i);
    ref_bufs_free(&a);
}

/* ---------------------------------------------------------------------------------------------
 * Invalid input: FOPT_ERROR_INVALID_VALUE and every buffer byte-identical (the rules both
 * references have: test_ref_common.c)
 * ------------------------------------------------------------------------------------------- */

Test(adam_ref, rejects_step_below_one)
{
    const int64_t steps[] = {0, -1, -1000000, INT64_MIN};
    fopt_adam_config cfg = fopt_adam_config_default();
    cfg.amsgrad = true;
    cfg.weight_decay = 0.01;
    for (size_t k = 0; k < sizeof steps / sizeof steps[0]; k++) {
        char rule[64];
        snprintf(rule, sizeof rule, "step %lld", (long long)steps[k]);
        ref_expect_rejected(&ref_adam, &cfg, steps[k], 37, 0, rule);
        ref_expect_rejected(&ref_adam, &cfg, steps[k], 0, 0, rule);
    }
}
