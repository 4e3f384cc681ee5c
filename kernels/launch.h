/* The C-callable side of the kernels: launch arguments and, for each kernel, a pair of entry
 * points. `launch` enqueues the real kernel on a stream; `run_on_host` runs the very same kernel
 * body for every block and every thread on the CPU over host memory. The device layer
 * (src/gpu/device.h) calls one or the other: the CUDA backend launches, the emulated backend runs
 * on the host, so the optimizer object and the GPU suites run without a GPU too. Not installed. */
#ifndef FUSEDOPT_LAUNCH_H
#define FUSEDOPT_LAUNCH_H

#include <cuda_runtime_api.h>

#include "multi_tensor.h"
#include "scalars.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A kernel: its two entry points over one argument struct. */
typedef struct fopt_kernel {
    cudaError_t (*launch)(const void *args, cudaStream_t stream);
    void (*run_on_host)(const void *args);
    size_t args_size;
    const char *name;
} fopt_kernel;

/* Written by the statistics kernel, read by the step kernel (device memory). */
typedef struct fopt_step_stats {
    double sq_sum;    /* sum of squares of the unscaled grads (or the caller's reduced one) */
    float clip_coef;  /* min(1, max_grad_norm / (norm + 1e-6)) in float; 1 without clipping */
    int32_t skip;     /* an unscaled grad is inf/NaN and the step checks for it: update nothing */
} fopt_step_stats;

/* Device-resident hyper-parameters and step counter (capturable optimizers, and steps that may be
 * skipped on an inf: the host cannot know whether they counted). */
typedef struct fopt_device_hparams {
    int64_t step;                 /* steps taken */
    int64_t refused;              /* a step found step == INT64_MAX and was refused (the count
                                     saturates); fopt_step_count() reports it until a count is set */
    double lr[FOPT_MAX_GROUPS];
    double wd[FOPT_MAX_GROUPS];
} fopt_device_hparams;

/* Derivation of a step's scalars on the device (fopt_prologue_kernel, or the last block of the
 * statistics kernel): unless the statistics say skip, step = previous + 1 and every group's
 * scalars go to *out. The count in hp->step advances only when the update is launched: the last
 * step launch stores it (fopt_step_args.step_out), or the prologue itself when no step launch
 * follows (`commit`). A count the host knew (host_step >= 0) is stored in hp->step first, so a
 * skipped step leaves it there. A step that would take the count past INT64_MAX is refused: the
 * count stays, hp->refused is set, and out->step = 0 tells the step kernel to update nothing. */
typedef struct fopt_prologue_args {
    int32_t enabled;
    int32_t kind;                 /* fopt_kind */
    fopt_any_config cfg;
    fopt_device_hparams *hp;
    fopt_scalars *out;
    const fopt_step_stats *stats; /* NULL: never skip */
    int64_t host_step;            /* >= 0: the step count before this step, known on the host;
                                     -1: hp->step holds it */
    int32_t lr_on_device;         /* capturable: lr and wd from hp, else from the arrays below */
    uint32_t group_count;
    int32_t commit;               /* no step launch follows: store the new count in hp->step */
    int32_t pad_;
    double lr[FOPT_MAX_GROUPS];
    double wd[FOPT_MAX_GROUPS];
} fopt_prologue_args;

/* The step kernel over one launch class (one parameter storage type). */
typedef struct fopt_step_args {
    fopt_table table;
    const fopt_scalars *device_scalars; /* when set, read instead of `scalars`; step number 0
                                           there: the prologue refused the step, update nothing */
    const fopt_step_stats *stats;       /* when set: skip, and clip_coef if `clip` */
    const float *grad_scale;            /* when set: every grad is divided by *grad_scale first */
    int64_t *step_out;                  /* when set (the last launch of a step with device-side
                                           scalars): block 0 stores the step's number there, unless
                                           skipped, so the count advances with a launched update */
    float *grad_norm_out;               /* when set (the last launch of a step): block 0 writes */
    int32_t *found_inf_out;             /* the step's outputs from `stats` there, so that the
                                           caller sees them only when the whole step was launched */
    int32_t clip;                       /* multiply every grad by stats->clip_coef */
    int32_t zero_grads;                 /* write 0 to every grad after reading it */
    fopt_scalars scalars;               /* eager steps: derived on the host */
} fopt_step_args;

/* The statistics kernel: one block per FOPT_CHUNK-element chunk of every entry in table order;
 * sum of squares of the unscaled grads in the fixed order of docs/SEMANTICS.md; the last block
 * to finish reduces the chunks' partials, writes the results and runs the prologue. With no chunk
 * (an external sum only) it is one block that does the last part. */
typedef struct fopt_stats_args {
    fopt_table table;               /* chunk_shift == FOPT_CHUNK_SHIFT */
    double *partials;               /* chunk_count doubles */
    uint32_t *done;                 /* 0 before the launch; the last block resets it */
    const float *grad_scale;        /* NULL: 1 */
    const double *external_sq_sum;  /* replaces the computed sum (sharded runs) */
    double max_grad_norm;           /* > 0: clipping */
    fopt_step_stats *stats_out;     /* may be NULL */
    double *sq_sum_out;             /* each may be NULL */
    float *grad_norm_out;
    int32_t *found_inf_out;
    int32_t check_inf;              /* stats_out->skip = non-finite sum */
    int32_t pad_;
    fopt_prologue_args prologue;
} fopt_stats_args;

/* The step kernel of an optimizer for one combination of storage types. `variant` bits: Adam:
 * 1 amsgrad; RMSprop: 1 momentum, 2 centered. NULL-launch kernel for an impossible combination. */
fopt_kernel fopt_adam_step_kernel(fopt_storage param, fopt_storage state, fopt_master_mode master,
                                  unsigned variant);
fopt_kernel fopt_rmsprop_step_kernel(fopt_storage param, fopt_storage state,
                                     fopt_master_mode master, unsigned variant);

/* The step kernel of an optimizer kind (for the GPU object and the host-run kernels, which get
 * the kind from the optimizer's descriptor; the descriptor itself names no kernel, so that
 * src/common needs nothing from CUDA). */
static inline fopt_kernel fopt_step_kernel_of(fopt_kind kind, fopt_storage param, fopt_storage state,
                                              fopt_master_mode master, unsigned variant)
{
    return kind == FOPT_KIND_ADAM ? fopt_adam_step_kernel(param, state, master, variant)
                                  : fopt_rmsprop_step_kernel(param, state, master, variant);
}

/* The statistics kernel (fopt_stats_args) and the one-block prologue (fopt_prologue_args). */
fopt_kernel fopt_stats_kernel(void);
fopt_kernel fopt_prologue_kernel(void);

/* Master copies from the params at creation (arguments: a fopt_table over step chunks). */
fopt_kernel fopt_master_init_kernel(void);

/* The derivation itself (host and device). */
void fopt_prologue_run(const fopt_prologue_args *a);

#ifdef __cplusplus
}
#endif

#endif
