/* Per-step scalars of each optimizer, derived from the double hyper-parameters and rounded to
 * float once (docs/SEMANTICS.md: s(x)). The derivation is written once, here, as plain double
 * arithmetic (+ - * / sqrt, no libm pow: beta^t by repeated squaring), so the host (CPU paths,
 * eager GPU steps) and the device (capturable steps, steps that may be skipped on an inf) derive
 * the same bits. The element math of every path reads these structs. Not installed. */
#ifndef FUSEDOPT_SCALARS_H
#define FUSEDOPT_SCALARS_H

#include <math.h>
#include <stdint.h>

#include "dtype.h"
#include "fusedopt.h"

/* PyTorch's lerp(a, b, w) = a + w*(b - a) for w < 0.5, else b - (b - a)*(1 - w), with 1 - w in
 * float. The scalar structs carry w, 1 - w and which form to use. */
typedef struct fopt_adam_scalars {
    float lerp_w;          /* s(1 - beta1) */
    float lerp_1mw;        /* 1.0f - lerp_w, used when lerp_from_end */
    float beta2;           /* s(beta2) */
    float one_minus_beta2; /* s(1 - beta2) */
    float eps;             /* s(eps) */
    float weight_decay;    /* s(wd) for L2 (Adam); 0 when decoupled or wd == 0 */
    float decay;           /* s(1 - lr*wd) for AdamW; 1 otherwise */
    float neg_step_size;   /* s(-lr / (1 - beta1^t)) */
    float bc2_sqrt;        /* s(sqrt(1 - beta2^t)) */
    int32_t lerp_from_end; /* lerp_w >= 0.5 */
    int32_t l2;            /* weight decay added to the gradient */
    int32_t decoupled;     /* p *= decay before the moments */
    int32_t amsgrad;
    int32_t maximize;
} fopt_adam_scalars;

typedef struct fopt_rmsprop_scalars {
    float alpha;           /* s(alpha) */
    float one_minus_alpha; /* s(1 - alpha): square_avg's weight and grad_avg's lerp weight */
    float lerp_1mw;        /* 1.0f - one_minus_alpha, for grad_avg when lerp_from_end */
    float eps;             /* s(eps) */
    float weight_decay;    /* s(wd), 0 when wd == 0 */
    float momentum;        /* s(momentum) */
    float neg_lr;          /* s(-lr) */
    int32_t lerp_from_end; /* one_minus_alpha >= 0.5 */
    int32_t l2;            /* wd != 0 */
    int32_t use_momentum;  /* momentum > 0 */
    int32_t centered;
    int32_t maximize;
} fopt_rmsprop_scalars;

/* One parameter group's scalars, whichever the optimizer. */
typedef union fopt_group_scalars {
    fopt_adam_scalars adam;
    fopt_rmsprop_scalars rmsprop;
} fopt_group_scalars;

/* What one step of a whole optimizer reads: every group's scalars and the inputs of stochastic
 * rounding. Passed by value in the launch of an eager GPU step; in device memory, written on the
 * device, for capturable steps and steps that may be skipped. */
typedef struct fopt_scalars {
    fopt_group_scalars group[FOPT_MAX_GROUPS];
    int64_t step;       /* this step's number, counting from 1 */
    uint64_t seed;      /* precision.seed */
    int32_t stochastic; /* stochastic rounding of bf16 params without master weights */
    int32_t pad_;
} fopt_scalars;

/* b^t for t >= 0 by repeated squaring: the same double operations on every machine. */
FOPT_HDI double fopt_powi(double b, int64_t t)
{
    double r = 1.0;
    while (t > 0) {
        if (t & 1)
            r = r * b;
        b = b * b;
        t >>= 1;
    }
    return r;
}

/* The scalars of an Adam step `step` (>= 1) with this lr and weight decay (the group's) and the
 * config's other hyper-parameters. */
FOPT_HDI fopt_adam_scalars fopt_adam_scalars_make(const fopt_adam_config *cfg, double lr, double wd,
                                                  int64_t step)
{
    double bc1 = 1.0 - fopt_powi(cfg->beta1, step);
    double bc2 = 1.0 - fopt_powi(cfg->beta2, step);
    fopt_adam_scalars s;
    s.lerp_w = (float)(1.0 - cfg->beta1);
    s.lerp_1mw = 1.0f - s.lerp_w;
    s.lerp_from_end = s.lerp_w >= 0.5f;
    s.beta2 = (float)cfg->beta2;
    s.one_minus_beta2 = (float)(1.0 - cfg->beta2);
    s.eps = (float)cfg->eps;
    s.decoupled = cfg->decoupled_weight_decay;
    s.l2 = !cfg->decoupled_weight_decay && wd != 0.0;
    s.weight_decay = s.l2 ? (float)wd : 0.0f;
    s.decay = s.decoupled ? (float)(1.0 - lr * wd) : 1.0f;
    s.neg_step_size = (float)(-(lr / bc1));
    s.bc2_sqrt = (float)sqrt(bc2);
    s.amsgrad = cfg->amsgrad;
    s.maximize = cfg->maximize;
    return s;
}

/* The scalars of an RMSprop step with this lr and weight decay (the group's). */
FOPT_HDI fopt_rmsprop_scalars fopt_rmsprop_scalars_make(const fopt_rmsprop_config *cfg, double lr,
                                                        double wd)
{
    fopt_rmsprop_scalars s;
    s.alpha = (float)cfg->alpha;
    s.one_minus_alpha = (float)(1.0 - cfg->alpha);
    s.lerp_1mw = 1.0f - s.one_minus_alpha;
    s.lerp_from_end = s.one_minus_alpha >= 0.5f;
    s.eps = (float)cfg->eps;
    s.l2 = wd != 0.0;
    s.weight_decay = (float)wd;
    s.use_momentum = cfg->momentum > 0.0;
    s.momentum = (float)cfg->momentum;
    s.neg_lr = (float)(-lr);
    s.centered = cfg->centered;
    s.maximize = cfg->maximize;
    return s;
}

/* Which optimizer a generic piece of code serves. */
typedef enum fopt_kind { FOPT_KIND_ADAM = 1, FOPT_KIND_RMSPROP = 2 } fopt_kind;

/* Either config, tagged by a fopt_kind kept beside it. */
typedef union fopt_any_config {
    fopt_adam_config adam;
    fopt_rmsprop_config rmsprop;
} fopt_any_config;

/* The scalars of one group of either optimizer. */
FOPT_HDI fopt_group_scalars fopt_group_scalars_make(fopt_kind kind, const fopt_any_config *cfg,
                                                    double lr, double wd, int64_t step)
{
    fopt_group_scalars g;
    memset(&g, 0, sizeof g);
    if (kind == FOPT_KIND_ADAM)
        g.adam = fopt_adam_scalars_make(&cfg->adam, lr, wd, step);
    else
        g.rmsprop = fopt_rmsprop_scalars_make(&cfg->rmsprop, lr, wd);
    return g;
}

/* The step-wide part of fopt_scalars: step number and the inputs of stochastic rounding (the
 * groups' parts come from fopt_group_scalars_make). */
FOPT_HDI void fopt_scalars_head_make(fopt_kind kind, const fopt_any_config *cfg, int64_t step,
                                     fopt_scalars *out)
{
    const fopt_precision *pr = kind == FOPT_KIND_ADAM ? &cfg->adam.precision : &cfg->rmsprop.precision;
    out->step = step;
    out->seed = pr->seed;
    out->stochastic = pr->stochastic_rounding;
    out->pad_ = 0;
}

#endif
