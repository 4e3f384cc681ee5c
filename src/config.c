/* Defaults, validation and per-step scalar derivation for every optimizer. One place decides
 * what a valid configuration is, so the reference, the fast CPU path and the GPU optimizer agree. */
#include <math.h>

#include "internal.h"

fopt_adam_config fopt_adam_config_default(void)
{
    fopt_adam_config cfg = {
        .lr = 1e-3,
        .beta1 = 0.9,
        .beta2 = 0.999,
        .eps = 1e-8,
        .weight_decay = 0.0,
        .decoupled_weight_decay = false,
        .amsgrad = false,
        .maximize = false,
    };
    return cfg;
}

fopt_rmsprop_config fopt_rmsprop_config_default(void)
{
    fopt_rmsprop_config cfg = {
        .lr = 1e-2,
        .alpha = 0.99,
        .eps = 1e-8,
        .weight_decay = 0.0,
        .momentum = 0.0,
        .centered = false,
        .maximize = false,
    };
    return cfg;
}

/* NaN fails every comparison, so each check is written to pass only for good values. */
static bool finite_nonneg(double x) { return isfinite(x) && x >= 0.0; }
static bool in_unit_halfopen(double x) { return x >= 0.0 && x < 1.0; }
static bool in_unit_closed(double x) { return x >= 0.0 && x <= 1.0; }

fopt_status fopt_adam_config_check(const fopt_adam_config *cfg)
{
    if (!cfg)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "adam config is NULL");
    if (!finite_nonneg(cfg->lr))
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "lr must be finite and >= 0, got %g", cfg->lr);
    if (!in_unit_halfopen(cfg->beta1))
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "beta1 must be in [0, 1), got %g", cfg->beta1);
    if (!in_unit_halfopen(cfg->beta2))
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "beta2 must be in [0, 1), got %g", cfg->beta2);
    if (!finite_nonneg(cfg->eps))
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "eps must be finite and >= 0, got %g", cfg->eps);
    if (!finite_nonneg(cfg->weight_decay))
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "weight_decay must be finite and >= 0, got %g",
                         cfg->weight_decay);
    return FOPT_SUCCESS;
}

fopt_status fopt_rmsprop_config_check(const fopt_rmsprop_config *cfg)
{
    if (!cfg)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "rmsprop config is NULL");
    if (!finite_nonneg(cfg->lr))
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "lr must be finite and >= 0, got %g", cfg->lr);
    if (!in_unit_closed(cfg->alpha))
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "alpha must be in [0, 1], got %g", cfg->alpha);
    if (!finite_nonneg(cfg->eps))
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "eps must be finite and >= 0, got %g", cfg->eps);
    if (!finite_nonneg(cfg->weight_decay))
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "weight_decay must be finite and >= 0, got %g",
                         cfg->weight_decay);
    if (!finite_nonneg(cfg->momentum))
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "momentum must be finite and >= 0, got %g",
                         cfg->momentum);
    return FOPT_SUCCESS;
}

fopt_status fopt_adam_args_check(const fopt_adam_config *cfg, int64_t step, size_t n,
                                 const float *param, const float *grad, const float *exp_avg,
                                 const float *exp_avg_sq, const float *max_exp_avg_sq)
{
    (void)n;
    fopt_status st = fopt_adam_config_check(cfg);
    if (st != FOPT_SUCCESS)
        return st;
    if (step < 1)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "step counts from 1, got %lld", (long long)step);
    if (!param || !grad || !exp_avg || !exp_avg_sq)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "param, grad, exp_avg and exp_avg_sq must not be NULL");
    if (cfg->amsgrad && !max_exp_avg_sq)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "amsgrad needs max_exp_avg_sq");
    return FOPT_SUCCESS;
}

fopt_status fopt_rmsprop_args_check(const fopt_rmsprop_config *cfg, size_t n, const float *param,
                                    const float *grad, const float *square_avg,
                                    const float *momentum_buffer, const float *grad_avg)
{
    (void)n;
    fopt_status st = fopt_rmsprop_config_check(cfg);
    if (st != FOPT_SUCCESS)
        return st;
    if (!param || !grad || !square_avg)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "param, grad and square_avg must not be NULL");
    if (cfg->momentum > 0.0 && !momentum_buffer)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "momentum > 0 needs momentum_buffer");
    if (cfg->centered && !grad_avg)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "centered needs grad_avg");
    return FOPT_SUCCESS;
}

fopt_adam_scalars fopt_adam_scalars_make(const fopt_adam_config *cfg, int64_t step)
{
    double t = (double)step;
    double bc1 = 1.0 - pow(cfg->beta1, t);
    double bc2 = 1.0 - pow(cfg->beta2, t);
    fopt_adam_scalars s;
    s.lerp_w = (float)(1.0 - cfg->beta1);
    s.lerp_1mw = 1.0f - s.lerp_w;
    s.lerp_from_end = s.lerp_w >= 0.5f;
    s.beta2 = (float)cfg->beta2;
    s.one_minus_beta2 = (float)(1.0 - cfg->beta2);
    s.eps = (float)cfg->eps;
    s.decoupled = cfg->decoupled_weight_decay;
    s.l2 = !cfg->decoupled_weight_decay && cfg->weight_decay != 0.0;
    s.weight_decay = s.l2 ? (float)cfg->weight_decay : 0.0f;
    s.decay = s.decoupled ? (float)(1.0 - cfg->lr * cfg->weight_decay) : 1.0f;
    s.neg_step_size = (float)(-(cfg->lr / bc1));
    s.bc2_sqrt = (float)sqrt(bc2);
    s.amsgrad = cfg->amsgrad;
    s.maximize = cfg->maximize;
    return s;
}

fopt_rmsprop_scalars fopt_rmsprop_scalars_make(const fopt_rmsprop_config *cfg)
{
    fopt_rmsprop_scalars s;
    s.alpha = (float)cfg->alpha;
    s.one_minus_alpha = (float)(1.0 - cfg->alpha);
    s.lerp_1mw = 1.0f - s.one_minus_alpha;
    s.lerp_from_end = s.one_minus_alpha >= 0.5f;
    s.eps = (float)cfg->eps;
    s.l2 = cfg->weight_decay != 0.0;
    s.weight_decay = (float)cfg->weight_decay;
    s.use_momentum = cfg->momentum > 0.0;
    s.momentum = (float)cfg->momentum;
    s.neg_lr = (float)(-cfg->lr);
    s.centered = cfg->centered;
    s.maximize = cfg->maximize;
    return s;
}
