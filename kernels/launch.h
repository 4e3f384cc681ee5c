/* The C-callable entry points of the optimizer kernels (the kernels/ sources), used by src/optimizer.c
 * and by the tests. Not installed.
 *
 * Each optimizer has two: `_launch` enqueues the real kernel on a stream over a table in device
 * memory; `_run_on_host` runs the very same kernel body for every block and every thread on the
 * CPU over a table in host memory, so that the indexing, the vector/scalar paths, the tails and
 * the multi-tensor bookkeeping are tested on machines without a GPU. */
#ifndef FUSEDOPT_LAUNCH_H
#define FUSEDOPT_LAUNCH_H

#include <cuda_runtime_api.h>

#include "multi_tensor.h"
#include "scalars.h"

#ifdef __cplusplus
extern "C" {
#endif

/* State buffers each variant keeps, as bits of fopt_tensor_entry.state[]:
 *   Adam:    bit 0 exp_avg, bit 1 exp_avg_sq, bit 2 max_exp_avg_sq (AMSGrad)
 *   RMSprop: bit 0 square_avg, bit 1 momentum_buffer (momentum > 0), bit 2 grad_avg (centered) */
unsigned fopt_adam_state_mask(const fopt_adam_scalars *s);
unsigned fopt_rmsprop_state_mask(const fopt_rmsprop_scalars *s);

cudaError_t fopt_adam_launch(const fopt_table *table, const fopt_adam_scalars *s, cudaStream_t stream);
void fopt_adam_run_on_host(const fopt_table *table, const fopt_adam_scalars *s);

cudaError_t fopt_rmsprop_launch(const fopt_table *table, const fopt_rmsprop_scalars *s,
                                cudaStream_t stream);
void fopt_rmsprop_run_on_host(const fopt_table *table, const fopt_rmsprop_scalars *s);

#ifdef __cplusplus
}
#endif

#endif
