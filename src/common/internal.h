/* Internal declarations shared by every layer of src/: error reporting, validation, and the one
 * descriptor per optimizer that the generic code (CPU multi-tensor drivers, GPU optimizer object)
 * works through. Not installed.
 *
 * Layers: src/common (status, configs, validation, descriptors), src/ref (the CPU reference),
 * src/cpu (the fast CPU path), src/gpu (the GPU optimizer object over the device layer). The
 * kernels (kernels/) depend on none of them. src/common, src/ref and src/cpu include nothing from
 * CUDA (a build without CUDA has them and no src/gpu). */
#ifndef FUSEDOPT_INTERNAL_H
#define FUSEDOPT_INTERNAL_H

#include "fusedopt.h"
#include "multi_tensor.h"
#include "scalars.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Records a message for fopt_last_error() (printf-style) and returns `status`, so that a failure
 * path reads `return fopt_fail(FOPT_ERROR_INVALID_VALUE, "lr is %g", lr);`. */
fopt_status fopt_fail(fopt_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* A fast-CPU-path element loop over fp32 arrays: n elements of param, grad and the three state
 * slots (NULL where unused), with one group's scalars. */
typedef void (*fopt_cpu_kernel)(const fopt_group_scalars *s, size_t n, float *param,
                                const float *grad, float *st0, float *st1, float *st2);

/* Everything the generic code needs to know about one optimizer. */
typedef struct fopt_desc {
    fopt_kind kind;
    const char *name;     /* "adam", "rmsprop" */
    size_t lr_offset;     /* of double lr in its config */
    size_t wd_offset;     /* of double weight_decay */
    size_t precision_offset, capturable_offset;
    /* hyper-parameters in range and derived scalars finite: FOPT_SUCCESS or INVALID_VALUE */
    fopt_status (*check)(const fopt_any_config *cfg);
    /* state slots kept (bits of fopt_slot 0..2) and the kernels' variant bits */
    unsigned (*states)(const fopt_any_config *cfg);
    unsigned (*variant)(const fopt_any_config *cfg);
    /* the CPU reference's element update (fp32, in place) */
    void (*ref_element)(const fopt_group_scalars *s, float *p, float g, float st[FOPT_MAX_STATES]);
    /* the fast CPU path's fp32 element loop for an instruction set (fopt_cpu_isa_level) */
    fopt_cpu_kernel (*cpu_kernel)(int isa, const fopt_group_scalars *s);
    /* each state slot's name in messages, PyTorch's with its index ("exp_avg (state[0])"), and
     * when the optimizer keeps it ("with amsgrad") */
    const char *const *state_names;
    const char *const *state_kept;
    /* (the GPU step kernels of `kind`: fopt_step_kernel_of() in kernels/launch.h) */
} fopt_desc;

extern const fopt_desc fopt_adam_desc;
extern const fopt_desc fopt_rmsprop_desc;

/* Config fields through a descriptor. */
double fopt_cfg_lr(const fopt_desc *d, const fopt_any_config *cfg);
double fopt_cfg_wd(const fopt_desc *d, const fopt_any_config *cfg);
const fopt_precision *fopt_cfg_precision(const fopt_desc *d, const fopt_any_config *cfg);
bool fopt_cfg_capturable(const fopt_desc *d, const fopt_any_config *cfg);
/* A copy of the caller's config of d's kind. */
fopt_any_config fopt_cfg_copy(const fopt_desc *d, const void *cfg);

/* Hyper-parameter checks of each optimizer (the descriptors' check). */
fopt_status fopt_adam_config_check(const fopt_adam_config *cfg);
fopt_status fopt_rmsprop_config_check(const fopt_rmsprop_config *cfg);
/* Every value a group may take (lr, weight decay) gives finite derived scalars. */
fopt_status fopt_group_values_check(const fopt_desc *d, const fopt_any_config *cfg, double lr,
                                    double wd);

/* How a tensor of storage type `param` keeps its math parameter under a precision setting. */
fopt_master_mode fopt_master_mode_of(const fopt_precision *p, fopt_dtype param);

/* Validation of precision settings against one tensor's dtype; `where` names the tensor in the
 * message ("tensor 3"). */
fopt_status fopt_precision_check(const fopt_precision *p, fopt_dtype dtype, const char *where);
fopt_status fopt_precision_config_check(const fopt_precision *p);
/* fopt_step_options validation (values only: the pointers' memory is the caller's). */
fopt_status fopt_options_check(const fopt_step_options *o);
/* Whether options need the global statistics pass. */
bool fopt_options_need_stats(const fopt_step_options *o);
/* The CPU paths' verdict from the global sum of squares `total` (computed, or o->grad_sq_sum):
 * through fopt_stat_total() (kernels/stats.h, as the statistics kernel), writes grad_norm and
 * found_inf when asked for; returns true when the step is skipped (found_inf asked for and the
 * total not finite), else false with *coef the clip coefficient. */
bool fopt_options_verdict(const fopt_step_options *o, double total, float *coef);

/* Full validation of a CPU multi-tensor call; nothing is read beyond the structs and options. */
fopt_status fopt_multi_check(const fopt_desc *d, const fopt_any_config *cfg, int64_t step,
                             const fopt_host_tensor *tensors, size_t count,
                             const fopt_step_options *opts);

/* The one fp32 tensor of a flat (0.1) CPU call, after the 0.1 argument checks (every pointer
 * non-NULL even when n == 0, optional buffers required by the variant, fp32 states). */
fopt_status fopt_adam_flat_tensor(const fopt_adam_config *cfg, size_t n, float *param,
                                  const float *grad, float *exp_avg, float *exp_avg_sq,
                                  float *max_exp_avg_sq, fopt_host_tensor *out);
fopt_status fopt_rmsprop_flat_tensor(const fopt_rmsprop_config *cfg, size_t n, float *param,
                                     const float *grad, float *square_avg, float *momentum_buffer,
                                     float *grad_avg, fopt_host_tensor *out);

/* Every group's scalars of one CPU call (one group: the config's lr and weight decay). */
fopt_group_scalars fopt_cpu_scalars(const fopt_desc *d, const fopt_any_config *cfg, int64_t step);

/* ---- the buffers of a call (src/common/buffers.c) ---- */

/* Bytes per element of a param/grad dtype. */
size_t fopt_dtype_bytes(fopt_dtype dt);

/* A buffer of a call: the bytes [begin, end), tensor `tensor`'s slot `what`, written by the step
 * or only read. */
typedef struct fopt_range {
    uintptr_t begin, end;
    size_t tensor;
    const char *what;
    bool written;
} fopt_range;

/* p (a single value, `what` named in full) is aligned to `align` bytes: FOPT_SUCCESS or
 * INVALID_VALUE. */
fopt_status fopt_pointer_aligned(const void *p, size_t align, const char *what);

/* Whether numel elements of `elem` bytes at p can exist: at most 2^57 bytes (more than any 64-bit
 * platform maps), ending inside the address space; computed without a wrapping multiplication. */
bool fopt_buffer_fits(const void *p, size_t numel, size_t elem);

/* The range of numel elements of `elem` bytes at p: FOPT_SUCCESS, or INVALID_VALUE naming tensor
 * and slot when p is not aligned to elem or the bytes do not fit the address space (no
 * multiplication wraps). */
fopt_status fopt_buffer_range(const void *p, size_t numel, size_t elem, size_t tensor,
                              const char *what, bool written, fopt_range *out);

/* Whether two of the ranges overlap where one of them is written (read-only ranges may share
 * memory); if so *a and *b are such a pair. Sorts r. */
bool fopt_ranges_overlap(fopt_range *r, size_t count, fopt_range *a, fopt_range *b);

/* FOPT_SUCCESS, or INVALID_VALUE naming two ranges that fopt_ranges_overlap() finds. Sorts r. */
fopt_status fopt_ranges_disjoint(fopt_range *ranges, size_t count);

/* The result and scale pointers of a sum of squares (any fopt_grad_sq_sum*): aligned, or
 * INVALID_VALUE naming the one that is not; NULL passes. */
fopt_status fopt_sq_sum_pointers(const float *grad_scale, const double *sq_sum);
/* Arguments of fopt_grad_sq_sum_*_multi. */
fopt_status fopt_sq_sum_check(const fopt_host_tensor *tensors, size_t count, const float *grad_scale,
                              const double *sq_sum);

/* The reference's sum of squares of the unscaled grads in the order of kernels/stats.h. */
double fopt_ref_sq_sum(const fopt_host_tensor *tensors, size_t count, const float *grad_scale);

/* A multi-tensor driver: steps a call fopt_multi_check() has accepted (fopt_ref_multi,
 * fopt_cpu_multi, the host-run kernels). fopt_call_multi() runs one for a public entry point: NULL
 * config check, copy, fopt_multi_check(), then the driver. */
typedef fopt_status (*fopt_multi_driver)(const fopt_desc *d, const fopt_any_config *cfg, int64_t step,
                                         const fopt_host_tensor *tensors, size_t count,
                                         const fopt_step_options *opts);
fopt_status fopt_call_multi(fopt_multi_driver driver, const fopt_desc *d, const void *cfg, int64_t step,
                            const fopt_host_tensor *tensors, size_t count, const fopt_step_options *opts);

/* Defines the two multi-tensor entry points of a driver, named adam_fn and rmsprop_fn (e.g.
 * fopt_adam_step_cpu_multi and fopt_rmsprop_step_cpu_multi), with the public _multi signature. */
#define FOPT_DEFINE_MULTI_ENTRIES(adam_fn, rmsprop_fn, driver)                                    \
    fopt_status adam_fn(const fopt_adam_config *cfg, int64_t step, const fopt_host_tensor *tensors, \
                        size_t count, const fopt_step_options *opts)                               \
    {                                                                                              \
        return fopt_call_multi(driver, &fopt_adam_desc, cfg, step, tensors, count, opts);           \
    }                                                                                              \
    fopt_status rmsprop_fn(const fopt_rmsprop_config *cfg, int64_t step,                           \
                           const fopt_host_tensor *tensors, size_t count,                          \
                           const fopt_step_options *opts)                                          \
    {                                                                                              \
        return fopt_call_multi(driver, &fopt_rmsprop_desc, cfg, step, tensors, count, opts);        \
    }

/* Defines the flat fp32 (0.1) entry points of a driver: fopt_adam_step_<sfx> and
 * fopt_rmsprop_step_<sfx>, one tensor through the driver. */
#define FOPT_DEFINE_FLAT_ENTRIES(sfx, driver)                                                      \
    fopt_status fopt_adam_step_##sfx(const fopt_adam_config *cfg, int64_t step, size_t n,          \
                                     float *param, const float *grad, float *exp_avg,              \
                                     float *exp_avg_sq, float *max_exp_avg_sq)                     \
    {                                                                                              \
        fopt_host_tensor t;                                                                        \
        fopt_status st = fopt_adam_flat_tensor(cfg, n, param, grad, exp_avg, exp_avg_sq,           \
                                               max_exp_avg_sq, &t);                                \
        return st != FOPT_SUCCESS ? st                                                             \
                                  : fopt_call_multi(driver, &fopt_adam_desc, cfg, step, &t, 1, NULL); \
    }                                                                                              \
    fopt_status fopt_rmsprop_step_##sfx(const fopt_rmsprop_config *cfg, size_t n, float *param,     \
                                        const float *grad, float *square_avg,                      \
                                        float *momentum_buffer, float *grad_avg)                   \
    {                                                                                              \
        fopt_host_tensor t;                                                                        \
        fopt_status st = fopt_rmsprop_flat_tensor(cfg, n, param, grad, square_avg,                 \
                                                  momentum_buffer, grad_avg, &t);                  \
        return st != FOPT_SUCCESS ? st                                                             \
                                  : fopt_call_multi(driver, &fopt_rmsprop_desc, cfg, 1, &t, 1, NULL); \
    }

/* The multi-tensor drivers behind the public _multi entry points. */
fopt_status fopt_ref_multi(const fopt_desc *d, const fopt_any_config *cfg, int64_t step,
                           const fopt_host_tensor *tensors, size_t count,
                           const fopt_step_options *opts);
fopt_status fopt_cpu_multi(const fopt_desc *d, const fopt_any_config *cfg, int64_t step,
                           const fopt_host_tensor *tensors, size_t count,
                           const fopt_step_options *opts);

/* The GPU optimizer's creation behind fopt_*_create and fopt_*_create_shard: over the whole list
 * (range NULL) or the elements [range[0], range[1]) of its concatenation. */
fopt_status fopt_gpu_create(fopt_optimizer **out, const fopt_desc *d, const fopt_any_config *cfg,
                            const fopt_tensor *tensors, size_t count, const uint64_t *range);

/* ---- shards (src/common/shard.c) ---- */

/* A shard's range against the list's element count: begin <= end <= total, each a multiple of
 * FOPT_SHARD_ALIGN or total. FOPT_SUCCESS or INVALID_VALUE. */
fopt_status fopt_shard_range_check(uint64_t total, uint64_t begin, uint64_t end);

/* The part of a tensor of n elements, whose element 0 is element `start` of the concatenation,
 * that the range [begin, end) holds: its elements [*lo, *hi); an empty part is [0, 0). */
void fopt_shard_part(uint64_t start, uint64_t n, uint64_t begin, uint64_t end, uint64_t *lo,
                     uint64_t *hi);

/* A host tensor's identity for stochastic rounding: its index in the list (its position k in the
 * call unless it is a piece) and the index in that tensor of its element 0. */
static inline uint64_t fopt_host_tensor_index(const fopt_host_tensor *t, size_t k)
{
    return t->piece ? (uint64_t)t->tensor : (uint64_t)k;
}
static inline uint64_t fopt_host_elem_offset(const fopt_host_tensor *t)
{
    return t->piece ? t->elem_offset : 0;
}

#ifdef __cplusplus
}
#endif

#endif
