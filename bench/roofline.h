/* The same-traffic roofline of fopt_cpu_bench for any storage mode: one pass that reads and writes
 * exactly the arrays of a step's traffic list (bench/modes.h), each at its own width (4 or 2 bytes
 * per element: read-only, read-write or write-only), with trivial integer math, the fast path's
 * threads and partition (fopt_cpu_parallel) and the instruction set it chose (AVX-512F / AVX2 /
 * portable C, compiled with GCC target attributes like src/cpu). What the memory system allows
 * for that traffic on this machine.
 *
 * Each thread walks its range in blocks of 512 elements: the read-only arrays into a block of
 * 32-bit words in L1, then every read-write array x[i] += word & mask (mask 0 at run time, so the
 * data keep their values and stay valid optimizer inputs), then every write-only array
 * x[i] = word. src/cpu/cpu_dispatch.c's fopt_cpu_roofline is the fp32-only loop of the 0.1
 * benchmark; fopt_cpu_bench prints both on fp32 rows as a cross-check. */
#ifndef FOPT_BENCH_ROOFLINE_H
#define FOPT_BENCH_ROOFLINE_H

#include <stddef.h>

#include "modes.h"

/* One pass over n elements of the arrays ptr[k] described by t->a[k]. align_ref: the array whose
 * 64-byte boundaries the partition follows (the param, as the fast path does). */
void bench_roofline(size_t n, const bench_traffic *t, void *const ptr[], const void *align_ref);

#endif
