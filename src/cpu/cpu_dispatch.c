/* Fast CPU path: run-time instruction-set choice, thread count and the per-thread partition. The
 * optimizer kernels live in adam_cpu.c and rmsprop_cpu.c, the benchmarks' roofline loop in
 * roofline_cpu.c. */
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_internal.h"

#ifdef FOPT_HAVE_OPENMP
#include <omp.h>
#endif

/* ---------------------------------------------------------------------------------------------
 * Instruction set
 * ------------------------------------------------------------------------------------------- */
static atomic_int g_isa_max = -1;    /* detected once; -1 before */
static atomic_int g_isa_forced = -1; /* -1: automatic */

static const char *const k_isa_names[] = {"scalar", "avx2", "avx512"};

const char *fopt_cpu_isa_name(fopt_cpu_isa_level isa)
{
    return (isa >= FOPT_CPU_ISA_SCALAR && isa <= FOPT_CPU_ISA_AVX512) ? k_isa_names[isa] : NULL;
}

static int isa_from_name(const char *name)
{
    for (int i = 0; i <= FOPT_CPU_ISA_AVX512; i++)
        if (strcmp(name, k_isa_names[i]) == 0)
            return i;
    return -1;
}

static int isa_detect(void)
{
#ifdef FOPT_CPU_X86
    /* libgcc's detection also checks that the OS saves the YMM / ZMM state (XGETBV). */
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f"))
        return FOPT_CPU_ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c"))
        return FOPT_CPU_ISA_AVX2;
#endif
    return FOPT_CPU_ISA_SCALAR;
}

/* The level FOPT_CPU_ISA asks for when it names one this CPU has; -1 otherwise. */
static int isa_from_env(int max)
{
    const char *env = getenv("FOPT_CPU_ISA");
    int want = env ? isa_from_name(env) : -1;
    return want <= max ? want : -1;
}

fopt_cpu_isa_level fopt_cpu_isa_max(void)
{
    int isa = atomic_load(&g_isa_max);
    if (isa < 0) {
        isa = isa_detect();
        /* FOPT_CPU_ISA in the environment forces a lower (supported) set from the start. */
        int none = -1;
        atomic_compare_exchange_strong(&g_isa_forced, &none, isa_from_env(isa));
        atomic_store(&g_isa_max, isa);
    }
    return (fopt_cpu_isa_level)isa;
}

fopt_cpu_isa_level fopt_cpu_isa_current(void)
{
    fopt_cpu_isa_level max = fopt_cpu_isa_max();
    int forced = atomic_load(&g_isa_forced);
    return forced >= 0 ? (fopt_cpu_isa_level)forced : max;
}

fopt_status fopt_cpu_force_isa(const char *name)
{
    fopt_cpu_isa_level max = fopt_cpu_isa_max();
    if (!name || !name[0] || strcmp(name, "auto") == 0) { /* FOPT_CPU_ISA, else the best */
        atomic_store(&g_isa_forced, isa_from_env((int)max));
        return FOPT_SUCCESS;
    }
    int want = isa_from_name(name);
    if (want < 0)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "unknown CPU instruction set \"%s\"", name);
    if (want > (int)max)
        return fopt_fail(FOPT_ERROR_NOT_SUPPORTED, "this CPU does not support %s", name);
    atomic_store(&g_isa_forced, want);
    return FOPT_SUCCESS;
}

const char *fopt_cpu_isa(void) { return fopt_cpu_isa_name(fopt_cpu_isa_current()); }

/* ---------------------------------------------------------------------------------------------
 * Threads
 * ------------------------------------------------------------------------------------------- */
static atomic_int g_threads_set = 0;     /* fopt_cpu_set_threads(); 0: default */
static atomic_int g_threads_default = 0; /* computed lazily; 0 before */
static atomic_size_t g_grain = 0;        /* 0: FOPT_CPU_DEFAULT_GRAIN */

static int threads_default_compute(void)
{
#ifdef FOPT_HAVE_OPENMP
    const char *env = getenv("FOPT_NUM_THREADS");
    if (env && env[0]) {
        char *end = NULL;
        long v = strtol(env, &end, 10);
        if (end && *end == '\0' && v >= 1 && v <= 65536)
            return (int)v;
    }
    int procs = omp_get_num_procs();
    return procs >= 1 ? procs : 1;
#else
    return 1; /* built without OpenMP: the fast path is single-threaded */
#endif
}

fopt_status fopt_cpu_set_threads(int threads)
{
    if (threads < 0)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "threads must be >= 0, got %d", threads);
    if (threads == 0) /* back to the default, re-reading FOPT_NUM_THREADS */
        atomic_store(&g_threads_default, threads_default_compute());
    atomic_store(&g_threads_set, threads);
    return FOPT_SUCCESS;
}

int fopt_cpu_threads(void)
{
#ifndef FOPT_HAVE_OPENMP
    return 1;
#else
    int set = atomic_load(&g_threads_set);
    if (set > 0)
        return set;
    int def = atomic_load(&g_threads_default);
    if (def <= 0) {
        def = threads_default_compute();
        atomic_store(&g_threads_default, def);
    }
    return def;
#endif
}

int fopt_cpu_multithreaded(void)
{
#ifdef FOPT_HAVE_OPENMP
    return 1;
#else
    return 0;
#endif
}

void fopt_cpu_set_grain(size_t grain) { atomic_store(&g_grain, grain); }

/* Threads for a call over n elements: at most fopt_cpu_threads(), at least `grain` elements each. */
static int threads_for(size_t n, size_t grain)
{
    if (grain == 0)
        grain = atomic_load(&g_grain);
    if (grain == 0)
        grain = FOPT_CPU_DEFAULT_GRAIN;
    size_t by_size = n / grain;
    int nt = fopt_cpu_threads();
    return by_size < (size_t)nt ? (int)by_size : nt;
}

size_t fopt_cpu_split(size_t n, const void *align_ref, int nt, int t)
{
    if (t <= 0)
        return 0;
    if (t >= nt)
        return n;
    /* Elements before align_ref's first 64-byte boundary go to thread 0; every later boundary is
     * that one plus a multiple of 16 floats. */
    uintptr_t a = (uintptr_t)align_ref;
    size_t head = (a % sizeof(float) == 0) ? (size_t)((64 - a % 64) % 64) / sizeof(float) : 0;
    size_t per = n / (size_t)nt + (n % (size_t)nt != 0);
    per = (per + 15) & ~(size_t)15;
    if (per != 0 && (size_t)t > n / per) /* t*per would pass n (and could overflow) */
        return n;
    size_t b = head + per * (size_t)t;
    return b < n ? b : n;
}

void fopt_cpu_parallel(size_t n, const void *align_ref, fopt_cpu_range_fn fn, void *ctx)
{
    fopt_cpu_parallel_grain(n, 0, align_ref, fn, ctx);
}

void fopt_cpu_parallel_grain(size_t n, size_t grain, const void *align_ref, fopt_cpu_range_fn fn,
                             void *ctx)
{
    int nt = threads_for(n, grain);
    if (nt <= 1) {
        fn(ctx, 0, n);
        return;
    }
#ifdef FOPT_HAVE_OPENMP
#pragma omp parallel num_threads(nt)
    {
        /* The team can be smaller than asked (nested regions, OMP_DYNAMIC, thread limits). */
        int team = omp_get_num_threads(), t = omp_get_thread_num();
        size_t b = fopt_cpu_split(n, align_ref, team, t);
        size_t e = fopt_cpu_split(n, align_ref, team, t + 1);
        if (b < e)
            fn(ctx, b, e);
    }
#else
    (void)align_ref;
    fn(ctx, 0, n);
#endif
}
