/* Storage conversions: kernels/dtype.h's element functions (the reference's and the kernels') and
 * the fast path's array converters (src/cpu/cpu_convert.c: F16C / AVX-512F for fp16, integer
 * loops for bf16 and remainders) on every instruction set, against oracles written without their
 * bit tricks (tests/mixed.c: the neighbours of a value found from its exponent and significand,
 * the nearer one chosen by exact double arithmetic; and GCC's _Float16 where the compiler has it).
 *
 * Inputs: every 16-bit pattern; float patterns on a sweep (every 97th of all 2^32) plus, for every
 * exponent and both signs, significands around every rounding position (ties at every bit, one
 * below, one above, even and odd kept bits). The NaN rule (tests/test_mixed.c): the software
 * conversion's NaN is documented (0x7e00 / 0x7fc0 with the sign), the instructions' payloads
 * may differ, so for them only NaN-ness counts. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "cpu_internal.h"
#include "dtype.h"
#include "mixed.h"

/* Every 97th float pattern for the fp16 instructions against the software conversion (the
 * cheap comparison), every 997th where an oracle or several converters run per pattern. */
#define SWEEP_STRIDE 97u
#define ORACLE_STRIDE 997u

/* Float patterns near every rounding position of every exponent, both signs. */
static size_t boundary_patterns(uint32_t **out)
{
    uint32_t mant[1024];
    size_t nm = 0;
    for (uint32_t m = 0; m < 8; m++)
        mant[nm++] = m;
    for (uint32_t m = 0; m < 8; m++)
        mant[nm++] = 0x7fffffu - m;
    for (unsigned k = 0; k < 23; k++) {
        const uint32_t bit = 1u << k, above = 0x7fffffu & ~((bit << 1) - 1u);
        const uint32_t highs[4] = {0, (bit << 1) & 0x7fffffu, (3u * (bit << 1)) & above, above};
        for (int h = 0; h < 4; h++)
            for (int d = -1; d <= 1; d++)
                mant[nm++] = ((highs[h] | bit) + (uint32_t)d) & 0x7fffffu;
    }
    uint32_t *p = malloc(2 * 256 * nm * sizeof *p);
    cr_assert_not_null(p);
    size_t n = 0;
    for (uint32_t sign = 0; sign < 2; sign++)
        for (uint32_t e = 0; e < 256; e++)
            for (size_t i = 0; i < nm; i++)
                p[n++] = sign << 31 | e << 23 | mant[i];
    *out = p;
    return n;
}

/* Calls fn on batches of float patterns: the sweep, then the boundaries. Batches have an odd
 * length so that vector loops end with a scalar tail. */
#define BATCH 65521u
typedef void (*batch_fn)(const float *x, size_t n, void *ctx);

static void for_each_pattern(batch_fn fn, void *ctx, uint32_t stride)
{
    float *x = malloc(BATCH * sizeof *x);
    cr_assert_not_null(x);
    size_t n = 0;
    for (uint64_t u = 0; u <= 0xffffffffull; u += stride) {
        x[n++] = mx_float((uint32_t)u);
        if (n == BATCH) {
            fn(x, n, ctx);
            n = 0;
        }
    }
    if (n)
        fn(x, n, ctx);
    uint32_t *b;
    size_t nb = boundary_patterns(&b);
    for (size_t i = 0; i < nb; i += BATCH) {
        size_t m = nb - i < BATCH ? nb - i : BATCH;
        for (size_t j = 0; j < m; j++)
            x[j] = mx_float(b[i + j]);
        fn(x, m, ctx);
    }
    free(b);
    free(x);
}

/* ---- kernels/dtype.h against the oracles ----------------------------------------------------- */

Test(mixed_convert, bf16_upcast_is_the_top_half_and_every_bf16_pattern_round_trips)
{
    for (uint32_t h = 0; h <= 0xffffu; h++) {
        float f = fopt_bf16_to_f32((uint16_t)h);
        cr_assert_eq(mx_bits(f), h << 16, "bf16 0x%04x upcasts to 0x%08x", h, mx_bits(f));
        uint16_t back = fopt_f32_to_bf16(f);
        if (mx_is_nan16((uint16_t)h, FOPT_BFLOAT16))
            cr_assert_eq(back, (h & 0x8000u) | 0x7fc0u, "bf16 NaN 0x%04x comes back as 0x%04x", h, back);
        else
            cr_assert_eq(back, h, "bf16 0x%04x comes back as 0x%04x", h, back);
    }
}

Test(mixed_convert, fp16_upcast_is_exact_for_every_fp16_pattern_and_round_trips)
{
    for (uint32_t h = 0; h <= 0xffffu; h++) {
        float f = fopt_f16_to_f32((uint16_t)h), want = mx_oracle_f16_to_f32((uint16_t)h);
        if (mx_is_nan16((uint16_t)h, FOPT_FLOAT16)) {
            /* NaN keeps its sign and payload */
            cr_assert_eq(mx_bits(f), (h & 0x8000u) << 16 | 0x7f800000u | (h & 0x3ffu) << 13, "fp16 NaN 0x%04x", h);
            cr_assert_eq(fopt_f32_to_f16(f), (h & 0x8000u) | 0x7e00u);
            continue;
        }
        cr_assert_eq(mx_bits(f), mx_bits(want), "fp16 0x%04x upcasts to %a, want %a", h, (double)f, (double)want);
#ifdef __FLT16_MAX__
        _Float16 hf;
        uint16_t hb = (uint16_t)h;
        memcpy(&hf, &hb, 2);
        cr_assert_eq(mx_bits((float)hf), mx_bits(f), "fp16 0x%04x: _Float16 says %a", h, (double)(float)hf);
#endif
        cr_assert_eq(fopt_f32_to_f16(f), h, "fp16 0x%04x comes back as 0x%04x", h, fopt_f32_to_f16(f));
    }
}

static void check_down(const float *x, size_t n, void *ctx)
{
    size_t *ties = ctx;
    for (size_t i = 0; i < n; i++) {
        const uint32_t u = mx_bits(x[i]);
        uint16_t b = fopt_f32_to_bf16(x[i]), bw = mx_oracle_bf16(x[i]);
        if (b != bw)
            cr_assert_fail("bf16 of 0x%08x (%a): 0x%04x, nearest-even 0x%04x", u, (double)x[i], b, bw);
        uint16_t h = fopt_f32_to_f16(x[i]), hw = mx_oracle_f16(x[i]);
        if (h != hw)
            cr_assert_fail("fp16 of 0x%08x (%a): 0x%04x, nearest-even 0x%04x", u, (double)x[i], h, hw);
#ifdef __FLT16_MAX__
        if (!isnan(x[i])) {
            _Float16 hf = (_Float16)x[i];
            uint16_t hb;
            memcpy(&hb, &hf, 2);
            if (hb != hw)
                cr_assert_fail("oracle and _Float16 disagree on 0x%08x: 0x%04x, 0x%04x", u, hw, hb);
        }
#endif
        ties[0] += (u & 0xffffu) == 0x8000u && !isnan(x[i]);
    }
}

Test(mixed_convert, f32_to_bf16_and_fp16_round_to_nearest_even_on_a_sweep_and_at_every_boundary)
{
    size_t ties = 0;
    for_each_pattern(check_down, &ties, ORACLE_STRIDE);
    cr_assert(ties > 1000, "the inputs hold only %zu bf16 ties", ties);
}

/* The named cases: overflow, the largest values, subnormals, ties, zeros, NaN. */
Test(mixed_convert, named_edge_cases_round_as_ieee_says)
{
    static const struct {
        uint32_t x;
        uint16_t f16, bf16;
    } cases[] = {
        {0x477ff000u, 0x7c00, 0x4780},  /* 65520: half an ulp past 65504, the tie goes to even inf */
        {0x477fefffu, 0x7bff, 0x4780},  /* 65519.996: 65504 */
        {0x477fe000u, 0x7bff, 0x4780},  /* 65504 */
        {0xc77ff000u, 0xfc00, 0xc780},  /* -65520: -inf */
        {0x477fff00u, 0x7c00, 0x4780},  /* 65535 */
        {0x7f7fffffu, 0x7c00, 0x7f80},  /* the largest float: inf in both */
        {0x7f7f7fffu, 0x7c00, 0x7f7f},  /* just below bf16's overflow tie */
        {0x7f7f8000u, 0x7c00, 0x7f80},  /* bf16 tie at the top: odd 0x7f7f goes up to inf */
        {0x33800000u, 0x0001, 0x3380},  /* 2^-24: the smallest fp16 subnormal */
        {0x33000000u, 0x0000, 0x3300},  /* 2^-25: tie between 0 and 2^-24, to even 0 */
        {0x33000001u, 0x0001, 0x3300},  /* just above: up */
        {0x33c00000u, 0x0002, 0x33c0},  /* 1.5 * 2^-24: tie, to even 2 */
        {0x34200000u, 0x0002, 0x3420},  /* 2.5 * 2^-24: tie, to even 2 */
        {0x387fc000u, 0x03ff, 0x3880},  /* the largest fp16 subnormal; bf16 rounds it up */
        {0x387fe000u, 0x0400, 0x3880},  /* tie between the largest subnormal and 2^-14: to even */
        {0x38800000u, 0x0400, 0x3880},  /* 2^-14 */
        {0x3f801000u, 0x3c00, 0x3f80},  /* 1 + 2^-11: fp16 tie, to even 1 */
        {0x3f803000u, 0x3c02, 0x3f80},  /* 1 + 3*2^-11: fp16 tie, to even 1 + 2^-9 */
        {0x3f808000u, 0x3c04, 0x3f80},  /* 1 + 2^-8: bf16 tie, to even 1 */
        {0x3f818000u, 0x3c0c, 0x3f82},  /* 1 + 3*2^-8: bf16 tie, to even 1 + 2^-6 */
        {0x3f808001u, 0x3c04, 0x3f81},  /* just above the bf16 tie */
        {0x00000001u, 0x0000, 0x0000},  /* float subnormal: 0 in fp16 and bf16 */
        {0x00008000u, 0x0000, 0x0000},  /* bf16 subnormal tie, to even 0 */
        {0x00018000u, 0x0000, 0x0002},  /* bf16 subnormal tie, odd 1 up to 2 */
        {0x00000000u, 0x0000, 0x0000},  /* +0 */
        {0x80000000u, 0x8000, 0x8000},  /* -0 keeps its sign */
        {0x80000001u, 0x8000, 0x8000},  /* -tiny: -0 */
        {0x7f800000u, 0x7c00, 0x7f80},  /* inf */
        {0xff800000u, 0xfc00, 0xff80},  /* -inf */
        {0x7f800001u, 0x7e00, 0x7fc0},  /* signalling NaN: a quiet NaN, never inf */
        {0xff800001u, 0xfe00, 0xffc0},  /* negative signalling NaN keeps its sign */
        {0x7fc00000u, 0x7e00, 0x7fc0},
        {0x7fffffffu, 0x7e00, 0x7fc0},  /* a NaN whose rounding would carry into the sign */
        {0xffffffffu, 0xfe00, 0xffc0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        float x = mx_float(cases[i].x);
        cr_expect_eq(fopt_f32_to_f16(x), cases[i].f16, "fp16 of 0x%08x: 0x%04x, want 0x%04x", cases[i].x,
                     fopt_f32_to_f16(x), cases[i].f16);
        cr_expect_eq(fopt_f32_to_bf16(x), cases[i].bf16, "bf16 of 0x%08x: 0x%04x, want 0x%04x", cases[i].x,
                     fopt_f32_to_bf16(x), cases[i].bf16);
        /* the oracles agree with the table too */
        cr_expect_eq(mx_oracle_f16(x), cases[i].f16, "oracle fp16 of 0x%08x", cases[i].x);
        cr_expect_eq(mx_oracle_bf16(x), cases[i].bf16, "oracle bf16 of 0x%08x", cases[i].x);
    }
    /* 65519.99 as a decimal literal, as the issue states it */
    cr_expect_eq(fopt_f32_to_f16(65519.99f), 0x7bff);
    cr_expect_eq(fopt_f32_to_f16(65520.0f), 0x7c00);
}

/* ---- master remainders ------------------------------------------------------------------------ */

typedef struct rem_ctx {
    bool oracle;   /* also compare the param with the oracles */
    size_t differ; /* remainder params that differ from nearest-even (exact ties) */
} rem_ctx;

static void check_remainder(const float *x, size_t n, void *vctx)
{
    rem_ctx *c = vctx;
    for (size_t i = 0; i < n; i++) {
        const uint32_t u = mx_bits(x[i]);
        uint16_t p, r;
        fopt_remainder_encode(x[i], &p, &r);
        if (isnan(x[i])) {
            if (p != ((u >> 16 & 0x8000u) | 0x7fc0u) || r != 0)
                cr_assert_fail("NaN 0x%08x encodes as 0x%04x/0x%04x", u, p, r);
            continue;
        }
        const uint32_t back = mx_bits(fopt_remainder_decode(p, r));
        if (back != u)
            cr_assert_fail("0x%08x encodes as param 0x%04x remainder 0x%04x and decodes as 0x%08x", u, p, r, back);
        if (!c->oracle)
            continue;
        if (p != mx_oracle_bf16_ties_away(x[i]))
            cr_assert_fail("0x%08x: remainder param 0x%04x, nearest ties-away 0x%04x", u, p,
                           mx_oracle_bf16_ties_away(x[i]));
        const uint16_t ne = mx_oracle_bf16(x[i]);
        const bool tie = (u & 0xffffu) == 0x8000u;
        if (!tie && p != ne)
            cr_assert_fail("0x%08x is no tie, yet its remainder param 0x%04x is not nearest-even 0x%04x", u, p, ne);
        c->differ += p != ne;
    }
}

Test(mixed_convert, master_remainder_round_trips_every_float_and_rounds_nearest_with_ties_away)
{
    rem_ctx c = {false, 0};
    for_each_pattern(check_remainder, &c, SWEEP_STRIDE);
    c.oracle = true;
    for_each_pattern(check_remainder, &c, ORACLE_STRIDE);
    cr_assert(c.differ > 100, "only %zu ties where ties-away and nearest-even differ", c.differ);
    /* the documented reason: with nearest-even, 2^16 + 1 masters would share an even param */
    uint16_t p, r;
    fopt_remainder_encode(mx_float(0x3f808000u), &p, &r); /* 1 + 2^-8: nearest-even says 0x3f80 */
    cr_expect(p == 0x3f81 && r == 0x8000, "1 + 2^-8: 0x%04x/0x%04x", p, r);
    fopt_remainder_encode(mx_float(0xbf808000u), &p, &r); /* negative: away from zero too */
    cr_expect(p == 0xbf81 && r == 0x8000, "-(1 + 2^-8): 0x%04x/0x%04x", p, r);
    fopt_remainder_encode(mx_float(0xbf807fffu), &p, &r);
    cr_expect(p == 0xbf80 && r == 0x7fff, "-(1 + 2^-8 - 2^-23): 0x%04x/0x%04x", p, r);
    fopt_remainder_encode(mx_float(0x80000000u), &p, &r);
    cr_expect(p == 0x8000 && r == 0, "-0: 0x%04x/0x%04x", p, r);
    fopt_remainder_encode(INFINITY, &p, &r);
    cr_expect(p == 0x7f80 && r == 0, "inf");
}

/* ---- the fast path's converters, every instruction set ---------------------------------------- */

typedef struct conv_ctx {
    uint16_t *a, *b, *c, *d;
    float *f, *g;
    bool all;     /* false: fp16 rounding only */
    size_t nan_payload_differs;
} conv_ctx;

static void check_fast_converters(const float *x, size_t n, void *vctx)
{
    conv_ctx *c = vctx;
    /* software results */
    for (size_t i = 0; i < n; i++)
        c->a[i] = fopt_f32_to_f16(x[i]);
    if (c->all)
        for (size_t i = 0; i < n; i++)
            c->b[i] = fopt_f32_to_bf16(x[i]);
    for (int isa = 0; isa < mx_isa_count(); isa++) {
        const fopt_cpu_convert *cv = fopt_cpu_converter(isa);
        const char *name = mx_isa_name(isa);
        cv->down_f16(x, c->c, n);
        for (size_t i = 0; i < n; i++) {
            if (c->c[i] == c->a[i])
                continue;
            if (mx_is_nan16(c->c[i], FOPT_FLOAT16) && mx_is_nan16(c->a[i], FOPT_FLOAT16)) {
                c->nan_payload_differs++;
                continue;
            }
            cr_assert_fail("%s down_f16(0x%08x) = 0x%04x, software 0x%04x", name, mx_bits(x[i]), c->c[i], c->a[i]);
        }
        if (!c->all)
            continue;
        cv->down_bf16(x, c->c, n);
        for (size_t i = 0; i < n; i++)
            if (c->c[i] != c->b[i])
                cr_assert_fail("%s down_bf16(0x%08x) = 0x%04x, software 0x%04x", name, mx_bits(x[i]), c->c[i], c->b[i]);
        cv->rem_encode(x, c->c, c->d, n);
        for (size_t i = 0; i < n; i++) {
            uint16_t p, r;
            fopt_remainder_encode(x[i], &p, &r);
            if (c->c[i] != p || c->d[i] != r)
                cr_assert_fail("%s rem_encode(0x%08x) = 0x%04x/0x%04x, software 0x%04x/0x%04x", name,
                               mx_bits(x[i]), c->c[i], c->d[i], p, r);
        }
        cv->rem_decode(c->c, c->d, c->f, n);
        for (size_t i = 0; i < n; i++)
            if (!isnan(x[i]) && mx_bits(c->f[i]) != mx_bits(x[i]))
                cr_assert_fail("%s rem_decode of 0x%08x's encoding: 0x%08x", name, mx_bits(x[i]), mx_bits(c->f[i]));
        const uint64_t key = fopt_sr_key(77, 3, 5);
        cv->down_bf16_sr(x, c->c, n, key, 1000);
        for (size_t i = 0; i < n; i++) {
            uint16_t want = fopt_f32_to_bf16_sr(x[i], fopt_sr_random16(key, 1000 + i));
            if (c->c[i] != want)
                cr_assert_fail("%s down_bf16_sr(0x%08x) element %zu = 0x%04x, software 0x%04x", name, mx_bits(x[i]),
                               i, c->c[i], want);
        }
    }
}

Test(mixed_convert, fast_path_converters_of_every_isa_agree_with_the_software_conversion)
{
    conv_ctx c;
    memset(&c, 0, sizeof c);
    c.a = malloc(BATCH * 2);
    c.b = malloc(BATCH * 2);
    c.c = malloc(BATCH * 2);
    c.d = malloc(BATCH * 2);
    c.f = malloc(BATCH * 4);
    c.g = malloc(BATCH * 4);
    cr_assert(c.a && c.b && c.c && c.d && c.f && c.g);
    for_each_pattern(check_fast_converters, &c, SWEEP_STRIDE);
    c.all = true;
    for_each_pattern(check_fast_converters, &c, ORACLE_STRIDE);
    /* upcasts: every 16-bit pattern, at offsets 0..3 so the vector loops see both alignments */
    uint16_t *h = malloc((65536 + 4) * 2);
    float *f = malloc((65536 + 4) * 4);
    cr_assert(h && f);
    for (int off = 0; off < 4; off++) {
        for (uint32_t i = 0; i < 65536; i++)
            h[off + i] = (uint16_t)i;
        for (int isa = 0; isa < mx_isa_count(); isa++) {
            const fopt_cpu_convert *cv = fopt_cpu_converter(isa);
            cv->up_f16(h + off, f + off, 65536 - (size_t)off);
            for (uint32_t i = 0; i + off < 65536; i++) {
                float want = fopt_f16_to_f32((uint16_t)i);
                if (isnan(want) ? !isnan(f[off + i]) : mx_bits(f[off + i]) != mx_bits(want))
                    cr_assert_fail("%s up_f16(0x%04x) = 0x%08x, software 0x%08x", mx_isa_name(isa), i,
                                   mx_bits(f[off + i]), mx_bits(want));
            }
            cv->up_bf16(h + off, f + off, 65536 - (size_t)off);
            for (uint32_t i = 0; i + off < 65536; i++)
                if (mx_bits(f[off + i]) != i << 16)
                    cr_assert_fail("%s up_bf16(0x%04x) = 0x%08x", mx_isa_name(isa), i, mx_bits(f[off + i]));
        }
    }
    cr_log_info("fp16 conversions: %zu NaN inputs gave a NaN with another payload on the conversion "
                "instructions than in software (allowed: NaNs keep their positions, docs/SEMANTICS.md)",
                c.nan_payload_differs);
    free(h);
    free(f);
    free(c.a);
    free(c.b);
    free(c.c);
    free(c.d);
    free(c.f);
    free(c.g);
}

/* Through the public entry point: fp16 params with an fp32 master holding the float patterns, and
 * a step that leaves the master as it is (Adam with lr 0 and zero grads: p + (-0 * 0) / eps), so
 * the new param is the fast path's conversion of the pattern; and every fp16 pattern as a param
 * without master (upcast, unchanged, rounded back) and as a grad of a step whose master becomes
 * -grad exactly (RMSprop with alpha 1, eps 1, lr 1). Every ISA against the software conversion. */
typedef struct multi_ctx {
    mx_set *s;
    mx_config c;
} multi_ctx;

static void check_via_cpu_multi(const float *x, size_t n, void *vctx)
{
    multi_ctx *m = vctx;
    mx_set *s = m->s;
    s->t[0].numel = n;
    for (int isa = 0; isa < mx_isa_count(); isa++) {
        memcpy(s->master[0].p, x, n * 4);
        memset(s->grad[0].p, 0, n * 2);
        memset(s->state[0][0].p, 0, n * 4);
        memset(s->state[1][0].p, 0, n * 4);
        mx_cpu_use(isa, 2);
        cr_assert_eq(fopt_adam_step_cpu_multi(&m->c.a, 1, s->t, 1, NULL), FOPT_SUCCESS, "%s", fopt_last_error());
        const uint16_t *p = s->param[0].p;
        const float *master = s->master[0].p;
        for (size_t i = 0; i < n; i++) {
            const uint16_t want = fopt_f32_to_f16(x[i]);
            if (isnan(x[i]) ? !(isnan(master[i]) && mx_is_nan16(p[i], FOPT_FLOAT16))
                            : (mx_bits(master[i]) != mx_bits(x[i]) || p[i] != want))
                cr_assert_fail("%s: master 0x%08x became 0x%08x and param 0x%04x, want 0x%04x", mx_isa_name(isa),
                               mx_bits(x[i]), mx_bits(master[i]), p[i], want);
        }
    }
}

Test(mixed_convert, fp16_conversions_through_cpu_multi_agree_with_software_on_every_isa)
{
    fopt_precision pr = {.master_weights = true};
    multi_ctx m;
    m.c = mx_config_make(mx_variant("adam"), pr);
    m.c.a.lr = 0.0;
    mx_spec spec = {.numel = BATCH, .dtype = FOPT_FLOAT16, .param_off = 3, .grad_off = 1, .master_off = 0};
    m.s = mx_set_make(&m.c, &spec, 1, 1);
    /* a sparser sweep than the converters' own test: this one goes through the whole step */
    for_each_pattern(check_via_cpu_multi, &m, 7919u);
    mx_set_free(m.s);

    /* every fp16 pattern as a param without master, and as a grad */
    const size_t n = 65536;
    mx_spec sp = {.numel = n, .dtype = FOPT_FLOAT16, .param_off = 0, .grad_off = 5};
    fopt_precision none = {0};
    mx_config plain = mx_config_make(mx_variant("adam"), none);
    plain.a.lr = 0.0;
    mx_config probe = mx_config_make(mx_variant("rmsprop"), pr);
    probe.r.alpha = 1.0;
    probe.r.eps = 1.0;
    probe.r.lr = 1.0;
    for (int isa = 0; isa < mx_isa_count(); isa++) {
        mx_set *a = mx_set_make(&plain, &sp, 1, 2);
        for (size_t i = 0; i < n; i++)
            ((uint16_t *)a->param[0].p)[i] = (uint16_t)i;
        mx_cpu_use(isa, 2);
        cr_assert_eq(mx_step(MX_CPU, &plain, 1, a->t, 1, NULL), FOPT_SUCCESS);
        for (size_t i = 0; i < n; i++) {
            uint16_t h = ((uint16_t *)a->param[0].p)[i];
            if (mx_is_nan16((uint16_t)i, FOPT_FLOAT16) ? !mx_is_nan16(h, FOPT_FLOAT16) : h != i)
                cr_assert_fail("%s: fp16 param 0x%04zx came back as 0x%04x", mx_isa_name(isa), i, h);
        }
        mx_set_free(a);

        mx_set *g = mx_set_make(&probe, &sp, 1, 3), *gr = NULL;
        for (size_t i = 0; i < n; i++) {
            ((uint16_t *)g->grad[0].p)[i] = (uint16_t)i;
            ((float *)g->master[0].p)[i] = 0.0f;
        }
        gr = mx_set_clone(g);
        cr_assert_eq(mx_step(MX_CPU, &probe, 1, g->t, 1, NULL), FOPT_SUCCESS);
        cr_assert_eq(mx_step(MX_REF, &probe, 1, gr->t, 1, NULL), FOPT_SUCCESS);
        char msg[512];
        if (!mx_set_same(g, gr, msg, sizeof msg))
            cr_assert_fail("%s: fp16 grads: %s", mx_isa_name(isa), msg);
        for (size_t i = 0; i < n; i++) { /* and the master is -grad, exactly */
            float gv = fopt_f16_to_f32((uint16_t)i), mv = ((float *)g->master[0].p)[i];
            if (isfinite(gv) && gv != 0.0f && mx_bits(mv) != mx_bits(-gv))
                cr_assert_fail("%s: fp16 grad 0x%04zx gave master %a", mx_isa_name(isa), i, (double)mv);
        }
        mx_set_free(g);
        mx_set_free(gr);
    }
    mx_cpu_reset();
}
