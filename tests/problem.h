/* A multi-tensor optimizer problem for the kernel tests: tensors of chosen sizes and pointer
 * offsets in host memory, fresh random gradients every step, and a CPU-reference copy of the
 * parameters and state advanced alongside, to compare any other path against. */
#ifndef FUSEDOPT_TEST_PROBLEM_H
#define FUSEDOPT_TEST_PROBLEM_H

#include <stdbool.h>

#include "fusedopt.h"
#include "internal.h"
#include "multi_tensor.h"
#include "util.h"
#include "variants.h"

/* The variants every kernel path is checked on (bench/variants.h, shared with the benchmarks). */
typedef fopt_variant test_variant;
#define test_variants fopt_variants
#define test_variant_count fopt_variant_count

/* The descriptor and the generic config of a variant. */
const fopt_desc *test_variant_desc(const test_variant *v);
fopt_any_config test_variant_config(const test_variant *v);

typedef struct test_problem {
    const test_variant *v;
    size_t count;
    size_t *numel;
    float **param, **grad;         /* per tensor, inside param_base/grad_base at its offset */
    float **param_base, **grad_base;
    float **ref_param;             /* reference copy of every parameter */
    float **ref_state[FOPT_MAX_STATES]; /* reference state, NULL for buffers the variant lacks */
    unsigned mask;                 /* state slots of the variant (bits of fopt_slot) */
    test_rng rng;
} test_problem;

/* Tensors of numel[k] floats; tensor k's param and grad start param_off[k] / grad_off[k] floats
 * past a 64-byte boundary (NULL offsets: 0). Parameters random, state zero. */
test_problem *test_problem_make(const test_variant *v, const size_t *numel, const unsigned *param_off,
                                const unsigned *grad_off, size_t count, uint64_t seed);
void test_problem_free(test_problem *p);

/* Fresh gradients for every tensor: signed, magnitudes 10^U(-4, 1), a few exact zeros. */
void test_problem_new_grads(test_problem *p);
/* One reference step (step counts from 1) of every tensor's reference copy. */
void test_problem_ref_step(test_problem *p, int64_t step);
/* fopt_host_tensor list over the problem's param/grad pointers, states state[j][k] (state[j] NULL
 * where the variant keeps none); caller frees. */
fopt_host_tensor *test_problem_host_tensors(const test_problem *p, float *const *const state[FOPT_MAX_STATES]);
/* fopt_tensor list over the problem's param/grad pointers (caller frees). */
fopt_tensor *test_problem_tensors(const test_problem *p);

/* Compares tensor k's parameter and state (state[j] points at that tensor's slice of buffer j,
 * NULL where absent) with the reference; asserts max relative error <= 1e-5 and returns the
 * largest ulp distance seen. */
uint32_t test_problem_check(const test_problem *p, size_t k, const float *param,
                            float *const state[FOPT_MAX_STATES], const char *where);

/* Sizes around the interesting boundaries plus `extra` random ones (1..max_numel), and random
 * pointer offsets 0..3 when `offsets` (else 0). Arrays are malloc'ed. */
void test_random_layout(test_rng *r, size_t count, size_t max_numel, bool offsets, size_t **numel,
                        unsigned **param_off, unsigned **grad_off);

/* One way to run `steps` steps of variant v over a layout and check it against the reference
 * (the host-run kernels, the GPU). */
typedef void (*test_case_runner)(const test_variant *v, const size_t *numel,
                                 const unsigned *param_off, const unsigned *grad_off, size_t count,
                                 int steps, uint64_t seed);

/* The layouts every kernel path is checked on, each over every variant: */
/* sizes 1, 3, 4, 5, 7, 4097 in one list, 25 steps */
void test_layout_odd_sizes(test_case_runner run);
/* params and grads offset by 1 to 3 floats (the scalar path), 25 steps */
void test_layout_offset_pointers(test_case_runner run);
/* sizes around FOPT_CHUNK, plus a 1M+3 tensor and 5 steps when `large` (else 3 steps) */
void test_layout_chunk_boundaries(test_case_runner run, bool large);
/* `count` tensors from test_random_layout (offsets on), over every variant or, when
 * !all_variants, plain Adam only. FOPT_TEST_LIGHT=1 in the environment caps count at 300 (for
 * runs under compute-sanitizer). */
void test_layout_random_list(test_case_runner run, size_t count, size_t max_numel, int steps,
                             uint64_t seed, bool all_variants);

#endif
