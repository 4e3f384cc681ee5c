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
 *   - A library built without CUDA (-DFOPT_CUDA=OFF, the default where no nvcc is found) has the
 *     same header and name: every CPU entry point works, and every GPU optimizer function returns
 *     FOPT_ERROR_NOT_SUPPORTED with a message saying so ("GPU optimizer" below).
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

/* The stream type of the GPU functions, declared as the CUDA runtime declares it (an opaque
 * struct pointer), so this header needs no CUDA header and builds without CUDA (-DFOPT_CUDA=OFF)
 * compile against it. Identical to <driver_types.h>'s: including the CUDA runtime's headers before
 * or after this one compiles in C (C11 allows the repeated typedef) and C++. */
#if !defined(__DRIVER_TYPES_H__)
typedef struct CUstream_st *cudaStream_t;
#endif

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
/* The only definition of the version: CMakeLists.txt reads these three lines for project(). */
#define FOPT_VERSION_MAJOR 0
#define FOPT_VERSION_MINOR 2
#define FOPT_VERSION_PATCH 0
#define FOPT_VERSION_STR_(x) #x
#define FOPT_VERSION_STR(x) FOPT_VERSION_STR_(x)
#define FOPT_VERSION_STRING                                                                        \
    FOPT_VERSION_STR(FOPT_VERSION_MAJOR) "." FOPT_VERSION_STR(FOPT_VERSION_MINOR) "."              \
        FOPT_VERSION_STR(FOPT_VERSION_PATCH)
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
 *  Unknown values give "FOPT_UNKNOWN_STATUS". Never NULL. For a status code alone (a log field, a
 *  switch); after a failure print fopt_last_error(), which already starts with this name. */
FOPT_API const char *fopt_status_string(fopt_status status);

/*! fopt_last_error() : a readable message about the most recent failure of a fusedopt call in
 *  the calling thread: the status name, then what was wrong (which argument, which CUDA call failed
 *  and why, with file and line), e.g. "FOPT_ERROR_INVALID_VALUE: lr must be finite and >= 0, got
 *  -1". Print it alone: prefixing fopt_status_string() would name the status twice. "" when
 *  nothing has failed yet. The text stays valid until the next failing call in the
 *  same thread. Never NULL. */
FOPT_API const char *fopt_last_error(void);

/* ---------------------------------------------------------------------------------------------
 * Storage types and mixed precision
 *
 * Parameters and gradients may be stored in fp32, fp16 or bf16; the element math is always fp32.
 * Loads are exact upcasts; stores round to nearest-even (param to its dtype, states to
 * state_dtype), unless stochastic rounding is asked for. docs/SEMANTICS.md, "Mixed precision".
 * ------------------------------------------------------------------------------------------- */
typedef enum fopt_dtype { FOPT_FLOAT32 = 0, FOPT_FLOAT16 = 1, FOPT_BFLOAT16 = 2 } fopt_dtype;

typedef struct fopt_precision {
    fopt_dtype state_dtype;   /* storage of every state buffer: FOPT_FLOAT32 (default) or
                                 FOPT_BFLOAT16; FOPT_FLOAT16 gives FOPT_ERROR_NOT_SUPPORTED */
    bool master_weights;      /* fp16/bf16 params: keep an fp32 master copy, step it, and write its
                                 rounding to param (ignored for fp32 params) */
    bool stochastic_rounding; /* bf16 params without master weights: round the new param
                                 stochastically instead of to nearest-even (ignored for fp32
                                 params; fp16 params: FOPT_ERROR_NOT_SUPPORTED) */
    bool master_remainder;    /* bf16 params with master weights: keep 16 bits per param which,
                                 with the bf16 param, give the fp32 master exactly (2 B/param
                                 instead of 4); the param is then the master rounded to nearest
                                 with ties away from zero (docs/SEMANTICS.md says why). Ignored
                                 for fp32 params; fp16 params: FOPT_ERROR_NOT_SUPPORTED */
    uint64_t seed;            /* stochastic rounding: the random bits are a pure function of
                                 (seed, step, tensor index, element index) */
} fopt_precision;
/* The one rule for the flags against a tensor's dtype, on every entry point: a flag with nothing
 * to act on for the dtype (fp32 params: nothing is rounded, no master is kept) is ignored; a flag
 * that would change how a param of the dtype is stored but that the library cannot do for it
 * (fp16 params: stochastic_rounding, master_remainder) gives FOPT_ERROR_NOT_SUPPORTED naming the
 * tensor and the flag. A list of fp32 and bf16 tensors (fp32 norms beside bf16 weights) thus takes
 * every flag. Inconsistent flags (master_remainder without master_weights, stochastic_rounding
 * with master_weights) and unknown dtypes are FOPT_ERROR_INVALID_VALUE. */

/* ---------------------------------------------------------------------------------------------
 * Configurations (PyTorch defaults and semantics)
 *
 * ABI: fields are only ever appended to these structs, and a zero value of an appended field means
 * the behaviour of the version before it. A config zero-initialised, or from _default(), then
 * filled in by 0.1 code still means plain fp32. Always start from _default().
 * ------------------------------------------------------------------------------------------- */
typedef struct fopt_adam_config {
    double lr;                   /* 1e-3, >= 0 and finite */
    double beta1, beta2;         /* 0.9, 0.999, each in [0, 1) */
    double eps;                  /* 1e-8, >= 0 and finite */
    double weight_decay;         /* 0, >= 0 and finite */
    bool decoupled_weight_decay; /* false: L2 added to the gradient (Adam); true: AdamW */
    bool amsgrad;                /* false: true keeps the running max of the second moment */
    bool maximize;               /* false: true ascends the gradient */
    /* 0.2 */
    fopt_precision precision;    /* storage of params' master copy and states (all zero: fp32) */
    bool capturable;             /* GPU optimizer: lr, step count and bias corrections live on the
                                    device, so a CUDA graph may capture fopt_step/fopt_step_ex */
} fopt_adam_config;

/*! fopt_adam_config_default() : PyTorch's torch.optim.Adam defaults (lr 1e-3, betas 0.9 and
 *  0.999, eps 1e-8, no weight decay, AMSGrad and maximize off), fp32 states, not capturable. For
 *  PyTorch's AdamW defaults set decoupled_weight_decay = true and weight_decay = 1e-2. */
FOPT_API fopt_adam_config fopt_adam_config_default(void);

typedef struct fopt_rmsprop_config {
    double lr;           /* 1e-2, >= 0 and finite */
    double alpha;        /* 0.99, smoothing constant in [0, 1] */
    double eps;          /* 1e-8, >= 0, added after the square root (PyTorch) */
    double weight_decay; /* 0, >= 0, L2 added to the gradient */
    double momentum;     /* 0, >= 0; > 0 keeps a momentum buffer */
    bool centered;       /* false: true normalises by the estimated variance (keeps grad_avg) */
    bool maximize;       /* false: true ascends the gradient */
    /* 0.2 */
    fopt_precision precision; /* as in fopt_adam_config */
    bool capturable;          /* as in fopt_adam_config */
} fopt_rmsprop_config;

/*! fopt_rmsprop_config_default() : PyTorch's torch.optim.RMSprop defaults (lr 1e-2, alpha 0.99,
 *  eps 1e-8, no weight decay, no momentum, not centered, maximize off), fp32 states. */
FOPT_API fopt_rmsprop_config fopt_rmsprop_config_default(void);

/* ---------------------------------------------------------------------------------------------
 * Step options: AMP loss scaling, global-norm clipping, the inf/NaN check
 *
 * Pointers are host pointers for the CPU entry points and device pointers for fopt_step_ex().
 * Order of operations on a grad: divide by *grad_scale, then multiply by the clip coefficient,
 * then the optimizer's own math (maximize, weight decay, ...). The global statistics are computed
 * in double in a fixed order (docs/SEMANTICS.md), so every path gives the same bits.
 *
 * The verdict. The step's sum of squares S (computed, or *grad_sq_sum) counts as NaN when the loss
 * scale is not a finite number > 0 or when *grad_sq_sum is negative or NaN. With found_inf, a
 * non-finite S (an inf/NaN unscaled grad, or either of those) skips the step: found_inf = 1,
 * grad_norm NaN or inf, nothing updated. Without found_inf nothing is checked and the step runs:
 * grad_norm receives sqrt(S) and clipping multiplies by the coefficient of that S (NaN for a NaN S,
 * so every updated param becomes NaN; 0 for an inf S). The same on every path: the GPU's scale and
 * sum are device memory, read by the kernels, so no call can refuse them before the launch.
 * ------------------------------------------------------------------------------------------- */
typedef struct fopt_step_options {
    const float *grad_scale; /* scalar: every grad is divided by it first (AMP loss scale);
                                NULL = none. Must be a finite number > 0: 0, negative, inf or
                                NaN is a non-finite verdict (found_inf = 1, step skipped; the sum
                                of squares and grad_norm are NaN). Without found_inf the grads
                                are divided by it as given (0: inf/NaN grads; inf: zeros;
                                negative: the step ascends), with clipping by a NaN coefficient */
    double max_grad_norm;    /* > 0: multiply every grad by min(1, max_grad_norm / (norm + 1e-6)),
                                norm = global L2 norm of the unscaled grads; 0 = no clipping.
                                Without found_inf a NaN norm (a NaN grad) gives a NaN coefficient
                                (as torch.clamp): every updated param and state becomes NaN; an
                                inf norm (an inf grad, none NaN) gives 0: finite grads become 0
                                (the step still runs: decay, moments) and inf ones NaN */
    float *grad_norm;        /* out scalar: that global norm (before clipping); NULL = not wanted */
    int32_t *found_inf;      /* out scalar: 1 if the verdict is non-finite (an unscaled grad is
                                inf/NaN, the loss scale is not a finite number > 0, grad_sq_sum is
                                negative or NaN), and then nothing is updated (params, master,
                                states, grads, step count); else 0. NULL = no check */
    /* appended (0.2) */
    bool zero_grads;         /* write 0 to every grad after reading it (training code that
                                accumulates into its grads); the grads must be writable */
    const double *grad_sq_sum; /* the global sum of squares of the unscaled grads, combined by
                                  the caller from every rank's partial (fopt_grad_sq_sum(); in rank
                                  order, see "Sharded optimizer state"); when set it replaces this
                                  call's own statistics for clipping, grad_norm and found_inf
                                  (inf, NaN or negative means found_inf; without found_inf a
                                  negative sum counts as NaN). NULL = compute here */
} fopt_step_options;

/* ---------------------------------------------------------------------------------------------
 * CPU reference: the oracle. Scalar, single-threaded, host memory.
 *
 * Each call performs one optimizer step over n elements in place. `step` is the number of this
 * update counting from 1 (bias correction uses it). Optional buffers are NULL when the variant
 * does not use them and must be non-NULL when it does; state buffers start zeroed.
 * n == 0 is a valid no-op (pointers are still checked). Buffers must not overlap, every pointer
 * must be aligned to 4 bytes and n * 4 bytes from it must fit the address space (at most 2^57
 * bytes: see fopt_adam_step_ref_multi()).
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

/* ---------------------------------------------------------------------------------------------
 * Multi-tensor CPU entry points (0.2): many tensors in one call, any storage type, step options.
 * The _ref_multi functions are the reference; the _cpu_multi functions are the fast path (SIMD,
 * all cores, the threads sharing the whole list), bit-identical to the reference. The flat fp32
 * functions above are the one-tensor case of these and keep their results.
 * ------------------------------------------------------------------------------------------- */
typedef struct fopt_host_tensor {
    void *param;      /* host, in dtype, updated in place */
    const void *grad; /* host, in dtype (written only with fopt_step_options.zero_grads) */
    size_t numel;
    fopt_dtype dtype; /* of param and grad */
    void *master;     /* precision.master_weights and dtype != fp32: the fp32 master params (float),
                         or with master_remainder numel uint16 remainders; the caller fills it before
                         step 1 (the upcast of param, or zeros for remainders); else NULL */
    void *state[3];   /* in precision.state_dtype, zeroed before step 1, NULL where unused.
                         Adam: exp_avg, exp_avg_sq, max_exp_avg_sq (amsgrad).
                         RMSprop: square_avg, momentum_buffer (momentum > 0), grad_avg (centered) */
    /* appended (0.2, shards): where this entry's elements lie in a longer tensor list */
    bool piece;           /* true: this entry is elements [elem_offset, elem_offset + numel) of
                             tensor `tensor` of a list (a shard's piece, see fopt_shard_pieces()),
                             and stochastic rounding draws the bits of that tensor's elements, as a
                             call over the whole list would. false (zero): the tensor index is the
                             position in the call and the element offset 0 (the 0.2 behaviour) */
    size_t tensor;        /* piece: the index of the whole tensor in its list (< 2^32) */
    uint64_t elem_offset; /* piece: the index in that tensor of this entry's element 0 */
} fopt_host_tensor;

/*! fopt_adam_step_ref_multi() : one Adam/AdamW step of every tensor (step counts from 1; any
 *  step in [1, INT64_MAX] is valid: the caller's count cannot overflow here). opts may be NULL (a
 *  plain step). With opts->found_inf set and a non-finite verdict (an inf/NaN unscaled grad, a
 *  loss scale that is not a finite number > 0, a negative or NaN grad_sq_sum), writes 1 there and
 *  changes nothing else. Validation covers every tensor before anything is written;
 *  fopt_last_error() names the tensor and the field. Buffers (tensors with numel > 0):
 *   - every pointer (param, grad, master, state[]) is aligned to its element size (param and grad:
 *     the dtype's; master: 4, or 2 for remainders; state: state_dtype's), as are the step
 *     options' pointers (grad_scale, grad_norm, found_inf: 4; grad_sq_sum: 8);
 *   - numel elements from each pointer fit the address space: numel * element size (computed
 *     without overflow) is at most 2^57 bytes, more than any 64-bit platform maps, and does not
 *     wrap past the end of memory; the numel of all tensors sum to at most SIZE_MAX;
 *   - no buffer the step writes (param, master, state[], grad with zero_grads) overlaps another
 *     buffer of the call; buffers only read (grads without zero_grads) may share memory. So the
 *     same tensor twice, or grad == param, is refused; fopt_last_error() names both.
 *  Any of these gives FOPT_ERROR_INVALID_VALUE. Precision flags: see fopt_precision. */
FOPT_API fopt_status fopt_adam_step_ref_multi(const fopt_adam_config *cfg, int64_t step,
                                              const fopt_host_tensor *tensors, size_t count,
                                              const fopt_step_options *opts);
/*! fopt_adam_step_cpu_multi() : as fopt_adam_step_ref_multi(), fast. */
FOPT_API fopt_status fopt_adam_step_cpu_multi(const fopt_adam_config *cfg, int64_t step,
                                              const fopt_host_tensor *tensors, size_t count,
                                              const fopt_step_options *opts);
/*! fopt_rmsprop_step_ref_multi() : one RMSprop step of every tensor. step (>= 1) only feeds
 *  stochastic rounding. Otherwise as fopt_adam_step_ref_multi(). */
FOPT_API fopt_status fopt_rmsprop_step_ref_multi(const fopt_rmsprop_config *cfg, int64_t step,
                                                 const fopt_host_tensor *tensors, size_t count,
                                                 const fopt_step_options *opts);
/*! fopt_rmsprop_step_cpu_multi() : as fopt_rmsprop_step_ref_multi(), fast. */
FOPT_API fopt_status fopt_rmsprop_step_cpu_multi(const fopt_rmsprop_config *cfg, int64_t step,
                                                 const fopt_host_tensor *tensors, size_t count,
                                                 const fopt_step_options *opts);

/*! fopt_grad_sq_sum_ref_multi() : the sum of squares, in double, of the unscaled grads
 *  (grad / *grad_scale when grad_scale is not NULL) of every tensor, in the fixed order of
 *  docs/SEMANTICS.md (chunks counted from each entry's first element): over a shard's pieces, the
 *  rank's partial of a sharded step, 8 bytes to gather across ranks, sum in rank order and pass
 *  back as fopt_step_options.grad_sq_sum ("Sharded optimizer state" below). Non-finite exactly
 *  when some unscaled grad is, or (NaN) when *grad_scale is not a finite number > 0. Only
 *  param-independent fields are read (grad, numel, dtype). FOPT_ERROR_INVALID_VALUE for a NULL
 *  sq_sum, a grad, grad_scale or sq_sum not aligned to its element size, or a grad whose numel
 *  elements do not fit the address space (grads may share memory). */
FOPT_API fopt_status fopt_grad_sq_sum_ref_multi(const fopt_host_tensor *tensors, size_t count,
                                                const float *grad_scale, double *sq_sum);
/*! fopt_grad_sq_sum_cpu_multi() : as fopt_grad_sq_sum_ref_multi(), fast; the same bits. */
FOPT_API fopt_status fopt_grad_sq_sum_cpu_multi(const fopt_host_tensor *tensors, size_t count,
                                                const float *grad_scale, double *sq_sum);

/*! fopt_cpu_set_threads() : the number of threads the fast CPU path uses; 0 restores the default
 *  (the FOPT_NUM_THREADS environment variable if set, else every core). Negative values give
 *  FOPT_ERROR_INVALID_VALUE. */
FOPT_API fopt_status fopt_cpu_set_threads(int threads);

/*! fopt_cpu_threads() : the number of threads the fast CPU path will use for a large call. */
FOPT_API int fopt_cpu_threads(void);

/*! fopt_cpu_isa() : the instruction set the fast CPU path chose on this machine:
 *  "avx512", "avx2" or "scalar". */
FOPT_API const char *fopt_cpu_isa(void);

/*! fopt_convert() : converts n elements of src (in src_dtype) into dst (in dst_dtype) on the host,
 *  with the library's own rounding: fp32 to fp16/bf16 rounds to nearest-even (overflow to inf, NaN
 *  stays NaN), fp16/bf16 to fp32 is exact, fp16 <-> bf16 rounds once (through the exact fp32
 *  value). This is how the library reads and writes 16-bit params, so C callers use it to fill
 *  bf16/fp16 params from fp32 values and fp32 masters from 16-bit params (the upcast). Same dtype:
 *  a copy (dst == src allowed). Types FOPT_FLOAT32, FOPT_FLOAT16 and FOPT_BFLOAT16. Runs on the
 *  fast path's threads.
 *  @return FOPT_SUCCESS (n == 0 touches nothing, NULL allowed), or FOPT_ERROR_INVALID_VALUE with
 *  nothing written: an unknown dtype, a NULL buffer, a buffer not aligned to its element size, a
 *  buffer of more than 2^57 bytes or past the end of the address space (as for every buffer of the
 *  library), or dst and src overlapping between different dtypes. */
FOPT_API fopt_status fopt_convert(void *dst, fopt_dtype dst_dtype, const void *src, fopt_dtype src_dtype,
                                  size_t n);

/* ---------------------------------------------------------------------------------------------
 * GPU optimizer
 *
 * An optimizer owns its device state buffers (one cudaMalloc, zeroed at creation, freed by
 * fopt_destroy), its step counter and its hyper-parameters. The parameter and gradient tensors
 * are the caller's device memory, bound at creation: their addresses and sizes must stay valid
 * until fopt_destroy. The optimizer belongs to the CUDA device that was current at creation;
 * its calls switch to that device and back when another one is current.
 *
 * CUDA graphs. A capture records what is enqueued on a stream, and a graph's replay reads every
 * pointer recorded then: so no call enqueues anything that reads host memory at replay. The
 * calls that may be captured (fopt_step(), fopt_step_ex(), fopt_grad_sq_sum(); of a capturable
 * optimizer, for the lr and step count to follow the replays) enqueue kernel launches only, whose
 * arguments the graph keeps by value. fopt_rebind() is refused while its stream captures
 * (FOPT_ERROR_NOT_SUPPORTED). Every other call synchronises with the device or copies
 * synchronously (the setters, fopt_step_count(), checkpoints, fopt_state_copy(),
 * fopt_set_step_count(), creation, fopt_destroy()): none belongs inside a capture, where the CUDA
 * runtime refuses it (the call then fails with FOPT_ERROR_CUDA and changes nothing, and the runtime
 * may invalidate the capture).
 *
 * In a library built without CUDA (-DFOPT_CUDA=OFF) every function of this section and of the
 * shard optimizers below returns FOPT_ERROR_NOT_SUPPORTED, fopt_last_error() saying
 * "<function>: fusedopt was built without CUDA (-DFOPT_CUDA=OFF)", and changes nothing;
 * fopt_lr_device() gives NULL, fopt_step_count() -1, fopt_state_size() 0.
 * ------------------------------------------------------------------------------------------- */
typedef struct fopt_tensor {
    void *param;      /* device pointer, updated in place */
    const void *grad; /* device pointer (written only with fopt_step_options.zero_grads) */
    size_t numel;     /* elements; 0 is allowed (the tensor is skipped) */
    fopt_dtype dtype; /* of param and grad; FOPT_FLOAT32 when zero-initialised */
    /* 0.2 */
    uint32_t group;   /* parameter group, < FOPT_MAX_GROUPS; 0 by default */
} fopt_tensor;

/* Parameter groups per optimizer. Each group has its own lr and weight decay; every other
 * hyper-parameter is the config's. Still one launch per step, whatever the number of groups. */
#define FOPT_MAX_GROUPS 64

typedef struct fopt_optimizer fopt_optimizer;

/*! fopt_adam_create() : an Adam/AdamW optimizer over `count` tensors, state zeroed, step 0.
 *  Buffers (tensors with numel > 0): param and grad aligned to the dtype's element size, numel
 *  elements from each inside the address space (at most 2^57 bytes, as for the CPU _multi entry
 *  points), and no param overlapping another tensor's param or any grad (the same tensor twice,
 *  grad == param; on a shard, the parts in its range); grads may share memory, but then a step
 *  with zero_grads is refused.
 *  @return FOPT_SUCCESS and *out set; FOPT_ERROR_INVALID_VALUE for a NULL out/cfg/tensors, count
 *  0, a NULL, host, misaligned or overlapping pointer in a tensor with numel > 0 (the message
 *  names the tensors and slots), or a hyper-parameter out of range;
 *  FOPT_ERROR_NOT_SUPPORTED for an fp16 state_dtype or a precision flag a tensor's dtype cannot
 *  use (fp16 params with stochastic_rounding or master_remainder; see fopt_precision), and in a
 *  library built without CUDA;
 *  FOPT_ERROR_NO_DEVICE without a CUDA device (the message says "no CUDA driver or device" when
 *  there is no CUDA driver or it reports no device, and which versions differ when the driver is
 *  older than the runtime); FOPT_ERROR_OUT_OF_MEMORY or FOPT_ERROR_CUDA.
 *  On failure *out is untouched and nothing stays allocated. */
FOPT_API fopt_status fopt_adam_create(fopt_optimizer **out, const fopt_adam_config *cfg,
                                      const fopt_tensor *tensors, size_t count);

/*! fopt_rmsprop_create() : an RMSprop optimizer over `count` tensors; as fopt_adam_create(). */
FOPT_API fopt_status fopt_rmsprop_create(fopt_optimizer **out, const fopt_rmsprop_config *cfg,
                                         const fopt_tensor *tensors, size_t count);

/*! fopt_step() : one optimizer step over every bound tensor, enqueued on `stream` (0 is the
 *  default stream): one kernel launch whatever the tensor count. Asynchronous: the gradients must
 *  be ready in stream order, and the parameters are updated when the stream reaches the launch.
 *  The step counter advances only when the launch was enqueued. The counter stops at INT64_MAX:
 *  the step after is refused. When the host knows the count (an eager optimizer whose count was
 *  read back or never left the host) the call returns FOPT_ERROR_INVALID_VALUE and enqueues
 *  nothing; when it lives on the device (capturable, graph replays, steps with found_inf) the step
 *  is enqueued and updates nothing (params, states, grads and count stay) and the next
 *  fopt_step_count() reports it. */
FOPT_API fopt_status fopt_step(fopt_optimizer *opt, cudaStream_t stream);

/*! fopt_step_ex() : fopt_step() with step options (opts may be NULL: fopt_step()). The option
 *  pointers are device pointers, read and written in stream order, so no step synchronises with
 *  the host; each aligned to its size (FOPT_ERROR_INVALID_VALUE otherwise). zero_grads over bound
 *  grads that share memory gives FOPT_ERROR_INVALID_VALUE naming two of them. With clipping,
 *  grad_norm or found_inf, a statistics kernel reads every grad first (two launches; one
 *  otherwise). A step that finds an inf/NaN updates nothing and does not count: the
 *  step counter then lives on the device until fopt_step_count() or a checkpoint reads it back.
 *  Tensors of several dtypes take one launch per dtype: if a later launch fails to enqueue, the
 *  earlier ones were enqueued (their tensors are stepped) while the step counter does not
 *  advance; the call returns the failure. The outputs (*grad_norm, *found_inf) are written by the
 *  step's last launch: a call that fails writes neither. */
FOPT_API fopt_status fopt_step_ex(fopt_optimizer *opt, const fopt_step_options *opts,
                                  cudaStream_t stream);

/*! fopt_grad_sq_sum() : writes to the device double *sq_sum the sum of squares of the unscaled
 *  grads of every bound tensor (grad / *grad_scale when grad_scale, a device pointer, is not NULL;
 *  NaN when *grad_scale is not a finite number > 0),
 *  in the fixed order of docs/SEMANTICS.md; on a shard optimizer, of the shard's elements only:
 *  the rank's partial of a sharded step. Enqueued on stream. FOPT_ERROR_INVALID_VALUE for a NULL
 *  sq_sum, or a sq_sum (8 bytes) or grad_scale (4) not aligned to its size. */
FOPT_API fopt_status fopt_grad_sq_sum(fopt_optimizer *opt, const float *grad_scale,
                                      double *sq_sum, cudaStream_t stream);

/*! fopt_set_group_lr() : the lr of one parameter group (>= 0, finite) for the following steps.
 *  Capturable optimizers write it to the device array of fopt_lr_device() (synchronising). */
FOPT_API fopt_status fopt_set_group_lr(fopt_optimizer *opt, uint32_t group, double lr);

/*! fopt_set_group_weight_decay() : the weight decay of one parameter group (>= 0, finite). */
FOPT_API fopt_status fopt_set_group_weight_decay(fopt_optimizer *opt, uint32_t group,
                                                 double weight_decay);

/*! fopt_lr_device() : capturable optimizers: the device array of FOPT_MAX_GROUPS doubles holding
 *  each group's lr, which a captured schedule kernel may write between steps; else NULL. */
FOPT_API double *fopt_lr_device(fopt_optimizer *opt);

/*! fopt_rebind() : new param/grad addresses for the same list (same count, and per tensor the
 *  same numel, dtype and group), e.g. after a framework reallocated its gradients. Takes effect in
 *  stream order: steps enqueued before on `stream` use the old addresses, later ones the new.
 *  Anything but the same list, or new addresses that fopt_adam_create() would refuse (NULL, host,
 *  misaligned, overlapping), gives FOPT_ERROR_INVALID_VALUE and changes nothing. Not capturable:
 *  on a stream that is capturing a CUDA graph it gives FOPT_ERROR_NOT_SUPPORTED and changes
 *  nothing (the capture goes on). A graph reads the bound addresses from device memory at each
 *  replay, so rebinding outside the capture, before a replay, points the replay at new tensors. */
FOPT_API fopt_status fopt_rebind(fopt_optimizer *opt, const fopt_tensor *tensors, size_t count,
                                 cudaStream_t stream);

/*! fopt_set_lr() : the learning rate of every group for the following steps (for schedules). lr
 *  must be >= 0 and finite. Takes effect at the next fopt_step(); steps already enqueued keep
 *  theirs. Capturable optimizers write the device array (synchronising). */
FOPT_API fopt_status fopt_set_lr(fopt_optimizer *opt, double lr);

/*! fopt_step_count() : how many steps were taken (0 after creation); -1 for NULL. When steps
 *  with an inf/NaN check or capturable steps were enqueued, the count lives on the device and this
 *  call synchronises with it to read it (-1 if that fails). -1 also, with fopt_last_error() saying
 *  so, once the device refused a step because the count was INT64_MAX (see fopt_step()), until
 *  fopt_set_step_count() or fopt_state_load() sets a count (checkpoints save INT64_MAX). */
FOPT_API int64_t fopt_step_count(const fopt_optimizer *opt);

/*! fopt_state_size() : bytes needed by fopt_state_save() for this optimizer (a checkpoint:
 *  header, step counter, each group's lr and weight decay, the precision settings, every state
 *  buffer and the fp32 master copy or remainders); 0 for NULL. */
FOPT_API size_t fopt_state_size(const fopt_optimizer *opt);

/*! fopt_state_save() : copies the optimizer's state into host_buf (size >= fopt_state_size()).
 *  Synchronises with the device (waits for enqueued steps). */
FOPT_API fopt_status fopt_state_save(const fopt_optimizer *opt, void *host_buf, size_t size);

/*! fopt_state_load() : restores a state saved by fopt_state_save() from an optimizer of the same
 *  kind and variant (same buffers) over the same tensor sizes (and, for a shard, the same range of
 *  them: fopt_adam_create_shard()), by the same library version: the
 *  state buffers, the step counter and the learning rate, bit for bit. Anything else (a truncated
 *  or corrupted buffer, another optimizer, tensor list or version) gives
 *  FOPT_ERROR_INVALID_VALUE and changes nothing. A checkpoint's count may be anything from 0 to
 *  INT64_MAX; loading clears a refusal that fopt_step_count() reports. Synchronises with the
 *  device.
 *  Precision settings are compared where they act on the tensor list: state_dtype always;
 *  master_weights where the list has fp16/bf16 params and master_remainder where it has bf16 ones
 *  (both change the state bytes); stochastic_rounding and seed where it has bf16 params without
 *  master weights (the same bytes, but the steps after the load would not continue the saved
 *  run). A setting that acts on no tensor of the list (master_weights over fp32 params only, a
 *  seed without stochastic rounding) is not compared. A difference gives
 *  FOPT_ERROR_INVALID_VALUE with a message naming the setting and both values. */
FOPT_API fopt_status fopt_state_load(fopt_optimizer *opt, const void *host_buf, size_t size);

/* State buffers by name, for fopt_state_copy(). Each optimizer keeps up to three states per
 * tensor, in precision.state_dtype, plus the fp32 master copy (or 16-bit remainders) of fp16/bf16
 * params with master weights. */
typedef enum fopt_slot {
    FOPT_SLOT_EXP_AVG = 0,         /* Adam */
    FOPT_SLOT_EXP_AVG_SQ = 1,      /* Adam */
    FOPT_SLOT_MAX_EXP_AVG_SQ = 2,  /* Adam, amsgrad */
    FOPT_SLOT_SQUARE_AVG = 0,      /* RMSprop */
    FOPT_SLOT_MOMENTUM_BUFFER = 1, /* RMSprop, momentum > 0 */
    FOPT_SLOT_GRAD_AVG = 2,        /* RMSprop, centered */
    FOPT_SLOT_MASTER = 3           /* master weights: float, or uint16 with master_remainder */
} fopt_slot;

/*! fopt_state_copy() : copies tensor `tensor`'s slice of one state buffer between the optimizer
 *  and buf (host or device memory: numel elements of the slot's storage type). into_optimizer
 *  false reads it out, true writes it in. Synchronises with the device. For moving state between
 *  checkpoint formats (the Python package's state_dict). FOPT_ERROR_INVALID_VALUE for a tensor
 *  index out of range or a slot the optimizer does not keep for that tensor (the message names the
 *  slot), also for an empty tensor or one outside a shard's range: whether a slot is kept depends
 *  on the config and the tensor's dtype only (FOPT_SLOT_MASTER: fp16/bf16 params with
 *  master_weights), never on its size. On a shard optimizer `tensor` is the
 *  index in the whole list and buf holds the shard's part of that tensor: the elements
 *  [max(begin - s, 0), min(end - s, numel)) of it, s being the tensor's first element in the
 *  concatenation (no element where the range misses the tensor: then nothing is copied). */
FOPT_API fopt_status fopt_state_copy(fopt_optimizer *opt, size_t tensor, fopt_slot slot, void *buf,
                                     bool into_optimizer);

/*! fopt_set_step_count() : sets the step counter (0 to INT64_MAX; at INT64_MAX the next step is
 *  refused, see fopt_step()), e.g. after loading a framework's checkpoint with fopt_state_copy().
 *  Clears a refusal that fopt_step_count() reports. Synchronises with the device. */
FOPT_API fopt_status fopt_set_step_count(fopt_optimizer *opt, int64_t step);

/*! fopt_destroy() : frees the optimizer and its device state. NULL is fine. Synchronises with the
 *  device before freeing, so enqueued steps finish first. */
FOPT_API void fopt_destroy(fopt_optimizer *opt);

/* ---------------------------------------------------------------------------------------------
 * Sharded optimizer state (ZeRO-1), 0.2
 *
 * Data-parallel ranks each keep the optimizer state of one contiguous range of the parameters:
 * the elements of the tensor list concatenated in list order (tensor 0 first) are split into one
 * range per rank; each rank steps its range only, and the ranks exchange the rest (reduce-scatter
 * of the grads before the step, all-gather of the params after it). Every element keeps its
 * identity in the list (tensor index, element index), so a range steps exactly as the same
 * elements of one optimizer over the whole list would, stochastic rounding included.
 * docs/ZERO.md has the data flow, the bytes moved and the memory saved per rank.
 *
 * Ranges: begin <= end <= total (the list's element count), each a multiple of FOPT_SHARD_ALIGN
 * or equal to total. Over flat buffers every shard then starts on a 32-byte (fp32) or 16-byte
 * (16-bit) boundary and takes the vector path. An empty range is a valid shard.
 *
 * Global statistics (clipping, grad_norm, found_inf) over all ranks: each rank computes the
 * partial sum of squares of its range (fopt_grad_sq_sum() on its shard optimizer, or
 * fopt_grad_sq_sum_cpu_multi() over its pieces), the ranks all-gather the 8-byte partials, and
 * every rank sums them in rank order in double (s = 0; s += partial[0]; ... partial[world-1])
 * and passes &s as fopt_step_options.grad_sq_sum. An all-reduce would not do: MPI and NCCL fix no
 * order for its additions (it may vary with the algorithm, the rank and the run), so ranks could
 * clip by different coefficients. Guaranteed: a range's partial is the same bits on every path
 * (reference, fast CPU, GPU) and the rank-order sum the same bits on every rank. Not guaranteed:
 * that sum equals fopt_grad_sq_sum() over the whole list (the chunks and the tree differ, so the
 * last bits may): a one-process run that must match a sharded one computes the partials of the
 * same ranges and sums them the same way. A shard's statistics chunks start at each of its
 * entries' first element, on the GPU and in fopt_grad_sq_sum_*_multi over its pieces alike.
 * ------------------------------------------------------------------------------------------- */

/* Shard boundaries are multiples of this many elements of the concatenation (or its end). */
#define FOPT_SHARD_ALIGN 8
/* The largest world fopt_shard_bounds() splits for: far beyond any data-parallel run, and its
 * world + 1 bounds (8 MiB) and world * S stay far from any overflow in the caller's arithmetic. */
#define FOPT_SHARD_MAX_WORLD (1 << 20)

/*! fopt_shard_bounds() : splits `total` elements into `world` contiguous ranges, rank r holding
 *  [bounds[r], bounds[r + 1]) (bounds has world + 1 entries; bounds[0] = 0, bounds[world] =
 *  total). Every rank holds S = ceil(total / world) rounded up to a multiple of FOPT_SHARD_ALIGN
 *  elements, but the last non-empty range, which holds what is left; with world > total / 8 the
 *  last ranks hold empty ranges. S = bounds[1] - bounds[0] is also the per-rank count for
 *  collectives that need equal counts (NCCL's reduce-scatter and all-gather over buffers padded to
 *  world * S elements). @return FOPT_ERROR_INVALID_VALUE for world < 1 or above
 *  FOPT_SHARD_MAX_WORLD, a NULL bounds or a total above 2^62. */
FOPT_API fopt_status fopt_shard_bounds(uint64_t total, int world, uint64_t *bounds);

/*! fopt_shard_pieces() : the pieces of the range [begin, end) of the concatenation of `count`
 *  host tensors' elements, for the CPU _multi entry points: for each tensor the range overlaps, in
 *  list order, a copy of it with param and grad advanced to the first element of the overlap,
 *  numel the overlap's, piece = true, tensor = its index in `tensors` (or its own `tensor` if it
 *  is already a piece) and elem_offset = the overlap's first element in that tensor. master and
 *  state[] are set to NULL for the caller to point into the shard's own buffers: piece p starts at
 *  element pieces[0].numel + ... + pieces[p - 1].numel of a buffer holding the range's elements.
 *  `pieces` has room for `count` entries; *piece_count receives how many were written.
 *  @return FOPT_ERROR_INVALID_VALUE for NULL pointers, an unknown dtype, a NULL, misaligned or
 *  oversized (as for fopt_adam_step_ref_multi()) param or grad in a tensor the range overlaps, or a
 *  range out of bounds or misaligned (as for
 *  fopt_adam_create_shard()); then nothing is written. */
FOPT_API fopt_status fopt_shard_pieces(const fopt_host_tensor *tensors, size_t count,
                                       uint64_t begin, uint64_t end, fopt_host_tensor *pieces,
                                       size_t *piece_count);

/*! fopt_adam_create_shard() : an Adam/AdamW optimizer that keeps state for, and steps, only the
 *  elements [begin, end) of the concatenation of the `count` tensors' elements. `tensors` is the
 *  whole list with whole tensors (e.g. views into the flat buffers that reduce-scatter and
 *  all-gather work on in place); param and grad are read and written only inside the range.
 *  Stochastic rounding draws the random bits of the unsharded run (the tensor's index in the whole
 *  list, the element's index in its tensor). The range [0, total) gives the optimizer of
 *  fopt_adam_create(), checkpoints included. On a shard: fopt_grad_sq_sum() sums the range's
 *  grads (an empty range: 0); checkpoints record the range and load only into an optimizer over
 *  the same list and range; fopt_state_copy() copies the range's part of a tensor; fopt_rebind()
 *  takes the whole list. @return as fopt_adam_create(), and FOPT_ERROR_INVALID_VALUE for
 *  begin > end, end > total, or a begin or end that is neither a multiple of FOPT_SHARD_ALIGN nor
 *  total; on failure *out is untouched and nothing stays allocated. */
FOPT_API fopt_status fopt_adam_create_shard(fopt_optimizer **out, const fopt_adam_config *cfg,
                                            const fopt_tensor *tensors, size_t count,
                                            uint64_t begin, uint64_t end);

/*! fopt_rmsprop_create_shard() : an RMSprop optimizer over the range [begin, end) of a tensor
 *  list; as fopt_adam_create_shard(). */
FOPT_API fopt_status fopt_rmsprop_create_shard(fopt_optimizer **out, const fopt_rmsprop_config *cfg,
                                               const fopt_tensor *tensors, size_t count,
                                               uint64_t begin, uint64_t end);

#ifdef __cplusplus
}
#endif

#endif /* FUSEDOPT_H */
