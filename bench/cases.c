/* The tensor lists of fopt_bench (bench/cases.h). */
#include "cases.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"

#define ALIGN_ELEMS 8

static size_t round_up(size_t n) { return (n + ALIGN_ELEMS - 1) & ~(size_t)(ALIGN_ELEMS - 1); }

static void finish(bench_case *c)
{
    c->total = c->padded = c->max_numel = 0;
    for (size_t i = 0; i < c->count; i++) {
        c->offset[i] = c->padded;
        c->padded += round_up(c->numel[i]);
        c->total += c->numel[i];
        if (c->numel[i] > c->max_numel)
            c->max_numel = c->numel[i];
    }
    bench_case_windows(c, 0);
}

static void alloc_list(bench_case *c, size_t count)
{
    memset(c, 0, sizeof *c);
    c->log2 = -1;
    c->count = count;
    /* numel, offset, win and woff in one block (bench_case_free() frees numel) */
    c->numel = calloc(4 * count, sizeof *c->numel);
    if (!c->numel)
        bench_die("out of host memory");
    c->offset = c->numel + count;
    c->win = c->offset + count;
    c->woff = c->win + count;
}

void bench_case_free(bench_case *c)
{
    free(c->numel); /* and offset, win, woff */
    memset(c, 0, sizeof *c);
}

void bench_case_single(bench_case *c, int log2n)
{
    alloc_list(c, 1);
    c->log2 = log2n;
    snprintf(c->name, sizeof c->name, "2^%d", log2n);
    c->numel[0] = (size_t)1 << log2n;
    finish(c);
}

/* GPT-2: token and position embeddings, `layers` blocks, final layer norm. */
void bench_case_gpt2(bench_case *c, bool mini)
{
    const size_t d = mini ? 64 : 768, vocab = mini ? 512 : 50257, ctx = mini ? 64 : 1024;
    const size_t layers = mini ? 2 : 12;
    alloc_list(c, 2 + 12 * layers + 2);
    snprintf(c->name, sizeof c->name, mini ? "gpt2_mini" : "gpt2_small");
    size_t k = 0;
    c->numel[k++] = vocab * d; /* wte */
    c->numel[k++] = ctx * d;   /* wpe */
    for (size_t l = 0; l < layers; l++) {
        c->numel[k++] = d;         /* ln_1.weight */
        c->numel[k++] = d;         /* ln_1.bias */
        c->numel[k++] = d * 3 * d; /* attn.c_attn.weight */
        c->numel[k++] = 3 * d;     /* attn.c_attn.bias */
        c->numel[k++] = d * d;     /* attn.c_proj.weight */
        c->numel[k++] = d;         /* attn.c_proj.bias */
        c->numel[k++] = d;         /* ln_2.weight */
        c->numel[k++] = d;         /* ln_2.bias */
        c->numel[k++] = d * 4 * d; /* mlp.c_fc.weight */
        c->numel[k++] = 4 * d;     /* mlp.c_fc.bias */
        c->numel[k++] = 4 * d * d; /* mlp.c_proj.weight */
        c->numel[k++] = d;         /* mlp.c_proj.bias */
    }
    c->numel[k++] = d; /* ln_f.weight */
    c->numel[k++] = d; /* ln_f.bias */
    finish(c);
}

void bench_case_small(bench_case *c, size_t count)
{
    alloc_list(c, count);
    if (count == 10000)
        snprintf(c->name, sizeof c->name, "small_10k");
    else
        snprintf(c->name, sizeof c->name, "small_%zu", count);
    uint64_t s = 12345;
    for (size_t i = 0; i < count; i++)
        c->numel[i] = 1 + (size_t)(bench_rng_next(&s) % 4096);
    finish(c);
}

static size_t windows_total(const bench_case *c, size_t per)
{
    size_t sum = 0;
    for (size_t i = 0; i < c->count; i++)
        sum += c->numel[i] < per ? c->numel[i] : per;
    return sum;
}

void bench_case_windows(bench_case *c, size_t cap)
{
    size_t per = c->max_numel;
    if (cap > 0 && windows_total(c, per) > cap) {
        /* the largest per-tensor length whose windows fit the cap, at least 4096 */
        size_t lo = 4096, hi = c->max_numel;
        while (lo < hi) {
            size_t mid = lo + (hi - lo + 1) / 2;
            if (windows_total(c, mid) <= cap)
                lo = mid;
            else
                hi = mid - 1;
        }
        per = lo;
    }
    c->wpadded = c->wtotal = 0;
    c->whole = true;
    for (size_t i = 0; i < c->count; i++) {
        c->win[i] = c->numel[i] < per ? c->numel[i] : per;
        c->woff[i] = c->wpadded;
        c->wpadded += round_up(c->win[i]);
        c->wtotal += c->win[i];
        if (c->win[i] != c->numel[i])
            c->whole = false;
    }
}

bool bench_case_is_gpt2(const bench_case *c) { return !strncmp(c->name, "gpt2_", 5); }
bool bench_case_is_small(const bench_case *c) { return !strncmp(c->name, "small_", 6); }
