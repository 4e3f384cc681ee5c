/* The real kernels on a CUDA device (or the emulated device of an emulated build), through the
 * public optimizer API, against the CPU reference:
 * every variant, odd sizes, offset pointers, chunk boundaries, thousands of tensors, 25 steps;
 * guard bands around every tensor must stay untouched. Checkpoints, learning-rate changes, streams
 * and device-side argument checks. Every test reports SKIP on a machine without a CUDA device. All
 * device memory goes through the device layer (src/gpu/device.h), so the same code runs on both. */
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "device.h"
#include "fusedopt.h"
#include "gpu_util.h"
#include "internal.h"
#include "problem.h"

static void require_device(void)
{
    if (!test_have_cuda_device())
        cr_skip_test("no CUDA device");
}

TestSuite(gpu, .init = require_device);
TestSuite(gpu_state, .init = require_device);

/* Between and around tensors in the device blocks: poison that no kernel may touch. */
#define GUARD 64
static const uint32_t POISON = 0x7fc0dead; /* a NaN with a recognisable payload */

/* The problem's tensors laid out in two device blocks (params, grads), each tensor at its offset
 * after GUARD poisoned floats. */
typedef struct device_layout {
    size_t floats;
    size_t *pos; /* start of tensor k's param/grad in the blocks */
    float *param, *grad;
    fopt_tensor *tensors;
} device_layout;

static void poison_fill(uint32_t *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = POISON;
}

static void device_layout_make(device_layout *d, const test_problem *p)
{
    d->pos = calloc(p->count, sizeof *d->pos);
    d->tensors = test_problem_tensors(p);
    cr_assert(d->pos && d->tensors);
    size_t at = GUARD;
    for (size_t k = 0; k < p->count; k++) {
        /* keep the problem's misalignment: its offset within a 64-byte line */
        size_t off = (size_t)(p->param[k] - p->param_base[k]);
        d->pos[k] = at + off;
        at += ((off + p->numel[k] + 15) / 16) * 16 + GUARD;
    }
    d->floats = at;
    CUDA_OK(fopt_dev_malloc((void **)&d->param, d->floats * sizeof(float)));
    CUDA_OK(fopt_dev_malloc((void **)&d->grad, d->floats * sizeof(float)));
    uint32_t *host = malloc(d->floats * sizeof(float));
    cr_assert_not_null(host);
    poison_fill(host, d->floats);
    for (size_t k = 0; k < p->count; k++)
        memcpy(host + d->pos[k], p->param[k], p->numel[k] * sizeof(float));
    CUDA_OK(fopt_dev_memcpy(d->param, host, d->floats * sizeof(float)));
    poison_fill(host, d->floats);
    CUDA_OK(fopt_dev_memcpy(d->grad, host, d->floats * sizeof(float)));
    free(host);
    for (size_t k = 0; k < p->count; k++) {
        /* grad offsets: the problem's grad misalignment applied to the grad block */
        size_t goff = (size_t)(p->grad[k] - p->grad_base[k]);
        size_t poff = (size_t)(p->param[k] - p->param_base[k]);
        d->tensors[k].param = d->param + d->pos[k];
        d->tensors[k].grad = d->grad + d->pos[k] - poff + goff;
    }
}

static void device_layout_free(device_layout *d)
{
    fopt_dev_free(d->param);
    fopt_dev_free(d->grad);
    free(d->pos);
    free(d->tensors);
}

static void upload_grads(const device_layout *d, const test_problem *p, cudaStream_t stream)
{
    for (size_t k = 0; k < p->count; k++)
        CUDA_OK(fopt_dev_memcpy_async((void *)d->tensors[k].grad, p->grad[k], p->numel[k] * sizeof(float), stream));
}

static fopt_optimizer *create_for(const test_problem *p, const fopt_tensor *t)
{
    fopt_optimizer *opt = NULL;
    if (p->v->adam)
        FOPT_OK(fopt_adam_create(&opt, &p->v->a, t, p->count));
    else
        FOPT_OK(fopt_rmsprop_create(&opt, &p->v->r, t, p->count));
    return opt;
}

/* The optimizer's state slices of tensor k, copied out (fp32 states): out[j] for every kept slot. */
static void state_of(fopt_optimizer *opt, const test_problem *p, size_t k, float *out[FOPT_MAX_STATES])
{
    for (int j = 0; j < FOPT_MAX_STATES; j++) {
        out[j] = NULL;
        if (!(p->mask & (1u << j)))
            continue;
        out[j] = malloc((p->numel[k] ? p->numel[k] : 1) * sizeof(float));
        cr_assert_not_null(out[j]);
        FOPT_OK(fopt_state_copy(opt, k, (fopt_slot)j, out[j], false));
    }
}

/* Runs `steps` steps on the device and on the reference; compares every tensor, checks guards. */
static void run_gpu_case(const test_variant *v, const size_t *numel, const unsigned *param_off,
                         const unsigned *grad_off, size_t count, int steps, uint64_t seed)
{
    test_problem *p = test_problem_make(v, numel, param_off, grad_off, count, seed);
    device_layout d;
    device_layout_make(&d, p);
    fopt_optimizer *opt = create_for(p, d.tensors);
    cudaStream_t stream;
    CUDA_OK(fopt_dev_stream_create(&stream));
    for (int64_t t = 1; t <= steps; t++) {
        test_problem_new_grads(p);
        upload_grads(&d, p, stream);
        FOPT_OK(fopt_step(opt, stream));
        test_problem_ref_step(p, t);
        CUDA_OK(fopt_dev_stream_synchronize(stream)); /* grads on the host are rewritten next step */
    }
    cr_expect_eq(fopt_step_count(opt), steps);

    uint32_t *params = malloc(d.floats * sizeof(float));
    cr_assert_not_null(params);
    CUDA_OK(fopt_dev_memcpy(params, d.param, d.floats * sizeof(float)));
    uint32_t worst_ulp = 0;
    for (size_t k = 0; k < count; k++) {
        float *state[FOPT_MAX_STATES];
        state_of(opt, p, k, state);
        uint32_t ulp = test_problem_check(p, k, (const float *)(params + d.pos[k]), state, "gpu");
        if (ulp > worst_ulp)
            worst_ulp = ulp;
        for (int j = 0; j < FOPT_MAX_STATES; j++)
            free(state[j]);
    }
    /* Everything outside the tensors is still poison: no write strayed. */
    size_t k = 0;
    for (size_t i = 0; i < d.floats; i++) {
        while (k < count && i >= d.pos[k] + p->numel[k])
            k++;
        if (k < count && i >= d.pos[k])
            continue;
        cr_assert_eq(params[i], POISON, "%s: guard float %zu overwritten", v->name, i);
    }
    cr_expect_eq(worst_ulp, 0u, "%s: GPU differs from the reference by %u ulp", v->name, worst_ulp);

    free(params);
    fopt_destroy(opt);
    CUDA_OK(fopt_dev_stream_destroy(stream));
    device_layout_free(&d);
    test_problem_free(p);
}

Test(gpu, every_variant_matches_reference_on_odd_sizes)
{
    test_layout_odd_sizes(run_gpu_case);
}

Test(gpu, every_variant_matches_reference_with_pointers_offset_by_one_element)
{
    test_layout_offset_pointers(run_gpu_case);
}

Test(gpu, every_variant_matches_reference_across_chunk_boundaries_and_large_tensors)
{
    test_layout_chunk_boundaries(run_gpu_case, true);
}

Test(gpu, every_variant_matches_reference_over_thousands_of_tensors_of_random_sizes)
{
    test_layout_random_list(run_gpu_case, 3000, 3 * FOPT_CHUNK, 3, 43, true);
}

Test(gpu, ten_thousand_tensors_step_in_one_call)
{
    test_layout_random_list(run_gpu_case, 10000, 4096, 2, 44, false);
}

Test(gpu, empty_tensors_in_the_list_are_skipped)
{
    float *d;
    CUDA_OK(fopt_dev_malloc((void **)&d, 16 * sizeof(float)));
    CUDA_OK(fopt_dev_memset(d, 0, 16 * sizeof(float)));
    fopt_tensor t[3] = {{NULL, NULL, 0, FOPT_FLOAT32, 0}, {d, d + 8, 8, FOPT_FLOAT32, 0}, {NULL, NULL, 0, FOPT_FLOAT32, 0}};
    fopt_optimizer *opt;
    fopt_adam_config a = fopt_adam_config_default();
    FOPT_OK(fopt_adam_create(&opt, &a, t, 3));
    FOPT_OK(fopt_step(opt, 0));
    CUDA_OK(fopt_dev_synchronize());
    cr_expect_eq(fopt_step_count(opt), 1);
    fopt_destroy(opt);
    fopt_dev_free(d);
}

Test(gpu, create_rejects_host_memory_and_changes_nothing)
{
    float host[8] = {0};
    float *d;
    CUDA_OK(fopt_dev_malloc((void **)&d, 8 * sizeof(float)));
    fopt_tensor t = {host, d, 8, FOPT_FLOAT32, 0};
    fopt_optimizer *opt = (fopt_optimizer *)(uintptr_t)0x1;
    fopt_adam_config a = fopt_adam_config_default();
    cr_expect_eq(fopt_adam_create(&opt, &a, &t, 1), FOPT_ERROR_INVALID_VALUE);
    t.param = d;
    t.grad = host;
    cr_expect_eq(fopt_adam_create(&opt, &a, &t, 1), FOPT_ERROR_INVALID_VALUE);
    cr_expect_eq(opt, (fopt_optimizer *)(uintptr_t)0x1);
    cr_expect_eq(fopt_dev_last_error(), cudaSuccess, "a failed create left a CUDA error behind");
    fopt_dev_free(d);
}

/* ---- learning rate and checkpoints ---------------------------------------------------------- */

typedef struct small_setup {
    test_problem *p;
    device_layout d;
    fopt_optimizer *opt;
} small_setup;

static void small_make(small_setup *s, const test_variant *v)
{
    const size_t numel[] = {5, 4097, 100};
    const unsigned off[] = {1, 0, 2};
    s->p = test_problem_make(v, numel, off, NULL, 3, 7);
    device_layout_make(&s->d, s->p);
    s->opt = create_for(s->p, s->d.tensors);
}

static void small_free(small_setup *s)
{
    fopt_destroy(s->opt);
    device_layout_free(&s->d);
    test_problem_free(s->p);
}

static void small_steps(small_setup *s, fopt_optimizer *opt, int n)
{
    for (int i = 0; i < n; i++) {
        test_problem_new_grads(s->p);
        upload_grads(&s->d, s->p, 0);
        FOPT_OK(fopt_step(opt, 0));
        CUDA_OK(fopt_dev_synchronize());
    }
}

static uint32_t *download_params(const device_layout *d)
{
    uint32_t *h = malloc(d->floats * sizeof(float));
    cr_assert_not_null(h);
    CUDA_OK(fopt_dev_memcpy(h, d->param, d->floats * sizeof(float)));
    return h;
}

Test(gpu_state, zero_learning_rate_leaves_parameters_unchanged_and_bad_lr_is_rejected)
{
    small_setup s;
    small_make(&s, &test_variants[2]); /* adamw: decay also scales by lr */
    FOPT_OK(fopt_set_lr(s.opt, 0.0));
    uint32_t *before = download_params(&s.d);
    small_steps(&s, s.opt, 2);
    uint32_t *after = download_params(&s.d);
    cr_expect_eq(memcmp(before, after, s.d.floats * sizeof(float)), 0, "lr 0 changed parameters");
    cr_expect_eq(fopt_set_lr(s.opt, -1.0), FOPT_ERROR_INVALID_VALUE);
    free(before);
    free(after);
    small_free(&s);
}

Test(gpu_state, checkpoint_round_trips_bit_exactly)
{
    for (size_t vi = 0; vi < test_variant_count; vi++) {
        small_setup s;
        small_make(&s, &test_variants[vi]);
        small_steps(&s, s.opt, 3);
        FOPT_OK(fopt_set_lr(s.opt, s.p->v->adam ? 2e-3 : 2e-2));
        size_t size;
        unsigned char *ckpt = gt_save(s.opt, &size);
        uint32_t *p3 = download_params(&s.d);

        /* The original continues for two steps with these gradients... */
        test_rng saved_rng = s.p->rng;
        small_steps(&s, s.opt, 2);
        uint32_t *p5 = download_params(&s.d);

        /* ...and a fresh optimizer restored from the checkpoint must do exactly the same. */
        CUDA_OK(fopt_dev_memcpy(s.d.param, p3, s.d.floats * sizeof(float)));
        fopt_optimizer *b = create_for(s.p, s.d.tensors);
        FOPT_OK(fopt_state_load(b, ckpt, size));
        cr_expect_eq(fopt_step_count(b), 3);
        size_t size_b;
        unsigned char *again = gt_save(b, &size_b);
        cr_expect_eq(size_b, size);
        cr_expect_eq(memcmp(again, ckpt, size), 0, "%s: save after load differs", s.p->v->name);
        s.p->rng = saved_rng;
        small_steps(&s, b, 2);
        uint32_t *q5 = download_params(&s.d);
        cr_expect_eq(memcmp(p5, q5, s.d.floats * sizeof(float)), 0,
                     "%s: restored optimizer diverged", s.p->v->name);
        fopt_destroy(b);
        free(again);
        free(q5);
        free(p5);
        free(p3);
        free(ckpt);
        small_free(&s);
    }
}

/* The load must fail with INVALID_VALUE and leave state, step and lr as they were. */
static void expect_rejected(fopt_optimizer *opt, const void *buf, size_t size, const char *why)
{
    gt_expect_load_rejected(opt, buf, size, NULL, why);
}

Test(gpu_state, load_rejects_checkpoints_of_other_optimizers_lists_versions_and_damage)
{
    small_setup s;
    small_make(&s, &test_variants[0]); /* adam */
    small_steps(&s, s.opt, 2);
    size_t size;
    unsigned char *ckpt = gt_save(s.opt, &size);

    small_setup o;
    small_make(&o, &test_variants[0]);
    small_steps(&o, o.opt, 1);

    expect_rejected(o.opt, ckpt, size - 1, "a truncated checkpoint");
    expect_rejected(o.opt, ckpt, 10, "a checkpoint shorter than its header");
    unsigned char *bad = malloc(size);
    cr_assert_not_null(bad);
    memcpy(bad, ckpt, size);
    bad[size - 5] ^= 0x40;
    expect_rejected(o.opt, bad, size, "a corrupted checkpoint");
    memcpy(bad, ckpt, size);
    bad[8] ^= 0x01; /* the version field follows the 8-byte magic */
    expect_rejected(o.opt, bad, size, "a checkpoint of another library version");
    memcpy(bad, ckpt, size);
    bad[0] = 'X';
    expect_rejected(o.opt, bad, size, "a buffer that is not a checkpoint");

    /* Another optimizer kind, another variant, another tensor list. */
    small_setup r;
    small_make(&r, &test_variants[9]); /* rmsprop with momentum: same buffer count as adam */
    expect_rejected(r.opt, ckpt, size, "an Adam checkpoint into RMSprop");
    small_setup m;
    small_make(&m, &test_variants[3]); /* amsgrad */
    expect_rejected(m.opt, ckpt, size, "an Adam checkpoint into AMSGrad");
    const size_t numel[] = {5, 4097, 101};
    test_problem *p2 = test_problem_make(&test_variants[0], numel, NULL, NULL, 3, 9);
    device_layout d2;
    device_layout_make(&d2, p2);
    fopt_optimizer *other = create_for(p2, d2.tensors);
    expect_rejected(other, ckpt, size, "a checkpoint over other tensor sizes");

    fopt_destroy(other);
    device_layout_free(&d2);
    test_problem_free(p2);
    small_free(&m);
    small_free(&r);
    small_free(&o);
    small_free(&s);
    free(bad);
    free(ckpt);
}
