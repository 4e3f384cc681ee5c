/* Step options (AMP loss scaling, global-norm clipping, the inf/NaN check, zero_grads, an external
 * sum of squares) on the reference, the fast CPU path (every ISA, 1 and 2 threads) and the
 * host-run kernels (both modes), with fp32, fp16 and bf16 grads.
 *
 * Most tests watch the transformed grad directly through a probe: RMSprop with alpha 1, eps 1,
 * lr 1 and no momentum computes v = v*1 + 0*g*g = 0, avg = sqrt(0) + 1 = 1 and p = p + (-1*g)/1,
 * so a param (or fp32 master) starting at 0 ends at exactly -g, where g is the grad after
 * grad_scale and clipping. 16-bit params get an fp32 master so that g is seen unrounded. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "dtype.h"
#if FOPT_TEST_KERNELS
#include "launch.h"
#endif
#include "mixed.h"
#include "stats.h"
#if FOPT_TEST_KERNELS
#include "table.h"
#endif

static const fopt_dtype k_dtypes[3] = {FOPT_FLOAT32, FOPT_FLOAT16, FOPT_BFLOAT16};

static mx_config probe(void)
{
    return mx_rmsprop(1.0, 1.0, 1.0, (fopt_precision){.master_weights = true});
}

/* Params (and masters) zeroed, so that the probe leaves -g in them. */
static void zero_params(mx_set *s)
{
    for (size_t k = 0; k < s->count; k++) {
        memset(s->param[k].p, 0, s->param[k].bytes);
        if (s->master[k].alloc)
            memset(s->master[k].p, 0, s->master[k].bytes);
    }
}

/* The probe's result for element i of tensor k: the negated transformed grad. */
static float probe_result(const mx_set *s, size_t k, size_t i) { return -mx_param_value(s, k, i); }

/* Whether the probe saw exactly `want` (0 + -g cannot tell -0 from +0: zeros compare as values). */
static bool probe_saw(const mx_set *s, size_t k, size_t i, float want)
{
    const float got = probe_result(s, k, i);
    return want == 0.0f ? got == 0.0f : mx_bits(got) == mx_bits(want);
}

/* One step on every path and ISA (fast path with 2 threads), compared with each other; returns
 * the reference's set and its outputs in *o (grad_norm / found_inf when asked for). */
static mx_set *step_all(const mx_config *c, const mx_set *start, int64_t step, fopt_step_options *o,
                        const char *label)
{
    return mx_step_every_isa(c, start, step, o, 2, label);
}

/* ---- grad_scale ------------------------------------------------------------------------------ */

Test(mixed_options, grad_scale_divides_the_grad_and_does_not_multiply_by_the_reciprocal)
{
    const float scales[3] = {3.0f, 0.3f, 65536.0f * 3.0f};
    for (int di = 0; di < 3; di++)
        for (int si = 0; si < 3; si++) {
            const fopt_dtype d = k_dtypes[di];
            const float sc = scales[si];
            /* grads where g / s and g * (1 / s) differ, and a few where they agree */
            enum { N = 301 };
            mx_config c = probe();
            mx_spec spec = {.numel = N, .dtype = d, .param_off = 1, .grad_off = 2};
            mx_set *s = mx_set_make(&c, &spec, 1, 1);
            zero_params(s);
            test_rng r = test_rng_make(7);
            size_t differ = 0;
            for (size_t i = 0; i < N; i++) {
                float g;
                for (int tries = 0;; tries++) {
                    g = mx_float(0x3c000000u + (uint32_t)(test_rng_next(&r) % 0x6000000u)); /* 2^-7 .. 2^5 */
                    mx_put(s->grad[0].p, d, i, (i % 2 ? -1.0f : 1.0f) * g);
                    g = mx_get(s->grad[0].p, d, i);
                    if (i % 10 == 0 || g / sc != g * (1.0f / sc) || tries > 1000)
                        break;
                }
                differ += g / sc != g * (1.0f / sc);
            }
            cr_assert(differ > N / 2, "%s grads, scale %g: only %zu grads tell division from the reciprocal",
                      mx_dtype_name(d), (double)sc, differ);
            float norm = 0.0f;
            fopt_step_options o = {.grad_scale = &sc, .grad_norm = &norm};
            char label[96];
            snprintf(label, sizeof label, "%s grads, grad_scale %g", mx_dtype_name(d), (double)sc);
            mx_set *out = step_all(&c, s, 1, &o, label);
            for (size_t i = 0; i < N; i++) {
                const float g = mx_get(s->grad[0].p, d, i), got = probe_result(out, 0, i);
                if (!probe_saw(out, 0, i, g / sc))
                    cr_assert_fail("%s: element %zu: the step used %a, grad / scale is %a (grad * (1/scale) %a)",
                                   label, i, (double)got, (double)(g / sc), (double)(g * (1.0f / sc)));
            }
            /* grad_norm of the unscaled grads */
            double sum;
            cr_assert_eq(fopt_grad_sq_sum_ref_multi(s->t, 1, &sc, &sum), FOPT_SUCCESS);
            cr_assert_eq(mx_bits(norm), mx_bits((float)sqrt(sum)));
            cr_assert_eq(sum, mx_model_sq_sum(s, &sc), "%s: sum of squares %a, model %a", label, sum,
                         mx_model_sq_sum(s, &sc));
            mx_set_free(out);
            mx_set_free(s);
        }
}

/* ---- clipping -------------------------------------------------------------------------------- */

static mx_set *random_grads_set(const mx_config *c, fopt_dtype d, const size_t *sizes, size_t count, uint64_t seed)
{
    mx_spec spec[8];
    for (size_t k = 0; k < count; k++)
        spec[k] = (mx_spec){.numel = sizes[k], .dtype = d, .param_off = (unsigned)k % 3, .grad_off = (unsigned)k % 5,
                            .master_off = 1};
    mx_set *s = mx_set_make(c, spec, count, seed);
    zero_params(s);
    test_rng r = test_rng_make(seed + 1);
    mx_set_fill_grads(s, &r, -3.0, 1.0, 31);
    return s;
}

/* random_grads_set() of the probe, and in *sum the sum of squares of its grads unscaled by scale. */
static mx_set *probe_set(mx_config *c, fopt_dtype d, const size_t *sizes, size_t count, uint64_t seed, float scale,
                         double *sum)
{
    *c = probe();
    mx_set *s = random_grads_set(c, d, sizes, count, seed);
    cr_assert_eq(fopt_grad_sq_sum_ref_multi(s->t, count, &scale, sum), FOPT_SUCCESS);
    return s;
}

Test(mixed_options, clipping_scales_the_unscaled_grad_by_max_norm_over_norm_plus_1e_6_only_when_below_one)
{
    const size_t sizes[3] = {5000, 17, 16385};
    for (int di = 0; di < 3; di++) {
        const fopt_dtype d = k_dtypes[di];
        mx_config c;
        const float sc = 3.0f;
        double sum;
        mx_set *s = probe_set(&c, d, sizes, 3, 10 + (uint64_t)di, sc, &sum);
        const double norm = sqrt(sum);
        /* active: a fifth of the norm */
        {
            float gnorm = 0.0f;
            fopt_step_options o = {.grad_scale = &sc, .max_grad_norm = norm / 5.0, .grad_norm = &gnorm};
            const float coef = (float)(o.max_grad_norm / (norm + 1e-6));
            cr_assert(coef < 0.21f && coef > 0.19f);
            size_t order_matters = 0;
            char label[96];
            snprintf(label, sizeof label, "%s grads, clipping to a fifth of the norm", mx_dtype_name(d));
            mx_set *out = step_all(&c, s, 1, &o, label);
            cr_assert_eq(mx_bits(gnorm), mx_bits((float)norm), "grad_norm is the norm before clipping");
            for (size_t k = 0; k < 3; k++)
                for (size_t i = 0; i < sizes[k]; i++) {
                    const float g = mx_get(s->grad[k].p, d, i), want = (g / sc) * coef;
                    order_matters += mx_bits(want) != mx_bits((g * coef) / sc);
                    if (!probe_saw(out, k, i, want))
                        cr_assert_fail("%s: tensor %zu element %zu: the step used %a, (grad / scale) * coef is %a, "
                                       "(grad * coef) / scale %a", label, k, i, (double)probe_result(out, k, i),
                                       (double)want, (double)((g * coef) / sc));
                }
            cr_assert(order_matters > 100, "only %zu grads tell scale-then-clip from clip-then-scale", order_matters);
            mx_set_free(out);
        }
        /* inactive: max_grad_norm above the norm, or 0 */
        const double inactive[2] = {norm * 1.01, 0.0};
        for (int ia = 0; ia < 2; ia++) {
            fopt_step_options o = {.grad_scale = &sc, .max_grad_norm = inactive[ia]};
            mx_set *out = step_all(&c, s, 1, &o, "clipping inactive");
            for (size_t k = 0; k < 3; k++)
                for (size_t i = 0; i < sizes[k]; i++) {
                    const float g = mx_get(s->grad[k].p, d, i);
                    if (!probe_saw(out, k, i, g / sc))
                        cr_assert_fail("%s grads, max_grad_norm %g (norm %g): element %zu changed by %a, want %a",
                                       mx_dtype_name(d), inactive[ia], norm, i, (double)probe_result(out, k, i),
                                       (double)(g / sc));
                }
            mx_set_free(out);
        }
        mx_set_free(s);
    }
}

/* ---- the statistics --------------------------------------------------------------------------- */

#if FOPT_TEST_KERNELS
/* The statistics kernel run on the host (its double total, which the step only exposes rounded). */
static double kernel_sq_sum(const fopt_host_tensor *t, size_t count, const float *scale)
{
    fopt_tensor_entry *e = calloc(count, sizeof *e);
    size_t nchunks = 0;
    for (size_t k = 0; k < count; k++)
        nchunks += (size_t)fopt_chunks_for(t[k].numel, FOPT_CHUNK_SHIFT);
    fopt_chunk *chunks = calloc(nchunks + 1, sizeof *chunks);
    double *partials = calloc(nchunks + 1, sizeof *partials);
    fopt_stats_args *a = calloc(1, sizeof *a);
    cr_assert(e && chunks && partials && a);
    size_t c = 0;
    for (size_t k = 0; k < count; k++) {
        e[k].slot[FOPT_TS_GRAD] = (void *)t[k].grad;
        e[k].storage[FOPT_TS_GRAD] = (uint8_t)fopt_storage_of(t[k].dtype);
        e[k].numel = (int64_t)t[k].numel;
        e[k].tensor = (uint32_t)k;
        fopt_entry_set_flags(&e[k]);
        for (uint64_t i = 0; i < fopt_chunks_for(t[k].numel, FOPT_CHUNK_SHIFT); i++)
            chunks[c++] = (fopt_chunk){(uint32_t)k, (uint32_t)i};
    }
    uint32_t done = 0;
    double total = -1.0;
    a->table = (fopt_table){e, chunks, (uint32_t)count, (uint32_t)nchunks, FOPT_CHUNK_SHIFT, 0};
    a->partials = partials;
    a->done = &done;
    a->grad_scale = scale;
    a->sq_sum_out = &total;
    fopt_stats_kernel().run_on_host(a);
    free(e);
    free(chunks);
    free(partials);
    free(a);
    return total;
}
#endif

/* A sequential sum: what a path that ignored the fixed order might compute. */
static double naive_sq_sum(const mx_set *s, const float *scale)
{
    double sum = 0.0;
    for (size_t k = 0; k < s->count; k++)
        for (size_t i = 0; i < s->spec[k].numel; i++) {
            float u = mx_get(s->grad[k].p, s->spec[k].dtype, i);
            if (scale)
                u = u / *scale;
            sum += (double)u * (double)u;
        }
    return sum;
}

static void check_sums(const mx_set *s, const float *scale, const char *label)
{
    double ref, model = mx_model_sq_sum(s, scale);
    cr_assert_eq(fopt_grad_sq_sum_ref_multi(s->t, s->count, scale, &ref), FOPT_SUCCESS);
    cr_assert(ref == model,
              "%s: the reference's sum %a, the fixed order of kernels/stats.h gives %a", label, ref, model);
#if FOPT_TEST_KERNELS
    double kern = kernel_sq_sum(s->t, s->count, scale);
    cr_assert_eq(kern, ref, "%s: the statistics kernel's sum %a, the reference's %a", label, kern, ref);
#endif
    for (int isa = 0; isa < mx_isa_count(); isa++)
        for (int threads = 1; threads <= 2; threads++) {
            mx_cpu_use(isa, threads);
            double cpu = -1.0;
            cr_assert_eq(fopt_grad_sq_sum_cpu_multi(s->t, s->count, scale, &cpu), FOPT_SUCCESS);
            cr_assert_eq(cpu, ref, "%s: the fast path's sum (%s, %d threads) %a, the reference's %a", label,
                         mx_isa_name(isa), threads, cpu, ref);
        }
    mx_cpu_reset();
}

Test(mixed_options, sums_of_squares_follow_the_fixed_order_so_order_sensitive_sums_agree_bit_for_bit)
{
    /* values 1e8 and 1 (1e4 and 1e-4 in fp16), whose squares are 2^53 apart: a double sum keeps or
     * loses the small ones depending on the order; many tensors, chunk and lane boundaries */
    const size_t sizes[6] = {16385, 3, 40000, 1024, 1, 2049};
    for (int di = 0; di < 3; di++)
        for (int with_scale = 0; with_scale < 2; with_scale++) {
            const fopt_dtype d = k_dtypes[di];
            mx_config c = probe();
            mx_set *s = random_grads_set(&c, d, sizes, 6, 20 + (uint64_t)di);
            const float big = d == FOPT_FLOAT16 ? 1e4f : 1e8f, small = d == FOPT_FLOAT16 ? 1e-4f : 1.0f;
            test_rng r = test_rng_make(3);
            for (size_t k = 0; k < 6; k++)
                for (size_t i = 0; i < sizes[k]; i++) {
                    const uint64_t b = test_rng_next(&r);
                    if (b % 3 == 0)
                        mx_put(s->grad[k].p, d, i, (b & 8 ? -1.0f : 1.0f) * big * (1.0f + (float)(b >> 40 & 0xff) / 256.0f));
                    else if (b % 3 == 1)
                        mx_put(s->grad[k].p, d, i, (b & 8 ? -1.0f : 1.0f) * small * (1.0f + (float)(b >> 40 & 0xff) / 256.0f));
                }
            const float sc = 0.7f, *scale = with_scale ? &sc : NULL;
            char label[96];
            snprintf(label, sizeof label, "%s grads%s", mx_dtype_name(d), with_scale ? ", grad_scale 0.7" : "");
            double ref;
            cr_assert_eq(fopt_grad_sq_sum_ref_multi(s->t, 6, scale, &ref), FOPT_SUCCESS);
            cr_assert_neq(ref, naive_sq_sum(s, scale), "%s: the data is not order-sensitive", label);
            check_sums(s, scale, label);
            /* the steps report sqrt of that sum as grad_norm, before clipping, on every path */
            float norm = 0.0f;
            fopt_step_options o = {.grad_scale = scale, .grad_norm = &norm, .max_grad_norm = 1.0};
            mx_set *out = step_all(&c, s, 1, &o, label);
            cr_assert_eq(mx_bits(norm), mx_bits((float)sqrt(ref)), "%s: grad_norm %a, sqrt of the sum %a", label,
                         (double)norm, sqrt(ref));
            mx_set_free(out);
            mx_set_free(s);
        }
}

Test(mixed_options, grad_norm_is_the_sqrt_of_grad_sq_sum_on_every_path_for_mixed_dtype_lists)
{
    mx_config c = probe();
    mx_spec spec[7] = {{.numel = 16385, .dtype = FOPT_FLOAT16},
                       {.numel = 7, .dtype = FOPT_BFLOAT16, .grad_off = 3},
                       {.numel = 0, .dtype = FOPT_FLOAT32},
                       {.numel = 33000, .dtype = FOPT_FLOAT32, .grad_off = 1},
                       {.numel = 4097, .dtype = FOPT_BFLOAT16},
                       {.numel = 1, .dtype = FOPT_FLOAT16, .grad_off = 1},
                       {.numel = 16384, .dtype = FOPT_BFLOAT16, .grad_off = 2}};
    mx_set *s = mx_set_make(&c, spec, 7, 30);
    zero_params(s);
    test_rng r = test_rng_make(31);
    for (int round = 0; round < 3; round++) {
        mx_set_fill_grads(s, &r, -6.0 + round, 2.0, 17);
        const float sc = round == 1 ? 1024.0f : 0.37f, *scale = round == 0 ? NULL : &sc;
        check_sums(s, scale, "mixed dtypes");
        double ref;
        cr_assert_eq(fopt_grad_sq_sum_ref_multi(s->t, 7, scale, &ref), FOPT_SUCCESS);
        float norm = 0.0f;
        int32_t found = -1;
        fopt_step_options o = {.grad_scale = scale, .grad_norm = &norm, .found_inf = &found,
                               .max_grad_norm = round == 2 ? sqrt(ref) / 3.0 : 0.0};
        mx_set *out = step_all(&c, s, 1, &o, "mixed dtypes");
        cr_assert_eq(mx_bits(norm), mx_bits((float)sqrt(ref)));
        cr_assert_eq(found, 0);
        mx_set_free(out);
    }
    mx_set_free(s);
}

/* ---- the inf/NaN check ------------------------------------------------------------------------ */

Test(mixed_options, a_step_that_finds_inf_or_nan_changes_nothing_anywhere_even_with_zero_grads)
{
    static const char *const names[] = {"adam_amsgrad", "rmsprop_centered_momentum"};
    const size_t sizes[3] = {300, 16385, 9};
    for (int vi = 0; vi < 2; vi++)
        for (int di = 0; di < 3; di++)
            for (int mode = 0; mode < 3; mode++) {
                const fopt_dtype d = k_dtypes[di];
                if (mode == 2 && d != FOPT_BFLOAT16)
                    continue;
                fopt_precision pr = {.state_dtype = mode == 1 ? FOPT_BFLOAT16 : FOPT_FLOAT32,
                                     .master_weights = mode >= 1, .master_remainder = mode == 2};
                mx_config c = mx_config_make(mx_variant(names[vi]), pr);
                mx_spec spec[3];
                for (int k = 0; k < 3; k++)
                    spec[k] = (mx_spec){.numel = sizes[k], .dtype = d, .param_off = (unsigned)k, .grad_off = 1};
                mx_set *s = mx_set_make(&c, spec, 3, 40);
                test_rng r = test_rng_make(41);
                mx_set_fill_grads(s, &r, -3.0, 1.0, 0);
                char label[160];
                /* +inf, -inf, NaN in the last tensor's last element, a NaN in the middle of the big one */
                const float bad[3] = {INFINITY, -INFINITY, NAN};
                for (int b = 0; b < 3; b++) {
                    mx_set *t = mx_set_clone(s);
                    mx_put(t->grad[b == 2 ? 1 : 2].p, d, b == 2 ? 9000 : 8, bad[b]);
                    snprintf(label, sizeof label, "%s, %s grads, mode %d, grad %g", names[vi], mx_dtype_name(d), mode,
                             (double)bad[b]);
                    mx_expect_skip(&c, t, NULL, NULL, false, label);
                    mx_set_free(t);
                }
                /* a finite grad that overflows once unscaled: 3e38 / 0.5; fp16 60000 / 2^-120 */
                mx_set *t = mx_set_clone(s);
                const float tiny = d == FOPT_FLOAT16 ? 0x1p-120f : 0.5f;
                mx_put(t->grad[0].p, d, 17, d == FOPT_FLOAT16 ? 60000.0f : 3e38f);
                snprintf(label, sizeof label, "%s, %s grads, mode %d, a finite grad whose unscaled value overflows",
                         names[vi], mx_dtype_name(d), mode);
                mx_expect_skip(&c, t, &tiny, NULL, false, label);
                mx_set_free(t);
                mx_set_free(s);
            }
}

Test(mixed_options, large_finite_grads_whose_squares_overflow_float_do_not_count_as_inf)
{
    mx_config c = probe();
    const size_t sizes[1] = {100};
    for (int di = 0; di < 3; di++) {
        if (k_dtypes[di] == FOPT_FLOAT16)
            continue; /* fp16 cannot hold a value whose square overflows a float */
        mx_set *s = random_grads_set(&c, k_dtypes[di], sizes, 1, 50);
        mx_put(s->grad[0].p, k_dtypes[di], 3, 1e30f);
        float norm = 0.0f;
        int32_t found = -1;
        fopt_step_options o = {.grad_norm = &norm, .found_inf = &found};
        mx_set *out = step_all(&c, s, 1, &o, "a grad of 1e30");
        cr_assert_eq(found, 0, "1e30 squared fits a double: no inf");
        cr_assert(isfinite(norm) && norm >= 1e30f * 0.99f);
        cr_assert(probe_saw(out, 0, 3, mx_get(s->grad[0].p, k_dtypes[di], 3)), "the step ran");
        mx_set_free(out);
        mx_set_free(s);
    }
}

/* ---- an external sum of squares --------------------------------------------------------------- */

Test(mixed_options, an_external_grad_sq_sum_replaces_the_computed_sum_for_norm_clipping_and_the_inf_check)
{
    const size_t sizes[2] = {1000, 16385};
    for (int di = 0; di < 3; di++) {
        const fopt_dtype d = k_dtypes[di];
        mx_config c;
        const float sc = 2.0f;
        double local;
        mx_set *s = probe_set(&c, d, sizes, 2, 60 + (uint64_t)di, sc, &local);
        /* as if other ranks held 8 times as much: clipping to the local norm now bites by ~1/3 */
        const double ext = 9.0 * local;
        float norm = 0.0f;
        int32_t found = -1;
        fopt_step_options o = {.grad_scale = &sc, .max_grad_norm = sqrt(local), .grad_norm = &norm, .found_inf = &found,
                               .grad_sq_sum = &ext};
        char label[96];
        snprintf(label, sizeof label, "%s grads, external sum", mx_dtype_name(d));
        mx_set *out = step_all(&c, s, 1, &o, label);
        cr_assert_eq(mx_bits(norm), mx_bits((float)sqrt(ext)), "grad_norm follows the external sum");
        cr_assert_eq(found, 0);
        const float coef = (float)(sqrt(local) / (sqrt(ext) + 1e-6));
        for (size_t k = 0; k < 2; k++)
            for (size_t i = 0; i < sizes[k]; i++) {
                const float want = (mx_get(s->grad[k].p, d, i) / sc) * coef;
                if (!probe_saw(out, k, i, want))
                    cr_assert_fail("%s: element %zu used %a, want %a (coefficient %a from the external sum)", label, i,
                                   (double)probe_result(out, k, i), (double)want, (double)coef);
            }
        mx_set_free(out);
        /* non-finite external sums: found_inf, nothing written, whatever the local grads */
        const double nonfinite[3] = {INFINITY, NAN, -NAN};
        for (int b = 0; b < 3; b++) {
            snprintf(label, sizeof label, "%s grads, external sum %g", mx_dtype_name(d), nonfinite[b]);
            mx_expect_skip(&c, s, &sc, &nonfinite[b], false, label);
        }
        /* a finite external sum overrides a local inf: no skip, the step runs */
        mx_set *t = mx_set_clone(s);
        mx_put(t->grad[1].p, d, 5, INFINITY);
        found = -1;
        fopt_step_options o2 = {.found_inf = &found, .grad_norm = &norm, .grad_sq_sum = &ext};
        out = step_all(&c, t, 1, &o2, "finite external sum, local inf");
        cr_assert_eq(found, 0, "the external sum decides found_inf");
        cr_assert(probe_saw(out, 0, 7, mx_get(t->grad[0].p, d, 7)), "the step ran");
        mx_set_free(out);
        /* a NaN external sum without the check and without clipping: the step runs as usual */
        const double nan_sum = NAN;
        fopt_step_options o3 = {.grad_norm = &norm, .grad_sq_sum = &nan_sum};
        out = step_all(&c, s, 1, &o3, "NaN external sum, no check");
        cr_assert(isnan(norm));
        cr_assert(probe_saw(out, 1, 100, mx_get(s->grad[1].p, d, 100)));
        mx_set_free(out);
        mx_set_free(t);
        mx_set_free(s);
    }
}

/* ---- zero_grads ------------------------------------------------------------------------------- */

Test(mixed_options, zero_grads_writes_zero_to_every_grad_after_using_it)
{
    static const char *const names[] = {"adamw_amsgrad", "rmsprop_centered_momentum"};
    const size_t sizes[4] = {1, 4097, 16385, 30};
    for (int vi = 0; vi < 2; vi++)
        for (int di = 0; di < 3; di++)
            for (int opts = 0; opts < 2; opts++) {
                const fopt_dtype d = k_dtypes[di];
                fopt_precision pr = {.master_weights = di > 0, .state_dtype = opts ? FOPT_BFLOAT16 : FOPT_FLOAT32};
                mx_config c = mx_config_make(mx_variant(names[vi]), pr);
                mx_spec spec[4];
                for (int k = 0; k < 4; k++)
                    spec[k] = (mx_spec){.numel = sizes[k], .dtype = d, .param_off = (unsigned)k * 2 % 8,
                                        .grad_off = (unsigned)k % 2 * 3};
                mx_set *s = mx_set_make(&c, spec, 4, 70);
                test_rng r = test_rng_make(71);
                mx_set_fill_grads(s, &r, -4.0, 1.0, 0);
                const float sc = 4.0f;
                /* plain (the fp32 fast path's direct loop), or with scale and clipping */
                fopt_step_options keep = {.grad_scale = opts ? &sc : NULL, .max_grad_norm = opts ? 0.1 : 0.0};
                fopt_step_options zero = keep;
                zero.zero_grads = true;
                char label[128];
                snprintf(label, sizeof label, "%s, %s grads, %s", names[vi], mx_dtype_name(d),
                         opts ? "grad_scale and clipping" : "no other option");
                mx_set *a = step_all(&c, s, 2, &keep, label);
                mx_set *b = step_all(&c, s, 2, &zero, label);
                for (size_t k = 0; k < 4; k++) {
                    const unsigned char *g = b->grad[k].p;
                    for (size_t j = 0; j < b->grad[k].bytes; j++)
                        cr_assert_eq(g[j], 0, "%s: tensor %zu grad byte %zu is 0x%02x after zero_grads", label, k, j, g[j]);
                    memcpy(a->grad[k].p, g, b->grad[k].bytes); /* the rest must match the run without it */
                }
                char msg[512];
                if (!mx_set_same(b, a, msg, sizeof msg))
                    cr_assert_fail("%s: zero_grads changed the update: %s", label, msg);
                mx_set_free(a);
                mx_set_free(b);
                mx_set_free(s);
            }
}
