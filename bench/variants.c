/* The optimizer variants of tests and benchmarks (bench/variants.h). */
#include "variants.h"

/* Adam: lr, beta1, beta2, eps, weight_decay, decoupled, amsgrad, maximize */
#define A(nm, bn, opt, var, ...) {.name = nm, .bench_name = bn, .optimizer = opt, .variant = var, .adam = true, .a = {__VA_ARGS__}}
/* RMSprop: lr, alpha, eps, weight_decay, momentum, centered, maximize */
#define R(nm, bn, var, ...) {.name = nm, .bench_name = bn, .optimizer = "rmsprop", .variant = var, .adam = false, .r = {__VA_ARGS__}}
const fopt_variant fopt_variants[] = {
    A("adam", "adam", "adam", "plain", 1e-3, 0.9, 0.999, 1e-8, 0.0, false, false, false),
    A("adam_l2", NULL, "adam", "l2", 1e-3, 0.9, 0.999, 1e-8, 0.1, false, false, false),
    A("adamw", "adamw", "adamw", "plain", 1e-2, 0.9, 0.999, 1e-8, 0.1, true, false, false),
    A("adam_amsgrad", "amsgrad", "adam", "amsgrad", 1e-3, 0.9, 0.999, 1e-8, 0.0, false, true, false),
    A("adamw_amsgrad", NULL, "adamw", "amsgrad", 1e-3, 0.9, 0.99, 1e-8, 0.01, true, true, false),
    A("adam_maximize_l2", NULL, "adam", "maximize_l2", 1e-3, 0.9, 0.999, 1e-8, 0.05, false, false, true),
    A("adam_small_beta1", NULL, "adam", "small_beta1", 3e-2, 0.3, 0.95, 1e-6, 0.0, false, false, false),
    R("rmsprop", "rmsprop", "plain", 1e-2, 0.99, 1e-8, 0.0, 0.0, false, false),
    R("rmsprop_wd", NULL, "weight_decay", 1e-2, 0.99, 1e-8, 0.1, 0.0, false, false),
    R("rmsprop_momentum", "rmsprop_momentum", "momentum", 1e-2, 0.99, 1e-8, 0.0, 0.9, false, false),
    R("rmsprop_centered", "rmsprop_centered", "centered", 1e-3, 0.9, 1e-6, 0.0, 0.0, true, false),
    R("rmsprop_centered_momentum", "rmsprop_centered_momentum", "centered_momentum", 1e-3, 0.99, 1e-8, 0.01, 0.5, true, false),
    R("rmsprop_maximize", NULL, "maximize", 1e-2, 0.99, 1e-8, 0.0, 0.0, false, true),
    R("rmsprop_small_alpha_centered", NULL, "small_alpha_centered", 1e-3, 0.3, 1e-3, 0.0, 0.9, true, false),
};
const size_t fopt_variant_count = sizeof fopt_variants / sizeof fopt_variants[0];

unsigned fopt_variant_states(const fopt_variant *v)
{
    if (v->adam)
        return (1u << FOPT_SLOT_EXP_AVG) | (1u << FOPT_SLOT_EXP_AVG_SQ) |
               (v->a.amsgrad ? 1u << FOPT_SLOT_MAX_EXP_AVG_SQ : 0u);
    return (1u << FOPT_SLOT_SQUARE_AVG) | (v->r.momentum > 0.0 ? 1u << FOPT_SLOT_MOMENTUM_BUFFER : 0u) |
           (v->r.centered ? 1u << FOPT_SLOT_GRAD_AVG : 0u);
}
