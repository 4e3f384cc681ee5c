/* Mixed precision (0.2) on the three paths that run on a CPU: the reference (_ref_multi), the
 * fast CPU path (_cpu_multi, every instruction set this CPU has, 1 and 2 threads with the grain
 * lowered so that small calls split) and the GPU kernels run on the host (default mode, and small
 * chunks with the device-side scalar derivation).
 *
 *  - Bit identity on every combination: param/grad dtype {fp32, fp16, bf16} x state dtype
 *    {fp32, bf16} x master weights {off, on, remainder (bf16)} x stochastic rounding {off, on
 *    (bf16, no master)}, for every variant of bench/variants.h; sizes 1..16385 around vector
 *    widths, blocks and chunks, each once with every buffer aligned (the kernels' vector path) and
 *    once at 1..7 elements past a 64-byte boundary (param, grad and master at different offsets,
 *    states aligned for some tensors and not for others); 10 steps of fresh grads spanning many
 *    magnitudes (a few exact zeros, never only zeros) with the step options varying from step to
 *    step; the fast path switches instruction set and thread count from step to step, so every
 *    step also checks that a state written by one ISA is read right by another. Every path is
 *    compared with the reference after every step, and guard bytes around every buffer must stay.
 *  - The same over lists of a few hundred tensors of random sizes and mixed dtypes, and each
 *    ISA / thread count run from the start on its own.
 *  - The reference against an independent model of the storage rules (tests/mixed.c).
 *  - fp16 overflow to inf, NaN in a grad, and the NaN rule.
 *
 * The NaN rule. NaN positions must agree across paths, in every float-typed buffer (params, fp32
 * masters, states, grads); NaN payloads (and signs) may differ, because the fast path converts
 * fp16 with the F16C / AVX-512F instructions, which quiet signalling NaNs and keep payload bits
 * that the software conversion (kernels/dtype.h) replaces by 0x7e00. Every other value agrees bit
 * for bit, +0 and -0 told apart; master remainders (integers) agree exactly. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "dtype.h"
#include "mixed.h"

#define STEPS 10

static const size_t k_sizes[] = {1, 3, 4, 5, 7, 17, 4097, 16383, 16385};
#define NSIZES (sizeof k_sizes / sizeof k_sizes[0])
static const size_t k_small_sizes[] = {1, 3, 4, 5, 7, 17, 4097};
#define NSMALL (sizeof k_small_sizes / sizeof k_small_sizes[0])

enum { MODE_PLAIN, MODE_MASTER, MODE_REMAINDER, MODE_SR, MODES };
static const fopt_dtype k_dtypes[3] = {FOPT_FLOAT32, FOPT_FLOAT16, FOPT_BFLOAT16};
static const fopt_dtype k_state_dtypes[2] = {FOPT_FLOAT32, FOPT_BFLOAT16};

static fopt_precision precision_of(fopt_dtype state, int mode, uint64_t seed)
{
    fopt_precision pr;
    memset(&pr, 0, sizeof pr);
    pr.state_dtype = state;
    pr.master_weights = mode == MODE_MASTER || mode == MODE_REMAINDER;
    pr.master_remainder = mode == MODE_REMAINDER;
    pr.stochastic_rounding = mode == MODE_SR;
    pr.seed = seed;
    return pr;
}

/* fp16 params can neither keep remainders nor round stochastically (fp32 params ignore both). */
static bool mode_allows(int mode, fopt_dtype d) { return d != FOPT_FLOAT16 || mode == MODE_PLAIN || mode == MODE_MASTER; }

/* A storage combination: state dtype, mode and param dtype. */
typedef struct storage {
    fopt_dtype state;
    int mode;
    fopt_dtype dtype;
} storage;
#define MAX_STORAGES (2 * MODES * 3)

/* Every combination mode_allows(), state dtype outermost, then mode, then param dtype; returns
 * the count. */
static size_t storages(storage *out)
{
    size_t n = 0;
    for (int si = 0; si < 2; si++)
        for (int mode = 0; mode < MODES; mode++)
            for (int di = 0; di < 3; di++)
                if (mode_allows(mode, k_dtypes[di]))
                    out[n++] = (storage){k_state_dtypes[si], mode, k_dtypes[di]};
    return n;
}

/* Each size once fully aligned and once at offsets 1..7 (the largest two only once each). */
static size_t layout(const size_t *sizes, size_t nsizes, fopt_dtype dtype, mx_spec *out)
{
    size_t n = 0;
    for (size_t i = 0; i < nsizes; i++) {
        if (sizes[i] != 16383)
            out[n++] = (mx_spec){.numel = sizes[i], .dtype = dtype};
        if (sizes[i] == 16385)
            continue;
        mx_spec s = {.numel = sizes[i], .dtype = dtype};
        s.param_off = 1 + (unsigned)(i % 7);
        s.grad_off = 1 + (unsigned)((i + 3) % 7);
        s.master_off = 1 + (unsigned)((i + 5) % 7);
        for (unsigned j = 0; j < FOPT_MAX_STATES; j++)
            s.state_off[j] = (i % 2 == 0) ? 0 : 1 + (unsigned)((i + 2 * j + 1) % 7);
        out[n++] = s;
    }
    return n;
}

/* Step s's options (every path gets the same): none; grad_scale 3 with grad_norm; clipping that
 * bites with grad_norm, found_inf and zero_grads (and grad_scale 5 every other time); grad_scale
 * 0.75 with clipping that does not bite, grad_norm and found_inf. */
static const char *step_options(int64_t s, const mx_set *ref, fopt_step_options *o, float *scale, float *norm,
                                int32_t *found)
{
    memset(o, 0, sizeof *o);
    switch (s % 4) {
    case 1: return "none";
    case 2:
        *scale = 3.0f;
        o->grad_scale = scale;
        o->grad_norm = norm;
        return "grad_scale 3, grad_norm";
    case 3: {
        *scale = 5.0f;
        o->grad_scale = s % 8 == 7 ? scale : NULL;
        double sum;
        cr_assert_eq(mx_sq_sum(MX_REF, ref->t, ref->count, o->grad_scale, &sum), FOPT_SUCCESS);
        o->max_grad_norm = 0.3 * sqrt(sum); /* a coefficient that is no power of two */
        o->grad_norm = norm;
        o->found_inf = found;
        o->zero_grads = true;
        return o->grad_scale ? "grad_scale 5, clipping to 0.3 of the norm, grad_norm, found_inf, zero_grads"
                             : "clipping to 0.3 of the norm, grad_norm, found_inf, zero_grads";
    }
    default:
        *scale = 0.75f;
        o->grad_scale = scale;
        o->max_grad_norm = 1e30;
        o->grad_norm = norm;
        o->found_inf = found;
        return "grad_scale 0.75, clipping inactive, grad_norm, found_inf";
    }
}

/* `steps` steps of c over the list on `npaths` paths. The fast path runs on ISA `isa` with
 * `threads` threads, or (isa < 0) switches ISA and thread count every step. */
static void run_case(const mx_config *c, const mx_spec *spec, size_t count, int steps, int npaths, int isa,
                     int threads, unsigned rot, uint64_t seed, const char *label)
{
    mx_set *sets[MX_PATHS];
    sets[0] = mx_set_make(c, spec, count, seed);
    for (int p = 1; p < npaths; p++)
        sets[p] = mx_set_clone(sets[0]);
    mx_set *init = mx_set_clone(sets[0]);
    test_rng r = test_rng_make(seed * 31 + 7);
    const int nisa = mx_isa_count();
    char what[512];
    for (int64_t s = 1; s <= steps; s++) {
        mx_set_fill_grads(sets[0], &r, -6.0 - (double)(s % 3), 1.0 + (double)(s % 2), 29);
        for (int p = 1; p < npaths; p++)
            mx_set_copy_grads(sets[p], sets[0]);
        const int use_isa = isa >= 0 ? isa : (int)((s + rot) % (unsigned)nisa);
        const int use_threads = isa >= 0 ? threads : 1 + (int)(((s + rot) / (unsigned)nisa) % 2);
        mx_cpu_use(use_isa, use_threads);
        fopt_step_options o;
        float scale, norm;
        int32_t found;
        const char *opts = step_options(s, sets[0], &o, &scale, &norm, &found);
        snprintf(what, sizeof what, "%s; options: %s; fast path %s, %d thread(s)", label, opts, mx_isa_name(use_isa),
                 use_threads);
        mx_step_and_compare(c, s, sets, npaths, s % 4 == 1 ? NULL : &o, what);
    }
    /* not vacuous: the data moves the parameters */
    const size_t changed = mx_set_params_changed(init, sets[0]), total = mx_set_total(sets[0]);
    cr_assert(changed * 10 >= total, "%s: only %zu of %zu params changed over %d steps", label, changed, total,
              steps);
    mx_set_free(init);
    for (int p = 0; p < npaths; p++)
        mx_set_free(sets[p]);
    mx_cpu_reset();
}

/* Every storage combination of one variant on every path. */
static void run_matrix(const char *name)
{
    const fopt_variant *v = mx_variant(name);
    mx_spec spec[2 * NSIZES];
    unsigned rot = 0;
    char label[256], pn[96];
    storage st[MAX_STORAGES];
    const size_t nst = storages(st);
    for (size_t i = 0; i < nst; i++) {
        size_t count = layout(k_sizes, NSIZES, st[i].dtype, spec);
        fopt_precision pr = precision_of(st[i].state, st[i].mode, 0x5eed0000u + rot);
        mx_config c = mx_config_make(v, pr);
        snprintf(label, sizeof label, "%s, %s, %s params", name, mx_precision_name(&pr, pn, sizeof pn),
                 mx_dtype_name(st[i].dtype));
        run_case(&c, spec, count, STEPS, MX_PATHS, -1, 0, rot, 1000 + rot, label);
        rot++;
    }
}

#define MATRIX_TEST(v)                                                                                      \
    Test(mixed, v##_is_bit_identical_on_reference_fast_path_and_kernels_in_every_storage_combination)      \
    {                                                                                                       \
        run_matrix(#v);                                                                                     \
    }

MATRIX_TEST(adam)
MATRIX_TEST(adam_l2)
MATRIX_TEST(adamw)
MATRIX_TEST(adam_amsgrad)
MATRIX_TEST(adamw_amsgrad)
MATRIX_TEST(adam_maximize_l2)
MATRIX_TEST(adam_small_beta1)
MATRIX_TEST(rmsprop)
MATRIX_TEST(rmsprop_wd)
MATRIX_TEST(rmsprop_momentum)
MATRIX_TEST(rmsprop_centered)
MATRIX_TEST(rmsprop_centered_momentum)
MATRIX_TEST(rmsprop_maximize)
MATRIX_TEST(rmsprop_small_alpha_centered)

static const char *const k_matrix_variants[] = {
    "adam",    "adam_l2",    "adamw",   "adam_amsgrad", "adamw_amsgrad", "adam_maximize_l2", "adam_small_beta1",
    "rmsprop", "rmsprop_wd", "rmsprop_momentum", "rmsprop_centered", "rmsprop_centered_momentum",
    "rmsprop_maximize", "rmsprop_small_alpha_centered"};

Test(mixed, every_variant_of_bench_variants_has_a_matrix_test)
{
    const size_t n = sizeof k_matrix_variants / sizeof k_matrix_variants[0];
    cr_assert_eq(n, fopt_variant_count, "bench/variants.c lists %zu variants, this suite tests %zu: add a "
                 "MATRIX_TEST for the new one", fopt_variant_count, n);
    for (size_t i = 0; i < fopt_variant_count; i++) {
        bool found = false;
        for (size_t j = 0; j < n; j++)
            found = found || strcmp(fopt_variants[i].name, k_matrix_variants[j]) == 0;
        cr_expect(found, "variant %s has no MATRIX_TEST", fopt_variants[i].name);
    }
}

/* ---- lists of a few hundred tensors of random sizes and dtypes ------------------------------- */

static void run_random_list(size_t vi)
{
    const fopt_variant *v = &fopt_variants[vi];
    test_rng r = test_rng_make(4242 + vi);
    const int mode = (int)(vi % MODES);
    const fopt_dtype sdt = k_state_dtypes[(vi / MODES) % 2];
    enum { COUNT = 300 };
    mx_spec *spec = calloc(COUNT, sizeof *spec);
    cr_assert_not_null(spec);
    for (size_t k = 0; k < COUNT; k++) {
        mx_spec s;
        memset(&s, 0, sizeof s);
        s.numel = k % 61 == 13 ? 0 : (size_t)exp(test_rng_uniform(&r) * log(2000.0));
        if (k == 100)
            s.numel = 16385;
        if (k == 201)
            s.numel = 20000;
        do
            s.dtype = k_dtypes[test_rng_next(&r) % 3];
        while (!mode_allows(mode, s.dtype));
        if (test_rng_next(&r) % 3 != 0) {
            s.param_off = (unsigned)(test_rng_next(&r) % 8);
            s.grad_off = (unsigned)(test_rng_next(&r) % 8);
            s.master_off = (unsigned)(test_rng_next(&r) % 8);
            for (int j = 0; j < FOPT_MAX_STATES; j++)
                s.state_off[j] = (unsigned)(test_rng_next(&r) % 8);
        }
        spec[k] = s;
    }
    fopt_precision pr = precision_of(sdt, mode, 0xabcdef12345ull + vi);
    mx_config c = mx_config_make(v, pr);
    char label[256], pn[96];
    snprintf(label, sizeof label, "%s, %s, %d tensors of random sizes and dtypes", v->name,
             mx_precision_name(&pr, pn, sizeof pn), COUNT);
    run_case(&c, spec, COUNT, 10, MX_PATHS, -1, 0, (unsigned)vi, 77 + vi, label);
    free(spec);
}

Test(mixed, adam_variants_are_bit_identical_over_hundreds_of_tensors_of_random_sizes_and_dtypes)
{
    for (size_t vi = 0; vi < fopt_variant_count; vi++)
        if (fopt_variants[vi].adam)
            run_random_list(vi);
}

Test(mixed, rmsprop_variants_are_bit_identical_over_hundreds_of_tensors_of_random_sizes_and_dtypes)
{
    for (size_t vi = 0; vi < fopt_variant_count; vi++)
        if (!fopt_variants[vi].adam)
            run_random_list(vi);
}

/* ---- each ISA and thread count from the first step ------------------------------------------ */

Test(mixed, fast_path_matches_reference_on_every_isa_and_thread_count_run_from_the_start)
{
    static const char *const names[] = {"adamw_amsgrad", "rmsprop_centered_momentum"};
    mx_spec spec[2 * NSMALL];
    char label[256], pn[96];
    unsigned rot = 0;
    cr_log_info("fast path instruction sets on this CPU: %d (best %s)", mx_isa_count(), mx_isa_name(mx_isa_count() - 1));
    storage st[MAX_STORAGES];
    const size_t nst = storages(st);
    for (int vi = 0; vi < 2; vi++)
        for (size_t i = 0; i < nst; i++) {
            size_t count = layout(k_small_sizes, NSMALL, st[i].dtype, spec);
            fopt_precision pr = precision_of(st[i].state, st[i].mode, 99 + rot);
            mx_config c = mx_config_make(mx_variant(names[vi]), pr);
            for (int isa = 0; isa < mx_isa_count(); isa++)
                for (int threads = 1; threads <= 2; threads++) {
                    snprintf(label, sizeof label, "%s, %s, %s params", names[vi],
                             mx_precision_name(&pr, pn, sizeof pn), mx_dtype_name(st[i].dtype));
                    run_case(&c, spec, count, 10, 2, isa, threads, 0, 500 + rot, label);
                }
            rot++;
        }
}

/* ---- the reference against an independent model ---------------------------------------------- */

Test(mixed, reference_follows_the_storage_rules_of_an_independent_model)
{
    static const char *const names[] = {"adam_amsgrad", "adamw", "rmsprop_centered_momentum"};
    static const size_t sizes[] = {1, 7, 33, 300};
    char label[256], pn[96], msg[512];
    unsigned rot = 0;
    storage st[MAX_STORAGES];
    const size_t nst = storages(st);
    for (int vi = 0; vi < 3; vi++)
        for (size_t i = 0; i < nst; i++) {
            mx_spec spec[4];
            for (int k = 0; k < 4; k++)
                spec[k] = (mx_spec){.numel = sizes[k], .dtype = st[i].dtype, .param_off = (unsigned)k,
                                    .grad_off = 1, .master_off = 2};
            fopt_precision pr = precision_of(st[i].state, st[i].mode, 0x1234567ull * (rot + 1));
            mx_config c = mx_config_make(mx_variant(names[vi]), pr);
            snprintf(label, sizeof label, "%s, %s, %s params", names[vi],
                     mx_precision_name(&pr, pn, sizeof pn), mx_dtype_name(st[i].dtype));
            mx_set *ref = mx_set_make(&c, spec, 4, 31 + rot), *model = mx_set_clone(ref);
            test_rng r = test_rng_make(rot);
            for (int64_t s = 1; s <= 6; s++) {
                mx_set_fill_grads(ref, &r, -5.0, 1.0, 23);
                mx_set_copy_grads(model, ref);
                fopt_step_options o;
                float scale, norm, mnorm;
                int32_t found, mfound;
                step_options(s, ref, &o, &scale, &norm, &found);
                fopt_step_options mo = o;
                mo.grad_norm = o.grad_norm ? &mnorm : NULL;
                mo.found_inf = o.found_inf ? &mfound : NULL;
                const bool none = s % 4 == 1;
                cr_assert_eq(mx_step(MX_REF, &c, s, ref->t, 4, none ? NULL : &o), FOPT_SUCCESS, "%s",
                             fopt_last_error());
                mx_model_step(&c, s, model, none ? NULL : &mo);
                if (!mx_set_same(ref, model, msg, sizeof msg))
                    cr_assert_fail("%s: step %lld: the reference departs from the model: %s", label,
                                   (long long)s, msg);
                if (o.grad_norm)
                    cr_assert_eq(mx_bits(norm), mx_bits(mnorm), "%s: grad_norm %.9g, model %.9g", label,
                                 (double)norm, (double)mnorm);
                if (o.found_inf)
                    cr_assert_eq(found, mfound);
            }
            mx_set_free(ref);
            mx_set_free(model);
            rot++;
        }
}

/* ---- fp16 overflow, NaN grads, the NaN rule ---------------------------------------------------- */

/* One step on every path (each ISA on the fast path, in turn); returns the reference's set (the
 * others freed after comparing). */
static mx_set *step_everywhere(const mx_config *c, mx_set *start, int64_t step, const fopt_step_options *o,
                               const char *label)
{
    return mx_step_every_isa(c, start, step, o, 1, label);
}

Test(mixed, fp16_params_pushed_past_65504_become_inf_and_stop_just_below_it)
{
    /* elements: 65504 pushed up by 16 (65520: the tie to even goes to inf), by 15.99 (65519.99:
     * back to 65504), by 16 from -65504 downwards (-inf); and 1.0 as a control */
    for (int master = 0; master < 2; master++) {
        const double lrs[2] = {16.0, 15.9921875};
        for (int li = 0; li < 2; li++) {
            fopt_precision pr;
            memset(&pr, 0, sizeof pr);
            pr.master_weights = master;
            mx_config c = mx_rmsprop(lrs[li], 0.0, 0.0, pr); /* sign SGD */
            mx_spec spec[2] = {{.numel = 21, .dtype = FOPT_FLOAT16}, {.numel = 3, .dtype = FOPT_FLOAT16, .param_off = 1}};
            mx_set *s = mx_set_make(&c, spec, 2, 5);
            for (size_t k = 0; k < 2; k++)
                for (size_t i = 0; i < spec[k].numel; i++) {
                    float p = i % 3 == 0 ? 65504.0f : i % 3 == 1 ? -65504.0f : 1.0f;
                    float g = i % 3 == 0 ? -0.5f : i % 3 == 1 ? 2.0f : 1.0f;
                    ((uint16_t *)s->param[k].p)[i] = fopt_f32_to_f16(p);
                    ((uint16_t *)s->grad[k].p)[i] = fopt_f32_to_f16(g);
                    if (master)
                        ((float *)s->master[k].p)[i] = p;
                }
            char label[128];
            snprintf(label, sizeof label, "fp16 params %s master, lr %g", master ? "with" : "without", lrs[li]);
            mx_set *out = step_everywhere(&c, s, 1, NULL, label);
            const float lr32 = (float)lrs[li];
            for (size_t k = 0; k < 2; k++)
                for (size_t i = 0; i < spec[k].numel; i++) {
                    uint16_t h = ((uint16_t *)out->param[k].p)[i];
                    /* the control: 1 - 16 = -15, 1 - 15.99 = -14.99, both exact in fp16 */
                    uint16_t want = i % 3 == 2 ? fopt_f32_to_f16(1.0f - lr32)
                                    : li == 0 ? (i % 3 == 0 ? 0x7c00 : 0xfc00)
                                              : (i % 3 == 0 ? 0x7bff : 0xfbff);
                    cr_assert_eq(h, want, "%s: tensor %zu element %zu: 0x%04x, want 0x%04x", label, k, i, h, want);
                    if (master && i % 3 != 2)
                        cr_assert_eq(((float *)out->master[k].p)[i], (i % 3 == 0 ? 65504.0f + lr32 : -65504.0f - lr32),
                                     "%s: the fp32 master keeps the finite value", label);
                }
            if (!master) { /* a second step keeps inf inf, the tie-rounded ones finite */
                mx_set *out2 = step_everywhere(&c, out, 2, NULL, label);
                for (size_t i = 0; i < 21; i += 3)
                    cr_assert_eq(((uint16_t *)out2->param[0].p)[i], li == 0 ? 0x7c00 : 0x7bff);
                mx_set_free(out2);
            }
            mx_set_free(out);
            mx_set_free(s);
        }
    }
}

/* A NaN grad element: without checks it poisons that element's param and states only; with
 * found_inf nothing changes anywhere. Every dtype, every path and ISA. */
Test(mixed, nan_grad_poisons_only_its_element_and_with_found_inf_changes_nothing)
{
    static const char *const names[] = {"adam_amsgrad", "rmsprop_centered_momentum"};
    char label[256], pn[96], msg[512];
    for (int vi = 0; vi < 2; vi++)
        for (int mode = 0; mode < MODES; mode++)
            for (int di = 0; di < 3; di++) {
                if (!mode_allows(mode, k_dtypes[di]))
                    continue;
                fopt_precision pr = precision_of(k_state_dtypes[mode % 2], mode, 3);
                mx_config c = mx_config_make(mx_variant(names[vi]), pr);
                mx_spec spec[3] = {{.numel = 100, .dtype = k_dtypes[di]},
                                   {.numel = 37, .dtype = k_dtypes[di], .param_off = 3, .grad_off = 1},
                                   {.numel = 4097, .dtype = k_dtypes[di]}};
                snprintf(label, sizeof label, "%s, %s, %s params", names[vi], mx_precision_name(&pr, pn, sizeof pn),
                         mx_dtype_name(k_dtypes[di]));
                mx_set *s = mx_set_make(&c, spec, 3, 8);
                test_rng r = test_rng_make(9);
                mx_set_fill_grads(s, &r, -4.0, 0.0, 0);
                mx_set *clean = mx_set_clone(s);
                /* NaN at tensor 1 element 5 and tensor 2 element 4000 (a quiet and a signalling one) */
                mx_put(s->grad[1].p, k_dtypes[di], 5, NAN);
                if (k_dtypes[di] == FOPT_FLOAT32)
                    ((float *)s->grad[2].p)[4000] = mx_float(0x7f800001u);
                else
                    ((uint16_t *)s->grad[2].p)[4000] = k_dtypes[di] == FOPT_FLOAT16 ? 0x7c01 : 0x7f81;
                mx_set *poisoned = step_everywhere(&c, s, 1, NULL, label);
                mx_set *ok = step_everywhere(&c, clean, 1, NULL, label);
                /* element (1, 5) and (2, 4000): NaN param (or master) and NaN states */
                const size_t bad[2][2] = {{1, 5}, {2, 4000}};
                for (int b = 0; b < 2; b++) {
                    size_t k = bad[b][0], i = bad[b][1];
                    cr_assert(isnan(mx_param_value(poisoned, k, i)), "%s: param (%zu, %zu) is not NaN", label, k, i);
                    cr_assert(isnan(mx_get(poisoned->state[0][k].p, pr.state_dtype, i)), "%s: state 0 not NaN", label);
                    /* the poisoned element's bits in the clean run's set, so the rest compares */
                    const size_t eb = mx_dtype_bytes(k_dtypes[di]);
                    memcpy((char *)ok->param[k].p + i * eb, (char *)poisoned->param[k].p + i * eb, eb);
                    memcpy((char *)ok->grad[k].p + i * eb, (char *)poisoned->grad[k].p + i * eb, eb);
                    if (ok->master[k].alloc) {
                        const size_t mb = ok->mm[k] == FOPT_MASTER_F32 ? 4 : 2;
                        memcpy((char *)ok->master[k].p + i * mb, (char *)poisoned->master[k].p + i * mb, mb);
                    }
                    for (int j = 0; j < FOPT_MAX_STATES; j++)
                        if (ok->state[j][k].alloc) {
                            const size_t sb = mx_dtype_bytes(pr.state_dtype);
                            memcpy((char *)ok->state[j][k].p + i * sb, (char *)poisoned->state[j][k].p + i * sb, sb);
                        }
                }
                if (!mx_set_same(poisoned, ok, msg, sizeof msg))
                    cr_assert_fail("%s: a NaN grad changed another element: %s", label, msg);
                /* with found_inf: nothing changes, on any path */
                int32_t found = -1;
                fopt_step_options o = {.found_inf = &found, .zero_grads = true, .max_grad_norm = 1.0};
                for (int p = 0; p < MX_PATHS; p++) {
                    mx_set *t = mx_set_clone(s);
                    mx_snapshot *snap = mx_snapshot_take(t);
                    if (p == MX_CPU)
                        mx_cpu_use(mx_isa_count() - 1, 2);
                    cr_assert_eq(mx_step((mx_path)p, &c, 1, t->t, 3, &o), FOPT_SUCCESS);
                    cr_assert_eq(found, 1, "%s: %s: found_inf %d", label, mx_path_name((mx_path)p), (int)found);
                    if (!mx_snapshot_same(snap, t, msg, sizeof msg))
                        cr_assert_fail("%s: %s: a skipped step wrote: %s", label, mx_path_name((mx_path)p), msg);
                    mx_snapshot_free(snap);
                    mx_set_free(t);
                    found = -1;
                }
                mx_cpu_reset();
                mx_set_free(poisoned);
                mx_set_free(ok);
                mx_set_free(clean);
                mx_set_free(s);
            }
}

/* NaN and inf already in params, masters and states (signalling and quiet, both signs), and grads
 * that overflow: NaN positions agree on every path and ISA, the rest bit for bit, and the test
 * data does produce NaNs. */
Test(mixed, nan_positions_agree_on_every_path_for_nan_and_inf_inputs)
{
    static const uint16_t f16_specials[] = {0x7c01, 0xfc01, 0x7dff, 0x7e00, 0xfe00, 0x7fff, 0x7c00, 0xfc00};
    static const uint16_t bf16_specials[] = {0x7f81, 0xff81, 0x7fc0, 0xffc0, 0x7fff, 0x7f80, 0xff80, 0x7fa0};
    static const uint32_t f32_specials[] = {0x7f800001u, 0xff800001u, 0x7fc00000u, 0xffc00000u, 0x7fffffffu,
                                            0x7f800000u, 0xff800000u, 0x7fa00000u};
    char label[256], pn[96];
    for (int vi = 0; vi < 4; vi++) {
        static const char *const names[] = {"adam_amsgrad", "adamw", "rmsprop_centered_momentum", "rmsprop_centered"};
        for (int mode = 0; mode < MODES; mode++)
            for (int di = 0; di < 3; di++) {
                if (!mode_allows(mode, k_dtypes[di]))
                    continue;
                const fopt_dtype d = k_dtypes[di];
                fopt_precision pr = precision_of(k_state_dtypes[(vi + mode) % 2], mode, 11);
                mx_config c = mx_config_make(mx_variant(names[vi]), pr);
                mx_spec spec[2] = {{.numel = 200, .dtype = d}, {.numel = 61, .dtype = d, .param_off = 1, .grad_off = 2}};
                snprintf(label, sizeof label, "%s, %s, %s params", names[vi], mx_precision_name(&pr, pn, sizeof pn),
                         mx_dtype_name(d));
                mx_set *s = mx_set_make(&c, spec, 2, 12);
                test_rng r = test_rng_make(13);
                mx_set_fill_grads(s, &r, -3.0, 1.0, 0);
                for (size_t k = 0; k < 2; k++)
                    for (size_t i = 0, q = 0; i < spec[k].numel; i += 7, q++) {
                        const int where = (int)(q % 4); /* param, grad, master, state */
                        if (where == 0 || (where == 2 && !s->master[k].alloc)) {
                            if (d == FOPT_FLOAT32)
                                ((float *)s->param[k].p)[i] = mx_float(f32_specials[q % 8]);
                            else
                                ((uint16_t *)s->param[k].p)[i] = (d == FOPT_FLOAT16 ? f16_specials : bf16_specials)[q % 8];
                            if (s->mm[k] == FOPT_MASTER_F32)
                                ((float *)s->master[k].p)[i] = mx_get(s->param[k].p, d, i);
                        } else if (where == 1) {
                            if (d == FOPT_FLOAT32)
                                ((float *)s->grad[k].p)[i] = mx_float(f32_specials[q % 8]);
                            else
                                ((uint16_t *)s->grad[k].p)[i] = (d == FOPT_FLOAT16 ? f16_specials : bf16_specials)[q % 8];
                        } else if (where == 2) {
                            if (s->mm[k] == FOPT_MASTER_F32)
                                ((float *)s->master[k].p)[i] = mx_float(f32_specials[q % 8]);
                            else /* remainder: a NaN / inf param with a remainder */
                                ((uint16_t *)s->param[k].p)[i] = bf16_specials[q % 8];
                        } else {
                            if (pr.state_dtype == FOPT_FLOAT32)
                                ((float *)s->state[0][k].p)[i] = mx_float(f32_specials[q % 8]);
                            else
                                ((uint16_t *)s->state[0][k].p)[i] = bf16_specials[q % 8];
                        }
                    }
                mx_set *cur = mx_set_clone(s);
                for (int64_t step = 1; step <= 3; step++) {
                    mx_set *next = step_everywhere(&c, cur, step, NULL, label);
                    mx_set_free(cur);
                    cur = next;
                    mx_set_fill_grads(cur, &r, -3.0, 1.0, 0);
                }
                size_t nans = 0;
                for (size_t k = 0; k < 2; k++)
                    for (size_t i = 0; i < spec[k].numel; i++)
                        nans += isnan(mx_param_value(cur, k, i));
                cr_assert(nans >= 10, "%s: only %zu NaN params: the test data does not reach the NaN rule", label,
                          nans);
                mx_set_free(cur);
                mx_set_free(s);
            }
    }
}
