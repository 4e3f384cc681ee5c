/* The kernel bodies (run on the CPU) on special values - NaN, infinities, signed zeros,
 * subnormals, huge values - against the CPU reference, bit for bit: AMSGrad's max lets NaN win as
 * torch.maximum does, the centered clamp maps a negative variance to 0 and keeps NaN. And the bf16
 * master remainder encoding, which no comparison between paths can check (every path uses the
 * same encoder): every finite master must round-trip exactly, the param being the master rounded
 * to nearest with ties away from zero. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "dtype.h"
#include "host_run.h"
#include "internal.h"
#include "util.h"

static size_t differences(const float *a, const float *b, size_t n)
{
    size_t d = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t x, y;
        memcpy(&x, &a[i], 4);
        memcpy(&y, &b[i], 4);
        d += x != y && !(isnan(a[i]) && isnan(b[i]));
    }
    return d;
}

Test(kernels_special, special_values_match_the_reference_bit_for_bit)
{
    const size_t n = 4097; /* vector packets and a scalar tail */
    for (int variant = 0; variant < 4; variant++) {
        test_rng r = test_rng_make(177 + (uint64_t)variant);
        float *x[5], *y[5];
        for (int a = 0; a < 5; a++) {
            x[a] = test_alloc(n);
            test_fill_magnitudes(&r, x[a], n, -6, 0, 9);
            for (size_t i = 0; i < n; i++)
                x[a][i] = test_special(&r, x[a][i]);
        }
        for (size_t i = 0; i < n; i++) { /* second moments: non-negative, NaN and +inf stay */
            x[2][i] = fabsf(x[2][i]);
            x[3][i] = fabsf(x[3][i]);
        }
        for (int a = 0; a < 5; a++)
            y[a] = test_dup(x[a], n);
        /* 0 param, 1 grad, 2 second moment, 3 max / momentum, 4 first moment / grad_avg */
        fopt_host_tensor t;
        fopt_adam_config ca;
        fopt_rmsprop_config c;
        if (test_special_config(variant, &ca, &c)) {
            cr_assert_eq(fopt_adam_flat_tensor(&ca, n, x[0], x[1], x[4], x[2], x[3], &t), FOPT_SUCCESS);
            for (int s = 1; s <= 3; s++) {
                cr_assert_eq(fopt_adam_step_ref(&ca, s, n, y[0], y[1], y[4], y[2], y[3]), FOPT_SUCCESS);
                cr_assert_eq(fopt_adam_step_kernels_host(&ca, s, &t, 1, NULL), FOPT_SUCCESS, "%s", fopt_last_error());
            }
        } else {
            cr_assert_eq(fopt_rmsprop_flat_tensor(&c, n, x[0], x[1], x[2], c.momentum > 0 ? x[3] : NULL, x[4], &t),
                         FOPT_SUCCESS);
            for (int s = 1; s <= 3; s++) {
                cr_assert_eq(fopt_rmsprop_step_ref(&c, n, y[0], y[1], y[2], c.momentum > 0 ? y[3] : NULL, y[4]),
                             FOPT_SUCCESS);
                cr_assert_eq(fopt_rmsprop_step_kernels_host(&c, s, &t, 1, NULL), FOPT_SUCCESS, "%s",
                             fopt_last_error());
            }
        }
        static const char *const names[5] = {"param", "grad", "second moment", "max/momentum", "first moment"};
        for (int a = 0; a < 5; a++) {
            size_t d = differences(x[a], y[a], n);
            cr_expect_eq(d, 0u, "variant %d: %zu elements of %s differ from the reference", variant, d, names[a]);
            free(x[a]);
            free(y[a]);
        }
    }
}

Test(kernels_special, master_remainder_round_trips_every_finite_master)
{
    /* every low half, under a spread of high halves (signs, exponents, the largest finite) */
    static const uint32_t highs[] = {0x0000, 0x0001, 0x0080, 0x3f7f, 0x3f80, 0x3f81, 0x4000, 0x7f00, 0x7f7e,
                                     0x8000, 0x8001, 0xbf80, 0xc2f6, 0xff7e};
    size_t bad_trip = 0, bad_param = 0;
    for (size_t h = 0; h < sizeof highs / sizeof highs[0]; h++)
        for (uint32_t lo = 0; lo < 0x10000; lo++) {
            const uint32_t u = highs[h] << 16 | lo;
            const float m = fopt_f32_from_bits(u);
            uint16_t p, rem;
            fopt_remainder_encode(m, &p, &rem);
            if (fopt_f32_bits(fopt_remainder_decode(p, rem)) != u)
                bad_trip++;
            /* nearest, ties away from zero: the high half, plus one when the low half >= 0x8000 */
            const uint16_t want = (uint16_t)((u >> 16) + (lo >= 0x8000u));
            if (p != want)
                bad_param++;
        }
    cr_expect_eq(bad_trip, 0u, "%zu masters did not round-trip through param + remainder", bad_trip);
    cr_expect_eq(bad_param, 0u, "%zu params were not the master rounded to nearest, ties away", bad_param);
    /* NaN: the quiet NaN with the sign, remainder 0 */
    uint16_t p, rem;
    fopt_remainder_encode(-NAN, &p, &rem);
    cr_expect(p == 0xffc0u && rem == 0);
}
