/* Builds the multi-tensor table (kernels/multi_tensor.h) of a GPU optimizer on the host: entries
 * with their typed slots, the step chunks grouped by launch class (parameter storage), and the
 * statistics chunks. Used by the GPU optimizer at creation (then copied to the device) and by the
 * tests over host memory. Not installed. */
#ifndef FUSEDOPT_TABLE_H
#define FUSEDOPT_TABLE_H

#include "internal.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Launch classes: one step launch per parameter storage present. */
enum { FOPT_CLASS_F32 = 0, FOPT_CLASS_F16 = 1, FOPT_CLASS_BF16 = 2, FOPT_CLASSES = 3 };

/* Elements of a state or master slice are rounded up to this many, so that every slice of every
 * buffer starts 16-byte aligned. */
#define FOPT_SLICE_ALIGN 8

/* Sizes and layout of everything an optimizer over a tensor list, or over the range [begin, end)
 * of its concatenated elements (a shard), needs. There is one entry per tensor of the list either
 * way: the entry of a tensor is the part of it the range holds (elem_offset, numel; empty where the
 * range misses it), so entry k is always tensor k. */
typedef struct fopt_table_plan {
    uint64_t begin, end;                   /* the range; [0, total) for the whole list */
    size_t entries;
    unsigned chunk_shift;                  /* step chunk = 2^chunk_shift elements */
    size_t step_chunks;                    /* all classes */
    size_t class_begin[FOPT_CLASSES];      /* first step chunk of each class */
    size_t class_count[FOPT_CLASSES];
    size_t stat_chunks;                    /* FOPT_CHUNK elements each */
    size_t state_elems;                    /* elements of one state buffer (every slice) */
    size_t master_f32_elems, master_u16_elems;
    unsigned states;                       /* state slot bits */
    fopt_storage state_storage;
    size_t state_bytes;                    /* all state buffers, then the master buffer */
    size_t table_bytes;                    /* entries, step chunks, stat chunks */
} fopt_table_plan;

/* Plans an optimizer with descriptor d and config cfg over `tensors`; `sm_count` sizes the step
 * chunks (smaller chunks when the list is small, so the grid still fills the device).
 * FOPT_ERROR_NOT_SUPPORTED when the counts exceed what one launch can address. */
fopt_status fopt_table_plan_make(const fopt_desc *d, const fopt_any_config *cfg,
                                 const fopt_tensor *tensors, size_t count, int sm_count,
                                 fopt_table_plan *plan);
/* The same over the elements [begin, end) of the list's concatenation (a range that
 * fopt_shard_range_check accepted). */
fopt_status fopt_table_plan_shard(const fopt_desc *d, const fopt_any_config *cfg,
                                  const fopt_tensor *tensors, size_t count, uint64_t begin,
                                  uint64_t end, int sm_count, fopt_table_plan *plan);

/* Fills the host image of the table (plan->table_bytes at `table`; it holds no pointer into
 * itself, so it is copied to the device as it is) with slots pointing into the state allocation
 * at `state_dev`. */
void fopt_table_fill(const fopt_table_plan *plan, const fopt_desc *d, const fopt_any_config *cfg,
                     const fopt_tensor *tensors, void *state_dev, void *table);

/* Pointers into a table image laid out by fopt_table_fill. */
fopt_tensor_entry *fopt_table_entries(const fopt_table_plan *plan, void *table);
fopt_chunk *fopt_table_step_chunks(const fopt_table_plan *plan, void *table);
fopt_chunk *fopt_table_stat_chunks(const fopt_table_plan *plan, void *table);

/* The launch class of a parameter dtype. */
int fopt_class_of(fopt_dtype dtype);

/* Points an entry's param and grad slots at its part of tensor t (elem_offset, numel) and
 * recomputes its alignment flags: at creation and at fopt_rebind. */
void fopt_entry_bind(fopt_tensor_entry *e, const fopt_tensor *t);

/* Recomputes an entry's alignment flags from its slots. */
void fopt_entry_set_flags(fopt_tensor_entry *e);

#ifdef __cplusplus
}
#endif

#endif
