/* Mixed precision through the GPU optimizer object (issue 9): fp16/bf16 params with fp32 or bf16
 * states, fp32 master weights (allocated by the optimizer and initialised from the params at
 * creation), bf16 master remainders, stochastic rounding, and fp32 + fp16 + bf16 tensors in one
 * optimizer (one launch per parameter dtype). After every run the device params, every state slot
 * and the master (read back with fopt_state_copy, FOPT_SLOT_*) equal the CPU reference
 * fopt_*_step_ref_multi() bit for bit, the reference's master starting as the upcast of the
 * params. Checkpoints carry the master and the precision settings and reject a mismatch.
 * Every test reports SKIP without a device. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "checkpoint.h"
#include "gpu_util.h"
#include "multi_tensor.h"

TestSuite(gpu_precision, .init = gt_require_device);

/* Sizes around the vector width, a chunk boundary, and odd offsets (the scalar path). */
static void specs_of(fopt_dtype dt, gt_spec out[6])
{
    const size_t numel[6] = {1, 7, 8, 33, 4097, 2 * FOPT_CHUNK + 3};
    const unsigned off[6] = {0, 1, 0, 0, 3, 0};
    for (int i = 0; i < 6; i++)
        out[i] = (gt_spec){numel[i], dt, 0, off[i]};
}

/* `steps` plain steps on the device and the reference; checked after creation (masters from the
 * params, zero states) and at the end. */
static void run_steps(const gt_cfg *cfg, const gt_spec *spec, size_t count, int steps, uint64_t seed,
                      const char *where)
{
    gt_problem *p = gt_problem_make(cfg, spec, count, seed, true);
    gt_check(p, p->opt, where);
    for (int s = 0; s < steps; s++) {
        gt_new_grads(p);
        FOPT_OK(fopt_step(p->opt, 0));
        gt_ref_step(p, NULL);
    }
    gt_check(p, p->opt, where);
    gt_problem_free(p);
}

static const gt_cfg *three_optimizers(gt_cfg out[3])
{
    out[0] = gt_adam();
    out[1] = gt_adamw();
    out[2] = gt_rmsprop();
    return out;
}

typedef struct precision_case {
    const char *name;
    fopt_dtype param;
    fopt_precision pr;
} precision_case;

static void run_precision_cases(const precision_case *cases, size_t n)
{
    gt_cfg opts[3];
    three_optimizers(opts);
    for (size_t c = 0; c < n; c++)
        for (int o = 0; o < 3; o++) {
            gt_cfg cfg = opts[o];
            *gt_precision(&cfg) = cases[c].pr;
            gt_spec spec[6];
            specs_of(cases[c].param, spec);
            char where[96];
            snprintf(where, sizeof where, "%s (%s)", cases[c].name, o == 0 ? "adam" : o == 1 ? "adamw amsgrad" : "rmsprop centered momentum");
            run_steps(&cfg, spec, 6, 6, 900 + 10 * c + (uint64_t)o, where);
        }
}

Test(gpu_precision, master_weights_for_fp16_and_bf16_params_match_the_reference_bit_for_bit)
{
    const precision_case cases[] = {
        {"fp16 params, fp32 states, fp32 master", FOPT_FLOAT16, {FOPT_FLOAT32, true, false, false, 0}},
        {"fp16 params, bf16 states, fp32 master", FOPT_FLOAT16, {FOPT_BFLOAT16, true, false, false, 0}},
        {"bf16 params, fp32 states, fp32 master", FOPT_BFLOAT16, {FOPT_FLOAT32, true, false, false, 0}},
        {"bf16 params, bf16 states, fp32 master", FOPT_BFLOAT16, {FOPT_BFLOAT16, true, false, false, 0}},
    };
    run_precision_cases(cases, sizeof cases / sizeof cases[0]);
}

Test(gpu_precision, master_remainders_of_bf16_params_match_the_reference_bit_for_bit)
{
    const precision_case cases[] = {
        {"bf16 params, fp32 states, remainders", FOPT_BFLOAT16, {FOPT_FLOAT32, true, false, true, 0}},
        {"bf16 params, bf16 states, remainders", FOPT_BFLOAT16, {FOPT_BFLOAT16, true, false, true, 0}},
    };
    run_precision_cases(cases, sizeof cases / sizeof cases[0]);
}

Test(gpu_precision, stochastic_rounding_and_plain_16_bit_params_match_the_reference_bit_for_bit)
{
    const precision_case cases[] = {
        {"bf16 params, fp32 states, stochastic rounding", FOPT_BFLOAT16, {FOPT_FLOAT32, false, true, false, 1234}},
        {"bf16 params, bf16 states, stochastic rounding", FOPT_BFLOAT16, {FOPT_BFLOAT16, false, true, false, 99}},
        {"bf16 params, bf16 states, nearest-even", FOPT_BFLOAT16, {FOPT_BFLOAT16, false, false, false, 0}},
        {"fp16 params, fp32 states, nearest-even", FOPT_FLOAT16, {FOPT_FLOAT32, false, false, false, 0}},
        {"fp32 params, bf16 states", FOPT_FLOAT32, {FOPT_BFLOAT16, false, false, false, 0}},
    };
    run_precision_cases(cases, sizeof cases / sizeof cases[0]);
}

Test(gpu_precision, stochastic_rounding_depends_on_the_seed)
{
    /* Same params and grads, two seeds: the bf16 params must differ somewhere (and each equals
     * its own reference, which run_steps checks). */
    gt_cfg cfg = gt_adam();
    cfg.a.lr = 1e-4; /* updates below a bf16 ulp: only stochastic rounding moves them */
    *gt_precision(&cfg) = (fopt_precision){FOPT_FLOAT32, false, true, false, 1};
    gt_spec spec[1] = {{4096, FOPT_BFLOAT16, 0, 0}};
    gt_problem *a = gt_problem_make(&cfg, spec, 1, 5, true);
    gt_precision(&cfg)->seed = 2;
    gt_problem *b = gt_problem_make(&cfg, spec, 1, 5, true);
    for (int s = 0; s < 3; s++) {
        gt_new_grads(a);
        gt_new_grads(b);
        FOPT_OK(fopt_step(a->opt, 0));
        FOPT_OK(fopt_step(b->opt, 0));
        gt_ref_step(a, NULL);
        gt_ref_step(b, NULL);
    }
    gt_check(a, a->opt, "seed 1");
    gt_check(b, b->opt, "seed 2");
    cr_expect_neq(memcmp(a->param[0], b->param[0], 4096 * 2), 0, "two seeds rounded every param the same way");
    gt_problem_free(a);
    gt_problem_free(b);
}

/* fp32, bf16 and fp16 tensors interleaved in one optimizer. */
static const gt_spec mixed_list[] = {
    {5, FOPT_FLOAT32, 0, 1},   {4097, FOPT_BFLOAT16, 0, 0}, {33, FOPT_FLOAT16, 0, 3},
    {2 * FOPT_CHUNK + 3, FOPT_FLOAT32, 0, 0}, {8, FOPT_BFLOAT16, 0, 1}, {1000, FOPT_FLOAT16, 0, 0},
    {1, FOPT_BFLOAT16, 0, 0},
};
#define MIXED_COUNT (sizeof mixed_list / sizeof mixed_list[0])
/* The same without fp16 (remainders are for bf16 params, and fp16 ones cannot use them). */
static const gt_spec mixed_list_bf16[] = {
    {5, FOPT_FLOAT32, 0, 1}, {4097, FOPT_BFLOAT16, 0, 0}, {2 * FOPT_CHUNK + 3, FOPT_FLOAT32, 0, 0},
    {8, FOPT_BFLOAT16, 0, 1}, {1, FOPT_BFLOAT16, 0, 0},
};
#define MIXED_BF16_COUNT (sizeof mixed_list_bf16 / sizeof mixed_list_bf16[0])

Test(gpu_precision, mixed_dtypes_in_one_optimizer_match_the_reference_with_one_launch_per_dtype)
{
    const fopt_precision prs[] = {
        {FOPT_FLOAT32, true, false, false, 0},  /* fp32 masters for fp16 and bf16 */
        {FOPT_BFLOAT16, true, false, true, 0},  /* remainders for bf16 (fp32 and bf16 list) */
        {FOPT_FLOAT32, false, false, false, 0}, /* no masters */
    };
    gt_cfg opts[3];
    three_optimizers(opts);
    for (size_t c = 0; c < sizeof prs / sizeof prs[0]; c++)
        for (int o = 0; o < 3; o++) {
            gt_cfg cfg = opts[o];
            *gt_precision(&cfg) = prs[c];
            char where[64];
            snprintf(where, sizeof where, "mixed list, precision %zu, optimizer %d", c, o);
            const bool rem = prs[c].master_remainder;
            gt_problem *p = gt_problem_make(&cfg, rem ? mixed_list_bf16 : mixed_list,
                                            rem ? MIXED_BF16_COUNT : MIXED_COUNT, 40 + c, true);
            gt_check(p, p->opt, where);
            for (int s = 0; s < 5; s++) {
                gt_new_grads(p);
                long before = fopt_emu_calls();
                FOPT_OK(fopt_step(p->opt, 0));
                if (fopt_dev_emulated()) /* a plain eager step is the step launches only */
                    cr_assert_eq(fopt_emu_calls() - before, rem ? 2 : 3, "%s: %ld launches", where,
                                 fopt_emu_calls() - before);
                gt_ref_step(p, NULL);
            }
            gt_check(p, p->opt, where);
            gt_problem_free(p);
        }
}

Test(gpu_precision, stochastic_rounding_in_a_mixed_list_keys_on_the_tensor_index)
{
    /* fp32 and bf16 tensors (fp16 cannot round stochastically): the random bits of a bf16 tensor
     * depend on its index in the whole list, as in one reference call. */
    const gt_spec spec[] = {{100, FOPT_FLOAT32, 0, 0}, {4097, FOPT_BFLOAT16, 0, 0}, {7, FOPT_FLOAT32, 0, 1},
                            {300, FOPT_BFLOAT16, 0, 1}};
    gt_cfg cfg = gt_adam();
    *gt_precision(&cfg) = (fopt_precision){FOPT_BFLOAT16, false, true, false, 77};
    run_steps(&cfg, spec, 4, 6, 61, "mixed list with stochastic rounding");
}

Test(gpu_precision, fp16_params_with_one_launch_per_dtype_in_a_single_dtype_list)
{
    if (!fopt_dev_emulated())
        cr_skip_test("counts launches on the emulated device");
    gt_cfg cfg = gt_adam();
    gt_spec spec[6];
    specs_of(FOPT_FLOAT16, spec);
    gt_problem *p = gt_problem_make(&cfg, spec, 6, 3, true);
    gt_new_grads(p);
    long before = fopt_emu_calls();
    FOPT_OK(fopt_step(p->opt, 0));
    cr_expect_eq(fopt_emu_calls() - before, 1, "one dtype, one launch");
    gt_problem_free(p);
}

/* ---- state copies ---------------------------------------------------------------------------- */

Test(gpu_precision, state_copy_round_trips_every_slot_and_rejects_slots_not_kept)
{
    gt_cfg cfg = gt_adam();
    *gt_precision(&cfg) = (fopt_precision){FOPT_BFLOAT16, true, false, false, 0};
    gt_problem *p = gt_problem_make(&cfg, mixed_list, MIXED_COUNT, 8, true);
    for (int s = 0; s < 2; s++) {
        gt_new_grads(p);
        FOPT_OK(fopt_step(p->opt, 0));
        gt_ref_step(p, NULL);
    }
    gt_check(p, p->opt, "before the copies");
    /* Write every kept slot back with itself shifted by one element's bits: the checkpoint must
     * then hold exactly what was written, and reading it out gives it back. */
    size_t size;
    unsigned char *before = gt_save(p->opt, &size);
    for (size_t k = 0; k < MIXED_COUNT; k++) {
        size_t n = mixed_list[k].numel;
        uint16_t *b16 = calloc(n, 4), *back = calloc(n, 4);
        cr_assert(b16 && back);
        for (int slot = 0; slot <= FOPT_SLOT_MASTER; slot++) {
            fopt_status st = fopt_state_copy(p->opt, k, (fopt_slot)slot, b16, false);
            bool kept = slot < 2 || (slot == FOPT_SLOT_MASTER && mixed_list[k].dtype != FOPT_FLOAT32);
            if (!kept) {
                cr_expect_eq(st, FOPT_ERROR_INVALID_VALUE, "tensor %zu slot %d is not kept", k, slot);
                continue;
            }
            FOPT_OK(st);
            for (size_t i = 0; i < n; i++)
                b16[i] ^= 0x0100; /* any change will do */
            FOPT_OK(fopt_state_copy(p->opt, k, (fopt_slot)slot, b16, true));
            FOPT_OK(fopt_state_copy(p->opt, k, (fopt_slot)slot, back, false));
            size_t bytes = n * (slot == FOPT_SLOT_MASTER ? 4 : 2); /* fp32 masters, bf16 states */
            cr_expect_eq(memcmp(b16, back, bytes), 0, "tensor %zu slot %d did not round-trip", k, slot);
            for (size_t i = 0; i < n; i++)
                b16[i] ^= 0x0100;
            FOPT_OK(fopt_state_copy(p->opt, k, (fopt_slot)slot, b16, true));
        }
        free(b16);
        free(back);
    }
    size_t size2;
    unsigned char *after = gt_save(p->opt, &size2);
    cr_expect_eq(memcmp(before, after, size), 0, "writing every slot back changed the checkpoint");
    char buf[4];
    cr_expect_eq(fopt_state_copy(p->opt, MIXED_COUNT, FOPT_SLOT_EXP_AVG, buf, false), FOPT_ERROR_INVALID_VALUE);
    cr_expect_eq(fopt_state_copy(p->opt, 0, (fopt_slot)4, buf, false), FOPT_ERROR_INVALID_VALUE);
    cr_expect_eq(fopt_state_copy(p->opt, 0, FOPT_SLOT_EXP_AVG, NULL, false), FOPT_ERROR_INVALID_VALUE);
    gt_check(p, p->opt, "after the copies");
    free(before);
    free(after);
    gt_problem_free(p);
}

/* n plain steps of p's optimizer and its reference. */
static void plain_steps_of(gt_problem *p, int n)
{
    for (int i = 0; i < n; i++) {
        gt_new_grads(p);
        FOPT_OK(fopt_step(p->opt, 0));
        gt_ref_step(p, NULL);
    }
}

/* fopt_state_copy of a slot opt does not keep for tensor k: FOPT_ERROR_INVALID_VALUE naming the
 * slot, both ways, and nothing copied. */
static void expect_not_kept(fopt_optimizer *opt, size_t k, fopt_slot slot, const char *name, const char *where)
{
    uint32_t buf[64], poison[64];
    memset(poison, 0x5a, sizeof poison);
    for (int into = 0; into < 2; into++) {
        memcpy(buf, poison, sizeof buf);
        fopt_status st = fopt_state_copy(opt, k, slot, buf, into != 0);
        cr_expect_eq(st, FOPT_ERROR_INVALID_VALUE, "%s: tensor %zu slot %d (%s, %s): %s", where, k, (int)slot, name,
                     into ? "in" : "out", fopt_status_string(st));
        cr_expect(strstr(fopt_last_error(), name) != NULL, "%s: tensor %zu: the message does not name %s: %s", where,
                  k, name, fopt_last_error());
        cr_expect_eq(memcmp(buf, poison, sizeof buf), 0, "%s: tensor %zu: the buffer was written", where, k);
    }
}

/* A kept slot of a tensor with no element in the optimizer: success, nothing copied. */
static void expect_empty_copy(fopt_optimizer *opt, size_t k, fopt_slot slot, const char *where)
{
    uint32_t buf[4] = {0x5a5a5a5a, 0x5a5a5a5a, 0x5a5a5a5a, 0x5a5a5a5a};
    FOPT_OK(fopt_state_copy(opt, k, slot, buf, false));
    FOPT_OK(fopt_state_copy(opt, k, slot, buf, true));
    cr_expect(buf[0] == 0x5a5a5a5a && buf[3] == 0x5a5a5a5a, "%s: tensor %zu: an empty copy wrote the buffer", where, k);
}

Test(gpu_precision, state_copy_of_a_slot_not_kept_is_an_error_naming_it_whatever_the_tensors_size)
{
    /* Issue 16: a slot the optimizer does not keep gave FOPT_SUCCESS for an empty tensor or one
     * outside a shard's range, FOPT_ERROR_INVALID_VALUE otherwise. Kept or not depends on the
     * config and the dtype only. */
    const gt_spec spec[] = {{0, FOPT_FLOAT32, 0, 0}, {40, FOPT_FLOAT32, 0, 0}, {0, FOPT_BFLOAT16, 0, 0}, {48, FOPT_BFLOAT16, 0, 0}};
    gt_cfg adam = gt_adam(); /* no amsgrad, no master weights */
    gt_problem *p = gt_problem_make(&adam, spec, 4, 11, true);
    fopt_optimizer *shard, *none; /* [0, 40): tensor 3 lies outside; [40, 40): no state byte */
    FOPT_OK(fopt_adam_create_shard(&shard, &adam.a, p->dev, 4, 0, 40));
    FOPT_OK(fopt_adam_create_shard(&none, &adam.a, p->dev, 4, 40, 40));
    fopt_optimizer *const opts[3] = {p->opt, shard, none};
    for (int o = 0; o < 3; o++) {
        const char *where = o == 2 ? "shard [40, 40)" : o ? "shard [0, 40)" : "whole list";
        for (size_t k = 0; k < 4; k++) {
            expect_not_kept(opts[o], k, FOPT_SLOT_MAX_EXP_AVG_SQ, "max_exp_avg_sq", where);
            expect_not_kept(opts[o], k, FOPT_SLOT_MASTER, "master", where);
        }
        expect_empty_copy(opts[o], 0, FOPT_SLOT_EXP_AVG, where);
        expect_empty_copy(opts[o], 2, FOPT_SLOT_EXP_AVG_SQ, where);
    }
    expect_empty_copy(shard, 3, FOPT_SLOT_EXP_AVG, "shard [0, 40), tensor outside");
    expect_empty_copy(none, 1, FOPT_SLOT_EXP_AVG_SQ, "shard [40, 40)");
    fopt_destroy(shard);
    fopt_destroy(none);
    gt_problem_free(p);

    /* RMSprop without momentum or centering; bf16 params with masters keep one, fp32 ones none */
    gt_cfg rms = gt_rmsprop();
    rms.r.momentum = 0.0;
    rms.r.centered = false;
    gt_precision(&rms)->master_weights = true;
    p = gt_problem_make(&rms, spec, 4, 12, true);
    for (size_t k = 0; k < 4; k++) {
        expect_not_kept(p->opt, k, FOPT_SLOT_MOMENTUM_BUFFER, "momentum_buffer", "rmsprop");
        expect_not_kept(p->opt, k, FOPT_SLOT_GRAD_AVG, "grad_avg", "rmsprop");
    }
    expect_not_kept(p->opt, 0, FOPT_SLOT_MASTER, "fp32 params keep no master", "rmsprop, empty fp32 tensor");
    expect_empty_copy(p->opt, 2, FOPT_SLOT_MASTER, "rmsprop, empty bf16 tensor with a master");
    gt_problem_free(p);
}

/* ---- checkpoints ---------------------------------------------------------------------------- */

Test(gpu_precision, checkpoint_carries_the_master_and_a_restored_optimizer_continues_bit_for_bit)
{
    const fopt_precision prs[] = {
        {FOPT_FLOAT32, true, false, false, 0},
        {FOPT_BFLOAT16, true, false, true, 0},
        {FOPT_FLOAT32, false, false, false, 0},
    };
    for (size_t c = 0; c < sizeof prs / sizeof prs[0]; c++) {
        gt_cfg cfg = gt_adamw();
        *gt_precision(&cfg) = prs[c];
        const bool rem = prs[c].master_remainder;
        const gt_spec *list = rem ? mixed_list_bf16 : mixed_list;
        const size_t count = rem ? MIXED_BF16_COUNT : MIXED_COUNT;
        gt_problem *p = gt_problem_make(&cfg, list, count, 70 + c, true);
        for (int s = 0; s < 3; s++) {
            gt_new_grads(p);
            FOPT_OK(fopt_step(p->opt, 0));
            gt_ref_step(p, NULL);
        }
        size_t size;
        unsigned char *ckpt = gt_save(p->opt, &size);
        gt_snapshot at3;
        gt_snapshot_take(&at3, p, NULL);
        test_rng rng = p->rng;
        for (int s = 0; s < 2; s++) {
            gt_new_grads(p);
            FOPT_OK(fopt_step(p->opt, 0));
        }
        gt_snapshot a5;
        gt_snapshot_take(&a5, p, p->opt);
        /* Params back to step 3: a fresh optimizer initialises its master from these rounded
         * params; the load must replace it with the checkpoint's exact master. */
        gt_restore(p, &cfg, &at3, ckpt, size);
        cr_expect_eq(fopt_step_count(p->opt), 3);
        p->rng = rng;
        for (int s = 0; s < 2; s++) {
            gt_new_grads(p);
            FOPT_OK(fopt_step(p->opt, 0));
        }
        gt_expect_snapshot(p, p->opt, &a5, "restored optimizer after two more steps");
        gt_snapshot_free(&at3);
        gt_snapshot_free(&a5);
        free(ckpt);
        gt_problem_free(p);
    }
}

/* Loading must fail with INVALID_VALUE, name the precision settings, and change nothing. */
static void expect_precision_rejected(fopt_optimizer *opt, const void *ckpt, size_t size, const char *why)
{
    gt_expect_load_rejected(opt, ckpt, size, "precision", why);
}

Test(gpu_precision, checkpoint_of_other_precision_settings_is_rejected_even_at_the_same_size)
{
    /* bf16 params throughout. Several pairs have checkpoints of exactly the same size, so only the
     * precision fields can tell them apart. */
    const gt_spec spec[] = {{37, FOPT_BFLOAT16, 0, 0}, {4097, FOPT_BFLOAT16, 0, 0}};
    const fopt_precision base = {FOPT_FLOAT32, false, false, false, 0};
    const struct {
        const char *why;
        fopt_precision pr;
        bool same_size;
    } others[] = {
        {"bf16 states with an fp32 master (same size)", {FOPT_BFLOAT16, true, false, false, 0}, true},
        {"stochastic rounding on (same size)", {FOPT_FLOAT32, false, true, false, 0}, true},
        {"stochastic rounding with another seed (same size)", {FOPT_FLOAT32, false, true, false, 5}, true},
        {"master weights on", {FOPT_FLOAT32, true, false, false, 0}, false},
        {"master remainders", {FOPT_FLOAT32, true, false, true, 0}, false},
        {"bf16 states", {FOPT_BFLOAT16, false, false, false, 0}, false},
    };
    const size_t n = sizeof others / sizeof others[0];
    /* every pair (base and the others, both ways) */
    fopt_precision all[1 + sizeof others / sizeof others[0]];
    all[0] = base;
    for (size_t i = 0; i < n; i++)
        all[i + 1] = others[i].pr;
    gt_problem *p[1 + sizeof others / sizeof others[0]];
    for (size_t i = 0; i <= n; i++) {
        gt_cfg cfg = gt_adam();
        *gt_precision(&cfg) = all[i];
        p[i] = gt_problem_make(&cfg, spec, 2, 3, true);
        gt_new_grads(p[i]);
        FOPT_OK(fopt_step(p[i]->opt, 0));
    }
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(fopt_state_size(p[i + 1]->opt) == fopt_state_size(p[0]->opt), others[i].same_size,
                     "%s: the size premise does not hold", others[i].why);
    for (size_t i = 0; i <= n; i++) {
        size_t size;
        unsigned char *ckpt = gt_save(p[i]->opt, &size);
        for (size_t j = 0; j <= n; j++) {
            if (i == j)
                continue;
            char why[160];
            snprintf(why, sizeof why, "checkpoint of [%s] into [%s]", i ? others[i - 1].why : "fp32 states",
                     j ? others[j - 1].why : "fp32 states");
            expect_precision_rejected(p[j]->opt, ckpt, size, why);
        }
        FOPT_OK(fopt_state_load(p[i]->opt, ckpt, size)); /* its own is fine */
        free(ckpt);
    }
    for (size_t i = 0; i <= n; i++)
        gt_problem_free(p[i]);
}

/* Each precision setting on its own, over a list it acts on: the checkpoint is rejected, both
 * ways, and the message names the setting and both values (issue 16: it gave "state dtype %u,
 * flags %u"). state_dtype, master_weights and master_remainder change the state bytes;
 * stochastic_rounding and seed change how the steps after the load round the bf16 params. */
Test(gpu_precision, a_checkpoint_rejection_names_the_one_precision_setting_that_differs)
{
    const gt_spec bf16[] = {{37, FOPT_BFLOAT16, 0, 0}, {300, FOPT_BFLOAT16, 0, 1}};
    const gt_spec fp16[] = {{37, FOPT_FLOAT16, 0, 0}, {300, FOPT_FLOAT32, 0, 1}};
    const struct {
        const char *name, *va, *vb;
        const gt_spec *spec;
        fopt_precision a, b;
    } cases[] = {
        {"precision.state_dtype", "FOPT_FLOAT32", "FOPT_BFLOAT16", bf16, {FOPT_FLOAT32, false, false, false, 0},
         {FOPT_BFLOAT16, false, false, false, 0}},
        {"precision.master_weights", "off", "on", fp16, {FOPT_FLOAT32, false, false, false, 0},
         {FOPT_FLOAT32, true, false, false, 0}},
        {"precision.master_remainder", "off", "on", bf16, {FOPT_FLOAT32, true, false, false, 0},
         {FOPT_FLOAT32, true, false, true, 0}},
        {"precision.stochastic_rounding", "off", "on", bf16, {FOPT_FLOAT32, false, false, false, 0},
         {FOPT_FLOAT32, false, true, false, 0}},
        {"precision.seed", "1", "2", bf16, {FOPT_FLOAT32, false, true, false, 1}, {FOPT_FLOAT32, false, true, false, 2}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        gt_cfg ca = gt_adam(), cb = gt_adam();
        *gt_precision(&ca) = cases[c].a;
        *gt_precision(&cb) = cases[c].b;
        gt_problem *pa = gt_problem_make(&ca, cases[c].spec, 2, 21, true);
        gt_problem *pb = gt_problem_make(&cb, cases[c].spec, 2, 21, true);
        for (int dir = 0; dir < 2; dir++) {
            gt_problem *from = dir ? pb : pa, *into = dir ? pa : pb;
            plain_steps_of(from, 1);
            size_t size;
            unsigned char *ckpt = gt_save(from->opt, &size);
            char why[96];
            snprintf(why, sizeof why, "%s differs (%s)", cases[c].name, dir ? "b into a" : "a into b");
            gt_expect_load_rejected(into->opt, ckpt, size, cases[c].name, why);
            /* "<name> (...) is <checkpoint's> in the checkpoint, <this one's> in this optimizer" */
            char values[96];
            snprintf(values, sizeof values, "is %s in the checkpoint, %s in this optimizer", dir ? cases[c].vb : cases[c].va,
                     dir ? cases[c].va : cases[c].vb);
            cr_expect(strstr(fopt_last_error(), values) != NULL, "%s: the message does not give both values: %s", why,
                      fopt_last_error());
            free(ckpt);
        }
        gt_problem_free(pa);
        gt_problem_free(pb);
    }
}

/* Settings that act on no tensor of the list: the checkpoint loads, and the optimizer that loaded
 * it continues exactly as the one that saved it (issue 16: such checkpoints were rejected). */
Test(gpu_precision, a_checkpoint_loads_across_precision_settings_that_act_on_no_tensor_of_the_list)
{
    const gt_spec fp32[] = {{37, FOPT_FLOAT32, 0, 0}, {300, FOPT_FLOAT32, 0, 1}};
    const gt_spec fp16[] = {{37, FOPT_FLOAT16, 0, 0}, {300, FOPT_FLOAT32, 0, 1}};
    const gt_spec bf16[] = {{37, FOPT_BFLOAT16, 0, 0}, {300, FOPT_FLOAT32, 0, 1}};
    const struct {
        const char *why;
        const gt_spec *spec;
        fopt_precision a, b;
    } cases[] = {
        {"fp32 params, master_weights off and on", fp32, {FOPT_FLOAT32, false, false, false, 0},
         {FOPT_FLOAT32, true, false, false, 0}},
        {"fp32 params, master_weights with remainders and off", fp32, {FOPT_FLOAT32, true, false, true, 0},
         {FOPT_FLOAT32, false, false, false, 0}},
        {"fp32 params, stochastic_rounding on and off", fp32, {FOPT_FLOAT32, false, true, false, 3},
         {FOPT_FLOAT32, false, false, false, 0}},
        {"fp16 params, another seed without stochastic rounding", fp16, {FOPT_BFLOAT16, true, false, false, 1},
         {FOPT_BFLOAT16, true, false, false, 7}},
        {"bf16 params with masters, another seed", bf16, {FOPT_FLOAT32, true, false, false, 4},
         {FOPT_FLOAT32, true, false, false, 5}},
        {"bf16 params with remainders, another seed", bf16, {FOPT_FLOAT32, true, false, true, 0},
         {FOPT_FLOAT32, true, false, true, 9}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        gt_cfg ca = gt_adamw(), cb = gt_adamw();
        *gt_precision(&ca) = cases[c].a;
        *gt_precision(&cb) = cases[c].b;
        gt_problem *p = gt_problem_make(&ca, cases[c].spec, 2, 22, true);
        plain_steps_of(p, 2);
        size_t size;
        unsigned char *ckpt = gt_save(p->opt, &size);
        gt_snapshot at2, a4, b4;
        gt_snapshot_take(&at2, p, NULL);
        test_rng rng = p->rng;
        plain_steps_of(p, 2);
        gt_snapshot_take(&a4, p, p->opt);
        gt_restore(p, &cb, &at2, ckpt, size); /* asserts the load */
        p->rng = rng;
        for (int s = 0; s < 2; s++) {
            gt_new_grads(p);
            FOPT_OK(fopt_step(p->opt, 0));
        }
        gt_snapshot_take(&b4, p, p->opt);
        /* the headers keep each optimizer's own settings; the rest must be the same bytes */
        cr_assert_eq(a4.size, b4.size, "%s", cases[c].why);
        memset(a4.ckpt, 0, sizeof(state_header));
        memset(b4.ckpt, 0, sizeof(state_header));
        gt_snapshot_expect_equal(&b4, &a4, cases[c].why);
        gt_snapshot_free(&at2);
        gt_snapshot_free(&a4);
        gt_snapshot_free(&b4);
        free(ckpt);
        gt_problem_free(p);
    }
}
