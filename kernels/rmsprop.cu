/* RMSprop fused kernel: one pass per element over param, grad, square_avg, and the momentum
 * buffer and grad_avg only for the variants that keep them. The math of PyTorch's single-tensor
 * RMSprop (docs/SEMANTICS.md), every scalar derived on the host in double and rounded once:
 *
 *   g  = maximize ? -grad : grad
 *   wd != 0:   g = g + s(wd)*p
 *   v  = v*s(alpha) + s(1 - alpha)*g*g
 *   centered:  ga = lerp(ga, g, s(1 - alpha));  avg = sqrt(max(v - ga*ga, 0))
 *   else:      avg = sqrt(v)
 *   avg = avg + s(eps)
 *   momentum:  buf = buf*s(momentum) + g/avg;  p = p + s(-lr)*buf
 *   else:      p = p + s(-lr)*g/avg
 *
 * The centered variance is clamped at 0 where rounding makes it negative (PyTorch gives NaN
 * there); a NaN variance stays NaN. Built with --fmad=false, so the result is bit-identical to
 * the CPU reference. */
#include "chunk.cuh"
#include "launch.h"

namespace {

template <bool MOMENTUM, bool CENTERED>
struct RmspropUpdate {
    fopt_rmsprop_scalars s;

    FOPT_HD void operator()(float &p, float grad, float (&st)[FOPT_MAX_STATES]) const
    {
        float g = s.maximize ? -grad : grad;
        if (s.l2)
            g = g + s.weight_decay * p;

        const float v = st[0] * s.alpha + s.one_minus_alpha * g * g;
        float avg;
        if (CENTERED) {
            const float ga_old = st[2];
            const float ga = s.lerp_from_end ? g - (g - ga_old) * s.lerp_1mw
                                             : ga_old + s.one_minus_alpha * (g - ga_old);
            const float var = v - ga * ga;
            avg = sqrtf(var < 0.0f ? 0.0f : var);
            st[2] = ga;
        } else {
            avg = sqrtf(v);
        }
        avg = avg + s.eps;

        if (MOMENTUM) {
            const float buf = st[1] * s.momentum + g / avg;
            st[1] = buf;
            p = p + s.neg_lr * buf;
        } else {
            p = p + s.neg_lr * g / avg;
        }
        st[0] = v;
    }
};

template <bool MOMENTUM, bool CENTERED>
constexpr unsigned mask() { return 0x1u | (MOMENTUM ? 0x2u : 0u) | (CENTERED ? 0x4u : 0u); }

/* The four variants: template<bool MOMENTUM, bool CENTERED> calls, chosen by the scalars. */
template <bool M, bool C>
cudaError_t launch(const fopt_table &table, const fopt_rmsprop_scalars &s, cudaStream_t stream)
{
    return fopt_chunk_launch<mask<M, C>()>(table, RmspropUpdate<M, C>{s}, stream);
}

template <bool M, bool C>
void run_on_host(const fopt_table &table, const fopt_rmsprop_scalars &s)
{
    fopt_chunk_run_on_host<mask<M, C>()>(table, RmspropUpdate<M, C>{s});
}

} // namespace

extern "C" unsigned fopt_rmsprop_state_mask(const fopt_rmsprop_scalars *s)
{
    return 0x1u | (s->use_momentum ? 0x2u : 0u) | (s->centered ? 0x4u : 0u);
}

extern "C" cudaError_t fopt_rmsprop_launch(const fopt_table *table, const fopt_rmsprop_scalars *s,
                                           cudaStream_t stream)
{
    if (s->use_momentum)
        return s->centered ? launch<true, true>(*table, *s, stream) : launch<true, false>(*table, *s, stream);
    return s->centered ? launch<false, true>(*table, *s, stream) : launch<false, false>(*table, *s, stream);
}

extern "C" void fopt_rmsprop_run_on_host(const fopt_table *table, const fopt_rmsprop_scalars *s)
{
    if (s->use_momentum)
        s->centered ? run_on_host<true, true>(*table, *s) : run_on_host<true, false>(*table, *s);
    else
        s->centered ? run_on_host<false, true>(*table, *s) : run_on_host<false, false>(*table, *s);
}
