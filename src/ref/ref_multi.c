/* The reference's multi-tensor driver: validation, the global gradient statistics (step options),
 * then every element of every tensor through the optimizer's reference element update, one at a
 * time, with the storage rules of docs/SEMANTICS.md spelled out per element:
 *
 *   p  = master (fp32), or the bf16 param and its remainder, or the param upcast
 *   g  = grad upcast, / grad_scale, * clip coefficient
 *   st = states upcast
 *   element update (fp32)
 *   master = p; param = p rounded to its dtype (nearest-even; stochastic for bf16 params when
 *   asked; ties away from zero with remainders); states rounded to state_dtype (nearest-even).
 *
 * Scalar and single-threaded on purpose: this is the oracle. */
#include <math.h>

#include "dtype.h"
#include "internal.h"
#include "stats.h"

static float load_value(const void *base, fopt_dtype dt, size_t i)
{
    switch (dt) {
    case FOPT_FLOAT16: return fopt_f16_to_f32(((const uint16_t *)base)[i]);
    case FOPT_BFLOAT16: return fopt_bf16_to_f32(((const uint16_t *)base)[i]);
    default: return ((const float *)base)[i];
    }
}

static void store_value(void *base, fopt_dtype dt, size_t i, float x)
{
    switch (dt) {
    case FOPT_FLOAT16: ((uint16_t *)base)[i] = fopt_f32_to_f16(x); break;
    case FOPT_BFLOAT16: ((uint16_t *)base)[i] = fopt_f32_to_bf16(x); break;
    default: ((float *)base)[i] = x; break;
    }
}

double fopt_ref_sq_sum(const fopt_host_tensor *tensors, size_t count, const float *grad_scale)
{
    double outer[FOPT_STAT_LANES] = {0.0};
    size_t p = 0; /* chunk partials so far, in tensor order then chunk order */
    for (size_t k = 0; k < count; k++) {
        const fopt_host_tensor *t = &tensors[k];
        for (size_t begin = 0; begin < t->numel; begin += FOPT_CHUNK) {
            size_t len = t->numel - begin < FOPT_CHUNK ? t->numel - begin : FOPT_CHUNK;
            double lanes[FOPT_STAT_LANES] = {0.0};
            for (size_t j = 0; j < len; j++) {
                double sq = fopt_stat_sq(load_value(t->grad, t->dtype, begin + j), grad_scale);
                lanes[j % FOPT_STAT_LANES] = lanes[j % FOPT_STAT_LANES] + sq;
            }
            double partial = fopt_stat_tree(lanes);
            outer[p % FOPT_STAT_LANES] = outer[p % FOPT_STAT_LANES] + partial;
            p++;
        }
    }
    return fopt_stat_tree(outer);
}

fopt_status fopt_grad_sq_sum_ref_multi(const fopt_host_tensor *tensors, size_t count,
                                       const float *grad_scale, double *sq_sum)
{
    fopt_status st = fopt_sq_sum_check(tensors, count, grad_scale, sq_sum);
    if (st != FOPT_SUCCESS)
        return st;
    *sq_sum = fopt_stat_total(fopt_ref_sq_sum(tensors, count, grad_scale), grad_scale);
    return FOPT_SUCCESS;
}

fopt_status fopt_ref_multi(const fopt_desc *d, const fopt_any_config *cfg, int64_t step,
                           const fopt_host_tensor *tensors, size_t count,
                           const fopt_step_options *opts)
{
    const float *scale = opts ? opts->grad_scale : NULL;
    const bool clip = opts && opts->max_grad_norm > 0.0;
    float coef = 1.0f;
    if (fopt_options_need_stats(opts)) {
        double total = opts->grad_sq_sum ? *opts->grad_sq_sum : fopt_ref_sq_sum(tensors, count, scale);
        if (fopt_options_verdict(opts, total, &coef))
            return FOPT_SUCCESS; /* found_inf: nothing is updated */
    }
    const bool zero_grads = opts && opts->zero_grads;

    const fopt_precision *pr = fopt_cfg_precision(d, cfg);
    const unsigned states = d->states(cfg);
    const fopt_group_scalars s = fopt_cpu_scalars(d, cfg, step);
    for (size_t k = 0; k < count; k++) {
        const fopt_host_tensor *t = &tensors[k];
        const fopt_master_mode mm = fopt_master_mode_of(pr, t->dtype);
        const bool stochastic = pr->stochastic_rounding && t->dtype == FOPT_BFLOAT16;
        const uint64_t key = fopt_sr_key(pr->seed, step, fopt_host_tensor_index(t, k));
        const uint64_t first = fopt_host_elem_offset(t); /* SR element index of element 0 */
        for (size_t i = 0; i < t->numel; i++) {
            float p;
            if (mm == FOPT_MASTER_F32)
                p = ((const float *)t->master)[i];
            else if (mm == FOPT_MASTER_REMAINDER)
                p = fopt_remainder_decode(((const uint16_t *)t->param)[i], ((const uint16_t *)t->master)[i]);
            else
                p = load_value(t->param, t->dtype, i);
            float g = load_value(t->grad, t->dtype, i);
            if (scale)
                g = g / *scale;
            if (clip)
                g = g * coef;
            if (zero_grads)
                store_value((void *)t->grad, t->dtype, i, 0.0f);
            float sv[FOPT_MAX_STATES] = {0.0f, 0.0f, 0.0f};
            for (unsigned j = 0; j < FOPT_MAX_STATES; j++)
                if (states >> j & 1u)
                    sv[j] = load_value(t->state[j], pr->state_dtype, i);

            d->ref_element(&s, &p, g, sv);

            if (mm == FOPT_MASTER_F32) {
                ((float *)t->master)[i] = p;
                store_value(t->param, t->dtype, i, p);
            } else if (mm == FOPT_MASTER_REMAINDER) {
                fopt_remainder_encode(p, &((uint16_t *)t->param)[i], &((uint16_t *)t->master)[i]);
            } else if (stochastic) {
                ((uint16_t *)t->param)[i] = fopt_f32_to_bf16_sr(p, fopt_sr_random16(key, first + i));
            } else {
                store_value(t->param, t->dtype, i, p);
            }
            for (unsigned j = 0; j < FOPT_MAX_STATES; j++)
                if (states >> j & 1u)
                    store_value(t->state[j], pr->state_dtype, i, sv[j]);
        }
    }
    return FOPT_SUCCESS;
}

/* fopt_adam_step_ref, fopt_rmsprop_step_ref, fopt_adam_step_ref_multi, fopt_rmsprop_step_ref_multi */
FOPT_DEFINE_FLAT_ENTRIES(ref, fopt_ref_multi)
FOPT_DEFINE_MULTI_ENTRIES(fopt_adam_step_ref_multi, fopt_rmsprop_step_ref_multi, fopt_ref_multi)
