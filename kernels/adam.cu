/* Adam / AdamW fused kernel: one pass per element over param, grad, exp_avg, exp_avg_sq (and
 * max_exp_avg_sq with AMSGrad). The math of PyTorch's single-tensor Adam (docs/SEMANTICS.md),
 * step t counting from 1, with every scalar derived on the host in double and rounded once:
 *
 *   g  = maximize ? -grad : grad
 *   AdamW:          p = p * s(1 - lr*wd)
 *   Adam, wd != 0:  g = g + s(wd)*p
 *   m  = lerp(m, g, s(1 - beta1))
 *   v  = v*s(beta2) + s(1 - beta2)*g*g
 *   vv = amsgrad ? (vmax = max(vmax, v)) : v
 *   p  = p + s(-lr/(1 - beta1^t)) * m / (sqrt(vv)/s(sqrt(1 - beta2^t)) + s(eps))
 *
 * Built with --fmad=false: the same operations in the same order as the CPU reference, so the GPU
 * result is bit-identical to it (IEEE sqrt and division are nvcc's defaults). Storage types,
 * master weights and grad scaling are the memory side's (chunk.cuh); this is fp32 math only. */
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
