/* The GPU optimizer object's 0.2 training features (issues 9 and 10), against the CPU reference
 * bit for bit:
 *   - parameter groups: per-group lr and weight decay, fopt_set_lr for every group, invalid
 *     values rejected without a change, checkpoints carrying every group's values;
 *   - fopt_step_ex options through device pointers: AMP loss scaling, clipping (active and
 *     inactive), grad_norm and found_inf outputs, inf/NaN skips that do not count (bias
 *     correction continues from the last real step), zero_grads, fopt_grad_sq_sum and an
 *     externally reduced grad_sq_sum;
 *   - capturable steps: fopt_step / fopt_step_ex captured in a graph and replayed 100 times with
 *     an lr schedule written into fopt_lr_device(), equal to 100 eager steps;
 *   - fopt_rebind: new addresses, rejection of any other list, alignment changes, graphs;
 *   - checkpoint rejection decided by the tensor list's hash, not only by sizes.
 * Every test reports SKIP without a device; the reference's groups are stepped by one
 * fopt_*_step_ref_multi() call per group with that group's lr and weight decay. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "gpu_util.h"
#include "multi_tensor.h"

TestSuite(gpu_groups, .init = gt_require_device);
TestSuite(gpu_options, .init = gt_require_device);
TestSuite(gpu_capture, .init = gt_require_device);
TestSuite(gpu_rebind, .init = gt_require_device);
TestSuite(gpu_list_hash, .init = gt_require_device);

/* Three groups over five tensors of two dtypes, group 1 in the middle of the list. */
static const gt_spec group_list[] = {
    {100, FOPT_FLOAT32, 0, 0}, {4097, FOPT_FLOAT16, 2, 1}, {33, FOPT_FLOAT32, 1, 3},
    {FOPT_CHUNK + 5, FOPT_FLOAT32, 2, 0}, {7, FOPT_FLOAT16, 0, 0},
};
#define GROUP_COUNT (sizeof group_list / sizeof group_list[0])

static void plain_steps(gt_problem *p, fopt_optimizer *opt, int n)
{
    for (int i = 0; i < n; i++) {
        gt_new_grads(p);
        FOPT_OK(fopt_step(opt, 0));
        gt_ref_step(p, NULL);
    }
}

static gt_cfg with_master(gt_cfg c)
{
    gt_precision(&c)->master_weights = true;
    return c;
}

/* ---- parameter groups ----------------------------------------------------------------------- */

static void set_group(gt_problem *p, uint32_t g, double lr, double wd)
{
    if (lr >= 0) {
        FOPT_OK(fopt_set_group_lr(p->opt, g, lr));
        p->lr[g] = lr;
    }
    if (wd >= 0) {
        FOPT_OK(fopt_set_group_weight_decay(p->opt, g, wd));
        p->wd[g] = wd;
    }
}

Test(gpu_groups, each_group_steps_with_its_own_lr_and_weight_decay_as_per_group_reference_calls)
{
    gt_cfg l2 = gt_adam();
    l2.a.weight_decay = 0.05; /* L2 into the gradient */
    const gt_cfg cfgs[] = {gt_adamw(), l2, gt_rmsprop()};
    for (size_t c = 0; c < 3; c++)
        for (int capturable = 0; capturable < 2; capturable++) {
            gt_cfg cfg = with_master(cfgs[c]);
            *gt_capturable(&cfg) = capturable;
            char where[64];
            snprintf(where, sizeof where, "optimizer %zu, capturable %d", c, capturable);
            gt_problem *p = gt_problem_make(&cfg, group_list, GROUP_COUNT, 10 + c, true);
            set_group(p, 0, 3e-3, -1);
            set_group(p, 2, 2e-2, 0.2);
            set_group(p, 1, -1, 0.3);
            plain_steps(p, p->opt, 3);
            gt_check(p, p->opt, where);
            /* fopt_set_lr sets every group's lr; weight decays stay per group */
            FOPT_OK(fopt_set_lr(p->opt, 5e-3));
            gt_ref_set_lr(p, 5e-3);
            plain_steps(p, p->opt, 2);
            gt_check(p, p->opt, where);
            set_group(p, 1, 1e-2, 0.0);
            set_group(p, 0, -1, 0.01);
            plain_steps(p, p->opt, 2);
            gt_check(p, p->opt, where);
            gt_problem_free(p);
        }
}

Test(gpu_groups, a_group_with_no_tensor_and_unused_groups_can_be_set)
{
    gt_cfg cfg = gt_adamw();
    gt_problem *p = gt_problem_make(&cfg, group_list, GROUP_COUNT, 3, true);
    set_group(p, FOPT_MAX_GROUPS - 1, 1.0, 0.5); /* beyond the list's groups: kept, unused */
    set_group(p, 1, 0.0, -1);                    /* lr 0: group 1 only decays... by lr*wd = 0 */
    plain_steps(p, p->opt, 3);
    gt_check(p, p->opt, "groups beyond the list");
    gt_problem_free(p);
}

/* A call that must fail with INVALID_VALUE and change nothing observable. */
#define EXPECT_REJECTED_UNCHANGED(p, call)                                                         \
    do {                                                                                           \
        gt_snapshot b_, a_;                                                                        \
        gt_snapshot_take(&b_, (p), (p)->opt);                                                      \
        cr_expect_eq((call), FOPT_ERROR_INVALID_VALUE, "%s accepted", #call);                      \
        gt_snapshot_take(&a_, (p), (p)->opt);                                                      \
        gt_snapshot_expect_equal(&a_, &b_, #call);                                                 \
        gt_snapshot_free(&a_);                                                                     \
        gt_snapshot_free(&b_);                                                                     \
    } while (0)

Test(gpu_groups, invalid_groups_and_values_are_rejected_and_change_nothing)
{
    for (int capturable = 0; capturable < 2; capturable++) {
        gt_cfg cfg = gt_adamw();
        *gt_capturable(&cfg) = capturable;
        gt_problem *p = gt_problem_make(&cfg, group_list, GROUP_COUNT, 4, true);
        set_group(p, 2, 2e-2, 0.2);
        plain_steps(p, p->opt, 2);
        fopt_optimizer *o = p->opt;
        EXPECT_REJECTED_UNCHANGED(p, fopt_set_lr(o, NAN));
        EXPECT_REJECTED_UNCHANGED(p, fopt_set_lr(o, -1e-3));
        EXPECT_REJECTED_UNCHANGED(p, fopt_set_lr(o, INFINITY));
        EXPECT_REJECTED_UNCHANGED(p, fopt_set_lr(o, 1e39)); /* finite double, infinite float step */
        EXPECT_REJECTED_UNCHANGED(p, fopt_set_group_lr(o, 0, NAN));
        EXPECT_REJECTED_UNCHANGED(p, fopt_set_group_lr(o, 2, -0.5));
        EXPECT_REJECTED_UNCHANGED(p, fopt_set_group_lr(o, 1, INFINITY));
        EXPECT_REJECTED_UNCHANGED(p, fopt_set_group_lr(o, FOPT_MAX_GROUPS, 1e-3));
        EXPECT_REJECTED_UNCHANGED(p, fopt_set_group_lr(o, UINT32_MAX, 1e-3));
        EXPECT_REJECTED_UNCHANGED(p, fopt_set_group_weight_decay(o, 0, NAN));
        EXPECT_REJECTED_UNCHANGED(p, fopt_set_group_weight_decay(o, 2, -1.0));
        EXPECT_REJECTED_UNCHANGED(p, fopt_set_group_weight_decay(o, 1, INFINITY));
        EXPECT_REJECTED_UNCHANGED(p, fopt_set_group_weight_decay(o, FOPT_MAX_GROUPS, 0.1));
        /* AdamW: 1 - lr*wd must stay a finite float */
        EXPECT_REJECTED_UNCHANGED(p, fopt_set_group_weight_decay(o, 2, 1e300));
        /* the reference still agrees: no group value moved */
        plain_steps(p, p->opt, 2);
        gt_check(p, p->opt, capturable ? "capturable, after rejected values" : "after rejected values");
        gt_problem_free(p);
    }
}

Test(gpu_groups, checkpoint_carries_every_groups_lr_and_weight_decay)
{
    for (int capturable = 0; capturable < 2; capturable++) {
        gt_cfg cfg = with_master(gt_adamw());
        *gt_capturable(&cfg) = capturable;
        gt_problem *p = gt_problem_make(&cfg, group_list, GROUP_COUNT, 5, true);
        set_group(p, 0, 4e-3, 0.02);
        set_group(p, 1, 6e-3, 0.0);
        set_group(p, 2, 1e-2, 0.3);
        plain_steps(p, p->opt, 2);
        size_t size;
        unsigned char *ckpt = gt_save(p->opt, &size);
        /* a fresh optimizer with the config's lr and wd everywhere takes the groups' values */
        fopt_optimizer *b;
        FOPT_OK(gt_create(&cfg, p->dev, GROUP_COUNT, &b));
        FOPT_OK(fopt_state_load(b, ckpt, size));
        size_t size_b;
        unsigned char *again = gt_save(b, &size_b);
        cr_expect_eq(memcmp(again, ckpt, size), 0, "save after load differs");
        fopt_destroy(p->opt);
        p->opt = b;
        plain_steps(p, p->opt, 3);
        gt_check(p, p->opt, "restored groups");
        free(ckpt);
        free(again);
        gt_problem_free(p);
    }
}

/* ---- step options --------------------------------------------------------------------------- */

static const gt_spec option_list[] = {
    {3, FOPT_FLOAT32, 0, 0}, {FOPT_CHUNK + 5, FOPT_BFLOAT16, 0, 1}, {100, FOPT_FLOAT32, 0, 1}, {64, FOPT_FLOAT16, 0, 0},
};
#define OPTION_COUNT (sizeof option_list / sizeof option_list[0])

typedef struct option_combo {
    bool scale, norm, inf, zero, external;
    double max_norm;
} option_combo;

/* One combination's options over these inputs and outputs. */
static fopt_step_options options_over(const option_combo *c, const float *scale, float *norm, int32_t *inf,
                                      const double *sq_sum)
{
    fopt_step_options o;
    memset(&o, 0, sizeof o);
    o.grad_scale = c->scale ? scale : NULL;
    o.max_grad_norm = c->max_norm;
    o.grad_norm = c->norm ? norm : NULL;
    o.found_inf = c->inf ? inf : NULL;
    o.zero_grads = c->zero;
    o.grad_sq_sum = c->external ? sq_sum : NULL;
    return o;
}

/* The device options and the reference's host options of one combination. */
static void options_of(const option_combo *c, const gt_dev_opts *d, float scale, double ext, float *h_norm,
                       int32_t *h_inf, fopt_step_options *dev, fopt_step_options *host, float *h_scale,
                       double *h_ext)
{
    *h_scale = scale;
    *h_ext = ext;
    *dev = options_over(c, d->grad_scale, d->grad_norm, d->found_inf, d->grad_sq_sum);
    *host = options_over(c, h_scale, h_norm, h_inf, h_ext);
}

static void expect_outputs(const option_combo *c, const gt_dev_opts *d, float h_norm, int32_t h_inf,
                           const char *where)
{
    if (c->norm) {
        float g = gt_dev_norm(d);
        cr_assert_eq(memcmp(&g, &h_norm, 4), 0, "%s: grad_norm %.9g, reference %.9g", where, (double)g,
                     (double)h_norm);
    }
    if (c->inf)
        cr_assert_eq(gt_dev_found_inf(d), h_inf, "%s: found_inf %d, reference %d", where, gt_dev_found_inf(d), h_inf);
}

Test(gpu_options, every_option_combination_matches_the_reference_bit_for_bit)
{
    const double norms[] = {0.0, 0.05, 1e6}; /* none, active, inactive */
    int combos = 0;
    for (int bits = 0; bits < 32; bits++)
        for (int m = 0; m < 3; m++) {
            option_combo c = {bits & 1, bits & 2, bits & 4, bits & 8, bits & 16, norms[m]};
            gt_cfg cfg = with_master(bits & 1 ? gt_adamw() : gt_rmsprop());
            gt_problem *p = gt_problem_make(&cfg, option_list, OPTION_COUNT, 100 + (uint64_t)bits, true);
            gt_dev_opts d;
            gt_dev_opts_make(&d);
            char where[96];
            snprintf(where, sizeof where, "scale %d norm %d inf %d zero %d external %d max_norm %g", c.scale,
                     c.norm, c.inf, c.zero, c.external, c.max_norm);
            for (int s = 0; s < 3; s++) {
                gt_new_grads(p);
                const float scale = s == 1 ? 4096.0f : 256.0f; /* the loss scale changes */
                double ext = 0.0;
                if (c.external) /* as if 4 ranks had the same grads */
                    FOPT_OK(fopt_grad_sq_sum_ref_multi(p->host, p->count, c.scale ? &scale : NULL, &ext));
                ext *= 4.0;
                gt_dev_set_scale(&d, scale);
                gt_dev_set_sq_sum(&d, ext);
                gt_dev_poison_outputs(&d);
                fopt_step_options dev, host;
                float h_scale, h_norm = 0.0f;
                int32_t h_inf = 0;
                double h_ext;
                options_of(&c, &d, scale, ext, &h_norm, &h_inf, &dev, &host, &h_scale, &h_ext);
                FOPT_OK(fopt_step_ex(p->opt, &dev, 0));
                gt_ref_step(p, &host);
                expect_outputs(&c, &d, h_norm, h_inf, where);
            }
            gt_check(p, p->opt, where);
            gt_dev_opts_free(&d);
            gt_problem_free(p);
            combos++;
        }
    cr_expect_eq(combos, 96);
}

Test(gpu_options, a_step_skipped_on_inf_does_not_count_and_bias_correction_continues_from_the_last_real_step)
{
    /* Plain steps (the host knows the count), then a checked step that finds an inf, then checked
     * steps, plain steps, and a NaN in a bf16 grad: every phase equal to the reference, whose
     * step numbers skip nothing. */
    gt_cfg cfgs[2] = {with_master(gt_adamw()), gt_adam()};
    for (int c = 0; c < 2; c++) {
        gt_problem *p = gt_problem_make(&cfgs[c], option_list, OPTION_COUNT, 7 + c, true);
        gt_dev_opts d;
        gt_dev_opts_make(&d);
        int32_t h_inf = 0;
        fopt_step_options dev = {.grad_scale = d.grad_scale, .found_inf = d.found_inf};
        float h_scale = 1.0f;
        fopt_step_options host = {.grad_scale = &h_scale, .found_inf = &h_inf};

        plain_steps(p, p->opt, 3);
        gt_check(p, p->opt, "three plain steps");
        gt_new_grads(p);
        gt_set_grad(p, 2, 17, INFINITY);
        FOPT_OK(fopt_step_ex(p->opt, &dev, 0));
        cr_assert_eq(gt_ref_step(p, &host), 1);
        cr_assert_eq(gt_dev_found_inf(&d), 1, "the inf was not found");
        cr_assert_eq(fopt_step_count(p->opt), 3, "a skipped step counted: %lld", (long long)fopt_step_count(p->opt));
        gt_check(p, p->opt, "skipped step after plain steps");
        for (int s = 0; s < 3; s++) {
            gt_new_grads(p);
            FOPT_OK(fopt_step_ex(p->opt, &dev, 0));
            cr_assert_eq(gt_ref_step(p, &host), 0);
            cr_assert_eq(gt_dev_found_inf(&d), 0);
        }
        gt_check(p, p->opt, "checked steps after the skip");
        plain_steps(p, p->opt, 2);
        gt_check(p, p->opt, "plain steps after checked ones");
        gt_new_grads(p);
        gt_set_grad(p, 1, FOPT_CHUNK + 1, NAN); /* bf16 grad, second statistics chunk */
        FOPT_OK(fopt_step_ex(p->opt, &dev, 0));
        cr_assert_eq(gt_ref_step(p, &host), 1);
        cr_assert_eq(gt_dev_found_inf(&d), 1, "the NaN was not found");
        plain_steps(p, p->opt, 1);
        gt_check(p, p->opt, "NaN skip then a plain step");
        cr_expect_eq(fopt_step_count(p->opt), 9);
        gt_dev_opts_free(&d);
        gt_problem_free(p);
    }
}

Test(gpu_options, skips_before_the_first_real_step_and_in_a_row_do_not_count)
{
    gt_cfg cfg = gt_adam();
    gt_problem *p = gt_problem_make(&cfg, option_list, OPTION_COUNT, 9, true);
    gt_dev_opts d;
    gt_dev_opts_make(&d);
    int32_t h_inf = 0;
    fopt_step_options dev = {.found_inf = d.found_inf, .max_grad_norm = 1.0};
    fopt_step_options host = {.found_inf = &h_inf, .max_grad_norm = 1.0};
    for (int s = 0; s < 8; s++) {
        gt_new_grads(p);
        if (s == 0 || s == 1 || s == 4 || s == 5)
            gt_set_grad(p, s % 4, 0, s & 1 ? -INFINITY : NAN);
        FOPT_OK(fopt_step_ex(p->opt, &dev, 0));
        gt_ref_step(p, &host);
        cr_assert_eq(gt_dev_found_inf(&d), h_inf, "step %d", s);
        cr_assert_eq(fopt_step_count(p->opt), p->ref_step, "step %d", s);
    }
    gt_check(p, p->opt, "skips in a row");
    cr_expect_eq(fopt_step_count(p->opt), 4);
    gt_dev_opts_free(&d);
    gt_problem_free(p);
}

Test(gpu_options, zero_grads_writes_zero_to_every_grad_after_reading_it)
{
    gt_cfg cfg = with_master(gt_adamw());
    gt_problem *p = gt_problem_make(&cfg, option_list, OPTION_COUNT, 12, true);
    fopt_step_options o = {.zero_grads = true};
    for (int s = 0; s < 2; s++) {
        gt_new_grads(p);
        FOPT_OK(fopt_step_ex(p->opt, &o, 0));
        gt_ref_step(p, &o);
        for (size_t k = 0; k < p->count; k++)
            for (size_t i = 0; i < p->spec[k].numel; i++)
                cr_assert_eq(gt_get(p->grad[k], p->spec[k].dtype, i), 0.0f); /* the reference zeroed them */
        gt_check(p, p->opt, "zero_grads"); /* device grads equal the zeroed host grads */
    }
    gt_problem_free(p);
}

Test(gpu_options, steps_over_a_list_of_empty_tensors_count_on_the_host_and_on_the_device)
{
    /* No step launch at all: the device count must still advance (the prologue stores it). */
    fopt_tensor t[2] = {{NULL, NULL, 0, FOPT_FLOAT32, 0}, {NULL, NULL, 0, FOPT_BFLOAT16, 1}};
    gt_dev_opts d;
    gt_dev_opts_make(&d);
    for (int capturable = 0; capturable < 2; capturable++) {
        fopt_adam_config a = fopt_adam_config_default();
        a.capturable = capturable;
        fopt_optimizer *opt;
        FOPT_OK(fopt_adam_create(&opt, &a, t, 2));
        FOPT_OK(fopt_step(opt, 0));
        fopt_step_options o = {.found_inf = d.found_inf, .grad_norm = d.grad_norm, .max_grad_norm = 1.0};
        FOPT_OK(fopt_step_ex(opt, &o, 0));
        cr_expect_eq(gt_dev_found_inf(&d), 0);
        cr_expect_eq(gt_dev_norm(&d), 0.0f);
        FOPT_OK(fopt_step(opt, 0));
        cr_expect_eq(fopt_step_count(opt), 3, "capturable %d: %lld steps counted", capturable,
                     (long long)fopt_step_count(opt));
        fopt_destroy(opt);
    }
    gt_dev_opts_free(&d);
}

/* Many small tensors (more chunk partials than the 1024 lanes) and some crossing chunks. */
static gt_spec *sq_sum_list(size_t *count)
{
    const size_t n = 1100;
    gt_spec *s = calloc(n, sizeof *s);
    cr_assert_not_null(s);
    test_rng r = test_rng_make(5);
    for (size_t k = 0; k < n; k++) {
        size_t numel = 1 + test_rng_next(&r) % 40;
        if (k % 97 == 0)
            numel = FOPT_CHUNK + 1 + test_rng_next(&r) % 5000;
        s[k] = (gt_spec){numel, (fopt_dtype)(k % 3), 0, (unsigned)(k % 4 == 1)};
    }
    *count = n;
    return s;
}

Test(gpu_options, grad_sq_sum_equals_the_reference_bit_for_bit)
{
    size_t count;
    gt_spec *spec = sq_sum_list(&count);
    gt_cfg cfg = gt_adam();
    gt_problem *p = gt_problem_make(&cfg, spec, count, 21, true);
    gt_dev_opts d;
    gt_dev_opts_make(&d);
    for (int s = 0; s < 2; s++) {
        gt_new_grads(p);
        const float scale = 1024.0f;
        gt_dev_set_scale(&d, scale);
        for (int with_scale = 0; with_scale < 2; with_scale++) {
            double want, got;
            FOPT_OK(fopt_grad_sq_sum_ref_multi(p->host, count, with_scale ? &scale : NULL, &want));
            FOPT_OK(fopt_grad_sq_sum(p->opt, with_scale ? d.grad_scale : NULL, d.grad_sq_sum, 0));
            CUDA_OK(fopt_dev_synchronize());
            gt_download(&got, d.grad_sq_sum, sizeof got);
            cr_assert_eq(memcmp(&got, &want, 8), 0, "fopt_grad_sq_sum %.17g, reference %.17g", got, want);
            /* and a step's grad_norm is its float square root */
            float h_norm = 0.0f;
            fopt_step_options dev = {.grad_scale = with_scale ? d.grad_scale : NULL, .grad_norm = d.grad_norm};
            fopt_step_options host = {.grad_scale = with_scale ? &scale : NULL, .grad_norm = &h_norm};
            FOPT_OK(fopt_step_ex(p->opt, &dev, 0));
            gt_ref_step(p, &host);
            float g = gt_dev_norm(&d);
            cr_assert_eq(memcmp(&g, &h_norm, 4), 0);
            cr_assert_eq(h_norm, (float)sqrt(want));
        }
    }
    gt_check(p, p->opt, "after grad_sq_sum steps");
    /* an inf anywhere makes the sum non-finite */
    gt_set_grad(p, 500, 0, INFINITY);
    double got;
    FOPT_OK(fopt_grad_sq_sum(p->opt, NULL, d.grad_sq_sum, 0));
    CUDA_OK(fopt_dev_synchronize());
    gt_download(&got, d.grad_sq_sum, sizeof got);
    cr_expect(!isfinite(got), "an inf grad gave a finite sum %g", got);
    cr_expect_eq(fopt_grad_sq_sum(p->opt, NULL, NULL, 0), FOPT_ERROR_INVALID_VALUE);
    gt_dev_opts_free(&d);
    gt_problem_free(p);
    free(spec);
}

Test(gpu_options, an_external_grad_sq_sum_decides_clipping_norm_and_skipping)
{
    gt_cfg cfg = with_master(gt_adamw());
    gt_problem *p = gt_problem_make(&cfg, option_list, OPTION_COUNT, 31, true);
    gt_dev_opts d;
    gt_dev_opts_make(&d);
    const double sums[] = {0.25, 1e4, 123.456, INFINITY, 7.0, NAN, 1e-3};
    for (size_t s = 0; s < sizeof sums / sizeof sums[0]; s++) {
        gt_new_grads(p);
        double ext = sums[s];
        float h_norm = 0.0f;
        int32_t h_inf = 0;
        gt_dev_set_sq_sum(&d, ext);
        gt_dev_poison_outputs(&d);
        fopt_step_options dev = {.max_grad_norm = 2.0, .grad_norm = d.grad_norm, .found_inf = d.found_inf,
                                 .grad_sq_sum = d.grad_sq_sum};
        fopt_step_options host = {.max_grad_norm = 2.0, .grad_norm = &h_norm, .found_inf = &h_inf, .grad_sq_sum = &ext};
        FOPT_OK(fopt_step_ex(p->opt, &dev, 0));
        gt_ref_step(p, &host);
        cr_assert_eq(h_inf, !isfinite(ext));
        option_combo c = {.norm = !h_inf, .inf = true};
        expect_outputs(&c, &d, h_norm, h_inf, "external sum");
    }
    gt_check(p, p->opt, "external sums");
    cr_expect_eq(fopt_step_count(p->opt), 5);
    gt_dev_opts_free(&d);
    gt_problem_free(p);
}

/* ---- capturable steps ----------------------------------------------------------------------- */

static const gt_spec capture_list[] = {
    {5, FOPT_FLOAT32, 0, 0}, {3000, FOPT_BFLOAT16, 1, 1}, {64, FOPT_FLOAT32, 1, 0}, {257, FOPT_FLOAT16, 0, 3},
};
#define CAPTURE_COUNT (sizeof capture_list / sizeof capture_list[0])

/* lr of group g at replay i: a warm-up then a cosine, per group. */
static double schedule(int i, uint32_t g) { return (g + 1) * 1e-3 * (i < 10 ? (i + 1) / 10.0 : 0.5 * (1 + cos(i / 30.0))); }

typedef enum { CAPTURE_STEP, CAPTURE_STEP_EX_AMP, CAPTURE_STEP_EX_ALL } capture_kind;

/* A (capturable) replays one captured step 100 times with the lr written into
 * fopt_lr_device() before each replay; B (eager, not capturable) takes 100 steps with
 * fopt_set_group_lr before each; both are checked against the reference and their checkpoints
 * compared. Replays 37 and 38 see an inf (38: in a fp16 grad): they must not count. */
static void capture_case(gt_cfg cfg, capture_kind kind)
{
    const int replays = 100;
    *gt_capturable(&cfg) = true;
    gt_problem *a = gt_problem_make(&cfg, capture_list, CAPTURE_COUNT, 50, true);
    *gt_capturable(&cfg) = false;
    gt_problem *b = gt_problem_make(&cfg, capture_list, CAPTURE_COUNT, 50, true);
    cr_assert_not_null(fopt_lr_device(a->opt));
    cr_assert_null(fopt_lr_device(b->opt), "an optimizer that is not capturable has a device lr");
    gt_dev_opts da, db;
    gt_dev_opts_make(&da);
    gt_dev_opts_make(&db);
    float h_scale = 512.0f, h_norm = 0.0f;
    int32_t h_inf = 0;
    fopt_step_options oa = {0}, ob = {0}, host = {0};
    if (kind != CAPTURE_STEP) {
        oa = (fopt_step_options){.grad_scale = da.grad_scale, .found_inf = da.found_inf};
        ob = (fopt_step_options){.grad_scale = db.grad_scale, .found_inf = db.found_inf};
        host = (fopt_step_options){.grad_scale = &h_scale, .found_inf = &h_inf};
    }
    if (kind == CAPTURE_STEP_EX_ALL) {
        oa.max_grad_norm = ob.max_grad_norm = host.max_grad_norm = 0.5;
        oa.grad_norm = da.grad_norm;
        ob.grad_norm = db.grad_norm;
        host.grad_norm = &h_norm;
        oa.zero_grads = ob.zero_grads = host.zero_grads = true;
    }

    cudaStream_t stream;
    CUDA_OK(fopt_dev_stream_create(&stream));
    fopt_dev_graph *graph = NULL;
    CUDA_OK(fopt_dev_capture_begin(stream));
    fopt_status st = kind == CAPTURE_STEP ? fopt_step(a->opt, stream) : fopt_step_ex(a->opt, &oa, stream);
    cudaError_t end = fopt_dev_capture_end(stream, &graph);
    cr_assert_eq(st, FOPT_SUCCESS, "capturing the step failed (a synchronising call?): %s", fopt_last_error());
    cr_assert_eq(end, cudaSuccess, "ending the capture: %s", fopt_dev_error_string(end));
    cr_assert_eq(fopt_step_count(a->opt), 0, "capturing ran the step");
    gt_check(a, a->opt, "after the capture"); /* nothing ran */

    /* the list's two groups follow the schedule; the other 62 keep the config's lr */
    double lr[FOPT_MAX_GROUPS];
    for (uint32_t g = 0; g < FOPT_MAX_GROUPS; g++)
        lr[g] = gt_lr(&cfg);
    for (int i = 0; i < replays; i++) {
        for (uint32_t g = 0; g < 2; g++) {
            lr[g] = schedule(i, g);
            a->lr[g] = b->lr[g] = lr[g];
        }
        gt_upload(fopt_lr_device(a->opt), lr, 2 * sizeof lr[0]);
        for (uint32_t g = 0; g < 2; g++)
            FOPT_OK(fopt_set_group_lr(b->opt, g, lr[g]));
        gt_new_grads(a);
        gt_new_grads(b);
        if (i == 37) {
            gt_set_grad(a, 1, 2999, INFINITY);
            gt_set_grad(b, 1, 2999, INFINITY);
        }
        if (i == 38) {
            gt_set_grad(a, 3, 0, -INFINITY);
            gt_set_grad(b, 3, 0, -INFINITY);
        }
        h_scale = i < 50 ? 512.0f : 1024.0f;
        gt_dev_set_scale(&da, h_scale);
        gt_dev_set_scale(&db, h_scale);
        CUDA_OK(fopt_dev_synchronize());
        CUDA_OK(fopt_dev_graph_launch(graph, stream));
        CUDA_OK(fopt_dev_stream_synchronize(stream));
        FOPT_OK(kind == CAPTURE_STEP ? fopt_step(b->opt, 0) : fopt_step_ex(b->opt, &ob, 0));
        CUDA_OK(fopt_dev_synchronize());
        int found = gt_ref_step(a, kind == CAPTURE_STEP ? NULL : &host);
        gt_ref_step(b, kind == CAPTURE_STEP ? NULL : &host);
        if (kind != CAPTURE_STEP) {
            cr_assert_eq(found, i == 37 || i == 38, "replay %d", i);
            cr_assert_eq(gt_dev_found_inf(&da), found, "replay %d: found_inf", i);
            cr_assert_eq(gt_dev_found_inf(&db), found, "replay %d: eager found_inf", i);
        }
        if (kind == CAPTURE_STEP_EX_ALL && !found) {
            float ga = gt_dev_norm(&da);
            cr_assert_eq(memcmp(&ga, &h_norm, 4), 0, "replay %d: grad_norm %.9g, reference %.9g", i, (double)ga,
                         (double)h_norm);
        }
        if (i % 25 == 0)
            gt_check(a, a->opt, "replays");
    }
    const int64_t expect = kind == CAPTURE_STEP ? replays : replays - 2;
    cr_assert_eq(fopt_step_count(a->opt), expect, "step count after %d replays: %lld", replays,
                 (long long)fopt_step_count(a->opt));
    gt_check(a, a->opt, "100 replays");
    gt_check(b, b->opt, "100 eager steps");
    size_t sa, sb;
    unsigned char *ca = gt_save(a->opt, &sa), *cb = gt_save(b->opt, &sb);
    cr_assert_eq(sa, sb);
    cr_expect_eq(memcmp(ca, cb, sa), 0, "checkpoints of the replayed and the eager optimizer differ");

    /* A checkpoint of the capturable optimizer restores a capturable optimizer: its device lr and
     * step count, and a new capture that continues bit for bit. */
    gt_snapshot params_now;
    gt_snapshot_take(&params_now, a, NULL);
    test_rng rng = a->rng;
    for (int i = 0; i < 3; i++) {
        gt_new_grads(a);
        CUDA_OK(fopt_dev_graph_launch(graph, stream));
        CUDA_OK(fopt_dev_stream_synchronize(stream));
    }
    gt_snapshot a3;
    gt_snapshot_take(&a3, a, a->opt);
    fopt_dev_graph_destroy(graph);
    *gt_capturable(&cfg) = true;
    gt_restore(a, &cfg, &params_now, ca, sa);
    cr_expect_eq(fopt_step_count(a->opt), a->ref_step);
    double back[FOPT_MAX_GROUPS];
    gt_download(back, fopt_lr_device(a->opt), sizeof back);
    cr_expect_eq(memcmp(back, lr, sizeof lr), 0, "the restored device lr differs");
    CUDA_OK(fopt_dev_capture_begin(stream));
    st = kind == CAPTURE_STEP ? fopt_step(a->opt, stream) : fopt_step_ex(a->opt, &oa, stream);
    end = fopt_dev_capture_end(stream, &graph);
    cr_assert_eq(st, FOPT_SUCCESS, "%s", fopt_last_error());
    cr_assert_eq(end, cudaSuccess);
    a->rng = rng;
    for (int i = 0; i < 3; i++) {
        gt_new_grads(a);
        CUDA_OK(fopt_dev_graph_launch(graph, stream));
        CUDA_OK(fopt_dev_stream_synchronize(stream));
    }
    gt_expect_snapshot(a, a->opt, &a3, "restored capturable optimizer, three replays");
    gt_snapshot_free(&params_now);
    gt_snapshot_free(&a3);
    fopt_dev_graph_destroy(graph);
    CUDA_OK(fopt_dev_stream_destroy(stream));
    free(ca);
    free(cb);
    gt_dev_opts_free(&da);
    gt_dev_opts_free(&db);
    gt_problem_free(a);
    gt_problem_free(b);
}

Test(gpu_capture, captured_step_replayed_100_times_with_an_lr_schedule_equals_eager_steps)
{
    capture_case(with_master(gt_adamw()), CAPTURE_STEP);
}

Test(gpu_capture, captured_step_ex_with_grad_scale_and_found_inf_equals_eager_steps_and_skips_do_not_count)
{
    capture_case(with_master(gt_adamw()), CAPTURE_STEP_EX_AMP);
}

Test(gpu_capture, captured_step_ex_with_clipping_norm_and_zero_grads_equals_eager_steps)
{
    capture_case(gt_rmsprop(), CAPTURE_STEP_EX_ALL);
}

Test(gpu_capture, synchronising_calls_are_refused_during_a_capture_on_the_emulated_device)
{
    /* The premise of the capture tests, and the header's rule ("CUDA graphs"): every call but the
     * steps, fopt_grad_sq_sum and fopt_rebind synchronises or copies synchronously, so none is
     * captured; inside a capture each fails and changes nothing. */
    if (!fopt_dev_emulated())
        cr_skip_test("a failed capture invalidates the stream on a real GPU");
    gt_cfg cfg = gt_adam();
    cfg.a.capturable = true;
    gt_problem *p = gt_problem_make(&cfg, capture_list, CAPTURE_COUNT, 2, true);
    size_t size;
    unsigned char *ckpt = gt_save(p->opt, &size), *out = calloc(size, 1); /* step 0: a load would show */
    plain_steps(p, p->opt, 1);
    gt_snapshot before;
    gt_snapshot_take(&before, p, p->opt);
    float *buf = calloc(capture_list[0].numel, sizeof *buf);
    cr_assert(out && buf);
    cudaStream_t stream;
    CUDA_OK(fopt_dev_stream_create(&stream));
    CUDA_OK(fopt_dev_capture_begin(stream));
    fopt_optimizer *other = NULL;
    const struct {
        const char *call;
        fopt_status st;
    } calls[] = {
        {"fopt_set_lr", fopt_set_lr(p->opt, 1e-3)},
        {"fopt_set_group_lr", fopt_set_group_lr(p->opt, 1, 2e-3)},
        {"fopt_set_group_weight_decay", fopt_set_group_weight_decay(p->opt, 0, 0.5)},
        {"fopt_set_step_count", fopt_set_step_count(p->opt, 9)},
        {"fopt_state_load", fopt_state_load(p->opt, ckpt, size)},
        {"fopt_state_save", fopt_state_save(p->opt, out, size)},
        {"fopt_state_copy in", fopt_state_copy(p->opt, 0, FOPT_SLOT_EXP_AVG, buf, true)},
        {"fopt_state_copy out", fopt_state_copy(p->opt, 0, FOPT_SLOT_EXP_AVG, buf, false)},
        {"fopt_adam_create", gt_create(&cfg, p->dev, CAPTURE_COUNT, &other)},
    };
    int64_t count = fopt_step_count(p->opt); /* synchronises to read the device count */
    fopt_status step = fopt_step(p->opt, stream);
    fopt_dev_graph *g = NULL;
    CUDA_OK(fopt_dev_capture_end(stream, &g));
    for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++)
        cr_expect_eq(calls[i].st, FOPT_ERROR_CUDA, "%s inside a capture: %s", calls[i].call,
                     fopt_status_string(calls[i].st));
    cr_expect_null(other);
    cr_expect_eq(count, -1);
    cr_expect_eq(step, FOPT_SUCCESS, "%s", fopt_last_error());
    fopt_dev_graph_destroy(g);
    gt_expect_snapshot(p, p->opt, &before, "nothing ran or changed during the capture");
    gt_check(p, p->opt, "nothing ran during the capture");
    gt_snapshot_free(&before);
    CUDA_OK(fopt_dev_stream_destroy(stream));
    free(ckpt);
    free(out);
    free(buf);
    gt_problem_free(p);
}

Test(gpu_capture, the_emulated_device_refuses_to_capture_a_copy_to_or_from_host_memory)
{
    /* A graph's copy reads and writes its pointers at every replay: host memory would have to
     * outlive the graph. The emulated device refuses the capture, so that no library call can
     * rely on one (issue 16: fopt_rebind captured a copy from a buffer it freed at once). */
    if (!fopt_dev_emulated())
        cr_skip_test("a property of the emulated device");
    float host[4] = {1.0f, 2.0f, 3.0f, 4.0f}, back[4] = {0};
    float *dev = gt_dev_alloc(8 * sizeof(float));
    gt_upload(dev, host, sizeof host);
    cudaStream_t stream;
    CUDA_OK(fopt_dev_stream_create(&stream));
    CUDA_OK(fopt_dev_capture_begin(stream));
    cudaError_t h2d = fopt_dev_memcpy_async(dev, host, sizeof host, stream);
    cudaError_t d2h = fopt_dev_memcpy_async(back, dev, sizeof back, stream);
    cudaError_t d2d = fopt_dev_memcpy_async(dev + 4, dev, sizeof host, stream);
    fopt_dev_graph *g = NULL;
    CUDA_OK(fopt_dev_capture_end(stream, &g));
    cr_expect_eq(h2d, cudaErrorStreamCaptureUnsupported, "host to device: %s", fopt_dev_error_name(h2d));
    cr_expect_eq(d2h, cudaErrorStreamCaptureUnsupported, "device to host: %s", fopt_dev_error_name(d2h));
    cr_expect_eq(d2d, cudaSuccess, "device to device: %s", fopt_dev_error_name(d2d));
    CUDA_OK(fopt_dev_graph_launch(g, stream));
    CUDA_OK(fopt_dev_stream_synchronize(stream));
    gt_download(back, dev + 4, sizeof back);
    cr_expect_eq(memcmp(back, host, sizeof host), 0, "the captured device copy did not replay");
    /* outside a capture a host buffer is staged at once, as on a GPU */
    CUDA_OK(fopt_dev_memcpy_async(dev, back, sizeof back, stream));
    fopt_dev_graph_destroy(g);
    CUDA_OK(fopt_dev_stream_destroy(stream));
    fopt_dev_free(dev);
}

Test(gpu_capture, setting_one_groups_lr_or_weight_decay_keeps_the_other_groups_device_lr)
{
    /* A captured schedule may write any group's lr into fopt_lr_device(); a host setter writes
     * only what it sets. */
    gt_cfg cfg = gt_adamw();
    cfg.a.capturable = true;
    gt_problem *p = gt_problem_make(&cfg, capture_list, CAPTURE_COUNT, 3, true);
    double lr[FOPT_MAX_GROUPS];
    gt_download(lr, fopt_lr_device(p->opt), sizeof lr);
    lr[1] = 7e-4; /* as a schedule kernel would */
    lr[40] = 2e-4;
    gt_upload(fopt_lr_device(p->opt), lr, sizeof lr);
    FOPT_OK(fopt_set_group_lr(p->opt, 0, 3e-3));
    FOPT_OK(fopt_set_group_weight_decay(p->opt, 1, 0.5));
    lr[0] = 3e-3;
    double back[FOPT_MAX_GROUPS];
    gt_download(back, fopt_lr_device(p->opt), sizeof back);
    cr_expect_eq(memcmp(back, lr, sizeof lr), 0, "a setter rewrote other groups' device lr (group 1: %g)", back[1]);
    /* the step and the checkpoint use the device values */
    p->lr[0] = 3e-3;
    p->lr[1] = 7e-4;
    p->wd[1] = 0.5;
    plain_steps(p, p->opt, 2);
    gt_check(p, p->opt, "device-written lr kept");
    size_t size;
    unsigned char *ckpt = gt_save(p->opt, &size);
    fopt_optimizer *b;
    FOPT_OK(gt_create(&cfg, p->dev, CAPTURE_COUNT, &b));
    FOPT_OK(fopt_state_load(b, ckpt, size));
    gt_download(back, fopt_lr_device(b), sizeof back);
    cr_expect_eq(memcmp(back, lr, sizeof lr), 0, "the checkpoint lost the device-written lr");
    fopt_destroy(b);
    free(ckpt);
    gt_problem_free(p);
}

/* ---- rebinding ------------------------------------------------------------------------------ */

Test(gpu_rebind, rebinding_to_new_addresses_equals_a_fresh_optimizer_over_them_with_the_state_carried)
{
    const gt_cfg cfgs[] = {with_master(gt_adamw()), gt_rmsprop()};
    for (int c = 0; c < 2; c++) {
        gt_problem *p = gt_problem_make(&cfgs[c], group_list, GROUP_COUNT, 60 + c, true);
        set_group(p, 2, 2e-2, 0.1);
        plain_steps(p, p->opt, 3);
        gt_check(p, p->opt, "before rebinding");
        size_t size;
        unsigned char *ckpt = gt_save(p->opt, &size);
        /* a twin over other new addresses: a fresh optimizer loaded from the checkpoint */
        gt_problem *q = gt_problem_make(&cfgs[c], group_list, GROUP_COUNT, 60 + c, false);
        void **old_p, **old_g, **q_old_p, **q_old_g;
        gt_relocate(p, NULL, &old_p, &old_g); /* p's current params and grads at new addresses */
        for (size_t k = 0; k < GROUP_COUNT; k++)
            memcpy(q->param[k], p->param[k], p->spec[k].numel * gt_dtype_bytes(p->spec[k].dtype));
        gt_relocate(q, NULL, &q_old_p, &q_old_g);
        q->rng = p->rng; /* the same grads from here on */
        gt_snapshot old_before;
        gt_problem old_view = *p;
        old_view.dev_param_base = old_p;
        old_view.dev_grad_base = old_g;
        gt_snapshot_take(&old_before, &old_view, NULL);

        FOPT_OK(fopt_rebind(p->opt, p->dev, GROUP_COUNT, 0));
        FOPT_OK(gt_create(&cfgs[c], q->dev, GROUP_COUNT, &q->opt));
        FOPT_OK(fopt_state_load(q->opt, ckpt, size));
        for (int s = 0; s < 3; s++) {
            gt_new_grads(p);
            gt_new_grads(q); /* the same rng sequence: the same grads */
            FOPT_OK(fopt_step(p->opt, 0));
            FOPT_OK(fopt_step(q->opt, 0));
            gt_ref_step(p, NULL);
        }
        gt_check(p, p->opt, "rebound optimizer"); /* at the new addresses */
        gt_snapshot sp, sq, old_after;
        gt_snapshot_take(&sp, p, p->opt);
        gt_snapshot_take(&sq, q, q->opt);
        gt_snapshot_expect_equal(&sp, &sq, "rebound vs fresh optimizer");
        gt_snapshot_take(&old_after, &old_view, NULL);
        gt_snapshot_expect_equal(&old_after, &old_before, "the old addresses after the rebind");
        gt_snapshot_free(&old_before);
        gt_snapshot_free(&old_after);
        gt_snapshot_free(&sp);
        gt_snapshot_free(&sq);
        gt_free_bases(old_p, GROUP_COUNT);
        gt_free_bases(old_g, GROUP_COUNT);
        gt_free_bases(q_old_p, GROUP_COUNT);
        gt_free_bases(q_old_g, GROUP_COUNT);
        free(ckpt);
        gt_problem_free(q);
        gt_problem_free(p);
    }
}

Test(gpu_rebind, anything_but_the_same_list_is_rejected_and_changes_nothing)
{
    gt_cfg cfg = with_master(gt_adamw());
    gt_problem *p = gt_problem_make(&cfg, group_list, GROUP_COUNT, 70, true);
    plain_steps(p, p->opt, 2);
    /* new device buffers the list could move to (never bound here) */
    gt_problem *q = gt_problem_make(&cfg, group_list, GROUP_COUNT, 71, false);
    fopt_tensor t[GROUP_COUNT + 1];
    float host_mem[8];
    const size_t last = GROUP_COUNT - 1; /* edits on the last tensor: earlier ones would be valid */
    for (int edit = 0; edit < 11; edit++) {
        memcpy(t, q->dev, sizeof q->dev[0] * GROUP_COUNT);
        size_t count = GROUP_COUNT;
        const char *what = "";
        switch (edit) {
        case 0: count = GROUP_COUNT - 1; what = "one tensor fewer"; break;
        case 1: t[GROUP_COUNT] = t[0]; count = GROUP_COUNT + 1; what = "one tensor more"; break;
        case 2: t[last].numel++; what = "numel + 1"; break;
        case 3: t[last].numel--; what = "numel - 1"; break;
        case 4: t[last].dtype = FOPT_BFLOAT16; what = "another dtype"; break;
        case 5: t[last].dtype = (fopt_dtype)7; what = "an unknown dtype"; break;
        case 6: t[last].group = 1; what = "another group"; break;
        case 7: t[last].param = host_mem; what = "a host param"; break;
        case 8: t[last].grad = host_mem; what = "a host grad"; break;
        case 9: t[last].param = NULL; what = "a NULL param"; break;
        case 10: t[last].group = FOPT_MAX_GROUPS; what = "an invalid group"; break;
        }
        gt_snapshot b, a;
        gt_snapshot_take(&b, p, p->opt);
        cr_expect_eq(fopt_rebind(p->opt, t, count, 0), FOPT_ERROR_INVALID_VALUE, "rebind with %s accepted", what);
        gt_snapshot_take(&a, p, p->opt);
        gt_snapshot_expect_equal(&a, &b, what);
        gt_snapshot_free(&a);
        gt_snapshot_free(&b);
    }
    cr_expect_eq(fopt_rebind(p->opt, NULL, GROUP_COUNT, 0), FOPT_ERROR_INVALID_VALUE);
    cr_expect_eq(fopt_rebind(NULL, q->dev, GROUP_COUNT, 0), FOPT_ERROR_INVALID_VALUE);
    /* still bound to the old addresses: the next steps update them, and q's buffers stay as made */
    gt_snapshot qb, qa;
    gt_snapshot_take(&qb, q, NULL);
    plain_steps(p, p->opt, 2);
    gt_check(p, p->opt, "after rejected rebinds");
    gt_snapshot_take(&qa, q, NULL);
    gt_snapshot_expect_equal(&qa, &qb, "buffers of a rejected rebind");
    gt_snapshot_free(&qa);
    gt_snapshot_free(&qb);
    gt_problem_free(q);
    gt_problem_free(p);
}

Test(gpu_rebind, an_aligned_tensor_rebound_to_an_unaligned_address_and_back_stays_exact)
{
    const gt_spec spec[] = {{4096, FOPT_FLOAT32, 0, 0}, {4099, FOPT_BFLOAT16, 0, 0}, {1000, FOPT_FLOAT16, 1, 0}};
    const unsigned odd[] = {1, 3, 5}, even[] = {0, 0, 0};
    gt_cfg cfg = with_master(gt_adam());
    gt_problem *p = gt_problem_make(&cfg, spec, 3, 80, true);
    fopt_step_options o = {.zero_grads = true};
    for (int phase = 0; phase < 3; phase++) {
        if (phase > 0) {
            void **op, **og;
            gt_relocate(p, phase == 1 ? odd : even, &op, &og);
            FOPT_OK(fopt_rebind(p->opt, p->dev, 3, 0));
            gt_free_bases(op, 3);
            gt_free_bases(og, 3);
        }
        for (int s = 0; s < 2; s++) {
            gt_new_grads(p);
            FOPT_OK(fopt_step_ex(p->opt, s ? &o : NULL, 0));
            gt_ref_step(p, s ? &o : NULL);
        }
        gt_check(p, p->opt, phase == 1 ? "unaligned" : "aligned");
    }
    gt_problem_free(p);
}

Test(gpu_rebind, a_graph_replayed_after_a_rebind_steps_the_new_addresses)
{
    gt_cfg cfg = with_master(gt_adamw());
    cfg.a.capturable = true;
    gt_problem *p = gt_problem_make(&cfg, capture_list, CAPTURE_COUNT, 90, true);
    gt_dev_opts d;
    gt_dev_opts_make(&d);
    fopt_step_options o = {.found_inf = d.found_inf, .max_grad_norm = 1.0};
    int32_t h_inf;
    fopt_step_options host = {.found_inf = &h_inf, .max_grad_norm = 1.0};
    cudaStream_t stream;
    CUDA_OK(fopt_dev_stream_create(&stream));
    fopt_dev_graph *graph = NULL;
    CUDA_OK(fopt_dev_capture_begin(stream));
    fopt_status st = fopt_step_ex(p->opt, &o, stream);
    CUDA_OK(fopt_dev_capture_end(stream, &graph));
    FOPT_OK(st);
    const unsigned offs[2][CAPTURE_COUNT] = {{1, 0, 3, 0}, {0, 2, 0, 1}};
    for (int phase = 0; phase < 3; phase++) {
        void **op = NULL, **og = NULL;
        gt_problem old_view = *p;
        gt_spec old_spec[CAPTURE_COUNT]; /* the old allocations' offsets */
        memcpy(old_spec, p->spec, sizeof old_spec);
        old_view.spec = old_spec;
        if (phase > 0) {
            gt_relocate(p, offs[phase - 1], &op, &og);
            FOPT_OK(fopt_rebind(p->opt, p->dev, CAPTURE_COUNT, stream));
            old_view.dev_param_base = op;
            old_view.dev_grad_base = og;
        }
        gt_snapshot ob, oa;
        gt_snapshot_take(&ob, &old_view, NULL);
        for (int s = 0; s < 3; s++) {
            gt_new_grads(p);
            CUDA_OK(fopt_dev_graph_launch(graph, stream));
            CUDA_OK(fopt_dev_stream_synchronize(stream));
            gt_ref_step(p, &host);
        }
        gt_check(p, p->opt, "replays after a rebind");
        if (phase > 0) {
            gt_snapshot_take(&oa, &old_view, NULL);
            gt_snapshot_expect_equal(&oa, &ob, "old addresses after the rebind");
            gt_snapshot_free(&oa);
            gt_free_bases(op, CAPTURE_COUNT);
            gt_free_bases(og, CAPTURE_COUNT);
        }
        gt_snapshot_free(&ob);
    }
    fopt_dev_graph_destroy(graph);
    CUDA_OK(fopt_dev_stream_destroy(stream));
    gt_dev_opts_free(&d);
    gt_problem_free(p);
}

Test(gpu_rebind, a_rebind_on_a_capturing_stream_is_refused_and_the_capture_goes_on)
{
    /* Issue 16: fopt_rebind copied the new entries to the device from a host buffer it freed
     * before returning. Captured, the graph's copy read that freed buffer at every replay (ASan:
     * heap-use-after-free in the emulated replay). The rule: a rebind is refused while its stream
     * captures, before anything is enqueued; the graph goes on stepping the bound tensors. */
    static const gt_spec three[] = {{5, FOPT_FLOAT32, 0, 0}, {300, FOPT_FLOAT32, 0, 1}, {64, FOPT_FLOAT32, 0, 0}};
    gt_cfg cfg = gt_adam();
    cfg.a.capturable = true;
    gt_problem *p = gt_problem_make(&cfg, three, 3, 91, true);
    gt_problem *q = gt_problem_make(&cfg, three, 3, 92, false); /* the rebind's tensors */
    gt_snapshot q0;
    gt_snapshot_take(&q0, q, NULL);
    cudaStream_t stream;
    CUDA_OK(fopt_dev_stream_create(&stream));
    fopt_dev_graph *graph = NULL;
    CUDA_OK(fopt_dev_capture_begin(stream));
    fopt_status rb = fopt_rebind(p->opt, q->dev, 3, stream);
    char msg[512];
    snprintf(msg, sizeof msg, "%s", fopt_last_error());
    fopt_status st = fopt_step(p->opt, stream);
    cudaError_t end = fopt_dev_capture_end(stream, &graph);
    cr_assert_eq(end, cudaSuccess, "the capture broke: %s", fopt_dev_error_string(end));
    cr_expect_eq(rb, FOPT_ERROR_NOT_SUPPORTED, "fopt_rebind inside a capture: %s (%s)", fopt_status_string(rb), msg);
    cr_expect(strstr(msg, "capturing") != NULL, "the message does not say why: %s", msg);
    FOPT_OK(st);
    for (int i = 0; i < 3; i++) {
        gt_new_grads(p);
        CUDA_OK(fopt_dev_graph_launch(graph, stream));
        CUDA_OK(fopt_dev_stream_synchronize(stream));
        gt_ref_step(p, NULL);
    }
    gt_check(p, p->opt, "replays after the refused rebind");
    gt_expect_snapshot(q, NULL, &q0, "the refused rebind's tensors");
    /* the same rebind outside the capture is what a replay needs: the graph then steps q */
    FOPT_OK(fopt_rebind(p->opt, q->dev, 3, stream));
    gt_new_grads(q);
    CUDA_OK(fopt_dev_graph_launch(graph, stream));
    CUDA_OK(fopt_dev_stream_synchronize(stream));
    gt_snapshot q1;
    gt_snapshot_take(&q1, q, NULL);
    cr_expect_neq(memcmp(q1.params, q0.params, q0.param_bytes), 0, "the replay after the rebind did not step q");
    gt_snapshot_free(&q1);
    gt_snapshot_free(&q0);
    fopt_dev_graph_destroy(graph);
    CUDA_OK(fopt_dev_stream_destroy(stream));
    gt_problem_free(q);
    gt_problem_free(p);
}

/* ---- checkpoints: the list hash decides ----------------------------------------------------- */

static void expect_list_rejected(const gt_spec *a, const gt_spec *b, size_t count, const char *why)
{
    gt_cfg cfg = gt_adam();
    gt_problem *pa = gt_problem_make(&cfg, a, count, 1, true);
    gt_problem *pb = gt_problem_make(&cfg, b, count, 2, true);
    plain_steps(pa, pa->opt, 2);
    plain_steps(pb, pb->opt, 1);
    cr_assert_eq(fopt_state_size(pa->opt), fopt_state_size(pb->opt), "%s: the sizes premise does not hold", why);
    size_t size;
    unsigned char *ckpt = gt_save(pa->opt, &size);
    gt_snapshot before, after;
    gt_snapshot_take(&before, pb, pb->opt);
    cr_expect_eq(fopt_state_load(pb->opt, ckpt, size), FOPT_ERROR_INVALID_VALUE, "%s: accepted", why);
    cr_expect(strstr(fopt_last_error(), "tensor list") != NULL, "%s: rejected for another reason: %s", why,
              fopt_last_error());
    gt_snapshot_take(&after, pb, pb->opt);
    gt_snapshot_expect_equal(&after, &before, why);
    FOPT_OK(fopt_state_load(pa->opt, ckpt, size));
    gt_snapshot_free(&before);
    gt_snapshot_free(&after);
    free(ckpt);
    gt_problem_free(pa);
    gt_problem_free(pb);
}

Test(gpu_list_hash, a_permuted_list_of_the_same_total_size_is_rejected)
{
    const gt_spec a[] = {{5, FOPT_FLOAT32, 0, 0}, {100, FOPT_FLOAT32, 0, 0}, {40, FOPT_FLOAT32, 0, 0}};
    const gt_spec b[] = {{100, FOPT_FLOAT32, 0, 0}, {5, FOPT_FLOAT32, 0, 0}, {40, FOPT_FLOAT32, 0, 0}};
    expect_list_rejected(a, b, 3, "a permuted list");
}

Test(gpu_list_hash, one_element_moved_between_tensors_is_rejected)
{
    const gt_spec a[] = {{99, FOPT_FLOAT32, 0, 0}, {101, FOPT_FLOAT32, 0, 0}};
    const gt_spec b[] = {{100, FOPT_FLOAT32, 0, 0}, {100, FOPT_FLOAT32, 0, 0}};
    expect_list_rejected(a, b, 2, "99 + 101 vs 100 + 100 elements");
}

Test(gpu_list_hash, swapped_dtypes_or_groups_of_the_same_sizes_are_rejected)
{
    const gt_spec a[] = {{64, FOPT_FLOAT32, 0, 0}, {64, FOPT_BFLOAT16, 1, 0}};
    const gt_spec b[] = {{64, FOPT_BFLOAT16, 0, 0}, {64, FOPT_FLOAT32, 1, 0}};
    const gt_spec c[] = {{64, FOPT_FLOAT32, 1, 0}, {64, FOPT_BFLOAT16, 0, 0}};
    expect_list_rejected(a, b, 2, "swapped dtypes");
    expect_list_rejected(a, c, 2, "swapped groups");
}
