/* The step's verdict and the step count at its limit, on every path (docs/SEMANTICS.md, "The
 * verdict"; include/fusedopt.h, fopt_step_options and fopt_step_count):
 *   - a loss scale that is not a finite number > 0 (0, -0, negative, inf, NaN) and an external sum
 *     of squares that is negative or NaN make the verdict non-finite: found_inf is set and nothing
 *     is updated; without found_inf the sum counts as NaN (grad_norm NaN, clipping by a NaN
 *     coefficient), as a NaN grad's sum would;
 *   - clipping without found_inf: a NaN grad makes every param NaN, an inf grad zeroes every
 *     finite grad (coefficient 0) and makes its own element NaN;
 *   - the step count: INT64_MAX is a valid step number on the CPU entry points; the GPU optimizer
 *     takes its count to INT64_MAX and refuses the step after (eagerly with
 *     FOPT_ERROR_INVALID_VALUE; on the device by updating nothing, the count saturated, and
 *     fopt_step_count() then reporting it with -1), and checkpoints at those counts round-trip.
 * Host paths: the reference, the fast CPU path (every ISA) and the host-run kernels (both modes),
 * through the probe of tests/test_mixed_options.c (RMSprop alpha 1, eps 1, lr 1: a param starting
 * at 0 ends at exactly -g). GPU object: the `gpu_verdict` suite, on the emulated device too. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "mixed.h"
#if FOPT_TEST_KERNELS /* the GPU object's tests; a build without CUDA runs the CPU paths' only */
#include "gpu_util.h"

TestSuite(gpu_verdict, .init = gt_require_device);
#endif

static const fopt_dtype k_dtypes[3] = {FOPT_FLOAT32, FOPT_FLOAT16, FOPT_BFLOAT16};

/* The probe over `count` tensors of dtype d (fp32 masters for 16-bit params), params zeroed,
 * random grads. */
static mx_set *probe_set(mx_config *c, fopt_dtype d, const size_t *sizes, size_t count, uint64_t seed)
{
    *c = mx_rmsprop(1.0, 1.0, 1.0, (fopt_precision){.master_weights = true});
    mx_spec spec[4];
    for (size_t k = 0; k < count; k++)
        spec[k] = (mx_spec){.numel = sizes[k], .dtype = d, .param_off = (unsigned)k % 3, .grad_off = 1};
    mx_set *s = mx_set_make(c, spec, count, seed);
    for (size_t k = 0; k < count; k++) {
        memset(s->param[k].p, 0, s->param[k].bytes);
        if (s->master[k].alloc)
            memset(s->master[k].p, 0, s->master[k].bytes);
    }
    test_rng r = test_rng_make(seed + 1);
    mx_set_fill_grads(s, &r, -3.0, 1.0, 31);
    return s;
}

/* Every param of the reference's result is NaN (the paths agree: mx_step_every_isa compares). */
static void expect_all_nan(const mx_set *out, const char *label)
{
    for (size_t k = 0; k < out->count; k++)
        for (size_t i = 0; i < out->spec[k].numel; i++)
            if (!isnan(mx_param_value(out, k, i)))
                cr_assert_fail("%s: tensor %zu element %zu is %g, want NaN", label, k, i,
                               (double)mx_param_value(out, k, i));
}

static const float k_bad_scales[6] = {0.0f, -0.0f, -2.0f, INFINITY, -INFINITY, NAN};

Test(verdict, a_loss_scale_that_is_not_a_finite_positive_number_is_a_non_finite_verdict_on_every_path)
{
    const size_t sizes[2] = {300, 16385};
    for (int di = 0; di < 3; di++) {
        mx_config c;
        mx_set *s = probe_set(&c, k_dtypes[di], sizes, 2, 70 + (uint64_t)di);
        char label[128];
        for (int b = 0; b < 6; b++) {
            snprintf(label, sizeof label, "%s grads, loss scale %g", mx_dtype_name(k_dtypes[di]), (double)k_bad_scales[b]);
            mx_expect_skip(&c, s, &k_bad_scales[b], NULL, true, label);
            const double ext = 4.0; /* an external sum does not save a bad scale either */
            mx_expect_skip(&c, s, &k_bad_scales[b], &ext, true, label);
            /* the partial of a sharded step: NaN, so every rank's verdict sees it */
            for (int p = MX_REF; p <= MX_CPU; p++) {
                double sum = 0.0;
                cr_assert_eq(mx_sq_sum((mx_path)p, s->t, s->count, &k_bad_scales[b], &sum), FOPT_SUCCESS);
                cr_assert(isnan(sum), "%s: %s: fopt_grad_sq_sum gave %g", label, mx_path_name((mx_path)p), sum);
            }
        }
        mx_set_free(s);
    }
}

Test(verdict, a_bad_loss_scale_without_found_inf_is_used_as_given_and_its_statistics_are_nan)
{
    const size_t sizes[1] = {100};
    mx_config c;
    mx_set *s = probe_set(&c, FOPT_FLOAT32, sizes, 1, 80);
    /* no statistics: every grad divided by inf is a signed zero, and the step runs with it */
    const float inf = INFINITY;
    fopt_step_options plain = {.grad_scale = &inf};
    mx_set *out = mx_step_every_isa(&c, s, 1, &plain, 2, "loss scale inf, no statistics");
    for (size_t i = 0; i < sizes[0]; i++)
        cr_assert_eq(mx_param_value(out, 0, i), 0.0f, "element %zu", i);
    mx_set_free(out);
    /* with statistics: grad_norm NaN, and clipping by a NaN coefficient makes every param NaN */
    for (int b = 0; b < 6; b++) {
        float norm = 0.0f;
        fopt_step_options o = {.grad_scale = &k_bad_scales[b], .grad_norm = &norm, .max_grad_norm = 1.0};
        char label[96];
        snprintf(label, sizeof label, "loss scale %g, clipping, no found_inf", (double)k_bad_scales[b]);
        out = mx_step_every_isa(&c, s, 1, &o, 2, label);
        cr_assert(isnan(norm), "%s: grad_norm %g", label, (double)norm);
        expect_all_nan(out, label);
        mx_set_free(out);
    }
    mx_set_free(s);
}

Test(verdict, a_negative_or_nan_external_sum_of_squares_is_a_non_finite_verdict_on_every_path)
{
    const size_t sizes[2] = {1000, 16385};
    const double bad[5] = {-1.0, -DBL_MIN, -DBL_MAX, -INFINITY, NAN};
    for (int di = 0; di < 3; di++) {
        mx_config c;
        mx_set *s = probe_set(&c, k_dtypes[di], sizes, 2, 90 + (uint64_t)di);
        const float sc = 2.0f;
        char label[128];
        for (int b = 0; b < 5; b++) {
            snprintf(label, sizeof label, "%s grads, external sum %g", mx_dtype_name(k_dtypes[di]), bad[b]);
            mx_expect_skip(&c, s, &sc, &bad[b], true, label);
            mx_expect_skip(&c, s, NULL, &bad[b], true, label);
            /* without found_inf: as a NaN sum. Clipping by NaN: every param NaN */
            float norm = 0.0f;
            fopt_step_options o = {.max_grad_norm = 1.0, .grad_norm = &norm, .grad_sq_sum = &bad[b]};
            mx_set *out = mx_step_every_isa(&c, s, 1, &o, 2, label);
            cr_assert(isnan(norm), "%s: grad_norm %g", label, (double)norm);
            expect_all_nan(out, label);
            mx_set_free(out);
            /* no clipping: the sum only feeds grad_norm (NaN) and the step runs as usual */
            fopt_step_options o2 = {.grad_norm = &norm, .grad_sq_sum = &bad[b]};
            out = mx_step_every_isa(&c, s, 1, &o2, 2, label);
            cr_assert(isnan(norm), "%s: grad_norm %g", label, (double)norm);
            cr_assert_eq(mx_param_value(out, 1, 77), -mx_get(s->grad[1].p, k_dtypes[di], 77), "%s: the step ran", label);
            mx_set_free(out);
        }
        mx_set_free(s);
    }
}

Test(verdict, clipping_without_found_inf_a_nan_grad_makes_every_param_nan_an_inf_grad_zeroes_the_finite_ones)
{
    const size_t sizes[2] = {300, 16385};
    for (int di = 0; di < 3; di++) {
        const fopt_dtype d = k_dtypes[di];
        mx_config c;
        mx_set *s = probe_set(&c, d, sizes, 2, 100 + (uint64_t)di);
        char label[128];
        /* NaN: the norm is NaN, so is the coefficient (as torch.clamp), so is every grad */
        mx_set *t = mx_set_clone(s);
        mx_put(t->grad[1].p, d, 9000, NAN);
        float norm = 0.0f;
        fopt_step_options o = {.max_grad_norm = 1.0, .grad_norm = &norm};
        snprintf(label, sizeof label, "%s grads, a NaN grad, clipping, no found_inf", mx_dtype_name(d));
        mx_set *out = mx_step_every_isa(&c, t, 1, &o, 2, label);
        cr_assert(isnan(norm));
        expect_all_nan(out, label);
        mx_set_free(out);
        mx_set_free(t);
        /* inf: the norm is inf, the coefficient 0: finite grads become zeros, the inf one 0*inf = NaN */
        t = mx_set_clone(s);
        mx_put(t->grad[0].p, d, 17, -INFINITY);
        snprintf(label, sizeof label, "%s grads, an inf grad, clipping, no found_inf", mx_dtype_name(d));
        out = mx_step_every_isa(&c, t, 1, &o, 2, label);
        cr_assert(isinf(norm));
        for (size_t k = 0; k < 2; k++)
            for (size_t i = 0; i < sizes[k]; i++) {
                const float got = mx_param_value(out, k, i);
                if (k == 0 && i == 17)
                    cr_assert(isnan(got), "%s: the inf element is %g, want NaN", label, (double)got);
                else if (got != 0.0f)
                    cr_assert_fail("%s: tensor %zu element %zu moved by %g, want 0", label, k, i, (double)got);
            }
        mx_set_free(out);
        mx_set_free(t);
        mx_set_free(s);
    }
}

Test(verdict, int64_max_is_a_valid_step_number_on_every_cpu_path_and_the_host_run_kernels)
{
    /* Adam (bias correction from the step) and bf16 stochastic rounding (its bits from the step) */
    static const char *const names[] = {"adamw_amsgrad", "adam"};
    const int64_t steps[2] = {INT64_MAX - 1, INT64_MAX};
    for (int vi = 0; vi < 2; vi++) {
        fopt_precision pr = {.stochastic_rounding = vi == 1, .seed = 5};
        mx_config c = mx_config_make(mx_variant(names[vi]), pr);
        mx_spec spec[2] = {{.numel = 1000, .dtype = vi == 1 ? FOPT_BFLOAT16 : FOPT_FLOAT32},
                           {.numel = 37, .dtype = FOPT_FLOAT32, .param_off = 1}};
        mx_set *s = mx_set_make(&c, spec, 2, 110);
        test_rng r = test_rng_make(111);
        mx_set_fill_grads(s, &r, -3.0, 1.0, 0);
        for (int k = 0; k < 2; k++) {
            int32_t found = -1;
            fopt_step_options o = {.found_inf = &found};
            char label[96];
            snprintf(label, sizeof label, "%s, step %lld", names[vi], (long long)steps[k]);
            mx_set *out = mx_step_every_isa(&c, s, steps[k], &o, 2, label);
            cr_assert_eq(found, 0, "%s", label);
            for (size_t t = 0; t < 2; t++)
                for (size_t i = 0; i < spec[t].numel; i++)
                    cr_assert(isfinite(mx_param_value(out, t, i)), "%s: tensor %zu element %zu not finite", label, t, i);
            cr_assert_gt(mx_set_params_changed(s, out), 0, "%s: the step ran", label);
            mx_set_free(out);
        }
        mx_set_free(s);
    }
}

#if FOPT_TEST_KERNELS
/* ---- the GPU optimizer ------------------------------------------------------------------------ */

static const gt_spec k_list[] = {{300, FOPT_FLOAT32, 0, 0}, {FOPT_CHUNK + 5, FOPT_BFLOAT16, 0, 1}, {64, FOPT_FLOAT16, 0, 0}};
#define K_COUNT (sizeof k_list / sizeof k_list[0])

static void plain_step(gt_problem *p)
{
    gt_new_grads(p);
    FOPT_OK(fopt_step(p->opt, 0));
    gt_ref_step(p, NULL);
}

/* One step with these device options that must be skipped: found_inf 1, grad_norm NaN, the
 * reference skips too, and the optimizer's observable state is what it was. */
static void expect_gpu_skip(gt_problem *p, const gt_dev_opts *d, const fopt_step_options *dev,
                            const fopt_step_options *host, const char *label)
{
    gt_snapshot before;
    gt_snapshot_take(&before, p, p->opt);
    gt_dev_poison_outputs(d);
    FOPT_OK(fopt_step_ex(p->opt, dev, 0));
    cr_assert_eq(gt_ref_step(p, host), 1, "%s: the reference did not skip", label);
    cr_assert_eq(gt_dev_found_inf(d), 1, "%s: found_inf %d", label, gt_dev_found_inf(d));
    cr_assert(isnan(gt_dev_norm(d)), "%s: grad_norm %g", label, (double)gt_dev_norm(d));
    gt_expect_snapshot(p, p->opt, &before, label);
    gt_snapshot_free(&before);
}

Test(gpu_verdict, a_bad_loss_scale_or_a_negative_external_sum_skips_the_step_with_found_inf_eager_and_capturable)
{
    const double bad_sums[4] = {-1.0, -DBL_MIN, -INFINITY, NAN};
    for (int cap = 0; cap < 2; cap++) {
        gt_cfg cfg = gt_adam();
        *gt_capturable(&cfg) = cap;
        gt_problem *p = gt_problem_make(&cfg, k_list, K_COUNT, 120 + (uint64_t)cap, true);
        gt_dev_opts d;
        gt_dev_opts_make(&d);
        plain_step(p);
        float h_scale = 1.0f, h_norm = 0.0f;
        int32_t h_inf = 0;
        double h_ext = 0.0;
        fopt_step_options dev = {.grad_scale = d.grad_scale, .max_grad_norm = 0.5, .grad_norm = d.grad_norm,
                                 .found_inf = d.found_inf};
        fopt_step_options host = {.grad_scale = &h_scale, .max_grad_norm = 0.5, .grad_norm = &h_norm,
                                  .found_inf = &h_inf};
        char label[128];
        for (int b = 0; b < 6; b++) {
            gt_new_grads(p);
            h_scale = k_bad_scales[b];
            gt_dev_set_scale(&d, h_scale);
            snprintf(label, sizeof label, "%s, loss scale %g", cap ? "capturable" : "eager", (double)h_scale);
            expect_gpu_skip(p, &d, &dev, &host, label);
        }
        h_scale = 1.0f;
        gt_dev_set_scale(&d, h_scale);
        dev.grad_sq_sum = d.grad_sq_sum;
        host.grad_sq_sum = &h_ext;
        for (int b = 0; b < 4; b++) {
            gt_new_grads(p);
            h_ext = bad_sums[b];
            gt_dev_set_sq_sum(&d, h_ext);
            snprintf(label, sizeof label, "%s, external sum %g", cap ? "capturable" : "eager", h_ext);
            expect_gpu_skip(p, &d, &dev, &host, label);
        }
        plain_step(p);
        gt_check(p, p->opt, "a real step after the skips");
        cr_assert_eq(fopt_step_count(p->opt), 2);
        /* the partial of a sharded step with a bad scale is NaN, as on the CPU */
        gt_dev_set_scale(&d, 0.0f);
        FOPT_OK(fopt_grad_sq_sum(p->opt, d.grad_scale, d.grad_sq_sum, 0));
        CUDA_OK(fopt_dev_synchronize());
        double sum = 0.0;
        gt_download(&sum, d.grad_sq_sum, sizeof sum);
        cr_assert(isnan(sum), "fopt_grad_sq_sum with a loss scale of 0 gave %g", sum);
        gt_dev_opts_free(&d);
        gt_problem_free(p);
    }
}

/* Tensor k's device params, downloaded (malloc'ed). */
static void *dev_params(const gt_problem *p, size_t k)
{
    const size_t bytes = p->spec[k].numel * gt_dtype_bytes(p->spec[k].dtype);
    void *buf = malloc(bytes);
    cr_assert_not_null(buf);
    gt_download(buf, p->dev[k].param, bytes);
    return buf;
}

Test(gpu_verdict, clipping_without_found_inf_nan_grads_make_every_param_nan_and_an_inf_grad_zeroes_the_rest)
{
    for (int cap = 0; cap < 2; cap++)
        for (int b = 0; b < 2; b++) {
            gt_cfg cfg = gt_rmsprop();
            *gt_capturable(&cfg) = cap;
            gt_problem *p = gt_problem_make(&cfg, k_list, K_COUNT, 130 + (uint64_t)(2 * cap + b), true);
            gt_dev_opts d;
            gt_dev_opts_make(&d);
            float h_norm = 0.0f;
            fopt_step_options dev = {.max_grad_norm = 1.0, .grad_norm = d.grad_norm};
            fopt_step_options host = {.max_grad_norm = 1.0, .grad_norm = &h_norm};
            gt_new_grads(p);
            gt_set_grad(p, 1, FOPT_CHUNK + 2, b ? INFINITY : NAN);
            FOPT_OK(fopt_step_ex(p->opt, &dev, 0));
            gt_ref_step(p, &host);
            CUDA_OK(fopt_dev_synchronize());
            cr_assert(b ? isinf(gt_dev_norm(&d)) : isnan(gt_dev_norm(&d)));
            for (size_t k = 0; k < K_COUNT; k++) {
                void *got = dev_params(p, k);
                for (size_t i = 0; i < k_list[k].numel; i++) {
                    const float g = gt_get(got, k_list[k].dtype, i), want = gt_get(p->param[k], k_list[k].dtype, i);
                    const bool the_inf = k == 1 && i == FOPT_CHUNK + 2;
                    if (!b || the_inf) /* NaN everywhere, or where the inf grad was (0 * inf) */
                        cr_assert(isnan(g) && isnan(want), "tensor %zu element %zu: %g, reference %g, want NaN",
                                  k, i, (double)g, (double)want);
                    else
                        cr_assert_eq(mx_bits(g), mx_bits(want), "tensor %zu element %zu: %a, reference %a", k,
                                     i, (double)g, (double)want);
                }
                free(got);
            }
            gt_dev_opts_free(&d);
            gt_problem_free(p);
        }
}

/* ---- the step count at INT64_MAX ---- */

typedef enum { COUNT_EAGER_FOUND_INF, COUNT_CAPTURABLE, COUNT_GRAPH } count_mode;
static const char *const k_count_modes[] = {"eager fopt_step_ex with found_inf", "capturable fopt_step",
                                            "capturable graph replay"};

typedef struct count_case {
    gt_problem *p;
    gt_dev_opts d;
    cudaStream_t stream;
    fopt_dev_graph *graph;
    count_mode mode;
} count_case;

/* One step of the mode: enqueued (the device decides whether it counts), then the reference's
 * when `ref`. Returns the step call's status. */
static fopt_status count_step_status(count_case *c, bool ref)
{
    gt_new_grads(c->p);
    fopt_step_options dev = {.found_inf = c->d.found_inf};
    fopt_status st = FOPT_SUCCESS;
    if (c->mode == COUNT_EAGER_FOUND_INF)
        st = fopt_step_ex(c->p->opt, &dev, 0);
    else if (c->mode == COUNT_CAPTURABLE)
        st = fopt_step(c->p->opt, 0);
    else
        CUDA_OK(fopt_dev_graph_launch(c->graph, c->stream));
    CUDA_OK(fopt_dev_synchronize());
    int32_t h_inf = 0;
    fopt_step_options host = {.found_inf = &h_inf};
    if (ref && st == FOPT_SUCCESS)
        gt_ref_step(c->p, c->mode == COUNT_CAPTURABLE ? NULL : &host);
    return st;
}

static void count_step(count_case *c, bool ref) { FOPT_OK(count_step_status(c, ref)); }

static void count_case_make(count_case *c, count_mode mode)
{
    memset(c, 0, sizeof *c);
    c->mode = mode;
    gt_cfg cfg = gt_adamw();
    *gt_capturable(&cfg) = mode != COUNT_EAGER_FOUND_INF;
    c->p = gt_problem_make(&cfg, k_list, K_COUNT, 140 + (uint64_t)mode, true);
    gt_dev_opts_make(&c->d);
    CUDA_OK(fopt_dev_stream_create(&c->stream));
    if (mode == COUNT_GRAPH) {
        fopt_step_options dev = {.found_inf = c->d.found_inf};
        CUDA_OK(fopt_dev_capture_begin(c->stream));
        fopt_status st = fopt_step_ex(c->p->opt, &dev, c->stream);
        CUDA_OK(fopt_dev_capture_end(c->stream, &c->graph));
        FOPT_OK(st);
    }
}

static void count_case_free(count_case *c)
{
    if (c->graph)
        fopt_dev_graph_destroy(c->graph);
    CUDA_OK(fopt_dev_stream_destroy(c->stream));
    gt_dev_opts_free(&c->d);
    gt_problem_free(c->p);
}

Test(gpu_verdict, a_step_past_int64_max_is_refused_on_the_device_changes_nothing_and_is_reported)
{
    for (int m = 0; m < 3; m++) {
        count_case c;
        count_case_make(&c, (count_mode)m);
        gt_problem *p = c.p;
        const char *name = k_count_modes[m];
        plain_step(p); /* some state to keep */
        FOPT_OK(fopt_set_step_count(p->opt, INT64_MAX - 1));
        p->ref_step = INT64_MAX - 1;
        size_t size_before = 0;
        unsigned char *at_max_minus_1 = gt_save(p->opt, &size_before);
        /* step INT64_MAX, then a step that would overflow: no host call reads the count between */
        count_step(&c, true);
        count_step(&c, false);
        cr_assert_eq(fopt_step_count(p->opt), -1, "%s: the refused step was not reported", name);
        cr_assert(strstr(fopt_last_error(), "INT64_MAX"), "%s: message: %s", name, fopt_last_error());
        /* still refused (at the call once the host has read the count back), still reported */
        cr_assert_eq(count_step_status(&c, false), m == COUNT_EAGER_FOUND_INF ? FOPT_ERROR_INVALID_VALUE : FOPT_SUCCESS,
                     "%s", name);
        cr_assert_eq(fopt_step_count(p->opt), -1, "%s: the report did not stay", name);
        /* the checkpoint holds INT64_MAX and loads */
        size_t size = 0;
        unsigned char *at_max = gt_save(p->opt, &size);
        FOPT_OK(fopt_state_load(p->opt, at_max, size));
        cr_assert_eq(fopt_step_count(p->opt), INT64_MAX, "%s: after loading the checkpoint", name);
        gt_check(p, p->opt, name); /* step INT64_MAX as the reference's, the refused ones left nothing */
        if (m == COUNT_EAGER_FOUND_INF) {
            /* the host knows the count again (it read it back): it refuses at the call */
            cr_assert_eq(count_step_status(&c, false), FOPT_ERROR_INVALID_VALUE, "%s", name);
        } else {
            /* a count set by hand clears the report as well */
            count_step(&c, false);
            cr_assert_eq(fopt_step_count(p->opt), -1, "%s", name);
            FOPT_OK(fopt_set_step_count(p->opt, INT64_MAX));
        }
        gt_check(p, p->opt, name);
        /* the checkpoint at INT64_MAX - 1 loads, and its next step counts */
        FOPT_OK(fopt_state_load(p->opt, at_max_minus_1, size_before));
        cr_assert_eq(fopt_step_count(p->opt), INT64_MAX - 1, "%s", name);
        count_step(&c, false);
        cr_assert_eq(fopt_step_count(p->opt), INT64_MAX, "%s", name);
        free(at_max);
        free(at_max_minus_1);
        count_case_free(&c);
    }
}

Test(gpu_verdict, an_eager_step_whose_count_the_host_knows_is_refused_at_int64_max_with_invalid_value)
{
    gt_cfg cfg = gt_adam();
    gt_problem *p = gt_problem_make(&cfg, k_list, K_COUNT, 150, true);
    plain_step(p);
    FOPT_OK(fopt_set_step_count(p->opt, INT64_MAX - 1));
    p->ref_step = INT64_MAX - 1;
    plain_step(p);
    gt_check(p, p->opt, "step INT64_MAX");
    gt_snapshot before;
    gt_snapshot_take(&before, p, p->opt);
    gt_dev_opts d;
    gt_dev_opts_make(&d);
    fopt_step_options o = {.grad_norm = d.grad_norm, .max_grad_norm = 1.0};
    cr_assert_eq(fopt_step(p->opt, 0), FOPT_ERROR_INVALID_VALUE);
    cr_assert(strstr(fopt_last_error(), "INT64_MAX"), "message: %s", fopt_last_error());
    cr_assert_eq(fopt_step_ex(p->opt, &o, 0), FOPT_ERROR_INVALID_VALUE);
    gt_expect_snapshot(p, p->opt, &before, "refused eager steps");
    cr_assert_eq(fopt_step_count(p->opt), INT64_MAX);
    gt_snapshot_free(&before);
    gt_dev_opts_free(&d);
    gt_problem_free(p);
}
#endif /* FOPT_TEST_KERNELS */
