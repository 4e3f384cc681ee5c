/* RMSprop fast CPU path: the fp32 element loop, SIMD (AVX-512F, AVX2 or portable C, chosen at run
 * time), bit-identical to the reference's element update (src/ref/rmsprop_ref.c), including the
 * centered clamp (a variance rounded below zero becomes 0; NaN stays NaN). The multi-tensor
 * driver (src/cpu/cpu_multi.c) runs it on all cores.
 *
 * Same structure as adam_cpu.c: the element loop is written once below the "template" line and
 * this file includes itself once per instruction set (cpu_instantiate.h); every variant (maximize x L2 x centered x
 * momentum x lerp form) is its own function with constant flags, picked once per call. */
#ifndef FOPT_TPL_NAME /* ======================== common part ======================== */
#include <stddef.h>

#include "cpu_internal.h"

/* The parameters of fopt_cpu_kernel, named for RMSprop's state slots. */
#define RMS_PARAMS                                                                                 \
    const fopt_group_scalars *gs, size_t n, float *restrict param, const float *restrict grad,    \
        float *restrict square_avg, float *restrict momentum_buffer, float *restrict grad_avg
#define RMS_ARGS gs, n, param, grad, square_avg, momentum_buffer, grad_avg

/* Every variant, in table order: index (((maximize*2 + l2)*2 + centered)*2 + momentum)*2 + fe. */
#define RMS_VARIANTS(X) RMS_V_MX(X, 0) RMS_V_MX(X, 1)
#define RMS_V_MX(X, mx) RMS_V_L2(X, mx, 0) RMS_V_L2(X, mx, 1)
#define RMS_V_L2(X, mx, l2) RMS_V_CE(X, mx, l2, 0) RMS_V_CE(X, mx, l2, 1)
#define RMS_V_CE(X, mx, l2, ce) RMS_V_MO(X, mx, l2, ce, 0) RMS_V_MO(X, mx, l2, ce, 1)
#define RMS_V_MO(X, mx, l2, ce, mo) X(mx, l2, ce, mo, 0) X(mx, l2, ce, mo, 1)
#define RMS_NVARIANTS 32

#define RMS_DEFINE(mx, l2, ce, mo, fe)                                                             \
    static FOPT_TPL_TARGET void FOPT_TPL_NAME(rms_k_##mx##l2##ce##mo##fe)(RMS_PARAMS)             \
    {                                                                                              \
        FOPT_TPL_NAME(rms_body)(RMS_ARGS, mx, l2, ce, mo, fe);                                     \
    }
#define RMS_ENTRY(mx, l2, ce, mo, fe) FOPT_TPL_NAME(rms_k_##mx##l2##ce##mo##fe),

#define FOPT_TPL_FILE "rmsprop_cpu.c"
#include "cpu_instantiate.h"
#undef FOPT_TPL_FILE

static int rms_variant(const fopt_rmsprop_scalars *s)
{
    int idx = s->maximize ? 1 : 0;
    idx = idx * 2 + (s->l2 ? 1 : 0);
    idx = idx * 2 + (s->centered ? 1 : 0);
    idx = idx * 2 + (s->use_momentum ? 1 : 0);
    return idx * 2 + (s->lerp_from_end ? 1 : 0);
}

fopt_cpu_kernel fopt_rmsprop_cpu_kernel(int isa, const fopt_group_scalars *gs)
{
    return FOPT_CPU_PICK(isa, rms_kernels)[rms_variant(&gs->rmsprop)];
}

#else /* ======================== template: one instruction set (T, V: cpu_instantiate.h) ===== */

/* One thread's range, one variant (the int flags are constants at every call site). */
FOPT_INLINE FOPT_TPL_TARGET void FOPT_TPL_NAME(rms_body)(RMS_PARAMS, const int maximize,
                                                         const int l2, const int centered,
                                                         const int momentum, const int from_end)
{
    const fopt_rmsprop_scalars *s = &gs->rmsprop;
    const T alpha = V(set1)(s->alpha), one_minus_alpha = V(set1)(s->one_minus_alpha);
    const T lerp_1mw = V(set1)(s->lerp_1mw), eps = V(set1)(s->eps);
    const T weight_decay = V(set1)(s->weight_decay), mom = V(set1)(s->momentum);
    const T neg_lr = V(set1)(s->neg_lr);

    size_t i = 0;
    for (; i + FOPT_TPL_W <= n; i += FOPT_TPL_W) {
        T p = V(ld)(param + i);
        T g = FOPT_TPL_NAME(grad_in)(grad + i, p, maximize, l2, weight_decay);

        T v = V(add)(V(mul)(V(ld)(square_avg + i), alpha), V(mul)(V(mul)(one_minus_alpha, g), g));
        T avg;
        if (centered) {
            T ga = V(ld)(grad_avg + i);
            ga = from_end ? V(sub)(g, V(mul)(V(sub)(g, ga), lerp_1mw))
                          : V(add)(ga, V(mul)(one_minus_alpha, V(sub)(g, ga)));
            T var = V(sub)(v, V(mul)(ga, ga));
            avg = V(sqrt)(V(clamp0)(var));
            V(st)(grad_avg + i, ga);
        } else {
            avg = V(sqrt)(v);
        }
        avg = V(add)(avg, eps);

        if (momentum) {
            T buf = V(add)(V(mul)(V(ld)(momentum_buffer + i), mom), V(div)(g, avg));
            V(st)(momentum_buffer + i, buf);
            V(st)(param + i, V(add)(p, V(mul)(neg_lr, buf)));
        } else {
            V(st)(param + i, V(add)(p, V(div)(V(mul)(neg_lr, g), avg)));
        }
        V(st)(square_avg + i, v);
    }
#if FOPT_TPL_W > 1
    if (i < n)
        rms_body_scalar(gs, n - i, param + i, grad + i, square_avg + i,
                        momentum ? momentum_buffer + i : NULL, centered ? grad_avg + i : NULL,
                        maximize, l2, centered, momentum, from_end);
#else
    (void)i;
#endif
}

RMS_VARIANTS(RMS_DEFINE)

static const fopt_cpu_kernel FOPT_TPL_NAME(rms_kernels)[RMS_NVARIANTS] = {RMS_VARIANTS(RMS_ENTRY)};
#endif
