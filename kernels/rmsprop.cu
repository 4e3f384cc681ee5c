/* RMSprop step kernels: the math functor (docs/SEMANTICS.md, "RMSprop", including the clamp of a
 * centered variance that rounding made negative) over the memory walker of kernels/chunk.cuh.
 * Built with --fmad=false, so the results are bit-identical to the CPU reference. */
#include "chunk.cuh"

namespace {

template <bool MOMENTUM, bool CENTERED>
struct RmspropUpdate {
    /* state slots: square_avg (+ momentum_buffer) (+ grad_avg) */
    static constexpr unsigned states = (1u << FOPT_SLOT_SQUARE_AVG) |
                                       (MOMENTUM ? 1u << FOPT_SLOT_MOMENTUM_BUFFER : 0u) |
                                       (CENTERED ? 1u << FOPT_SLOT_GRAD_AVG : 0u);
    static constexpr const char *name = "rmsprop_step";
    fopt_rmsprop_scalars s;

    FOPT_HD explicit RmspropUpdate(const fopt_group_scalars &g) : s(g.rmsprop) {}

    FOPT_HD void operator()(float &p, float grad, float (&st)[FOPT_MAX_STATES]) const
    {
        float g = s.maximize ? -grad : grad;
        if (s.l2)
            g = g + s.weight_decay * p;

        const float v = st[FOPT_SLOT_SQUARE_AVG] * s.alpha + s.one_minus_alpha * g * g;
        float avg;
        if (CENTERED) {
            const float ga_old = st[FOPT_SLOT_GRAD_AVG];
            const float ga = s.lerp_from_end ? g - (g - ga_old) * s.lerp_1mw
                                             : ga_old + s.one_minus_alpha * (g - ga_old);
            const float var = v - ga * ga;
            avg = sqrtf(var < 0.0f ? 0.0f : var);
            st[FOPT_SLOT_GRAD_AVG] = ga;
        } else {
            avg = sqrtf(v);
        }
        avg = avg + s.eps;

        if (MOMENTUM) {
            const float buf = st[FOPT_SLOT_MOMENTUM_BUFFER] * s.momentum + g / avg;
            st[FOPT_SLOT_MOMENTUM_BUFFER] = buf;
            p = p + s.neg_lr * buf;
        } else {
            p = p + s.neg_lr * g / avg;
        }
        st[FOPT_SLOT_SQUARE_AVG] = v;
    }
};

} // namespace

extern "C" fopt_kernel fopt_rmsprop_step_kernel(fopt_storage param, fopt_storage state,
                                                fopt_master_mode master, unsigned variant)
{
    switch (variant & 3u) {
    case 1u: return fopt_step_kernel_select<RmspropUpdate<true, false>>(param, state, master);
    case 2u: return fopt_step_kernel_select<RmspropUpdate<false, true>>(param, state, master);
    case 3u: return fopt_step_kernel_select<RmspropUpdate<true, true>>(param, state, master);
    default: return fopt_step_kernel_select<RmspropUpdate<false, false>>(param, state, master);
    }
}
