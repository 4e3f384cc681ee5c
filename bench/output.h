/* fopt_bench's output: the table on stdout, the CSV rows, and the tally of the correctness checks.
 *
 * Table columns: optimizer variant impl dtype case tensors elements median_us Gelem/s GB/s %copy
 * x_cpu x_ref max_rel_err host_us (rows of the emulated device end with "EMULATED").
 * CSV columns (bench_csv_open): optimizer, variant, impl, dtype, tensors, elements, median_us,
 * bytes_per_elem, gb_per_s, pct_of_copy_bw, max_rel_err, device; dtype is the storage mode
 * (bench/modes.h). Implementations (impl):
 *   fused           fopt_step, eager, non-capturable optimizer
 *   fused_ex        fopt_step_ex with grad_scale, max_grad_norm, grad_norm and found_inf
 *   fused_graph     a CUDA graph holding one fopt_step of a capturable optimizer, replayed
 *   unfused_cublas  one pass per operation (cuBLAS level-1 + one-line kernels), fp32 only
 *   cpu, cpu_ex     the fast CPU path (_cpu_multi), plain step / with the same step options
 *   cpu_ref, cpu_ref_ex  the CPU reference (_ref_multi) */
#ifndef FOPT_BENCH_OUTPUT_H
#define FOPT_BENCH_OUTPUT_H

#include <stdbool.h>
#include <stdio.h>

#include "cases.h"
#include "modes.h"
#include "timing.h"

/* The correctness check of a row: fusedopt's own rows (fused*, cpu*) must be bit-identical to the
 * reference (max_rel_err exactly 0), as the library promises for every path; the unfused baseline
 * rounds differently and may differ by up to BENCH_ERR_LIMIT (the limit scripts/run.sh applies to
 * the CSV). NaN always fails. */
#define BENCH_ERR_LIMIT 1e-4

typedef struct bench_row {
    const fopt_variant *v;
    const bench_mode *m;
    const bench_case *c;
    const char *impl;
    int bytes_per_elem;
    bool gpu;         /* ran on the device (a GPU, or the emulated one) */
    bool reference;   /* the reference itself: max_rel_err 0 by definition */
    double median_us; /* NAN: not timed, no row */
    double host_us;   /* host enqueue time of device rows; NAN otherwise */
    double max_err;   /* largest relative difference from the reference; NaN: a NaN result */
} bench_row;

typedef struct bench_output {
    FILE *csv;
    char cpu_device[160];
    const bench_gpu *gpu;
    /* correctness tally */
    int checked, failed; /* rows checked, rows failed */
    int exact;           /* rows that had to be bit-identical */
    double worst;   /* largest max_rel_err of a checked row */
    bool worst_nan; /* some row gave NaN */
    char worst_row[160], first_failure[256];
} bench_output;

void output_table_header(void);
/* One row on stdout and in the CSV; cpu_us and ref_us are the fast path's and the reference's time
 * on the same case, mode and step kind (NAN: none) for the x_cpu and x_ref columns. Counts the
 * row's correctness check. */
void output_row(bench_output *o, const bench_row *r, double cpu_us, double ref_us);
/* GB/s of a row's bytes, and its percent of the copy bandwidth (NAN when none is measured or the
 * row did not run on a real GPU). */
double output_gbs(const bench_row *r);
double output_pct(const bench_output *o, const bench_row *r);

#endif
