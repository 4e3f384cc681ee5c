/* What the reference's element updates (adam_ref.c, rmsprop_ref.c) share, as PyTorch writes it. */
#ifndef FUSEDOPT_REF_ELEMENT_H
#define FUSEDOPT_REF_ELEMENT_H

/* The gradient as the update uses it: negated when maximize, then plus weight_decay * p when l2
 * (L2 weight decay on the parameter p). */
static inline float fopt_ref_grad(float grad, float p, int maximize, int l2, float weight_decay)
{
    float g = maximize ? -grad : grad;
    return l2 ? g + weight_decay * p : g;
}

/* PyTorch's lerp for a scalar weight: self + w*(end - self) when w < 0.5, else
 * end - (end - self)*(1 - w). */
static inline float fopt_ref_lerp(float self, float end, float w, float one_minus_w, int from_end)
{
    return from_end ? end - (end - self) * one_minus_w : self + w * (end - self);
}

#endif
