/* Helpers shared by the two benchmark programs, fopt_bench (bench/fopt_bench.c) and
 * fopt_cpu_bench (bench/cpu_bench.c):
 *   - bench_die(): the message to stderr after the program's name, then exit(1);
 *   - a monotonic clock in seconds or microseconds, and the median of an array of doubles;
 *   - splitmix64, the fixed random stream both draw their data from;
 *   - the CPU's model name from /proc/cpuinfo;
 *   - the largest relative difference of an array from its reference;
 *   - the selection of optimizer variants by their bench_name (the list itself is
 *     bench/variants.c, shared with the tests; bytes per element are bench/modes.c's);
 *   - the results CSV: the file, opened with its header line;
 *   - the command line: a table of options parsed into the program's settings. */
#ifndef FOPT_BENCH_COMMON_H
#define FOPT_BENCH_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "fusedopt.h"
#include "variants.h"

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

/* A comma-separated list of names, or "all", -> sel[i] for i < count, where name_of(i) is item i's
 * name (NULL: not selectable). An unknown name ends the program naming `option`, the kind of
 * name and the choices. */
void bench_list_select(const char *list, bool *sel, size_t count, const char *(*name_of)(size_t i),
                       const char *option, const char *kind);

/* ---- optimizer variants (bench/variants.h: the measured ones have a bench_name) ---- */

/* Comma-separated bench names (adam, adamw, amsgrad, rmsprop, rmsprop_momentum, rmsprop_centered,
 * rmsprop_centered_momentum) or "all" -> sel[i] for fopt_variants[i]. An unknown name ends the
 * program naming `option`. */
void bench_variants_parse(const char *list, bool *sel, const char *option);
/* The measured variant called `bench_name`, or NULL. */
const fopt_variant *bench_variant_find(const char *bench_name);
/* The measured variants' names, comma-separated (for --help and messages). */
const char *bench_variant_names(void);

/* ---- CSV ---- */

/* Opens `path` for writing (bench_die() when it cannot) and writes the header line of the
 * columns both programs write: optimizer, variant, impl, dtype, tensors, elements, median_us,
 * bytes_per_elem, gb_per_s, pct_of_copy_bw, max_rel_err, device. */
FILE *bench_csv_open(const char *path);

/* ---- command lines ---- */

typedef enum bench_arg_kind {
    BENCH_ARG_ON,     /* no value: *(bool *)dst = true */
    BENCH_ARG_OFF,    /* no value: *(bool *)dst = false */
    BENCH_ARG_INT,    /* *(int *)dst: bench_parse_int() */
    BENCH_ARG_SECONDS, /* *(double *)dst: whole seconds, bench_parse_int() */
    BENCH_ARG_SIZE,   /* *(size_t *)dst: bench_parse_size() */
    BENCH_ARG_STRING, /* *(const char **)dst: the value itself */
    BENCH_ARG_SELECT, /* select(value, (bool *)dst, option): bench_variants_parse, bench_modes_parse */
    BENCH_ARG_CALL,   /* call(dst, value) */
    BENCH_ARG_ACTION, /* no value: call(dst, NULL) */
} bench_arg_kind;

typedef struct bench_arg {
    const char *name, *alias; /* "--reps"; another spelling or NULL */
    bench_arg_kind kind;
    void *dst;
    bool *given; /* when not NULL: set when the option is given */
    void (*select)(const char *list, bool *sel, const char *option);
    void (*call)(void *dst, const char *value);
} bench_arg;

/* The rows both programs measure: the fp32 rows' variants (--optimizers, default all), the
 * variants of the other storage modes (--mode-optimizers, default adam) and the modes (--modes,
 * default all); indexes as in fopt_variants and bench_modes. */
typedef struct bench_rows {
    bool sel[32];
    bool mode_sel[32];
    bool modes[16];
} bench_rows;

/* Sets *rows to the defaults, then applies argv's options, in order, through the table and the
 * three options of bench_rows; --help or -h prints usage(stdout) and exits 0. An unknown option, a
 * missing value or a bad number ends the program. */
void bench_parse_args(int argc, char **argv, const bench_arg *args, size_t count, bench_rows *rows,
                      void (*usage)(FILE *f));
/* A count for option `what`: a non-negative number with an optional K, M or G suffix (times 1024,
 * 1024^2, 1024^3) and "+N" terms (1M+3). */
size_t bench_parse_size(const char *s, const char *what);
/* A whole number from 0 to 1000000 for option `what`. */
int bench_parse_int(const char *s, const char *what);

#endif
