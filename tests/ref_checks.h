/* Checks shared by the single-tensor reference suites (test_adam_ref.c, test_rmsprop_ref.c): the
 * five buffers of fopt_adam_step_ref() / fopt_rmsprop_step_ref() (param, grad, three state slots)
 * and the invalid-input checks (status, message and every buffer byte-identical). */
#ifndef FUSEDOPT_TEST_REF_CHECKS_H
#define FUSEDOPT_TEST_REF_CHECKS_H

#include <stddef.h>
#include <stdint.h>

#include "fusedopt.h"

/* One optimizer's reference step over b[0] param, b[1] grad and b[2..4] its state slots, every
 * pointer passed as given (NULL too); RMSprop's ignores `step`. cfg may be NULL. */
typedef fopt_status (*ref_step_fn)(const void *cfg, int64_t step, size_t n, float *const *b);

typedef struct ref_optimizer {
    const char *names[5];  /* the five buffers' names */
    unsigned non_negative; /* bit k: b[k] is a second moment (non-negative) */
    uint64_t reject_seed;  /* of ref_expect_rejected()'s random buffers */
    ref_step_fn step;
} ref_optimizer;

/* Five buffers of n floats: b[0] param uniform in [-1, 1), b[1] grad 10^U(-3, 2), the states 0. */
void ref_bufs_make(size_t n, uint64_t seed, float *b[5]);
void ref_bufs_free(float *const b[5]);

/* Random non-zero buffers (37 elements, second moments non-negative) and a call over n_call of
 * them with the pointers in null_mask (bit k: b[k]) replaced by NULL: must return
 * FOPT_ERROR_INVALID_VALUE with a message and leave every buffer byte-identical. */
void ref_expect_rejected(const ref_optimizer *o, const void *cfg, int64_t step, size_t n_call,
                         unsigned null_mask, const char *rule);

/* The double field at `offset` of each of nbases configs (cfg_size bytes each) set
 * to each bad value: every call (step 1, 37 elements, no NULL) rejected as above. */
void ref_expect_field_rejected(const ref_optimizer *o, const void *bases, size_t nbases,
                               size_t cfg_size, size_t offset, const char *field,
                               const double *bad, size_t nbad);

#endif
