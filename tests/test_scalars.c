/* The derived per-step scalars (kernels/scalars.h), bit for bit. Every path - reference, fast CPU
 * path, eager GPU steps (host derivation), capturable and skippable steps (device prologue) -
 * reads them, so one wrong rounding here is the same wrong bit everywhere and no comparison
 * between paths can see it. Two independent checks per scalar:
 *
 *   1. the documented formula (docs/SEMANTICS.md: double arithmetic, beta^t as the product of the
 *      squares b, b^2, b^4, ... whose bit is set in t, lowest first; one rounding to float),
 *      written out here again: the bits must be equal;
 *   2. the same quantity in long double with libm's powl: the float must be the correctly rounded
 *      value, except where the double evaluation's own error bound straddles a rounding midpoint
 *      between two floats (counted; rare for usual hyper-parameters).
 *
 * Check 2 does not share the derivation's algorithm, so a formula shared by the library and
 * check 1 (say, beta^(t-1)) still fails it; check 1 pins the exact bits that CPU and GPU must
 * agree on. Deriving lr/(1 - beta1^t) in float, one ulp off on about a third of the steps, fails
 * both. The device prologue (fopt_prologue_run, the kernel's code run on the host) and the CPU
 * paths' fopt_cpu_scalars must give the very same bits, and the prologue must count the step. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include <criterion/criterion.h>

#include "internal.h"
#if FOPT_TEST_KERNELS
#include "launch.h"
#endif
#include "scalars.h"
#include "stats.h"
#include "util.h"

/* ---- check 1: the documented double formula, written independently ---- */

/* b^t: squares b, b^2, b^4, ... (each the previous one times itself), multiplied into 1.0 from
 * the lowest set bit of t up. */
static double pow_by_squares(double b, int64_t t)
{
    double sq[63];
    sq[0] = b;
    for (int i = 1; i < 63; i++)
        sq[i] = sq[i - 1] * sq[i - 1];
    double r = 1.0;
    for (int i = 0; i < 63; i++)
        if ((t >> i) & 1)
            r = r * sq[i];
    return r;
}

static uint32_t bits(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    return u;
}

/* ---- check 2: long double, and when a wrong float is still a legitimate rounding ---- */

typedef struct rounding_stats {
    long checked, ambiguous;
} rounding_stats;

/* `got` (the library's float) against the exact value `x` (long double) of a quantity whose double
 * evaluation `xd` has a relative error of at most `rel_bound`: equal to x rounded to float, or
 * x and xd lie on either side of the midpoint between got and its neighbour (then both floats
 * are legitimate results of rounding the double once). */
static void expect_rounded(const char *what, float got, long double x, double xd, long double rel_bound,
                           rounding_stats *rs, int64_t step, double beta, double lr)
{
    rs->checked++;
    const float want = (float)x;
    if (bits(got) == bits(want))
        return;
    const float other = nextafterf(got, want);
    const long double mid = ((long double)got + (long double)other) / 2;
    const int straddles = (x - mid) * ((long double)xd - mid) <= 0 && bits(other) == bits(want);
    const int within = fabsl((long double)xd - x) <= rel_bound * fabsl(x);
    if (straddles && within) {
        rs->ambiguous++;
        return;
    }
    cr_expect_fail("%s: step %lld (beta %.17g, lr %.17g): 0x%08x (%.9g) is not the correctly rounded "
                   "0x%08x (%.9g) of %.21Lg, and no rounding midpoint lies within the double "
                   "evaluation's error of it (double gives %.17g)",
                   what, (long long)step, beta, lr, bits(got), (double)got, bits(want), (double)want, x, xd);
}

/* 1 - b^t in long double, and the relative error bound of its double evaluation: at most 126
 * multiplications, each 2^-53 relative, then the cancellation in 1 - b^t amplifies by
 * b^t / (1 - b^t); plus a few roundings after it. */
static long double bias_correction_ld(double b, int64_t t, long double *rel_bound)
{
    const long double p = powl((long double)b, (long double)t);
    const long double bc = 1.0L - p;
    const long double u = 0x1p-53L;
    *rel_bound = (126.0L * p / bc + 8.0L) * u;
    return bc;
}

#define EXPECT_BITS(field, want)                                                                   \
    do {                                                                                           \
        float w_ = (want);                                                                         \
        if (bits(s.field) != bits(w_))                                                             \
            cr_expect_fail("adam " #field ", step %lld (beta1 %.17g, beta2 %.17g, lr %.17g, wd %g): "     \
                           "0x%08x (%.9g), the documented formula gives 0x%08x (%.9g)",              \
                           (long long)t, cfg->beta1, cfg->beta2, lr, wd, bits(s.field), (double)s.field, \
                           bits(w_), (double)w_);                                                  \
    } while (0)

/* Both checks for every Adam scalar of one step. */
static void check_adam_step(const fopt_adam_config *cfg, double lr, double wd, int64_t t, rounding_stats *rs)
{
    const fopt_adam_scalars s = fopt_adam_scalars_make(cfg, lr, wd, t);
    const double bc1 = 1.0 - pow_by_squares(cfg->beta1, t);
    const double bc2 = 1.0 - pow_by_squares(cfg->beta2, t);

    /* check 1 */
    EXPECT_BITS(lerp_w, (float)(1.0 - cfg->beta1));
    EXPECT_BITS(lerp_1mw, 1.0f - (float)(1.0 - cfg->beta1));
    EXPECT_BITS(beta2, (float)cfg->beta2);
    EXPECT_BITS(one_minus_beta2, (float)(1.0 - cfg->beta2));
    EXPECT_BITS(eps, (float)cfg->eps);
    EXPECT_BITS(neg_step_size, (float)(-(lr / bc1)));
    EXPECT_BITS(bc2_sqrt, (float)sqrt(bc2));
    if (cfg->decoupled_weight_decay) {
        EXPECT_BITS(decay, (float)(1.0 - lr * wd));
        EXPECT_BITS(weight_decay, 0.0f);
    } else {
        EXPECT_BITS(decay, 1.0f);
        EXPECT_BITS(weight_decay, wd != 0.0 ? (float)wd : 0.0f);
    }
    cr_expect_eq(s.lerp_from_end, (float)(1.0 - cfg->beta1) >= 0.5f);
    cr_expect_eq(s.decoupled, (int32_t)cfg->decoupled_weight_decay);
    cr_expect_eq(s.l2, (int32_t)(!cfg->decoupled_weight_decay && wd != 0.0));
    cr_expect_eq(s.amsgrad, (int32_t)cfg->amsgrad);
    cr_expect_eq(s.maximize, (int32_t)cfg->maximize);

    /* check 2 */
    long double e1, e2;
    const long double bc1_ld = bias_correction_ld(cfg->beta1, t, &e1);
    const long double bc2_ld = bias_correction_ld(cfg->beta2, t, &e2);
    expect_rounded("adam neg_step_size = -lr/(1 - beta1^t)", s.neg_step_size, -((long double)lr / bc1_ld),
                   -(lr / bc1), e1, rs, t, cfg->beta1, lr);
    expect_rounded("adam bc2_sqrt = sqrt(1 - beta2^t)", s.bc2_sqrt, sqrtl(bc2_ld), sqrt(bc2), e2 / 2 + 0x1p-52L,
                   rs, t, cfg->beta2, lr);
    expect_rounded("adam one_minus_beta2", s.one_minus_beta2, 1.0L - (long double)cfg->beta2, 1.0 - cfg->beta2,
                   0x1p-52L, rs, t, cfg->beta2, lr);
    if (cfg->decoupled_weight_decay)
        expect_rounded("adamw decay = 1 - lr*wd", s.decay, 1.0L - (long double)lr * (long double)wd,
                       1.0 - lr * wd, 0x1p-51L, rs, t, cfg->beta1, lr);
}

typedef struct adam_case {
    double beta1, beta2, eps, wd;
    bool decoupled;
} adam_case;

static const adam_case ADAM_CASES[] = {
    {0.9, 0.999, 1e-8, 0.0, false},   /* PyTorch's defaults */
    {0.9, 0.999, 1e-8, 0.01, true},   /* AdamW */
    {0.9, 0.95, 1e-6, 0.1, true},     /* LLM pre-training */
    {0.8, 0.9999, 1e-7, 1e-4, false}, /* L2 */
    {0.5, 0.5, 0.1, 0.3, true},       /* lerp from the end, fast decay */
    {0.0, 0.0, 1e-3, 0.0, false},     /* no averaging */
    {0.3, 0.75, 1e-8, 2.5e-3, true},
    {0.99, 0.999999, 1e-12, 0.05, false},
};

/* Steps 1..20000 with an lr schedule that changes every step, then large step counts. */
Test(scalars, adam_scalars_are_the_documented_double_formula_rounded_once)
{
    test_rng rng = test_rng_make(20261201);
    rounding_stats rs = {0, 0};
    for (size_t c = 0; c < sizeof ADAM_CASES / sizeof ADAM_CASES[0]; c++) {
        const adam_case *ac = &ADAM_CASES[c];
        fopt_adam_config cfg = fopt_adam_config_default();
        cfg.beta1 = ac->beta1;
        cfg.beta2 = ac->beta2;
        cfg.eps = ac->eps;
        cfg.weight_decay = ac->wd;
        cfg.decoupled_weight_decay = ac->decoupled;
        cfg.amsgrad = c % 2 == 1;
        cfg.maximize = c % 3 == 2;
        for (int64_t t = 1; t <= 20000; t++) {
            const double lr = pow(10.0, -6.0 + 6.0 * test_rng_uniform(&rng)); /* 1e-6 .. 1 */
            check_adam_step(&cfg, lr, ac->wd, t, &rs);
        }
        const int64_t big[] = {65535, 65536, 1000003, ((int64_t)1 << 31) - 1, (int64_t)1 << 31,
                               ((int64_t)1 << 40) + 3, INT64_MAX};
        for (size_t i = 0; i < sizeof big / sizeof big[0]; i++)
            check_adam_step(&cfg, 1e-3, ac->wd, big[i], &rs);
    }
    /* legitimate double-rounding ties are rare; many of them would mean check 2 lost its bite */
    cr_expect_leq(rs.ambiguous * 1000, rs.checked, "%ld of %ld roundings were ambiguous", rs.ambiguous, rs.checked);
    cr_log_info("adam scalars: %ld roundings checked against long double, %ld within the double's error of a "
                "midpoint", rs.checked, rs.ambiguous);
}

/* The first steps of the default config, the ones every training run takes, written out. */
Test(scalars, adam_first_steps_of_the_defaults_are_these_bits)
{
    fopt_adam_config cfg = fopt_adam_config_default();
    /* -lr / (1 - beta1^t) and sqrt(1 - beta2^t) for the doubles nearest 1e-3, 0.9 and 0.999,
     * rounded to float from the exact rationals (Python fractions; square roots to 200 bits) */
    const float neg_step[4] = {-0x1.47ae14p-7f, -0x1.58ed24p-8f, -0x1.e3a918p-9f, -0x1.7d2252p-9f};
    const float bc2_sqrt[4] = {0x1.030dc4p-5f, 0x1.6e440ap-5f, 0x1.c07852p-5f, 0x1.02dc0cp-4f};
    for (int t = 1; t <= 4; t++) {
        fopt_adam_scalars s = fopt_adam_scalars_make(&cfg, cfg.lr, cfg.weight_decay, t);
        cr_expect_eq(bits(s.neg_step_size), bits(neg_step[t - 1]), "step %d: neg_step_size %.9g, want %.9g", t,
                     (double)s.neg_step_size, (double)neg_step[t - 1]);
        cr_expect_eq(bits(s.bc2_sqrt), bits(bc2_sqrt[t - 1]), "step %d: bc2_sqrt %.9g, want %.9g", t,
                     (double)s.bc2_sqrt, (double)bc2_sqrt[t - 1]);
    }
}

Test(scalars, rmsprop_scalars_are_the_documented_double_formula_rounded_once)
{
    test_rng rng = test_rng_make(77);
    rounding_stats rs = {0, 0};
    for (int i = 0; i < 20000; i++) {
        fopt_rmsprop_config cfg = fopt_rmsprop_config_default();
        cfg.alpha = i % 5 == 0 ? 0.99 : test_rng_uniform(&rng);
        cfg.eps = pow(10.0, -12.0 + 10.0 * test_rng_uniform(&rng));
        cfg.momentum = i % 3 == 0 ? 0.0 : test_rng_uniform(&rng);
        cfg.centered = i % 2;
        cfg.maximize = i % 7 == 3;
        const double lr = pow(10.0, -6.0 + 6.0 * test_rng_uniform(&rng));
        const double wd = i % 4 == 0 ? 0.0 : pow(10.0, -5.0 + 4.0 * test_rng_uniform(&rng));
        const fopt_rmsprop_scalars s = fopt_rmsprop_scalars_make(&cfg, lr, wd);
        const float oma = (float)(1.0 - cfg.alpha);
        cr_expect_eq(bits(s.alpha), bits((float)cfg.alpha));
        cr_expect_eq(bits(s.one_minus_alpha), bits(oma), "alpha %.17g", cfg.alpha);
        cr_expect_eq(bits(s.lerp_1mw), bits(1.0f - oma));
        cr_expect_eq(s.lerp_from_end, oma >= 0.5f);
        cr_expect_eq(bits(s.eps), bits((float)cfg.eps));
        cr_expect_eq(bits(s.weight_decay), bits((float)wd));
        cr_expect_eq(s.l2, wd != 0.0);
        cr_expect_eq(bits(s.momentum), bits((float)cfg.momentum));
        cr_expect_eq(s.use_momentum, cfg.momentum > 0.0);
        cr_expect_eq(bits(s.neg_lr), bits((float)-lr));
        cr_expect_eq(s.centered, (int32_t)cfg.centered);
        cr_expect_eq(s.maximize, (int32_t)cfg.maximize);
        /* 1 - alpha is exact in double for alpha >= 0.5 and one rounding below */
        expect_rounded("rmsprop one_minus_alpha", s.one_minus_alpha, 1.0L - (long double)cfg.alpha,
                       1.0 - cfg.alpha, 0x1p-52L, &rs, 0, cfg.alpha, lr);
    }
    cr_expect_leq(rs.ambiguous * 1000, rs.checked, "%ld of %ld roundings were ambiguous", rs.ambiguous, rs.checked);
}

/* ---- the same bits from every place that derives them ---- */
#if FOPT_TEST_KERNELS /* the prologue is kernel code (kernels/stats.cu) */

static int same_bytes(const void *a, const void *b, size_t n) { return memcmp(a, b, n) == 0; }

/* The arguments of an enabled prologue of optimizer `kind` over config cfg, deriving into *out
 * with the device hyper-parameters *hp; the other fields 0. */
static fopt_prologue_args prologue_args(int32_t kind, fopt_any_config cfg, fopt_device_hparams *hp,
                                        fopt_scalars *out, int64_t host_step, uint32_t group_count)
{
    fopt_prologue_args a;
    memset(&a, 0, sizeof a);
    a.enabled = 1;
    a.kind = kind;
    a.cfg = cfg;
    a.hp = hp;
    a.out = out;
    a.host_step = host_step;
    a.group_count = group_count;
    return a;
}

Test(scalars, device_prologue_and_cpu_paths_derive_the_same_bits_and_count_the_step)
{
    fopt_adam_config cfg = fopt_adam_config_default();
    cfg.decoupled_weight_decay = true;
    cfg.precision.seed = 1234;
    fopt_any_config any = fopt_cfg_copy(&fopt_adam_desc, &cfg);
    fopt_device_hparams hp;
    fopt_scalars out;
    test_rng rng = test_rng_make(5);
    for (int64_t t = 1; t <= 3000; t++) {
        const double lr0 = pow(10.0, -5.0 + 4.0 * test_rng_uniform(&rng)), lr1 = lr0 * 0.37;
        const double wd0 = 0.01, wd1 = 0.0;
        /* host knows the count: host_step = t - 1, lr and wd from the arguments */
        memset(&hp, 0, sizeof hp);
        memset(&out, 0xa5, sizeof out);
        fopt_prologue_args a = prologue_args(FOPT_KIND_ADAM, any, &hp, &out, t - 1, 2);
        a.lr[0] = lr0;
        a.lr[1] = lr1;
        a.wd[0] = wd0;
        a.wd[1] = wd1;
        fopt_prologue_run(&a);
        cr_assert_eq(out.step, t);
        cr_assert_eq(hp.step, t - 1, "a host-known count moves to the device; the step launch advances it");
        cr_expect_eq(out.seed, 1234u);
        fopt_adam_scalars g0 = fopt_adam_scalars_make(&cfg, lr0, wd0, t), g1 = fopt_adam_scalars_make(&cfg, lr1, wd1, t);
        cr_assert(same_bytes(&out.group[0].adam, &g0, sizeof g0), "prologue group 0, step %lld", (long long)t);
        cr_assert(same_bytes(&out.group[1].adam, &g1, sizeof g1), "prologue group 1, step %lld", (long long)t);

        /* count on the device (capturable): hp->step holds t - 1, lr and wd from hp */
        memset(&out, 0xa5, sizeof out);
        hp.step = t - 1;
        hp.lr[0] = lr0;
        hp.wd[0] = wd0;
        hp.lr[1] = lr1;
        hp.wd[1] = wd1;
        a.host_step = -1;
        a.lr_on_device = 1;
        a.lr[0] = a.lr[1] = 0.5; /* must not be read */
        fopt_prologue_run(&a);
        cr_assert_eq(out.step, t);
        cr_assert_eq(hp.step, t - 1, "without commit the prologue leaves the count to the step launch");
        memset(&out, 0xa5, sizeof out);
        a.commit = 1; /* no step launch follows: the prologue stores the count */
        fopt_prologue_run(&a);
        a.commit = 0;
        cr_assert_eq(out.step, t);
        cr_assert_eq(hp.step, t, "with commit the prologue stores the step it derived");
        cr_assert(same_bytes(&out.group[0].adam, &g0, sizeof g0), "device-lr prologue, step %lld", (long long)t);
        cr_assert(same_bytes(&out.group[1].adam, &g1, sizeof g1), "device-lr prologue, step %lld", (long long)t);

        /* the CPU paths: the config's own lr and wd */
        fopt_adam_config c2 = cfg;
        c2.lr = lr0;
        c2.weight_decay = wd0;
        fopt_any_config any2 = fopt_cfg_copy(&fopt_adam_desc, &c2);
        fopt_group_scalars cpu = fopt_cpu_scalars(&fopt_adam_desc, &any2, t);
        cr_assert(same_bytes(&cpu.adam, &g0, sizeof g0), "fopt_cpu_scalars, step %lld", (long long)t);
    }

    /* a skipped step: nothing derived, the count stays */
    fopt_step_stats st;
    memset(&st, 0, sizeof st);
    st.skip = 1;
    memset(&out, 0xa5, sizeof out);
    memset(&hp, 0, sizeof hp);
    hp.step = 41;
    fopt_prologue_args a = prologue_args(FOPT_KIND_ADAM, any, &hp, &out, -1, 1);
    a.stats = &st;
    a.lr[0] = 1e-3;
    fopt_prologue_run(&a);
    cr_expect_eq(hp.step, 41, "a skipped step does not count");
    fopt_scalars untouched;
    memset(&untouched, 0xa5, sizeof untouched);
    cr_expect(same_bytes(&out, &untouched, sizeof out), "a skipped step derives nothing");
    st.skip = 0;
    fopt_prologue_run(&a);
    cr_expect_eq(hp.step, 41, "the step launch advances the count, not the prologue");
    cr_expect_eq(out.step, 42);
    a.commit = 1;
    fopt_prologue_run(&a);
    cr_expect_eq(hp.step, 42, "no step launch follows: the prologue advances the count");
}

Test(scalars, the_prologue_refuses_a_step_past_int64_max_leaves_the_count_and_flags_it)
{
    fopt_adam_config cfg = fopt_adam_config_default();
    fopt_any_config any = fopt_cfg_copy(&fopt_adam_desc, &cfg);
    fopt_device_hparams hp;
    fopt_scalars out;
    /* step INT64_MAX itself is derived and counted */
    for (int host_known = 0; host_known < 2; host_known++)
        for (int commit = 0; commit < 2; commit++) {
            memset(&hp, 0, sizeof hp);
            hp.step = host_known ? 5 : INT64_MAX - 1;
            fopt_prologue_args a = prologue_args(FOPT_KIND_ADAM, any, &hp, &out, host_known ? INT64_MAX - 1 : -1, 1);
            a.commit = commit;
            a.lr[0] = 1e-3;
            fopt_prologue_run(&a);
            cr_assert_eq(out.step, INT64_MAX);
            cr_assert_eq(hp.step, commit ? INT64_MAX : INT64_MAX - 1);
            cr_assert_eq(hp.refused, 0);
            fopt_adam_scalars g = fopt_adam_scalars_make(&cfg, 1e-3, 0.0, INT64_MAX);
            cr_assert(same_bytes(&out.group[0].adam, &g, sizeof g));
        }
    /* the step after: refused, the count stays, the flag is set, step number 0 for the step kernel */
    for (int host_known = 0; host_known < 2; host_known++)
        for (int commit = 0; commit < 2; commit++) {
            memset(&hp, 0, sizeof hp);
            hp.step = host_known ? 5 : INT64_MAX;
            memset(&out, 0xa5, sizeof out);
            fopt_prologue_args a = prologue_args(FOPT_KIND_ADAM, any, &hp, &out, host_known ? INT64_MAX : -1, 1);
            a.commit = commit;
            a.lr[0] = 1e-3;
            fopt_prologue_run(&a);
            cr_assert_eq(out.step, 0, "host_known %d commit %d: step number %lld", host_known, commit,
                         (long long)out.step);
            cr_assert_eq(hp.step, INT64_MAX, "host_known %d commit %d: count %lld", host_known, commit,
                         (long long)hp.step);
            cr_assert_eq(hp.refused, 1);
        }
    /* a step skipped on an inf at INT64_MAX is a skip, not a refusal */
    fopt_step_stats st;
    memset(&st, 0, sizeof st);
    st.skip = 1;
    memset(&hp, 0, sizeof hp);
    hp.step = INT64_MAX;
    fopt_prologue_args a = prologue_args(FOPT_KIND_ADAM, any, &hp, &out, -1, 1);
    a.stats = &st;
    fopt_prologue_run(&a);
    cr_assert_eq(hp.refused, 0);
    cr_assert_eq(hp.step, INT64_MAX);
}

Test(scalars, rmsprop_prologue_matches_the_host_derivation)
{
    fopt_rmsprop_config cfg = fopt_rmsprop_config_default();
    cfg.momentum = 0.9;
    cfg.centered = true;
    fopt_any_config any = fopt_cfg_copy(&fopt_rmsprop_desc, &cfg);
    fopt_device_hparams hp;
    fopt_scalars out;
    memset(&hp, 0, sizeof hp);
    fopt_prologue_args a = prologue_args(FOPT_KIND_RMSPROP, any, &hp, &out, 9, FOPT_MAX_GROUPS);
    for (int g = 0; g < FOPT_MAX_GROUPS; g++) {
        a.lr[g] = 1e-3 * (g + 1);
        a.wd[g] = g % 2 ? 0.0 : 1e-4 * g;
    }
    fopt_prologue_run(&a);
    cr_expect_eq(out.step, 10);
    for (int g = 0; g < FOPT_MAX_GROUPS; g++) {
        fopt_rmsprop_scalars s = fopt_rmsprop_scalars_make(&cfg, a.lr[g], a.wd[g]);
        cr_expect(same_bytes(&out.group[g].rmsprop, &s, sizeof s), "group %d", g);
    }
}

#endif

/* ---- the clip coefficient (kernels/stats.h): PyTorch's clip_grad_norm_ ---- */

Test(scalars, clip_coefficient_is_max_norm_over_norm_plus_1e_6_in_double)
{
    /* min(1, max_norm / (norm + 1e-6)) in double, rounded to float once */
    const double totals[] = {1e-12, 4e-12, 1e-6, 0.25, 1.0, 2.0, 1e4, 123456.789, 1e30};
    const double maxes[] = {1e-6, 1e-3, 0.5, 1.0, 5.0};
    for (size_t i = 0; i < sizeof totals / sizeof totals[0]; i++)
        for (size_t j = 0; j < sizeof maxes / sizeof maxes[0]; j++) {
            const double c = maxes[j] / (sqrt(totals[i]) + 1e-6);
            const float want = c < 1.0 ? (float)c : 1.0f;
            const float got = fopt_stat_clip_coef(totals[i], maxes[j]);
            cr_expect_eq(bits(got), bits(want), "sum of squares %g, max norm %g: coefficient %.9g, want %.9g",
                         totals[i], maxes[j], (double)got, (double)want);
        }
    /* the 1e-6 matters for tiny norms: norm 1e-6 and max norm 1e-6 give 0.5, not 1 */
    cr_expect_eq(bits(fopt_stat_clip_coef(1e-12, 1e-6)), bits(0.5f));
    cr_expect_eq(bits(fopt_stat_clip_coef(0.0, 1.0)), bits(1.0f), "all-zero grads are not scaled up");
    cr_expect_eq(bits(fopt_stat_clip_coef(4.0, 0.0)), bits(1.0f), "max norm 0: no clipping");
    float nan_coef = fopt_stat_clip_coef(NAN, 1.0);
    cr_expect(nan_coef != nan_coef, "a NaN norm gives a NaN coefficient, as PyTorch's");
    cr_expect_eq(bits(fopt_stat_clip_coef(INFINITY, 1.0)), bits(0.0f), "an infinite norm clips to 0");
}
