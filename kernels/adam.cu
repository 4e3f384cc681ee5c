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
 * result is bit-identical to it (IEEE sqrt and division are nvcc's defaults). */
#include "chunk.cuh"
#include "launch.h"

namespace {

template <bool AMSGRAD>
struct AdamUpdate {
    fopt_adam_scalars s;

    FOPT_HD void operator()(float &p, float grad, float (&st)[FOPT_MAX_STATES]) const
    {
        float g = s.maximize ? -grad : grad;
        if (s.decoupled)
            p = p * s.decay;
        else if (s.l2)
            g = g + s.weight_decay * p;

        const float m_old = st[0];
        const float m = s.lerp_from_end ? g - (g - m_old) * s.lerp_1mw : m_old + s.lerp_w * (g - m_old);
        const float v = st[1] * s.beta2 + s.one_minus_beta2 * g * g;
        float vv = v;
        if (AMSGRAD) {
            const float vmax = st[2];
            vv = (vmax != vmax || vmax > v) ? vmax : v; /* NaN wins, as torch.maximum */
            st[2] = vv;
        }
        const float denom = sqrtf(vv) / s.bc2_sqrt + s.eps;
        p = p + s.neg_step_size * m / denom;
        st[0] = m;
        st[1] = v;
    }
};

constexpr unsigned kAdamMask = 0x3u;
constexpr unsigned kAmsgradMask = 0x7u;

} // namespace

extern "C" unsigned fopt_adam_state_mask(const fopt_adam_scalars *s)
{
    return s->amsgrad ? kAmsgradMask : kAdamMask;
}

extern "C" cudaError_t fopt_adam_launch(const fopt_table *table, const fopt_adam_scalars *s,
                                        cudaStream_t stream)
{
    if (s->amsgrad)
        return fopt_chunk_launch<kAmsgradMask>(*table, AdamUpdate<true>{*s}, stream);
    return fopt_chunk_launch<kAdamMask>(*table, AdamUpdate<false>{*s}, stream);
}

extern "C" void fopt_adam_run_on_host(const fopt_table *table, const fopt_adam_scalars *s)
{
    if (s->amsgrad)
        fopt_chunk_run_on_host<kAmsgradMask>(*table, AdamUpdate<true>{*s});
    else
        fopt_chunk_run_on_host<kAdamMask>(*table, AdamUpdate<false>{*s});
}
