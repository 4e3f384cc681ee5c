/* Checkpoints know their tensor list by more than its size: a checkpoint of the list (a, b) must
 * not load into an optimizer over (b, a) - same count, same total state bytes, same dtypes - nor
 * over a list whose tensors moved between parameter groups or changed dtype with the same bytes.
 * Runs on a CUDA device or the emulated one (SKIP without either). */
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "device.h"
#include "fusedopt.h"
#include "util.h"

static void require_device(void)
{
    if (!test_have_cuda_device())
        cr_skip_test("no CUDA device");
}

TestSuite(gpu_lists, .init = require_device);


typedef struct dev_list {
    size_t count;
    fopt_tensor t[4];
    void *mem[8];
} dev_list;

/* Tensors of these sizes, dtypes and groups in device memory, params and grads zero. */
static void dev_list_make(dev_list *l, size_t count, const size_t *numel, const fopt_dtype *dtype,
                          const unsigned *group)
{
    memset(l, 0, sizeof *l);
    l->count = count;
    for (size_t k = 0; k < count; k++) {
        size_t bytes = numel[k] * (dtype[k] == FOPT_FLOAT32 ? 4 : 2);
        for (int j = 0; j < 2; j++) {
            cr_assert_eq(fopt_dev_malloc(&l->mem[2 * k + j], bytes), cudaSuccess);
            cr_assert_eq(fopt_dev_memset(l->mem[2 * k + j], 0, bytes), cudaSuccess);
        }
        l->t[k] = (fopt_tensor){l->mem[2 * k], l->mem[2 * k + 1], numel[k], dtype[k], group[k]};
    }
}

static void dev_list_free(dev_list *l)
{
    for (size_t i = 0; i < 2 * l->count; i++)
        fopt_dev_free(l->mem[i]);
}

static fopt_optimizer *adam_over(const dev_list *l)
{
    fopt_adam_config cfg = fopt_adam_config_default();
    cfg.precision.master_weights = true; /* 16-bit params keep fp32 masters */
    fopt_optimizer *opt = NULL;
    FOPT_OK(fopt_adam_create(&opt, &cfg, l->t, l->count));
    return opt;
}

Test(gpu_lists, checkpoint_of_a_permuted_list_is_rejected)
{
    const fopt_dtype f32[3] = {FOPT_FLOAT32, FOPT_FLOAT32, FOPT_FLOAT32};
    const unsigned g0[3] = {0, 0, 0};
    const size_t ab[3] = {5, 9, 24}, ba[3] = {9, 5, 24}, ab_same[3] = {5, 9, 24};
    dev_list a, b, c;
    dev_list_make(&a, 3, ab, f32, g0);
    dev_list_make(&b, 3, ba, f32, g0);
    dev_list_make(&c, 3, ab_same, f32, g0);
    fopt_optimizer *oa = adam_over(&a), *ob = adam_over(&b), *oc = adam_over(&c);
    FOPT_OK(fopt_step(oa, 0));
    cr_assert_eq(fopt_dev_synchronize(), cudaSuccess);
    size_t size = fopt_state_size(oa);
    cr_assert_eq(fopt_state_size(ob), size, "same total state: only the order tells the lists apart");
    unsigned char *ckpt = malloc(size);
    cr_assert_not_null(ckpt);
    FOPT_OK(fopt_state_save(oa, ckpt, size));
    cr_expect_eq(fopt_state_load(ob, ckpt, size), FOPT_ERROR_INVALID_VALUE,
                 "a checkpoint of (5, 9, 24) loaded into an optimizer over (9, 5, 24)");
    cr_expect_eq(fopt_step_count(ob), 0, "the rejected load changed the step count");
    /* the same list, other buffers: accepted */
    FOPT_OK(fopt_state_load(oc, ckpt, size));
    cr_expect_eq(fopt_step_count(oc), 1);
    free(ckpt);
    fopt_destroy(oa);
    fopt_destroy(ob);
    fopt_destroy(oc);
    dev_list_free(&a);
    dev_list_free(&b);
    dev_list_free(&c);
}

Test(gpu_lists, checkpoint_with_tensors_in_other_groups_or_dtypes_is_rejected)
{
    const size_t n[2] = {16, 40};
    const fopt_dtype f32[2] = {FOPT_FLOAT32, FOPT_FLOAT32};
    const fopt_dtype mixed[2] = {FOPT_FLOAT32, FOPT_BFLOAT16}, mixed2[2] = {FOPT_FLOAT32, FOPT_FLOAT16};
    const unsigned g01[2] = {0, 1}, g10[2] = {1, 0};
    dev_list a, b, c, d;
    dev_list_make(&a, 2, n, f32, g01);
    dev_list_make(&b, 2, n, f32, g10);
    dev_list_make(&c, 2, n, mixed, g01);
    dev_list_make(&d, 2, n, mixed2, g01);
    fopt_optimizer *oa = adam_over(&a), *ob = adam_over(&b), *oc = adam_over(&c), *od = adam_over(&d);
    size_t size = fopt_state_size(oa);
    unsigned char *ckpt = malloc(size);
    cr_assert_not_null(ckpt);
    FOPT_OK(fopt_state_save(oa, ckpt, size));
    cr_assert_eq(fopt_state_size(ob), size);
    cr_expect_eq(fopt_state_load(ob, ckpt, size), FOPT_ERROR_INVALID_VALUE, "groups (0, 1) loaded as (1, 0)");
    free(ckpt);
    /* bf16 and fp16 params with fp32 masters: the same state bytes, another dtype */
    size = fopt_state_size(oc);
    cr_assert_eq(fopt_state_size(od), size);
    ckpt = malloc(size);
    cr_assert_not_null(ckpt);
    FOPT_OK(fopt_state_save(oc, ckpt, size));
    cr_expect_eq(fopt_state_load(od, ckpt, size), FOPT_ERROR_INVALID_VALUE, "a bf16 tensor's state loaded as fp16");
    free(ckpt);
    fopt_destroy(oa);
    fopt_destroy(ob);
    fopt_destroy(oc);
    fopt_destroy(od);
    dev_list_free(&a);
    dev_list_free(&b);
    dev_list_free(&c);
    dev_list_free(&d);
}
