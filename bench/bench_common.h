/* Helpers shared by the two benchmark programs, fopt_bench (bench/fopt_bench.c) and
 * fopt_cpu_bench (bench/cpu_bench.c):
 *   - bench_die(): the message to stderr after the program's name, then exit(1);
 *   - a monotonic clock in seconds or microseconds, and the median of an array of doubles;
 *   - splitmix64, the fixed random stream both draw their data from;
 *   - the CPU's model name from /proc/cpuinfo;
 *   - the largest relative difference of an array from its reference;
 *   - the optimizer variants both measure (Adam, AdamW, AMSGrad, RMSprop plain / momentum /
 *     centered / centered+momentum) with the bytes an fp32 step of each must move, and one CPU
 *     step (fast path or reference) of a variant;
 *   - the results CSV: the file, opened with its header line. */
#ifndef FOPT_BENCH_COMMON_H
#define FOPT_BENCH_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "fusedopt.h"

/* Each program defines its name, which starts bench_die()'s messages ("fopt_bench"). */
extern const char bench_program[];

/* Prints "<bench_program>: <message>\n" to stderr and exits with status 1. */
void bench_die(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((noreturn, format(printf, 1, 2)))
#endif
    ;

/* CLOCK_MONOTONIC, in seconds and in microseconds. */
double bench_now_s(void);
double bench_now_us(void);

/* Sorts x[0..n) and returns its median; NaN when n <= 0. */
double bench_median(double *x, int n);

/* splitmix64: the next value of the stream whose state is *state. */
uint64_t bench_rng_next(uint64_t *state);
/* The top 24 bits of a value of the stream as a float in (0, 1). */
float bench_rng_unit(uint64_t r);

/* The "model name" of /proc/cpuinfo's first CPU into out; `fallback` when there is none. */
void bench_cpu_model(char *out, size_t size, const char *fallback);

/* max|a - ref| / max|ref| over n elements (max|a - ref| when ref is all zero); NaN when a
 * difference is NaN or infinite. */
double bench_max_rel_err(const float *a, const float *ref, size_t n);

/* ---- optimizer variants ---- */
#define BENCH_MAX_VARIANTS 8

typedef struct bench_variant {
    const char *name;      /* the name on the command line and in the grep lines */
    const char *optimizer; /* CSV: adam, adamw, rmsprop (the PyTorch class) */
    const char *variant;   /* CSV: plain, amsgrad, momentum, centered, centered_momentum */
    bool is_adam;
    int nstate; /* state arrays: Adam m, v (+ vmax); RMSprop v (+ momentum buf) (+ grad_avg) */
    fopt_adam_config adam;
    fopt_rmsprop_config rms;
} bench_variant;

/* Fills v (BENCH_MAX_VARIANTS entries at most) with the variants; returns how many (7). */
int bench_make_variants(bench_variant *v);

/* The fewest bytes an fp32 step moves per element: the gradient read, the parameter and every
 * state array read and written (Adam 28, AMSGrad 36, RMSprop 20, +8 for momentum or centered). */
int bench_bytes_per_elem(const bench_variant *v);

/* The state pointers a step of v takes, at element `off` of the arrays st[0..nstate), which hold
 * the variant's states in the order above; NULL where the variant keeps no such state. */
void bench_state_ptrs(const bench_variant *v, float *const st[3], size_t off, float *out[3]);

/* One step of v over elements [off, off + n) of p, g and the states st (as bench_state_ptrs()):
 * the CPU reference when `ref`, else the fast CPU path. */
fopt_status bench_cpu_step(const bench_variant *v, bool ref, int64_t step, size_t off, size_t n,
                           float *p, const float *g, float *const st[3]);

/* ---- CSV ---- */

/* Opens `path` for writing (bench_die() when it cannot) and writes the header line of the
 * columns both programs write: optimizer, variant, impl, dtype, tensors, elements, median_us,
 * bytes_per_elem, gb_per_s, pct_of_copy_bw, max_rel_err, device. */
FILE *bench_csv_open(const char *path);

#endif
