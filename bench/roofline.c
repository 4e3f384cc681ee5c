/* The mixed-width same-traffic roofline of fopt_cpu_bench (bench/roofline.h). */
#include "roofline.h"

#include <stdint.h>
#include <string.h>

#include "bench_common.h"
#include "cpu_internal.h"

#define ROOF_BLOCK 512

typedef struct roof_ctx {
    void *ro[BENCH_MAX_ARRAYS], *rw[BENCH_MAX_ARRAYS], *wo[BENCH_MAX_ARRAYS];
    int ro_w[BENCH_MAX_ARRAYS], rw_w[BENCH_MAX_ARRAYS], wo_w[BENCH_MAX_ARRAYS];
    int nro, nrw, nwo;
    uint32_t mask; /* 0, unknown to the compiler */
    int isa;
} roof_ctx;

/* The element loops of one instruction set: restrict-qualified so that each vectorises alone. */
#define ROOF_DEFINE(SUF, ATTR)                                                                     \
    static ATTR void ld32_##SUF(uint32_t *restrict acc, const uint32_t *restrict s, size_t m, int first) \
    {                                                                                              \
        if (first)                                                                                 \
            for (size_t i = 0; i < m; i++)                                                         \
                acc[i] = s[i];                                                                     \
        else                                                                                       \
            for (size_t i = 0; i < m; i++)                                                         \
                acc[i] ^= s[i];                                                                    \
    }                                                                                              \
    static ATTR void ld16_##SUF(uint32_t *restrict acc, const uint16_t *restrict s, size_t m, int first) \
    {                                                                                              \
        if (first)                                                                                 \
            for (size_t i = 0; i < m; i++)                                                         \
                acc[i] = (uint32_t)s[i] << 16;                                                     \
        else                                                                                       \
            for (size_t i = 0; i < m; i++)                                                         \
                acc[i] ^= (uint32_t)s[i] << 16;                                                    \
    }                                                                                              \
    static ATTR void rw32_##SUF(uint32_t *restrict a, const uint32_t *restrict acc, uint32_t mask, size_t m) \
    {                                                                                              \
        for (size_t i = 0; i < m; i++)                                                             \
            a[i] += acc[i] & mask;                                                                 \
    }                                                                                              \
    static ATTR void rw16_##SUF(uint16_t *restrict a, const uint32_t *restrict acc, uint32_t mask, size_t m) \
    {                                                                                              \
        for (size_t i = 0; i < m; i++)                                                             \
            a[i] = (uint16_t)(a[i] + ((acc[i] & mask) >> 16));                                     \
    }                                                                                              \
    static ATTR void wo32_##SUF(uint32_t *restrict a, const uint32_t *restrict acc, size_t m)      \
    {                                                                                              \
        for (size_t i = 0; i < m; i++)                                                             \
            a[i] = acc[i];                                                                         \
    }                                                                                              \
    static ATTR void wo16_##SUF(uint16_t *restrict a, const uint32_t *restrict acc, size_t m)      \
    {                                                                                              \
        for (size_t i = 0; i < m; i++)                                                             \
            a[i] = (uint16_t)(acc[i] >> 16);                                                       \
    }                                                                                              \
    static ATTR void range_##SUF(const roof_ctx *c, size_t b, size_t e)                            \
    {                                                                                              \
        uint32_t acc[ROOF_BLOCK] __attribute__((aligned(64)));                                     \
        for (size_t blk = b; blk < e; blk += ROOF_BLOCK) {                                         \
            const size_t m = e - blk < ROOF_BLOCK ? e - blk : ROOF_BLOCK;                          \
            for (int k = 0; k < c->nro; k++) {                                                     \
                if (c->ro_w[k] == 4)                                                               \
                    ld32_##SUF(acc, (const uint32_t *)c->ro[k] + blk, m, k == 0);                  \
                else                                                                               \
                    ld16_##SUF(acc, (const uint16_t *)c->ro[k] + blk, m, k == 0);                  \
            }                                                                                      \
            for (int k = 0; k < c->nrw; k++) {                                                     \
                if (c->rw_w[k] == 4)                                                               \
                    rw32_##SUF((uint32_t *)c->rw[k] + blk, acc, c->mask, m);                       \
                else                                                                               \
                    rw16_##SUF((uint16_t *)c->rw[k] + blk, acc, c->mask, m);                       \
            }                                                                                      \
            for (int k = 0; k < c->nwo; k++) {                                                     \
                if (c->wo_w[k] == 4)                                                               \
                    wo32_##SUF((uint32_t *)c->wo[k] + blk, acc, m);                                \
                else                                                                               \
                    wo16_##SUF((uint16_t *)c->wo[k] + blk, acc, m);                                \
            }                                                                                      \
        }                                                                                          \
    }

ROOF_DEFINE(scalar, )
#ifdef FOPT_CPU_X86
ROOF_DEFINE(avx2, FOPT_TARGET_AVX2)
ROOF_DEFINE(avx512, FOPT_TARGET_AVX512)
#endif

static void roof_range(void *vctx, size_t b, size_t e)
{
    const roof_ctx *c = vctx;
    switch (c->isa) {
#ifdef FOPT_CPU_X86
    case FOPT_CPU_ISA_AVX512: range_avx512(c, b, e); break;
    case FOPT_CPU_ISA_AVX2: range_avx2(c, b, e); break;
#endif
    default: range_scalar(c, b, e); break;
    }
}

/* A zero the compiler cannot see through. */
static volatile uint32_t g_zero = 0;

void bench_roofline(size_t n, const bench_traffic *t, void *const ptr[], const void *align_ref)
{
    roof_ctx c;
    memset(&c, 0, sizeof c);
    c.mask = g_zero;
    c.isa = (int)fopt_cpu_isa_current();
    for (int k = 0; k < t->count; k++) {
        const bench_array *a = &t->a[k];
        if (a->width != 2 && a->width != 4)
            bench_die("internal: roofline array %s of width %d", a->name, a->width);
        if (a->access == BENCH_READ) {
            c.ro[c.nro] = ptr[k];
            c.ro_w[c.nro++] = a->width;
        } else if (a->access == BENCH_RW) {
            c.rw[c.nrw] = ptr[k];
            c.rw_w[c.nrw++] = a->width;
        } else {
            c.wo[c.nwo] = ptr[k];
            c.wo_w[c.nwo++] = a->width;
        }
    }
    if (c.nro == 0 || n == 0)
        return;
    fopt_cpu_parallel(n, align_ref, roof_range, &c);
}
