/* Storage modes of the benchmarks (fopt_bench and fopt_cpu_bench): which dtype the params and
 * grads have, whether an fp32 master copy (or a 16-bit remainder) is kept, the states' dtype and
 * stochastic rounding. One table (bench/modes.c) names them for the command line and the CSV
 * `dtype` column.
 *
 * The memory traffic of a step is derived here once, as the list of arrays the kernel must read
 * and write per element (bench_traffic_of). The byte counts of every GB/s and % column, the
 * `--list-bytes` table and the CPU same-traffic roofline (bench/roofline.c) all come from that
 * list, so they cannot disagree. The rules follow kernels/chunk.cuh:
 *   - grad: read (width of the param dtype);
 *   - param: read and written, except with an fp32 master, where the step reads the master and
 *     only writes the rounded param;
 *   - master: fp32 (4 B) or remainder (2 B), read and written;
 *   - every state the variant keeps: read and written, in the state dtype;
 *   - with the statistics pass of fopt_step_ex (clipping, grad_norm, found_inf), the grads are
 *     read once more (4 B fp32, 2 B fp16/bf16). */
#ifndef FOPT_BENCH_MODES_H
#define FOPT_BENCH_MODES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fusedopt.h"
#include "variants.h"

typedef enum bench_master { BENCH_MASTER_NONE = 0, BENCH_MASTER_F32 = 1, BENCH_MASTER_REMAINDER = 2 } bench_master;

typedef struct bench_mode {
    const char *name;         /* command line and CSV dtype column: "fp32", "bf16_master", ... */
    const char *description;  /* "bf16 params+grads, fp32 master, fp32 states" */
    fopt_dtype dtype;         /* params and grads */
    fopt_precision precision; /* state dtype, master weights / remainder, stochastic rounding */
} bench_mode;

/* fp32, bf16_master, bf16_remainder, bf16_sr, fp16_master, fp32_bf16_states: in this order. */
extern const bench_mode bench_modes[];
extern const size_t bench_mode_count;

/* The mode called `name`, or NULL. */
const bench_mode *bench_mode_find(const char *name);
/* How the mode keeps the math parameter (none for fp32 params). */
bench_master bench_mode_master(const bench_mode *m);
/* Bytes of one element of a dtype (4 or 2). */
size_t bench_dtype_size(fopt_dtype dt);
/* Bytes per element of the master slot: 4, 2 (remainder) or 0. */
size_t bench_master_size(const bench_mode *m);

/* ---- traffic ---- */
#define BENCH_MAX_ARRAYS 8
typedef enum bench_access { BENCH_READ = 1, BENCH_WRITE = 2, BENCH_RW = 3 } bench_access;
typedef struct bench_array {
    const char *name;   /* "grad", "param", "master", "exp_avg", ... */
    int width;          /* bytes per element */
    bench_access access;
} bench_array;
typedef struct bench_traffic {
    bench_array a[BENCH_MAX_ARRAYS];
    int count;
    int bytes; /* per element: the sum of width x (read + write) */
} bench_traffic;

/* The arrays one step of variant v in mode m moves per element (stats_pass: the extra grad read
 * of fopt_step_ex's statistics kernel), in the order grad, [grad again], param, master, states. */
void bench_traffic_of(const fopt_variant *v, const bench_mode *m, bool stats_pass, bench_traffic *t);
/* Its bytes per element. */
int bench_bytes_per_elem(const fopt_variant *v, const bench_mode *m, bool stats_pass);
/* "read grad 2 + master 4 + exp_avg 4 + exp_avg_sq 4; write param 2 + master 4 + ..." */
void bench_traffic_format(const bench_traffic *t, char *buf, size_t size);

/* The name of state slot k of variant v ("exp_avg", "square_avg", ...). */
const char *bench_state_name(const fopt_variant *v, int k);
/* Number of state slots v keeps. */
int bench_state_count(const fopt_variant *v);

/* ---- configs ---- */
/* v's config with m's precision (and `capturable`), for fopt_*_create and the CPU entry points. */
fopt_adam_config bench_adam_config(const fopt_variant *v, const bench_mode *m, bool capturable);
fopt_rmsprop_config bench_rmsprop_config(const fopt_variant *v, const bench_mode *m, bool capturable);

/* ---- elements ---- */
/* x rounded (nearest-even) to dtype and stored at element i of dst. */
void bench_store(fopt_dtype dt, void *dst, size_t i, float x);
/* Element i of src as a float (exact). */
float bench_load(fopt_dtype dt, const void *src, size_t i);
/* n elements of src as floats into dst (exact). */
void bench_to_float(fopt_dtype dt, const void *src, float *dst, size_t n);
/* The fp32 master of element i: master[i] (fp32), or param and remainder decoded. */
float bench_master_value(const bench_mode *m, const void *param, const void *master, size_t i);

/* One CPU step (fast path or reference) of the listed host tensors. */
fopt_status bench_cpu_multi(const fopt_variant *v, const bench_mode *m, bool ref, int64_t step,
                            const fopt_host_tensor *t, size_t count, const fopt_step_options *opts);

/* Comma-separated names -> selection flags (sel[i] for bench_modes[i]); "all" selects all. An
 * unknown name ends the program (bench_die) naming `option`. */
void bench_modes_parse(const char *list, bool *sel, const char *option);

#endif
