/* Builds the multi-tensor table (kernels/multi_tensor.h) of an optimizer on the host. Used by the
 * GPU optimizer at creation (then copied to the device) and by the tests over host memory. */
#ifndef FUSEDOPT_TABLE_H
#define FUSEDOPT_TABLE_H

#include "fusedopt.h"
#include "multi_tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Sizes of everything an optimizer over `tensors` needs:
 *   floats_per_state: floats of one state buffer holding every tensor's slice, each slice
 *                     rounded up to 4 floats so that every slice starts 16-byte aligned;
 *   chunk_count:      blocks of one launch.
 * FOPT_ERROR_NOT_SUPPORTED when the counts exceed what one launch can address. */
fopt_status fopt_table_plan(const fopt_tensor *tensors, size_t count, size_t *floats_per_state,
                            size_t *chunk_count);

/* Fills entries[count] and chunks[chunk_count] (sizes from fopt_table_plan). The state buffers
 * selected by `state_mask` (bit k for entry.state[k]) lie one after another from `state_base`,
 * floats_per_state floats each, in the order of their bits; the others are NULL. */
void fopt_table_fill(const fopt_tensor *tensors, size_t count, unsigned state_mask,
                     float *state_base, size_t floats_per_state, fopt_tensor_entry *entries,
                     fopt_chunk *chunks);

/* Number of state buffers a mask selects. */
unsigned fopt_state_count(unsigned state_mask);

#ifdef __cplusplus
}
#endif

#endif
