/* A build without CUDA (-DFOPT_CUDA=OFF; tests/CMakeLists.txt builds this suite there only): the
 * library's CPU side needs no CUDA header, and every public GPU function fails with
 * FOPT_ERROR_NOT_SUPPORTED and a message naming it, changing nothing. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include "cpu_internal.h"
#include "fusedopt.h"
#include "internal.h"

/* Everything src/common, src/ref and src/cpu include came in above: no CUDA header among it. */
#if defined(__DRIVER_TYPES_H__) || defined(__CUDA_RUNTIME_API_H__) || defined(__CUDA_FP16_H__)
#error "a CUDA header came in through the library's CPU-side headers"
#endif

#define OUT_SENTINEL ((fopt_optimizer *)(uintptr_t)0xdeadbeef)

/* The call failed with NOT_SUPPORTED, and fopt_last_error() names `fn` and the missing CUDA. */
static void expect_no_cuda(fopt_status st, const char *fn)
{
    cr_expect_eq(st, FOPT_ERROR_NOT_SUPPORTED, "%s returned %s", fn, fopt_status_string(st));
    char want[160];
    snprintf(want, sizeof want, "%s: fusedopt was built without CUDA (-DFOPT_CUDA=OFF)", fn);
    cr_expect(strstr(fopt_last_error(), want) != NULL, "%s: message \"%s\"", fn, fopt_last_error());
}

Test(nocuda, every_gpu_function_returns_not_supported_naming_itself)
{
    float p[4] = {1, 2, 3, 4}, g[4] = {0};
    const fopt_tensor t = {p, g, 4, FOPT_FLOAT32, 0};
    const fopt_adam_config a = fopt_adam_config_default();
    const fopt_rmsprop_config r = fopt_rmsprop_config_default();
    fopt_optimizer *out = OUT_SENTINEL;
    expect_no_cuda(fopt_adam_create(&out, &a, &t, 1), "fopt_adam_create");
    expect_no_cuda(fopt_rmsprop_create(&out, &r, &t, 1), "fopt_rmsprop_create");
    expect_no_cuda(fopt_adam_create_shard(&out, &a, &t, 1, 0, 4), "fopt_adam_create_shard");
    expect_no_cuda(fopt_rmsprop_create_shard(&out, &r, &t, 1, 0, 4), "fopt_rmsprop_create_shard");
    cr_expect_eq(out, OUT_SENTINEL, "a failing create wrote *out");

    fopt_optimizer *opt = NULL; /* no optimizer can exist; the calls fail the same way on NULL */
    double d = 0.0;
    char buf[16];
    expect_no_cuda(fopt_step(opt, NULL), "fopt_step");
    expect_no_cuda(fopt_step_ex(opt, NULL, NULL), "fopt_step_ex");
    expect_no_cuda(fopt_grad_sq_sum(opt, NULL, &d, NULL), "fopt_grad_sq_sum");
    expect_no_cuda(fopt_set_group_lr(opt, 0, 1e-3), "fopt_set_group_lr");
    expect_no_cuda(fopt_set_group_weight_decay(opt, 0, 0.0), "fopt_set_group_weight_decay");
    expect_no_cuda(fopt_rebind(opt, &t, 1, NULL), "fopt_rebind");
    expect_no_cuda(fopt_set_lr(opt, 1e-3), "fopt_set_lr");
    expect_no_cuda(fopt_state_save(opt, buf, sizeof buf), "fopt_state_save");
    expect_no_cuda(fopt_state_load(opt, buf, sizeof buf), "fopt_state_load");
    expect_no_cuda(fopt_state_copy(opt, 0, FOPT_SLOT_EXP_AVG, buf, false), "fopt_state_copy");
    expect_no_cuda(fopt_set_step_count(opt, 3), "fopt_set_step_count");
    cr_expect_eq(d, 0.0, "fopt_grad_sq_sum wrote its result");

    /* the functions without a status: their NULL-optimizer results, and the message */
    cr_expect_null(fopt_lr_device(opt));
    cr_expect(strstr(fopt_last_error(), "fopt_lr_device: fusedopt was built without CUDA"), "%s",
              fopt_last_error());
    cr_expect_eq(fopt_step_count(opt), -1);
    cr_expect(strstr(fopt_last_error(), "fopt_step_count: fusedopt was built without CUDA"), "%s",
              fopt_last_error());
    cr_expect_eq(fopt_state_size(opt), 0u);
    fopt_destroy(opt);
    cr_expect_eq(p[0], 1.0f, "a parameter changed");
}

Test(nocuda, the_cpu_entry_points_work)
{
    float p[4] = {1, 2, 3, 4}, g[4] = {0.5f, -0.5f, 0.25f, 1}, m[4] = {0}, v[4] = {0};
    const fopt_adam_config a = fopt_adam_config_default();
    cr_assert_eq(fopt_adam_step_cpu(&a, 1, 4, p, g, m, v, NULL), FOPT_SUCCESS, "%s", fopt_last_error());
    cr_expect_neq(p[0], 1.0f, "the fast CPU path stepped nothing");
    fopt_host_tensor t = {.param = p, .grad = g, .numel = 4, .dtype = FOPT_FLOAT32, .state = {m, v, NULL}};
    cr_assert_eq(fopt_adam_step_ref_multi(&a, 2, &t, 1, NULL), FOPT_SUCCESS, "%s", fopt_last_error());
    uint64_t bounds[3];
    cr_assert_eq(fopt_shard_bounds(16, 2, bounds), FOPT_SUCCESS);
    cr_expect_eq(bounds[1], 8u);
}
