/* The buffer rules of src/common/buffers.c on the GPU optimizer object (creation, shard creation,
 * rebind, fopt_step_ex's zero_grads, fopt_grad_sq_sum) and the precision flags' rule against the
 * dtypes. A refused call leaves *out untouched, or the optimizer bound as it was. */
#include <string.h>

#include <criterion/criterion.h>

#include "buffers_util.h"
#include "optimizer.h"

TestSuite(gpu_buffers, .init = gt_require_device);

enum { N = 64 };

/* Two tensors of dtype dt, each param and grad in its own allocation with room to move. */
typedef struct two {
    void *mem[4];
    fopt_tensor t[2];
    fopt_tensor shared[2]; /* t, but for what two_sharing() makes tensor 1 share with tensor 0 */
} two;

static two two_make(fopt_dtype dt)
{
    two w;
    unsigned char zero[N * 4 + 64];
    memset(zero, 0, sizeof zero);
    for (int i = 0; i < 4; i++) {
        w.mem[i] = gt_dev_alloc(sizeof zero);
        gt_upload(w.mem[i], zero, sizeof zero);
    }
    for (int k = 0; k < 2; k++)
        w.t[k] = (fopt_tensor){w.mem[2 * k], w.mem[2 * k + 1], N, dt, 0};
    return w;
}

static void two_free(two *w)
{
    for (int i = 0; i < 4; i++)
        (void)fopt_dev_free(w->mem[i]);
}

/* Two fp32 tensors; in `shared`, tensor 1's param (grad: its grad) is tensor 0's memory. */
static two two_sharing(bool grad)
{
    two w = two_make(FOPT_FLOAT32);
    w.shared[0] = w.t[0];
    w.shared[1] = w.t[1];
    if (grad)
        w.shared[1].grad = w.t[0].grad;
    else
        w.shared[1].param = w.t[0].param;
    return w;
}

static void expect_msg(const char *const *needles)
{
    for (const char *const *n = needles; *n; n++)
        cr_expect(strstr(fopt_last_error(), *n), "the message lacks \"%s\": %s", *n, fopt_last_error());
}

/* create, create_shard over the whole list, and rebind of an optimizer made over `good`, all
 * refuse `bad` with `status` and a message holding the needles. */
static void expect_list_refused(gt_cfg *c, const fopt_tensor *good, const fopt_tensor *bad,
                                fopt_status status, const char *const *needles)
{
    fopt_optimizer *const sentinel = (fopt_optimizer *)(uintptr_t)0x5a5a;
    fopt_optimizer *out = sentinel;
    cr_expect_eq(gt_create(c, bad, 2, &out), status, "create: %s", fopt_last_error());
    expect_msg(needles);
    cr_expect_eq(out, sentinel);
    fopt_status st = c->adam ? fopt_adam_create_shard(&out, &c->a, bad, 2, 0, 2 * N)
                             : fopt_rmsprop_create_shard(&out, &c->r, bad, 2, 0, 2 * N);
    cr_expect_eq(st, status, "create_shard: %s", fopt_last_error());
    expect_msg(needles);
    cr_expect_eq(out, sentinel);
    if (status == FOPT_ERROR_INVALID_VALUE) { /* rebind keeps dtypes: precision cases do not apply */
        fopt_optimizer *opt;
        FOPT_OK(gt_create(c, good, 2, &opt));
        fopt_tensor_entry before[2];
        memcpy(before, opt->entries, sizeof before);
        cr_expect_eq(fopt_rebind(opt, bad, 2, 0), status, "rebind: %s", fopt_last_error());
        expect_msg(needles);
        cr_expect_eq(memcmp(before, opt->entries, sizeof before), 0, "a refused rebind changed the binding");
        FOPT_OK(fopt_step(opt, 0));
        fopt_destroy(opt);
    }
}

/* gt_adam() over the two tensors t. */
static fopt_optimizer *adam_over(const fopt_tensor t[2])
{
    gt_cfg c = gt_adam();
    fopt_optimizer *opt;
    FOPT_OK(gt_create(&c, t, 2, &opt));
    return opt;
}

Test(gpu_buffers, misaligned_params_and_grads_are_refused_by_create_shard_and_rebind)
{
    static const fopt_dtype dts[] = {FOPT_FLOAT32, FOPT_BFLOAT16, FOPT_FLOAT16};
    gt_cfg cfgs[2] = {gt_adamw(), gt_rmsprop()};
    for (int ci = 0; ci < 2; ci++)
        for (size_t d = 0; d < 3; d++) {
            gt_precision(&cfgs[ci])->master_weights = dts[d] != FOPT_FLOAT32;
            two w = two_make(dts[d]);
            for (int slot = 0; slot < 2; slot++)
                for (size_t off = 1; off < gt_dtype_bytes(dts[d]); off++) {
                    fopt_tensor bad[2] = {w.t[0], w.t[1]};
                    if (slot == 0)
                        bad[1].param = (char *)bad[1].param + off;
                    else
                        bad[1].grad = (const char *)bad[1].grad + off;
                    expect_list_refused(&cfgs[ci], w.t, bad, FOPT_ERROR_INVALID_VALUE,
                                        (const char *[]){"tensor 1", slot ? "grad" : "param", "aligned", NULL});
                }
            two_free(&w);
        }
}

Test(gpu_buffers, a_tensor_beyond_the_address_space_is_refused_as_such)
{
    gt_cfg c = gt_adam();
    two w = two_make(FOPT_FLOAT32);
    static const size_t sizes[] = {(size_t)1 << 62, (size_t)1 << 60, ((size_t)1 << 55) + 1};
    for (size_t i = 0; i < 3; i++) {
        fopt_tensor bad[2] = {w.t[0], w.t[1]};
        bad[1].numel = sizes[i];
        fopt_optimizer *out;
        cr_expect_eq(gt_create(&c, bad, 2, &out), FOPT_ERROR_INVALID_VALUE, "%s", fopt_last_error());
        expect_msg((const char *[]){"tensor 1", "address space", NULL});
    }
    two_free(&w);
}

Test(gpu_buffers, the_same_tensor_twice_or_grad_equal_to_param_is_refused_naming_both)
{
    gt_cfg c = gt_adamw();
    two w = two_make(FOPT_FLOAT32);
    fopt_tensor bad[2] = {w.t[0], w.t[0]};
    expect_list_refused(&c, w.t, bad, FOPT_ERROR_INVALID_VALUE,
                        (const char *[]){"overlap", "tensor 0", "tensor 1", "param", NULL});
    bad[1] = w.t[1];
    bad[1].grad = bad[1].param;
    expect_list_refused(&c, w.t, bad, FOPT_ERROR_INVALID_VALUE,
                        (const char *[]){"overlap", "tensor 1's param", "tensor 1's grad", NULL});
    bad[1] = w.t[1];
    bad[1].param = (float *)w.t[0].param + N / 2; /* half of tensor 0's param */
    expect_list_refused(&c, w.t, bad, FOPT_ERROR_INVALID_VALUE,
                        (const char *[]){"overlap", "tensor 0's param", "tensor 1's param", NULL});
    two_free(&w);
}

Test(gpu_buffers, a_shard_checks_the_parts_it_steps)
{
    /* tensor 1's param inside tensor 0's: a shard holding only tensor 0 steps no byte of tensor 1 */
    gt_cfg c = gt_adam();
    two w = two_sharing(false);
    fopt_optimizer *opt;
    cr_expect_eq(fopt_adam_create_shard(&opt, &c.a, w.shared, 2, 0, 2 * N), FOPT_ERROR_INVALID_VALUE);
    FOPT_OK(fopt_adam_create_shard(&opt, &c.a, w.shared, 2, 0, N));
    FOPT_OK(fopt_step(opt, 0));
    fopt_destroy(opt);
    two_free(&w);
}

Test(gpu_buffers, shared_grads_step_but_refuse_zero_grads_naming_both)
{
    two w = two_sharing(true);
    fopt_optimizer *opt = adam_over(w.shared);
    FOPT_OK(fopt_step(opt, 0));
    fopt_step_options o;
    memset(&o, 0, sizeof o);
    o.zero_grads = true;
    cr_expect_eq(fopt_step_ex(opt, &o, 0), FOPT_ERROR_INVALID_VALUE);
    expect_msg((const char *[]){"zero_grads", "tensor 0's grad", "tensor 1's grad", NULL});
    cr_expect_eq(fopt_step_count(opt), 1);
    FOPT_OK(fopt_rebind(opt, w.t, 2, 0)); /* grads apart again */
    FOPT_OK(fopt_step_ex(opt, &o, 0));
    cr_expect_eq(fopt_rebind(opt, w.shared, 2, 0), FOPT_SUCCESS, "%s", fopt_last_error());
    cr_expect_eq(fopt_step_ex(opt, &o, 0), FOPT_ERROR_INVALID_VALUE);
    fopt_destroy(opt);
    two_free(&w);
}

Test(gpu_buffers, misaligned_sq_sum_and_option_pointers_are_refused)
{
    two w = two_make(FOPT_FLOAT32);
    fopt_optimizer *opt = adam_over(w.t);
    char *scratch = gt_dev_alloc(64);
    cr_expect_eq(fopt_grad_sq_sum(opt, NULL, (double *)(void *)(scratch + 4), 0), FOPT_ERROR_INVALID_VALUE);
    expect_msg((const char *[]){"sq_sum", "aligned", NULL});
    cr_expect_eq(fopt_grad_sq_sum(opt, (const float *)(void *)(scratch + 2), (double *)(void *)scratch, 0),
                 FOPT_ERROR_INVALID_VALUE);
    expect_msg((const char *[]){"grad_scale", "aligned", NULL});
    fopt_step_options o;
    memset(&o, 0, sizeof o);
    o.found_inf = (int32_t *)(void *)(scratch + 1);
    cr_expect_eq(fopt_step_ex(opt, &o, 0), FOPT_ERROR_INVALID_VALUE);
    expect_msg((const char *[]){"found_inf", "aligned", NULL});
    cr_expect_eq(fopt_step_count(opt), 0);
    fopt_destroy(opt);
    (void)fopt_dev_free(scratch);
    two_free(&w);
}

Test(gpu_buffers, fp16_params_with_a_bf16_only_flag_are_not_supported_and_fp32_ones_ignore_flags)
{
    two w = two_make(FOPT_FLOAT16);
    gt_cfg c = gt_adam();
    fopt_precision *pr = gt_precision(&c);
    pr->stochastic_rounding = true;
    expect_list_refused(&c, w.t, w.t, FOPT_ERROR_NOT_SUPPORTED,
                        (const char *[]){"tensor 0", "stochastic_rounding", "fp16", NULL});
    pr->stochastic_rounding = false;
    pr->master_weights = pr->master_remainder = true;
    expect_list_refused(&c, w.t, w.t, FOPT_ERROR_NOT_SUPPORTED,
                        (const char *[]){"tensor 0", "master_remainder", "fp16", NULL});
    two_free(&w);
    /* fp32 norms beside bf16 weights take remainders, or stochastic rounding */
    two m = two_make(FOPT_BFLOAT16);
    m.t[0].dtype = FOPT_FLOAT32;
    for (int sr = 0; sr < 2; sr++) {
        pr->master_weights = pr->master_remainder = !sr;
        pr->stochastic_rounding = sr;
        fopt_optimizer *opt;
        FOPT_OK(gt_create(&c, m.t, 2, &opt));
        FOPT_OK(fopt_step(opt, 0));
        fopt_destroy(opt);
    }
    two_free(&m);
}
