/* The global gradient statistics (sum of squares, grad_norm, found_inf, clipping) of the GPU
 * object over many chunks and across tensors, against the reference and the fast CPU path bit for
 * bit and against an accurate sum computed here:
 *   - tensors of 1, 3, 8 * FOPT_CHUNK + 5 (vector path), 2 * FOPT_CHUNK + 3 (fp16) and 300001
 *     (unaligned: the scalar path) elements, fp32, bf16 and fp16 grads with magnitudes over 40
 *     decades: fopt_grad_sq_sum() and the _ref_multi / _cpu_multi sums identical, and within
 *     1e-12 (relative) of a compensated double sum; a step_ex with clipping, grad_scale,
 *     grad_norm and found_inf identical on the three paths (norm, flag, every param and state);
 *   - the same with an inf in the last chunk of the last tensor, a -inf in the first chunk of the
 *     first one and a NaN in the short last chunk of the 8 * FOPT_CHUNK + 5 one: found_inf on
 *     every path, nothing updated;
 *   - the sqsum rows of the known-answer table (tests/data/kat.txt) on the device.
 * Runs on the emulated device (and on a GPU); SKIP without either. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "gpu_util.h"
#include "kat.h"
#include "multi_tensor.h"

TestSuite(gpu_stats, .init = gt_require_device);

static const gt_spec stats_list[] = {
    {1, FOPT_FLOAT32, 0, 0},
    {3, FOPT_BFLOAT16, 0, 1},
    {8 * FOPT_CHUNK + 5, FOPT_FLOAT32, 0, 0},
    {2 * FOPT_CHUNK + 3, FOPT_FLOAT16, 0, 0},
    {300001, FOPT_FLOAT32, 0, 1},
};
#define STATS_COUNT (sizeof stats_list / sizeof stats_list[0])

/* Signed grads, magnitudes 10^U(-20, 20) (fp16: 10^U(-6, 4.5), its range), about 1 in 50 zero. */
static void wide_grads(gt_problem *p, test_rng *rng)
{
    for (size_t k = 0; k < p->count; k++) {
        const gt_spec *s = &p->spec[k];
        const double lo = s->dtype == FOPT_FLOAT16 ? -6.0 : -20.0, hi = s->dtype == FOPT_FLOAT16 ? 4.5 : 20.0;
        for (size_t i = 0; i < s->numel; i++) {
            double v = 0.0;
            if (test_rng_next(rng) % 50 != 0)
                v = (test_rng_next(rng) & 1 ? 1.0 : -1.0) * pow(10.0, lo + (hi - lo) * test_rng_uniform(rng));
            gt_put(p->grad[k], s->dtype, i, (float)v);
        }
    }
}

/* The sum of squares of the unscaled grads, Neumaier-compensated in double (error about 2 ulp,
 * whatever the order): the independent check of the fixed-order sums. */
static double accurate_sq_sum(const gt_problem *p, const float *scale)
{
    double s = 0.0, c = 0.0;
    for (size_t k = 0; k < p->count; k++)
        for (size_t i = 0; i < p->spec[k].numel; i++) {
            float u = gt_get(p->grad[k], p->spec[k].dtype, i);
            if (scale)
                u = u / *scale;
            const double x = (double)u * (double)u, t = s + x;
            c += fabs(s) >= fabs(x) ? (s - t) + x : (x - t) + s;
            s = t;
        }
    return s + c;
}

/* The three sums (device, reference, fast path) of p's current grads: identical, and near the
 * accurate sum when finite. Returns the sum. */
static double expect_sums(gt_problem *p, const gt_dev_opts *d, const float *scale, const char *where)
{
    double ref, cpu, dev;
    FOPT_OK(fopt_grad_sq_sum_ref_multi(p->host, p->count, scale, &ref));
    FOPT_OK(fopt_grad_sq_sum_cpu_multi(p->host, p->count, scale, &cpu));
    FOPT_OK(fopt_grad_sq_sum(p->opt, scale ? d->grad_scale : NULL, d->grad_sq_sum, 0));
    CUDA_OK(fopt_dev_synchronize());
    gt_download(&dev, d->grad_sq_sum, sizeof dev);
    cr_assert_eq(memcmp(&dev, &ref, 8), 0, "%s: device sum %a, reference %a", where, dev, ref);
    cr_assert_eq(memcmp(&cpu, &ref, 8), 0, "%s: fast-path sum %a, reference %a", where, cpu, ref);
    const double acc = accurate_sq_sum(p, scale);
    if (isfinite(acc))
        cr_assert_leq(fabs(ref - acc), 1e-12 * acc, "%s: sum %.17g, accurate %.17g (relative %.3g)", where, ref, acc,
                      fabs(ref - acc) / acc);
    else
        cr_assert(!isfinite(ref), "%s: a non-finite grad gave the finite sum %g", where, ref);
    return ref;
}

/* Param and state bytes of two reference-side problems (the fast path's twin against p). */
static void expect_same_host(const gt_problem *a, const gt_problem *b, const char *where)
{
    for (size_t k = 0; k < a->count; k++) {
        const size_t n = a->spec[k].numel, pb = n * gt_dtype_bytes(a->spec[k].dtype);
        cr_assert_eq(memcmp(a->param[k], b->param[k], pb), 0, "%s: tensor %zu: fast-path params differ", where, k);
        for (int s = 0; s < FOPT_MAX_STATES; s++)
            if (a->state[s] && a->state[s][k])
                cr_assert_eq(memcmp(a->state[s][k], b->state[s][k], n * sizeof(float)), 0,
                             "%s: tensor %zu: fast-path state %d differs", where, k, s);
    }
}

typedef struct stats_case {
    const char *name;
    bool scale;
    int tensor;   /* where the non-finite grad goes; -1: none */
    size_t index; /* its element (SIZE_MAX: the tensor's last) */
    float value;
} stats_case;

Test(gpu_stats, sums_norm_and_found_inf_over_many_chunks_and_tensors_equal_on_every_path)
{
    const stats_case cases[] = {
        {"finite grads", false, -1, 0, 0.0f},
        {"finite grads, grad_scale", true, -1, 0, 0.0f},
        {"inf in the last chunk of the last tensor", true, (int)STATS_COUNT - 1, SIZE_MAX, INFINITY},
        {"-inf in the first chunk of the first tensor", false, 0, 0, -INFINITY},
        {"NaN in the short last chunk of a long tensor", true, 2, 8 * FOPT_CHUNK + 2, NAN},
        {"finite grads after the skips", true, -1, 0, 0.0f},
    };
    gt_cfg cfg = gt_adam();
    gt_problem *p = gt_problem_make(&cfg, stats_list, STATS_COUNT, 61, true);
    gt_problem *fast = gt_problem_make(&cfg, stats_list, STATS_COUNT, 61, false); /* the same params */
    gt_dev_opts d;
    gt_dev_opts_make(&d);
    test_rng rng = test_rng_make(2026);
    int64_t fast_step = 0;
    const float scale = 4096.0f;
    gt_dev_set_scale(&d, scale);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const stats_case *sc = &cases[c];
        wide_grads(p, &rng);
        if (sc->tensor >= 0)
            gt_put(p->grad[sc->tensor], stats_list[sc->tensor].dtype,
                   sc->index == SIZE_MAX ? stats_list[sc->tensor].numel - 1 : sc->index, sc->value);
        gt_upload_grads(p);
        for (size_t k = 0; k < p->count; k++)
            memcpy(fast->grad[k], p->grad[k], stats_list[k].numel * gt_dtype_bytes(stats_list[k].dtype));
        const float *h_scale = sc->scale ? &scale : NULL;
        const double sum = expect_sums(p, &d, h_scale, sc->name);

        /* a step with clipping (active: the norms are huge), grad_norm and found_inf */
        float ref_norm = -1.0f, fast_norm = -2.0f;
        int32_t ref_inf = -1, fast_inf = -2;
        gt_dev_poison_outputs(&d);
        fopt_step_options dev = {.grad_scale = sc->scale ? d.grad_scale : NULL, .max_grad_norm = 1.0,
                                 .grad_norm = d.grad_norm, .found_inf = d.found_inf};
        fopt_step_options host = {.grad_scale = h_scale, .max_grad_norm = 1.0, .grad_norm = &ref_norm,
                                  .found_inf = &ref_inf};
        FOPT_OK(fopt_step_ex(p->opt, &dev, 0));
        gt_ref_step(p, &host);
        host.grad_norm = &fast_norm;
        host.found_inf = &fast_inf;
        gt_cfg fc = fast->cfg;
        gt_set_lr_wd(&fc, fast->lr[0], fast->wd[0]);
        FOPT_OK(fopt_adam_step_cpu_multi(&fc.a, fast_step + 1, fast->host, fast->count, &host));
        fast_step += !fast_inf;

        const float dev_norm = gt_dev_norm(&d), want_norm = (float)sqrt(sum);
        cr_assert_eq(memcmp(&ref_norm, &want_norm, 4), 0, "%s: reference grad_norm %a, sqrt of the sum %a", sc->name,
                     (double)ref_norm, (double)want_norm);
        cr_assert_eq(memcmp(&dev_norm, &ref_norm, 4), 0, "%s: device grad_norm %a, reference %a", sc->name,
                     (double)dev_norm, (double)ref_norm);
        cr_assert_eq(memcmp(&fast_norm, &ref_norm, 4), 0, "%s: fast-path grad_norm %a, reference %a", sc->name,
                     (double)fast_norm, (double)ref_norm);
        const int32_t want_inf = sc->tensor >= 0;
        cr_assert_eq(ref_inf, want_inf, "%s: reference found_inf %d", sc->name, ref_inf);
        cr_assert_eq(gt_dev_found_inf(&d), want_inf, "%s: device found_inf %d", sc->name, gt_dev_found_inf(&d));
        cr_assert_eq(fast_inf, want_inf, "%s: fast-path found_inf %d", sc->name, fast_inf);
        gt_check(p, p->opt, sc->name);
        expect_same_host(p, fast, sc->name);
    }
    cr_expect_eq(p->ref_step, 3, "three of six steps were skipped");
    cr_expect_eq(fast_step, 3);
    gt_dev_opts_free(&d);
    gt_problem_free(fast);
    gt_problem_free(p);
}

Test(gpu_stats, known_answer_sums_of_squares_on_the_device)
{
    size_t n;
    const kat_row *r = kat_rows("sqsum", -1, 1, 8, &n);
    gt_dev_opts d;
    gt_dev_opts_make(&d);
    for (size_t i = 0; i < n; i++) {
        kat_sqsum ks;
        kat_sqsum_make(&r[i], &ks);
        gt_spec *spec = calloc(ks.count, sizeof *spec);
        cr_assert_not_null(spec);
        for (size_t k = 0; k < ks.count; k++)
            spec[k] = (gt_spec){ks.tensors[k].numel, FOPT_FLOAT32, 0, (unsigned)(k % 2)};
        gt_cfg cfg = gt_adam();
        gt_problem *p = gt_problem_make(&cfg, spec, ks.count, 3, true);
        for (size_t k = 0; k < ks.count; k++)
            memcpy(p->grad[k], ks.tensors[k].grad, ks.tensors[k].numel * sizeof(float));
        gt_upload_grads(p);
        if (ks.scale)
            gt_dev_set_scale(&d, *ks.scale);
        double got;
        FOPT_OK(fopt_grad_sq_sum(p->opt, ks.scale ? d.grad_scale : NULL, d.grad_sq_sum, 0));
        CUDA_OK(fopt_dev_synchronize());
        gt_download(&got, d.grad_sq_sum, sizeof got);
        cr_expect_eq(kat_f64_bits(got), r[i].out[0], "kat.txt:%d: %s: device sum %a, want %a", r[i].line, r[i].text,
                     got, ks.want);
        fopt_step_options o = {.grad_scale = ks.scale ? d.grad_scale : NULL, .grad_norm = d.grad_norm};
        FOPT_OK(fopt_step_ex(p->opt, &o, 0));
        const float norm = gt_dev_norm(&d), want = (float)sqrt(ks.want);
        cr_expect_eq(memcmp(&norm, &want, 4), 0, "kat.txt:%d: device grad_norm %a, want %a", r[i].line, (double)norm,
                     (double)want);
        gt_problem_free(p);
        free(spec);
        kat_sqsum_free(&ks);
    }
    gt_dev_opts_free(&d);
}
