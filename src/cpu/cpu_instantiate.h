/* Instantiates an element loop once per instruction set: includes FOPT_TPL_FILE (a source file
 * that includes itself, see src/adam_cpu.c) with FOPT_TPL_* naming the vector type, its
 * operations (cpu_internal.h), its width and the target attribute:
 *   portable C (width 1, also the tail of the vector loops); on x86, AVX2 (8) and AVX-512F (16).
 * Inside FOPT_TPL_FILE, T and V(op) are short for FOPT_TPL_T and FOPT_TPL_V(op), and the helpers
 * of cpu_instantiate_one.h are defined for the instruction set.
 * Meant to be included more than once, so it has no include guard. */
#define T FOPT_TPL_T
#define V(op) FOPT_TPL_V(op)

#define FOPT_TPL_NAME(x) x##_scalar
#define FOPT_TPL_T fopt_v1
#define FOPT_TPL_V(op) fopt_v1_##op
#define FOPT_TPL_W 1
#define FOPT_TPL_TARGET
#include "cpu_instantiate_one.h"

#ifdef FOPT_CPU_X86
#define FOPT_TPL_NAME(x) x##_avx2
#define FOPT_TPL_T fopt_v8
#define FOPT_TPL_V(op) fopt_v8_##op
#define FOPT_TPL_W 8
#define FOPT_TPL_TARGET FOPT_TARGET_AVX2
#include "cpu_instantiate_one.h"

#define FOPT_TPL_NAME(x) x##_avx512
#define FOPT_TPL_T fopt_v16
#define FOPT_TPL_V(op) fopt_v16_##op
#define FOPT_TPL_W 16
#define FOPT_TPL_TARGET FOPT_TARGET_AVX512
#include "cpu_instantiate_one.h"
#endif

#undef T
#undef V
