#include "problem.h"

#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "internal.h"
#include "scalars.h"


const fopt_desc *test_variant_desc(const test_variant *v)
{
    return v->adam ? &fopt_adam_desc : &fopt_rmsprop_desc;
}

fopt_any_config test_variant_config(const test_variant *v)
{
    return fopt_cfg_copy(test_variant_desc(v), v->adam ? (const void *)&v->a : (const void *)&v->r);
}

fopt_host_tensor *test_problem_host_tensors(const test_problem *p, float *const *const state[FOPT_MAX_STATES])
{
    fopt_host_tensor *t = calloc(p->count ? p->count : 1, sizeof *t);
    cr_assert_not_null(t);
    for (size_t k = 0; k < p->count; k++) {
        t[k].param = p->param[k];
        t[k].grad = p->grad[k];
        t[k].numel = p->numel[k];
        t[k].dtype = FOPT_FLOAT32;
        for (int j = 0; j < FOPT_MAX_STATES; j++)
            t[k].state[j] = state[j] ? state[j][k] : NULL;
    }
    return t;
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    cr_assert_not_null(p);
    return p;
}

static float *aligned_floats(size_t n)
{
    size_t bytes = ((n * sizeof(float) + 63) / 64) * 64;
    float *p = aligned_alloc(64, bytes ? bytes : 64);
    cr_assert_not_null(p);
    return p;
}

test_problem *test_problem_make(const test_variant *v, const size_t *numel, const unsigned *param_off,
                                const unsigned *grad_off, size_t count, uint64_t seed)
{
    test_problem *p = xcalloc(1, sizeof *p);
    p->v = v;
    p->count = count;
    p->rng = test_rng_make(seed);
    p->mask = fopt_variant_states(v);
    p->numel = xcalloc(count, sizeof *p->numel);
    p->param = xcalloc(count, sizeof(float *));
    p->grad = xcalloc(count, sizeof(float *));
    p->param_base = xcalloc(count, sizeof(float *));
    p->grad_base = xcalloc(count, sizeof(float *));
    p->ref_param = xcalloc(count, sizeof(float *));
    for (int j = 0; j < FOPT_MAX_STATES; j++)
        p->ref_state[j] = (p->mask & (1u << j)) ? xcalloc(count, sizeof(float *)) : NULL;

    for (size_t k = 0; k < count; k++) {
        size_t n = numel[k];
        unsigned po = param_off ? param_off[k] : 0, go = grad_off ? grad_off[k] : 0;
        p->numel[k] = n;
        /* Separate allocations, sized exactly: a sanitizer sees any access past a tensor. */
        p->param_base[k] = aligned_floats(n + po);
        p->grad_base[k] = aligned_floats(n + go);
        p->param[k] = p->param_base[k] + po;
        p->grad[k] = p->grad_base[k] + go;
        test_fill_uniform(&p->rng, p->param[k], n, -1.0f, 1.0f);
        p->ref_param[k] = test_dup(p->param[k], n);
        for (int j = 0; j < FOPT_MAX_STATES; j++)
            if (p->ref_state[j])
                p->ref_state[j][k] = xcalloc(n, sizeof(float));
    }
    return p;
}

void test_problem_free(test_problem *p)
{
    if (!p)
        return;
    for (size_t k = 0; k < p->count; k++) {
        free(p->param_base[k]);
        free(p->grad_base[k]);
        free(p->ref_param[k]);
        for (int j = 0; j < FOPT_MAX_STATES; j++)
            if (p->ref_state[j])
                free(p->ref_state[j][k]);
    }
    for (int j = 0; j < FOPT_MAX_STATES; j++)
        free(p->ref_state[j]);
    TEST_FREE_ALL(p->numel, p->param, p->grad, p->param_base, p->grad_base, p->ref_param, p);
}

void test_problem_new_grads(test_problem *p)
{
    for (size_t k = 0; k < p->count; k++)
        test_fill_magnitudes(&p->rng, p->grad[k], p->numel[k], -4.0, 1.0, 50);
}

void test_problem_ref_step(test_problem *p, int64_t step)
{
    for (size_t k = 0; k < p->count; k++) {
        float *s[FOPT_MAX_STATES] = {NULL, NULL, NULL};
        for (int j = 0; j < FOPT_MAX_STATES; j++)
            if (p->ref_state[j])
                s[j] = p->ref_state[j][k];
        fopt_status st = p->v->adam
            ? fopt_adam_step_ref(&p->v->a, step, p->numel[k], p->ref_param[k], p->grad[k], s[0], s[1], s[2])
            : fopt_rmsprop_step_ref(&p->v->r, p->numel[k], p->ref_param[k], p->grad[k], s[0], s[1], s[2]);
        cr_assert_eq(st, FOPT_SUCCESS, "%s: reference step failed: %s", p->v->name, fopt_last_error());
    }
}

fopt_tensor *test_problem_tensors(const test_problem *p)
{
    fopt_tensor *t = xcalloc(p->count, sizeof *t);
    for (size_t k = 0; k < p->count; k++) {
        t[k].param = p->param[k];
        t[k].grad = p->grad[k];
        t[k].numel = p->numel[k];
        t[k].dtype = FOPT_FLOAT32;
    }
    return t;
}

uint32_t test_problem_check(const test_problem *p, size_t k, const float *param,
                            float *const state[FOPT_MAX_STATES], const char *where)
{
    size_t n = p->numel[k];
    double err = test_max_rel_err(param, p->ref_param[k], n);
    cr_assert(err <= 1e-5, "%s %s: tensor %zu (numel %zu): param differs from the reference by %g",
              where, p->v->name, k, n, err);
    uint32_t ulp = test_max_ulp(param, p->ref_param[k], n);
    for (int j = 0; j < FOPT_MAX_STATES; j++) {
        if (!p->ref_state[j])
            continue;
        cr_assert_not_null(state[j], "%s %s: state %d missing", where, p->v->name, j);
        err = test_max_rel_err(state[j], p->ref_state[j][k], n);
        cr_assert(err <= 1e-5, "%s %s: tensor %zu (numel %zu): state %d differs by %g", where,
                  p->v->name, k, n, j, err);
        uint32_t u = test_max_ulp(state[j], p->ref_state[j][k], n);
        if (u > ulp)
            ulp = u;
    }
    return ulp;
}

void test_random_layout(test_rng *r, size_t count, size_t max_numel, bool offsets, size_t **numel,
                        unsigned **param_off, unsigned **grad_off)
{
    static const size_t edges[] = {1, 2, 3, 4, 5, 7, 8, 15, 16, 17, 1023, 1024, 1025, 4097,
                                   FOPT_CHUNK - 1, FOPT_CHUNK, FOPT_CHUNK + 1, 2 * FOPT_CHUNK + 3};
    *numel = xcalloc(count, sizeof **numel);
    *param_off = xcalloc(count, sizeof **param_off);
    *grad_off = xcalloc(count, sizeof **grad_off);
    for (size_t k = 0; k < count; k++) {
        size_t n;
        if (k < sizeof edges / sizeof edges[0] && edges[k] <= max_numel)
            n = edges[k];
        else if (test_rng_next(r) % 8 == 0)
            n = 1 + test_rng_next(r) % max_numel; /* a few large */
        else
            n = 1 + test_rng_next(r) % 600; /* mostly small, like biases and norms */
        (*numel)[k] = n;
        if (offsets) {
            /* Half the tensors aligned, the rest offset in param, grad or both. */
            unsigned o = (unsigned)(test_rng_next(r) % 8);
            (*param_off)[k] = o < 4 ? 0 : (o & 3);
            (*grad_off)[k] = (o == 5 || o == 7) ? (unsigned)(1 + test_rng_next(r) % 3) : 0;
        }
    }
}

void test_layout_odd_sizes(test_case_runner run)
{
    const size_t numel[] = {1, 3, 4, 5, 7, 4097};
    for (size_t i = 0; i < test_variant_count; i++)
        run(&test_variants[i], numel, NULL, NULL, 6, 25, 100 + i);
}

void test_layout_offset_pointers(test_case_runner run)
{
    const size_t numel[] = {1, 3, 4, 5, 4097, 4096};
    const unsigned param_off[] = {1, 1, 1, 2, 1, 0};
    const unsigned grad_off[] = {0, 1, 3, 1, 1, 1};
    for (size_t i = 0; i < test_variant_count; i++)
        run(&test_variants[i], numel, param_off, grad_off, 6, 25, 200 + i);
}

void test_layout_chunk_boundaries(test_case_runner run, bool large)
{
    const size_t numel[] = {FOPT_CHUNK - 1, FOPT_CHUNK, FOPT_CHUNK + 1, 3 * FOPT_CHUNK + 7, 1000003};
    const unsigned param_off[] = {0, 0, 1, 0, 3};
    for (size_t i = 0; i < test_variant_count; i++)
        run(&test_variants[i], numel, param_off, NULL, large ? 5 : 4, large ? 5 : 3, 300 + i);
}

void test_layout_random_list(test_case_runner run, size_t count, size_t max_numel, int steps,
                             uint64_t seed, bool all_variants)
{
    /* Under compute-sanitizer every launch and copy is many times slower: a lighter list. */
    const char *light = getenv("FOPT_TEST_LIGHT");
    if (light && light[0] == '1' && count > 300)
        count = 300;
    test_rng r = test_rng_make(seed);
    size_t *numel;
    unsigned *po, *go;
    test_random_layout(&r, count, max_numel, true, &numel, &po, &go);
    for (size_t i = 0; i < (all_variants ? test_variant_count : 1); i++)
        run(&test_variants[i], numel, po, go, count, steps, seed * 1000 + i);
    free(numel);
    free(po);
    free(go);
}
