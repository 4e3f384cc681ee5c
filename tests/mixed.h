/* Helpers of the mixed-precision and step-option suites (tests/test_mixed*.c): tensor lists of
 * any storage type in separately allocated, guarded host buffers at chosen offsets from a 64-byte
 * boundary; one identical copy of such a list per path (reference, fast CPU path, host-run
 * kernels in both modes); bit comparisons under the NaN rule; byte snapshots for "nothing was
 * written"; and conversion oracles written independently of kernels/dtype.h (a value's two 16-bit
 * neighbours found from its exponent and significand, the nearer chosen in exact double
 * arithmetic); and an independent model of the storage rules.
 *
 * The NaN rule (docs/SEMANTICS.md, src/cpu/cpu_convert.c): every path must produce NaN at the same
 * positions of every float-typed buffer (params, fp32 masters, states, grads); the NaN payload and
 * sign may differ, because the F16C / AVX-512 fp16 conversion instructions quiet signalling NaNs
 * and keep payload bits that the software conversion replaces. Every non-NaN value must agree bit
 * for bit (+0 and -0 are different values). Master remainders are integers: compared exactly. */
#ifndef FUSEDOPT_TEST_MIXED_H
#define FUSEDOPT_TEST_MIXED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fusedopt.h"
#include "multi_tensor.h"
#include "util.h"
#include "variants.h"

/* ---- a variant with a precision setting ---- */
typedef struct mx_config {
    const fopt_variant *v;
    fopt_adam_config a;    /* v's config with the precision (Adam variants) */
    fopt_rmsprop_config r; /* (RMSprop variants) */
} mx_config;

/* The variant of bench/variants.h with this name (the test fails when there is none). */
const fopt_variant *mx_variant(const char *name);
mx_config mx_config_make(const fopt_variant *v, fopt_precision pr);
/* RMSprop with these lr, alpha and eps, without weight decay, momentum, centering or maximize:
 * with alpha 0 and eps 0 a step moves every element by exactly -lr * sign(grad) (v = g*g, sqrt(v)
 * = |g|, g/|g| = +-1 when g*g is exact). */
mx_config mx_rmsprop(double lr, double alpha, double eps, fopt_precision pr);
const fopt_precision *mx_precision(const mx_config *c);
fopt_precision *mx_precision_mut(mx_config *c);
/* State slots kept (bits of fopt_slot). */
unsigned mx_states(const mx_config *c);
/* How a tensor of this dtype keeps its master under c (re-derived from the header's rules). */
fopt_master_mode mx_master_mode(const mx_config *c, fopt_dtype dtype);
/* "fp32 states, master remainder" and the like. */
const char *mx_precision_name(const fopt_precision *pr, char *buf, size_t len);
const char *mx_dtype_name(fopt_dtype d);
size_t mx_dtype_bytes(fopt_dtype d);

/* ---- a tensor list in guarded buffers ---- */
#define MX_GUARD 64 /* guard bytes before (at least) and after every buffer */
#define MX_GUARD_BYTE 0xA5

typedef struct mx_spec {
    size_t numel;
    fopt_dtype dtype;
    /* elements (of the buffer's own type) past a 64-byte boundary */
    unsigned param_off, grad_off, master_off, state_off[FOPT_MAX_STATES];
} mx_spec;

typedef struct mx_buf {
    unsigned char *alloc; /* 64-byte aligned; NULL for an unused buffer */
    size_t total;         /* bytes of alloc */
    void *p;              /* alloc + MX_GUARD + offset */
    size_t bytes;         /* of the data */
} mx_buf;

typedef struct mx_set {
    size_t count;
    mx_spec *spec;
    mx_buf *param, *grad, *master, *state[FOPT_MAX_STATES];
    fopt_host_tensor *t; /* the list handed to the entry points */
    fopt_dtype state_dtype;
    fopt_master_mode *mm;
} mx_set;

/* Buffers for every tensor of spec under c: params random in their dtype (signed, magnitudes
 * 10^U(-3, 1), a few exact zeros), masters the upcast params (zeros for remainders), states and
 * grads zero. Deterministic in seed. */
mx_set *mx_set_make(const mx_config *c, const mx_spec *spec, size_t count, uint64_t seed);
/* A copy with the same layout and contents. */
mx_set *mx_set_clone(const mx_set *s);
void mx_set_free(mx_set *s);
/* Fresh grads: signed, log-uniform magnitudes from about 10^lo_exp to 10^hi_exp (binary exponents
 * in between, random significands) rounded to the grad dtype, about one in
 * zero_every exactly 0 (0: none). */
void mx_set_fill_grads(mx_set *s, test_rng *r, double lo_exp, double hi_exp, unsigned zero_every);
/* Copies grads (same layout). */
void mx_set_copy_grads(mx_set *dst, const mx_set *src);

/* Element i of a buffer of dtype d, as float (exact upcast), and a store rounded nearest-even. */
float mx_get(const void *p, fopt_dtype d, size_t i);
void mx_put(void *p, fopt_dtype d, size_t i, float x);
/* The math parameter of element i of tensor k (master, remainder decoded, or param upcast). */
float mx_param_value(const mx_set *s, size_t k, size_t i);

/* Compares every buffer of two sets of the same layout under the NaN rule. True when they agree;
 * else false with the first difference described in msg. */
bool mx_set_same(const mx_set *a, const mx_set *b, char *msg, size_t len);
/* The guard bytes of every buffer are intact. */
bool mx_set_guards_ok(const mx_set *s, char *msg, size_t len);
/* How many param elements (their bits) differ between two sets of the same layout. */
size_t mx_set_params_changed(const mx_set *a, const mx_set *b);
size_t mx_set_total(const mx_set *s);

/* Byte images of every allocation (guards included), for "nothing was written". */
typedef struct mx_snapshot mx_snapshot;
mx_snapshot *mx_snapshot_take(const mx_set *s);
bool mx_snapshot_same(const mx_snapshot *snap, const mx_set *s, char *msg, size_t len);
void mx_snapshot_free(mx_snapshot *snap);

/* ---- paths ---- */
/* A build without CUDA (FOPT_TEST_KERNELS 0) has no kernels: its paths are the two CPU ones. */
typedef enum mx_path {
    MX_REF = 0,        /* fopt_*_step_ref_multi */
    MX_CPU = 1,        /* fopt_*_step_cpu_multi, with whatever ISA / threads are set */
    MX_HOST = 2,       /* host-run kernels, default mode */
    MX_HOST_SMALL = 3, /* host-run kernels, {FOPT_MIN_CHUNK_SHIFT, 1} */
    MX_PATHS = FOPT_TEST_KERNELS ? 4 : 2
} mx_path;
const char *mx_path_name(mx_path p);
fopt_status mx_step(mx_path p, const mx_config *c, int64_t step, const fopt_host_tensor *t, size_t count,
                    const fopt_step_options *o);
fopt_status mx_sq_sum(mx_path p, const fopt_host_tensor *t, size_t count, const float *scale, double *out);

/* The fast path's instruction sets on this CPU (1 to 3) and a setting for the following calls:
 * isa 0 scalar, 1 avx2, 2 avx512; threads 1 or more with the per-thread grain lowered to 1 so
 * that small calls split too. mx_cpu_reset() restores the defaults. */
int mx_isa_count(void);
void mx_cpu_use(int isa, int threads);
void mx_cpu_reset(void);
const char *mx_isa_name(int isa);

/* ---- conversion oracles, independent of kernels/dtype.h ---- */
/* The value of a non-negative 16-bit pattern, in double (the pattern just past the largest finite
 * value, the infinity, counts as the next power of two: 65536 for fp16, 2^128 for bf16). */
double mx_f16_value(uint16_t h);
double mx_bf16_value(uint16_t h);
/* Rounding of a float: nearest-even (overflow to inf), or for bf16 nearest with ties away from
 * zero; NaN gives 0x7e00 / 0x7fc0 with the sign. */
uint16_t mx_oracle_f16(float x);
uint16_t mx_oracle_bf16(float x);
uint16_t mx_oracle_bf16_ties_away(float x);
/* Exact upcast of an fp16 pattern (NaN: a NaN of the same sign). */
float mx_oracle_f16_to_f32(uint16_t h);
bool mx_is_nan16(uint16_t h, fopt_dtype d);

uint32_t mx_bits(float x);
float mx_float(uint32_t u);

/* One step of c on every path p < npaths over sets[p] (the fast path with whatever ISA and threads
 * are set), with options o (NULL: none); o's grad_norm / found_inf only say whether they are
 * wanted: each path writes its own, and the reference's are copied back to o's. Asserts that
 * every call succeeds, writes no guard byte, and that every path agrees with sets[MX_REF] on
 * every buffer (NaN rule) and on the outputs (grad_norm bit for bit). `what` leads messages. */
void mx_step_and_compare(const mx_config *c, int64_t step, mx_set *const *sets, int npaths,
                         const fopt_step_options *o, const char *what);
/* mx_step_and_compare() over clones of start on every path, once per instruction set of the fast
 * path (`first_threads`, 1 or 2, threads on the first, alternating with the other count); returns
 * the reference's set of the last round (the others freed) and its outputs in *o. */
mx_set *mx_step_every_isa(const mx_config *c, const mx_set *start, int64_t step,
                          const fopt_step_options *o, int first_threads, const char *label);

/* A step that must be skipped (an inf/NaN gradient or scale): on every path, and every ISA of the
 * fast path, step 3 of c on a clone of s with grad_scale `scale`, clipping (max_grad_norm 0.5),
 * grad_norm, zero_grads and grad_sq_sum `ext` on must succeed with found_inf 1, a grad_norm that
 * is NaN (`norm_nan`) or at least not finite, and not one byte written. `label` leads messages. */
void mx_expect_skip(const mx_config *c, const mx_set *s, const float *scale, const double *ext, bool norm_nan,
                    const char *label);

/* An independent model of docs/SEMANTICS.md's storage rules and step options: the sum of squares
 * in the fixed order of kernels/stats.h (written here from its description), and one step applied
 * to s element by element with the conversion oracles above around the flat fp32 reference
 * (fopt_adam_step_ref / fopt_rmsprop_step_ref on one element). Slow: small lists only. */
double mx_model_sq_sum(const mx_set *s, const float *scale);
void mx_model_step(const mx_config *c, int64_t step, mx_set *s, const fopt_step_options *o);

#endif

