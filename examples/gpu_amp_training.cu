/* A mixed-precision training loop in C around fusedopt's GPU optimizer: fp16 parameters and
 * gradients with fp32 master weights kept by the optimizer, dynamic loss scaling whose inf/NaN
 * check and skip happen on the device, global-norm clipping, and two parameter groups (the weights
 * decayed, the biases not). Nothing in the loop synchronises with the host: the loss scale lives
 * in device memory, the step reads it (fopt_step_options.grad_scale) and reports an overflow
 * (found_inf), and a one-thread kernel updates the scale afterwards with GradScaler's rule (halve
 * on an overflow, double after `growth_interval` clean steps).
 *
 * The model is a linear layer y = W x + b fitted to data made by a known W*, b*, so the result is
 * easy to check: the loss must fall by 100x and the first steps, at the initial scale of 2^16,
 * must overflow fp16 and be skipped. Without a CUDA device it says so and exits 0; against a
 * fusedopt built with the emulated device it runs on the CPU (example_device.h). */
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "example_device.h"
#include "fusedopt.h"

#define CHECK_CUDA(x)                                                                              \
    do {                                                                                           \
        cudaError_t e = (x);                                                                       \
        if (e != cudaSuccess) {                                                                    \
            std::fprintf(stderr, "%s: %s\n", #x, cudaGetErrorString(e));                           \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)
#define CHECK_FOPT(x)                                                                              \
    do {                                                                                           \
        fopt_status s = (x);                                                                       \
        if (s != FOPT_SUCCESS) {                                                                   \
            std::fprintf(stderr, "%s: %s\n", #x, fopt_last_error());                               \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

enum { IN = 64, OUT = 16, DATA = 4096, BATCH = 64, STEPS = 600, THREADS = 128 };

/* The loss scaler's state, on the device. */
struct scaler {
    float scale;
    int32_t found_inf; /* written by fopt_step_ex */
    int32_t clean;     /* steps since the last overflow or growth */
    int32_t skipped;   /* steps skipped so far */
    float grad_norm;   /* written by fopt_step_ex */
};

/* residual r[k][i] = W x_k + b - y_k of batch sample k (data index (first + k) % DATA), in fp32
 * from the fp16 parameters */
static __host__ __device__ void residual_body(unsigned block, unsigned thread, unsigned threads,
                                              const __half *w, const __half *b, const float *x,
                                              const float *y, float *r, int first)
{
    unsigned t = block * threads + thread;
    if (t >= BATCH * OUT)
        return;
    unsigned k = t / OUT, i = t % OUT, n = (first + k) % DATA;
    float acc = __half2float(b[i]) - y[n * OUT + i];
    for (int j = 0; j < IN; j++)
        acc += __half2float(w[i * IN + j]) * x[n * IN + j];
    r[k * OUT + i] = acc;
}
EXAMPLE_KERNEL(residual_kernel, residual_body)

/* grads of the scaled loss scale * mean_k |r_k|^2 / 2, stored in fp16: large enough, they
 * overflow to inf, which the step detects and skips */
static __host__ __device__ void grad_body(unsigned block, unsigned thread, unsigned threads,
                                          const float *x, const float *r, __half *gw, __half *gb,
                                          const scaler *sc, int first)
{
    unsigned t = block * threads + thread;
    if (t >= OUT * IN + OUT)
        return;
    float acc = 0.0f;
    if (t < OUT * IN) {
        unsigned i = t / IN, j = t % IN;
        for (int k = 0; k < BATCH; k++)
            acc += r[k * OUT + i] * x[((first + k) % DATA) * IN + j];
        gw[t] = __float2half(sc->scale * acc / BATCH);
    } else {
        unsigned i = t - OUT * IN;
        for (int k = 0; k < BATCH; k++)
            acc += r[k * OUT + i];
        gb[i] = __float2half(sc->scale * acc / BATCH);
    }
}
EXAMPLE_KERNEL(grad_kernel, grad_body)

/* GradScaler's update, after the step has written found_inf */
static __host__ __device__ void scaler_body(unsigned block, unsigned thread, unsigned threads, scaler *sc,
                                            int growth_interval)
{
    (void)threads;
    if (block != 0 || thread != 0)
        return;
    if (sc->found_inf) {
        sc->scale *= 0.5f;
        sc->clean = 0;
        sc->skipped++;
    } else if (++sc->clean == growth_interval) {
        sc->scale *= 2.0f;
        sc->clean = 0;
    }
}
EXAMPLE_KERNEL(scaler_kernel, scaler_body)

static double host_loss(const std::vector<__half> &w, const std::vector<__half> &b, const std::vector<float> &x,
                        const std::vector<float> &y)
{
    double sum = 0.0;
    for (int n = 0; n < DATA; n++)
        for (int i = 0; i < OUT; i++) {
            double r = (double)__half2float(b[i]) - y[n * OUT + i];
            for (int j = 0; j < IN; j++)
                r += (double)__half2float(w[i * IN + j]) * x[n * IN + j];
            sum += r * r;
        }
    return sum / (2.0 * DATA);
}

int main()
{
    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
        std::printf("no CUDA device: nothing to train here (the CPU example runs anywhere)\n");
        return 0;
    }
    /* data from a known layer, parameters starting at zero */
    std::vector<float> x(DATA * IN), y(DATA * OUT), w_true(OUT * IN), b_true(OUT);
    unsigned s = 12345;
    auto uniform = [&s]() { s = s * 1664525u + 1013904223u; return (float)(s >> 8) / 16777216.0f * 2.0f - 1.0f; };
    for (float &v : w_true) v = 0.5f * uniform();
    for (float &v : b_true) v = 2.0f * uniform();
    for (float &v : x) v = uniform();
    for (int n = 0; n < DATA; n++)
        for (int i = 0; i < OUT; i++) {
            float acc = b_true[i];
            for (int j = 0; j < IN; j++)
                acc += w_true[i * IN + j] * x[n * IN + j];
            y[n * OUT + i] = acc;
        }
    std::vector<__half> hw(OUT * IN, __float2half(0.0f)), hb(OUT, __float2half(0.0f));
    const double loss0 = host_loss(hw, hb, x, y);

    __half *w, *b, *gw, *gb;
    float *dx, *dy, *r;
    scaler *sc;
    CHECK_CUDA(cudaMalloc(&w, OUT * IN * sizeof(__half)));
    CHECK_CUDA(cudaMalloc(&b, OUT * sizeof(__half)));
    CHECK_CUDA(cudaMalloc(&gw, OUT * IN * sizeof(__half)));
    CHECK_CUDA(cudaMalloc(&gb, OUT * sizeof(__half)));
    CHECK_CUDA(cudaMalloc(&dx, x.size() * sizeof(float)));
    CHECK_CUDA(cudaMalloc(&dy, y.size() * sizeof(float)));
    CHECK_CUDA(cudaMalloc(&r, BATCH * OUT * sizeof(float)));
    CHECK_CUDA(cudaMalloc(&sc, sizeof(scaler)));
    CHECK_CUDA(cudaMemcpy(w, hw.data(), hw.size() * sizeof(__half), cudaMemcpyHostToDevice));
    CHECK_CUDA(cudaMemcpy(b, hb.data(), hb.size() * sizeof(__half), cudaMemcpyHostToDevice));
    CHECK_CUDA(cudaMemcpy(dx, x.data(), x.size() * sizeof(float), cudaMemcpyHostToDevice));
    CHECK_CUDA(cudaMemcpy(dy, y.data(), y.size() * sizeof(float), cudaMemcpyHostToDevice));
    const scaler init = {65536.0f, 0, 0, 0, 0.0f}; /* GradScaler's initial scale, 2^16 */
    CHECK_CUDA(cudaMemcpy(sc, &init, sizeof init, cudaMemcpyHostToDevice));

    /* fp16 params with fp32 master copies (the optimizer keeps them); weights in group 0 with
     * weight decay, biases in group 1 without */
    fopt_tensor tensors[2] = {{w, gw, OUT * IN, FOPT_FLOAT16, 0}, {b, gb, OUT, FOPT_FLOAT16, 1}};
    fopt_adam_config cfg = fopt_adam_config_default();
    cfg.lr = 3e-2;
    cfg.decoupled_weight_decay = true;
    cfg.weight_decay = 1e-4;
    cfg.precision.master_weights = true;
    fopt_optimizer *opt;
    CHECK_FOPT(fopt_adam_create(&opt, &cfg, tensors, 2));
    CHECK_FOPT(fopt_set_group_weight_decay(opt, 1, 0.0));

    fopt_step_options o = {};
    o.grad_scale = &sc->scale;  /* device pointers: read and written in stream order */
    o.found_inf = &sc->found_inf;
    o.grad_norm = &sc->grad_norm;
    o.max_grad_norm = 1.0;      /* clip the unscaled grads to a global norm of 1 */
    cudaStream_t stream;
    CHECK_CUDA(cudaStreamCreate(&stream));
    for (int step = 0; step < STEPS; step++) {
        const int first = step * BATCH % DATA;
        CHECK_FOPT(fopt_set_lr(opt, cfg.lr * 0.5 * (1.0 + std::cos(M_PI * step / STEPS))));
        EXAMPLE_LAUNCH(residual_kernel, (BATCH * OUT + THREADS - 1) / THREADS, THREADS, stream, w, b, dx, dy, r, first);
        EXAMPLE_LAUNCH(grad_kernel, (OUT * IN + OUT + THREADS - 1) / THREADS, THREADS, stream, dx, r, gw, gb,
                       (const scaler *)sc, first);
        CHECK_CUDA(cudaGetLastError());
        /* unscale, clip, check, step: two launches, no host synchronisation */
        CHECK_FOPT(fopt_step_ex(opt, &o, stream));
        EXAMPLE_LAUNCH(scaler_kernel, 1, 1, stream, sc, 200);
        CHECK_CUDA(cudaGetLastError());
    }
    CHECK_CUDA(cudaStreamSynchronize(stream));

    scaler last;
    CHECK_CUDA(cudaMemcpy(&last, sc, sizeof last, cudaMemcpyDeviceToHost));
    CHECK_CUDA(cudaMemcpy(hw.data(), w, hw.size() * sizeof(__half), cudaMemcpyDeviceToHost));
    CHECK_CUDA(cudaMemcpy(hb.data(), b, hb.size() * sizeof(__half), cudaMemcpyDeviceToHost));
    const double loss = host_loss(hw, hb, x, y);
    const int64_t taken = fopt_step_count(opt);
    std::printf("amp: %d steps, %lld taken, %d skipped on fp16 overflow; loss scale now %g; "
                "last grad norm %.3g (clipping at 1)\n",
                STEPS, (long long)taken, last.skipped, (double)last.scale, (double)last.grad_norm);
    std::printf("amp: loss %.4g -> %.4g (%.0fx lower)\n", loss0, loss, loss0 / loss);
    fopt_destroy(opt);
    cudaFree(w);
    cudaFree(b);
    cudaFree(gw);
    cudaFree(gb);
    cudaFree(dx);
    cudaFree(dy);
    cudaFree(r);
    cudaFree(sc);
    cudaStreamDestroy(stream);
    const bool ok = loss < loss0 / 100.0 && last.skipped >= 1 && taken == STEPS - last.skipped;
    std::printf("amp: %s\n", ok ? "OK" : "FAILED (the loss did not fall 100x, no step was skipped, or the count is off)");
    return ok ? 0 : 1;
}
