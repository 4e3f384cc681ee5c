/* The GPU optimizer object's layout, shared by src/gpu/optimizer.c (creation, steps,
 * hyper-parameters, rebinding) and src/gpu/checkpoint.c (checkpoints, state copies). Not
 * installed. */
#ifndef FUSEDOPT_OPTIMIZER_H
#define FUSEDOPT_OPTIMIZER_H

#include "device.h"
#include "internal.h"
#include "table.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bound grads may share memory while the steps only read them; zero_grads writes them. */
typedef struct fopt_grad_alias {
    int found;
    size_t a, b; /* the two tensors */
} fopt_grad_alias;

struct fopt_optimizer {
    const fopt_desc *d;
    fopt_any_config cfg;
    int device;
    int capturable;
    int step_on_device;           /* the count lives on the device (see optimizer.c) */
    int64_t step;                 /* the count, when the host knows it */
    int step_refused;             /* the device refused a step at INT64_MAX (fopt_sync_step saw
                                     fopt_device_hparams.refused); until a count is set */
    size_t tensor_count;
    size_t *list_numel;           /* each tensor's numel (the whole tensor's, also for a shard) */
    uint64_t list_hash;           /* identifies the tensor list in checkpoints */
    uint64_t shard_begin;         /* the elements of the list's concatenation this optimizer */
    uint64_t shard_end;           /* holds: [0, total) unless created as a shard */
    uint32_t group_count;         /* largest group used + 1 */
    double lr[FOPT_MAX_GROUPS];   /* host values (capturable: also on the device) */
    double wd[FOPT_MAX_GROUPS];
    fopt_table_plan plan;
    fopt_kernel step_kernel[FOPT_CLASSES];
    fopt_tensor_entry *entries;   /* host copy of the device entries: entry k is tensor k's part */
    fopt_grad_alias grad_alias;   /* two bound grads that share memory: no zero_grads step */
    void *state_mem;              /* device: state buffers then masters */
    void *table_mem;              /* device: entries, step chunks, stat chunks */
    void *work_mem;               /* device: see the offsets below */
};

/* The work allocation. */
#define FOPT_ROUND256(n) (((n) + 255) & ~(size_t)255)
#define fopt_work_offset_stats ((size_t)0)
#define fopt_work_offset_done ((size_t)64)
#define fopt_work_offset_hparams ((size_t)128)
#define fopt_work_offset_scalars (fopt_work_offset_hparams + FOPT_ROUND256(sizeof(fopt_device_hparams)))
#define fopt_work_offset_partials (fopt_work_offset_scalars + FOPT_ROUND256(sizeof(fopt_scalars)))

fopt_step_stats *fopt_work_stats(const fopt_optimizer *opt);
fopt_device_hparams *fopt_work_hparams(const fopt_optimizer *opt);
/* The step table of one launch class, or of every step chunk (launch_class < 0). */
fopt_table fopt_step_table(const fopt_optimizer *opt, int launch_class);

/* Makes the optimizer's device current for the duration of a call. */
typedef struct fopt_device_scope {
    int previous;
    int switched;
} fopt_device_scope;
fopt_status fopt_device_enter(const fopt_optimizer *opt, fopt_device_scope *scope);
void fopt_device_leave(const fopt_device_scope *scope);
/* On the optimizer's device: waits for it, then copies `bytes` (nothing when 0) from src to dst,
 * host to device or device to host. */
fopt_status fopt_sync_copy(const fopt_optimizer *opt, void *dst, const void *src, size_t bytes);

/* Reads the step count back from the device when it lives there (synchronising), and whether
 * the device refused a step because the count was INT64_MAX (then sets opt->step_refused). */
fopt_status fopt_sync_step(fopt_optimizer *opt);

/* param and grad of every tensor with numel > 0 are memory the kernels can use on `device`. */
fopt_status fopt_check_device_tensors(const fopt_tensor *tensors, size_t count, int device);

uint64_t fopt_hash_bytes(uint64_t h, const void *data, size_t n);

/* A failed CUDA call as an fopt_status with call, file and line for fopt_last_error(). */
fopt_status fopt_cuda_fail(cudaError_t err, const char *call, const char *file, int line);

/* Evaluates a device-layer call; on failure records it and jumps to `fail` with `status` set. */
#define FOPT_CUDA_TRY(expr)                                                                        \
    do {                                                                                           \
        cudaError_t fopt_err_ = (expr);                                                            \
        if (fopt_err_ != cudaSuccess) {                                                            \
            status = fopt_cuda_fail(fopt_err_, #expr, __FILE__, __LINE__);                         \
            goto fail;                                                                             \
        }                                                                                          \
    } while (0)

#ifdef __cplusplus
}
#endif

#endif
