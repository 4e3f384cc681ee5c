/* The buffers of a call on the CPU entry points (src/common/buffers.c): every pointer aligned to its
 * element size, byte sizes without overflow, one overlap rule (a written buffer may share memory
 * with no other buffer; read-only grads may coincide); fopt_shard_bounds' world limits; the
 * precision flags' one rule against the params' dtypes. Every refused call names the cause and
 * changes nothing. The GPU object's side is tests/test_gpu_buffers.c. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "buffers_util.h"

/* ---- alignment ---- */

Test(buffers, misaligned_pointer_of_every_slot_is_refused_on_both_multi_entry_points)
{
    for (int v = 0; v < BT_VARIANTS; v++)
        for (int slot = 0; slot < BT_SLOTS; slot++) {
            bt_call c;
            if (!bt_call_make(&c, v, slot))
                continue; /* the variant keeps no such slot */
            for (int which = 0; which < 2; which++) {
                /* one byte off, and (for 4-byte slots) two: off by a part of an element */
                for (size_t off = 1; off < bt_slot_bytes(&c, slot); off++) {
                    bt_call_reset(&c);
                    bt_shift(&c, 1, slot, off);
                    bt_expect_refused(&c, which, NULL, FOPT_ERROR_INVALID_VALUE,
                                      (const char *[]){"tensor 1", bt_slot_name(&c, slot), "aligned", NULL});
                }
            }
            bt_call_free(&c);
        }
}

Test(buffers, misaligned_step_option_pointers_are_refused)
{
    bt_call c;
    bt_call_make(&c, 0, 0);
    _Alignas(8) unsigned char raw[64] = {0};
    float one = 1.0f;
    memcpy(raw + 8, &one, sizeof one);
    struct { size_t field; size_t off; const char *name; } cases[] = {
        {offsetof(fopt_step_options, grad_scale), 9, "grad_scale"},
        {offsetof(fopt_step_options, grad_norm), 17, "grad_norm"},
        {offsetof(fopt_step_options, found_inf), 26, "found_inf"},
        {offsetof(fopt_step_options, grad_sq_sum), 36, "grad_sq_sum"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int which = 0; which < 2; which++) {
            fopt_step_options o;
            memset(&o, 0, sizeof o);
            void *p = raw + cases[i].off;
            memcpy((char *)&o + cases[i].field, &p, sizeof p);
            bt_call_reset(&c);
            bt_expect_refused(&c, which, &o, FOPT_ERROR_INVALID_VALUE,
                              (const char *[]){cases[i].name, "aligned", NULL});
        }
    bt_call_free(&c);
}

Test(buffers, misaligned_pointers_are_refused_on_the_flat_entry_points)
{
    _Alignas(64) static float pool[5][64];
    for (int slot = 0; slot < 5; slot++)
        for (int fn = 0; fn < 4; fn++) {
            float *p[5];
            for (int i = 0; i < 5; i++)
                p[i] = pool[i];
            p[slot] = (float *)(void *)((char *)pool[slot] + 2);
            fopt_adam_config a = fopt_adam_config_default();
            a.amsgrad = true;
            fopt_rmsprop_config r = fopt_rmsprop_config_default();
            r.momentum = 0.9;
            r.centered = true;
            fopt_status st = fn == 0 ? fopt_adam_step_ref(&a, 1, 32, p[0], p[1], p[2], p[3], p[4])
                             : fn == 1 ? fopt_adam_step_cpu(&a, 1, 32, p[0], p[1], p[2], p[3], p[4])
                             : fn == 2 ? fopt_rmsprop_step_ref(&r, 32, p[0], p[1], p[2], p[3], p[4])
                                       : fopt_rmsprop_step_cpu(&r, 32, p[0], p[1], p[2], p[3], p[4]);
            cr_expect_eq(st, FOPT_ERROR_INVALID_VALUE, "flat entry %d, pointer %d two bytes off: %s", fn,
                         slot, fopt_status_string(st));
            cr_expect(strstr(fopt_last_error(), "aligned"), "%s", fopt_last_error());
        }
}

Test(buffers, misaligned_grad_or_result_pointers_are_refused_by_the_grad_sq_sum_helpers)
{
    _Alignas(64) static unsigned char pool[4096];
    fopt_host_tensor t[2];
    memset(t, 0, sizeof t);
    t[0] = (fopt_host_tensor){.param = NULL, .grad = pool, .numel = 16, .dtype = FOPT_FLOAT32};
    t[1] = (fopt_host_tensor){.param = NULL, .grad = pool + 256, .numel = 16, .dtype = FOPT_BFLOAT16};
    double *sq = (double *)(void *)(pool + 1024);
    const float *scale = (const float *)(void *)(pool + 1100);
    for (int which = 0; which < 2; which++) {
        fopt_status (*fn)(const fopt_host_tensor *, size_t, const float *, double *) =
            which ? fopt_grad_sq_sum_cpu_multi : fopt_grad_sq_sum_ref_multi;
        cr_expect_eq(fn(t, 2, NULL, sq), FOPT_SUCCESS, "%s", fopt_last_error());
        t[1].grad = pool + 257; /* bf16 one byte off */
        cr_expect_eq(fn(t, 2, NULL, sq), FOPT_ERROR_INVALID_VALUE);
        cr_expect(strstr(fopt_last_error(), "tensor 1") && strstr(fopt_last_error(), "grad") &&
                      strstr(fopt_last_error(), "aligned"), "%s", fopt_last_error());
        t[1].grad = pool + 256;
        t[0].grad = pool + 2; /* fp32 two bytes off */
        cr_expect_eq(fn(t, 2, NULL, sq), FOPT_ERROR_INVALID_VALUE);
        cr_expect(strstr(fopt_last_error(), "tensor 0"), "%s", fopt_last_error());
        t[0].grad = pool;
        cr_expect_eq(fn(t, 2, NULL, (double *)(void *)(pool + 1028)), FOPT_ERROR_INVALID_VALUE);
        cr_expect(strstr(fopt_last_error(), "sq_sum"), "%s", fopt_last_error());
        cr_expect_eq(fn(t, 2, (const float *)(void *)(pool + 1101), sq), FOPT_ERROR_INVALID_VALUE);
        cr_expect(strstr(fopt_last_error(), "grad_scale"), "%s", fopt_last_error());
        (void)scale;
    }
}

/* ---- size arithmetic ---- */

Test(buffers, sizes_beyond_the_address_space_are_refused_as_such_on_every_cpu_entry_point)
{
    static const size_t sizes[] = {(size_t)1 << 62, (size_t)1 << 60, ((size_t)1 << 55) + 1, SIZE_MAX};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        bt_call c;
        bt_call_make(&c, 0, 0); /* fp32 */
        for (int which = 0; which < 2; which++) {
            bt_call_reset(&c);
            c.t[1].numel = sizes[i];
            bt_expect_refused(&c, which, NULL, FOPT_ERROR_INVALID_VALUE,
                              (const char *[]){"tensor 1", "address space", NULL});
            cr_expect(!strstr(fopt_last_error(), "overlap"), "numel %zu: %s", sizes[i], fopt_last_error());
        }
        bt_call_free(&c);
        float *p = bt_pool_floats();
        fopt_adam_config a = fopt_adam_config_default();
        fopt_rmsprop_config r = fopt_rmsprop_config_default();
        cr_expect_eq(fopt_adam_step_ref(&a, 1, sizes[i], p, p + 64, p + 128, p + 192, NULL),
                     FOPT_ERROR_INVALID_VALUE);
        cr_expect(strstr(fopt_last_error(), "address space"), "%s", fopt_last_error());
        cr_expect_eq(fopt_rmsprop_step_cpu(&r, sizes[i], p, p + 64, p + 128, NULL, NULL),
                     FOPT_ERROR_INVALID_VALUE);
        cr_expect(strstr(fopt_last_error(), "address space"), "%s", fopt_last_error());
        fopt_host_tensor g = {.grad = p, .numel = sizes[i], .dtype = FOPT_FLOAT32};
        double sq;
        cr_expect_eq(fopt_grad_sq_sum_ref_multi(&g, 1, NULL, &sq), FOPT_ERROR_INVALID_VALUE);
        cr_expect(strstr(fopt_last_error(), "address space"), "%s", fopt_last_error());
        cr_expect_eq(fopt_grad_sq_sum_cpu_multi(&g, 1, NULL, &sq), FOPT_ERROR_INVALID_VALUE);
        free(p);
    }
}

Test(buffers, numel_summing_past_size_max_over_shared_grads_is_refused)
{
    /* grads only read may coincide, so only the sum shows that 256 tensors of 2^56 elements are
     * more than a size_t counts */
    enum { K = 256 };
    fopt_host_tensor *t = calloc(K, sizeof *t);
    float *p = bt_pool_floats();
    for (size_t k = 0; k < K; k++)
        t[k] = (fopt_host_tensor){.grad = p, .numel = (size_t)1 << 56, .dtype = FOPT_BFLOAT16};
    double sq;
    cr_expect_eq(fopt_grad_sq_sum_ref_multi(t, K, NULL, &sq), FOPT_ERROR_INVALID_VALUE);
    cr_expect(strstr(fopt_last_error(), "in total"), "%s", fopt_last_error());
    cr_expect_eq(fopt_grad_sq_sum_cpu_multi(t, K, NULL, &sq), FOPT_ERROR_INVALID_VALUE);
    free(t);
    free(p);
}

/* ---- overlap ---- */

Test(buffers, the_same_tensor_twice_or_grad_equal_to_param_is_refused_naming_both)
{
    for (int v = 0; v < BT_VARIANTS; v++) {
        bt_call c;
        bt_call_make(&c, v, 0);
        for (int which = 0; which < 2; which++) {
            bt_call_reset(&c);
            c.t[1] = c.t[0];
            bt_expect_refused(&c, which, NULL, FOPT_ERROR_INVALID_VALUE,
                              (const char *[]){"overlap", "tensor 0", "tensor 1", NULL});
            bt_call_reset(&c);
            c.t[1].grad = c.t[1].param;
            bt_expect_refused(&c, which, NULL, FOPT_ERROR_INVALID_VALUE,
                              (const char *[]){"overlap", "tensor 1's param", "tensor 1's grad", NULL});
        }
        bt_call_free(&c);
    }
    float *p = bt_pool_floats();
    fopt_adam_config a = fopt_adam_config_default();
    cr_expect_eq(fopt_adam_step_cpu(&a, 1, 16, p, p, p + 64, p + 128, NULL), FOPT_ERROR_INVALID_VALUE);
    cr_expect(strstr(fopt_last_error(), "param") && strstr(fopt_last_error(), "grad"), "%s", fopt_last_error());
    free(p);
}

Test(buffers, a_written_buffer_starting_inside_a_read_only_one_is_refused)
{
    /* tensor 1's param (written) from the second element of tensor 0's grad (read) on: the grad
     * comes first in memory, and no written buffer before it reaches the param */
    for (int v = 0; v < BT_VARIANTS; v++)
        for (int which = 0; which < 2; which++) {
            bt_call c;
            bt_call_make(&c, v, 0);
            bt_call_reset(&c);
            c.t[1].param = (char *)c.t[0].grad + bt_slot_bytes(&c, BT_GRAD);
            bt_expect_refused(&c, which, NULL, FOPT_ERROR_INVALID_VALUE,
                              (const char *[]){"overlap", "tensor 0's grad", "tensor 1's param", NULL});
            bt_call_free(&c);
        }
}

Test(buffers, grads_only_read_may_coincide_but_not_with_zero_grads)
{
    for (int v = 0; v < BT_VARIANTS; v++)
        for (int which = 0; which < 2; which++) {
            bt_call shared, apart;
            bt_call_make(&shared, v, 0);
            bt_call_make(&apart, v, 0);
            bt_call_reset(&shared);
            bt_call_reset(&apart);
            /* tensor 1 reads tensor 0's grad; `apart` holds a copy of it in tensor 1's own */
            memcpy((void *)apart.t[1].grad, apart.t[0].grad, BT_N * bt_slot_bytes(&apart, BT_GRAD));
            shared.t[1].grad = shared.t[0].grad;
            cr_expect_eq(bt_call_run(&shared, which, NULL), FOPT_SUCCESS, "%s", fopt_last_error());
            cr_expect_eq(bt_call_run(&apart, which, NULL), FOPT_SUCCESS, "%s", fopt_last_error());
            cr_expect_eq(memcmp(shared.t[1].param, apart.t[1].param, BT_N * bt_slot_bytes(&apart, BT_PARAM)), 0,
                         "variant %d: a shared grad stepped differently", v);
            fopt_step_options o;
            memset(&o, 0, sizeof o);
            o.zero_grads = true;
            bt_call_reset(&shared);
            shared.t[1].grad = shared.t[0].grad;
            bt_expect_refused(&shared, which, &o, FOPT_ERROR_INVALID_VALUE,
                              (const char *[]){"overlap", "tensor 0", "tensor 1", "grad", NULL});
            bt_call_free(&shared);
            bt_call_free(&apart);
        }
}

/* ---- fopt_shard_bounds' world ---- */

Test(buffers, shard_bounds_takes_world_from_1_to_its_maximum_only)
{
    const size_t entries = (size_t)FOPT_SHARD_MAX_WORLD + 2;
    uint64_t *b = malloc(entries * sizeof *b);
    cr_assert(b);
    const uint64_t total = 1000003;
    cr_expect_eq(fopt_shard_bounds(total, 1, b), FOPT_SUCCESS);
    cr_expect(b[0] == 0 && b[1] == total);
    cr_expect_eq(fopt_shard_bounds(total, FOPT_SHARD_MAX_WORLD, b), FOPT_SUCCESS, "%s", fopt_last_error());
    cr_expect(b[0] == 0 && b[FOPT_SHARD_MAX_WORLD] == total && b[1] == FOPT_SHARD_ALIGN);
    b[entries - 1] = 12345; /* max + 1 must leave its extra entry alone */
    static const int bad[] = {FOPT_SHARD_MAX_WORLD + 1, INT_MAX, 0, -1, INT_MIN};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_expect_eq(fopt_shard_bounds(total, bad[i], b), FOPT_ERROR_INVALID_VALUE, "world %d", bad[i]);
        cr_expect(strstr(fopt_last_error(), "world"), "%s", fopt_last_error());
    }
    cr_expect_eq(b[entries - 1], 12345u);
    free(b);
}

/* ---- precision flags against dtypes ---- */

Test(buffers, fp16_params_with_a_bf16_only_flag_are_not_supported_naming_tensor_and_flag)
{
    for (int flag = 0; flag < 2; flag++)
        for (int which = 0; which < 2; which++) {
            bt_call c;
            bt_call_make(&c, BT_FP16_MASTER, 0);
            fopt_precision *pr = gt_precision(&c.cfg);
            if (flag == 0) {
                pr->master_weights = false;
                pr->stochastic_rounding = true;
                c.t[0].master = c.t[1].master = NULL;
            } else {
                pr->master_remainder = true;
            }
            bt_call_reset(&c);
            bt_expect_refused(&c, which, NULL, FOPT_ERROR_NOT_SUPPORTED,
                              (const char *[]){"tensor 0", flag ? "master_remainder" : "stochastic_rounding",
                                               "fp16", NULL});
            bt_call_free(&c);
        }
}

Test(buffers, fp32_params_ignore_every_precision_flag_beside_bf16_params)
{
    /* fp32 norms beside bf16 weights, with remainders, or stochastic rounding: the fp32 tensor steps
     * as without any flag */
    for (int flags = 0; flags < 2; flags++)
        for (int which = 0; which < 2; which++) {
            bt_call mixed, plain;
            bt_call_make(&mixed, flags ? BT_BF16_SR : BT_BF16_REMAINDER, 0);
            bt_call_make(&plain, 0, 0);
            bt_call_reset(&mixed);
            bt_call_reset(&plain);
            bt_make_fp32(&mixed, 0, &plain);
            cr_expect_eq(bt_call_run(&mixed, which, NULL), FOPT_SUCCESS, "%s", fopt_last_error());
            cr_expect_eq(bt_call_run(&plain, which, NULL), FOPT_SUCCESS, "%s", fopt_last_error());
            cr_expect_eq(memcmp(mixed.t[0].param, plain.t[0].param, BT_N * 4), 0,
                         "the fp32 tensor of a list with %s stepped differently",
                         flags ? "stochastic_rounding" : "master_remainder");
            bt_call_free(&mixed);
            bt_call_free(&plain);
        }
}

Test(buffers, shard_pieces_refuses_misaligned_or_oversized_tensors_the_range_overlaps)
{
    _Alignas(64) static unsigned char pool[1024];
    fopt_host_tensor t[2] = {{.param = pool, .grad = pool + 128, .numel = 16, .dtype = FOPT_FLOAT32},
                             {.param = pool + 256, .grad = pool + 384, .numel = 16, .dtype = FOPT_BFLOAT16}};
    fopt_host_tensor pieces[2];
    size_t n = 99;
    FOPT_OK(fopt_shard_pieces(t, 2, 8, 32, pieces, &n));
    cr_expect_eq(n, 2u);
    t[1].param = pool + 257;
    n = 99;
    cr_expect_eq(fopt_shard_pieces(t, 2, 8, 32, pieces, &n), FOPT_ERROR_INVALID_VALUE);
    cr_expect(strstr(fopt_last_error(), "tensor 1") && strstr(fopt_last_error(), "param") &&
                  strstr(fopt_last_error(), "aligned"), "%s", fopt_last_error());
    cr_expect_eq(n, 99u, "a refused call wrote piece_count");
    FOPT_OK(fopt_shard_pieces(t, 2, 0, 16, pieces, &n)); /* the range misses tensor 1 */
    t[1].param = pool + 256;
    t[0].grad = pool + 130;
    cr_expect_eq(fopt_shard_pieces(t, 2, 0, 16, pieces, &n), FOPT_ERROR_INVALID_VALUE);
    cr_expect(strstr(fopt_last_error(), "tensor 0") && strstr(fopt_last_error(), "grad"), "%s", fopt_last_error());
}
