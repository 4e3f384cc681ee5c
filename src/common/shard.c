/* Shards of a tensor list (ZeRO-1): the split of the list's concatenated elements into one range
 * per rank, the rule a range must follow, and the pieces of a range as host tensors for the CPU
 * _multi entry points. The GPU optimizer over a range is fopt_gpu_create (src/gpu/optimizer.c),
 * its table src/gpu/table.c. */
#include <inttypes.h>

#include "internal.h"

fopt_status fopt_shard_range_check(uint64_t total, uint64_t begin, uint64_t end)
{
    if (begin > end || end > total)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE,
                         "shard range [%" PRIu64 ", %" PRIu64 ") is not inside the list's %" PRIu64
                         " elements", begin, end, total);
    if ((begin % FOPT_SHARD_ALIGN != 0 && begin != total) || (end % FOPT_SHARD_ALIGN != 0 && end != total))
        return fopt_fail(FOPT_ERROR_INVALID_VALUE,
                         "shard range [%" PRIu64 ", %" PRIu64 "): each bound must be a multiple of %d "
                         "elements or the list's end (%" PRIu64 ")", begin, end, FOPT_SHARD_ALIGN, total);
    return FOPT_SUCCESS;
}

void fopt_shard_part(uint64_t start, uint64_t n, uint64_t begin, uint64_t end, uint64_t *lo, uint64_t *hi)
{
    uint64_t a = begin > start ? begin - start : 0;
    uint64_t b = end > start ? end - start : 0;
    a = a < n ? a : n;
    b = b < n ? b : n;
    if (a >= b)
        a = b = 0;
    *lo = a;
    *hi = b;
}

fopt_status fopt_shard_bounds(uint64_t total, int world, uint64_t *bounds)
{
    if (!bounds)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "bounds is NULL");
    if (world < 1 || world > FOPT_SHARD_MAX_WORLD)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "world must be in [1, %d], got %d",
                         FOPT_SHARD_MAX_WORLD, world);
    if (total > ((uint64_t)1 << 62))
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "%" PRIu64 " elements; at most 2^62", total);
    /* in units of FOPT_SHARD_ALIGN elements: each rank ceil(units / world) of them */
    const uint64_t units = (total + FOPT_SHARD_ALIGN - 1) / FOPT_SHARD_ALIGN;
    const uint64_t per = (units + (uint64_t)world - 1) / (uint64_t)world;
    for (uint64_t r = 0; r <= (uint64_t)world; r++) { /* world + 1 entries; no int overflow */
        uint64_t u = r * per;
        bounds[r] = u >= units ? total : u * FOPT_SHARD_ALIGN;
    }
    return FOPT_SUCCESS;
}

fopt_status fopt_shard_pieces(const fopt_host_tensor *tensors, size_t count, uint64_t begin,
                              uint64_t end, fopt_host_tensor *pieces, size_t *piece_count)
{
    if ((count > 0 && !tensors) || !pieces || !piece_count)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "tensors, pieces or piece_count is NULL");
    uint64_t total = 0;
    for (size_t k = 0; k < count; k++) {
        const fopt_host_tensor *t = &tensors[k];
        if (t->dtype != FOPT_FLOAT32 && t->dtype != FOPT_FLOAT16 && t->dtype != FOPT_BFLOAT16)
            return fopt_fail(FOPT_ERROR_INVALID_VALUE, "tensor %zu: unknown dtype %d", k, (int)t->dtype);
        if (t->numel > UINT64_MAX - total)
            return fopt_fail(FOPT_ERROR_INVALID_VALUE, "the tensors hold more than 2^64 elements");
        uint64_t lo, hi;
        fopt_shard_part(total, t->numel, begin, end, &lo, &hi);
        if (hi > lo && (!t->param || !t->grad))
            return fopt_fail(FOPT_ERROR_INVALID_VALUE, "tensor %zu: %s is NULL with numel %zu", k,
                             t->param ? "grad" : "param", t->numel);
        if (hi > lo) { /* the pieces' pointers are computed from aligned, in-bounds ones */
            const size_t eb = fopt_dtype_bytes(t->dtype);
            fopt_range r;
            fopt_status st = fopt_buffer_range(t->param, t->numel, eb, k, "param", true, &r);
            if (st == FOPT_SUCCESS)
                st = fopt_buffer_range(t->grad, t->numel, eb, k, "grad", false, &r);
            if (st != FOPT_SUCCESS)
                return st;
        }
        total += t->numel;
    }
    fopt_status st = fopt_shard_range_check(total, begin, end);
    if (st != FOPT_SUCCESS)
        return st;
    size_t n = 0;
    uint64_t start = 0;
    for (size_t k = 0; k < count; k++) {
        const fopt_host_tensor *t = &tensors[k];
        uint64_t lo, hi;
        fopt_shard_part(start, t->numel, begin, end, &lo, &hi);
        start += t->numel;
        if (hi == lo)
            continue;
        fopt_host_tensor *p = &pieces[n++];
        const size_t eb = fopt_dtype_bytes(t->dtype);
        *p = *t;
        p->param = (char *)t->param + lo * eb;
        p->grad = (const char *)t->grad + lo * eb;
        p->numel = (size_t)(hi - lo);
        p->master = NULL;
        for (int j = 0; j < 3; j++)
            p->state[j] = NULL;
        p->piece = true;
        p->tensor = (size_t)fopt_host_tensor_index(t, k);
        p->elem_offset = fopt_host_elem_offset(t) + lo;
    }
    *piece_count = n;
    return FOPT_SUCCESS;
}
