/* RMSprop CPU reference: the oracle for every other path. Scalar and single-threaded on purpose;
 * PyTorch's single-tensor algorithm (torch/optim/rmsprop.py) as docs/SEMANTICS.md states it. This
 * file holds the element update; src/ref/ref_multi.c walks the tensors, storage types and step
 * options around it. The centered variance is clamped at 0 where rounding makes it negative, the
 * one place fusedopt departs from PyTorch (docs/SEMANTICS.md says why). */
#include <math.h>

#include "internal.h"

void fopt_rmsprop_ref_element(const fopt_group_scalars *gs, float *param, float grad,
                              float st[FOPT_MAX_STATES])
{
    const fopt_rmsprop_scalars *s = &gs->rmsprop;
    float p = *param;
    float g = s->maximize ? -grad : grad;
    if (s->l2)
        g = g + s->weight_decay * p;

    float v = st[FOPT_SLOT_SQUARE_AVG] * s->alpha + s->one_minus_alpha * g * g;
    float avg;
    if (s->centered) {
        float ga = st[FOPT_SLOT_GRAD_AVG];
        ga = s->lerp_from_end ? g - (g - ga) * s->lerp_1mw : ga + s->one_minus_alpha * (g - ga);
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
