/* Stochastic rounding of bf16 params (precision.stochastic_rounding, no master weights) on the
 * reference, the fast CPU path (every ISA) and the host-run kernels (both modes).
 *
 * Most tests use an update whose fp32 result is known exactly: RMSprop with alpha 0, eps 0 and no
 * momentum steps every element by -lr * sign(grad) (v = g*g, sqrt(v) = |g| for grads that are
 * powers of two, g/|g| = +-1). A bf16 param of 1.0 with lr = 2^-9 lands on 1 - 2^-9, an exact tie
 * between two bf16 values (low half 0x8000): stochastic rounding goes either way with probability
 * 1/2, so each element shows one random bit of its (seed, step, tensor, element). With lr a tenth
 * of a bf16 ulp, nearest-even never moves the param, stochastic rounding moves it by the right
 * amount on average. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "dtype.h"
#include "mixed.h"

static mx_config sign_sgd(double lr, fopt_dtype state, bool stochastic, uint64_t seed)
{
    return mx_rmsprop(lr, 0.0, 0.0,
                      (fopt_precision){.state_dtype = state, .stochastic_rounding = stochastic, .seed = seed});
}

/* bf16 tensors of these sizes, every param p0 with the sign alternating by element (+p0, -p0, ...)
 * and grads +-2^k of the param's sign (every step moves the param towards zero). */
static mx_set *toward_zero_set(const mx_config *c, const size_t *sizes, size_t count, float p0, uint64_t seed)
{
    mx_spec spec[8];
    cr_assert(count <= 8);
    for (size_t k = 0; k < count; k++)
        spec[k] = (mx_spec){.numel = sizes[k], .dtype = FOPT_BFLOAT16, .param_off = (unsigned)k % 4,
                            .grad_off = (unsigned)(k + 1) % 8};
    mx_set *s = mx_set_make(c, spec, count, seed);
    test_rng r = test_rng_make(seed);
    for (size_t k = 0; k < count; k++)
        for (size_t i = 0; i < sizes[k]; i++) {
            const float sign = i % 2 ? -1.0f : 1.0f;
            ((uint16_t *)s->param[k].p)[i] = fopt_f32_to_bf16(sign * p0);
            ((uint16_t *)s->grad[k].p)[i] = fopt_f32_to_bf16(sign * ldexpf(1.0f, (int)(test_rng_next(&r) % 21) - 10));
        }
    return s;
}

/* Elements of tensor k whose param rounded away from zero (|param| == 1.0 after the tie step). */
static size_t count_up(const mx_set *s, size_t k)
{
    size_t up = 0;
    for (size_t i = 0; i < s->spec[k].numel; i++) {
        uint16_t h = ((uint16_t *)s->param[k].p)[i] & 0x7fffu;
        cr_assert(h == 0x3f80u || h == 0x3f7fu, "tensor %zu element %zu: 0x%04x is neither neighbour of the tie", k, i, h);
        up += h == 0x3f80u;
    }
    return up;
}

static size_t count_diff(const mx_set *a, size_t ka, const mx_set *b, size_t kb)
{
    size_t d = 0;
    for (size_t i = 0; i < a->spec[ka].numel; i++)
        d += ((uint16_t *)a->param[ka].p)[i] != ((uint16_t *)b->param[kb].p)[i];
    return d;
}

/* One step on every path (fast path on each ISA in turn), compared; returns the reference's set. */
static mx_set *step_all(const mx_config *c, const mx_set *start, int64_t step, const char *label)
{
    return mx_step_every_isa(c, start, step, NULL, 2, label);
}

/* A binomial count of n trials with probability 1/2 lies within 5 sigma of n/2. */
static void expect_half(size_t count, size_t n, const char *what)
{
    const double sigma = sqrt((double)n) / 2.0;
    cr_assert(fabs((double)count - (double)n / 2.0) <= 5.0 * sigma, "%s: %zu of %zu, expected %zu +- %.0f", what,
              count, n, n / 2, 5.0 * sigma);
}

Test(mixed_sr, exact_ties_round_either_way_with_probability_one_half_and_nearest_even_keeps_them_even)
{
    const size_t sizes[2] = {4096, 1001};
    for (int sdt = 0; sdt < 2; sdt++) {
        mx_config sr = sign_sgd(0x1p-9, sdt ? FOPT_BFLOAT16 : FOPT_FLOAT32, true, 12345);
        mx_config ne = sign_sgd(0x1p-9, sdt ? FOPT_BFLOAT16 : FOPT_FLOAT32, false, 12345);
        mx_set *s = toward_zero_set(&sr, sizes, 2, 1.0f, 1);
        mx_set *a = step_all(&sr, s, 1, "tie step, stochastic");
        mx_set *b = step_all(&ne, s, 1, "tie step, nearest-even");
        for (size_t k = 0; k < 2; k++) {
            expect_half(count_up(a, k), sizes[k], "stochastic rounding of exact ties: rounded away from zero");
            cr_assert_eq(count_up(b, k), sizes[k], "nearest-even rounds every tie 1 - 2^-9 to the even 1.0");
        }
        mx_set_free(a);
        mx_set_free(b);
        mx_set_free(s);
    }
}

Test(mixed_sr, a_seed_gives_the_same_bits_on_every_rerun_and_path_and_other_seeds_give_other_bits)
{
    const size_t sizes[3] = {4096, 17, 3000};
    mx_config c1 = sign_sgd(0x1p-9, FOPT_FLOAT32, true, 1), c1b = c1;
    mx_config c2 = sign_sgd(0x1p-9, FOPT_FLOAT32, true, 2);
    mx_config c3 = sign_sgd(0x1p-9, FOPT_FLOAT32, true, 1ull << 32); /* the seed's high half counts */
    mx_set *s = toward_zero_set(&c1, sizes, 3, 1.0f, 2);
    mx_set *a = step_all(&c1, s, 1, "seed 1");
    mx_set *a2 = step_all(&c1b, s, 1, "seed 1 again");
    mx_set *b = step_all(&c2, s, 1, "seed 2");
    mx_set *d = step_all(&c3, s, 1, "seed 2^32");
    char msg[512];
    if (!mx_set_same(a, a2, msg, sizeof msg))
        cr_assert_fail("a rerun with the same seed differs: %s", msg);
    for (size_t k = 0; k < 3; k++) {
        if (sizes[k] < 1000)
            continue;
        expect_half(count_diff(a, k, b, k), sizes[k], "seeds 1 and 2: elements rounded differently");
        expect_half(count_diff(a, k, d, k), sizes[k], "seeds 1 and 2^32: elements rounded differently");
    }
    mx_set_free(a);
    mx_set_free(a2);
    mx_set_free(b);
    mx_set_free(d);
    mx_set_free(s);
}

Test(mixed_sr, the_random_bits_depend_on_step_tensor_and_element_index_and_nothing_else)
{
    mx_config c = sign_sgd(0x1p-9, FOPT_FLOAT32, true, 99);
    /* tensors 0 and 1 hold the same data */
    const size_t sizes[3] = {4096, 4096, 10};
    mx_set *s = toward_zero_set(&c, sizes, 3, 1.0f, 3);
    memcpy(s->grad[1].p, s->grad[0].p, 4096 * 2);
    mx_set *a = step_all(&c, s, 1, "step 1");
    mx_set *b = step_all(&c, s, 2, "step 2, same data");
    mx_set *d = step_all(&c, s, 3, "step 3, same data");
    expect_half(count_diff(a, 0, a, 1), 4096, "two tensors with the same data, one call: elements rounded differently");
    expect_half(count_diff(a, 0, b, 0), 4096, "steps 1 and 2 on the same data: elements rounded differently");
    expect_half(count_diff(b, 0, d, 0), 4096, "steps 2 and 3 on the same data: elements rounded differently");
    /* element index: neighbours are independent (the up/down sequence is not constant in runs) */
    size_t changes = 0;
    const uint16_t *p = a->param[0].p;
    for (size_t i = 2; i < 4096; i++)
        changes += (p[i] & 0x7fffu) != (p[i - 2] & 0x7fffu);
    expect_half(changes, 4094, "elements i and i+2: rounded differently");

    /* nothing else: tensor 1's bits are the same whatever tensor 0's size (the element index
     * counts within its tensor), however the fast path splits the list over threads */
    const size_t sizes2[3] = {3, 4096, 4000};
    mx_set *s2 = toward_zero_set(&c, sizes2, 3, 1.0f, 3);
    memcpy(s2->grad[1].p, s->grad[1].p, 4096 * 2);
    mx_set *a2 = step_all(&c, s2, 1, "step 1, another tensor 0");
    cr_assert_eq(count_diff(a, 1, a2, 1), 0u, "tensor 1's rounding changed with tensor 0's size");
    /* ... nor the grad's magnitude (only the fp32 value of the new param) */
    for (size_t i = 0; i < 4096; i++)
        ((uint16_t *)s2->grad[1].p)[i] ^= 0x0080u; /* another power of two, same sign */
    mx_set *a3 = step_all(&c, s2, 1, "step 1, other grad magnitudes");
    cr_assert_eq(count_diff(a, 1, a3, 1), 0u, "tensor 1's rounding changed with its grads' magnitudes");
    /* the hash itself: a pure function, different for each input */
    const uint64_t k1 = fopt_sr_key(99, 1, 0);
    cr_assert_eq(fopt_sr_key(99, 1, 0), k1);
    cr_assert_neq(fopt_sr_key(99, 2, 0), k1);
    cr_assert_neq(fopt_sr_key(99, 1, 1), k1);
    cr_assert_neq(fopt_sr_key(98, 1, 0), k1);
    cr_assert_neq(fopt_sr_random16(k1, 0) | (uint32_t)fopt_sr_random16(k1, 1) << 16,
                  fopt_sr_random16(k1, (uint64_t)1 << 32) | (uint32_t)fopt_sr_random16(k1, ((uint64_t)1 << 32) + 1) << 16,
                  "the element index's high half is ignored");
    mx_set_free(a);
    mx_set_free(b);
    mx_set_free(d);
    mx_set_free(a2);
    mx_set_free(a3);
    mx_set_free(s2);
    mx_set_free(s);
}

/* 1.0 stepped towards zero by a tenth of a bf16 ulp (2^-8 below 1.0) for 200 steps, 4096
 * elements (half at +1, half at -1). fp32 params move by exactly d = lr rounded to fp32's grid
 * each step; nearest-even never moves a bf16 param; stochastic rounding moves it down one ulp
 * with probability q = d / ulp each step, independently, so the final params have mean 1 - 200 d
 * and variance ulp^2 * 200 q (1 - q). */
Test(mixed_sr, stochastic_rounding_is_unbiased_where_nearest_even_erases_every_update)
{
    const int steps = 200;
    const size_t sizes[2] = {2048, 2048};
    const double ulp = 0x1p-8, lr = ulp / 10.0;
    for (int sdt = 0; sdt < 2; sdt++) {
        const fopt_dtype state = sdt ? FOPT_BFLOAT16 : FOPT_FLOAT32;
        mx_config sr = sign_sgd(lr, state, true, 2024 + (uint64_t)sdt);
        mx_config ne = sign_sgd(lr, state, false, 0);
        mx_set *sets[MX_PATHS];
        sets[0] = toward_zero_set(&sr, sizes, 2, 1.0f, 4);
        for (int p = 1; p < MX_PATHS; p++)
            sets[p] = mx_set_clone(sets[0]);
        mx_set *nearest = mx_set_clone(sets[0]);
        /* the fp32 update: same grads, fp32 params */
        float p32 = 1.0f, g32 = 1.0f, v32 = 0.0f;
        fopt_rmsprop_config c32 = sr.r;
        memset(&c32.precision, 0, sizeof c32.precision);
        for (int64_t s = 1; s <= steps; s++) {
            mx_cpu_use((int)(s % mx_isa_count()), 1 + (int)(s % 2));
            char what[128];
            snprintf(what, sizeof what, "unbiasedness run, %s states", mx_dtype_name(state));
            mx_step_and_compare(&sr, s, sets, MX_PATHS, NULL, what);
            cr_assert_eq(mx_step(MX_REF, &ne, s, nearest->t, 2, NULL), FOPT_SUCCESS);
            cr_assert_eq(fopt_rmsprop_step_ref(&c32, 1, &p32, &g32, &v32, NULL, NULL), FOPT_SUCCESS);
        }
        mx_cpu_reset();
        const double d = 1.0 - (double)p32 == 0.0 ? 0.0 : (1.0 - (double)p32) / steps;
        const double q = d / ulp;
        cr_assert(q > 0.09 && q < 0.11, "the fp32 step is %g bf16 ulp, not a tenth", q);
        for (int sign = 0; sign < 2; sign++) {
            double sum = 0.0, sumsq = 0.0;
            size_t n = 0;
            for (size_t k = 0; k < 2; k++)
                for (size_t i = (size_t)sign; i < sizes[k]; i += 2) {
                    const double x = fabs((double)fopt_bf16_to_f32(((uint16_t *)sets[0]->param[k].p)[i]));
                    sum += x;
                    sumsq += x * x;
                    n++;
                    cr_assert_eq(((uint16_t *)nearest->param[k].p)[i] & 0x7fffu, 0x3f80u,
                                 "nearest-even moved a param that the update cannot move");
                }
            const double mean = sum / (double)n, var = sumsq / (double)n - mean * mean;
            const double want_var = ulp * ulp * steps * q * (1.0 - q);
            const double sigma = sqrt(want_var / (double)n);
            cr_log_info("%s states, %s params: mean |p| %.9f, fp32 %.9f (%.2f sigma); variance %.3g, expected %.3g",
                        mx_dtype_name(state), sign ? "negative" : "positive", mean, (double)p32,
                        (mean - (double)p32) / sigma, var, want_var);
            cr_assert(fabs(mean - (double)p32) <= 3.0 * sigma,
                      "%s states: the mean of the stochastically rounded params %.9f is %.2f sigma from the fp32 "
                      "update %.9f", mx_dtype_name(state), mean, fabs(mean - (double)p32) / sigma, (double)p32);
            cr_assert(var > 0.8 * want_var && var < 1.25 * want_var,
                      "%s states: variance %.3g, expected %.3g (roundings not independent across steps?)",
                      mx_dtype_name(state), var, want_var);
        }
        cr_assert(1.0 - (double)p32 > 19.0 * ulp, "the fp32 update moved %g ulp", (1.0 - (double)p32) / ulp);
        for (int p = 0; p < MX_PATHS; p++)
            mx_set_free(sets[p]);
        mx_set_free(nearest);
    }
}

Test(mixed_sr, inf_and_nan_pass_through_and_representable_values_never_move)
{
    static const uint32_t specials[] = {0x7f800000u, 0xff800000u, 0x7fc00000u, 0xffc00000u, 0x7f800001u,
                                        0xff800001u, 0x7fffffffu, 0x7fbfffffu};
    for (size_t i = 0; i < sizeof specials / sizeof specials[0]; i++) {
        const float x = mx_float(specials[i]);
        for (uint32_t r = 0; r <= 0xffffu; r++) {
            uint16_t h = fopt_f32_to_bf16_sr(x, r);
            if (isnan(x) ? h != ((specials[i] >> 16 & 0x8000u) | 0x7fc0u) : h != (specials[i] >> 16))
                cr_assert_fail("0x%08x with random bits 0x%04x rounds to 0x%04x", specials[i], r, h);
        }
    }
    /* a bf16 value plus any random bits is itself; anything else is one of its two neighbours */
    test_rng rng = test_rng_make(5);
    for (uint32_t h = 0; h <= 0xffffu; h++) {
        if (mx_is_nan16((uint16_t)h, FOPT_BFLOAT16) || (h & 0x7fffu) == 0x7f80u)
            continue;
        const uint32_t r = (uint32_t)test_rng_next(&rng) & 0xffffu;
        cr_assert_eq(fopt_f32_to_bf16_sr(mx_float(h << 16), r), h);
        const uint32_t low = 1 + (uint32_t)(test_rng_next(&rng) % 0xffffu);
        const uint16_t got = fopt_f32_to_bf16_sr(mx_float(h << 16 | low), r);
        cr_assert(got == h || got == h + 1, "0x%08x rounds to 0x%04x", h << 16 | low, got);
    }
    /* through a step: inf and NaN bf16 params stay inf and NaN on every path */
    mx_config c = sign_sgd(0x1p-9, FOPT_FLOAT32, true, 8);
    const size_t sizes[1] = {64};
    mx_set *s = toward_zero_set(&c, sizes, 1, 1.0f, 6);
    uint16_t *p = s->param[0].p;
    for (size_t i = 0; i < 64; i += 4) {
        p[i] = i % 8 ? 0x7f80u : 0xff80u;
        p[i + 1] = i % 8 ? 0x7fc0u : 0xff81u;
    }
    mx_set *a = step_all(&c, s, 1, "inf and NaN params");
    const uint16_t *q = a->param[0].p;
    for (size_t i = 0; i < 64; i += 4) {
        cr_assert_eq(q[i], p[i], "inf param 0x%04x became 0x%04x", p[i], q[i]);
        cr_assert(mx_is_nan16(q[i + 1], FOPT_BFLOAT16), "NaN param became 0x%04x", q[i + 1]);
    }
    mx_set_free(a);
    mx_set_free(s);
}
