/* The GPU optimizer of a build without CUDA (-DFOPT_CUDA=OFF; CMakeLists.txt uses this directory
 * instead of src/gpu and kernels/): every public GPU function is there, with the header's
 * signature, and fails with FOPT_ERROR_NOT_SUPPORTED and a message naming it. Out-pointers are left
 * untouched (as on any failure); the functions without a status return what they return for a NULL
 * optimizer (NULL, -1, 0). Nothing here includes a CUDA header. */
#include "internal.h"

/* The failure of every function below: FOPT_ERROR_NOT_SUPPORTED, "<fn>: fusedopt was built...". */
static fopt_status no_cuda(const char *fn)
{
    return fopt_fail(FOPT_ERROR_NOT_SUPPORTED, "%s: fusedopt was built without CUDA (-DFOPT_CUDA=OFF)",
                     fn);
}

/* Each function fails with its own name; the arguments are not looked at. */
#define FOPT_NO_CUDA() no_cuda(__func__)
#if defined(__GNUC__)
#pragma GCC diagnostic ignored "-Wunused-parameter"
#endif

fopt_status fopt_adam_create(fopt_optimizer **out, const fopt_adam_config *cfg,
                             const fopt_tensor *tensors, size_t count)
{
    return FOPT_NO_CUDA();
}

fopt_status fopt_rmsprop_create(fopt_optimizer **out, const fopt_rmsprop_config *cfg,
                                const fopt_tensor *tensors, size_t count)
{
    return FOPT_NO_CUDA();
}

fopt_status fopt_adam_create_shard(fopt_optimizer **out, const fopt_adam_config *cfg,
                                   const fopt_tensor *tensors, size_t count, uint64_t begin,
                                   uint64_t end)
{
    return FOPT_NO_CUDA();
}

fopt_status fopt_rmsprop_create_shard(fopt_optimizer **out, const fopt_rmsprop_config *cfg,
                                      const fopt_tensor *tensors, size_t count, uint64_t begin,
                                      uint64_t end)
{
    return FOPT_NO_CUDA();
}

fopt_status fopt_step(fopt_optimizer *opt, cudaStream_t stream)
{
    return FOPT_NO_CUDA();
}

fopt_status fopt_step_ex(fopt_optimizer *opt, const fopt_step_options *opts, cudaStream_t stream)
{
    return FOPT_NO_CUDA();
}

fopt_status fopt_grad_sq_sum(fopt_optimizer *opt, const float *grad_scale, double *sq_sum,
                             cudaStream_t stream)
{
    return FOPT_NO_CUDA();
}

fopt_status fopt_set_group_lr(fopt_optimizer *opt, uint32_t group, double lr)
{
    return FOPT_NO_CUDA();
}

fopt_status fopt_set_group_weight_decay(fopt_optimizer *opt, uint32_t group, double weight_decay)
{
    return FOPT_NO_CUDA();
}

double *fopt_lr_device(fopt_optimizer *opt)
{
    FOPT_NO_CUDA();
    return NULL;
}

fopt_status fopt_rebind(fopt_optimizer *opt, const fopt_tensor *tensors, size_t count,
                        cudaStream_t stream)
{
    return FOPT_NO_CUDA();
}

fopt_status fopt_set_lr(fopt_optimizer *opt, double lr) { return FOPT_NO_CUDA(); }

int64_t fopt_step_count(const fopt_optimizer *opt)
{
    FOPT_NO_CUDA();
    return -1;
}

size_t fopt_state_size(const fopt_optimizer *opt)
{
    FOPT_NO_CUDA();
    return 0;
}

fopt_status fopt_state_save(const fopt_optimizer *opt, void *host_buf, size_t size)
{
    return FOPT_NO_CUDA();
}

fopt_status fopt_state_load(fopt_optimizer *opt, const void *host_buf, size_t size)
{
    return FOPT_NO_CUDA();
}

fopt_status fopt_state_copy(fopt_optimizer *opt, size_t tensor, fopt_slot slot, void *buf,
                            bool into_optimizer)
{
    return FOPT_NO_CUDA();
}

fopt_status fopt_set_step_count(fopt_optimizer *opt, int64_t step)
{
    return FOPT_NO_CUDA();
}

/* Nothing was ever created, so there is nothing to free: NULL is the only optimizer there is. */
void fopt_destroy(fopt_optimizer *opt) {}
