/* Defaults and validation for every optimizer and entry point. One place decides what a valid
 * call is, so the reference, the fast CPU path and the GPU optimizer agree. The per-step scalars
 * themselves are derived in kernels/scalars.h (shared with the device). */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "stats.h"

fopt_adam_config fopt_adam_config_default(void)
{
    fopt_adam_config cfg;
    memset(&cfg, 0, sizeof cfg); /* every 0.2 field zero: fp32 states, no master, not capturable */
    cfg.lr = 1e-3;
    cfg.beta1 = 0.9;
    cfg.beta2 = 0.999;
    cfg.eps = 1e-8;
    return cfg;
}

fopt_rmsprop_config fopt_rmsprop_config_default(void)
{
    fopt_rmsprop_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.lr = 1e-2;
    cfg.alpha = 0.99;
    cfg.eps = 1e-8;
    return cfg;
}

/* NaN fails every comparison, so each check is written to pass only for good values. */
static bool finite_nonneg(double x) { return isfinite(x) && x >= 0.0; }
static bool in_unit_halfopen(double x) { return x >= 0.0 && x < 1.0; }
static bool in_unit_closed(double x) { return x >= 0.0 && x <= 1.0; }

static bool all_finite(const float *f, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(f[i]))
            return false;
    return true;
}

/* The float scalars a group derives at step 1 (where lr / (1 - beta1^t) is largest) must be
 * finite: a finite double such as lr = 1e39 can still overflow a float. */
static fopt_status derived_check(fopt_kind kind, const fopt_any_config *cfg, double lr, double wd)
{
    fopt_group_scalars g = fopt_group_scalars_make(kind, cfg, lr, wd, 1);
    bool ok = kind == FOPT_KIND_ADAM
                  ? all_finite(&g.adam.lerp_w, 9)      /* the 9 floats of fopt_adam_scalars */
                  : all_finite(&g.rmsprop.alpha, 7);   /* the 7 floats of fopt_rmsprop_scalars */
    if (!ok)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE,
                         "hyper-parameters overflow float (lr %g, weight_decay %g): a derived scalar "
                         "is not finite", lr, wd);
    return FOPT_SUCCESS;
}

fopt_status fopt_precision_config_check(const fopt_precision *p)
{
    if (p->state_dtype == FOPT_FLOAT16)
        return fopt_fail(FOPT_ERROR_NOT_SUPPORTED,
                         "precision.state_dtype FOPT_FLOAT16 is not supported (FOPT_FLOAT32 or FOPT_BFLOAT16)");
    if (p->state_dtype != FOPT_FLOAT32 && p->state_dtype != FOPT_BFLOAT16)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "precision.state_dtype: unknown dtype %d",
                         (int)p->state_dtype);
    if (p->master_remainder && !p->master_weights)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "precision.master_remainder needs master_weights");
    if (p->stochastic_rounding && p->master_weights)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE,
                         "precision.stochastic_rounding rounds bf16 params without master weights; "
                         "master_weights is on");
    return FOPT_SUCCESS;
}

/* The one rule for precision flags against a param dtype: a flag that has nothing to act on for a
 * dtype (fp32 params: nothing is rounded and no master is kept) is ignored; a flag that would
 * change how a param of that dtype is stored, but which the library does not implement for it
 * (fp16: stochastic_rounding, master_remainder), is FOPT_ERROR_NOT_SUPPORTED. So a list of fp32
 * and bf16 tensors takes every flag. */
fopt_status fopt_precision_check(const fopt_precision *p, fopt_dtype dtype, const char *where)
{
    if (dtype != FOPT_FLOAT32 && dtype != FOPT_FLOAT16 && dtype != FOPT_BFLOAT16)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "%s: dtype: unknown dtype %d", where, (int)dtype);
    const char *flag = p->stochastic_rounding ? "stochastic_rounding"
                       : p->master_remainder  ? "master_remainder"
                                              : NULL;
    if (dtype == FOPT_FLOAT16 && flag)
        return fopt_fail(FOPT_ERROR_NOT_SUPPORTED,
                         "%s: precision.%s is for bf16 params (fp32 ones ignore it); fp16 params "
                         "cannot use it", where, flag);
    return FOPT_SUCCESS;
}

fopt_master_mode fopt_master_mode_of(const fopt_precision *p, fopt_dtype param)
{
    if (param == FOPT_FLOAT32 || !p->master_weights)
        return FOPT_MASTER_NONE;
    return p->master_remainder && param == FOPT_BFLOAT16 ? FOPT_MASTER_REMAINDER : FOPT_MASTER_F32;
}

/* The double hyper-parameters of each optimizer's config and the ranges they must lie in, in the
 * order they are checked. */
typedef enum { NONNEG, UNIT_HALFOPEN, UNIT_CLOSED } range_rule;
typedef struct field {
    fopt_kind kind;
    const char *name;
    size_t offset;
    range_rule rule;
} field;

static const field k_fields[] = {
    {FOPT_KIND_ADAM, "lr", offsetof(fopt_adam_config, lr), NONNEG},
    {FOPT_KIND_ADAM, "beta1", offsetof(fopt_adam_config, beta1), UNIT_HALFOPEN},
    {FOPT_KIND_ADAM, "beta2", offsetof(fopt_adam_config, beta2), UNIT_HALFOPEN},
    {FOPT_KIND_ADAM, "eps", offsetof(fopt_adam_config, eps), NONNEG},
    {FOPT_KIND_ADAM, "weight_decay", offsetof(fopt_adam_config, weight_decay), NONNEG},
    {FOPT_KIND_RMSPROP, "lr", offsetof(fopt_rmsprop_config, lr), NONNEG},
    {FOPT_KIND_RMSPROP, "alpha", offsetof(fopt_rmsprop_config, alpha), UNIT_CLOSED},
    {FOPT_KIND_RMSPROP, "eps", offsetof(fopt_rmsprop_config, eps), NONNEG},
    {FOPT_KIND_RMSPROP, "weight_decay", offsetof(fopt_rmsprop_config, weight_decay), NONNEG},
    {FOPT_KIND_RMSPROP, "momentum", offsetof(fopt_rmsprop_config, momentum), NONNEG},
};

/* cfg (a config of d's optimizer) not NULL, its fields in range, its precision settings usable,
 * the derived scalars finite. */
static fopt_status check_config(const fopt_desc *d, const void *cfg)
{
    static const char *const wants[] = {"finite and >= 0", "in [0, 1)", "in [0, 1]"};
    if (!cfg)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "%s config is NULL", d->name);
    const fopt_any_config c = fopt_cfg_copy(d, cfg);
    for (size_t i = 0; i < sizeof k_fields / sizeof k_fields[0]; i++) {
        const field *f = &k_fields[i];
        if (f->kind != d->kind)
            continue;
        double v;
        memcpy(&v, (const char *)&c + f->offset, sizeof v);
        bool ok = f->rule == NONNEG ? finite_nonneg(v) : f->rule == UNIT_HALFOPEN ? in_unit_halfopen(v)
                                                                                 : in_unit_closed(v);
        if (!ok)
            return fopt_fail(FOPT_ERROR_INVALID_VALUE, "%s must be %s, got %g", f->name, wants[f->rule], v);
    }
    fopt_status st = fopt_precision_config_check(fopt_cfg_precision(d, &c));
    return st != FOPT_SUCCESS ? st : derived_check(d->kind, &c, fopt_cfg_lr(d, &c), fopt_cfg_wd(d, &c));
}

fopt_status fopt_adam_config_check(const fopt_adam_config *cfg) { return check_config(&fopt_adam_desc, cfg); }

fopt_status fopt_rmsprop_config_check(const fopt_rmsprop_config *cfg)
{
    return check_config(&fopt_rmsprop_desc, cfg);
}

fopt_status fopt_group_values_check(const fopt_desc *d, const fopt_any_config *cfg, double lr, double wd)
{
    if (!finite_nonneg(lr))
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "lr must be finite and >= 0, got %g", lr);
    if (!finite_nonneg(wd))
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "weight_decay must be finite and >= 0, got %g", wd);
    return derived_check(d->kind, cfg, lr, wd);
}

/* ---- config fields through a descriptor ---- */

double fopt_cfg_lr(const fopt_desc *d, const fopt_any_config *cfg)
{
    double v;
    memcpy(&v, (const char *)cfg + d->lr_offset, sizeof v);
    return v;
}

double fopt_cfg_wd(const fopt_desc *d, const fopt_any_config *cfg)
{
    double v;
    memcpy(&v, (const char *)cfg + d->wd_offset, sizeof v);
    return v;
}

const fopt_precision *fopt_cfg_precision(const fopt_desc *d, const fopt_any_config *cfg)
{
    return (const fopt_precision *)(const void *)((const char *)cfg + d->precision_offset);
}

bool fopt_cfg_capturable(const fopt_desc *d, const fopt_any_config *cfg)
{
    return *(const bool *)((const char *)cfg + d->capturable_offset);
}

fopt_any_config fopt_cfg_copy(const fopt_desc *d, const void *cfg)
{
    fopt_any_config c;
    memset(&c, 0, sizeof c);
    memcpy(&c, cfg, d->kind == FOPT_KIND_ADAM ? sizeof(fopt_adam_config) : sizeof(fopt_rmsprop_config));
    return c;
}

fopt_group_scalars fopt_cpu_scalars(const fopt_desc *d, const fopt_any_config *cfg, int64_t step)
{
    return fopt_group_scalars_make(d->kind, cfg, fopt_cfg_lr(d, cfg), fopt_cfg_wd(d, cfg), step);
}

/* ---- the flat fp32 entry points ---- */

/* The one fp32 tensor of a flat call: param, grad, n and the three state slots. */
static fopt_status flat_tensor(const fopt_precision *pr, size_t n, float *param, const float *grad,
                               float *s0, float *s1, float *s2, fopt_host_tensor *out)
{
    /* fp16 states are FOPT_ERROR_NOT_SUPPORTED on every entry point (fopt_precision), unknown
     * dtypes and inconsistent flags FOPT_ERROR_INVALID_VALUE, as on the _multi ones */
    fopt_status st = fopt_precision_config_check(pr);
    if (st != FOPT_SUCCESS)
        return st;
    if (pr->state_dtype != FOPT_FLOAT32)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE,
                         "the flat fp32 entry points keep fp32 states; use the _multi entry points for "
                         "precision.state_dtype %d", (int)pr->state_dtype);
    memset(out, 0, sizeof *out);
    out->dtype = FOPT_FLOAT32;
    out->param = param;
    out->grad = grad;
    out->numel = n;
    out->state[0] = s0;
    out->state[1] = s1;
    out->state[2] = s2;
    return FOPT_SUCCESS;
}

fopt_status fopt_adam_flat_tensor(const fopt_adam_config *cfg, size_t n, float *param,
                                  const float *grad, float *exp_avg, float *exp_avg_sq,
                                  float *max_exp_avg_sq, fopt_host_tensor *out)
{
    if (!cfg)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "adam config is NULL");
    if (!param || !grad || !exp_avg || !exp_avg_sq)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "param, grad, exp_avg and exp_avg_sq must not be NULL");
    if (cfg->amsgrad && !max_exp_avg_sq)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "amsgrad needs max_exp_avg_sq");
    return flat_tensor(&cfg->precision, n, param, grad, exp_avg, exp_avg_sq,
                       cfg->amsgrad ? max_exp_avg_sq : NULL, out);
}

fopt_status fopt_rmsprop_flat_tensor(const fopt_rmsprop_config *cfg, size_t n, float *param,
                                     const float *grad, float *square_avg, float *momentum_buffer,
                                     float *grad_avg, fopt_host_tensor *out)
{
    if (!cfg)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "rmsprop config is NULL");
    if (!param || !grad || !square_avg)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "param, grad and square_avg must not be NULL");
    if (cfg->momentum > 0.0 && !momentum_buffer)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "momentum > 0 needs momentum_buffer");
    if (cfg->centered && !grad_avg)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "centered needs grad_avg");
    return flat_tensor(&cfg->precision, n, param, grad, square_avg,
                       cfg->momentum > 0.0 ? momentum_buffer : NULL, cfg->centered ? grad_avg : NULL, out);
}

fopt_status fopt_call_multi(fopt_multi_driver driver, const fopt_desc *d, const void *cfg, int64_t step,
                            const fopt_host_tensor *tensors, size_t count, const fopt_step_options *opts)
{
    if (!cfg)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "%s config is NULL", d->name);
    fopt_any_config c = fopt_cfg_copy(d, cfg);
    fopt_status st = fopt_multi_check(d, &c, step, tensors, count, opts);
    return st != FOPT_SUCCESS ? st : driver(d, &c, step, tensors, count, opts);
}

/* ---- step options ---- */

fopt_status fopt_options_check(const fopt_step_options *o)
{
    if (!o)
        return FOPT_SUCCESS;
    if (!finite_nonneg(o->max_grad_norm))
        return fopt_fail(FOPT_ERROR_INVALID_VALUE,
                         "step options: max_grad_norm must be finite and >= 0 (0: no clipping), got %g",
                         o->max_grad_norm);
    fopt_status st = fopt_pointer_aligned(o->grad_scale, sizeof(float), "step options: grad_scale");
    if (st == FOPT_SUCCESS)
        st = fopt_pointer_aligned(o->grad_norm, sizeof(float), "step options: grad_norm");
    if (st == FOPT_SUCCESS)
        st = fopt_pointer_aligned(o->found_inf, sizeof(int32_t), "step options: found_inf");
    if (st == FOPT_SUCCESS)
        st = fopt_pointer_aligned(o->grad_sq_sum, sizeof(double), "step options: grad_sq_sum");
    return st;
}

bool fopt_options_need_stats(const fopt_step_options *o)
{
    return o && (o->max_grad_norm > 0.0 || o->grad_norm || o->found_inf || o->grad_sq_sum);
}

bool fopt_options_verdict(const fopt_step_options *o, double total, float *coef)
{
    total = fopt_stat_total(total, o->grad_scale);
    fopt_stat_publish(total, o->grad_norm, o->found_inf);
    if (o->found_inf && fopt_stat_bad(total))
        return true; /* nothing is updated */
    *coef = fopt_stat_clip_coef(total, o->max_grad_norm);
    return false;
}

/* The total of numel over a call's tensors fits size_t (the drivers' element and chunk counts);
 * reachable where buffers may coincide (grads only read). */
static fopt_status numel_sum(size_t *total, size_t numel)
{
    if (numel > SIZE_MAX - *total)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "the tensors hold more than %zu elements in total",
                         (size_t)SIZE_MAX);
    *total += numel;
    return FOPT_SUCCESS;
}

fopt_status fopt_sq_sum_pointers(const float *grad_scale, const double *sq_sum)
{
    fopt_status st = fopt_pointer_aligned(sq_sum, sizeof(double), "sq_sum");
    return st != FOPT_SUCCESS ? st : fopt_pointer_aligned(grad_scale, sizeof(float), "grad_scale");
}

fopt_status fopt_sq_sum_check(const fopt_host_tensor *tensors, size_t count, const float *grad_scale,
                              const double *sq_sum)
{
    if (!sq_sum || (count > 0 && !tensors))
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "tensors or sq_sum is NULL");
    fopt_status st = fopt_sq_sum_pointers(grad_scale, sq_sum);
    size_t total = 0;
    for (size_t k = 0; k < count && st == FOPT_SUCCESS; k++) {
        const fopt_host_tensor *t = &tensors[k];
        fopt_range r;
        if (t->dtype != FOPT_FLOAT32 && t->dtype != FOPT_FLOAT16 && t->dtype != FOPT_BFLOAT16)
            return fopt_fail(FOPT_ERROR_INVALID_VALUE, "tensor %zu: dtype: unknown dtype %d", k,
                             (int)t->dtype);
        if (t->numel > 0 && !t->grad)
            return fopt_fail(FOPT_ERROR_INVALID_VALUE, "tensor %zu: grad is NULL with numel %zu", k,
                             t->numel);
        if (t->numel > 0)
            st = fopt_buffer_range(t->grad, t->numel, fopt_dtype_bytes(t->dtype), k, "grad", false, &r);
        if (st == FOPT_SUCCESS)
            st = numel_sum(&total, t->numel);
    }
    return st;
}

/* ---- a CPU multi-tensor call ---- */


/* What a call's tensors are checked against. */
typedef struct call_rules {
    const fopt_precision *pr;
    unsigned states;
    const char *const *names;
    bool grads_written; /* zero_grads */
} call_rules;

/* One tensor's fields, without its memory: dtype and flags, piece indices, master and required
 * states present. Adds its buffers' count to *nranges. (The numel of a call's tensors sum to less
 * than SIZE_MAX once call_buffers() has passed: their params are disjoint ranges of memory.) */
static fopt_status tensor_fields(const call_rules *c, const fopt_host_tensor *t, size_t k,
                                 size_t *nranges)
{
    char where[48];
    snprintf(where, sizeof where, "tensor %zu", k);
    fopt_status st = fopt_precision_check(c->pr, t->dtype, where);
    if (st != FOPT_SUCCESS)
        return st;
    fopt_master_mode mm = fopt_master_mode_of(c->pr, t->dtype);
    if (t->piece && (t->tensor > UINT32_MAX || t->elem_offset > (uint64_t)INT64_MAX - t->numel))
        return fopt_fail(FOPT_ERROR_INVALID_VALUE,
                         "tensor %zu: piece of tensor %zu at element %llu: indices must stay below "
                         "2^32 (tensor) and 2^63 (element)", k, t->tensor, (unsigned long long)t->elem_offset);
    if (t->master && mm == FOPT_MASTER_NONE)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "tensor %zu: master is set but %s", k,
                         t->dtype == FOPT_FLOAT32 ? "fp32 params keep no master copy"
                                                  : "precision.master_weights is off");
    if (t->numel == 0)
        return FOPT_SUCCESS;
    if (!t->param || !t->grad)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "tensor %zu: %s is NULL with numel %zu", k,
                         t->param ? "grad" : "param", t->numel);
    if (mm != FOPT_MASTER_NONE && !t->master)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE,
                         "tensor %zu: master is NULL but precision.master_weights is on", k);
    for (unsigned s = 0; s < FOPT_MAX_STATES; s++)
        if ((c->states >> s & 1u) && !t->state[s])
            return fopt_fail(FOPT_ERROR_INVALID_VALUE, "tensor %zu: %s is NULL", k, c->names[s]);
    *nranges += 2 + (mm != FOPT_MASTER_NONE);
    for (unsigned s = 0; s < FOPT_MAX_STATES; s++)
        *nranges += c->states >> s & 1u;
    return FOPT_SUCCESS;
}

/* One tensor's buffers (numel > 0), aligned and inside the address space, appended to r. */
static fopt_status tensor_ranges(const call_rules *c, const fopt_host_tensor *t, size_t k,
                                 fopt_range *r, size_t *n)
{
    const size_t eb = fopt_dtype_bytes(t->dtype);
    const size_t sb = fopt_dtype_bytes(c->pr->state_dtype);
    const fopt_master_mode mm = fopt_master_mode_of(c->pr, t->dtype);
    fopt_status st = fopt_buffer_range(t->param, t->numel, eb, k, "param", true, &r[(*n)++]);
    if (st == FOPT_SUCCESS)
        st = fopt_buffer_range(t->grad, t->numel, eb, k, "grad", c->grads_written, &r[(*n)++]);
    if (st == FOPT_SUCCESS && mm != FOPT_MASTER_NONE)
        st = fopt_buffer_range(t->master, t->numel, mm == FOPT_MASTER_F32 ? 4 : 2, k,
                               mm == FOPT_MASTER_F32 ? "master" : "master (remainders)", true, &r[(*n)++]);
    for (unsigned s = 0; s < FOPT_MAX_STATES && st == FOPT_SUCCESS; s++)
        if (c->states >> s & 1u)
            st = fopt_buffer_range(t->state[s], t->numel, sb, k, c->names[s], true, &r[(*n)++]);
    return st;
}

/* Every buffer of the call: aligned, inside the address space, no forbidden overlap. */
static fopt_status call_buffers(const call_rules *c, const fopt_host_tensor *tensors, size_t count,
                                size_t nranges)
{
    if (nranges == 0)
        return FOPT_SUCCESS;
    fopt_range *r = calloc(nranges, sizeof *r);
    if (!r)
        return fopt_fail(FOPT_ERROR_OUT_OF_MEMORY, "host allocation of %zu buffer ranges failed",
                         nranges);
    fopt_status st = FOPT_SUCCESS;
    size_t n = 0;
    for (size_t k = 0; k < count && st == FOPT_SUCCESS; k++)
        if (tensors[k].numel > 0)
            st = tensor_ranges(c, &tensors[k], k, r, &n);
    if (st == FOPT_SUCCESS)
        st = fopt_ranges_disjoint(r, n);
    free(r);
    return st;
}

fopt_status fopt_multi_check(const fopt_desc *d, const fopt_any_config *cfg, int64_t step,
                             const fopt_host_tensor *tensors, size_t count,
                             const fopt_step_options *opts)
{
    fopt_status st = d->check(cfg);
    if (st != FOPT_SUCCESS)
        return st;
    if (step < 1)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "step counts from 1, got %lld", (long long)step);
    if ((st = fopt_options_check(opts)) != FOPT_SUCCESS)
        return st;
    if (count > 0 && !tensors)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "tensors is NULL with count %zu", count);
    const call_rules c = {fopt_cfg_precision(d, cfg), d->states(cfg), d->state_names, opts && opts->zero_grads};
    size_t nranges = 0;
    for (size_t k = 0; k < count; k++)
        if ((st = tensor_fields(&c, &tensors[k], k, &nranges)) != FOPT_SUCCESS)
            return st;
    return call_buffers(&c, tensors, count, nranges);
}
