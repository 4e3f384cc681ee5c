/* The kernel bodies (run on the CPU) on special values - NaN, infinities, signed zeros,
 * subnormals, huge values - against the CPU reference, bit for bit: AMSGrad's max lets NaN win as
 * torch.maximum does, the centered clamp maps a negative variance to 0 and keeps NaN. And the bf16
 * master remainder encoding, which no comparison between paths can check (every path uses the
 * same encoder): every finite master must round-trip exactly, the param being the master rounded
 * to nearest with ties away from zero. And the statistics kernel's unscaling (a multiplication for
 * power-of-two scales) against the reference's division, on the same kinds of values. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "dtype.h"
#include "host_run.h"
#include "internal.h"
#include "launch.h"
#include "table.h"
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

/* The statistics kernel unscales a grad by multiplying with 1/scale when the scale is a normal
 * power of two (the same real number as the division, rounded once: the same bits) and divides
 * otherwise. Each value v in an entry of its own, four copies (one packet: the vector loop; the
 * partial is 4 u^2, exact) and one copy (the scalar loop; u^2), for each grad storage, against the
 * reference's division for scales across the exponent range, negative, subnormal and other. */
static const float sq_scales[] = {0x1p-126f, 0x1p-125f, 0x1p-100f, 0x1p-24f, 0.5f, 1.0f, 2.0f, 1024.0f,
                                  65536.0f, 0x1p24f, 0x1p100f, 0x1p126f, 0x1p127f, -0x1p16f, -0.25f,
                                  0x1p-130f, 0x1p-149f, 3.0f, 0.1f, 65535.0f, 0x1.8p-126f, FLT_MAX};
static const float sq_values[] = {0.0f, -0.0f, 0x1p-149f, 0x1.fffffcp-127f, 0x1p-126f, 3e-39f, -1e-30f,
                                  1e-10f, 0.1f, -1.0f, 1.5f, 3.14159f, -65504.0f, 1e20f, 0x1p100f,
                                  -0x1p127f, FLT_MAX, INFINITY, -INFINITY, 0x1.234568p-140f, 7e-45f};

static void store_as(fopt_dtype dt, void *buf, size_t i, float x)
{
    if (dt == FOPT_FLOAT32)
        ((float *)buf)[i] = x;
    else
        ((uint16_t *)buf)[i] = dt == FOPT_BFLOAT16 ? fopt_f32_to_bf16(x) : fopt_f32_to_f16(x);
}

static void check_unscaled_squares(fopt_dtype dt, float scale)
{
    const size_t nv = sizeof sq_values / sizeof sq_values[0];
    /* entry 2k: 4 copies of value k at 16-byte offset 32k; entry 2k+1: 1 copy at 32k + 16 */
    unsigned char *g = aligned_alloc(16, nv * 32);
    fopt_tensor_entry *e = calloc(2 * nv, sizeof *e);
    fopt_chunk *ch = calloc(2 * nv, sizeof *ch);
    double *partials = calloc(2 * nv, sizeof *partials);
    cr_assert(g && e && ch && partials);
    for (size_t k = 0; k < 2 * nv; k++) {
        const size_t n = k % 2 ? 1 : 4;
        for (size_t j = 0; j < n; j++)
            store_as(dt, g + 32 * (k / 2) + 16 * (k % 2), j, sq_values[k / 2]);
        e[k].slot[FOPT_TS_GRAD] = e[k].slot[FOPT_TS_PARAM] = g + 32 * (k / 2) + 16 * (k % 2);
        e[k].storage[FOPT_TS_GRAD] = e[k].storage[FOPT_TS_PARAM] = (uint8_t)fopt_storage_of(dt);
        e[k].numel = (int64_t)n;
        e[k].tensor = (uint32_t)k;
        fopt_entry_set_flags(&e[k]);
        ch[k] = (fopt_chunk){(uint32_t)k, 0};
    }
    cr_assert(e[0].flags & FOPT_ENTRY_GRAD_ALIGNED, "entry 0 takes the vector loop");
    uint32_t done = 0;
    fopt_stats_args s;
    memset(&s, 0, sizeof s);
    s.table = (fopt_table){e, ch, (uint32_t)(2 * nv), (uint32_t)(2 * nv), FOPT_CHUNK_SHIFT, 0};
    s.partials = partials;
    s.done = &done;
    s.grad_scale = &scale;
    fopt_stats_kernel().run_on_host(&s);
    for (size_t k = 0; k < 2 * nv; k++) {
        fopt_host_tensor t;
        memset(&t, 0, sizeof t);
        t.grad = e[k].slot[FOPT_TS_GRAD];
        t.numel = 1;
        t.dtype = dt;
        double want = 0.0;
        if (isfinite(scale) && scale > 0.0f) {
            cr_assert_eq(fopt_grad_sq_sum_ref_multi(&t, 1, &scale, &want), FOPT_SUCCESS);
        } else { /* the reference's total is NaN for such a scale (the verdict); a chunk's partial
                    is still the sum of the divided grads' squares */
            const void *p = e[k].slot[FOPT_TS_GRAD];
            float x = dt == FOPT_FLOAT32    ? *(const float *)p
                      : dt == FOPT_BFLOAT16 ? fopt_bf16_to_f32(*(const uint16_t *)p)
                                            : fopt_f16_to_f32(*(const uint16_t *)p);
            float u = x / scale;
            want = (double)u * (double)u;
        }
        want *= (double)e[k].numel;
        cr_expect(memcmp(&want, &partials[k], sizeof want) == 0,
                  "dtype %d, scale %a, grad %a, %s loop: %a, the reference's division gives %a", (int)dt,
                  (double)scale, (double)sq_values[k / 2], k % 2 ? "scalar" : "vector", partials[k], want);
    }
    free(g);
    free(e);
    free(ch);
    free(partials);
}

Test(kernels_special, statistics_unscale_grads_bit_for_bit_as_the_division_for_every_kind_of_scale)
{
    const fopt_dtype dts[] = {FOPT_FLOAT32, FOPT_BFLOAT16, FOPT_FLOAT16};
    for (size_t d = 0; d < 3; d++)
        for (size_t i = 0; i < sizeof sq_scales / sizeof sq_scales[0]; i++)
            check_unscaled_squares(dts[d], sq_scales[i]);
}
