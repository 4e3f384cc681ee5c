/* The single-tensor references (fopt_adam_step_ref, fopt_rmsprop_step_ref) described alike, for
 * the checks their suites share (test_ref_common.c) and the buffers of their own tests
 * (test_adam_ref.c, test_rmsprop_ref.c): five buffers b[0] param, b[1] grad, b[2..4] the
 * optimizer's state slots (fopt_slot order). */
#ifndef FUSEDOPT_TEST_REF_CHECKS_H
#define FUSEDOPT_TEST_REF_CHECKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fusedopt.h"
#include "golden.h"

enum { REF_P, REF_G, REF_S0, REF_S1, REF_S2, REF_BUFS };

typedef struct ref_bufs {
    size_t n;
    float *b[REF_BUFS];
} ref_bufs;

/* n floats each: b[0] uniform in [-1, 1), b[1] 10^U(-3, 2) with random signs, the states 0. */
ref_bufs ref_bufs_make(size_t n, uint64_t seed);
void ref_bufs_free(ref_bufs *a);

#define REF_MAX_VARIANTS 16

typedef struct ref_optimizer {
    const char *name;            /* "adam", "rmsprop" */
    const char *names[REF_BUFS]; /* the buffers' names */
    unsigned non_negative;       /* bit k: b[k] is a second moment (non-negative) */
    unsigned moving;             /* bit k: state b[k] still changes with lr 0 */
    uint64_t reject_seed;        /* of ref_expect_rejected()'s random buffers */
    size_t cfg_size, lr_offset, maximize_offset;
    /* the reference's step over b, every pointer passed as given (NULL too); RMSprop's ignores
     * `step`. cfg may be NULL. */
    fopt_status (*step)(const void *cfg, int64_t step, size_t n, float *const *b);
    /* *cfg = configuration `which`: 0 the defaults, 1 weight decay wd (RMSprop: and momentum
     * 0.9), 2 weight decay wd with every buffer in use (Adam: AdamW with AMSGrad; RMSprop:
     * centered with momentum 0.5). */
    void (*config)(void *cfg, int which, double wd);
    /* PyTorch's golden vectors: the file, its optimizer (GOLDEN_ADAM, GOLDEN_RMSPROP), the state
     * slot of the squares, and the variants the file must cover: variants(c, v) sets v[k] when
     * case c is of variant variant_names[k]. */
    const char *golden_file;
    int golden_optimizer, golden_sq_slot;
    const char *const *variant_names;
    size_t n_variants;
    void (*variants)(const golden_case *c, bool v[REF_MAX_VARIANTS]);
} ref_optimizer;

extern const ref_optimizer ref_adam, ref_rmsprop;

/* o->step() over a's buffers. */
fopt_status ref_step(const ref_optimizer *o, const void *cfg, int64_t step, ref_bufs *a);

/* Random non-zero buffers (37 elements, second moments non-negative) and a call over n_call of
 * them with the pointers in null_mask (bit k: b[k]) replaced by NULL: must return
 * FOPT_ERROR_INVALID_VALUE with a message and leave every buffer byte-identical. */
void ref_expect_rejected(const ref_optimizer *o, const void *cfg, int64_t step, size_t n_call,
                         unsigned null_mask, const char *rule);

/* The shared checks (test_ref_common.c says what each checks). */
void ref_check_maximize_negates_grad(const ref_optimizer *o);
void ref_check_zero_lr_keeps_param(const ref_optimizer *o);
void ref_check_empty_call(const ref_optimizer *o);
void ref_check_null_buffers(const ref_optimizer *o);
void ref_check_null_config(const ref_optimizer *o);
void ref_check_bad_hyper_parameters(const ref_optimizer *o);
void ref_check_golden_cases(const ref_optimizer *o);
void ref_check_golden_coverage(const ref_optimizer *o);

#endif
