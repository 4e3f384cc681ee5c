/* The RMSprop CPU reference: hand-checkable properties and one check per invalid-input rule
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

enum { P = REF_P, G = REF_G, V = REF_S0, BUF = REF_S1, GA = REF_S2 };

/* Step 1 from zero state: v = (1-alpha)*g*g, so every parameter moves by lr/sqrt(1-alpha)
 * against its gradient's sign (eps = 1e-8 against sqrt(1-alpha)*|g| >= 1e-2 is negligible). */
Test(rmsprop_ref, first_step_moves_each_param_by_lr_over_sqrt_one_minus_alpha)
{
    fopt_rmsprop_config cfg = fopt_rmsprop_config_default();
    ref_bufs a = ref_bufs_make(1001, 10);
    test_rng r = test_rng_make(11);
    test_fill_magnitudes(&r, a.b[G], a.n, -1.0, 2.0, 0);
    float *p0 = test_dup(a.b[P], a.n);
    cr_assert_eq(ref_step(&ref_rmsprop, &cfg, 1, &a), FOPT_SUCCESS);
    const double move = cfg.lr / sqrt(1.0 - cfg.alpha);
    for (size_t i = 0; i < a.n; i++) {
        double want = p0[i] - (a.b[G][i] > 0 ? move : -move);
        double tol = move * 1e-5 + 2.0 * 0x1p-24 * fabs(want);
        cr_assert(fabs(a.b[P][i] - want) <= tol, "i %zu: g %g, p %.9g -> %.9g, want %.9g", i, a.b[G][i],
                  p0[i], a.b[P][i], want);
    }
    free(p0);
    ref_bufs_free(&a);
}

/* Exact by hand (every value a short binary fraction): alpha 0.75, g 2 from zero state gives
 * v = 0.25*2*2 = 1, avg = sqrt(1) + eps. With eps 0.5 (after the square root, not inside:
 * sqrt(1.5) would differ) avg = 1.5; the momentum buffer takes g/avg without lr, and the
 * parameter moves by lr*buf. */
Test(rmsprop_ref, eps_after_sqrt_and_lr_outside_momentum_buffer)
{
    fopt_rmsprop_config cfg = fopt_rmsprop_config_default();
    cfg.alpha = 0.75, cfg.eps = 0.5, cfg.lr = 0.25, cfg.momentum = 0.5;
    float p = 3.0f, g = 2.0f, v = 0.0f, buf = 0.0f;
    cr_assert_eq(fopt_rmsprop_step_ref(&cfg, 1, &p, &g, &v, &buf, NULL), FOPT_SUCCESS);
    cr_expect_eq(v, 1.0f);
    cr_expect_eq(buf, 2.0f / 1.5f, "buf %.9g", buf);
    cr_expect_eq(p, 3.0f + -0.25f * (2.0f / 1.5f), "p %.9g", p);
    /* second step: buf = 0.5*buf + g/avg with v = 0.75 + 1 = 1.75 */
    cr_assert_eq(fopt_rmsprop_step_ref(&cfg, 1, &p, &g, &v, &buf, NULL), FOPT_SUCCESS);
    cr_expect_eq(v, 1.75f);
    float want_buf = (2.0f / 1.5f) * 0.5f + 2.0f / (sqrtf(1.75f) + 0.5f);
    cr_expect_eq(buf, want_buf, "buf %.9g, want %.9g", buf, want_buf);
}

/* A zero gradient moves nothing without weight decay, even with a warm square_avg; so does lr 0
 * with any gradient. */
Test(rmsprop_ref, zero_gradient_without_decay_leaves_param_unchanged)
{
    fopt_rmsprop_config cfg = fopt_rmsprop_config_default();
    cfg.momentum = 0.9, cfg.centered = true;
    ref_bufs a = ref_bufs_make(64, 40);
    cr_assert_eq(ref_step(&ref_rmsprop, &cfg, 1, &a), FOPT_SUCCESS); /* warm square_avg and grad_avg */
    memset(a.b[BUF], 0, a.n * sizeof(float));
    memset(a.b[G], 0, a.n * sizeof(float));
    float *p0 = test_dup(a.b[P], a.n);
    for (int t = 0; t < 3; t++)
        cr_assert_eq(ref_step(&ref_rmsprop, &cfg, 1, &a), FOPT_SUCCESS);
    cr_expect_eq(memcmp(a.b[P], p0, a.n * sizeof(float)), 0);
    free(p0);
    ref_bufs_free(&a);
}

/* Centered: a state where v - ga*ga comes out negative is clamped to variance 0 (avg = eps),
 * where PyTorch would produce NaN. Here v = 0.999*0.99 + 0.01*1 < 1 = ga*ga. */
Test(rmsprop_ref, centered_negative_variance_is_clamped_at_zero)
{
    fopt_rmsprop_config cfg = fopt_rmsprop_config_default();
    cfg.centered = true;
    cfg.eps = 1e-3;
    float p = 0.5f, g = 1.0f, v = 0.999f, ga = 1.0f;
    cr_assert_eq(fopt_rmsprop_step_ref(&cfg, 1, &p, &g, &v, NULL, &ga), FOPT_SUCCESS);
    cr_assert(v < ga * ga, "the case no longer produces a negative variance (v %.9g, ga %.9g)", v,
              ga);
    float want = 0.5f + (float)-cfg.lr * 1.0f / (0.0f + (float)cfg.eps);
    cr_expect(isfinite(p), "param %g", p);
    cr_expect_eq(p, want, "p %.9g, want %.9g", p, want);
}

Test(rmsprop_ref, unused_buffers_are_ignored)
{
    fopt_rmsprop_config cfg = fopt_rmsprop_config_default();
    ref_bufs a = ref_bufs_make(33, 70);
    for (size_t i = 0; i < a.n; i++)
        a.b[BUF][i] = 1234.5f, a.b[GA][i] = -42.0f;
    cr_assert_eq(fopt_rmsprop_step_ref(&cfg, a.n, a.b[P], a.b[G], a.b[V], a.b[BUF], a.b[GA]), FOPT_SUCCESS);
    for (size_t i = 0; i < a.n; i++) {
        cr_expect_eq(a.b[BUF][i], 1234.5f, "momentum_buffer[%zu] written", i);
        cr_expect_eq(a.b[GA][i], -42.0f, "grad_avg[%zu] written", i);
    }
    ref_bufs_free(&a);
}

/* The edges of every range are valid: lr 0, alpha 0 and 1, eps 0, wd 0, momentum 0. */
Test(rmsprop_ref, accepts_the_edges_of_every_range)
{
    ref_bufs a = ref_bufs_make(16, 80);
    fopt_rmsprop_config cfg = fopt_rmsprop_config_default();
    cfg.lr = 0.0, cfg.alpha = 0.0, cfg.eps = 0.0, cfg.weight_decay = 0.0, cfg.momentum = 0.0;
    cr_expect_eq(ref_step(&ref_rmsprop, &cfg, 1, &a), FOPT_SUCCESS);
    cfg = fopt_rmsprop_config_default();
    cfg.alpha = 1.0, cfg.centered = true;
    cr_expect_eq(ref_step(&ref_rmsprop, &cfg, 1, &a), FOPT_SUCCESS);
    ref_bufs_free(&a);
}

/* ---------------------------------------------------------------------------------------------
 * Invalid input: FOPT_ERROR_INVALID_VALUE and every buffer byte-identical (the rules both
 * references have: test_ref_common.c)
 * ------------------------------------------------------------------------------------------- */

Test(rmsprop_ref, rejects_null_momentum_buffer_with_any_momentum)
{
    fopt_rmsprop_config cfg = fopt_rmsprop_config_default();
    cfg.momentum = DBL_MIN; /* any momentum > 0 needs the buffer */
    ref_expect_rejected(&ref_rmsprop, &cfg, 1, 37, 1u << BUF, "tiny momentum with NULL momentum_buffer");
}
