/* Adam / AdamW step kernels: the math functor (docs/SEMANTICS.md, "Adam / AdamW"; the scalars
 * come from kernels/scalars.h) over the memory walker of kernels/chunk.cuh, one instantiation per
 * combination of storage types a config can ask for. Built with --fmad=false: the same fp32
 * operations in the same order as the CPU reference, so the results are bit-identical to it (IEEE
 * sqrt and division are nvcc's defaults). */
#include "chunk.cuh"

namespace {

template <bool AMSGRAD>
struct AdamUpdate {
    /* state slots: exp_avg, exp_avg_sq (+ max_exp_avg_sq) */
    static constexpr unsigned states = (1u << FOPT_SLOT_EXP_AVG) | (1u << FOPT_SLOT_EXP_AVG_SQ) |
                                       (AMSGRAD ? 1u << FOPT_SLOT_MAX_EXP_AVG_SQ : 0u);
    static constexpr const char *name = AMSGRAD ? "adam_amsgrad_step" : "adam_step";
    fopt_adam_scalars s;

    FOPT_HD explicit AdamUpdate(const fopt_group_scalars &g) : s(g.adam) {}

    FOPT_HD void operator()(float &p, float grad, float (&st)[FOPT_MAX_STATES]) const
    {
        float g = s.maximize ? -grad : grad;
        if (s.decoupled)
            p = p * s.decay;
        else if (s.l2)
            g = g + s.weight_decay * p;

        const float m_old = st[FOPT_SLOT_EXP_AVG];
        const float m = s.lerp_from_end ? g - (g - m_old) * s.lerp_1mw : m_old + s.lerp_w * (g - m_old);
        const float v = st[FOPT_SLOT_EXP_AVG_SQ] * s.beta2 + s.one_minus_beta2 * g * g;
        float vv = v;
        if (AMSGRAD) {
            const float vmax = st[FOPT_SLOT_MAX_EXP_AVG_SQ];
            vv = (vmax != vmax || vmax > v) ? vmax : v; /* NaN wins, as torch.maximum */
            st[FOPT_SLOT_MAX_EXP_AVG_SQ] = vv;
        }
        const float denom = sqrtf(vv) / s.bc2_sqrt + s.eps;
        p = p + s.neg_step_size * m / denom;
        st[FOPT_SLOT_EXP_AVG] = m;
        st[FOPT_SLOT_EXP_AVG_SQ] = v;
    }
};

} // namespace

extern "C" fopt_kernel fopt_adam_step_kernel(fopt_storage param, fopt_storage state,
                                             fopt_master_mode master, unsigned variant)
{
    if (variant & 1u)
        return fopt_step_kernel_select<AdamUpdate<true>>(param, state, master);
    return fopt_step_kernel_select<AdamUpdate<false>>(param, state, master);
}
