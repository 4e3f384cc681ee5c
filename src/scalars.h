/* Per-step scalars of each optimizer, derived from the double hyper-parameters on the host and
 * rounded to float once (SEMANTICS: s(x)). Plain C structs of floats so that the CPU reference,
 * the fast CPU path and the CUDA kernels (passed by value as launch arguments) read the same
 * numbers. Not installed. */
#ifndef FUSEDOPT_SCALARS_H
#define FUSEDOPT_SCALARS_H

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
    int lerp_from_end;     /* lerp_w >= 0.5 */
    int l2;                /* weight decay added to the gradient */
    int decoupled;         /* p *= decay before the moments */
    int amsgrad;
    int maximize;
} fopt_adam_scalars;

typedef struct fopt_rmsprop_scalars {
    float alpha;           /* s(alpha) */
    float one_minus_alpha; /* s(1 - alpha): square_avg's weight and grad_avg's lerp weight */
    float lerp_1mw;        /* 1.0f - one_minus_alpha, for grad_avg when lerp_from_end */
    float eps;             /* s(eps) */
    float weight_decay;    /* s(wd), 0 when wd == 0 */
    float momentum;        /* s(momentum) */
    float neg_lr;          /* s(-lr) */
    int lerp_from_end;     /* one_minus_alpha >= 0.5 */
    int l2;                /* wd != 0 */
    int use_momentum;      /* momentum > 0 */
    int centered;
    int maximize;
} fopt_rmsprop_scalars;

#endif
