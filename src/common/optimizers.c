/* One descriptor per optimizer: validation, the state slots it keeps, its kernel variant, its
 * reference element update and its fast CPU loops (its GPU step kernels: by kind, through
 * fopt_step_kernel_of() in kernels/launch.h). The generic code (the
 * CPU multi-tensor drivers, the GPU optimizer object, checkpoints) works through these and knows
 * no optimizer by name. The math itself is written once per path and optimizer:
 * src/ref/<opt>_ref.c, src/cpu/<opt>_cpu.c, kernels/<opt>.cu (docs/SEMANTICS.md has the formulas). */
#include <stddef.h>

#include "internal.h"

/* Defined by each optimizer's reference and fast CPU files. */
void fopt_adam_ref_element(const fopt_group_scalars *s, float *p, float g, float st[FOPT_MAX_STATES]);
void fopt_rmsprop_ref_element(const fopt_group_scalars *s, float *p, float g, float st[FOPT_MAX_STATES]);
fopt_cpu_kernel fopt_adam_cpu_kernel(int isa, const fopt_group_scalars *s);
fopt_cpu_kernel fopt_rmsprop_cpu_kernel(int isa, const fopt_group_scalars *s);

/* The descriptor of optimizer `opt` (kind KIND): its config's field offsets, opt##_check,
 * opt##_states, opt##_variant, opt##_state_names and opt##_state_kept below, and its reference and
 * fast CPU functions. */
#define FOPT_DESC(opt, KIND)                                                                       \
    {                                                                                              \
        .kind = KIND, .name = #opt, .lr_offset = offsetof(fopt_##opt##_config, lr),                \
        .wd_offset = offsetof(fopt_##opt##_config, weight_decay),                                  \
        .precision_offset = offsetof(fopt_##opt##_config, precision),                              \
        .capturable_offset = offsetof(fopt_##opt##_config, capturable), .check = opt##_check,      \
        .states = opt##_states, .variant = opt##_variant, .ref_element = fopt_##opt##_ref_element, \
        .cpu_kernel = fopt_##opt##_cpu_kernel, .state_names = opt##_state_names,                   \
        .state_kept = opt##_state_kept,                                                            \
    }

/* ---- Adam / AdamW ---- */

static fopt_status adam_check(const fopt_any_config *c) { return fopt_adam_config_check(&c->adam); }

static unsigned adam_states(const fopt_any_config *c)
{
    return (1u << FOPT_SLOT_EXP_AVG) | (1u << FOPT_SLOT_EXP_AVG_SQ) |
           (c->adam.amsgrad ? 1u << FOPT_SLOT_MAX_EXP_AVG_SQ : 0u);
}

static unsigned adam_variant(const fopt_any_config *c) { return c->adam.amsgrad ? 1u : 0u; }

static const char *const adam_state_names[FOPT_MAX_STATES] = {"exp_avg (state[0])", "exp_avg_sq (state[1])",
                                                              "max_exp_avg_sq (state[2])"};
static const char *const adam_state_kept[FOPT_MAX_STATES] = {"always", "always", "with amsgrad"};

const fopt_desc fopt_adam_desc = FOPT_DESC(adam, FOPT_KIND_ADAM);

/* ---- RMSprop ---- */

static fopt_status rmsprop_check(const fopt_any_config *c) { return fopt_rmsprop_config_check(&c->rmsprop); }

static unsigned rmsprop_states(const fopt_any_config *c)
{
    return (1u << FOPT_SLOT_SQUARE_AVG) | (c->rmsprop.momentum > 0.0 ? 1u << FOPT_SLOT_MOMENTUM_BUFFER : 0u) |
           (c->rmsprop.centered ? 1u << FOPT_SLOT_GRAD_AVG : 0u);
}

static unsigned rmsprop_variant(const fopt_any_config *c)
{
    return (c->rmsprop.momentum > 0.0 ? 1u : 0u) | (c->rmsprop.centered ? 2u : 0u);
}

static const char *const rmsprop_state_names[FOPT_MAX_STATES] = {
    "square_avg (state[0])", "momentum_buffer (state[1])", "grad_avg (state[2])"};
static const char *const rmsprop_state_kept[FOPT_MAX_STATES] = {"always", "with momentum > 0", "when centered"};

const fopt_desc fopt_rmsprop_desc = FOPT_DESC(rmsprop, FOPT_KIND_RMSPROP);
