#include "ref_checks.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "util.h"

void ref_bufs_make(size_t n, uint64_t seed, float *b[5])
{
    test_rng r = test_rng_make(seed);
    for (int k = 0; k < 5; k++)
        b[k] = test_alloc(n);
    test_fill_uniform(&r, b[0], n, -1.0f, 1.0f);
    test_fill_magnitudes(&r, b[1], n, -3.0, 2.0, 0);
    for (int k = 2; k < 5; k++)
        memset(b[k], 0, n * sizeof(float));
}

void ref_bufs_free(float *const b[5])
{
    for (int k = 0; k < 5; k++)
        free(b[k]);
}

void ref_expect_rejected(const ref_optimizer *o, const void *cfg, int64_t step, size_t n_call,
                         unsigned null_mask, const char *rule)
{
    const size_t n = 37;
    test_rng r = test_rng_make(o->reject_seed + null_mask + n_call);
    float *buf[5], *copy[5], *arg[5];
    for (int k = 0; k < 5; k++) {
        buf[k] = test_alloc(n);
        test_fill_magnitudes(&r, buf[k], n, -3.0, 1.0, 0);
        if (o->non_negative & (1u << k))
            for (size_t i = 0; i < n; i++)
                buf[k][i] = fabsf(buf[k][i]);
        copy[k] = test_dup(buf[k], n);
        arg[k] = (null_mask & (1u << k)) ? NULL : buf[k];
    }
    fopt_status st = o->step(cfg, step, n_call, arg);
    cr_expect_eq(st, FOPT_ERROR_INVALID_VALUE, "%s (n %zu): got %s", rule, n_call,
                 fopt_status_string(st));
    cr_expect(fopt_last_error()[0] != '\0', "%s: no error message", rule);
    for (int k = 0; k < 5; k++) {
        cr_expect_eq(memcmp(buf[k], copy[k], n * sizeof(float)), 0, "%s (n %zu): %s changed",
                     rule, n_call, o->names[k]);
        free(buf[k]), free(copy[k]);
    }
}

void ref_expect_field_rejected(const ref_optimizer *o, const void *bases, size_t nbases,
                               size_t cfg_size, size_t offset, const char *field,
                               const double *bad, size_t nbad)
{
    unsigned char *cfg = malloc(cfg_size); /* aligned for any config */
    cr_assert_not_null(cfg);
    cr_assert(offset + sizeof(double) <= cfg_size);
    for (size_t b = 0; b < nbases; b++)
        for (size_t k = 0; k < nbad; k++) {
            memcpy(cfg, (const unsigned char *)bases + b * cfg_size, cfg_size);
            memcpy(cfg + offset, &bad[k], sizeof(double));
            char rule[96];
            snprintf(rule, sizeof rule, "%s = %g (base config %zu)", field, bad[k], b);
            ref_expect_rejected(o, cfg, 1, 37, 0, rule);
        }
    free(cfg);
}
