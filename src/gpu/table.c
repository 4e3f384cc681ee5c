/* Multi-tensor table construction: one entry per tensor with typed slots (for a shard, the part
 * of the tensor its range holds), step chunks grouped by launch class, statistics chunks in tensor
 * order. */
#include <stdint.h>
#include <string.h>

#include "table.h"

static size_t round_slice(size_t n) { return (n + FOPT_SLICE_ALIGN - 1) & ~(size_t)(FOPT_SLICE_ALIGN - 1); }

int fopt_class_of(fopt_dtype dtype)
{
    return dtype == FOPT_FLOAT16 ? FOPT_CLASS_F16 : dtype == FOPT_BFLOAT16 ? FOPT_CLASS_BF16 : FOPT_CLASS_F32;
}

/* The elements of tensor k that the plan's range holds: [*lo, lo + return value). `start` is the
 * tensor's first element in the concatenation (the caller walks the list in order). */
static size_t part_of(const fopt_table_plan *plan, const fopt_tensor *t, uint64_t start, uint64_t *lo)
{
    uint64_t hi;
    fopt_shard_part(start, t->numel, plan->begin, plan->end, lo, &hi);
    return (size_t)(hi - *lo);
}

fopt_status fopt_table_plan_make(const fopt_desc *d, const fopt_any_config *cfg,
                                 const fopt_tensor *tensors, size_t count, int sm_count,
                                 fopt_table_plan *plan)
{
    uint64_t total = 0;
    for (size_t k = 0; k < count; k++) {
        if (tensors[k].numel > UINT64_MAX - total)
            return fopt_fail(FOPT_ERROR_NOT_SUPPORTED, "tensors hold too many elements in total");
        total += tensors[k].numel;
    }
    return fopt_table_plan_shard(d, cfg, tensors, count, 0, total, sm_count, plan);
}

fopt_status fopt_table_plan_shard(const fopt_desc *d, const fopt_any_config *cfg,
                                  const fopt_tensor *tensors, size_t count, uint64_t begin,
                                  uint64_t end, int sm_count, fopt_table_plan *plan)
{
    memset(plan, 0, sizeof *plan);
    plan->begin = begin;
    plan->end = end;
    if (count > UINT32_MAX)
        return fopt_fail(FOPT_ERROR_NOT_SUPPORTED, "%zu tensors; at most %u", count, UINT32_MAX);
    const fopt_precision *pr = fopt_cfg_precision(d, cfg);
    size_t elems = 0, mf32 = 0, mu16 = 0, stat = 0;
    uint64_t start = 0, lo;
    for (size_t k = 0; k < count; start += tensors[k].numel, k++) {
        size_t n = part_of(plan, &tensors[k], start, &lo);
        /* every buffer of the optimizer stays far below SIZE_MAX bytes */
        if (n > (SIZE_MAX >> 5) - elems)
            return fopt_fail(FOPT_ERROR_NOT_SUPPORTED, "tensors hold too many elements in total");
        elems += round_slice(n);
        fopt_master_mode mm = fopt_master_mode_of(pr, tensors[k].dtype);
        if (mm == FOPT_MASTER_F32)
            mf32 += round_slice(n);
        else if (mm == FOPT_MASTER_REMAINDER)
            mu16 += round_slice(n);
        stat += (size_t)fopt_chunks_for(n, FOPT_CHUNK_SHIFT);
    }
    /* Step chunks: the largest size whose grid still gives every multiprocessor a few blocks. */
    unsigned shift = FOPT_CHUNK_SHIFT;
    size_t chunks[FOPT_CLASSES];
    for (;;) {
        size_t all = 0;
        memset(chunks, 0, sizeof chunks);
        start = 0;
        for (size_t k = 0; k < count; start += tensors[k].numel, k++) {
            size_t c = (size_t)fopt_chunks_for(part_of(plan, &tensors[k], start, &lo), shift);
            chunks[fopt_class_of(tensors[k].dtype)] += c;
            all += c;
        }
        if (shift == FOPT_MIN_CHUNK_SHIFT || all >= (size_t)4 * (size_t)(sm_count > 0 ? sm_count : 1))
            break;
        shift--;
    }
    start = 0;
    for (size_t k = 0; k < count; start += tensors[k].numel, k++)
        if (fopt_chunks_for(part_of(plan, &tensors[k], start, &lo), shift) > UINT32_MAX)
            return fopt_fail(FOPT_ERROR_NOT_SUPPORTED, "tensor %zu has too many elements", k);
    size_t first = 0;
    for (int c = 0; c < FOPT_CLASSES; c++) {
        if (chunks[c] > INT32_MAX) /* the grid of one launch */
            return fopt_fail(FOPT_ERROR_NOT_SUPPORTED, "tensors hold too many elements for one launch");
        plan->class_begin[c] = first;
        plan->class_count[c] = chunks[c];
        first += chunks[c];
    }
    if (stat > INT32_MAX)
        return fopt_fail(FOPT_ERROR_NOT_SUPPORTED, "tensors hold too many elements for one launch");
    plan->entries = count;
    plan->chunk_shift = shift;
    plan->step_chunks = first;
    plan->stat_chunks = stat;
    plan->state_elems = elems;
    plan->master_f32_elems = mf32;
    plan->master_u16_elems = mu16;
    plan->states = d->states(cfg);
    plan->state_storage = pr->state_dtype == FOPT_BFLOAT16 ? FOPT_ST_BF16 : FOPT_ST_F32;
    unsigned nstates = 0;
    for (unsigned s = 0; s < FOPT_MAX_STATES; s++)
        nstates += plan->states >> s & 1u;
    plan->state_bytes = nstates * elems * fopt_storage_bytes(plan->state_storage) + mf32 * 4 + mu16 * 2;
    plan->table_bytes = count * sizeof(fopt_tensor_entry) + (first + stat) * sizeof(fopt_chunk);
    return FOPT_SUCCESS;
}

fopt_tensor_entry *fopt_table_entries(const fopt_table_plan *plan, void *table)
{
    (void)plan;
    return table;
}

fopt_chunk *fopt_table_step_chunks(const fopt_table_plan *plan, void *table)
{
    return (fopt_chunk *)((char *)table + plan->entries * sizeof(fopt_tensor_entry));
}

fopt_chunk *fopt_table_stat_chunks(const fopt_table_plan *plan, void *table)
{
    return fopt_table_step_chunks(plan, table) + plan->step_chunks;
}

static int aligned16(const void *p) { return ((uintptr_t)p & 15u) == 0; }

void fopt_entry_bind(fopt_tensor_entry *e, const fopt_tensor *t)
{
    const size_t at = e->numel > 0 ? (size_t)e->elem_offset * (t->dtype == FOPT_FLOAT32 ? 4 : 2) : 0;
    e->slot[FOPT_TS_PARAM] = at ? (char *)t->param + at : t->param;
    e->slot[FOPT_TS_GRAD] = at ? (char *)t->grad + at : (void *)t->grad;
    fopt_entry_set_flags(e);
}

void fopt_entry_set_flags(fopt_tensor_entry *e)
{
    int all = 1;
    for (int s = 0; s < FOPT_NUM_SLOTS; s++)
        if (e->slot[s] && !aligned16(e->slot[s]))
            all = 0;
    e->flags = (uint8_t)((all ? FOPT_ENTRY_ALIGNED : 0u) | (aligned16(e->slot[FOPT_TS_GRAD]) ? FOPT_ENTRY_GRAD_ALIGNED : 0u));
}

void fopt_table_fill(const fopt_table_plan *plan, const fopt_desc *d, const fopt_any_config *cfg,
                     const fopt_tensor *tensors, void *state_dev, void *table)
{
    const fopt_precision *pr = fopt_cfg_precision(d, cfg);
    const size_t sbytes = fopt_storage_bytes(plan->state_storage);
    char *buffer[FOPT_MAX_STATES] = {NULL, NULL, NULL};
    char *next = state_dev;
    for (unsigned s = 0; s < FOPT_MAX_STATES; s++)
        if (plan->states >> s & 1u) {
            buffer[s] = next;
            next += plan->state_elems * sbytes;
        }
    char *master_f32 = next;
    char *master_u16 = master_f32 + plan->master_f32_elems * 4;

    fopt_tensor_entry *entries = fopt_table_entries(plan, table);
    fopt_chunk *step = fopt_table_step_chunks(plan, table);
    fopt_chunk *stat = fopt_table_stat_chunks(plan, table);
    size_t fill[FOPT_CLASSES];
    memcpy(fill, plan->class_begin, sizeof fill);
    size_t offset = 0, off_f32 = 0, off_u16 = 0, sc = 0;
    uint64_t start = 0;
    for (size_t k = 0; k < plan->entries; start += tensors[k].numel, k++) {
        const fopt_tensor *t = &tensors[k];
        fopt_tensor_entry *e = &entries[k];
        memset(e, 0, sizeof *e);
        uint64_t lo;
        const size_t n = part_of(plan, t, start, &lo);
        const fopt_storage ps = fopt_storage_of(t->dtype);
        e->storage[FOPT_TS_PARAM] = e->storage[FOPT_TS_GRAD] = (uint8_t)ps;
        for (unsigned s = 0; s < FOPT_MAX_STATES; s++)
            if (buffer[s]) {
                e->slot[FOPT_TS_STATE0 + s] = buffer[s] + offset * sbytes;
                e->storage[FOPT_TS_STATE0 + s] = (uint8_t)plan->state_storage;
            }
        fopt_master_mode mm = fopt_master_mode_of(pr, t->dtype);
        if (mm == FOPT_MASTER_F32) {
            e->slot[FOPT_TS_MASTER] = master_f32 + off_f32 * 4;
            e->storage[FOPT_TS_MASTER] = FOPT_ST_F32;
            off_f32 += round_slice(n);
        } else if (mm == FOPT_MASTER_REMAINDER) {
            e->slot[FOPT_TS_MASTER] = master_u16 + off_u16 * 2;
            e->storage[FOPT_TS_MASTER] = FOPT_ST_U16;
            off_u16 += round_slice(n);
        }
        e->numel = (int64_t)n;
        e->elem_offset = (int64_t)lo;
        e->tensor = (uint32_t)k;
        e->group = t->group;
        fopt_entry_bind(e, t);

        size_t *f = &fill[fopt_class_of(t->dtype)];
        uint64_t n_step = fopt_chunks_for(n, plan->chunk_shift);
        for (uint64_t i = 0; i < n_step; i++, (*f)++)
            step[*f] = (fopt_chunk){(uint32_t)k, (uint32_t)i};
        /* statistics chunks count from the entry's first element, as the CPU's do from a piece's */
        uint64_t n_stat = fopt_chunks_for(n, FOPT_CHUNK_SHIFT);
        for (uint64_t i = 0; i < n_stat; i++, sc++)
            stat[sc] = (fopt_chunk){(uint32_t)k, (uint32_t)i};
        offset += round_slice(n);
    }
}
