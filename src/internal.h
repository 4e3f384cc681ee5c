/* Internal declarations shared by the CPU reference, the fast CPU path and the GPU optimizer.
 * Not installed. */
#ifndef FUSEDOPT_INTERNAL_H
#define FUSEDOPT_INTERNAL_H

#include "fusedopt.h"
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

/* Hyper-parameter checks, shared by every entry point. FOPT_SUCCESS or FOPT_ERROR_INVALID_VALUE
 * with a message naming the offending field. */
fopt_status fopt_adam_config_check(const fopt_adam_config *cfg);
fopt_status fopt_rmsprop_config_check(const fopt_rmsprop_config *cfg);

/* Full argument validation of one step call (config, step, pointers), as the _ref and _cpu entry
 * points need it. */
fopt_status fopt_adam_args_check(const fopt_adam_config *cfg, int64_t step, size_t n,
                                 const float *param, const float *grad, const float *exp_avg,
                                 const float *exp_avg_sq, const float *max_exp_avg_sq);
fopt_status fopt_rmsprop_args_check(const fopt_rmsprop_config *cfg, size_t n, const float *param,
                                    const float *grad, const float *square_avg,
                                    const float *momentum_buffer, const float *grad_avg);

/* The per-step float scalars, derived in double and rounded once (see scalars.h). The config
 * must have passed the check. */
fopt_adam_scalars fopt_adam_scalars_make(const fopt_adam_config *cfg, int64_t step);
fopt_rmsprop_scalars fopt_rmsprop_scalars_make(const fopt_rmsprop_config *cfg);

#ifdef __cplusplus
}
#endif

#endif
