/* Adam / AdamW CPU reference: the oracle for every other path. Scalar and single-threaded on
 * purpose; PyTorch's single-tensor algorithm (torch/optim/adam.py, adamw.py), step t from 1:
 *
 *   g  = maximize ? -grad : grad
 *   AdamW:          p = p * s(1 - lr*wd)
 *   Adam, wd != 0:  g = g + s(wd)*p
 *   m  = lerp(m, g, s(1 - beta1))
 *   v  = v*s(beta2) + s(1 - beta2)*g*g
 *   vv = amsgrad ? (vmax = max(vmax, v)) : v
 *   p  = p + s(-lr/(1 - beta1^t)) * m / (sqrt(vv)/s(sqrt(1 - beta2^t)) + s(eps))
 *
 * Each line is written in the order PyTorch evaluates it, so results match to the ulp where
 * PyTorch's own kernels do not contract or vectorise differently. */
#include <math.h>

#include "internal.h"

/* PyTorch's lerp for a scalar weight: self + w*(end - self) when w < 0.5, else
 * end - (end - self)*(1 - w). */
static float lerp_ref(float self, float end, float w, float one_minus_w, int from_end)
{
    return from_end ? end - (end - self) * one_minus_w : self + w * (end - self);
}

fopt_status fopt_adam_step_ref(const fopt_adam_config *cfg, int64_t step, size_t n, float *param,
                               const float *grad, float *exp_avg, float *exp_avg_sq,
                               float *max_exp_avg_sq)
{
    fopt_status st = fopt_adam_args_check(cfg, step, n, param, grad, exp_avg, exp_avg_sq,
                                          max_exp_avg_sq);
    if (st != FOPT_SUCCESS)
        return st;
    const fopt_adam_scalars s = fopt_adam_scalars_make(cfg, step);

    for (size_t i = 0; i < n; i++) {
        float p = param[i];
        float g = s.maximize ? -grad[i] : grad[i];
        if (s.decoupled)
            p = p * s.decay;
        else if (s.l2)
            g = g + s.weight_decay * p;

        float m = lerp_ref(exp_avg[i], g, s.lerp_w, s.lerp_1mw, s.lerp_from_end);
        float v = exp_avg_sq[i] * s.beta2 + s.one_minus_beta2 * g * g;
        float vv = v;
        if (s.amsgrad) {
            /* torch.maximum: NaN wins */
            float vmax = max_exp_avg_sq[i];
            vv = (isnan(vmax) || vmax > v) ? vmax : v;
            max_exp_avg_sq[i] = vv;
        }
        float denom = sqrtf(vv) / s.bc2_sqrt + s.eps;
        param[i] = p + s.neg_step_size * m / denom;
        exp_avg[i] = m;
        exp_avg_sq[i] = v;
    }
    return FOPT_SUCCESS;
}
