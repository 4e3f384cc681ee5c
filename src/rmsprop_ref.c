/* RMSprop CPU reference: the oracle for every other path. Scalar and single-threaded on purpose;
 * PyTorch's single-tensor algorithm (torch/optim/rmsprop.py):
 *
 *   g  = maximize ? -grad : grad
 *   wd != 0:   g = g + s(wd)*p
 *   v  = v*s(alpha) + s(1 - alpha)*g*g
 *   centered:  ga = lerp(ga, g, s(1 - alpha));  avg = sqrt(max(v - ga*ga, 0))
 *   else:      avg = sqrt(v)
 *   avg = avg + s(eps)
 *   momentum:  buf = buf*s(momentum) + g/avg;  p = p + s(-lr)*buf
 *   else:      p = p + s(-lr)*g/avg
 *
 * Centered: v - ga*ga is a variance and never negative in exact arithmetic, but rounding can make
 * it a few ulp below zero when the gradient barely varies. PyTorch then takes sqrt of a negative
 * number and the parameter becomes NaN; fusedopt clamps the variance at 0 instead (a NaN variance
 * from NaN inputs stays NaN). That is the only place fusedopt departs from PyTorch. */
#include <math.h>

#include "internal.h"

fopt_status fopt_rmsprop_step_ref(const fopt_rmsprop_config *cfg, size_t n, float *param,
                                  const float *grad, float *square_avg, float *momentum_buffer,
                                  float *grad_avg)
{
    fopt_status st = fopt_rmsprop_args_check(cfg, n, param, grad, square_avg, momentum_buffer,
                                             grad_avg);
    if (st != FOPT_SUCCESS)
        return st;
    const fopt_rmsprop_scalars s = fopt_rmsprop_scalars_make(cfg);

    for (size_t i = 0; i < n; i++) {
        float p = param[i];
        float g = s.maximize ? -grad[i] : grad[i];
        if (s.l2)
            g = g + s.weight_decay * p;

        float v = square_avg[i] * s.alpha + s.one_minus_alpha * g * g;
        float avg;
        if (s.centered) {
            float ga = grad_avg[i];
            ga = s.lerp_from_end ? g - (g - ga) * s.lerp_1mw : ga + s.one_minus_alpha * (g - ga);
            float var = v - ga * ga;
            avg = sqrtf(var < 0.0f ? 0.0f : var);
            grad_avg[i] = ga;
        } else {
            avg = sqrtf(v);
        }
        avg = avg + s.eps;

        if (s.use_momentum) {
            float buf = momentum_buffer[i] * s.momentum + g / avg;
            momentum_buffer[i] = buf;
            param[i] = p + s.neg_lr * buf;
        } else {
            param[i] = p + s.neg_lr * g / avg;
        }
        square_avg[i] = v;
    }
    return FOPT_SUCCESS;
}
