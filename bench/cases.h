/* The tensor lists fopt_bench measures ("cases"):
 *   gpt2_small  the parameter shapes of GPT-2 small: 148 tensors, 124.4M elements;
 *   small_10k   10,000 tensors of 1..4096 elements (odd sizes included), fixed seed;
 *   2^N         one tensor of 2^N elements;
 * and, for the emulated device (where kernels run on the host, thousands of times slower), two
 * scaled-down lists with the same structure: gpt2_mini (2 blocks, width 64) and small_300.
 *
 * Every tensor of a list starts at a multiple of 8 elements in one allocation per array (16-byte
 * aligned for fp32 and 16-bit storage alike).
 *
 * Check windows: the reference (scalar, one thread) is too slow to step 10^8 elements several
 * times per case, so it steps a prefix of every tensor: the first w_t = min(numel_t, c) elements,
 * with c the largest value (at least 4096, so small tensors are always whole) for which the
 * windows hold at most `cap` elements in all. The steps are elementwise, and stochastic rounding
 * depends on (tensor, element index) only, so a prefix steps exactly as inside the whole tensor;
 * clipping needs the global norm, which the reference then takes from the whole list
 * (fopt_step_options.grad_sq_sum). Every implementation's result is compared on these windows. */
#ifndef FOPT_BENCH_CASES_H
#define FOPT_BENCH_CASES_H

#include <stdbool.h>
#include <stddef.h>

typedef struct bench_case {
    char name[32];    /* "gpt2_small", "small_10k", "2^20" */
    int log2;         /* single tensors: N of 2^N; -1 for lists */
    size_t count;
    size_t *numel;
    size_t *offset;   /* element offset in the shared buffers, a multiple of 8 */
    size_t total;     /* elements */
    size_t padded;    /* buffer length in elements */
    size_t max_numel; /* largest tensor */
    /* check windows (bench_case_windows) */
    size_t *win;      /* elements of tensor t the reference steps (a prefix) */
    size_t *woff;     /* offset of window t in the window buffers (multiple of 8) */
    size_t wpadded;   /* window buffer length in elements */
    size_t wtotal;    /* elements in all windows */
    bool whole;       /* every window is its whole tensor */
} bench_case;

void bench_case_single(bench_case *c, int log2n);
/* GPT-2 small (mini: 2 blocks of width 64, vocabulary 512, context 64 - for the emulated device). */
void bench_case_gpt2(bench_case *c, bool mini);
/* `count` tensors of 1..4096 elements: "small_10k" for 10,000, else "small_<count>". */
void bench_case_small(bench_case *c, size_t count);
void bench_case_free(bench_case *c);

/* Sets the check windows for at most `cap` elements (see above); cap 0 means whole tensors. */
void bench_case_windows(bench_case *c, size_t cap);

/* Is this the GPT-2 list (small or mini) / a list of small tensors? */
bool bench_case_is_gpt2(const bench_case *c);
bool bench_case_is_small(const bench_case *c);

#endif
