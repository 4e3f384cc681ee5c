/* Helpers shared by the test suites: a seeded random generator, data that spans many magnitudes,
 * comparisons scaled by a tensor's largest magnitude, and a check for a CUDA device. */
#ifndef FUSEDOPT_TEST_UTIL_H
#define FUSEDOPT_TEST_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fusedopt.h"

/* Assertions on a call's status (Criterion's cr_assert_eq; the message names the call, its status
 * and fopt_last_error()) and, where the kernels are built, on a CUDA call (device.h). */
#define FOPT_OK(expr)                                                                              \
    do {                                                                                           \
        fopt_status s_ = (expr);                                                                   \
        cr_assert_eq(s_, FOPT_SUCCESS, "%s: %s: %s", #expr, fopt_status_string(s_), fopt_last_error()); \
    } while (0)
#if FOPT_TEST_KERNELS
#define CUDA_OK(expr)                                                                              \
    do {                                                                                           \
        cudaError_t e_ = (expr);                                                                   \
        cr_assert_eq(e_, cudaSuccess, "%s: %s", #expr, fopt_dev_error_string(e_));                 \
    } while (0)
#endif

/* xorshift64*: deterministic across machines. */
typedef struct test_rng { uint64_t s; } test_rng;
test_rng test_rng_make(uint64_t seed);
uint64_t test_rng_next(test_rng *r);
double test_rng_uniform(test_rng *r); /* [0, 1) */

/* Uniform in [lo, hi). */
void test_fill_uniform(test_rng *r, float *x, size_t n, float lo, float hi);
/* Signed values whose magnitudes are 10^U(lo_exp, hi_exp); about one in `zero_every` is 0
 * (0 disables zeros). */
void test_fill_magnitudes(test_rng *r, float *x, size_t n, double lo_exp, double hi_exp,
                          unsigned zero_every);

/* The special-value tests of the fast CPU path and the kernels (test_cpu.c,
 * test_kernels_special.c): `usual`, or about one time in five one of NaN, +-inf, +-0, +-1e-40
 * (subnormal) and 3e38. */
float test_special(test_rng *r, float usual);
/* Their four configs: variants 0 and 1 Adam with AMSGrad (1: maximize and AdamW, weight decay
 * 0.1) into *adam, returning true; 2 and 3 centered RMSprop (3: momentum 0.9, alpha 0.2) into
 * *rmsprop, returning false. */
bool test_special_config(int variant, fopt_adam_config *adam, fopt_rmsprop_config *rmsprop);

/* max_i |a_i - b_i| / max(max_i |b_i|, tiny): the error measure of the project's contract
 * (relative to the tensor's max magnitude). NaN in either gives +inf unless both are NaN at the
 * same place. */
double test_max_rel_err(const float *a, const float *b, size_t n);
/* Largest distance in units in the last place between a_i and b_i (0 when bit-identical). */
uint32_t test_max_ulp(const float *a, const float *b, size_t n);

/* malloc that aborts the test on failure, filled with a NaN pattern so unwritten values show. */
float *test_alloc(size_t n);
/* Duplicate of n floats. */
float *test_dup(const float *x, size_t n);

/* True when a device is usable: a CUDA device, or the emulated one in an emulated build. */
bool test_have_cuda_device(void);

/* free() on each of n pointers (NULL ones too); TEST_FREE_ALL(a, b, ...) counts them. */
void test_free_all(void *const *ptrs, size_t n);
#define TEST_FREE_ALL(...) test_free_all((void *[]){__VA_ARGS__}, sizeof((void *[]){__VA_ARGS__}) / sizeof(void *))

#endif
