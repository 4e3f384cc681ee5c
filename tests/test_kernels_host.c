/* The CUDA kernel bodies, run on the CPU for every block and thread of a launch (no GPU needed),
 * against the CPU reference: every variant, odd sizes, chunk boundaries, unaligned pointers and
 * lists of more than a thousand tensors. Also the multi-tensor table itself. */
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "internal.h"
#include "launch.h"
#include "problem.h"
#include "scalars.h"
#include "table.h"

/* A launch over host memory: the table and the state buffers of one optimizer. */
typedef struct host_launch {
    size_t floats_per_state, chunk_count;
    float *state;
    fopt_tensor_entry *entries;
    fopt_chunk *chunks;
    fopt_table table;
} host_launch;

static void host_launch_make(host_launch *h, const test_problem *p)
{
    fopt_tensor *t = test_problem_tensors(p);
    cr_assert_eq(fopt_table_plan(t, p->count, &h->floats_per_state, &h->chunk_count), FOPT_SUCCESS);
    size_t floats = fopt_state_count(p->mask) * h->floats_per_state;
    h->state = aligned_alloc(64, ((floats * sizeof(float) + 63) / 64) * 64 + 64);
    cr_assert_not_null(h->state);
    memset(h->state, 0, floats * sizeof(float));
    h->entries = calloc(p->count, sizeof *h->entries);
    h->chunks = calloc(h->chunk_count + 1, sizeof *h->chunks);
    cr_assert(h->entries && h->chunks);
    fopt_table_fill(t, p->count, p->mask, h->state, h->floats_per_state, h->entries, h->chunks);
    h->table.entries = h->entries;
    h->table.chunks = h->chunks;
    h->table.tensor_count = (uint32_t)p->count;
    h->table.chunk_count = (uint32_t)h->chunk_count;
    free(t);
}

static void host_launch_free(host_launch *h)
{
    free(h->state);
    free(h->entries);
    free(h->chunks);
}

static void host_step(const test_problem *p, const host_launch *h, int64_t step)
{
    if (p->v->adam) {
        fopt_adam_scalars s = fopt_adam_scalars_make(&p->v->a, step);
        fopt_adam_run_on_host(&h->table, &s);
    } else {
        fopt_rmsprop_scalars s = fopt_rmsprop_scalars_make(&p->v->r);
        fopt_rmsprop_run_on_host(&h->table, &s);
    }
}

/* Runs `steps` steps of variant v over the layout through the host-run kernel and the reference
 * and compares every tensor; checks the padding between state slices stayed zero. */
static void run_case(const test_variant *v, const size_t *numel, const unsigned *param_off,
                     const unsigned *grad_off, size_t count, int steps, uint64_t seed)
{
    test_problem *p = test_problem_make(v, numel, param_off, grad_off, count, seed);
    host_launch h;
    host_launch_make(&h, p);
    for (int64_t t = 1; t <= steps; t++) {
        test_problem_new_grads(p);
        host_step(p, &h, t);
        test_problem_ref_step(p, t);
    }
    uint32_t worst_ulp = 0;
    for (size_t k = 0; k < count; k++) {
        const fopt_tensor_entry *e = &h.entries[k];
        uint32_t ulp = test_problem_check(p, k, p->param[k], e->state, "host-run kernel");
        if (ulp > worst_ulp)
            worst_ulp = ulp;
        for (int j = 0; j < FOPT_MAX_STATES; j++)
            for (size_t i = p->numel[k]; e->state[j] && i % 4 != 0; i++)
                cr_assert_eq(e->state[j][i], 0.0f, "%s: padding after tensor %zu written", v->name, k);
    }
    /* Same operations in the same order without FMA contraction: bit-identical by design. */
    cr_expect_eq(worst_ulp, 0u, "%s: host-run kernel differs from the reference by %u ulp", v->name,
                 worst_ulp);
    host_launch_free(&h);
    test_problem_free(p);
}

Test(kernels_host, every_variant_matches_reference_on_odd_sizes)
{
    test_layout_odd_sizes(run_case);
}

Test(kernels_host, every_variant_matches_reference_with_pointers_offset_by_one_element)
{
    test_layout_offset_pointers(run_case);
}

Test(kernels_host, every_variant_matches_reference_across_chunk_boundaries)
{
    test_layout_chunk_boundaries(run_case, false);
}

Test(kernels_host, every_variant_matches_reference_over_a_thousand_tensors_of_random_sizes)
{
    test_layout_random_list(run_case, 1200, 3 * FOPT_CHUNK, 3, 42, true);
}

Test(kernels_host, table_has_one_chunk_per_slice_and_skips_empty_tensors)
{
    float a[8] __attribute__((aligned(16))), b[8] __attribute__((aligned(16)));
    fopt_tensor t[4] = {
        {a, b, 5, FOPT_FLOAT32},
        {NULL, NULL, 0, FOPT_FLOAT32},
        {a + 1, b, 3, FOPT_FLOAT32},
        {a, b, 2 * FOPT_CHUNK + 1, FOPT_FLOAT32}, /* addresses only, never dereferenced */
    };
    size_t floats = 0, chunks = 0;
    cr_assert_eq(fopt_table_plan(t, 4, &floats, &chunks), FOPT_SUCCESS);
    cr_expect_eq(chunks, 1 + 0 + 1 + 3);
    cr_expect_eq(floats, 8 + 0 + 4 + (2 * FOPT_CHUNK + 4));

    fopt_tensor_entry e[4];
    fopt_chunk c[5];
    float *base = (float *)(uintptr_t)0x1000; /* never dereferenced */
    fopt_table_fill(t, 4, 0x5u, base, floats, e, c);
    cr_expect_eq(c[0].tensor, 0u);
    cr_expect_eq(c[1].tensor, 2u);
    for (uint32_t i = 0; i < 3; i++) {
        cr_expect_eq(c[2 + i].tensor, 3u);
        cr_expect_eq(c[2 + i].chunk, i);
    }
    cr_expect(e[0].aligned && !e[2].aligned && e[3].aligned, "alignment flags");
    /* mask 0b101: buffer 0 first, buffer 2 right after it; no buffer 1 */
    cr_expect_eq(e[2].state[0], base + 8);
    cr_expect_null(e[2].state[1]);
    cr_expect_eq(e[2].state[2], base + floats + 8);
    cr_expect_eq(e[3].state[2], base + floats + 12);
    cr_expect_eq(fopt_state_count(0x5u), 2u);
}

/* ---- PyTorch golden vectors through the host-run kernels ------------------------------------ */

#include "golden.h"

static int is_aligned16(const void *p) { return ((uintptr_t)p & 15u) == 0; }

/* One tensor whose state buffers are the caller's arrays (not a contiguous state allocation). */
static fopt_table single_tensor_table(fopt_tensor_entry *e, fopt_chunk **chunks, size_t n, float *p,
                                      const float *g, float *s0, float *s1, float *s2)
{
    *e = (fopt_tensor_entry){.param = p, .grad = g, .state = {s0, s1, s2}, .numel = (int64_t)n};
    e->aligned = is_aligned16(p) && is_aligned16(g) && is_aligned16(s0) && is_aligned16(s1) &&
                 is_aligned16(s2);
    size_t count = fopt_chunks_for(n);
    *chunks = calloc(count + 1, sizeof **chunks);
    cr_assert_not_null(*chunks);
    for (size_t i = 0; i < count; i++)
        (*chunks)[i] = (fopt_chunk){.tensor = 0, .chunk = (uint32_t)i};
    return (fopt_table){.entries = e, .chunks = *chunks, .tensor_count = 1, .chunk_count = (uint32_t)count};
}

static fopt_status host_kernel_adam(const fopt_adam_config *cfg, int64_t step, size_t n, float *p,
                                    const float *g, float *m, float *v, float *vmax)
{
    fopt_tensor_entry e;
    fopt_chunk *chunks;
    fopt_table t = single_tensor_table(&e, &chunks, n, p, g, m, v, cfg->amsgrad ? vmax : NULL);
    fopt_adam_scalars s = fopt_adam_scalars_make(cfg, step);
    fopt_adam_run_on_host(&t, &s);
    free(chunks);
    return FOPT_SUCCESS;
}

static fopt_status host_kernel_rmsprop(const fopt_rmsprop_config *cfg, size_t n, float *p,
                                       const float *g, float *sq, float *buf, float *ga)
{
    fopt_tensor_entry e;
    fopt_chunk *chunks;
    fopt_table t = single_tensor_table(&e, &chunks, n, p, g, sq, cfg->momentum > 0 ? buf : NULL,
                                       cfg->centered ? ga : NULL);
    fopt_rmsprop_scalars s = fopt_rmsprop_scalars_make(cfg);
    fopt_rmsprop_run_on_host(&t, &s);
    free(chunks);
    return FOPT_SUCCESS;
}

Test(kernels_host, adam_kernel_matches_pytorch_golden_vectors)
{
    golden_check_file("golden_adam.bin", host_kernel_adam, NULL, 1e-5, "host-run adam kernel");
}

Test(kernels_host, rmsprop_kernel_matches_pytorch_golden_vectors)
{
    golden_check_file("golden_rmsprop.bin", NULL, host_kernel_rmsprop, 1e-5, "host-run rmsprop kernel");
}

/* ---- 64-bit element offsets ------------------------------------------------------------------ */

/* A tensor of more than 2^32 elements cannot be allocated here, but a block only touches its own
 * chunk: point the entry's arrays so that just the chunks under test land in real memory, and
 * launch only those chunks. Offsets past 2^31 and 2^32 elements must reach the right elements. */
Test(kernels_host, chunks_beyond_two_to_the_32_elements_index_correctly)
{
    const int64_t numel = ((int64_t)1 << 32) + 4101; /* last chunk: 4101 elements */
    const uint32_t chunk_ids[] = {(uint32_t)(((int64_t)1 << 31) / FOPT_CHUNK) + 3, /* past 2^31 */
                                  (uint32_t)(numel / FOPT_CHUNK)};                  /* the tail */
    for (size_t v = 0; v < test_variant_count; v++) {
        for (size_t c = 0; c < 2; c++) {
            const int64_t begin = (int64_t)chunk_ids[c] * FOPT_CHUNK;
            const size_t len = (size_t)(numel - begin < FOPT_CHUNK ? numel - begin : FOPT_CHUNK);
            const size_t sizes[] = {len};
            test_problem *p = test_problem_make(&test_variants[v], sizes, NULL, NULL, 1, 900 + v);
            float *st[FOPT_MAX_STATES];
            for (int j = 0; j < FOPT_MAX_STATES; j++)
                st[j] = (p->mask & (1u << j)) ? calloc(len, sizeof(float)) : NULL;
            /* Addresses that are only ever offset by `begin` or more before use. */
            uintptr_t shift = (uintptr_t)begin * sizeof(float);
            fopt_tensor_entry e = {
                .param = (float *)((uintptr_t)p->param[0] - shift),
                .grad = (const float *)((uintptr_t)p->grad[0] - shift),
                .numel = numel,
                .aligned = is_aligned16(p->param[0]) && is_aligned16(p->grad[0]) &&
                           is_aligned16(st[0]) && is_aligned16(st[1]) && is_aligned16(st[2]),
            };
            for (int j = 0; j < FOPT_MAX_STATES; j++)
                e.state[j] = st[j] ? (float *)((uintptr_t)st[j] - shift) : NULL;
            fopt_chunk ch = {.tensor = 0, .chunk = chunk_ids[c]};
            fopt_table t = {.entries = &e, .chunks = &ch, .tensor_count = 1, .chunk_count = 1};
            for (int64_t step = 1; step <= 3; step++) {
                test_problem_new_grads(p);
                host_step(p, &(host_launch){.table = t}, step);
                test_problem_ref_step(p, step);
            }
            test_problem_check(p, 0, p->param[0], st, "chunk past 2^31");
            for (int j = 0; j < FOPT_MAX_STATES; j++)
                free(st[j]);
            test_problem_free(p);
        }
    }
}
