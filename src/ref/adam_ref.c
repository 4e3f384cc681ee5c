/* Adam / AdamW CPU reference: the oracle for every other path. Scalar and single-threaded on
 * purpose; PyTorch's single-tensor algorithm (torch/optim/adam.py, adamw.py), step t from 1, as
 * docs/SEMANTICS.md states it. This file holds the element update, written in the order PyTorch
 * evaluates it; src/ref/ref_multi.c walks the tensors, storage types and step options around it. */
#include <math.h>

#include "internal.h"
#include "ref_element.h"

void fopt_adam_ref_element(const fopt_group_scalars *gs, float *param, float grad,
                           float st[FOPT_MAX_STATES])
{
    const fopt_adam_scalars *s = &gs->adam;
    float p = *param;
    float g = fopt_ref_grad(grad, p, s->maximize, s->l2 && !s->decoupled, s->weight_decay);
    if (s->decoupled)
        p = p * s->decay;

    float m = fopt_ref_lerp(st[FOPT_SLOT_EXP_AVG], g, s->lerp_w, s->lerp_1mw, s->lerp_from_end);
    float v = st[FOPT_SLOT_EXP_AVG_SQ] * s->beta2 + s->one_minus_beta2 * g * g;
    float vv = v;
    if (s->amsgrad) {
        /* torch.maximum: NaN wins */
        float vmax = st[FOPT_SLOT_MAX_EXP_AVG_SQ];
        vv = (isnan(vmax) || vmax > v) ? vmax : v;
        st[FOPT_SLOT_MAX_EXP_AVG_SQ] = vv;
    }
    float denom = sqrtf(vv) / s->bc2_sqrt + s->eps;
    *param = p + s->neg_step_size * m / denom;
    st[FOPT_SLOT_EXP_AVG] = m;
    st[FOPT_SLOT_EXP_AVG_SQ] = v;
}
