/* Bad input on the multi-tensor entry points (reference, fast CPU path, host-run kernels in both
 * modes) and on the flat fp32 ones: each case gives the documented status, fopt_last_error()
 * names the tensor and the field where there is one, and nothing is written: every buffer of the
 * list, guard bytes included, and the option outputs compare byte for byte before and after. The
 * offending tensor is the last of the list, so a path that validated as it went would already
 * have written the tensors before it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "mixed.h"

#define NORM_SENTINEL 0x7fbeef01u
#define FOUND_SENTINEL (-3)

/* Calls every path with (c, step, t, count, o) and expects `want`, a message holding each of the
 * strings in `need` (NULL-terminated), and no byte changed in s (which t points into) nor in the
 * extra region, nor in the option outputs. */
static void expect_rejected(const mx_config *c, int64_t step, const fopt_host_tensor *t, size_t count,
                            const fopt_step_options *o, const mx_set *s, void *extra, size_t extra_bytes,
                            fopt_status want, const char *const *need, const char *label)
{
    char msg[512];
    unsigned char *extra_copy = NULL;
    if (extra) {
        extra_copy = malloc(extra_bytes);
        cr_assert_not_null(extra_copy);
        memcpy(extra_copy, extra, extra_bytes);
    }
    for (int p = 0; p < MX_PATHS; p++) {
        mx_snapshot *snap = mx_snapshot_take(s);
        float norm = mx_float(NORM_SENTINEL);
        int32_t found = FOUND_SENTINEL;
        fopt_step_options op;
        if (o) {
            op = *o;
            op.grad_norm = &norm;
            op.found_inf = &found;
        }
        fopt_status st = mx_step((mx_path)p, c, step, t, count, o ? &op : NULL);
        const char *err = fopt_last_error();
        cr_assert_eq(st, want, "%s: the %s returned %s, want %s (%s)", label, mx_path_name((mx_path)p),
                     fopt_status_string(st), fopt_status_string(want), err);
        for (const char *const *n = need; n && *n; n++)
            cr_assert(strstr(err, *n), "%s: the %s's message does not name \"%s\": %s", label,
                      mx_path_name((mx_path)p), *n, err);
        if (!mx_snapshot_same(snap, s, msg, sizeof msg))
            cr_assert_fail("%s: the %s rejected the call but wrote: %s", label, mx_path_name((mx_path)p), msg);
        if (extra)
            cr_assert(memcmp(extra, extra_copy, extra_bytes) == 0, "%s: the %s wrote to the overlapping buffers",
                      label, mx_path_name((mx_path)p));
        cr_assert_eq(mx_bits(norm), NORM_SENTINEL, "%s: the %s wrote grad_norm", label, mx_path_name((mx_path)p));
        cr_assert_eq(found, FOUND_SENTINEL, "%s: the %s wrote found_inf", label, mx_path_name((mx_path)p));
        mx_snapshot_free(snap);
    }
    free(extra_copy);
}

/* A copy of a set's tensor list, to corrupt. */
static fopt_host_tensor *list_of(const mx_set *s)
{
    fopt_host_tensor *t = malloc(s->count * sizeof *t);
    cr_assert_not_null(t);
    memcpy(t, s->t, s->count * sizeof *t);
    return t;
}

/* Options that ask for everything (so that a path that ran the statistics first would write). */
static fopt_step_options all_options(void)
{
    static const float scale = 2.0f;
    fopt_step_options o;
    memset(&o, 0, sizeof o);
    o.grad_scale = &scale;
    o.max_grad_norm = 1.0;
    o.zero_grads = true;
    o.grad_norm = (float *)1;  /* replaced by expect_rejected */
    o.found_inf = (int32_t *)1;
    return o;
}

static mx_set *base_set(const mx_config *c, fopt_dtype last)
{
    mx_spec spec[3] = {{.numel = 100, .dtype = FOPT_FLOAT32},
                       {.numel = 17, .dtype = last == FOPT_FLOAT16 ? FOPT_FLOAT16 : FOPT_BFLOAT16, .param_off = 1},
                       {.numel = 33, .dtype = last, .grad_off = 3}};
    mx_set *s = mx_set_make(c, spec, 3, 1);
    test_rng r = test_rng_make(2);
    mx_set_fill_grads(s, &r, -3.0, 0.0, 0);
    return s;
}

static fopt_precision prec(fopt_dtype state, bool mw, bool rem, bool sr)
{
    return (fopt_precision){.state_dtype = state, .master_weights = mw, .master_remainder = rem,
                            .stochastic_rounding = sr, .seed = 5};
}

#define NEED(...) ((const char *const[]){__VA_ARGS__, NULL})

Test(mixed_bad_input, unusable_precision_settings_are_rejected_naming_the_tensor_and_field)
{
    for (size_t vi = 0; vi < fopt_variant_count; vi++) {
        const fopt_variant *v = &fopt_variants[vi];
        char label[160];
        fopt_step_options o = all_options();
        /* fp16 states: not supported (the request is valid, this library cannot serve it) */
        {
            mx_config c = mx_config_make(v, prec(FOPT_FLOAT32, false, false, false));
            mx_set *s = base_set(&c, FOPT_BFLOAT16);
            mx_precision_mut(&c)->state_dtype = FOPT_FLOAT16;
            snprintf(label, sizeof label, "%s, fp16 state_dtype", v->name);
            expect_rejected(&c, 1, s->t, 3, &o, s, NULL, 0, FOPT_ERROR_NOT_SUPPORTED, NEED("state_dtype"), label);
            mx_precision_mut(&c)->state_dtype = (fopt_dtype)5;
            snprintf(label, sizeof label, "%s, unknown state_dtype", v->name);
            expect_rejected(&c, 1, s->t, 3, &o, s, NULL, 0, FOPT_ERROR_INVALID_VALUE, NEED("state_dtype"), label);
            mx_set_free(s);
        }
        /* master buffers */
        {
            mx_config c = mx_config_make(v, prec(FOPT_BFLOAT16, true, false, false));
            mx_set *s = base_set(&c, FOPT_BFLOAT16);
            fopt_host_tensor *t = list_of(s);
            t[2].master = NULL;
            snprintf(label, sizeof label, "%s, bf16 param with master_weights but no master", v->name);
            expect_rejected(&c, 1, t, 3, &o, s, NULL, 0, FOPT_ERROR_INVALID_VALUE, NEED("tensor 2", "master"), label);
            free(t);
            t = list_of(s);
            t[2].dtype = FOPT_FLOAT32; /* 16 floats fit the buffers of 33 bf16 values */
            t[2].numel = 16;
            snprintf(label, sizeof label, "%s, a master buffer for fp32 params", v->name);
            expect_rejected(&c, 1, t, 3, &o, s, NULL, 0, FOPT_ERROR_INVALID_VALUE, NEED("tensor 2", "master", "fp32"),
                            label);
            free(t);
            mx_set_free(s);
        }
        {
            mx_config c = mx_config_make(v, prec(FOPT_FLOAT32, true, false, false));
            mx_set *s = base_set(&c, FOPT_BFLOAT16);
            mx_precision_mut(&c)->master_weights = false;
            snprintf(label, sizeof label, "%s, a master buffer with master_weights off", v->name);
            expect_rejected(&c, 1, s->t, 3, &o, s, NULL, 0, FOPT_ERROR_INVALID_VALUE,
                            NEED("tensor 1", "master", "master_weights"), label);
            mx_set_free(s);
        }
        /* fp16 params cannot round stochastically nor keep remainders: not supported */
        {
            mx_config c = mx_config_make(v, prec(FOPT_FLOAT32, false, false, true));
            mx_set *s = base_set(&c, FOPT_FLOAT16);
            snprintf(label, sizeof label, "%s, stochastic rounding with fp16 params", v->name);
            expect_rejected(&c, 1, s->t, 3, &o, s, NULL, 0, FOPT_ERROR_NOT_SUPPORTED,
                            NEED("tensor 1", "stochastic_rounding"), label);
            mx_set_free(s);
            mx_config c2 = mx_config_make(v, prec(FOPT_FLOAT32, true, false, false));
            s = base_set(&c2, FOPT_FLOAT16);
            mx_precision_mut(&c2)->master_remainder = true;
            snprintf(label, sizeof label, "%s, master_remainder with fp16 params", v->name);
            expect_rejected(&c2, 1, s->t, 3, &o, s, NULL, 0, FOPT_ERROR_NOT_SUPPORTED,
                            NEED("tensor 1", "master_remainder"), label);
            mx_set_free(s);
        }
        /* inconsistent precision settings */
        {
            mx_config c = mx_config_make(v, prec(FOPT_FLOAT32, false, false, false));
            mx_set *s = base_set(&c, FOPT_BFLOAT16);
            mx_precision_mut(&c)->master_remainder = true;
            snprintf(label, sizeof label, "%s, master_remainder without master_weights", v->name);
            expect_rejected(&c, 1, s->t, 3, &o, s, NULL, 0, FOPT_ERROR_INVALID_VALUE, NEED("master_remainder"), label);
            mx_set_free(s);
            mx_config c2 = mx_config_make(v, prec(FOPT_FLOAT32, true, false, false));
            s = base_set(&c2, FOPT_BFLOAT16);
            mx_precision_mut(&c2)->stochastic_rounding = true;
            snprintf(label, sizeof label, "%s, stochastic rounding with master weights", v->name);
            expect_rejected(&c2, 1, s->t, 3, &o, s, NULL, 0, FOPT_ERROR_INVALID_VALUE, NEED("stochastic_rounding"),
                            label);
            mx_set_free(s);
        }
        /* unknown dtype */
        {
            mx_config c = mx_config_make(v, prec(FOPT_FLOAT32, false, false, false));
            mx_set *s = base_set(&c, FOPT_BFLOAT16);
            fopt_host_tensor *t = list_of(s);
            t[2].dtype = (fopt_dtype)7;
            snprintf(label, sizeof label, "%s, unknown dtype", v->name);
            expect_rejected(&c, 1, t, 3, &o, s, NULL, 0, FOPT_ERROR_INVALID_VALUE, NEED("tensor 2", "dtype"), label);
            free(t);
            mx_set_free(s);
        }
    }
}

Test(mixed_bad_input, missing_buffers_are_rejected_naming_the_tensor_and_field)
{
    static const char *const adam_names[3] = {"exp_avg (state[0])", "exp_avg_sq (state[1])", "max_exp_avg_sq (state[2])"};
    static const char *const rms_names[3] = {"square_avg (state[0])", "momentum_buffer (state[1])", "grad_avg (state[2])"};
    for (size_t vi = 0; vi < fopt_variant_count; vi++) {
        const fopt_variant *v = &fopt_variants[vi];
        char label[160];
        fopt_step_options o = all_options();
        for (int sdt = 0; sdt < 2; sdt++) {
            mx_config c = mx_config_make(v, prec(sdt ? FOPT_BFLOAT16 : FOPT_FLOAT32, true, false, false));
            mx_set *s = base_set(&c, FOPT_BFLOAT16);
            const unsigned states = mx_states(&c);
            cr_assert_eq(states, fopt_variant_states(v));
            for (int j = 0; j < 3; j++) {
                if (!(states >> j & 1u))
                    continue;
                fopt_host_tensor *t = list_of(s);
                t[2].state[j] = NULL;
                snprintf(label, sizeof label, "%s, NULL state %d", v->name, j);
                expect_rejected(&c, 1, t, 3, &o, s, NULL, 0, FOPT_ERROR_INVALID_VALUE,
                                NEED("tensor 2", (v->adam ? adam_names : rms_names)[j]), label);
                free(t);
            }
            const char *fields[2] = {"param", "grad"};
            for (int f = 0; f < 2; f++) {
                fopt_host_tensor *t = list_of(s);
                if (f == 0)
                    t[2].param = NULL;
                else
                    t[2].grad = NULL;
                snprintf(label, sizeof label, "%s, NULL %s", v->name, fields[f]);
                expect_rejected(&c, 1, t, 3, &o, s, NULL, 0, FOPT_ERROR_INVALID_VALUE, NEED("tensor 2", fields[f]),
                                label);
                free(t);
            }
            /* NULL tensors with a count; NULL config */
            expect_rejected(&c, 1, NULL, 3, &o, s, NULL, 0, FOPT_ERROR_INVALID_VALUE, NEED("tensors"), "NULL list");
            mx_set_free(s);
        }
    }
    /* NULL configs on every multi entry point */
    fopt_host_tensor t = {0};
    cr_expect_eq(fopt_adam_step_ref_multi(NULL, 1, &t, 1, NULL), FOPT_ERROR_INVALID_VALUE);
    cr_expect_eq(fopt_adam_step_cpu_multi(NULL, 1, &t, 1, NULL), FOPT_ERROR_INVALID_VALUE);
    cr_expect_eq(fopt_rmsprop_step_ref_multi(NULL, 1, &t, 1, NULL), FOPT_ERROR_INVALID_VALUE);
    cr_expect_eq(fopt_rmsprop_step_cpu_multi(NULL, 1, &t, 1, NULL), FOPT_ERROR_INVALID_VALUE);
}

Test(mixed_bad_input, overlapping_buffers_are_rejected_and_touching_ones_accepted)
{
    for (size_t vi = 0; vi < fopt_variant_count; vi++) {
        const fopt_variant *v = &fopt_variants[vi];
        char label[160];
        fopt_step_options o = all_options();
        mx_config c = mx_config_make(v, prec(FOPT_FLOAT32, true, false, false));
        mx_set *s = base_set(&c, FOPT_FLOAT32); /* fp32, bf16 (with master), fp32 */
        /* tensor 2's param inside tensor 0's first state */
        fopt_host_tensor *t = list_of(s);
        t[2].param = (float *)s->t[0].state[0] + 10;
        snprintf(label, sizeof label, "%s, a param overlapping another tensor's state", v->name);
        expect_rejected(&c, 1, t, 3, &o, s, NULL, 0, FOPT_ERROR_INVALID_VALUE, NEED("overlap", "tensor 0", "tensor 2"),
                        label);
        /* grad == param */
        memcpy(t, s->t, 3 * sizeof *t);
        t[2].grad = t[2].param;
        snprintf(label, sizeof label, "%s, grad == param", v->name);
        expect_rejected(&c, 1, t, 3, &o, s, NULL, 0, FOPT_ERROR_INVALID_VALUE, NEED("overlap", "param", "grad"), label);
        /* tensor 1's master overlapping tensor 2's grad by one element (aligned: a pointer off by a
         * byte is refused as misaligned before any overlap, tests/test_buffers.c) */
        memcpy(t, s->t, 3 * sizeof *t);
        t[1].master = (char *)s->t[2].grad + 33 * 4 - 4; /* the grad's last element is the master's first */
        snprintf(label, sizeof label, "%s, a master overlapping another tensor's grad by one element", v->name);
        expect_rejected(&c, 1, t, 3, &o, s, NULL, 0, FOPT_ERROR_INVALID_VALUE, NEED("overlap", "tensor 1", "tensor 2"),
                        label);
        /* two states of tensor 2 in one region: overlapping by one element, then touching */
        const size_t n = 33, sb = 4;
        unsigned char *region = aligned_alloc(64, (4 * n * sb + 63) / 64 * 64);
        cr_assert_not_null(region);
        memset(region, 0, 4 * n * sb);
        memcpy(t, s->t, 3 * sizeof *t);
        const unsigned states = mx_states(&c);
        int first = -1, second = -1;
        for (int j = 0; j < 3; j++)
            if (states >> j & 1u) {
                if (first < 0)
                    first = j;
                else if (second < 0)
                    second = j;
            }
        if (second >= 0) {
            t[2].state[first] = region;
            t[2].state[second] = region + (n - 1) * sb;
            snprintf(label, sizeof label, "%s, two states overlapping by one element", v->name);
            expect_rejected(&c, 1, t, 3, &o, s, region, 4 * n * sb, FOPT_ERROR_INVALID_VALUE,
                            NEED("overlap", "tensor 2"), label);
            /* touching (end == begin) is fine, on every path */
            t[2].state[second] = region + n * sb;
            for (int p = 0; p < MX_PATHS; p++)
                cr_assert_eq(mx_step((mx_path)p, &c, 1, t, 3, NULL), FOPT_SUCCESS, "%s: touching buffers: %s", v->name,
                             fopt_last_error());
        }
        free(region);
        free(t);
        mx_set_free(s);
    }
}

Test(mixed_bad_input, hyper_parameters_that_overflow_float_bad_options_and_steps_below_one_are_rejected)
{
    for (size_t vi = 0; vi < fopt_variant_count; vi++) {
        const fopt_variant *v = &fopt_variants[vi];
        char label[160];
        fopt_step_options o = all_options();
        mx_config good = mx_config_make(v, prec(FOPT_BFLOAT16, true, true, false));
        mx_set *s = base_set(&good, FOPT_BFLOAT16);
        for (int which = 0; which < 4; which++) {
            mx_config c = good;
            const char *field;
            if (which == 0) { /* lr 1e39: finite double, inf as a float */
                c.a.lr = c.r.lr = 1e39;
                field = "lr";
            } else if (which == 1) { /* L2 weight decay 1e39 (AdamW: with lr 1, s(1 - lr*wd) = -inf) */
                c.a.weight_decay = c.r.weight_decay = 1e39;
                if (v->adam && v->a.decoupled_weight_decay)
                    c.a.lr = 1.0;
                field = "weight_decay";
            } else if (which == 2) {
                c.a.eps = c.r.eps = 1e39;
                field = "overflow";
            } else {
                if (v->adam)
                    continue;
                c.r.momentum = 1e39;
                field = "overflow";
            }
            snprintf(label, sizeof label, "%s, %s out of float's range", v->name, field);
            expect_rejected(&c, 1, s->t, 3, &o, s, NULL, 0, FOPT_ERROR_INVALID_VALUE, NEED(field), label);
        }
        const double bad_norms[4] = {-1.0, NAN, INFINITY, -0.5};
        for (int b = 0; b < 4; b++) {
            fopt_step_options ob = o;
            ob.max_grad_norm = bad_norms[b];
            snprintf(label, sizeof label, "%s, max_grad_norm %g", v->name, bad_norms[b]);
            expect_rejected(&good, 1, s->t, 3, &ob, s, NULL, 0, FOPT_ERROR_INVALID_VALUE, NEED("max_grad_norm"), label);
        }
        const int64_t bad_steps[3] = {0, -1, INT64_MIN};
        for (int b = 0; b < 3; b++) {
            snprintf(label, sizeof label, "%s, step %lld", v->name, (long long)bad_steps[b]);
            expect_rejected(&good, bad_steps[b], s->t, 3, &o, s, NULL, 0, FOPT_ERROR_INVALID_VALUE, NEED("step"), label);
        }
        mx_set_free(s);
    }
}

/* The flat fp32 entry points: the same rules, nothing written. */
Test(mixed_bad_input, flat_entry_points_reject_bad_precision_and_hyper_parameters_writing_nothing)
{
    enum { N = 37 };
    float buf[5][N + 2];
    for (int b = 0; b < 5; b++)
        for (int i = 0; i < N + 2; i++)
            buf[b][i] = (float)(b * 100 + i) * 0.01f;
    float copy[5][N + 2];
    memcpy(copy, buf, sizeof buf);
    for (size_t vi = 0; vi < fopt_variant_count; vi++) {
        const fopt_variant *v = &fopt_variants[vi];
        for (int which = 0; which < 6; which++) {
            fopt_adam_config a = v->a;
            fopt_rmsprop_config r = v->r;
            fopt_precision *pr = v->adam ? &a.precision : &r.precision;
            fopt_status want = FOPT_ERROR_INVALID_VALUE;
            const char *field = NULL;
            int64_t step = 1;
            switch (which) {
            case 0: pr->state_dtype = FOPT_FLOAT16; want = FOPT_ERROR_NOT_SUPPORTED; field = "state_dtype"; break;
            case 1: pr->state_dtype = FOPT_BFLOAT16; field = "state_dtype"; break; /* the flat ones keep fp32 */
            case 2: pr->master_remainder = true; field = "master_remainder"; break;
            case 3: a.lr = r.lr = 1e39; field = "lr"; break;
            case 4: step = 0; field = "step"; break;
            default: pr->state_dtype = (fopt_dtype)9; field = "state_dtype"; break;
            }
            for (int path = 0; path < 2; path++) {
                fopt_status st;
                if (v->adam)
                    st = (path ? fopt_adam_step_cpu : fopt_adam_step_ref)(&a, step, N, buf[0] + 1, buf[1] + 1,
                                                                          buf[2] + 1, buf[3] + 1, buf[4] + 1);
                else if (step < 1)
                    continue; /* the flat RMSprop entry points take no step */
                else
                    st = (path ? fopt_rmsprop_step_cpu : fopt_rmsprop_step_ref)(&r, N, buf[0] + 1, buf[1] + 1,
                                                                                buf[2] + 1, buf[3] + 1, buf[4] + 1);
                cr_assert_eq(st, want, "%s, flat %s, case %d: %s, want %s (%s)", v->name, path ? "cpu" : "ref", which,
                             fopt_status_string(st), fopt_status_string(want), fopt_last_error());
                cr_assert(strstr(fopt_last_error(), field), "%s, flat, case %d: the message does not name %s: %s",
                          v->name, which, field, fopt_last_error());
                cr_assert(memcmp(buf, copy, sizeof buf) == 0, "%s, flat %s, case %d wrote", v->name,
                          path ? "cpu" : "ref", which);
            }
        }
        /* master_weights and stochastic_rounding mean nothing for fp32 params: accepted, the same result */
        fopt_adam_config a = v->a;
        fopt_rmsprop_config r = v->r;
        fopt_precision *pr = v->adam ? &a.precision : &r.precision;
        float plain[5][N], other[5][N];
        for (int b = 0; b < 5; b++)
            for (int i = 0; i < N; i++)
                plain[b][i] = other[b][i] = b == 1 ? (float)(i - 18) * 0.1f : b == 0 ? 0.5f : 0.0f;
        if (v->adam)
            cr_assert_eq(fopt_adam_step_ref(&a, 1, N, plain[0], plain[1], plain[2], plain[3], plain[4]), FOPT_SUCCESS);
        else
            cr_assert_eq(fopt_rmsprop_step_ref(&r, N, plain[0], plain[1], plain[2], plain[3], plain[4]), FOPT_SUCCESS);
        pr->master_weights = true;
        pr->stochastic_rounding = false;
        for (int twice = 0; twice < 2; twice++) {
            float o2[5][N];
            memcpy(o2, other, sizeof o2);
            fopt_status st = v->adam ? fopt_adam_step_cpu(&a, 1, N, o2[0], o2[1], o2[2], o2[3], o2[4])
                                     : fopt_rmsprop_step_cpu(&r, N, o2[0], o2[1], o2[2], o2[3], o2[4]);
            cr_assert_eq(st, FOPT_SUCCESS, "%s: %s", v->name, fopt_last_error());
            cr_assert(memcmp(o2[0], plain[0], sizeof o2[0]) == 0, "%s: a precision flag changed an fp32 step", v->name);
            pr->master_weights = false;
            pr->stochastic_rounding = true;
        }
    }
}

Test(mixed_bad_input, grad_sq_sum_entry_points_reject_bad_lists_and_write_nothing)
{
    mx_config c = mx_config_make(mx_variant("adam"), prec(FOPT_FLOAT32, false, false, false));
    mx_set *s = base_set(&c, FOPT_FLOAT16);
    fopt_host_tensor *t = list_of(s);
    for (int path = 0; path < 2; path++) {
        fopt_status (*fn)(const fopt_host_tensor *, size_t, const float *, double *) =
            path ? fopt_grad_sq_sum_cpu_multi : fopt_grad_sq_sum_ref_multi;
        double out = -5.0;
        cr_expect_eq(fn(t, 3, NULL, NULL), FOPT_ERROR_INVALID_VALUE);
        cr_expect_eq(fn(NULL, 3, NULL, &out), FOPT_ERROR_INVALID_VALUE);
        t[1].dtype = (fopt_dtype)4;
        cr_expect_eq(fn(t, 3, NULL, &out), FOPT_ERROR_INVALID_VALUE);
        cr_expect(strstr(fopt_last_error(), "tensor 1") && strstr(fopt_last_error(), "dtype"), "%s", fopt_last_error());
        t[1] = s->t[1];
        t[2].grad = NULL;
        cr_expect_eq(fn(t, 3, NULL, &out), FOPT_ERROR_INVALID_VALUE);
        cr_expect(strstr(fopt_last_error(), "tensor 2") && strstr(fopt_last_error(), "grad"), "%s", fopt_last_error());
        cr_expect_eq(out, -5.0, "a rejected call wrote its sum");
        t[2] = s->t[2];
        /* only grads are read: params, states and masters may be anything */
        t[0].param = NULL;
        t[0].state[0] = NULL;
        cr_expect_eq(fn(t, 3, NULL, &out), FOPT_SUCCESS, "%s", fopt_last_error());
        cr_expect(out > 0.0);
        t[0] = s->t[0];
    }
    free(t);
    mx_set_free(s);
}

Test(mixed_bad_input, empty_tensors_may_have_null_buffers_and_a_valid_call_still_runs)
{
    for (size_t vi = 0; vi < fopt_variant_count; vi++) {
        mx_config c = mx_config_make(&fopt_variants[vi], prec(FOPT_BFLOAT16, true, false, false));
        mx_set *s = base_set(&c, FOPT_BFLOAT16);
        fopt_host_tensor *t = malloc(4 * sizeof *t);
        memcpy(t, s->t, 3 * sizeof *t);
        memset(&t[3], 0, sizeof t[3]);
        t[3].dtype = FOPT_BFLOAT16; /* numel 0, every pointer NULL (master too, although master_weights is on) */
        mx_set *before = mx_set_clone(s);
        for (int p = 0; p < MX_PATHS; p++)
            cr_assert_eq(mx_step((mx_path)p, &c, 1, t, 4, NULL), FOPT_SUCCESS, "%s: %s: %s", fopt_variants[vi].name,
                         mx_path_name((mx_path)p), fopt_last_error());
        cr_assert(mx_set_params_changed(before, s) > 0, "the valid call did not run");
        free(t);
        mx_set_free(before);
        mx_set_free(s);
    }
}
