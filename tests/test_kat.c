/* Known answers (tests/data/kat.txt, written by scripts/kat_gen.py from docs/SEMANTICS.md alone)
 * for the functions every path shares: the key and hash of stochastic rounding, stochastic and
 * nearest-even rounding to bf16 and fp16 and the exact upcasts, the master remainder encoding,
 * beta^t, the per-step scalars of Adam/AdamW and RMSprop, the clip coefficient and the fixed-order
 * sum of squares.
 *
 * A change to one of these moves the reference, the fast CPU path and the kernels together, so
 * the bit-identity tests between paths cannot see it; these rows can. Checked here: the element
 * functions of kernels/dtype.h, kernels/scalars.h and kernels/stats.h (which the reference and the
 * kernels compile; the reference has no copies of its own), the fast path's array converters on
 * every instruction set this CPU has (their own vector hash and roundings), the CPU paths' and
 * the device prologue's scalar derivation, and the sums of squares of the reference and the fast
 * path (the device's: tests/test_gpu_stats.c). A failure names the row: kat.txt:LINE and its text.
 *
 * NaN: the software conversions' NaNs are the documented ones (sign | 0x7fc0, sign | 0x7e00);
 * where the fast path converts fp16 with F16C / AVX-512F instructions only NaN-ness counts. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "cpu_internal.h"
#include "dtype.h"
#include "internal.h"
#include "kat.h"
#if FOPT_TEST_KERNELS /* the device prologue (kernels/stats.cu); a build without CUDA has none */
#include "launch.h"
#endif
#include "scalars.h"
#include "stats.h"

/* got == want, or both NaN patterns when nan_any (fp32 bits). */
static int same_f32(uint64_t got, uint64_t want, int nan_any)
{
    if (nan_any && isnan(kat_f32(want)))
        return isnan(kat_f32(got));
    return got == want;
}

#define KAT_EXPECT(r, got, want, what)                                                             \
    cr_expect_eq((uint64_t)(got), (uint64_t)(want), "kat.txt:%d: %s: %s is %llx, want %llx", (r)->line, \
                 (r)->text, what, (unsigned long long)(got), (unsigned long long)(want))
#define KAT_EXPECT_F32(r, got, want, nan_any, what)                                                \
    cr_expect(same_f32(got, want, nan_any), "kat.txt:%d: %s: %s is %08llx, want %08llx", (r)->line, \
              (r)->text, what, (unsigned long long)(got), (unsigned long long)(want))

/* ---- stochastic rounding: key, bits, result ---- */

Test(kat, hash_and_key_of_stochastic_rounding_are_the_documented_functions)
{
    size_t n;
    const kat_row *r = kat_rows("mix64", 1, 1, 5, &n);
    for (size_t i = 0; i < n; i++)
        KAT_EXPECT(&r[i], fopt_mix64(r[i].in[0]), r[i].out[0], "mix64");
    r = kat_rows("h32", 1, 1, 5, &n);
    for (size_t i = 0; i < n; i++)
        KAT_EXPECT(&r[i], fopt_hash32((uint32_t)r[i].in[0]), r[i].out[0], "h32");
    r = kat_rows("sr", 5, 3, 100, &n);
    for (size_t i = 0; i < n; i++) {
        const uint64_t *in = r[i].in, *out = r[i].out;
        const uint64_t key = fopt_sr_key(in[0], (int64_t)in[1], in[2]);
        KAT_EXPECT(&r[i], key, out[0], "key");
        KAT_EXPECT(&r[i], fopt_sr_random16(out[0], in[3]), out[1], "r16");
        /* the kernels' form: the high half's hash once per 2^32 elements */
        KAT_EXPECT(&r[i], fopt_sr_bits(out[0], fopt_sr_high(out[0], in[3]), in[3]), out[1], "r16 (high cached)");
        KAT_EXPECT(&r[i], fopt_f32_to_bf16_sr(kat_f32(in[4]), (uint32_t)out[1]), out[2], "bf16");
    }
}

Test(kat, stochastic_rounding_of_given_random_bits)
{
    size_t n;
    const kat_row *r = kat_rows("bf16_sr", 2, 1, 50, &n);
    for (size_t i = 0; i < n; i++)
        KAT_EXPECT(&r[i], fopt_f32_to_bf16_sr(kat_f32(r[i].in[0]), (uint32_t)r[i].in[1]), r[i].out[0], "bf16");
}

/* ---- nearest-even conversions, upcasts, remainders (kernels/dtype.h) ---- */

Test(kat, bf16_and_fp16_conversions_and_upcasts)
{
    size_t n;
    const kat_row *r = kat_rows("bf16_rne", 1, 1, 30, &n);
    for (size_t i = 0; i < n; i++)
        KAT_EXPECT(&r[i], fopt_f32_to_bf16(kat_f32(r[i].in[0])), r[i].out[0], "bf16");
    r = kat_rows("f16_rne", 1, 1, 30, &n);
    for (size_t i = 0; i < n; i++)
        KAT_EXPECT(&r[i], fopt_f32_to_f16(kat_f32(r[i].in[0])), r[i].out[0], "fp16");
    r = kat_rows("bf16_up", 1, 1, 10, &n);
    for (size_t i = 0; i < n; i++)
        KAT_EXPECT(&r[i], kat_f32_bits(fopt_bf16_to_f32((uint16_t)r[i].in[0])), r[i].out[0], "fp32");
    r = kat_rows("f16_up", 1, 1, 10, &n);
    for (size_t i = 0; i < n; i++)
        KAT_EXPECT(&r[i], kat_f32_bits(fopt_f16_to_f32((uint16_t)r[i].in[0])), r[i].out[0], "fp32");
}

Test(kat, master_remainder_encoding_and_decoding)
{
    size_t n;
    const kat_row *r = kat_rows("rem_enc", 1, 2, 20, &n);
    for (size_t i = 0; i < n; i++) {
        uint16_t p, rem;
        fopt_remainder_encode(kat_f32(r[i].in[0]), &p, &rem);
        KAT_EXPECT(&r[i], p, r[i].out[0], "param");
        KAT_EXPECT(&r[i], rem, r[i].out[1], "remainder");
    }
    r = kat_rows("rem_dec", 2, 1, 5, &n);
    for (size_t i = 0; i < n; i++)
        KAT_EXPECT(&r[i], kat_f32_bits(fopt_remainder_decode((uint16_t)r[i].in[0], (uint16_t)r[i].in[1])),
                   r[i].out[0], "master");
}

/* ---- the fast path's array converters (src/cpu/cpu_convert.c) ---- */

/* Every row's input in one array, converted from offsets 0, 1 and 5 (other lanes, scalar tails). */
#define CONVERT_OFFSETS 3
static const size_t convert_offset[CONVERT_OFFSETS] = {0, 1, 5};

typedef struct conv_case {
    const char *kind;
    int nin, nout;
    int fp16; /* converted by instructions above the scalar ISA: NaN-ness only */
} conv_case;

/* Runs converter `which` (CONV_CASES' index) of cv over the inputs of rows r[o..n): the outputs in
 * out0 (and the remainders in out1). */
static void run_converter(const fopt_cpu_convert *cv, int which, const kat_row *r, size_t n, size_t o,
                          uint32_t *out0, uint32_t *out1)
{
    float *f = calloc(n + 1, sizeof *f);
    uint16_t *h = calloc(n + 1, sizeof *h), *h2 = calloc(n + 1, sizeof *h2);
    cr_assert(f && h && h2);
    for (size_t i = 0; i < n; i++) {
        f[i] = kat_f32(r[i].in[0]);
        h[i] = (uint16_t)r[i].in[0];
        h2[i] = r[i].nin > 1 ? (uint16_t)r[i].in[1] : 0;
    }
    float *fo = calloc(n + 1, sizeof *fo);
    uint16_t *ho = calloc(n + 1, sizeof *ho), *ho2 = calloc(n + 1, sizeof *ho2);
    cr_assert(fo && ho && ho2);
    switch (which) {
    case 0: cv->down_bf16(f + o, ho + o, n - o); break;
    case 1: cv->down_f16(f + o, ho + o, n - o); break;
    case 2: cv->up_bf16(h + o, fo + o, n - o); break;
    case 3: cv->up_f16(h + o, fo + o, n - o); break;
    case 4: cv->rem_encode(f + o, ho + o, ho2 + o, n - o); break;
    default: cv->rem_decode(h + o, h2 + o, fo + o, n - o); break;
    }
    for (size_t i = o; i < n; i++) {
        out0[i] = which == 2 || which == 3 || which == 5 ? kat_f32_bits(fo[i]) : ho[i];
        out1[i] = ho2[i];
    }
    free(f), free(h), free(h2), free(fo), free(ho), free(ho2);
}

static const conv_case CONV_CASES[] = {
    {"bf16_rne", 1, 1, 0}, {"f16_rne", 1, 1, 1}, {"bf16_up", 1, 1, 0},
    {"f16_up", 1, 1, 1},   {"rem_enc", 1, 2, 0}, {"rem_dec", 2, 1, 0},
};

Test(kat, fast_path_converters_on_every_instruction_set)
{
    int isas = 0;
    for (int isa = FOPT_CPU_ISA_SCALAR; isa <= (int)fopt_cpu_isa_max(); isa++, isas++) {
        const fopt_cpu_convert *cv = fopt_cpu_converter(isa);
        for (int c = 0; c < (int)(sizeof CONV_CASES / sizeof CONV_CASES[0]); c++) {
            size_t n;
            const kat_row *r = kat_rows(CONV_CASES[c].kind, CONV_CASES[c].nin, CONV_CASES[c].nout, 10, &n);
            uint32_t *o0 = calloc(n, 4), *o1 = calloc(n, 4);
            cr_assert(o0 && o1);
            for (int k = 0; k < CONVERT_OFFSETS; k++) {
                const size_t off = convert_offset[k];
                run_converter(cv, c, r, n, off, o0, o1);
                const int nan_any = CONV_CASES[c].fp16 && isa != FOPT_CPU_ISA_SCALAR;
                for (size_t i = off; i < n; i++) {
                    char what[64];
                    snprintf(what, sizeof what, "%s converter, offset %zu", fopt_cpu_isa_name(isa), off);
                    if (c == 1 && nan_any) /* fp16 result: NaN-ness of a half */
                        cr_expect(((r[i].out[0] & 0x7fff) > 0x7c00) ? (o0[i] & 0x7fff) > 0x7c00 : o0[i] == r[i].out[0],
                                  "kat.txt:%d: %s: %s gives %x, want %llx", r[i].line, r[i].text, what, o0[i],
                                  (unsigned long long)r[i].out[0]);
                    else
                        KAT_EXPECT_F32(&r[i], o0[i], r[i].out[0], nan_any, what);
                    if (r[i].nout > 1)
                        KAT_EXPECT(&r[i], o1[i], r[i].out[1], what);
                }
            }
            free(o0), free(o1);
        }
    }
    cr_log_info("kat: fast-path converters checked on %d instruction sets", isas);
}

/* Each sr row's element inside a run of ROW_RUN elements that starts up to 20 before it (so it
 * sits in the vector part, and runs cross 2^32 boundaries). */
#define ROW_RUN 39

Test(kat, fast_path_stochastic_rounding_on_every_instruction_set)
{
    size_t n;
    const kat_row *r = kat_rows("sr", 5, 3, 100, &n);
    for (int isa = FOPT_CPU_ISA_SCALAR; isa <= (int)fopt_cpu_isa_max(); isa++) {
        const fopt_cpu_convert *cv = fopt_cpu_converter(isa);
        for (size_t i = 0; i < n; i++) {
            const uint64_t e = r[i].in[3];
            uint64_t j = e < 20 ? e : 20;
            if (UINT64_MAX - e < ROW_RUN - 1 - j)
                j = ROW_RUN - 1 - (UINT64_MAX - e);
            float x[ROW_RUN];
            uint16_t d[ROW_RUN];
            for (int k = 0; k < ROW_RUN; k++)
                x[k] = kat_f32(r[i].in[4]);
            cv->down_bf16_sr(x, d, ROW_RUN, r[i].out[0], e - j);
            cr_expect_eq(d[j], r[i].out[2], "kat.txt:%d: %s: %s converter gives %x at position %llu, want %llx",
                         r[i].line, r[i].text, fopt_cpu_isa_name(isa), d[j], (unsigned long long)j,
                         (unsigned long long)r[i].out[2]);
        }
    }
}

/* ---- scalars (kernels/scalars.h): host, CPU paths, device prologue ---- */

Test(kat, beta_to_the_t_by_repeated_squaring)
{
    size_t n;
    const kat_row *r = kat_rows("powi", 2, 1, 30, &n);
    for (size_t i = 0; i < n; i++) {
        KAT_EXPECT(&r[i], kat_f64_bits(fopt_powi(kat_f64(r[i].in[0]), (int64_t)r[i].in[1])), r[i].out[0], "beta^t");
    }
}

#if FOPT_TEST_KERNELS
/* The prologue's derivation of group 0 for this config, lr, wd and step (host-known count). */
static fopt_group_scalars prologue_scalars(const fopt_desc *d, const void *cfg, double lr, double wd, int64_t step)
{
    fopt_device_hparams hp;
    fopt_scalars out;
    memset(&hp, 0, sizeof hp);
    memset(&out, 0xa5, sizeof out);
    fopt_prologue_args a;
    memset(&a, 0, sizeof a);
    a.enabled = 1;
    a.kind = d->kind;
    a.cfg = fopt_cfg_copy(d, cfg);
    a.hp = &hp;
    a.out = &out;
    a.host_step = step - 1;
    a.group_count = 1;
    a.lr[0] = lr;
    a.wd[0] = wd;
    fopt_prologue_run(&a);
    cr_assert_eq(out.step, step);
    return out.group[0];
}

#endif

typedef void scalars_check(const kat_row *r, const fopt_group_scalars *g, const char *who);

/* Row r's scalars as the CPU paths and the device prologue derive them for cfg (of optimizer d),
 * lr, wd and step. */
static void expect_cpu_and_device(const kat_row *r, const fopt_desc *d, const void *cfg, double lr, double wd,
                                  int64_t step, scalars_check *expect)
{
    const fopt_any_config any = fopt_cfg_copy(d, cfg);
    const fopt_group_scalars cpu = fopt_cpu_scalars(d, &any, step);
    expect(r, &cpu, "fopt_cpu_scalars");
#if FOPT_TEST_KERNELS
    const fopt_group_scalars dev = prologue_scalars(d, cfg, lr, wd, step);
    expect(r, &dev, "device prologue");
#else
    (void)lr;
    (void)wd;
#endif
}

static void expect_adam(const kat_row *r, const fopt_group_scalars *g, const char *who)
{
    const fopt_adam_scalars *s = &g->adam;
    const float f[9] = {s->lerp_w, s->lerp_1mw, s->beta2, s->one_minus_beta2, s->eps, s->weight_decay, s->decay,
                        s->neg_step_size, s->bc2_sqrt};
    const int at[9] = {0, 1, 3, 4, 5, 6, 7, 8, 9}; /* their outputs; 2 and 10 are flags */
    static const char *names[9] = {"lerp_w", "lerp_1mw", "beta2", "one_minus_beta2", "eps", "weight_decay",
                                   "decay", "neg_step_size", "bc2_sqrt"};
    char what[96];
    for (int k = 0; k < 9; k++) {
        snprintf(what, sizeof what, "%s %s", who, names[k]);
        KAT_EXPECT(r, kat_f32_bits(f[k]), r->out[at[k]], what);
    }
    snprintf(what, sizeof what, "%s lerp_from_end", who);
    KAT_EXPECT(r, s->lerp_from_end, r->out[2], what);
    snprintf(what, sizeof what, "%s l2", who);
    KAT_EXPECT(r, s->l2, r->out[10], what);
}

/* The row's first inputs, read as fp64 bits, into the fields `to` names (NULL-terminated). */
static void kat_set_f64(const kat_row *r, double *const *to)
{
    for (int k = 0; to[k]; k++)
        *to[k] = kat_f64(r->in[k]);
}

/* An adam row's config: beta1, beta2, eps, lr, weight_decay (fp64 bits), decoupled. */
static fopt_adam_config adam_row_config(const kat_row *r)
{
    fopt_adam_config cfg = fopt_adam_config_default();
    kat_set_f64(r, (double *[]){&cfg.beta1, &cfg.beta2, &cfg.eps, &cfg.lr, &cfg.weight_decay, NULL});
    cfg.decoupled_weight_decay = r->in[5] != 0;
    return cfg;
}

/* An rmsprop row's config: alpha, eps, lr, weight_decay, momentum (fp64 bits). */
static fopt_rmsprop_config rmsprop_row_config(const kat_row *r)
{
    fopt_rmsprop_config cfg = fopt_rmsprop_config_default();
    kat_set_f64(r, (double *[]){&cfg.alpha, &cfg.eps, &cfg.lr, &cfg.weight_decay, &cfg.momentum, NULL});
    return cfg;
}

Test(kat, adam_scalars_on_the_host_the_cpu_paths_and_the_device_prologue)
{
    size_t n;
    const kat_row *r = kat_rows("adam", 7, 11, 30, &n);
    for (size_t i = 0; i < n; i++) {
        const fopt_adam_config cfg = adam_row_config(&r[i]);
        const int64_t step = (int64_t)r[i].in[6];
        const fopt_group_scalars s = {.adam = fopt_adam_scalars_make(&cfg, cfg.lr, cfg.weight_decay, step)};
        expect_adam(&r[i], &s, "fopt_adam_scalars_make");
        expect_cpu_and_device(&r[i], &fopt_adam_desc, &cfg, cfg.lr, cfg.weight_decay, step, expect_adam);
    }
}

static void expect_rmsprop(const kat_row *r, const fopt_group_scalars *g, const char *who)
{
    const fopt_rmsprop_scalars *s = &g->rmsprop;
    const uint64_t got[10] = {kat_f32_bits(s->alpha), kat_f32_bits(s->one_minus_alpha), kat_f32_bits(s->lerp_1mw),
                              (uint64_t)s->lerp_from_end, kat_f32_bits(s->eps), kat_f32_bits(s->weight_decay),
                              kat_f32_bits(s->momentum), kat_f32_bits(s->neg_lr), (uint64_t)s->l2,
                              (uint64_t)s->use_momentum};
    static const char *names[10] = {"alpha", "one_minus_alpha", "lerp_1mw", "lerp_from_end", "eps",
                                    "weight_decay", "momentum", "neg_lr", "l2", "use_momentum"};
    char what[96];
    for (int k = 0; k < 10; k++) {
        snprintf(what, sizeof what, "%s %s", who, names[k]);
        KAT_EXPECT(r, got[k], r->out[k], what);
    }
}

Test(kat, rmsprop_scalars_on_the_host_the_cpu_paths_and_the_device_prologue)
{
    size_t n;
    const kat_row *r = kat_rows("rmsprop", 5, 10, 8, &n);
    for (size_t i = 0; i < n; i++) {
        const fopt_rmsprop_config cfg = rmsprop_row_config(&r[i]);
        const fopt_group_scalars s = {.rmsprop = fopt_rmsprop_scalars_make(&cfg, cfg.lr, cfg.weight_decay)};
        expect_rmsprop(&r[i], &s, "fopt_rmsprop_scalars_make");
        expect_cpu_and_device(&r[i], &fopt_rmsprop_desc, &cfg, cfg.lr, cfg.weight_decay, 1, expect_rmsprop);
    }
}

/* ---- statistics (kernels/stats.h) ---- */

Test(kat, grad_norm_clip_coefficient_and_inf_check_of_a_sum_of_squares)
{
    size_t n;
    const kat_row *r = kat_rows("clip", 2, 3, 30, &n);
    for (size_t i = 0; i < n; i++) {
        const double total = kat_f64(r[i].in[0]), max_norm = kat_f64(r[i].in[1]);
        KAT_EXPECT_F32(&r[i], kat_f32_bits((float)sqrt(total)), r[i].out[0], 1, "grad_norm");
        KAT_EXPECT_F32(&r[i], kat_f32_bits(fopt_stat_clip_coef(total, max_norm)), r[i].out[1], 1, "coef");
        KAT_EXPECT(&r[i], fopt_stat_bad(total), r[i].out[2], "found_inf");
    }
}

Test(kat, sums_of_squares_of_the_reference_and_the_fast_path_in_the_fixed_order)
{
    size_t n;
    const kat_row *r = kat_rows("sqsum", -1, 1, 8, &n);
    for (size_t i = 0; i < n; i++) {
        kat_sqsum s;
        kat_sqsum_make(&r[i], &s);
        double ref = -1.0, cpu = -1.0;
        cr_assert_eq(fopt_grad_sq_sum_ref_multi(s.tensors, s.count, s.scale, &ref), FOPT_SUCCESS);
        KAT_EXPECT(&r[i], kat_f64_bits(ref), r[i].out[0], "reference sum");
        for (int threads = 1; threads <= 3; threads += 2) {
            cr_assert_eq(fopt_cpu_set_threads(threads), FOPT_SUCCESS);
            cr_assert_eq(fopt_grad_sq_sum_cpu_multi(s.tensors, s.count, s.scale, &cpu), FOPT_SUCCESS);
            KAT_EXPECT(&r[i], kat_f64_bits(cpu), r[i].out[0],
                       threads == 1 ? "fast path sum, 1 thread" : "fast path sum, 3 threads");
        }
        cr_assert_eq(fopt_cpu_set_threads(0), FOPT_SUCCESS);
        kat_sqsum_free(&s);
    }
}
