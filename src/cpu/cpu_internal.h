/* Internal pieces of the fast CPU path (src/adam_cpu.c, src/rmsprop_cpu.c, src/cpu_dispatch.c):
 * instruction-set selection, the thread partition, and a same-traffic "roofline" loop for the
 * benchmark. Not installed; the tests and bench/cpu_bench.c reach these hidden symbols through
 * the static library.
 *
 * Kernels are written once per optimizer, as a template over a small vector-op layer (below),
 * instantiated for three instruction sets: portable scalar C, AVX2 (8 floats) and AVX-512F
 * (16 floats). The x86 variants are compiled with GCC function attributes (target("avx2"),
 * target("avx512f")), so the library needs no -march flag and runs on any x86-64; the one to use
 * is chosen at run time from what the CPU (and the OS) supports.
 *
 * Every op rounds exactly like its scalar C counterpart (add, sub, mul, div and sqrt are
 * correctly rounded in SSE/AVX; no FMA), and the kernels evaluate in the reference's order, so
 * every instantiation is bit-identical to fopt_*_step_ref. */
#ifndef FUSEDOPT_CPU_INTERNAL_H
#define FUSEDOPT_CPU_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "internal.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Instruction sets, in increasing order. */
typedef enum fopt_cpu_isa_level {
    FOPT_CPU_ISA_SCALAR = 0,
    FOPT_CPU_ISA_AVX2 = 1,
    FOPT_CPU_ISA_AVX512 = 2,
} fopt_cpu_isa_level;

/* The best instruction set this CPU and build support (ignores any forcing). */
fopt_cpu_isa_level fopt_cpu_isa_max(void);
/* The instruction set the kernels use now: the forced one if any, else fopt_cpu_isa_max(). The
 * environment variable FOPT_CPU_ISA=scalar|avx2|avx512 forces one at start-up (ignored when the
 * CPU lacks it). */
fopt_cpu_isa_level fopt_cpu_isa_current(void);
/* "scalar", "avx2", "avx512"; NULL for anything else. */
const char *fopt_cpu_isa_name(fopt_cpu_isa_level isa);
/* Forces an instruction set for the following calls (for tests and benchmarks): "scalar", "avx2",
 * "avx512", or NULL / "" / "auto" for the automatic choice (FOPT_CPU_ISA, re-read, when it names a
 * supported set, else the best). FOPT_ERROR_NOT_SUPPORTED when this
 * CPU lacks it, FOPT_ERROR_INVALID_VALUE for an unknown name; nothing changes then. */
fopt_status fopt_cpu_force_isa(const char *name);

/* 1 when the library was built with OpenMP (fopt_cpu_set_threads() takes effect), else 0. */
int fopt_cpu_multithreaded(void);

/* Calls below this many elements per thread do not split further; a call with fewer than twice
 * this runs on the calling thread only (no fork/join). */
#define FOPT_CPU_DEFAULT_GRAIN ((size_t)32768)
/* Sets the grain (elements per thread, >= 1) for tests that want small sizes split over threads;
 * 0 restores FOPT_CPU_DEFAULT_GRAIN. */
void fopt_cpu_set_grain(size_t grain);

/* The body of one thread's share: elements [begin, end) of the call. */
typedef void (*fopt_cpu_range_fn)(void *ctx, size_t begin, size_t end);

/* Runs fn over [0, n) split into contiguous ranges, one per thread (fopt_cpu_threads() threads at
 * most, fewer for small n). Range boundaries fall on 64-byte boundaries of `align_ref` (the
 * parameter array) so that two threads never write the same cache line of it; they are multiples
 * of 16 elements apart, so any other array with the same alignment is split the same way. */
void fopt_cpu_parallel(size_t n, const void *align_ref, fopt_cpu_range_fn fn, void *ctx);

/* As fopt_cpu_parallel(), with `grain` items per thread at least (0: the elements' grain). */
void fopt_cpu_parallel_grain(size_t n, size_t grain, const void *align_ref, fopt_cpu_range_fn fn,
                             void *ctx);

/* Boundary of range t of nt over n elements (t in [0, nt]; 0 for t == 0, n for t == nt). */
size_t fopt_cpu_split(size_t n, const void *align_ref, int nt, int t);

/* Storage conversions over arrays for one instruction set (src/cpu/cpu_convert.c), bit-identical
 * to kernels/dtype.h's element functions. */
typedef struct fopt_cpu_convert {
    void (*up_f16)(const uint16_t *s, float *d, size_t n);
    void (*up_bf16)(const uint16_t *s, float *d, size_t n);
    void (*down_f16)(const float *s, uint16_t *d, size_t n);
    void (*down_bf16)(const float *s, uint16_t *d, size_t n);
    /* stochastic: element i uses fopt_sr_random16(key, first + i) */
    void (*down_bf16_sr)(const float *s, uint16_t *d, size_t n, uint64_t key, uint64_t first);
    void (*rem_decode)(const uint16_t *param, const uint16_t *rem, float *d, size_t n);
    void (*rem_encode)(const float *s, uint16_t *param, uint16_t *rem, size_t n);
} fopt_cpu_convert;
const fopt_cpu_convert *fopt_cpu_converter(int isa);

/* Same-traffic roofline loop for benchmarks: reads ro[0..n) and each rw[k][0..n), writes each
 * rw[k] (rw[k][i] += ro[i]), with the chosen ISA, threads and partition of the optimizer kernels.
 * nrw in [1, 8]. */
void fopt_cpu_roofline(size_t n, const float *ro, float *const *rw, int nrw);

#ifdef __cplusplus
}
#endif

/* ---------------------------------------------------------------------------------------------
 * Vector-op layer. Each set defines, for its vector type: ld (unaligned load), st (unaligned
 * store), set1, add, sub, mul, div, sqrt, neg (flip the sign bit, as unary minus in C), maxnan
 * (torch.maximum on (a, b) as the reference writes it: a when a is NaN or a > b, else b) and
 * clamp0 (x < 0 ? 0 : x; NaN stays NaN). The template code names them through FOPT_V(op).
 * ------------------------------------------------------------------------------------------- */
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define FOPT_CPU_X86 1
#include <immintrin.h>
#define FOPT_TARGET_AVX2 __attribute__((target("avx2,f16c")))
#define FOPT_TARGET_AVX512 __attribute__((target("avx512f")))
#endif

#define FOPT_INLINE static inline __attribute__((always_inline))

/* The instantiation of `name` (cpu_instantiate.h) for an instruction set: name##_avx512,
 * name##_avx2 or name##_scalar. */
#ifdef FOPT_CPU_X86
#define FOPT_CPU_PICK(isa, name)                                                                   \
    ((isa) == FOPT_CPU_ISA_AVX512 ? name##_avx512 : (isa) == FOPT_CPU_ISA_AVX2 ? name##_avx2 : name##_scalar)
#else
#define FOPT_CPU_PICK(isa, name) (name##_scalar)
#endif

/* Scalar: plain C floats, exactly the reference's expressions. */
typedef float fopt_v1;
FOPT_INLINE fopt_v1 fopt_v1_ld(const float *p) { return *p; }
FOPT_INLINE void fopt_v1_st(float *p, fopt_v1 x) { *p = x; }
FOPT_INLINE fopt_v1 fopt_v1_set1(float x) { return x; }
FOPT_INLINE fopt_v1 fopt_v1_add(fopt_v1 a, fopt_v1 b) { return a + b; }
FOPT_INLINE fopt_v1 fopt_v1_sub(fopt_v1 a, fopt_v1 b) { return a - b; }
FOPT_INLINE fopt_v1 fopt_v1_mul(fopt_v1 a, fopt_v1 b) { return a * b; }
FOPT_INLINE fopt_v1 fopt_v1_div(fopt_v1 a, fopt_v1 b) { return a / b; }
FOPT_INLINE fopt_v1 fopt_v1_sqrt(fopt_v1 a) { return __builtin_sqrtf(a); }
FOPT_INLINE fopt_v1 fopt_v1_neg(fopt_v1 a) { return -a; }
FOPT_INLINE fopt_v1 fopt_v1_maxnan(fopt_v1 a, fopt_v1 b) { return (a != a || a > b) ? a : b; }
FOPT_INLINE fopt_v1 fopt_v1_clamp0(fopt_v1 a) { return a < 0.0f ? 0.0f : a; }

#ifdef FOPT_CPU_X86
/* The ops of a vector type that are one intrinsic of the same name at each width: fopt_v##w##_op
 * over vector type `vt`, intrinsics prefix##op##_ps, functions declared `fn`. */
#define FOPT_VEC_SIMPLE_OPS(w, vt, prefix, fn)                                                     \
    typedef vt fopt_v##w;                                                                          \
    fn fopt_v##w fopt_v##w##_ld(const float *p) { return prefix##loadu_ps(p); }                    \
    fn void fopt_v##w##_st(float *p, fopt_v##w x) { prefix##storeu_ps(p, x); }                     \
    fn fopt_v##w fopt_v##w##_set1(float x) { return prefix##set1_ps(x); }                          \
    fn fopt_v##w fopt_v##w##_add(fopt_v##w a, fopt_v##w b) { return prefix##add_ps(a, b); }        \
    fn fopt_v##w fopt_v##w##_sub(fopt_v##w a, fopt_v##w b) { return prefix##sub_ps(a, b); }        \
    fn fopt_v##w fopt_v##w##_mul(fopt_v##w a, fopt_v##w b) { return prefix##mul_ps(a, b); }        \
    fn fopt_v##w fopt_v##w##_div(fopt_v##w a, fopt_v##w b) { return prefix##div_ps(a, b); }        \
    fn fopt_v##w fopt_v##w##_sqrt(fopt_v##w a) { return prefix##sqrt_ps(a); }

/* AVX2: 8 floats. */
#define FOPT_V8_FN FOPT_INLINE FOPT_TARGET_AVX2
FOPT_VEC_SIMPLE_OPS(8, __m256, _mm256_, FOPT_V8_FN)
FOPT_V8_FN fopt_v8 fopt_v8_neg(fopt_v8 a) { return _mm256_xor_ps(a, _mm256_set1_ps(-0.0f)); }
FOPT_V8_FN fopt_v8 fopt_v8_maxnan(fopt_v8 a, fopt_v8 b)
{
    __m256 take_a = _mm256_or_ps(_mm256_cmp_ps(a, a, _CMP_UNORD_Q), _mm256_cmp_ps(a, b, _CMP_GT_OQ));
    return _mm256_blendv_ps(b, a, take_a);
}
FOPT_V8_FN fopt_v8 fopt_v8_clamp0(fopt_v8 a)
{
    /* LT_OQ is false for NaN, so NaN passes through; -0 is not < 0 and stays -0 as in C. */
    return _mm256_andnot_ps(_mm256_cmp_ps(a, _mm256_setzero_ps(), _CMP_LT_OQ), a);
}

/* AVX-512F: 16 floats. Only AVX512F instructions (no DQ: the sign flip goes through integers). */
#define FOPT_V16_FN FOPT_INLINE FOPT_TARGET_AVX512
FOPT_VEC_SIMPLE_OPS(16, __m512, _mm512_, FOPT_V16_FN)
FOPT_V16_FN fopt_v16 fopt_v16_neg(fopt_v16 a)
{
    return _mm512_castsi512_ps(
        _mm512_xor_si512(_mm512_castps_si512(a), _mm512_set1_epi32(-2147483647 - 1)));
}
FOPT_V16_FN fopt_v16 fopt_v16_maxnan(fopt_v16 a, fopt_v16 b)
{
    __mmask16 take_a = (__mmask16)(_mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q) |
                                   _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ));
    return _mm512_mask_blend_ps(take_a, b, a); /* a where the mask is set */
}
FOPT_V16_FN fopt_v16 fopt_v16_clamp0(fopt_v16 a)
{
    __mmask16 neg = _mm512_cmp_ps_mask(a, _mm512_setzero_ps(), _CMP_LT_OQ);
    return _mm512_mask_blend_ps(neg, a, _mm512_setzero_ps());
}
#endif /* FOPT_CPU_X86 */

#endif
