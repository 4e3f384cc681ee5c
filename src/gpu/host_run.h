/* The GPU kernels run on the host over host arrays, with the signature of the CPU multi-tensor
 * entry points (src/gpu/host_run.c). For the tests: one replayer drives the reference, the fast
 * CPU path and the kernels alike. Not installed. */
#ifndef FUSEDOPT_HOST_RUN_H
#define FUSEDOPT_HOST_RUN_H

#include "internal.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How the host runs the kernels: chunk_shift 0 = FOPT_CHUNK_SHIFT, else 2^chunk_shift-element
 * step chunks; device_scalars: derive the scalars with the device prologue (as capturable steps
 * and steps that may be skipped do) instead of on the host. */
typedef struct fopt_host_run_mode {
    unsigned chunk_shift;
    int device_scalars;
} fopt_host_run_mode;
void fopt_host_run_set_mode(fopt_host_run_mode mode);

fopt_status fopt_adam_step_kernels_host(const fopt_adam_config *cfg, int64_t step,
                                        const fopt_host_tensor *tensors, size_t count,
                                        const fopt_step_options *opts);
fopt_status fopt_rmsprop_step_kernels_host(const fopt_rmsprop_config *cfg, int64_t step,
                                           const fopt_host_tensor *tensors, size_t count,
                                           const fopt_step_options *opts);

#ifdef __cplusplus
}
#endif

#endif
