/* TEMPORARY stand-in for the fast CPU path (issue 5): forwards to the reference so that the
 * library links. To be replaced by src/adam_cpu.c, src/rmsprop_cpu.c and src/cpu_dispatch.c. */
#include "internal.h"

fopt_status fopt_adam_step_cpu(const fopt_adam_config *cfg, int64_t step, size_t n, float *param,
                               const float *grad, float *exp_avg, float *exp_avg_sq,
                               float *max_exp_avg_sq)
{
    return fopt_adam_step_ref(cfg, step, n, param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq);
}

fopt_status fopt_rmsprop_step_cpu(const fopt_rmsprop_config *cfg, size_t n, float *param,
                                  const float *grad, float *square_avg, float *momentum_buffer,
                                  float *grad_avg)
{
    return fopt_rmsprop_step_ref(cfg, n, param, grad, square_avg, momentum_buffer, grad_avg);
}

fopt_status fopt_cpu_set_threads(int threads)
{
    return threads < 0 ? fopt_fail(FOPT_ERROR_INVALID_VALUE, "threads must be >= 0") : FOPT_SUCCESS;
}

int fopt_cpu_threads(void) { return 1; }

const char *fopt_cpu_isa(void) { return "scalar"; }
