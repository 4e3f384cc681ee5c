/* Multi-tensor bookkeeping shared by the host code (src/) and the kernels (the kernels/ sources).
 *
 * An optimizer binds its tensors once, so their addresses and sizes go into a table built once on
 * the host and copied to the device at creation:
 *
 *   entries[k]  one per tensor: param, grad, up to three state pointers, numel, whether every
 *               pointer is 16-byte aligned (vector path) or not (scalar path);
 *   chunks[b]   one per thread block of the launch: which tensor, and which FOPT_CHUNK-element
 *               slice of it the block updates.
 *
 * A step is then one launch of `chunk_count` blocks whatever the number of tensors, and a block
 * finds its work with two loads. Element offsets are 64-bit: chunk index * FOPT_CHUNK can exceed
 * 2^31 for large tensors. Not installed. */
#ifndef FUSEDOPT_MULTI_TENSOR_H
#define FUSEDOPT_MULTI_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Elements per block. A multiple of 4 (float4 slices start aligned when the tensor does) and
 * large enough that one tensor of 2^28 elements is 4096 blocks. */
#define FOPT_CHUNK 16384
/* Threads per block of every optimizer kernel. */
#define FOPT_BLOCK_THREADS 256
/* Most state buffers any optimizer keeps per tensor (Adam: exp_avg, exp_avg_sq, max_exp_avg_sq;
 * RMSprop: square_avg, momentum_buffer, grad_avg). */
#define FOPT_MAX_STATES 3

typedef struct fopt_tensor_entry {
    float *param;
    const float *grad;
    float *state[FOPT_MAX_STATES]; /* NULL where the variant keeps no such buffer */
    int64_t numel;
    int32_t aligned; /* param, grad and every used state pointer are 16-byte aligned */
    int32_t pad_;
} fopt_tensor_entry;

typedef struct fopt_chunk {
    uint32_t tensor; /* index into entries */
    uint32_t chunk;  /* slice [chunk*FOPT_CHUNK, min((chunk+1)*FOPT_CHUNK, numel)) */
} fopt_chunk;

/* What a launch reads: both arrays live in one allocation (device memory for a real launch,
 * host memory when the kernel body runs on the CPU in tests). */
typedef struct fopt_table {
    const fopt_tensor_entry *entries;
    const fopt_chunk *chunks;
    uint32_t tensor_count;
    uint32_t chunk_count; /* = grid size */
} fopt_table;

/* Number of chunks a tensor of `numel` elements needs (0 for an empty tensor). */
static inline uint64_t fopt_chunks_for(uint64_t numel)
{
    return (numel + FOPT_CHUNK - 1) / FOPT_CHUNK;
}

#ifdef __cplusplus
}
#endif

#endif
