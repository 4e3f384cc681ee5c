/* Fast CPU path: the same-traffic roofline loop of the benchmarks, rw[k][i] += ro[i] for every k
 * in one pass, with the kernels' vector width, threads and partition. The loop is written once,
 * below the "template" line, and instantiated per instruction set as in adam_cpu.c
 * (cpu_instantiate.h). The number of streams is a compile-time constant in each vector
 * instantiation so that the loop is as tight as the optimizer kernels'. */
#ifndef FOPT_TPL_NAME /* ======================== common part ======================== */
#include <stddef.h>

#include "cpu_internal.h"

#define FOPT_ROOF_MAX 8

#define FOPT_TPL_FILE "roofline_cpu.c"
#include "cpu_instantiate.h"
#undef FOPT_TPL_FILE

typedef struct roof_ctx {
    const float *ro;
    float *rw[FOPT_ROOF_MAX];
    int nrw;
    int isa;
} roof_ctx;

static void roof_range(void *vctx, size_t b, size_t e)
{
    const roof_ctx *c = vctx;
    FOPT_CPU_PICK(c->isa, roof)(b, e, c->ro, c->rw, c->nrw);
}

void fopt_cpu_roofline(size_t n, const float *ro, float *const *rw, int nrw)
{
    if (!ro || !rw || nrw < 1 || nrw > FOPT_ROOF_MAX || n == 0)
        return;
    roof_ctx c = {.ro = ro, .nrw = nrw, .isa = (int)fopt_cpu_isa_current()};
    for (int k = 0; k < nrw; k++)
        c.rw[k] = rw[k];
    fopt_cpu_parallel(n, rw[0], roof_range, &c);
}

#else /* ======================== template: one instruction set (T, V: cpu_instantiate.h) ===== */

FOPT_INLINE FOPT_TPL_TARGET void FOPT_TPL_NAME(roof_body)(size_t b, size_t e, const float *ro,
                                                          float *const *rw, const int nrw)
{
    size_t i = b;
    for (; i + FOPT_TPL_W <= e; i += FOPT_TPL_W) {
        T g = V(ld)(ro + i);
        for (int k = 0; k < nrw; k++)
            V(st)(rw[k] + i, V(add)(V(ld)(rw[k] + i), g));
    }
#if FOPT_TPL_W > 1
    roof_body_scalar(i, e, ro, rw, nrw); /* the tail */
#endif
}

static FOPT_TPL_TARGET void FOPT_TPL_NAME(roof)(size_t b, size_t e, const float *ro, float *const *rw,
                                                int nrw)
{
#if FOPT_TPL_W > 1
    switch (nrw) {
    case 1: FOPT_TPL_NAME(roof_body)(b, e, ro, rw, 1); break;
    case 2: FOPT_TPL_NAME(roof_body)(b, e, ro, rw, 2); break;
    case 3: FOPT_TPL_NAME(roof_body)(b, e, ro, rw, 3); break;
    case 4: FOPT_TPL_NAME(roof_body)(b, e, ro, rw, 4); break;
    default: FOPT_TPL_NAME(roof_body)(b, e, ro, rw, nrw); break;
    }
#else
    FOPT_TPL_NAME(roof_body)(b, e, ro, rw, nrw);
#endif
}

#endif
