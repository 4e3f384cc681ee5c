/* The RMSprop CPU reference: PyTorch's golden vectors, hand-checkable properties, and one check
 * per invalid-input rule (status and every buffer byte-identical). */
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

Test(rmsprop_ref, matches_pytorch_on_every_golden_case)
{
    double worst = golden_check_file("golden_rmsprop.bin", NULL, fopt_rmsprop_step_ref,
                                     GOLDEN_TOL, "rmsprop_ref");
    cr_log_info("rmsprop_ref: worst relative error over the golden cases %.3g", worst);
}

/* Guards against a regenerated file that lost coverage. */
Test(rmsprop_ref, golden_file_covers_every_variant)
{
    golden_case *cs;
    size_t count = golden_load("golden_rmsprop.bin", &cs);
    int plain = 0, wd = 0, mom = 0, cen = 0, cen_mom = 0, maxi = 0, other_lerp = 0, eps_big = 0;
    int step1 = 0, warm = 0, tiny_n = 0, big_odd_n = 0, overflow = 0;
    for (size_t i = 0; i < count; i++) {
        const golden_case *c = &cs[i];
        const fopt_rmsprop_config *o = &c->rmsprop;
        cr_assert_eq(c->optimizer, GOLDEN_RMSPROP, "%s is not an RMSprop case", c->name);
        plain += o->weight_decay == 0.0 && o->momentum == 0.0 && !o->centered && !o->maximize;
        wd += o->weight_decay > 0.0;
        mom += o->momentum > 0.0;
        cen += o->centered;
        cen_mom += o->centered && o->momentum > 0.0;
        maxi += o->maximize;
        other_lerp += o->centered && (float)(1.0 - o->alpha) >= 0.5f;
        eps_big += o->eps >= 1e-3;
        step1 += c->steps == 1;
        for (size_t j = 0; j < c->n && !warm; j++)
            warm += c->state0[0][j] != 0.0f;
        tiny_n += c->n <= 5;
        big_odd_n += c->n >= 1000 && c->n % 2 == 1;
        for (size_t j = 0; j < c->n; j++)
            if (isinf(c->state[0][j])) {
                overflow++;
                break;
            }
        cr_expect(c->steps >= 25 || c->steps == 1, "%s: %u steps", c->name, c->steps);
    }
    golden_free(cs, count);
    cr_expect(plain && wd && mom && cen && cen_mom && maxi && other_lerp && eps_big);
    cr_expect(step1 && warm && tiny_n && big_odd_n && overflow);
}

/* ---------------------------------------------------------------------------------------------
 * Properties
 * ------------------------------------------------------------------------------------------- */

typedef struct rms_run {
    size_t n;
    float *p, *g, *v, *buf, *ga;
} rms_run;

static rms_run run_make(size_t n, uint64_t seed)
{
    float *b[5];
    ref_bufs_make(n, seed, b);
    return (rms_run){n, b[0], b[1], b[2], b[3], b[4]};
}

static void run_free(rms_run *a) { ref_bufs_free((float *[5]){a->p, a->g, a->v, a->buf, a->ga}); }

static fopt_status run_step(const fopt_rmsprop_config *cfg, rms_run *a)
{
    return fopt_rmsprop_step_ref(cfg, a->n, a->p, a->g, a->v, cfg->momentum > 0 ? a->buf : NULL,
                                 cfg->centered ? a->ga : NULL);
}

/* Step 1 from zero state: v = (1-alpha)*g*g, so every parameter moves by lr/sqrt(1-alpha)
 * against its gradient's sign (eps = 1e-8 against sqrt(1-alpha)*|g| >= 1e-2 is negligible). */
Test(rmsprop_ref, first_step_moves_each_param_by_lr_over_sqrt_one_minus_alpha)
{
    fopt_rmsprop_config cfg = fopt_rmsprop_config_default();
    rms_run a = run_make(1001, 10);
    test_rng r = test_rng_make(11);
    test_fill_magnitudes(&r, a.g, a.n, -1.0, 2.0, 0);
    float *p0 = test_dup(a.p, a.n);
    cr_assert_eq(run_step(&cfg, &a), FOPT_SUCCESS);
    const double move = cfg.lr / sqrt(1.0 - cfg.alpha);
    for (size_t i = 0; i < a.n; i++) {
        double want = p0[i] - (a.g[i] > 0 ? move : -move);
        double tol = move * 1e-5 + 2.0 * 0x1p-24 * fabs(want);
        cr_assert(fabs(a.p[i] - want) <= tol, "i %zu: g %g, p %.9g -> %.9g, want %.9g", i, a.g[i],
                  p0[i], a.p[i], want);
    }
    free(p0);
    run_free(&a);
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

/* maximize with gradient g gives bit-identical results to minimizing with -g. */
Test(rmsprop_ref, maximize_equals_negated_gradient)
{
    fopt_rmsprop_config cfgs[3] = {fopt_rmsprop_config_default(), fopt_rmsprop_config_default(),
                                   fopt_rmsprop_config_default()};
    cfgs[1].weight_decay = 0.1, cfgs[1].momentum = 0.9;
    cfgs[2].weight_decay = 0.1, cfgs[2].momentum = 0.5, cfgs[2].centered = true;
    for (int k = 0; k < 3; k++) {
        fopt_rmsprop_config mx = cfgs[k];
        mx.maximize = true;
        rms_run a = run_make(101, 30), b = run_make(101, 30);
        for (int t = 0; t < 5; t++) {
            for (size_t i = 0; i < b.n; i++)
                b.g[i] = -a.g[i];
            cr_assert_eq(run_step(&mx, &a), FOPT_SUCCESS);
            cr_assert_eq(run_step(&cfgs[k], &b), FOPT_SUCCESS);
        }
        cr_expect_eq(memcmp(a.p, b.p, a.n * sizeof(float)), 0, "cfg %d: param differs", k);
        cr_expect_eq(memcmp(a.v, b.v, a.n * sizeof(float)), 0, "cfg %d: square_avg differs", k);
        cr_expect_eq(memcmp(a.buf, b.buf, a.n * sizeof(float)), 0, "cfg %d: momentum differs", k);
        cr_expect_eq(memcmp(a.ga, b.ga, a.n * sizeof(float)), 0, "cfg %d: grad_avg differs", k);
        run_free(&a), run_free(&b);
    }
}

/* A zero gradient moves nothing without weight decay, even with a warm square_avg; so does lr 0
 * with any gradient. */
Test(rmsprop_ref, zero_gradient_without_decay_leaves_param_unchanged)
{
    fopt_rmsprop_config cfg = fopt_rmsprop_config_default();
    cfg.momentum = 0.9, cfg.centered = true;
    rms_run a = run_make(64, 40);
    cr_assert_eq(run_step(&cfg, &a), FOPT_SUCCESS); /* warm square_avg and grad_avg */
    memset(a.buf, 0, a.n * sizeof(float));
    memset(a.g, 0, a.n * sizeof(float));
    float *p0 = test_dup(a.p, a.n);
    for (int t = 0; t < 3; t++)
        cr_assert_eq(run_step(&cfg, &a), FOPT_SUCCESS);
    cr_expect_eq(memcmp(a.p, p0, a.n * sizeof(float)), 0);
    free(p0);
    run_free(&a);
}

Test(rmsprop_ref, zero_lr_leaves_param_unchanged)
{
    fopt_rmsprop_config cfgs[3] = {fopt_rmsprop_config_default(), fopt_rmsprop_config_default(),
                                   fopt_rmsprop_config_default()};
    cfgs[1].weight_decay = 0.5, cfgs[1].momentum = 0.9;
    cfgs[2].weight_decay = 0.5, cfgs[2].centered = true;
    for (int k = 0; k < 3; k++) {
        cfgs[k].lr = 0.0;
        rms_run a = run_make(99, 50);
        float *p0 = test_dup(a.p, a.n);
        for (int t = 0; t < 3; t++)
            cr_assert_eq(run_step(&cfgs[k], &a), FOPT_SUCCESS);
        cr_expect_eq(memcmp(a.p, p0, a.n * sizeof(float)), 0, "cfg %d: param moved", k);
        for (size_t i = 0; i < a.n; i++)
            cr_expect(a.v[i] > 0.0f, "cfg %d, i %zu: square_avg did not update", k, i);
        free(p0);
        run_free(&a);
    }
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

/* n == 0 succeeds and writes nothing; buffers of unused features are never written. */
Test(rmsprop_ref, empty_call_succeeds_and_touches_nothing)
{
    fopt_rmsprop_config cfg = fopt_rmsprop_config_default();
    cfg.momentum = 0.9, cfg.centered = true;
    rms_run a = run_make(8, 60), b = run_make(8, 60);
    cr_assert_eq(fopt_rmsprop_step_ref(&cfg, 0, a.p, a.g, a.v, a.buf, a.ga), FOPT_SUCCESS);
    cr_expect_eq(memcmp(a.p, b.p, 8 * sizeof(float)), 0);
    cr_expect_eq(memcmp(a.g, b.g, 8 * sizeof(float)), 0);
    cr_expect_eq(memcmp(a.v, b.v, 8 * sizeof(float)), 0);
    cr_expect_eq(memcmp(a.buf, b.buf, 8 * sizeof(float)), 0);
    cr_expect_eq(memcmp(a.ga, b.ga, 8 * sizeof(float)), 0);
    run_free(&a), run_free(&b);
}

Test(rmsprop_ref, unused_buffers_are_ignored)
{
    fopt_rmsprop_config cfg = fopt_rmsprop_config_default();
    rms_run a = run_make(33, 70);
    for (size_t i = 0; i < a.n; i++)
        a.buf[i] = 1234.5f, a.ga[i] = -42.0f;
    cr_assert_eq(fopt_rmsprop_step_ref(&cfg, a.n, a.p, a.g, a.v, a.buf, a.ga), FOPT_SUCCESS);
    for (size_t i = 0; i < a.n; i++) {
        cr_expect_eq(a.buf[i], 1234.5f, "momentum_buffer[%zu] written", i);
        cr_expect_eq(a.ga[i], -42.0f, "grad_avg[%zu] written", i);
    }
    run_free(&a);
}

/* The edges of every range are valid: lr 0, alpha 0 and 1, eps 0, wd 0, momentum 0. */
Test(rmsprop_ref, accepts_the_edges_of_every_range)
{
    rms_run a = run_make(16, 80);
    fopt_rmsprop_config cfg = fopt_rmsprop_config_default();
    cfg.lr = 0.0, cfg.alpha = 0.0, cfg.eps = 0.0, cfg.weight_decay = 0.0, cfg.momentum = 0.0;
    cr_expect_eq(run_step(&cfg, &a), FOPT_SUCCESS);
    cfg = fopt_rmsprop_config_default();
    cfg.alpha = 1.0, cfg.centered = true;
    cr_expect_eq(run_step(&cfg, &a), FOPT_SUCCESS);
    run_free(&a);
}

/* ---------------------------------------------------------------------------------------------
 * Invalid input: FOPT_ERROR_INVALID_VALUE and every buffer byte-identical
 * ------------------------------------------------------------------------------------------- */

enum { NULL_PARAM = 1, NULL_GRAD = 2, NULL_SQUARE_AVG = 4, NULL_MOMENTUM = 8, NULL_GRAD_AVG = 16 };

static fopt_status rmsprop_step5(const void *cfg, int64_t step, size_t n, float *const *b)
{
    (void)step;
    return fopt_rmsprop_step_ref(cfg, n, b[0], b[1], b[2], b[3], b[4]);
}

static const ref_optimizer k_rmsprop = {
    {"param", "grad", "square_avg", "momentum_buffer", "grad_avg"}, 4u, 0x2A50, rmsprop_step5};

static void expect_rejected(const fopt_rmsprop_config *cfg, size_t n_call, unsigned null_mask,
                            const char *rule)
{
    ref_expect_rejected(&k_rmsprop, cfg, 1, n_call, null_mask, rule);
}

static fopt_rmsprop_config full_cfg(void)
{
    fopt_rmsprop_config cfg = fopt_rmsprop_config_default();
    cfg.momentum = 0.9, cfg.centered = true, cfg.weight_decay = 0.01;
    return cfg;
}

static void expect_null_rejected(unsigned null_mask, const char *rule)
{
    fopt_rmsprop_config cfg = full_cfg();
    expect_rejected(&cfg, 37, null_mask, rule);
    expect_rejected(&cfg, 0, null_mask, rule); /* n == 0 still checks pointers */
}

Test(rmsprop_ref, rejects_null_param) { expect_null_rejected(NULL_PARAM, "NULL param"); }
Test(rmsprop_ref, rejects_null_grad) { expect_null_rejected(NULL_GRAD, "NULL grad"); }
Test(rmsprop_ref, rejects_null_square_avg)
{
    expect_null_rejected(NULL_SQUARE_AVG, "NULL square_avg");
}
Test(rmsprop_ref, rejects_null_momentum_buffer_with_momentum)
{
    expect_null_rejected(NULL_MOMENTUM, "momentum > 0 with NULL momentum_buffer");
    fopt_rmsprop_config cfg = fopt_rmsprop_config_default();
    cfg.momentum = DBL_MIN; /* any momentum > 0 needs the buffer */
    expect_rejected(&cfg, 37, NULL_MOMENTUM, "tiny momentum with NULL momentum_buffer");
}
Test(rmsprop_ref, rejects_null_grad_avg_when_centered)
{
    expect_null_rejected(NULL_GRAD_AVG, "centered with NULL grad_avg");
}

Test(rmsprop_ref, rejects_null_config)
{
    expect_rejected(NULL, 37, 0, "NULL config");
    expect_rejected(NULL, 0, 0, "NULL config");
}

/* One hyper-parameter set to each bad value, on the default and the all-features config. */
static void expect_field_rejected(size_t offset, const char *field, const double *bad, size_t nbad)
{
    fopt_rmsprop_config bases[2] = {fopt_rmsprop_config_default(), full_cfg()};
    ref_expect_field_rejected(&k_rmsprop, bases, 2, sizeof bases[0], offset, field, bad, nbad);
}

Test(rmsprop_ref, rejects_bad_lr)
{
    const double bad[] = {NAN, INFINITY, -INFINITY, -1e-2, -DBL_MIN};
    expect_field_rejected(offsetof(fopt_rmsprop_config, lr), "lr", bad, sizeof bad / sizeof *bad);
}

Test(rmsprop_ref, rejects_alpha_outside_zero_to_one)
{
    const double bad[] = {-0.1, -DBL_MIN, 1.0 + DBL_EPSILON, 2.0, NAN, INFINITY, -INFINITY};
    expect_field_rejected(offsetof(fopt_rmsprop_config, alpha), "alpha", bad,
                          sizeof bad / sizeof *bad);
}

Test(rmsprop_ref, rejects_bad_eps)
{
    const double bad[] = {NAN, INFINITY, -INFINITY, -1e-8};
    expect_field_rejected(offsetof(fopt_rmsprop_config, eps), "eps", bad,
                          sizeof bad / sizeof *bad);
}

Test(rmsprop_ref, rejects_bad_weight_decay)
{
    const double bad[] = {NAN, INFINITY, -INFINITY, -0.01};
    expect_field_rejected(offsetof(fopt_rmsprop_config, weight_decay), "weight_decay", bad,
                          sizeof bad / sizeof *bad);
}

Test(rmsprop_ref, rejects_bad_momentum)
{
    const double bad[] = {NAN, INFINITY, -INFINITY, -0.9};
    expect_field_rejected(offsetof(fopt_rmsprop_config, momentum), "momentum", bad,
                          sizeof bad / sizeof *bad);
}
