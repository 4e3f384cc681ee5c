/* Multi-tensor bookkeeping shared by the host code (src/) and the kernels.
 *
 * An optimizer binds its tensors once, so their addresses and sizes go into a table built once on
 * the host and copied to the device at creation:
 *
 *   entries[k]  one per tensor (or per slice of a tensor, for a shard): typed, named slots (param,
 *               grad, the optimizer's states by their public names, the fp32 master or its 16-bit
 *               remainder), each with its storage type; numel; group; whether every used slot is
 *               16-byte aligned (vector path) or not (scalar path);
 *   chunks[b]   one per thread block of a launch: which entry, and which slice of it the block
 *               updates (2^chunk_shift elements).
 *
 * A step is one launch per parameter storage type present (one in the usual case), whatever the
 * number of tensors or groups, and a block finds its work with two loads. Element offsets are
 * 64-bit: chunk index << chunk_shift can exceed 2^31 for large tensors. Not installed. */
#ifndef FUSEDOPT_MULTI_TENSOR_H
#define FUSEDOPT_MULTI_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "fusedopt.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Elements of one chunk of the statistics kernel, and the largest chunk of a step (log2). Steps
 * over few elements use smaller chunks so that the grid still fills the device. */
#define FOPT_CHUNK_SHIFT 14
#define FOPT_CHUNK (1 << FOPT_CHUNK_SHIFT)
#define FOPT_MIN_CHUNK_SHIFT 11
/* Threads per block of every optimizer kernel. */
#define FOPT_BLOCK_THREADS 256
/* State buffers any optimizer keeps per tensor: fopt_slot values 0..2 of the public header
 * (Adam: exp_avg, exp_avg_sq, max_exp_avg_sq; RMSprop: square_avg, momentum_buffer, grad_avg). */
#define FOPT_MAX_STATES 3

/* The slots of a table entry. States use the public fopt_slot numbering (FOPT_SLOT_EXP_AVG...). */
enum {
    FOPT_TS_STATE0 = 0, /* .. FOPT_TS_STATE0 + 2: state fopt_slot 0..2 */
    FOPT_TS_MASTER = 3, /* fp32 master, or uint16 remainders (FOPT_SLOT_MASTER) */
    FOPT_TS_PARAM = 4,
    FOPT_TS_GRAD = 5,
    FOPT_NUM_SLOTS = 6
};

/* Storage of a slot. */
typedef enum fopt_storage {
    FOPT_ST_NONE = 0,
    FOPT_ST_F32 = 1,
    FOPT_ST_F16 = 2,
    FOPT_ST_BF16 = 3,
    FOPT_ST_U16 = 4 /* master remainders */
} fopt_storage;

/* How the math's parameter is kept. */
typedef enum fopt_master_mode {
    FOPT_MASTER_NONE = 0,     /* the param itself (upcast), rounded back each step */
    FOPT_MASTER_F32 = 1,      /* an fp32 master copy; param is write-only */
    FOPT_MASTER_REMAINDER = 2 /* bf16 param + 16-bit remainder = the fp32 master */
} fopt_master_mode;

/* entry.flags */
#define FOPT_ENTRY_ALIGNED 1u      /* every used slot is 16-byte aligned: vector path */
#define FOPT_ENTRY_GRAD_ALIGNED 2u /* grad 16-byte aligned: vector loads in the statistics */

typedef struct fopt_tensor_entry {
    void *slot[FOPT_NUM_SLOTS]; /* NULL where unused */
    int64_t numel;
    int64_t elem_offset;        /* index in its tensor of the entry's first element (shards) */
    uint32_t tensor;            /* index of the tensor in the bound list */
    uint32_t group;
    uint8_t storage[FOPT_NUM_SLOTS]; /* fopt_storage of each slot */
    uint8_t flags;
    uint8_t pad_;
} fopt_tensor_entry;

typedef struct fopt_chunk {
    uint32_t entry; /* index into entries */
    uint32_t chunk; /* slice [chunk << shift, min((chunk + 1) << shift, numel)) */
} fopt_chunk;

/* What a launch reads: both arrays in device memory for a real launch, in host memory when the
 * kernel body runs on the CPU. */
typedef struct fopt_table {
    const fopt_tensor_entry *entries;
    const fopt_chunk *chunks; /* this launch's chunks */
    uint32_t entry_count;
    uint32_t chunk_count;     /* = grid size */
    uint32_t chunk_shift;     /* log2 of the elements per chunk */
    uint32_t pad_;
} fopt_table;

/* Number of chunks of 2^shift elements a tensor of `numel` elements needs (0 when empty). */
static inline uint64_t fopt_chunks_for(uint64_t numel, unsigned shift)
{
    return (numel + ((uint64_t)1 << shift) - 1) >> shift;
}

/* Bytes of one element of a storage type (0 for none). */
static inline unsigned fopt_storage_bytes(fopt_storage s)
{
    return s == FOPT_ST_F32 ? 4u : s == FOPT_ST_NONE ? 0u : 2u;
}

/* The storage of a public dtype (FOPT_ST_NONE for an unknown one). */
static inline fopt_storage fopt_storage_of(fopt_dtype d)
{
    return d == FOPT_FLOAT32 ? FOPT_ST_F32 : d == FOPT_FLOAT16 ? FOPT_ST_F16
                                          : d == FOPT_BFLOAT16 ? FOPT_ST_BF16 : FOPT_ST_NONE;
}

#ifdef __cplusplus
}
#endif

#endif
