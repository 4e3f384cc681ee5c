/* Step options and per-tensor behaviour of the GPU optimizer that no comparison with the CPU
 * reference sees: zero_grads on the vector and the scalar path, stochastic rounding that draws
 * other random bits for each tensor (docs/SEMANTICS.md: a function of seed, step, tensor index and
 * element index), and rebinding to buffers of another alignment. Runs on a CUDA device or the
 * emulated one (SKIP without either). */
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "device.h"
#include "fusedopt.h"
#include "optimizer.h"
#include "util.h"

static void require_device(void)
{
    if (!test_have_cuda_device())
        cr_skip_test("no CUDA device");
}

TestSuite(gpu_object, .init = require_device);

#define DEV_OK(expr) cr_assert_eq((expr), cudaSuccess, "%s", #expr)

static void *dev_copy(const void *host, size_t bytes)
{
    void *d = NULL;
    DEV_OK(fopt_dev_malloc(&d, bytes));
    DEV_OK(fopt_dev_memcpy(d, host, bytes));
    return d;
}

/* Two fp32 tensors: 1000 elements on 16-byte aligned buffers (vector path), 37 elements whose
 * grad starts one float past the allocation (scalar path). */
enum { N0 = 1000, N1 = 37 };

typedef struct two_tensors {
    float *p0, *g0, *p1, *g1base;
    fopt_tensor t[2];
} two_tensors;

static void two_make(two_tensors *s, const float *param, const float *grad)
{
    s->p0 = dev_copy(param, N0 * sizeof(float));
    s->g0 = dev_copy(grad, N0 * sizeof(float));
    s->p1 = dev_copy(param + N0, N1 * sizeof(float));
    float tmp[N1 + 1];
    tmp[0] = 0.0f;
    memcpy(tmp + 1, grad + N0, N1 * sizeof(float));
    s->g1base = dev_copy(tmp, sizeof tmp);
    s->t[0] = (fopt_tensor){s->p0, s->g0, N0, FOPT_FLOAT32, 0};
    s->t[1] = (fopt_tensor){s->p1, s->g1base + 1, N1, FOPT_FLOAT32, 0};
}

static void two_free(two_tensors *s)
{
    fopt_dev_free(s->p0);
    fopt_dev_free(s->g0);
    fopt_dev_free(s->p1);
    fopt_dev_free(s->g1base);
}

static void download(void *host, const void *dev, size_t bytes) { DEV_OK(fopt_dev_memcpy(host, dev, bytes)); }

Test(gpu_object, zero_grads_zeroes_every_grad_on_both_paths_and_steps_as_without)
{
    float param[N0 + N1], grad[N0 + N1];
    test_rng r = test_rng_make(11);
    test_fill_uniform(&r, param, N0 + N1, -1.0f, 1.0f);
    test_fill_magnitudes(&r, grad, N0 + N1, -3.0, 1.0, 0);
    two_tensors a, b;
    two_make(&a, param, grad);
    two_make(&b, param, grad);
    fopt_adam_config cfg = fopt_adam_config_default();
    fopt_optimizer *oa, *ob;
    FOPT_OK(fopt_adam_create(&oa, &cfg, a.t, 2));
    FOPT_OK(fopt_adam_create(&ob, &cfg, b.t, 2));
    fopt_step_options zero;
    memset(&zero, 0, sizeof zero);
    zero.zero_grads = true;
    FOPT_OK(fopt_step_ex(oa, &zero, 0));
    FOPT_OK(fopt_step(ob, 0));
    DEV_OK(fopt_dev_synchronize());

    float ga[N0 + N1], gb[N0 + N1], pa[N0 + N1], pb[N0 + N1];
    download(ga, a.g0, N0 * sizeof(float));
    download(ga + N0, a.g1base + 1, N1 * sizeof(float));
    download(gb, b.g0, N0 * sizeof(float));
    download(gb + N0, b.g1base + 1, N1 * sizeof(float));
    download(pa, a.p0, N0 * sizeof(float));
    download(pa + N0, a.p1, N1 * sizeof(float));
    download(pb, b.p0, N0 * sizeof(float));
    download(pb + N0, b.p1, N1 * sizeof(float));
    size_t nonzero0 = 0, nonzero1 = 0;
    for (size_t i = 0; i < N0; i++)
        nonzero0 += ga[i] != 0.0f;
    for (size_t i = N0; i < N0 + N1; i++)
        nonzero1 += ga[i] != 0.0f;
    cr_expect_eq(nonzero0, 0u, "vector path: %zu grads not zeroed", nonzero0);
    cr_expect_eq(nonzero1, 0u, "scalar path (unaligned grad): %zu grads not zeroed", nonzero1);
    cr_expect_eq(memcmp(gb, grad, sizeof gb), 0, "without zero_grads the grads stay");
    cr_expect_eq(memcmp(pa, pb, sizeof pa), 0, "zero_grads changed the step itself");
    fopt_destroy(oa);
    fopt_destroy(ob);
    two_free(&a);
    two_free(&b);
}

/* bf16 params with stochastic rounding: tensors 0 and 1 hold the same values and grads. */
static void sr_step(uint64_t seed, uint16_t out[2][4096])
{
    enum { N = 4096 };
    uint16_t param[N];
    float grad32[N];
    uint16_t grad[N];
    test_rng r = test_rng_make(5);
    test_fill_magnitudes(&r, grad32, N, -2.0, 0.0, 0);
    for (size_t i = 0; i < N; i++) {
        param[i] = (uint16_t)(0x3f80u + (i % 64)); /* 1.0 .. 1.49 in bf16 */
        uint32_t u;
        memcpy(&u, &grad32[i], 4);
        grad[i] = (uint16_t)(u >> 16);
    }
    void *p[2], *g[2];
    fopt_tensor t[2];
    for (int k = 0; k < 2; k++) {
        p[k] = dev_copy(param, sizeof param);
        g[k] = dev_copy(grad, sizeof grad);
        t[k] = (fopt_tensor){p[k], g[k], N, FOPT_BFLOAT16, 0};
    }
    fopt_adam_config cfg = fopt_adam_config_default();
    cfg.lr = 1e-2;
    cfg.precision.stochastic_rounding = true;
    cfg.precision.seed = seed;
    fopt_optimizer *opt;
    FOPT_OK(fopt_adam_create(&opt, &cfg, t, 2));
    FOPT_OK(fopt_step(opt, 0));
    DEV_OK(fopt_dev_synchronize());
    for (int k = 0; k < 2; k++) {
        download(out[k], p[k], sizeof param);
        fopt_dev_free(p[k]);
        fopt_dev_free(g[k]);
    }
    fopt_destroy(opt);
}

Test(gpu_object, stochastic_rounding_draws_other_bits_for_each_tensor_and_repeats_for_a_seed)
{
    static uint16_t a[2][4096], b[2][4096], c[2][4096];
    sr_step(7, a);
    sr_step(7, b);
    sr_step(8, c);
    cr_expect_eq(memcmp(a, b, sizeof a), 0, "the same seed must give the same bits");
    size_t across_tensors = 0, across_seeds = 0;
    for (size_t i = 0; i < 4096; i++) {
        across_tensors += a[0][i] != a[1][i];
        across_seeds += a[0][i] != c[0][i];
    }
    /* each element rounds up with probability (its low half) / 2^16: independent bits make
     * hundreds of the 4096 pairs differ; the same bits for both tensors make none */
    cr_expect_gt(across_tensors, 100u, "tensors 0 and 1 (same values) rounded alike in all but %zu elements",
                 across_tensors);
    cr_expect_gt(across_seeds, 100u, "seeds 7 and 8 rounded alike in all but %zu elements", across_seeds);
}

/* An fp32 tensor of N0 elements one float past the start of new device buffers *pb and *gb (N0 + 1
 * floats each): param and grad copied there. */
static fopt_tensor unaligned_copy(const float *param, const float *grad, float **pb, float **gb)
{
    *pb = *gb = NULL;
    DEV_OK(fopt_dev_malloc((void **)pb, (N0 + 1) * sizeof(float)));
    DEV_OK(fopt_dev_malloc((void **)gb, (N0 + 1) * sizeof(float)));
    DEV_OK(fopt_dev_memcpy(*pb + 1, param, N0 * sizeof(float)));
    DEV_OK(fopt_dev_memcpy(*gb + 1, grad, N0 * sizeof(float)));
    return (fopt_tensor){*pb + 1, *gb + 1, N0, FOPT_FLOAT32, 0};
}

Test(gpu_object, rebind_to_unaligned_buffers_leaves_the_vector_path)
{
    float param[N0 + N1], grad[N0 + N1];
    test_rng r = test_rng_make(12);
    test_fill_uniform(&r, param, N0 + N1, -1.0f, 1.0f);
    test_fill_magnitudes(&r, grad, N0 + N1, -3.0, 1.0, 0);
    /* created over aligned buffers */
    float *p = dev_copy(param, N0 * sizeof(float)), *g = dev_copy(grad, N0 * sizeof(float));
    fopt_tensor t = {p, g, N0, FOPT_FLOAT32, 0};
    fopt_adam_config cfg = fopt_adam_config_default();
    fopt_optimizer *opt, *ref;
    FOPT_OK(fopt_adam_create(&opt, &cfg, &t, 1));
    cr_expect(opt->entries[0].flags & FOPT_ENTRY_ALIGNED);
    /* rebound to buffers one float past an aligned address, exactly N0 floats long after it */
    float *pb, *gb;
    fopt_tensor u = unaligned_copy(param, grad, &pb, &gb);
    FOPT_OK(fopt_rebind(opt, &u, 1, 0));
    cr_expect_eq(opt->entries[0].flags & FOPT_ENTRY_ALIGNED, 0u, "rebound to unaligned buffers: the vector "
                 "path's flag must go");
    FOPT_OK(fopt_step(opt, 0));
    /* the same step by an optimizer created over those buffers' twins */
    float *pc, *gc;
    fopt_tensor v = unaligned_copy(param, grad, &pc, &gc);
    FOPT_OK(fopt_adam_create(&ref, &cfg, &v, 1));
    FOPT_OK(fopt_step(ref, 0));
    DEV_OK(fopt_dev_synchronize());
    float x[N0], y[N0];
    download(x, pb + 1, sizeof x);
    download(y, pc + 1, sizeof y);
    cr_expect_eq(memcmp(x, y, sizeof x), 0, "rebound optimizer stepped differently");
    fopt_destroy(opt);
    fopt_destroy(ref);
    fopt_dev_free(p);
    fopt_dev_free(g);
    fopt_dev_free(pb);
    fopt_dev_free(gb);
    fopt_dev_free(pc);
    fopt_dev_free(gc);
}

/* Parameter groups: tensor k in group k, each group with its own lr and weight decay, must step
 * exactly as an optimizer over that tensor alone with those hyper-parameters. */
Test(gpu_object, each_tensor_steps_with_its_own_groups_lr_and_weight_decay)
{
    enum { N = 300, G = 3 };
    const double lr[G] = {1e-3, 3e-2, 5e-4}, wd[G] = {0.0, 0.1, 0.01};
    float param[G][N], grad[G][N];
    test_rng r = test_rng_make(21);
    for (int k = 0; k < G; k++) {
        test_fill_uniform(&r, param[k], N, -1.0f, 1.0f);
        test_fill_magnitudes(&r, grad[k], N, -3.0, 0.0, 0);
    }
    fopt_adam_config cfg = fopt_adam_config_default();
    cfg.decoupled_weight_decay = true;
    void *p[G], *g[G], *ps[G], *gs[G];
    fopt_tensor t[G];
    fopt_optimizer *single[G];
    for (int k = 0; k < G; k++) {
        p[k] = dev_copy(param[k], sizeof param[k]);
        g[k] = dev_copy(grad[k], sizeof grad[k]);
        t[k] = (fopt_tensor){p[k], g[k], N, FOPT_FLOAT32, (uint32_t)k};
        ps[k] = dev_copy(param[k], sizeof param[k]);
        gs[k] = dev_copy(grad[k], sizeof grad[k]);
        fopt_adam_config ck = cfg;
        ck.lr = lr[k];
        ck.weight_decay = wd[k];
        fopt_tensor tk = {ps[k], gs[k], N, FOPT_FLOAT32, 0};
        FOPT_OK(fopt_adam_create(&single[k], &ck, &tk, 1));
    }
    fopt_optimizer *grouped;
    FOPT_OK(fopt_adam_create(&grouped, &cfg, t, G));
    for (int k = 0; k < G; k++) {
        FOPT_OK(fopt_set_group_lr(grouped, (uint32_t)k, lr[k]));
        FOPT_OK(fopt_set_group_weight_decay(grouped, (uint32_t)k, wd[k]));
    }
    for (int s = 0; s < 3; s++) {
        FOPT_OK(fopt_step(grouped, 0));
        for (int k = 0; k < G; k++)
            FOPT_OK(fopt_step(single[k], 0));
    }
    DEV_OK(fopt_dev_synchronize());
    for (int k = 0; k < G; k++) {
        float a[N], b[N];
        download(a, p[k], sizeof a);
        download(b, ps[k], sizeof b);
        cr_expect_eq(memcmp(a, b, sizeof a), 0, "tensor %d in group %d (lr %g, wd %g) stepped differently", k, k,
                     lr[k], wd[k]);
        fopt_destroy(single[k]);
        fopt_dev_free(p[k]);
        fopt_dev_free(g[k]);
        fopt_dev_free(ps[k]);
        fopt_dev_free(gs[k]);
    }
    fopt_destroy(grouped);
}

/* The device's sum of squares of the grads is the reference's, bit for bit (the fixed order of
 * docs/SEMANTICS.md): tensors across chunk boundaries, one with an unaligned grad. */
Test(gpu_object, grad_sum_of_squares_is_the_references_bit_for_bit)
{
    enum { K = 4 };
    const size_t n[K] = {5, 16384 + 77, 3 * 16384, 1001};
    const unsigned off[K] = {0, 0, 0, 1};
    test_rng r = test_rng_make(31);
    float *h[K];
    void *dp[K], *dg[K];
    fopt_tensor t[K];
    fopt_host_tensor ht[K];
    memset(ht, 0, sizeof ht);
    for (int k = 0; k < K; k++) {
        h[k] = malloc((n[k] + 1) * sizeof(float));
        cr_assert_not_null(h[k]);
        test_fill_magnitudes(&r, h[k], n[k] + 1, -4.0, 2.0, 40);
        dp[k] = dev_copy(h[k], n[k] * sizeof(float));
        dg[k] = dev_copy(h[k], (n[k] + 1) * sizeof(float));
        t[k] = (fopt_tensor){dp[k], (float *)dg[k] + off[k], n[k], FOPT_FLOAT32, 0};
        ht[k] = (fopt_host_tensor){.param = h[k], .grad = h[k] + off[k], .numel = n[k], .dtype = FOPT_FLOAT32};
    }
    fopt_adam_config cfg = fopt_adam_config_default();
    fopt_optimizer *opt;
    FOPT_OK(fopt_adam_create(&opt, &cfg, t, K));
    double *dsum = NULL, got = 0.0, want = 0.0;
    DEV_OK(fopt_dev_malloc((void **)&dsum, sizeof *dsum));
    FOPT_OK(fopt_grad_sq_sum(opt, NULL, dsum, 0));
    DEV_OK(fopt_dev_synchronize());
    download(&got, dsum, sizeof got);
    FOPT_OK(fopt_grad_sq_sum_ref_multi(ht, K, NULL, &want));
    cr_expect_eq(memcmp(&got, &want, sizeof got), 0, "device sum of squares %.17g, reference %.17g", got, want);
    fopt_destroy(opt);
    fopt_dev_free(dsum);
    for (int k = 0; k < K; k++) {
        fopt_dev_free(dp[k]);
        fopt_dev_free(dg[k]);
        free(h[k]);
    }
}

/* The order itself, on values where it shows: elements 0..3 are one thread's four lanes, summed
 * (l0 + l1) + (l2 + l3). With squares 1, 0, 1.125 * 2^-53 and 1.125 * 2^-53 that is 1 + 2^-52;
 * ((l0 + l1) + l2) + l3 would round twice, to 1 + 2^-51. */
Test(gpu_object, grad_sum_of_squares_adds_each_threads_lanes_pairwise)
{
    float g[8] = {1.0f, 0.0f, 0x3p-28f, 0x3p-28f, 0.0f, 0.0f, 0.0f, 0.0f};
    float p[8] = {0};
    void *dp = dev_copy(p, sizeof p), *dg = dev_copy(g, sizeof g);
    fopt_tensor t = {dp, dg, 8, FOPT_FLOAT32, 0};
    fopt_adam_config cfg = fopt_adam_config_default();
    fopt_optimizer *opt;
    FOPT_OK(fopt_adam_create(&opt, &cfg, &t, 1));
    double *dsum = NULL, got = 0.0, ref = 0.0;
    DEV_OK(fopt_dev_malloc((void **)&dsum, sizeof *dsum));
    FOPT_OK(fopt_grad_sq_sum(opt, NULL, dsum, 0));
    DEV_OK(fopt_dev_synchronize());
    download(&got, dsum, sizeof got);
    fopt_host_tensor ht = {.param = p, .grad = g, .numel = 8, .dtype = FOPT_FLOAT32};
    FOPT_OK(fopt_grad_sq_sum_ref_multi(&ht, 1, NULL, &ref));
    const double want = 1.0 + 0x1p-52;
    cr_expect_eq(memcmp(&ref, &want, sizeof ref), 0, "reference: %a, want %a", ref, want);
    cr_expect_eq(memcmp(&got, &want, sizeof got), 0, "device: %a, want %a", got, want);
    fopt_destroy(opt);
    fopt_dev_free(dsum);
    fopt_dev_free(dp);
    fopt_dev_free(dg);
}
