/* The optimizer variants the tests and the benchmarks exercise, defined once: every flag of each
 * optimizer, the other lerp form (beta1 < 0.5, alpha < 0.5), and the seven variants the
 * benchmarks measure (those with a bench_name). Used by tests/ and bench/; not installed. */
#ifndef FUSEDOPT_VARIANTS_H
#define FUSEDOPT_VARIANTS_H

#include <stdbool.h>
#include <stddef.h>

#include "fusedopt.h"

typedef struct fopt_variant {
    const char *name;       /* tests' name: "adam_l2", "rmsprop_centered", ... */
    const char *bench_name; /* the benchmarks' name and command-line value; NULL: not measured */
    const char *optimizer;  /* CSV column: adam, adamw, rmsprop (the PyTorch class) */
    const char *variant;    /* CSV column: plain, amsgrad, momentum, centered, centered_momentum */
    bool adam;              /* else RMSprop */
    fopt_adam_config a;
    fopt_rmsprop_config r;
} fopt_variant;

extern const fopt_variant fopt_variants[];
extern const size_t fopt_variant_count;

/* The state slots a variant keeps: bit k for fopt_slot k (FOPT_SLOT_EXP_AVG, ...). */
unsigned fopt_variant_states(const fopt_variant *v);

#endif
