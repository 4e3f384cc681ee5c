/* One instruction set of cpu_instantiate.h (FOPT_TPL_* defined): the helpers the element loops
 * share, then FOPT_TPL_FILE's template part; then the FOPT_TPL_* names are released for the next
 * instruction set. Meant to be included more than once, so it has no include guard. */

/* The gradient at grad (FOPT_TPL_W lanes) as the update uses it: negated when maximize, then plus
 * weight_decay * p when l2 (L2 weight decay on the parameter p). The flags are constants at every
 * call site. */
FOPT_INLINE FOPT_TPL_TARGET FOPT_TPL_T FOPT_TPL_NAME(grad_in)(const float *grad, FOPT_TPL_T p, const int maximize,
                                                              const int l2, FOPT_TPL_T weight_decay)
{
    FOPT_TPL_T g = FOPT_TPL_V(ld)(grad);
    if (maximize)
        g = FOPT_TPL_V(neg)(g);
    if (l2)
        g = FOPT_TPL_V(add)(g, FOPT_TPL_V(mul)(weight_decay, p));
    return g;
}

#include FOPT_TPL_FILE
#undef FOPT_TPL_NAME
#undef FOPT_TPL_T
#undef FOPT_TPL_V
#undef FOPT_TPL_W
#undef FOPT_TPL_TARGET
