/* Helpers of the GPU optimizer suites of 0.2 (tests/test_gpu_precision.c, test_gpu_training.c,
 * test_faults.c, test_fuzz.c): typed tensor lists in device memory with a CPU-reference twin
 * stepped by fopt_*_step_ref_multi(), bit-for-bit comparisons through fopt_state_copy(), snapshots
 * of an optimizer (checkpoint bytes, step count, params and grads) and small device scalars for
 * step options.
 *
 * Device memory is allocated and copied only through the device layer (src/gpu/device.h), so the
 * same code runs on a GPU and on the emulated device. Every tensor's param and grad sit in their
 * own allocation between poisoned guard bands that no kernel may touch. */
#ifndef FUSEDOPT_TEST_GPU_UTIL_H
#define FUSEDOPT_TEST_GPU_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <criterion/criterion.h>

#include "device.h"
#include "fusedopt.h"
#include "internal.h"
#include "util.h"

/* TestSuite .init functions: SKIP without a device; SKIP unless the device is emulated (fault
 * injection, the emulated capacity). */
void gt_require_device(void);
void gt_require_emulation(void);

/* Device memory that the test asserts on. */
void *gt_dev_alloc(size_t bytes);
void gt_upload(void *dev, const void *host, size_t bytes);
void gt_download(void *host, const void *dev, size_t bytes);

size_t gt_dtype_bytes(fopt_dtype dt);
/* One element of a typed buffer as float, and a float stored rounded to nearest-even. */
float gt_get(const void *buf, fopt_dtype dt, size_t i);
void gt_put(void *buf, fopt_dtype dt, size_t i, float v);

/* An optimizer and its configuration (either kind). */
typedef struct gt_cfg {
    bool adam;
    fopt_adam_config a;
    fopt_rmsprop_config r;
} gt_cfg;

gt_cfg gt_adam(void);    /* Adam defaults with lr 1e-2 (moves bf16 params visibly) */
gt_cfg gt_adamw(void);   /* AdamW, wd 0.1, amsgrad */
gt_cfg gt_rmsprop(void); /* RMSprop, centered, momentum 0.9, wd 0.01 */
fopt_precision *gt_precision(gt_cfg *c);
bool *gt_capturable(gt_cfg *c);
double gt_lr(const gt_cfg *c);
double gt_wd(const gt_cfg *c);
void gt_set_lr_wd(gt_cfg *c, double lr, double wd);
unsigned gt_states(const gt_cfg *c); /* state slot bits */
fopt_status gt_create(const gt_cfg *c, const fopt_tensor *t, size_t count, fopt_optimizer **out);

/* One tensor of a problem: size, dtype, group, and the param/grad offset in elements past a
 * 256-byte boundary (odd offsets take the kernels' scalar path). */
typedef struct gt_spec {
    size_t numel;
    fopt_dtype dtype;
    uint32_t group;
    unsigned off;
} gt_spec;

#define GT_GUARD 16 /* guard elements before and after every device tensor */

typedef struct gt_problem {
    gt_cfg cfg;
    size_t count;
    gt_spec *spec;
    /* the reference: host params, grads, masters and states, stepped by _ref_multi */
    void **param, **grad, **master, **state[FOPT_MAX_STATES];
    fopt_host_tensor *host;
    double lr[FOPT_MAX_GROUPS], wd[FOPT_MAX_GROUPS]; /* the reference's group values */
    int64_t ref_step;                                /* the reference's step count */
    /* the device side */
    void **dev_param_base, **dev_grad_base; /* allocations (guard, tensor at its offset, guard) */
    fopt_tensor *dev;                       /* the bound list */
    fopt_optimizer *opt;                    /* NULL when made with create = false */
    test_rng rng;
} gt_problem;

/* Random params in [-1, 1) rounded to each dtype, uploaded; zero states; masters as the upcast of
 * the params (zeros for remainders). With `create`, the optimizer over p->dev (asserted). */
gt_problem *gt_problem_make(const gt_cfg *cfg, const gt_spec *spec, size_t count, uint64_t seed,
                            bool create);
void gt_problem_free(gt_problem *p);
/* Fresh grads (signed, magnitudes 10^U(-4, 1), some zeros) on the host, uploaded. */
void gt_new_grads(gt_problem *p);
/* Element i of tensor k's grad, on the host and on the device. */
void gt_set_grad(gt_problem *p, size_t k, size_t i, float v);
/* Re-uploads every host grad (after the reference zeroed them, say). */
void gt_upload_grads(gt_problem *p);
/* One reference step with host options (NULL: plain); per-group calls with each group's lr and
 * weight decay (global statistics passed as grad_sq_sum then). Advances p->ref_step unless the
 * step found an inf. Returns found_inf (0 without the check). */
int gt_ref_step(gt_problem *p, const fopt_step_options *host_opts);
/* Compares the device params (and guards) and opt's states and masters with the reference, bit
 * for bit, and the step count. */
void gt_check(const gt_problem *p, fopt_optimizer *opt, const char *where);
/* The reference's group values for every group (as fopt_set_lr does). */
void gt_ref_set_lr(gt_problem *p, double lr);

/* Moves every tensor to new guarded device allocations (param offsets `off`, NULL: unchanged),
 * uploading the reference's params and the host grads, and updates p->dev; the old allocations
 * are handed back (free them with gt_free_bases). For fopt_rebind(). */
void gt_relocate(gt_problem *p, const unsigned *off, void ***old_param, void ***old_grad);
void gt_free_bases(void **bases, size_t count);
/* Bytes of tensor k's guarded allocation. */
size_t gt_alloc_bytes(const gt_problem *p, size_t k);

/* The device scalars of fopt_step_options, in one allocation. */
typedef struct gt_dev_opts {
    void *block;
    float *grad_scale, *grad_norm;
    int32_t *found_inf;
    double *grad_sq_sum;
} gt_dev_opts;
void gt_dev_opts_make(gt_dev_opts *o);
void gt_dev_opts_free(gt_dev_opts *o);
void gt_dev_set_scale(const gt_dev_opts *o, float scale);
void gt_dev_set_sq_sum(const gt_dev_opts *o, double v);
float gt_dev_norm(const gt_dev_opts *o);
int32_t gt_dev_found_inf(const gt_dev_opts *o);
/* Poisons the outputs (grad_norm, found_inf) so that an unwritten output shows. */
void gt_dev_poison_outputs(const gt_dev_opts *o);

/* An optimizer's observable state: checkpoint bytes, step count, device params and grads. */
typedef struct gt_snapshot {
    unsigned char *ckpt;
    size_t size;
    int64_t step;
    unsigned char *params, *grads;
    size_t param_bytes, grad_bytes;
} gt_snapshot;
void gt_snapshot_take(gt_snapshot *s, const gt_problem *p, fopt_optimizer *opt);
void gt_snapshot_free(gt_snapshot *s);
/* Asserts two snapshots are identical, naming what differs. */
void gt_snapshot_expect_equal(const gt_snapshot *a, const gt_snapshot *b, const char *where);
/* The same for a snapshot of p (and opt) taken now against want. */
void gt_expect_snapshot(const gt_problem *p, fopt_optimizer *opt, const gt_snapshot *want, const char *where);

/* In the sanitizer build: fails the test when LeakSanitizer finds unreachable host memory now
 * (Criterion's workers exit without failing a test on LeakSanitizer's exit report). Elsewhere a
 * no-op. */
void gt_expect_no_host_leaks(const char *where);

/* A checkpoint of opt (malloc'ed). */
unsigned char *gt_save(fopt_optimizer *opt, size_t *size);
/* Loading ckpt into opt must fail with FOPT_ERROR_INVALID_VALUE, with a message that contains
 * `reason` (when not NULL), and leave its state and step count as they were. */
void gt_expect_load_rejected(fopt_optimizer *opt, const void *ckpt, size_t size, const char *reason,
                             const char *why);
/* p->opt replaced by a fresh optimizer of cfg over p's tensors whose device params are put back
 * to those of `params` (a snapshot of p) before it is created, then loads ckpt. */
void gt_restore(gt_problem *p, const gt_cfg *cfg, const gt_snapshot *params, const void *ckpt,
                size_t size);

#endif
