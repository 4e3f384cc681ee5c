/* Multi-tensor table construction: one entry per tensor, one chunk per thread block. */
#include <stdint.h>

#include "internal.h"
#include "table.h"

static size_t round4(size_t n) { return (n + 3) & ~(size_t)3; }

unsigned fopt_state_count(unsigned state_mask)
{
    unsigned c = 0;
    for (unsigned k = 0; k < FOPT_MAX_STATES; k++)
        c += (state_mask >> k) & 1u;
    return c;
}

fopt_status fopt_table_plan(const fopt_tensor *tensors, size_t count, size_t *floats_per_state,
                            size_t *chunk_count)
{
    if (count > UINT32_MAX)
        return fopt_fail(FOPT_ERROR_NOT_SUPPORTED, "%zu tensors; at most %u", count, UINT32_MAX);
    size_t floats = 0, chunks = 0;
    for (size_t k = 0; k < count; k++) {
        size_t n = tensors[k].numel;
        /* A state buffer is at most SIZE_MAX/16 floats so that 3 of them fit in a size_t of bytes. */
        if (n > SIZE_MAX / 16 - floats - 4)
            return fopt_fail(FOPT_ERROR_NOT_SUPPORTED, "tensors hold too many elements in total");
        floats += round4(n);
        uint64_t c = fopt_chunks_for(n);
        if (c > UINT32_MAX)
            return fopt_fail(FOPT_ERROR_NOT_SUPPORTED, "tensor %zu has too many elements", k);
        chunks += (size_t)c;
        if (chunks > INT32_MAX) /* the grid of one launch */
            return fopt_fail(FOPT_ERROR_NOT_SUPPORTED, "tensors hold too many elements for one launch");
    }
    *floats_per_state = floats;
    *chunk_count = chunks;
    return FOPT_SUCCESS;
}

static int aligned16(const void *p) { return ((uintptr_t)p & 15u) == 0; }

void fopt_table_fill(const fopt_tensor *tensors, size_t count, unsigned state_mask,
                     float *state_base, size_t floats_per_state, fopt_tensor_entry *entries,
                     fopt_chunk *chunks)
{
    float *buffer[FOPT_MAX_STATES] = {NULL, NULL, NULL};
    size_t used = 0;
    for (unsigned k = 0; k < FOPT_MAX_STATES; k++)
        if (state_mask & (1u << k))
            buffer[k] = state_base + (used++) * floats_per_state;

    size_t offset = 0, c = 0;
    for (size_t t = 0; t < count; t++) {
        fopt_tensor_entry *e = &entries[t];
        e->param = (float *)tensors[t].param;
        e->grad = (const float *)tensors[t].grad;
        e->numel = (int64_t)tensors[t].numel;
        e->aligned = aligned16(e->param) && aligned16(e->grad);
        for (unsigned k = 0; k < FOPT_MAX_STATES; k++) {
            e->state[k] = buffer[k] ? buffer[k] + offset : NULL;
            if (e->state[k] && !aligned16(e->state[k]))
                e->aligned = 0;
        }
        e->pad_ = 0;
        uint64_t n_chunks = fopt_chunks_for(tensors[t].numel);
        for (uint64_t i = 0; i < n_chunks; i++, c++) {
            chunks[c].tensor = (uint32_t)t;
            chunks[c].chunk = (uint32_t)i;
        }
        offset += round4(tensors[t].numel);
    }
}
