/* The global gradient statistics in one fixed order, so that the CPU reference, the fast CPU path
 * and the GPU compute the same bits (docs/SEMANTICS.md, "AMP and clipping"):
 *
 *   u    = grad upcast to fp32, divided by grad_scale in fp32 when there is one
 *   sq   = (double)u * (double)u                      (exact: a float squared fits a double)
 *   chunk partial: the entry's elements in chunks of FOPT_CHUNK; element j of a chunk goes to
 *        lane j % 1024; each lane adds its elements in order, starting from 0.0; then a pairwise
 *        tree over the 1024 lanes (lane l += lane l + w, for w = 1, 2, 4, ... 512);
 *   total: the chunk partials of every entry, in entry order then chunk order, reduced the same
 *        way (partial i to lane i % 1024, lanes in order, the same tree).
 *
 * The total is inf or NaN exactly when some u is (u*u of a finite float cannot overflow a
 * double), which is the inf/NaN check. The verdict reads fopt_stat_total() of it: NaN also when
 * the loss scale is not a finite number > 0 or an external sum is negative. The clip coefficient is
 * min(1, max_grad_norm / (sqrt(total) + 1e-6)) in double, rounded to float once. Not installed. */
#ifndef FUSEDOPT_STATS_H
#define FUSEDOPT_STATS_H

#include <float.h>
#include <math.h>
#include <stdint.h>

#include "dtype.h"

#define FOPT_STAT_LANES 1024

/* The square of one unscaled grad, in double. */
FOPT_HDI double fopt_stat_sq(float g, const float *grad_scale)
{
    float u = grad_scale ? g / *grad_scale : g;
    return (double)u * (double)u;
}

/* The pairwise tree over lanes[0..FOPT_STAT_LANES): the sum ends in lanes[0]. */
FOPT_HDI double fopt_stat_tree(double *lanes)
{
    for (int w = 1; w < FOPT_STAT_LANES; w *= 2)
        for (int l = 0; l < FOPT_STAT_LANES; l += 2 * w)
            lanes[l] = lanes[l] + lanes[l + w];
    return lanes[0];
}

/* The clip coefficient of a total sum of squares (1 without clipping). A NaN total gives a NaN
 * coefficient, as torch.clamp does; steps that check for inf/NaN skip before using it. */
FOPT_HDI float fopt_stat_clip_coef(double total, double max_grad_norm)
{
    if (!(max_grad_norm > 0.0))
        return 1.0f;
    double c = max_grad_norm / (sqrt(total) + 1e-6);
    return (c < 1.0 || c != c) ? (float)c : 1.0f;
}

/* A quiet NaN with the same bits on every path. */
FOPT_HDI double fopt_stat_nan(void)
{
#ifdef __CUDA_ARCH__
    return __longlong_as_double(0x7ff8000000000000LL);
#else
    return (double)NAN;
#endif
}

/* The sum of squares that the verdict (grad_norm, found_inf, the clip coefficient) and
 * fopt_grad_sq_sum*() report: NaN when a loss scale is given that is not a finite number > 0 (0,
 * negative, inf or NaN: the unscaled grads mean nothing), or when the sum is negative (only a
 * caller's external sum can be); else the sum itself. docs/SEMANTICS.md, "The verdict". */
FOPT_HDI double fopt_stat_total(double total, const float *grad_scale)
{
    const int scale_bad = grad_scale && !(*grad_scale > 0.0f && *grad_scale <= FLT_MAX);
    return (scale_bad || total < 0.0) ? fopt_stat_nan() : total;
}

/* Non-finite: the inf/NaN check. */
FOPT_HDI int fopt_stat_bad(double total) { return !(total <= 1.7976931348623157e308); }

/* The step options' outputs from a total (after fopt_stat_total): grad_norm = s(sqrt(total)),
 * found_inf = whether the total is not finite; each written when given. One definition for the
 * statistics kernel, the step kernel's last launch and the CPU paths. */
FOPT_HDI void fopt_stat_publish(double total, float *grad_norm, int32_t *found_inf)
{
    if (grad_norm)
        *grad_norm = (float)sqrt(total);
    if (found_inf)
        *found_inf = fopt_stat_bad(total);
}

#endif
