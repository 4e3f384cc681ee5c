/* The known-answer table tests/data/kat.txt (scripts/kat_gen.py, from docs/SEMANTICS.md): rows of
 * `kind inputs : outputs`, fields in hexadecimal. Loaded once per test process; the suites kat
 * (tests/test_kat.c) and gpu_stats (tests/test_gpu_stats.c) check the C functions against it. */
#ifndef FUSEDOPT_TEST_KAT_H
#define FUSEDOPT_TEST_KAT_H

#include <stddef.h>
#include <stdint.h>

#include "fusedopt.h"

#define KAT_MAX_FIELDS 24

typedef struct kat_row {
    int line;                        /* in kat.txt, for the failure message */
    const char *text;                /* the row as written, its comment included */
    int nin, nout;
    uint64_t in[KAT_MAX_FIELDS];
    uint64_t out[KAT_MAX_FIELDS];
} kat_row;

/* The rows of one kind (in file order), asserting that there are at least `min_rows` of them and
 * that each has nin inputs and nout outputs (nin < 0: any count, for sqsum). */
const kat_row *kat_rows(const char *kind, int nin, int nout, size_t min_rows, size_t *count);

/* Bit patterns of fp32 and double values. */
uint32_t kat_f32_bits(float x);
float kat_f32(uint64_t bits);
double kat_f64(uint64_t bits);
uint64_t kat_f64_bits(double x);

/* A sqsum row: its fp32 grads as host tensors (malloc'ed, free with kat_sqsum_free), *scale
 * (NULL when the row has none: scale field 0) and the expected sum. */
typedef struct kat_sqsum {
    fopt_host_tensor *tensors;
    size_t count;
    float scale_value;
    const float *scale;
    double want;
} kat_sqsum;
void kat_sqsum_make(const kat_row *r, kat_sqsum *out);
void kat_sqsum_free(kat_sqsum *s);

#endif
