/* 64-bit element offsets in the kernels: the step kernel at full chunks (past 2^31 elements and
 * the tail) and with the smallest chunks (chunk index << 11 passes 2^32 from chunk 2^21 on), and
 * the statistics kernel. A tensor of more than 2^32 elements cannot be allocated: the entry's
 * arrays point so that only the chunks under test land in real memory, and only those chunks are
 * launched. The same data placed at element 0 of a small tensor must give the same bits. */
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "internal.h"
#include "launch.h"
#include "problem.h"
#include "table.h"

/* An fp32 entry of `numel` elements whose element `begin` is at param[0], grad[0], st[j][0]. */
static fopt_tensor_entry entry_shifted(int64_t numel, int64_t begin, float *param, float *grad,
                                       float *const st[FOPT_MAX_STATES])
{
    const uintptr_t shift = (uintptr_t)begin * sizeof(float);
    fopt_tensor_entry e;
    memset(&e, 0, sizeof e);
    e.slot[FOPT_TS_PARAM] = (void *)((uintptr_t)param - shift);
    e.slot[FOPT_TS_GRAD] = (void *)((uintptr_t)grad - shift);
    e.storage[FOPT_TS_PARAM] = e.storage[FOPT_TS_GRAD] = FOPT_ST_F32;
    for (int j = 0; j < FOPT_MAX_STATES; j++)
        if (st && st[j]) {
            e.slot[FOPT_TS_STATE0 + j] = (void *)((uintptr_t)st[j] - shift);
            e.storage[FOPT_TS_STATE0 + j] = FOPT_ST_F32;
        }
    e.numel = numel;
    fopt_entry_set_flags(&e);
    return e;
}

/* The step kernel of every test variant on chunks chunk_ids[0..1] (of 2^shift elements) of an fp32
 * tensor of `numel` elements, three steps: bit-identical to the reference stepping the same data
 * in a small tensor. */
static void check_step_chunks(unsigned shift, int64_t numel, const uint32_t chunk_ids[2], uint64_t seed,
                              const char *what)
{
    const int64_t csize = (int64_t)1 << shift;
    fopt_step_args *a = calloc(1, sizeof *a);
    cr_assert_not_null(a);
    for (size_t v = 0; v < test_variant_count; v++) {
        const test_variant *tv = &test_variants[v];
        const fopt_desc *d = test_variant_desc(tv);
        fopt_any_config cfg = test_variant_config(tv);
        fopt_kernel k = fopt_step_kernel_of(d->kind, FOPT_ST_F32, FOPT_ST_F32, FOPT_MASTER_NONE, d->variant(&cfg));
        for (size_t c = 0; c < 2; c++) {
            const int64_t begin = (int64_t)chunk_ids[c] * csize;
            const size_t len = (size_t)(numel - begin < csize ? numel - begin : csize);
            const size_t sizes[] = {len};
            test_problem *p = test_problem_make(tv, sizes, NULL, NULL, 1, seed + v);
            float *st[FOPT_MAX_STATES];
            for (int j = 0; j < FOPT_MAX_STATES; j++)
                st[j] = (p->mask & (1u << j)) ? calloc(len, sizeof(float)) : NULL;
            fopt_tensor_entry e = entry_shifted(numel, begin, p->param[0], p->grad[0], st);
            fopt_chunk ch = {.entry = 0, .chunk = chunk_ids[c]};
            memset(a, 0, sizeof *a);
            a->table = (fopt_table){&e, &ch, 1, 1, shift, 0};
            for (int64_t step = 1; step <= 3; step++) {
                test_problem_new_grads(p);
                a->scalars.group[0] = fopt_cpu_scalars(d, &cfg, step);
                k.run_on_host(a);
                test_problem_ref_step(p, step);
            }
            uint32_t ulp = test_problem_check(p, 0, p->param[0], st, what);
            cr_expect_eq(ulp, 0u, "%s: %s: chunk %u of 2^%u elements: %u ulp off the reference", tv->name,
                         what, chunk_ids[c], shift, ulp);
            for (int j = 0; j < FOPT_MAX_STATES; j++)
                free(st[j]);
            test_problem_free(p);
        }
    }
    free(a);
}

Test(offsets, step_chunks_beyond_two_to_the_32_elements_index_correctly)
{
    const int64_t numel = ((int64_t)1 << 32) + 4101; /* last chunk: 4101 elements */
    const uint32_t chunk_ids[] = {(uint32_t)(((int64_t)1 << 31) / FOPT_CHUNK) + 3, /* past 2^31 */
                                  (uint32_t)(numel / FOPT_CHUNK)};                  /* the tail */
    check_step_chunks(FOPT_CHUNK_SHIFT, numel, chunk_ids, 900, "chunk past 2^31");
}

Test(offsets, smallest_step_chunks_beyond_two_to_the_32_elements_index_correctly)
{
    const int64_t csize = (int64_t)1 << FOPT_MIN_CHUNK_SHIFT;
    const int64_t numel = ((int64_t)1 << 32) + 3 * csize + 77; /* last chunk: 77 elements */
    const uint32_t chunk_ids[] = {(uint32_t)(((int64_t)1 << 32) / csize) + 1, /* just past 2^32 */
                                  (uint32_t)(numel / csize)};                  /* the tail */
    check_step_chunks(FOPT_MIN_CHUNK_SHIFT, numel, chunk_ids, 1900, "small chunk past 2^32");
}

/* The statistics kernel over one chunk of entry `e` (sum of squares, unscaled). */
static double stats_of(const fopt_tensor_entry *e, uint32_t chunk)
{
    fopt_chunk ch = {.entry = 0, .chunk = chunk};
    double partial = 0.0, sq = -1.0;
    uint32_t done = 0;
    fopt_stats_args s;
    memset(&s, 0, sizeof s);
    s.table = (fopt_table){e, &ch, 1, 1, FOPT_CHUNK_SHIFT, 0};
    s.partials = &partial;
    s.done = &done;
    s.sq_sum_out = &sq;
    fopt_stats_kernel().run_on_host(&s);
    cr_expect_eq(done, 0u, "the last block resets the ticket counter");
    return sq;
}

Test(offsets, statistics_chunks_beyond_two_to_the_32_elements_index_correctly)
{
    const int64_t numel = ((int64_t)1 << 32) + 2 * FOPT_CHUNK + 1001;
    const uint32_t chunk_ids[] = {(uint32_t)(((int64_t)1 << 31) / FOPT_CHUNK) + 5, /* past 2^31 */
                                  (uint32_t)(((int64_t)1 << 32) / FOPT_CHUNK) + 1, /* past 2^32 */
                                  (uint32_t)(numel / FOPT_CHUNK)};                  /* the tail */
    test_rng r = test_rng_make(4242);
    for (size_t c = 0; c < 3; c++) {
        const int64_t begin = (int64_t)chunk_ids[c] * FOPT_CHUNK;
        const size_t len = (size_t)(numel - begin < FOPT_CHUNK ? numel - begin : FOPT_CHUNK);
        /* one float past a 16-byte boundary too: the scalar loads */
        for (int misalign = 0; misalign < 2; misalign++) {
            float *buf = malloc((len + 4) * sizeof(float));
            cr_assert_not_null(buf);
            float *g = buf + misalign;
            test_fill_magnitudes(&r, g, len, -3.0, 2.0, 50);
            fopt_tensor_entry far = entry_shifted(numel, begin, g, g, NULL);
            fopt_tensor_entry near = entry_shifted((int64_t)len, 0, g, g, NULL);
            const double want = stats_of(&near, 0), got = stats_of(&far, chunk_ids[c]);
            cr_expect(want > 0.0);
            cr_expect_eq(memcmp(&got, &want, sizeof got), 0, "chunk %u (%zu elements, misaligned %d): sum %.17g, "
                         "the same grads at element 0 give %.17g", chunk_ids[c], len, misalign, got, want);
            free(buf);
        }
    }
}
