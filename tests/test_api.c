/* Status strings, version and configuration defaults. */
#include <string.h>

#include <criterion/criterion.h>

#include "fusedopt.h"

Test(api, status_strings_name_every_status)
{
    cr_expect_str_eq(fopt_status_string(FOPT_SUCCESS), "FOPT_SUCCESS");
    cr_expect_str_eq(fopt_status_string(FOPT_ERROR_INVALID_VALUE), "FOPT_ERROR_INVALID_VALUE");
    cr_expect_str_eq(fopt_status_string(FOPT_ERROR_NOT_SUPPORTED), "FOPT_ERROR_NOT_SUPPORTED");
    cr_expect_str_eq(fopt_status_string(FOPT_ERROR_OUT_OF_MEMORY), "FOPT_ERROR_OUT_OF_MEMORY");
    cr_expect_str_eq(fopt_status_string(FOPT_ERROR_NO_DEVICE), "FOPT_ERROR_NO_DEVICE");
    cr_expect_str_eq(fopt_status_string(FOPT_ERROR_CUDA), "FOPT_ERROR_CUDA");
    cr_expect_str_eq(fopt_status_string((fopt_status)99), "FOPT_UNKNOWN_STATUS");
}

Test(api, status_values_are_fixed)
{
    cr_expect_eq(FOPT_SUCCESS, 0);
    cr_expect_eq(FOPT_ERROR_INVALID_VALUE, 1);
    cr_expect_eq(FOPT_ERROR_NOT_SUPPORTED, 2);
    cr_expect_eq(FOPT_ERROR_OUT_OF_MEMORY, 3);
    cr_expect_eq(FOPT_ERROR_NO_DEVICE, 4);
    cr_expect_eq(FOPT_ERROR_CUDA, 5);
}

Test(api, version_matches_macros)
{
    cr_expect_str_eq(fopt_version(), FOPT_VERSION_STRING);
    cr_expect_eq(FOPT_VERSION_NUMBER,
                 FOPT_VERSION_MAJOR * 10000 + FOPT_VERSION_MINOR * 100 + FOPT_VERSION_PATCH);
}

Test(api, adam_defaults_are_pytorchs)
{
    fopt_adam_config c = fopt_adam_config_default();
    cr_expect_eq(c.lr, 1e-3);
    cr_expect_eq(c.beta1, 0.9);
    cr_expect_eq(c.beta2, 0.999);
    cr_expect_eq(c.eps, 1e-8);
    cr_expect_eq(c.weight_decay, 0.0);
    cr_expect(!c.decoupled_weight_decay && !c.amsgrad && !c.maximize);
}

Test(api, rmsprop_defaults_are_pytorchs)
{
    fopt_rmsprop_config c = fopt_rmsprop_config_default();
    cr_expect_eq(c.lr, 1e-2);
    cr_expect_eq(c.alpha, 0.99);
    cr_expect_eq(c.eps, 1e-8);
    cr_expect_eq(c.weight_decay, 0.0);
    cr_expect_eq(c.momentum, 0.0);
    cr_expect(!c.centered && !c.maximize);
}

Test(api, failure_leaves_a_readable_message)
{
    fopt_adam_config c = fopt_adam_config_default();
    c.lr = -1.0;
    float p = 1, g = 1, m = 0, v = 0;
    cr_assert_eq(fopt_adam_step_ref(&c, 1, 1, &p, &g, &m, &v, NULL), FOPT_ERROR_INVALID_VALUE);
    cr_expect(strstr(fopt_last_error(), "lr") != NULL, "message: %s", fopt_last_error());
}
