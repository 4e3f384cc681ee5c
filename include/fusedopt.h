/*
 * fusedopt - fused CUDA optimizer kernels for C.
 *
 * Introduction
 * ------------
 * fusedopt updates a model's parameters on the GPU in one pass over memory per step: for every
 * element it reads the parameter, the gradient and the optimizer state once, and writes the
 * parameter and the state once. Moment updates, bias correction, weight decay and the parameter
 * step happen together, for any number of tensors in one launch.
 *
 * Optimizers: Adam, AdamW (decoupled weight decay), both with AMSGrad and maximize; RMSprop plain,
 * with momentum, centered. The numbers follow PyTorch's single-tensor code path
 * (torch.optim.Adam / AdamW / RMSprop); docs/SEMANTICS.md in the source tree states the formulas.
 *
 * Three ways to run an update:
 *   - fopt_*_step_ref : the CPU reference. Scalar, single-threaded, obviously correct: the oracle
 *                       that every other path is tested against.
 *   - fopt_*_step_cpu : the fast CPU path. SIMD (AVX-512 / AVX2 chosen at run time) on all cores,
 *                       bit-identical to the reference.
 *   - fopt_optimizer  : the GPU optimizer object. It owns the device state (moments, AMSGrad max,
 *                       momentum, centered average) and launches the fused kernels on a stream.
 *
 * Conventions
 *   - Every function that can fail returns an fopt_status; results come back through out-pointers.
 *   - Nothing is changed when a call fails: no buffer, no state, no step counter.
 *   - Hyper-parameters are double. The library derives 1 - beta, bias corrections and step sizes
 *     in double, then rounds each to float once; element math is fp32.
 *   - fopt_last_error() gives a readable message about the last failure in the calling thread.
 *
 * A training loop:
 *
 *     fopt_tensor t[2] = {{w1, dw1, n1, FOPT_FLOAT32}, {w2, dw2, n2, FOPT_FLOAT32}};
 *     fopt_adam_config cfg = fopt_adam_config_default();
 *     cfg.decoupled_weight_decay = true;  cfg.weight_decay = 0.01;       // AdamW
 *     fopt_optimizer *opt;
 *     if (fopt_adam_create(&opt, &cfg, t, 2) != FOPT_SUCCESS) { puts(fopt_last_error()); ... }
 *     for (...) { forward_backward(stream); fopt_step(opt, stream); }
 *     fopt_destroy(opt);
 */
#ifndef FUSEDOPT_H
#define FUSEDOPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define FOPT_API
#elif defined(__GNUC__)
#define FOPT_API __attribute__((visibility("default")))
#else
#define FOPT_API
#endif

/* ---------------------------------------------------------------------------------------------
 * Version
 * ------------------------------------------------------------------------------------------- */
#define FOPT_VERSION_MAJOR 0
#define FOPT_VERSION_MINOR 1
#define FOPT_VERSION_PATCH 0
#define FOPT_VERSION_STRING "0.1.0"
/* One number for comparisons: major*10000 + minor*100 + patch. */
#define FOPT_VERSION_NUMBER (FOPT_VERSION_MAJOR * 10000 + FOPT_VERSION_MINOR * 100 + FOPT_VERSION_PATCH)

/*! fopt_version() : the version of the library actually linked, as FOPT_VERSION_STRING. */
FOPT_API const char *fopt_version(void);

/* ---------------------------------------------------------------------------------------------
 * Status
 * ------------------------------------------------------------------------------------------- */
typedef enum fopt_status {
    FOPT_SUCCESS = 0,
    FOPT_ERROR_INVALID_VALUE = 1, /* NULL pointer, out-of-range hyper-parameter, step < 1, size mismatch */
    FOPT_ERROR_NOT_SUPPORTED = 2, /* valid request this build or device cannot serve */
    FOPT_ERROR_OUT_OF_MEMORY = 3, /* host or device allocation failed */
    FOPT_ERROR_NO_DEVICE = 4,     /* no usable CUDA device */
    FOPT_ERROR_CUDA = 5,          /* a CUDA call failed; fopt_last_error() has the detail */
    /* values are never renumbered; new ones are appended */
} fopt_status;

/*! fopt_status_string() : a constant name for a status, e.g. "FOPT_ERROR_INVALID_VALUE".
 *  Unknown values give "FOPT_UNKNOWN_STATUS". Never NULL. */
FOPT_API const char *fopt_status_string(fopt_status status);

/*! fopt_last_error() : a readable message about the most recent failure of a fusedopt call in
 *  the calling thread (which argument was wrong, which CUDA call failed and why, with file and
 *  line). "" when nothing has failed yet. The text stays valid until the next failing call in the
 *  same thread. Never NULL. */
FOPT_API const char *fopt_last_error(void);

/* ---------------------------------------------------------------------------------------------
 * Configurations (PyTorch defaults and semantics)
 * ------------------------------------------------------------------------------------------- */
typedef struct fopt_adam_config {
    double lr;                   /* 1e-3, >= 0 and finite */
    double beta1, beta2;         /* 0.9, 0.999, each in [0, 1) */
    double eps;                  /* 1e-8, >= 0 and finite */
    double weight_decay;         /* 0, >= 0 and finite */
    bool decoupled_weight_decay; /* false: L2 added to the gradient (Adam); true: AdamW */
    bool amsgrad;                /* false: true keeps the running max of the second moment */
    bool maximize;               /* false: true ascends the gradient */
} fopt_adam_config;

/*! fopt_adam_config_default() : PyTorch's torch.optim.Adam defaults (lr 1e-3, betas 0.9 and
 *  0.999, eps 1e-8, no weight decay, AMSGrad and maximize off). For PyTorch's AdamW defaults set
 *  decoupled_weight_decay = true and weight_decay = 1e-2. */
FOPT_API fopt_adam_config fopt_adam_config_default(void);

typedef struct fopt_rmsprop_config {
    double lr;           /* 1e-2, >= 0 and finite */
    double alpha;        /* 0.99, smoothing constant in [0, 1] */
    double eps;          /* 1e-8, >= 0, added after the square root (PyTorch) */
    double weight_decay; /* 0, >= 0, L2 added to the gradient */
    double momentum;     /* 0, >= 0; > 0 keeps a momentum buffer */
    bool centered;       /* false: true normalises by the estimated variance (keeps grad_avg) */
    bool maximize;       /* false: true ascends the gradient */
} fopt_rmsprop_config;

/*! fopt_rmsprop_config_default() : PyTorch's torch.optim.RMSprop defaults (lr 1e-2, alpha 0.99,
 *  eps 1e-8, no weight decay, no momentum, not centered, maximize off). */
FOPT_API fopt_rmsprop_config fopt_rmsprop_config_default(void);

/* ---------------------------------------------------------------------------------------------
 * CPU reference: the oracle. Scalar, single-threaded, host memory.
 *
 * Each call performs one optimizer step over n elements in place. `step` is the number of this
 * update counting from 1 (bias correction uses it). Optional buffers are NULL when the variant
 * does not use them and must be non-NULL when it does; state buffers start zeroed.
 * n == 0 is a valid no-op (pointers are still checked). Buffers must not overlap.
 * Invalid arguments give FOPT_ERROR_INVALID_VALUE and leave every buffer unchanged.
 * ------------------------------------------------------------------------------------------- */

/*! fopt_adam_step_ref() : one Adam/AdamW step. Updates param, exp_avg, exp_avg_sq and, with
 *  cfg->amsgrad, max_exp_avg_sq (required then, ignored otherwise). */
FOPT_API fopt_status fopt_adam_step_ref(const fopt_adam_config *cfg, int64_t step, size_t n,
                                        float *param, const float *grad, float *exp_avg,
                                        float *exp_avg_sq, float *max_exp_avg_sq /* amsgrad only */);

/*! fopt_rmsprop_step_ref() : one RMSprop step. Updates param, square_avg, momentum_buffer (needed
 *  when cfg->momentum > 0, ignored otherwise) and grad_avg (needed when cfg->centered). */
FOPT_API fopt_status fopt_rmsprop_step_ref(const fopt_rmsprop_config *cfg, size_t n, float *param,
                                           const float *grad, float *square_avg,
                                           float *momentum_buffer /* momentum > 0 only */,
                                           float *grad_avg /* centered only */);

/* ---------------------------------------------------------------------------------------------
 * Fast CPU path: same signatures, semantics and validation as the reference, vectorised
 * (AVX-512 or AVX2 when the CPU has it, portable code otherwise) and run on all cores.
 * Results are bit-identical to the reference (same operation order, no FMA contraction).
 * ------------------------------------------------------------------------------------------- */

/*! fopt_adam_step_cpu() : as fopt_adam_step_ref(), fast. */
FOPT_API fopt_status fopt_adam_step_cpu(const fopt_adam_config *cfg, int64_t step, size_t n,
                                        float *param, const float *grad, float *exp_avg,
                                        float *exp_avg_sq, float *max_exp_avg_sq);

/*! fopt_rmsprop_step_cpu() : as fopt_rmsprop_step_ref(), fast. */
FOPT_API fopt_status fopt_rmsprop_step_cpu(const fopt_rmsprop_config *cfg, size_t n, float *param,
                                           const float *grad, float *square_avg,
                                           float *momentum_buffer, float *grad_avg);

/*! fopt_cpu_set_threads() : the number of threads the fast CPU path uses; 0 restores the default
 *  (the FOPT_NUM_THREADS environment variable if set, else every core). Negative values give
 *  FOPT_ERROR_INVALID_VALUE. */
FOPT_API fopt_status fopt_cpu_set_threads(int threads);

/*! fopt_cpu_threads() : the number of threads the fast CPU path will use for a large call. */
FOPT_API int fopt_cpu_threads(void);

/*! fopt_cpu_isa() : the instruction set the fast CPU path chose on this machine:
 *  "avx512", "avx2" or "scalar". */
FOPT_API const char *fopt_cpu_isa(void);

/* ---------------------------------------------------------------------------------------------
 * GPU optimizer
 *
 * An optimizer owns its device state buffers (one cudaMalloc, zeroed at creation, freed by
 * fopt_destroy), its step counter and its hyper-parameters. The parameter and gradient tensors
 * are the caller's device memory, bound at creation: their addresses and sizes must stay valid
 * until fopt_destroy. The optimizer belongs to the CUDA device that was current at creation;
 * its calls switch to that device and back when another one is current.
 * ------------------------------------------------------------------------------------------- */
typedef enum fopt_dtype { FOPT_FLOAT32 = 0, FOPT_FLOAT16 = 1, FOPT_BFLOAT16 = 2 } fopt_dtype;

typedef struct fopt_tensor {
    void *param;      /* device pointer, updated in place */
    const void *grad; /* device pointer */
    size_t numel;     /* elements; 0 is allowed (the tensor is skipped) */
    fopt_dtype dtype; /* of param and grad; FOPT_FLOAT32 when zero-initialised */
} fopt_tensor;

typedef struct fopt_optimizer fopt_optimizer;

/*! fopt_adam_create() : an Adam/AdamW optimizer over `count` tensors, state zeroed, step 0.
 *  @return FOPT_SUCCESS and *out set; FOPT_ERROR_INVALID_VALUE for a NULL out/cfg/tensors, count
 *  0, a NULL or host pointer in a tensor with numel > 0, or a hyper-parameter out of range;
 *  FOPT_ERROR_NOT_SUPPORTED for a dtype other than FOPT_FLOAT32 (this version);
 *  FOPT_ERROR_NO_DEVICE without a CUDA device; FOPT_ERROR_OUT_OF_MEMORY or FOPT_ERROR_CUDA.
 *  On failure *out is untouched and nothing stays allocated. */
FOPT_API fopt_status fopt_adam_create(fopt_optimizer **out, const fopt_adam_config *cfg,
                                      const fopt_tensor *tensors, size_t count);

/*! fopt_rmsprop_create() : an RMSprop optimizer over `count` tensors; as fopt_adam_create(). */
FOPT_API fopt_status fopt_rmsprop_create(fopt_optimizer **out, const fopt_rmsprop_config *cfg,
                                         const fopt_tensor *tensors, size_t count);

/*! fopt_step() : one optimizer step over every bound tensor, enqueued on `stream` (0 is the
 *  default stream): one kernel launch whatever the tensor count. Asynchronous: the gradients must
 *  be ready in stream order, and the parameters are updated when the stream reaches the launch.
 *  The step counter advances only when the launch was enqueued. */
FOPT_API fopt_status fopt_step(fopt_optimizer *opt, cudaStream_t stream);

/*! fopt_set_lr() : the learning rate for the following steps (for schedules). lr must be >= 0 and
 *  finite. Takes effect at the next fopt_step(); steps already enqueued keep theirs. */
FOPT_API fopt_status fopt_set_lr(fopt_optimizer *opt, double lr);

/*! fopt_step_count() : how many steps were taken (0 after creation); -1 for NULL. */
FOPT_API int64_t fopt_step_count(const fopt_optimizer *opt);

/*! fopt_state_size() : bytes needed by fopt_state_save() for this optimizer (a checkpoint:
 *  header, step counter, learning rate and every state buffer); 0 for NULL. */
FOPT_API size_t fopt_state_size(const fopt_optimizer *opt);

/*! fopt_state_save() : copies the optimizer's state into host_buf (size >= fopt_state_size()).
 *  Synchronises with the device (waits for enqueued steps). */
FOPT_API fopt_status fopt_state_save(const fopt_optimizer *opt, void *host_buf, size_t size);

/*! fopt_state_load() : restores a state saved by fopt_state_save() from an optimizer of the same
 *  kind and variant (same buffers) over the same tensor sizes, by the same library version: the
 *  state buffers, the step counter and the learning rate, bit for bit. Anything else (a truncated
 *  or corrupted buffer, another optimizer, tensor list or version) gives
 *  FOPT_ERROR_INVALID_VALUE and changes nothing. Synchronises with the device. */
FOPT_API fopt_status fopt_state_load(fopt_optimizer *opt, const void *host_buf, size_t size);

/*! fopt_destroy() : frees the optimizer and its device state. NULL is fine. Synchronises with the
 *  device before freeing, so enqueued steps finish first. */
FOPT_API void fopt_destroy(fopt_optimizer *opt);

#ifdef __cplusplus
}
#endif

#endif /* FUSEDOPT_H */
