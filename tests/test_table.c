/* The multi-tensor table's plan at its limits and the alignment flags of its entries (src/gpu/
 * table.c), with addresses that are never dereferenced: exact boundaries of the grid limits (one
 * launch holds at most INT32_MAX chunks, statistics and step chunks alike), the chunk-size choice
 * at exactly four chunks per multiprocessor, and the vector-path flag of an entry whose param is
 * aligned but whose grad (or a state or master slice) is not. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "internal.h"
#include "table.h"

static fopt_any_config adam_any(void)
{
    fopt_adam_config cfg = fopt_adam_config_default();
    return fopt_cfg_copy(&fopt_adam_desc, &cfg);
}

static char *const A = (char *)(uintptr_t)0x100000; /* 16-byte aligned, never dereferenced */

Test(table, one_launch_holds_exactly_int32_max_chunks_and_not_one_more)
{
    fopt_any_config c = adam_any();
    fopt_table_plan plan;
    const size_t chunk = FOPT_CHUNK;
    /* INT32_MAX full chunks: the largest grid */
    fopt_tensor t = {A, A, (size_t)INT32_MAX * chunk, FOPT_FLOAT32, 0};
    cr_expect_eq(fopt_table_plan_make(&fopt_adam_desc, &c, &t, 1, 1, &plan), FOPT_SUCCESS, "%s", fopt_last_error());
    cr_expect_eq(plan.step_chunks, (size_t)INT32_MAX);
    cr_expect_eq(plan.stat_chunks, (size_t)INT32_MAX);
    /* one more element: one more chunk, one too many */
    t.numel += 1;
    cr_expect_eq(fopt_table_plan_make(&fopt_adam_desc, &c, &t, 1, 1, &plan), FOPT_ERROR_NOT_SUPPORTED);
}

Test(table, statistics_count_every_class_together)
{
    fopt_any_config c = adam_any();
    fopt_table_plan plan;
    const size_t chunk = FOPT_CHUNK;
    /* two classes of 2^30 chunks each: each step launch fits, the one statistics launch over all
     * of them (2^31 chunks) does not */
    fopt_tensor t[2] = {{A, A, ((size_t)1 << 30) * chunk, FOPT_FLOAT32, 0},
                        {A, A, ((size_t)1 << 30) * chunk, FOPT_BFLOAT16, 0}};
    cr_expect_eq(fopt_table_plan_make(&fopt_adam_desc, &c, t, 2, 1, &plan), FOPT_ERROR_NOT_SUPPORTED);
    /* and with one chunk less in all: 2^31 - 1 statistics chunks fit */
    t[1].numel -= chunk;
    cr_expect_eq(fopt_table_plan_make(&fopt_adam_desc, &c, t, 2, 1, &plan), FOPT_SUCCESS, "%s", fopt_last_error());
    cr_expect_eq(plan.stat_chunks, (size_t)INT32_MAX);
    cr_expect_eq(plan.class_count[FOPT_CLASS_F32], (size_t)1 << 30);
    cr_expect_eq(plan.class_count[FOPT_CLASS_BF16], ((size_t)1 << 30) - 1);
    cr_expect_eq(plan.class_begin[FOPT_CLASS_BF16], (size_t)1 << 30);
}

Test(table, chunks_shrink_only_below_four_per_multiprocessor)
{
    fopt_any_config c = adam_any();
    fopt_table_plan plan;
    /* exactly 4 full chunks for 1 multiprocessor: full-size chunks */
    fopt_tensor t = {A, A, 4 * (size_t)FOPT_CHUNK, FOPT_FLOAT32, 0};
    cr_assert_eq(fopt_table_plan_make(&fopt_adam_desc, &c, &t, 1, 1, &plan), FOPT_SUCCESS);
    cr_expect_eq(plan.chunk_shift, (unsigned)FOPT_CHUNK_SHIFT);
    cr_expect_eq(plan.step_chunks, 4u);
    /* 3 chunks and a bit still makes 4 */
    t.numel = 3 * (size_t)FOPT_CHUNK + 1;
    cr_assert_eq(fopt_table_plan_make(&fopt_adam_desc, &c, &t, 1, 1, &plan), FOPT_SUCCESS);
    cr_expect_eq(plan.chunk_shift, (unsigned)FOPT_CHUNK_SHIFT);
    /* 3 chunks: halve once (6 chunks) */
    t.numel = 3 * (size_t)FOPT_CHUNK;
    cr_assert_eq(fopt_table_plan_make(&fopt_adam_desc, &c, &t, 1, 1, &plan), FOPT_SUCCESS);
    cr_expect_eq(plan.chunk_shift, (unsigned)FOPT_CHUNK_SHIFT - 1);
    cr_expect_eq(plan.step_chunks, 6u);
    /* 4 x 2 multiprocessors: 8 chunks of the largest size exactly */
    t.numel = 8 * (size_t)FOPT_CHUNK;
    cr_assert_eq(fopt_table_plan_make(&fopt_adam_desc, &c, &t, 1, 2, &plan), FOPT_SUCCESS);
    cr_expect_eq(plan.chunk_shift, (unsigned)FOPT_CHUNK_SHIFT);
    /* tiny: never below the minimum chunk */
    t.numel = 5;
    cr_assert_eq(fopt_table_plan_make(&fopt_adam_desc, &c, &t, 1, 132, &plan), FOPT_SUCCESS);
    cr_expect_eq(plan.chunk_shift, (unsigned)FOPT_MIN_CHUNK_SHIFT);
    cr_expect_eq(plan.step_chunks, 1u);
    cr_expect_eq(plan.stat_chunks, 1u);
}

/* An fp32 entry with every state slot and the param and grad at these byte offsets from aligned
 * addresses. */
static fopt_tensor_entry entry_at(unsigned param_off, unsigned grad_off, unsigned state_off)
{
    fopt_tensor_entry e;
    memset(&e, 0, sizeof e);
    e.slot[FOPT_TS_PARAM] = (char *)(uintptr_t)0x10000 + param_off;
    e.slot[FOPT_TS_GRAD] = (char *)(uintptr_t)0x20000 + grad_off;
    for (int s = 0; s < FOPT_MAX_STATES; s++)
        e.slot[FOPT_TS_STATE0 + s] = (char *)(uintptr_t)(0x30000 + 0x10000 * s) + (s == 1 ? state_off : 0);
    e.numel = 1000;
    return e;
}

Test(table, vector_path_needs_every_slot_aligned_the_grad_included)
{
    struct {
        unsigned param, grad, state;
        unsigned flags;
    } cases[] = {
        {0, 0, 0, FOPT_ENTRY_ALIGNED | FOPT_ENTRY_GRAD_ALIGNED},
        {0, 4, 0, 0},                       /* param aligned, grad one float off */
        {0, 8, 0, 0},
        {0, 12, 0, 0},
        {4, 0, 0, FOPT_ENTRY_GRAD_ALIGNED}, /* param off, grad aligned */
        {0, 0, 4, FOPT_ENTRY_GRAD_ALIGNED}, /* a state slice off */
        {2, 2, 2, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fopt_tensor_entry e = entry_at(cases[i].param, cases[i].grad, cases[i].state);
        fopt_entry_set_flags(&e);
        cr_expect_eq(e.flags, cases[i].flags, "param +%u, grad +%u, state +%u: flags %u, want %u", cases[i].param,
                     cases[i].grad, cases[i].state, e.flags, cases[i].flags);
    }
    /* an unaligned master slice (bf16 param with fp32 master) */
    fopt_tensor_entry e = entry_at(0, 0, 0);
    e.slot[FOPT_TS_MASTER] = (char *)(uintptr_t)0x90008;
    fopt_entry_set_flags(&e);
    cr_expect_eq(e.flags, FOPT_ENTRY_GRAD_ALIGNED);
    /* unused slots (NULL) do not count */
    e = entry_at(0, 0, 0);
    e.slot[FOPT_TS_STATE0 + 2] = NULL;
    fopt_entry_set_flags(&e);
    cr_expect_eq(e.flags, FOPT_ENTRY_ALIGNED | FOPT_ENTRY_GRAD_ALIGNED);
}

Test(table, filled_entries_flag_a_param_aligned_grad_unaligned_tensor)
{
    fopt_adam_config cfg = fopt_adam_config_default();
    fopt_any_config c = fopt_cfg_copy(&fopt_adam_desc, &cfg);
    char *p = (char *)(uintptr_t)0x10000, *g = (char *)(uintptr_t)0x80000;
    fopt_tensor t[3] = {
        {p, g, 100, FOPT_FLOAT32, 0},
        {p + 512, g + 516, 100, FOPT_FLOAT32, 0}, /* grad 4 bytes off */
        {p + 1028, g + 1024, 100, FOPT_FLOAT32, 0}, /* param 4 bytes off */
    };
    fopt_table_plan plan;
    cr_assert_eq(fopt_table_plan_make(&fopt_adam_desc, &c, t, 3, 1, &plan), FOPT_SUCCESS);
    void *table = malloc(plan.table_bytes);
    cr_assert_not_null(table);
    fopt_table_fill(&plan, &fopt_adam_desc, &c, t, (char *)(uintptr_t)0x1000000, table);
    fopt_tensor_entry *e = fopt_table_entries(&plan, table);
    cr_expect_eq(e[0].flags, FOPT_ENTRY_ALIGNED | FOPT_ENTRY_GRAD_ALIGNED);
    cr_expect_eq(e[1].flags, 0u, "param aligned, grad not: scalar path, scalar statistics");
    cr_expect_eq(e[2].flags, FOPT_ENTRY_GRAD_ALIGNED);
    free(table);
}
