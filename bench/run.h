/* fopt_bench's implementations over one case in one storage mode: the CPU reference, the fast CPU
 * path, the fused GPU step (eager, with step options, or replayed from a CUDA graph) and the
 * unfused cuBLAS baseline.
 *
 * Every implementation starts from the same data (params and grads uniform in (-1, 1), never
 * zero, fixed seeds, rounded to the mode's dtype; masters the params' upcast or zero remainders;
 * states zero), takes VALIDATION_STEPS steps and is compared with the reference on the case's check
 * windows (bench/cases.h): per tensor max|x - x_ref| / max|x_ref| over the params (upcast) and,
 * with master weights, over the fp32 masters; the worst tensor. Step-option rows also compare the
 * global grad norm with the reference's and require found_inf == 0. Then it is timed.
 *
 * The step options of the *_ex rows: grad_scale 1024 (the grads are divided by it),
 * max_grad_norm half the global norm of the unscaled grads (so every step clips), grad_norm and
 * found_inf wanted: the statistics kernel and the step kernel, as a training loop with AMP and
 * clipping runs them. */
#ifndef FOPT_BENCH_RUN_H
#define FOPT_BENCH_RUN_H

#include <stdbool.h>
#include <stddef.h>

#include "cases.h"
#include "modes.h"
#include "output.h"
#include "timing.h"

#define VALIDATION_STEPS 3
#define BENCH_GRAD_SCALE 1024.0f

typedef struct run_config {
    int reps;          /* most timed device repetitions per row */
    double gpu_budget; /* seconds of timed device steps per row */
    int cpu_reps;      /* most timed CPU steps per row */
    double cpu_budget; /* seconds of timed CPU steps per row */
    bool cpu_rows;     /* time the cpu and cpu_ref rows (the reference runs for the checks anyway) */
} run_config;

typedef enum run_kind { RUN_STEP = 0, RUN_STEP_EX = 1 } run_kind;

/* Host data of one case in one mode. */
typedef struct case_host {
    const bench_case *c;
    const bench_mode *m;
    size_t ps, ms, ss;           /* bytes per element: param/grad, master, state */
    void *p0, *g, *master0;      /* initial params, grads, initial masters (NULL: none) */
    void *p, *master, *st[3];    /* the fast path's arrays, whole case */
    void *wp, *wg, *wmaster, *wst[3]; /* the reference's arrays, windows */
    void *dp, *dmaster, *dbuf;   /* a device run's params and masters on the windows; one tensor */
    float *ref_view[2], *view[2];/* params (upcast) and masters on the windows */
    fopt_host_tensor *tensors, *wtensors;
    double sq_sum;               /* sum of squares of the unscaled grads of the whole case */
    double max_norm;             /* max_grad_norm of the *_ex rows */
    float ref_norm;              /* the reference's grad_norm */
} case_host;

/* Allocates and fills; false when host memory is short (nothing stays allocated). */
bool case_host_init(case_host *h, const bench_case *c, const bench_mode *m);
void case_host_free(case_host *h);

/* Device buffers of one case in one mode: initial params, params, grads, the step options'
 * scalars, and (fp32 with the unfused baseline) the baseline's three state arrays. */
typedef struct case_dev {
    void *p0, *p, *g;
    float *st[3];
    void *scalars; /* float grad_scale, float grad_norm, int32 found_inf */
} case_dev;

/* Device bytes a case in a mode needs, optimizer states and unfused scratch included. */
size_t case_dev_bytes(const bench_case *c, const bench_mode *m, bool unfused);
void case_dev_init(case_dev *d, bench_gpu *g, const case_host *h, bool unfused);
void case_dev_free(case_dev *d);

/* The reference on the windows: VALIDATION_STEPS steps (more when timed), keeps ref_view and
 * ref_norm. The row is timed only when the windows are the whole case (else median_us NAN). */
void run_reference(case_host *h, const fopt_variant *v, run_kind kind, const run_config *rc, bench_row *row);
/* The fast CPU path on the whole case. */
void run_cpu(case_host *h, const fopt_variant *v, run_kind kind, const run_config *rc, bench_row *row);
/* fusedopt on the device: eager fopt_step / fopt_step_ex, or (graph) a captured fopt_step of a
 * capturable optimizer replayed. `flush`: L2 flush before each timed step, else a spin. */
void run_fused(bench_gpu *g, case_host *h, case_dev *d, const fopt_variant *v, run_kind kind, bool graph,
               bool flush, const run_config *rc, bench_row *row);
/* The unfused cuBLAS baseline (fp32, real CUDA build only). `u` is a bench_unfused. */
void run_unfused(bench_gpu *g, void *u, case_host *h, case_dev *d, const fopt_variant *v, bool flush,
                 const run_config *rc, bench_row *row);

#endif
