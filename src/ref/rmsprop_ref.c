/* RMSprop CPU reference: the oracle for every other path. Scalar and single-threaded on purpose;
 * PyTorch's single-tensor algorithm (torch/optim/rmsprop.py) as docs/SEMANTICS.md states it. This
 * file holds the element update; src/ref/ref_multi.c walks the tensors, storage types and step
 * options around it. The centered variance is clamped at 0 where rounding makes it negative, the
 * one place fusedopt departs from PyTorch (docs/SEMANTICS.md says why). */
#include <math.h>

#include "internal.h"
#include "ref_element.h"

void fopt_rmsprop_ref_element(const fopt_group_scalars *gs, float *param, float grad,
                              float st[FOPT_MAX_STATES])
{
    const fopt_rmsprop_scalars *s = &gs->rmsprop;
    float p = *param;
    float g = fopt_ref_grad(grad, p, s->maximize, s->l2, s->weight_decay);

    float v = st[FOPT_SLOT_SQUARE_AVG] * s->alpha + s->one_minus_alpha * g * g;
    float avg;
    if (s->centered) {
        float ga = st[FOPT_SLOT_GRAD_AVG];
        ga = fopt_ref_lerp(ga, g, s->one_minus_alpha, s->lerp_1mw, s->lerp_from_end);
        float var = v - ga * ga;
        avg = sqrtf(var < 0.0f ? 0.0f : var);
        st[FOPT_SLOT_GRAD_AVG] = ga;
    } else {
        avg = sqrtf(v);
    }
    avg = avg + s->eps;

    if (s->use_momentum) {
        float buf = st[FOPT_SLOT_MOMENTUM_BUFFER] * s->momentum + g / avg;
        st[FOPT_SLOT_MOMENTUM_BUFFER] = buf;
        *param = p + s->neg_lr * buf;
    } else {
        *param = p + s->neg_lr * g / avg;
    }
    st[FOPT_SLOT_SQUARE_AVG] = v;
}
