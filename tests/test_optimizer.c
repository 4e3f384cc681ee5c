/* The GPU optimizer API's argument handling, which needs no device: every invalid argument gives
 * a clear status and leaves *out untouched; NULL optimizers are handled everywhere. */
#include <math.h>
#include <string.h>

#include <criterion/criterion.h>

#include "device.h"
#include "fusedopt.h"
#include "util.h"

static fopt_optimizer *const SENTINEL = (fopt_optimizer *)(uintptr_t)0xdeadbeef;

/* Pointers that are never dereferenced: argument checks come before any memory access. */
static float fake_param[4], fake_grad[4];

static fopt_status adam_create_with(const fopt_adam_config *cfg, const fopt_tensor *t, size_t count,
                                    fopt_optimizer **out)
{
    *out = SENTINEL;
    return fopt_adam_create(out, cfg, t, count);
}

Test(optimizer_args, create_rejects_null_out_config_or_tensor_list)
{
    fopt_adam_config a = fopt_adam_config_default();
    fopt_rmsprop_config r = fopt_rmsprop_config_default();
    fopt_tensor t = {fake_param, fake_grad, 4, FOPT_FLOAT32, 0};
    fopt_optimizer *out = SENTINEL;
    cr_expect_eq(fopt_adam_create(NULL, &a, &t, 1), FOPT_ERROR_INVALID_VALUE);
    cr_expect_eq(fopt_rmsprop_create(NULL, &r, &t, 1), FOPT_ERROR_INVALID_VALUE);
    cr_expect_eq(fopt_adam_create(&out, NULL, &t, 1), FOPT_ERROR_INVALID_VALUE);
    cr_expect_eq(fopt_rmsprop_create(&out, NULL, &t, 1), FOPT_ERROR_INVALID_VALUE);
    cr_expect_eq(fopt_adam_create(&out, &a, NULL, 1), FOPT_ERROR_INVALID_VALUE);
    cr_expect_eq(fopt_rmsprop_create(&out, &r, &t, 0), FOPT_ERROR_INVALID_VALUE);
    cr_expect_eq(out, SENTINEL, "*out was written by a failing create");
}

Test(optimizer_args, create_rejects_null_tensor_pointers_with_elements)
{
    fopt_adam_config a = fopt_adam_config_default();
    fopt_optimizer *out;
    fopt_tensor t[2] = {{fake_param, fake_grad, 4, FOPT_FLOAT32, 0}, {NULL, fake_grad, 3, FOPT_FLOAT32, 0}};
    cr_expect_eq(adam_create_with(&a, t, 2, &out), FOPT_ERROR_INVALID_VALUE);
    t[1].param = fake_param;
    t[1].grad = NULL;
    cr_expect_eq(adam_create_with(&a, t, 2, &out), FOPT_ERROR_INVALID_VALUE);
    cr_expect_eq(out, SENTINEL);
}

Test(optimizer_args, create_rejects_unusable_precision_settings_naming_the_tensor_and_field)
{
    fopt_adam_config a = fopt_adam_config_default();
    fopt_optimizer *out;
    fopt_tensor t[2] = {{fake_param, fake_grad, 4, FOPT_FLOAT32, 0}, {fake_param, fake_grad, 4, (fopt_dtype)7, 0}};
    cr_expect_eq(adam_create_with(&a, t, 2, &out), FOPT_ERROR_INVALID_VALUE);
    cr_expect(strstr(fopt_last_error(), "tensor 1") && strstr(fopt_last_error(), "dtype"), "%s", fopt_last_error());
    t[1].dtype = FOPT_FLOAT16;
    a.precision.state_dtype = FOPT_FLOAT16;
    cr_expect_eq(adam_create_with(&a, t, 2, &out), FOPT_ERROR_NOT_SUPPORTED);
    cr_expect(strstr(fopt_last_error(), "state_dtype"), "%s", fopt_last_error());
    a.precision.state_dtype = (fopt_dtype)9;
    cr_expect_eq(adam_create_with(&a, t, 2, &out), FOPT_ERROR_INVALID_VALUE);
    a = fopt_adam_config_default();
    a.precision.stochastic_rounding = true; /* fp16 params cannot round stochastically */
    cr_expect_eq(adam_create_with(&a, t, 2, &out), FOPT_ERROR_NOT_SUPPORTED);
    cr_expect(strstr(fopt_last_error(), "tensor 1") && strstr(fopt_last_error(), "stochastic"), "%s",
              fopt_last_error());
    a = fopt_adam_config_default();
    a.precision.master_weights = true;
    a.precision.master_remainder = true; /* remainders are for bf16 params */
    cr_expect_eq(adam_create_with(&a, t, 2, &out), FOPT_ERROR_NOT_SUPPORTED);
    a.precision.master_weights = false; /* remainders without master weights */
    t[1].dtype = FOPT_BFLOAT16;
    cr_expect_eq(adam_create_with(&a, t, 2, &out), FOPT_ERROR_INVALID_VALUE);
    a = fopt_adam_config_default();
    a.precision.master_weights = true;
    a.precision.stochastic_rounding = true;
    cr_expect_eq(adam_create_with(&a, t, 2, &out), FOPT_ERROR_INVALID_VALUE);
    a = fopt_adam_config_default();
    t[1].group = FOPT_MAX_GROUPS;
    cr_expect_eq(adam_create_with(&a, t, 2, &out), FOPT_ERROR_INVALID_VALUE);
    cr_expect(strstr(fopt_last_error(), "group"), "%s", fopt_last_error());
    cr_expect_eq(out, SENTINEL);
}

Test(optimizer_args, create_rejects_hyper_parameters_that_overflow_float)
{
    fopt_tensor t = {fake_param, fake_grad, 4, FOPT_FLOAT32, 0};
    fopt_optimizer *out;
    fopt_adam_config a = fopt_adam_config_default();
    a.lr = 1e39; /* a finite double, an infinite float step size */
    cr_expect_eq(adam_create_with(&a, &t, 1, &out), FOPT_ERROR_INVALID_VALUE);
    a = fopt_adam_config_default();
    a.weight_decay = 1e39;
    cr_expect_eq(adam_create_with(&a, &t, 1, &out), FOPT_ERROR_INVALID_VALUE);
    a = fopt_adam_config_default();
    a.decoupled_weight_decay = true;
    a.lr = 1e20;
    a.weight_decay = 1e20; /* 1 - lr*wd overflows float */
    cr_expect_eq(adam_create_with(&a, &t, 1, &out), FOPT_ERROR_INVALID_VALUE);
    fopt_rmsprop_config r = fopt_rmsprop_config_default();
    r.eps = 1e39;
    out = SENTINEL;
    cr_expect_eq(fopt_rmsprop_create(&out, &r, &t, 1), FOPT_ERROR_INVALID_VALUE);
    cr_expect_eq(out, SENTINEL);
}

Test(optimizer_args, create_rejects_out_of_range_hyper_parameters)
{
    fopt_tensor t = {fake_param, fake_grad, 4, FOPT_FLOAT32, 0};
    fopt_optimizer *out = SENTINEL;
    const double bad[] = {NAN, INFINITY, -1.0};
    for (size_t i = 0; i < 3; i++) {
        fopt_adam_config a = fopt_adam_config_default();
        a.lr = bad[i];
        cr_expect_eq(fopt_adam_create(&out, &a, &t, 1), FOPT_ERROR_INVALID_VALUE);
        a = fopt_adam_config_default();
        a.eps = bad[i];
        cr_expect_eq(fopt_adam_create(&out, &a, &t, 1), FOPT_ERROR_INVALID_VALUE);
        a = fopt_adam_config_default();
        a.weight_decay = bad[i];
        cr_expect_eq(fopt_adam_create(&out, &a, &t, 1), FOPT_ERROR_INVALID_VALUE);
        a = fopt_adam_config_default();
        a.beta1 = i == 2 ? 1.0 : bad[i];
        cr_expect_eq(fopt_adam_create(&out, &a, &t, 1), FOPT_ERROR_INVALID_VALUE);
        a = fopt_adam_config_default();
        a.beta2 = bad[i];
        cr_expect_eq(fopt_adam_create(&out, &a, &t, 1), FOPT_ERROR_INVALID_VALUE);

        fopt_rmsprop_config r = fopt_rmsprop_config_default();
        r.alpha = i == 2 ? 1.5 : bad[i];
        cr_expect_eq(fopt_rmsprop_create(&out, &r, &t, 1), FOPT_ERROR_INVALID_VALUE);
        r = fopt_rmsprop_config_default();
        r.momentum = bad[i];
        cr_expect_eq(fopt_rmsprop_create(&out, &r, &t, 1), FOPT_ERROR_INVALID_VALUE);
    }
    cr_expect_eq(out, SENTINEL);
}

/* Creating an Adam optimizer over one fp32 tensor fails with FOPT_ERROR_NO_DEVICE, leaves *out
 * alone, and (want not NULL) says `want`. */
static void expect_create_no_device(const char *want)
{
    fopt_adam_config a = fopt_adam_config_default();
    fopt_tensor t = {fake_param, fake_grad, 4, FOPT_FLOAT32, 0};
    fopt_optimizer *out;
    cr_expect_eq(adam_create_with(&a, &t, 1, &out), FOPT_ERROR_NO_DEVICE, "%s", fopt_last_error());
    cr_expect_eq(out, SENTINEL);
    if (want)
        cr_expect(strstr(fopt_last_error(), want) != NULL, "message: %s", fopt_last_error());
}

Test(optimizer_args, create_without_a_device_says_no_device)
{
    if (fopt_dev_emulated())
        fopt_emu_set_device_count(0); /* the emulated device can be unplugged */
    else if (test_have_cuda_device())
        cr_skip_test("a CUDA device is present");
    expect_create_no_device(NULL);
}

/* Issue 16: without any CUDA driver the runtime answers cudaErrorInsufficientDriver, and the
 * message said "CUDA driver version is insufficient for CUDA runtime version", sending the user to
 * upgrade a driver that does not exist. In the CUDA build this runs on a machine without a device
 * (the CI machine has no driver at all); the emulated build removes its driver. */
Test(optimizer_args, create_without_a_cuda_driver_says_no_cuda_driver_or_device)
{
    if (fopt_dev_emulated())
        fopt_emu_set_driver_version(0);
    else if (test_have_cuda_device())
        cr_skip_test("a CUDA device is present");
    expect_create_no_device("no CUDA driver or device");
    const char *msg = fopt_last_error();
    cr_expect(strstr(msg, "insufficient") == NULL, "the message sends the user to upgrade a driver: %s", msg);
}

Test(optimizer_args, create_with_a_driver_older_than_the_runtime_names_both_versions)
{
    if (!fopt_dev_emulated())
        cr_skip_test("the emulated driver's version can be set");
    fopt_emu_set_driver_version(11040);
    expect_create_no_device("CUDA driver (11.4) is older than the CUDA runtime");
    fopt_emu_set_driver_version(CUDART_VERSION);
    fopt_emu_set_device_count(0); /* a driver, no device */
    expect_create_no_device("no CUDA driver or device (the CUDA driver reports no device)");
}

Test(optimizer_args, null_optimizer_is_handled_by_every_call)
{
    char buf[16];
    double d = 0.0;
    cr_expect_eq(fopt_step(NULL, 0), FOPT_ERROR_INVALID_VALUE);
    cr_expect_eq(fopt_step_ex(NULL, NULL, 0), FOPT_ERROR_INVALID_VALUE);
    cr_expect_eq(fopt_grad_sq_sum(NULL, NULL, &d, 0), FOPT_ERROR_INVALID_VALUE);
    cr_expect_eq(fopt_set_lr(NULL, 1e-3), FOPT_ERROR_INVALID_VALUE);
    cr_expect_eq(fopt_set_group_lr(NULL, 0, 1e-3), FOPT_ERROR_INVALID_VALUE);
    cr_expect_eq(fopt_set_group_weight_decay(NULL, 0, 1e-3), FOPT_ERROR_INVALID_VALUE);
    cr_expect_null(fopt_lr_device(NULL));
    cr_expect_eq(fopt_rebind(NULL, NULL, 0, 0), FOPT_ERROR_INVALID_VALUE);
    cr_expect_eq(fopt_state_copy(NULL, 0, FOPT_SLOT_EXP_AVG, buf, false), FOPT_ERROR_INVALID_VALUE);
    cr_expect_eq(fopt_set_step_count(NULL, 0), FOPT_ERROR_INVALID_VALUE);
    cr_expect_eq(fopt_step_count(NULL), -1);
    cr_expect_eq(fopt_state_size(NULL), 0u);
    cr_expect_eq(fopt_state_save(NULL, buf, sizeof buf), FOPT_ERROR_INVALID_VALUE);
    cr_expect_eq(fopt_state_load(NULL, buf, sizeof buf), FOPT_ERROR_INVALID_VALUE);
    fopt_destroy(NULL);
}
