/* The CUDA kernel bodies, run on the CPU for every block and thread of a launch (no GPU needed),
 * against the CPU reference: every variant, odd sizes, chunk boundaries, unaligned pointers and
 * lists of more than a thousand tensors, with the host-derived scalars and with the device-side
 * prologue, with full and with small chunks. Also the multi-tensor table itself and the PyTorch
 * golden vectors (element offsets past 2^32: test_offsets.c). */
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "golden.h"
#include "host_run.h"
#include "internal.h"
#include "problem.h"
#include "table.h"

#define GUARD 8
static const float GUARD_VALUE = 12345.5f;

/* Runs `steps` steps of variant v over the layout through the host-run kernels (in `mode`) and
 * the reference, and compares every tensor bit for bit; guard floats after every state slice
 * must stay untouched. */
static void run_case_in(fopt_host_run_mode mode, const test_variant *v, const size_t *numel,
                        const unsigned *param_off, const unsigned *grad_off, size_t count, int steps,
                        uint64_t seed)
{
    fopt_host_run_set_mode(mode);
    test_problem *p = test_problem_make(v, numel, param_off, grad_off, count, seed);
    float **state[FOPT_MAX_STATES] = {NULL, NULL, NULL};
    for (int j = 0; j < FOPT_MAX_STATES; j++) {
        if (!(p->mask & (1u << j)))
            continue;
        state[j] = calloc(count, sizeof(float *));
        cr_assert_not_null(state[j]);
        for (size_t k = 0; k < count; k++) {
            state[j][k] = calloc(numel[k] + GUARD, sizeof(float));
            cr_assert_not_null(state[j][k]);
            for (int gi = 0; gi < GUARD; gi++)
                state[j][k][numel[k] + gi] = GUARD_VALUE;
        }
    }
    fopt_host_tensor *t = test_problem_host_tensors(p, (float *const *const *)state);
    for (int64_t s = 1; s <= steps; s++) {
        test_problem_new_grads(p);
        fopt_status st = v->adam ? fopt_adam_step_kernels_host(&v->a, s, t, count, NULL)
                                 : fopt_rmsprop_step_kernels_host(&v->r, s, t, count, NULL);
        cr_assert_eq(st, FOPT_SUCCESS, "%s: %s", v->name, fopt_last_error());
        test_problem_ref_step(p, s);
    }
    uint32_t worst_ulp = 0;
    for (size_t k = 0; k < count; k++) {
        float *sk[FOPT_MAX_STATES] = {NULL, NULL, NULL};
        for (int j = 0; j < FOPT_MAX_STATES; j++)
            if (state[j]) {
                sk[j] = state[j][k];
                for (int gi = 0; gi < GUARD; gi++)
                    cr_assert_eq(sk[j][numel[k] + gi], GUARD_VALUE, "%s: write past tensor %zu", v->name, k);
            }
        uint32_t ulp = test_problem_check(p, k, p->param[k], sk, "host-run kernel");
        if (ulp > worst_ulp)
            worst_ulp = ulp;
    }
    /* Same operations in the same order without FMA contraction: bit-identical by design. */
    cr_expect_eq(worst_ulp, 0u, "%s: host-run kernel differs from the reference by %u ulp (chunk shift %u, "
                 "device scalars %d)", v->name, worst_ulp, mode.chunk_shift, mode.device_scalars);
    for (int j = 0; j < FOPT_MAX_STATES; j++) {
        if (!state[j])
            continue;
        for (size_t k = 0; k < count; k++)
            free(state[j][k]);
        free(state[j]);
    }
    free(t);
    test_problem_free(p);
    fopt_host_run_set_mode((fopt_host_run_mode){0, 0});
}

static void run_case(const test_variant *v, const size_t *numel, const unsigned *param_off,
                     const unsigned *grad_off, size_t count, int steps, uint64_t seed)
{
    run_case_in((fopt_host_run_mode){0, 0}, v, numel, param_off, grad_off, count, steps, seed);
}

/* Small chunks (as for a step over few elements) and the scalars derived by the device prologue. */
static void run_case_small_chunks_device_scalars(const test_variant *v, const size_t *numel,
                                                 const unsigned *param_off, const unsigned *grad_off,
                                                 size_t count, int steps, uint64_t seed)
{
    run_case_in((fopt_host_run_mode){FOPT_MIN_CHUNK_SHIFT, 1}, v, numel, param_off, grad_off, count, steps, seed);
}

Test(kernels_host, every_variant_matches_reference_on_odd_sizes)
{
    test_layout_odd_sizes(run_case);
    test_layout_odd_sizes(run_case_small_chunks_device_scalars);
}

Test(kernels_host, every_variant_matches_reference_with_pointers_offset_by_one_element)
{
    test_layout_offset_pointers(run_case);
    test_layout_offset_pointers(run_case_small_chunks_device_scalars);
}

Test(kernels_host, every_variant_matches_reference_across_chunk_boundaries)
{
    test_layout_chunk_boundaries(run_case, false);
    test_layout_chunk_boundaries(run_case_small_chunks_device_scalars, false);
}

Test(kernels_host, every_variant_matches_reference_over_a_thousand_tensors_of_random_sizes)
{
    test_layout_random_list(run_case, 1200, 3 * FOPT_CHUNK, 3, 42, true);
}

/* ---- the table ------------------------------------------------------------------------------ */

Test(kernels_host, table_groups_chunks_by_class_and_lays_out_aligned_slices)
{
    /* addresses only, never dereferenced */
    char *a = (char *)(uintptr_t)0x10000, *b = (char *)(uintptr_t)0x90000;
    fopt_tensor t[5] = {
        {a, b, 5, FOPT_FLOAT32, 0},
        {NULL, NULL, 0, FOPT_FLOAT32, 0},
        {a + 4, b, 3, FOPT_BFLOAT16, 2},
        {a, b, 2 * FOPT_CHUNK + 1, FOPT_FLOAT32, 1},
        {a + 64, b + 64, 9, FOPT_BFLOAT16, 0},
    };
    fopt_adam_config cfg = fopt_adam_config_default();
    cfg.amsgrad = true;
    cfg.precision.master_weights = true;
    fopt_any_config c = fopt_cfg_copy(&fopt_adam_desc, &cfg);
    fopt_table_plan plan;
    /* few SMs: full-size chunks */
    cr_assert_eq(fopt_table_plan_make(&fopt_adam_desc, &c, t, 5, 1, &plan), FOPT_SUCCESS);
    cr_expect_eq(plan.chunk_shift, (unsigned)FOPT_CHUNK_SHIFT);
    cr_expect_eq(plan.class_count[FOPT_CLASS_F32], 1 + 0 + 3);
    cr_expect_eq(plan.class_count[FOPT_CLASS_F16], 0);
    cr_expect_eq(plan.class_count[FOPT_CLASS_BF16], 1 + 1);
    cr_expect_eq(plan.stat_chunks, 1 + 1 + 3 + 1);
    cr_expect_eq(plan.state_elems, 8 + 0 + 8 + (2 * FOPT_CHUNK + 8) + 16);
    cr_expect_eq(plan.master_f32_elems, 8 + 16);
    cr_expect_eq(plan.states, 7u);

    void *table = malloc(plan.table_bytes);
    cr_assert_not_null(table);
    char *base = (char *)(uintptr_t)0x1000000;
    fopt_table_fill(&plan, &fopt_adam_desc, &c, t, base, table);
    fopt_tensor_entry *e = fopt_table_entries(&plan, table);
    fopt_chunk *step = fopt_table_step_chunks(&plan, table);
    fopt_chunk *stat = fopt_table_stat_chunks(&plan, table);
    /* fp32 class first (tensors 0, 3), then bf16 (2, 4) */
    cr_expect_eq(step[0].entry, 0u);
    for (uint32_t i = 0; i < 3; i++)
        cr_expect(step[1 + i].entry == 3u && step[1 + i].chunk == i);
    cr_expect(step[4].entry == 2u && step[5].entry == 4u);
    /* statistics chunks in tensor order */
    cr_expect(stat[0].entry == 0u && stat[1].entry == 2u && stat[2].entry == 3u && stat[5].entry == 4u);
    cr_expect((e[0].flags & FOPT_ENTRY_ALIGNED) && !(e[2].flags & FOPT_ENTRY_ALIGNED) &&
              (e[3].flags & FOPT_ENTRY_ALIGNED) && (e[4].flags & FOPT_ENTRY_ALIGNED), "alignment flags");
    /* three fp32 state buffers one after another, slices rounded to 8 elements */
    const size_t buf = plan.state_elems * 4;
    cr_expect_eq((char *)e[2].slot[FOPT_TS_STATE0 + 0], base + 8 * 4);
    cr_expect_eq((char *)e[2].slot[FOPT_TS_STATE0 + 2], base + 2 * buf + 8 * 4);
    cr_expect_eq((char *)e[4].slot[FOPT_TS_STATE0 + 1], base + buf + (8 + 8 + 2 * FOPT_CHUNK + 8) * 4);
    /* masters after the states, only for the bf16 tensors */
    cr_expect_null(e[0].slot[FOPT_TS_MASTER]);
    cr_expect_eq((char *)e[2].slot[FOPT_TS_MASTER], base + 3 * buf);
    cr_expect_eq((char *)e[4].slot[FOPT_TS_MASTER], base + 3 * buf + 8 * 4);
    cr_expect(e[2].storage[FOPT_TS_PARAM] == FOPT_ST_BF16 && e[2].storage[FOPT_TS_MASTER] == FOPT_ST_F32);
    cr_expect(e[2].group == 2u && e[3].group == 1u && e[3].tensor == 3u);
    free(table);

    /* many SMs and few elements: smaller chunks, never below the minimum */
    cr_assert_eq(fopt_table_plan_make(&fopt_adam_desc, &c, t, 5, 132, &plan), FOPT_SUCCESS);
    cr_expect_eq(plan.chunk_shift, (unsigned)FOPT_MIN_CHUNK_SHIFT);
    cr_expect_eq(plan.class_count[FOPT_CLASS_F32], 1 + (2 * FOPT_CHUNK + 1 + (1 << FOPT_MIN_CHUNK_SHIFT) - 1) / (1 << FOPT_MIN_CHUNK_SHIFT));
}

Test(kernels_host, table_rejects_lists_one_launch_cannot_address)
{
    fopt_adam_config cfg = fopt_adam_config_default();
    fopt_any_config c = fopt_cfg_copy(&fopt_adam_desc, &cfg);
    fopt_table_plan plan;
    char *a = (char *)(uintptr_t)0x10000;
    /* one tensor of 2^31 chunks, and three of 2^30 chunks: more than one grid can hold */
    fopt_tensor big = {a, a, (size_t)1 << (31 + FOPT_CHUNK_SHIFT), FOPT_FLOAT32, 0};
    cr_expect_eq(fopt_table_plan_make(&fopt_adam_desc, &c, &big, 1, 1, &plan), FOPT_ERROR_NOT_SUPPORTED);
    fopt_tensor huge[3];
    for (int i = 0; i < 3; i++)
        huge[i] = (fopt_tensor){a, a, (size_t)1 << (30 + FOPT_CHUNK_SHIFT), FOPT_BFLOAT16, 0};
    cr_expect_eq(fopt_table_plan_make(&fopt_adam_desc, &c, huge, 3, 1, &plan), FOPT_ERROR_NOT_SUPPORTED);
    fopt_tensor fits = {a, a, ((size_t)1 << (30 + FOPT_CHUNK_SHIFT)), FOPT_FLOAT32, 0};
    cr_expect_eq(fopt_table_plan_make(&fopt_adam_desc, &c, &fits, 1, 1, &plan), FOPT_SUCCESS);
    cr_expect_eq(plan.step_chunks, (size_t)1 << 30);
}

/* ---- PyTorch golden vectors through the host-run kernels ------------------------------------ */

static fopt_status host_kernel_adam(const fopt_adam_config *cfg, int64_t step, size_t n, float *p,
                                    const float *g, float *m, float *v, float *vmax)
{
    fopt_host_tensor t;
    fopt_status st = fopt_adam_flat_tensor(cfg, n, p, g, m, v, vmax, &t);
    return st != FOPT_SUCCESS ? st : fopt_adam_step_kernels_host(cfg, step, &t, 1, NULL);
}

static fopt_status host_kernel_rmsprop(const fopt_rmsprop_config *cfg, size_t n, float *p,
                                       const float *g, float *sq, float *buf, float *ga)
{
    fopt_host_tensor t;
    fopt_status st = fopt_rmsprop_flat_tensor(cfg, n, p, g, sq, buf, ga, &t);
    return st != FOPT_SUCCESS ? st : fopt_rmsprop_step_kernels_host(cfg, 1, &t, 1, NULL);
}

Test(kernels_host, adam_kernel_matches_pytorch_golden_vectors)
{
    golden_check_file("golden_adam.bin", host_kernel_adam, NULL, 1e-5, "host-run adam kernel");
}

Test(kernels_host, rmsprop_kernel_matches_pytorch_golden_vectors)
{
    golden_check_file("golden_rmsprop.bin", NULL, host_kernel_rmsprop, 1e-5, "host-run rmsprop kernel");
}
