/* Adam / AdamW fast CPU path: the fp32 element loop, SIMD (AVX-512F, AVX2 or portable C, chosen
 * at run time), bit-identical to the reference's element update (src/ref/adam_ref.c). The
 * multi-tensor driver (src/cpu/cpu_multi.c) runs it on all cores over fp32 arrays, or over fp32
 * blocks converted from other storage types.
 *
 * The element loop is written once, below the "template" line, and this file includes itself
 * once per instruction set through cpu_instantiate.h, with FOPT_TPL_* naming the vector type, its
 * ops (cpu_internal.h), its width and the target attribute. Within an instruction set every variant (maximize x
 * {no decay, L2, decoupled} x AMSGrad x lerp form) is its own function with the flags as
 * constants, so no variant pays a branch or an op for a feature it does not use; the entry point
 * picks one function per call. Each operation is the reference's, in the reference's order, with
 * no FMA (the project compiles with -ffp-contract=off and the vector ops are separate mul/add). */
#ifndef FOPT_TPL_NAME /* ======================== common part ======================== */
#include <stddef.h>

#include "cpu_internal.h"

/* The parameters of fopt_cpu_kernel, named for Adam's state slots. */
#define ADAM_PARAMS                                                                                \
    const fopt_group_scalars *gs, size_t n, float *restrict param, const float *restrict grad,    \
        float *restrict exp_avg, float *restrict exp_avg_sq, float *restrict max_exp_avg_sq
#define ADAM_ARGS gs, n, param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq

/* Weight-decay modes. */
enum { ADAM_WD_NONE = 0, ADAM_WD_L2 = 1, ADAM_WD_DECOUPLED = 2 };

/* Every variant, in table order: index ((maximize*3 + wd)*2 + amsgrad)*2 + lerp_from_end. */
#define ADAM_VARIANTS(X) ADAM_V_MX(X, 0) ADAM_V_MX(X, 1)
#define ADAM_V_MX(X, mx) ADAM_V_WD(X, mx, 0) ADAM_V_WD(X, mx, 1) ADAM_V_WD(X, mx, 2)
#define ADAM_V_WD(X, mx, wd) ADAM_V_AM(X, mx, wd, 0) ADAM_V_AM(X, mx, wd, 1)
#define ADAM_V_AM(X, mx, wd, am) X(mx, wd, am, 0) X(mx, wd, am, 1)
#define ADAM_NVARIANTS 24

#define ADAM_DEFINE(mx, wd, am, fe)                                                                \
    static FOPT_TPL_TARGET void FOPT_TPL_NAME(adam_k_##mx##wd##am##fe)(ADAM_PARAMS)               \
    {                                                                                              \
        FOPT_TPL_NAME(adam_body)(ADAM_ARGS, mx, wd, am, fe);                                       \
    }
#define ADAM_ENTRY(mx, wd, am, fe) FOPT_TPL_NAME(adam_k_##mx##wd##am##fe),

#define FOPT_TPL_FILE "adam_cpu.c"
#include "cpu_instantiate.h"
#undef FOPT_TPL_FILE

static int adam_variant(const fopt_adam_scalars *s)
{
    int wd = s->decoupled ? ADAM_WD_DECOUPLED : s->l2 ? ADAM_WD_L2 : ADAM_WD_NONE;
    return (((s->maximize ? 1 : 0) * 3 + wd) * 2 + (s->amsgrad ? 1 : 0)) * 2 + (s->lerp_from_end ? 1 : 0);
}

fopt_cpu_kernel fopt_adam_cpu_kernel(int isa, const fopt_group_scalars *gs)
{
    return FOPT_CPU_PICK(isa, adam_kernels)[adam_variant(&gs->adam)];
}

#else /* ======================== template: one instruction set (T, V: cpu_instantiate.h) ===== */

/* One thread's range, one variant (the int flags are constants at every call site). */
FOPT_INLINE FOPT_TPL_TARGET void FOPT_TPL_NAME(adam_body)(ADAM_PARAMS, const int maximize,
                                                          const int wd_mode, const int amsgrad,
                                                          const int from_end)
{
    const fopt_adam_scalars *s = &gs->adam;
    const T lerp_w = V(set1)(s->lerp_w), lerp_1mw = V(set1)(s->lerp_1mw);
    const T beta2 = V(set1)(s->beta2), one_minus_beta2 = V(set1)(s->one_minus_beta2);
    const T eps = V(set1)(s->eps), weight_decay = V(set1)(s->weight_decay);
    const T decay = V(set1)(s->decay), neg_step_size = V(set1)(s->neg_step_size);
    const T bc2_sqrt = V(set1)(s->bc2_sqrt);

    size_t i = 0;
    for (; i + FOPT_TPL_W <= n; i += FOPT_TPL_W) {
        T p = V(ld)(param + i);
        T g = FOPT_TPL_NAME(grad_in)(grad + i, p, maximize, wd_mode == ADAM_WD_L2, weight_decay);
        if (wd_mode == ADAM_WD_DECOUPLED)
            p = V(mul)(p, decay);

        T m = V(ld)(exp_avg + i);
        m = from_end ? V(sub)(g, V(mul)(V(sub)(g, m), lerp_1mw))
                     : V(add)(m, V(mul)(lerp_w, V(sub)(g, m)));
        T v = V(add)(V(mul)(V(ld)(exp_avg_sq + i), beta2), V(mul)(V(mul)(one_minus_beta2, g), g));
        T vv = v;
        if (amsgrad) {
            vv = V(maxnan)(V(ld)(max_exp_avg_sq + i), v);
            V(st)(max_exp_avg_sq + i, vv);
        }
        T denom = V(add)(V(div)(V(sqrt)(vv), bc2_sqrt), eps);
        V(st)(param + i, V(add)(p, V(div)(V(mul)(neg_step_size, m), denom)));
        V(st)(exp_avg + i, m);
        V(st)(exp_avg_sq + i, v);
    }
#if FOPT_TPL_W > 1
    if (i < n)
        adam_body_scalar(gs, n - i, param + i, grad + i, exp_avg + i, exp_avg_sq + i,
                         amsgrad ? max_exp_avg_sq + i : NULL, maximize, wd_mode, amsgrad, from_end);
#else
    (void)i;
#endif
}

ADAM_VARIANTS(ADAM_DEFINE)

static const fopt_cpu_kernel FOPT_TPL_NAME(adam_kernels)[ADAM_NVARIANTS] = {ADAM_VARIANTS(ADAM_ENTRY)};
#endif
