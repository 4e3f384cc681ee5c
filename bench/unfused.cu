/* The unfused GPU baseline of fopt_bench (see bench_gpu.h). Real CUDA build only: cuBLAS has no
 * emulated counterpart. Its scratch memory comes from the device layer, as all of the benchmark's.
 *
 * Adam, one pass per operation (t = step):
 *   gt = copy(g); [gt = -gt]; [p *= 1 - lr*wd | gt += wd*p]
 *   m = beta1*m; m += (1-beta1)*gt
 *   sq = gt*gt; v = beta2*v; v += (1-beta2)*sq
 *   [vmax = max(vmax, v)]
 *   sq = sqrt(v or vmax); sq *= 1/sqrt(1-beta2^t); sq += eps; sq = m/sq
 *   p += -lr/(1-beta1^t) * sq
 * RMSprop:
 *   gt = copy(g); [gt = -gt]; [gt += wd*p]
 *   sq = gt*gt; v = alpha*v; v += (1-alpha)*sq
 *   centered: ga = alpha*ga; ga += (1-alpha)*gt; sq = ga*ga; sq = v - sq; sq = sqrt(sq)
 *   else:     sq = sqrt(v)
 *   sq += eps; sq = gt/sq
 *   momentum: buf = momentum*buf; buf += sq; p += -lr*buf    else: p += -lr*sq
 * That is 10 to 16 passes where the fused kernel makes one. */
#include "bench_gpu.h"
#include "device.h"

#include <cublas_v2.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

struct bench_unfused {
    cublasHandle_t blas;
    cudaStream_t stream;
    float *gt;  /* working copy of the gradient */
    float *sq;  /* scratch: squares, denominators, updates */
    size_t capacity;
};

static char error_text[512];

const char *bench_gpu_error(void) { return error_text; }

int bench_gpu_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(error_text, sizeof error_text, fmt, ap);
    va_end(ap);
    return -1;
}

/* Returns bench_gpu_fail() from the calling function when `expr`, of type `type` and spelled `what`, is
 * not `ok`; `text` names the status. */
#define TRY(type, ok, text, expr, what)                                                     \
    do {                                                                                    \
        type st_ = (expr);                                                                  \
        if (st_ != (ok))                                                                    \
            return bench_gpu_fail("%s failed at %s:%d: %s", what, __FILE__, __LINE__, text(st_));     \
    } while (0)
#define CUDA_TRY(expr) TRY(cudaError_t, cudaSuccess, cudaGetErrorString, expr, #expr)
#define BLAS_TRY(expr)                                                                      \
    TRY(cublasStatus_t, CUBLAS_STATUS_SUCCESS, cublasGetStatusString, expr, #expr)

/* ---- one-line elementwise kernels: one element per thread, grid-stride for huge n ---- */

__global__ void square_kernel(float *out, const float *in, int64_t n)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        out[i] = in[i] * in[i];
}

__global__ void sqrt_kernel(float *out, const float *in, int64_t n)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        out[i] = sqrtf(in[i]);
}

__global__ void add_scalar_kernel(float *x, float s, int64_t n)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        x[i] += s;
}

/* out = a / b */
__global__ void div_kernel(float *out, const float *a, const float *b, int64_t n)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        out[i] = a[i] / b[i];
}

/* out = a - b */
__global__ void sub_kernel(float *out, const float *a, const float *b, int64_t n)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        out[i] = a[i] - b[i];
}

/* a = max(a, b) */
__global__ void max_kernel(float *a, const float *b, int64_t n)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        a[i] = fmaxf(a[i], b[i]);
}

static unsigned grid_for(size_t n)
{
    size_t blocks = (n + 255) / 256;
    return (unsigned)(blocks < 65535 * 8 ? blocks : 65535 * 8);
}

#define LAUNCH(kernel, n, stream, ...)                                                      \
    do {                                                                                    \
        kernel<<<grid_for(n), 256, 0, (stream)>>>(__VA_ARGS__);                            \
        CUDA_TRY(cudaGetLastError());                                                       \
    } while (0)

int bench_unfused_create(bench_unfused **out, cudaStream_t stream)
{
    bench_unfused *u = (bench_unfused *)calloc(1, sizeof *u);
    if (!u)
        return bench_gpu_fail("out of host memory");
    cublasStatus_t st = cublasCreate(&u->blas);
    if (st != CUBLAS_STATUS_SUCCESS) {
        free(u);
        return bench_gpu_fail("cublasCreate: %s", cublasGetStatusString(st));
    }
    st = cublasSetStream(u->blas, stream);
    if (st != CUBLAS_STATUS_SUCCESS) {
        cublasDestroy(u->blas);
        free(u);
        return bench_gpu_fail("cublasSetStream: %s", cublasGetStatusString(st));
    }
    u->stream = stream;
    *out = u;
    return 0;
}

int bench_unfused_reserve(bench_unfused *u, size_t max_numel)
{
    if (max_numel <= u->capacity)
        return 0;
    CUDA_TRY(fopt_dev_stream_synchronize(u->stream));
    CUDA_TRY(fopt_dev_free(u->gt));
    CUDA_TRY(fopt_dev_free(u->sq));
    u->gt = u->sq = NULL;
    u->capacity = 0;
    CUDA_TRY(fopt_dev_malloc((void **)&u->gt, max_numel * sizeof(float)));
    CUDA_TRY(fopt_dev_malloc((void **)&u->sq, max_numel * sizeof(float)));
    u->capacity = max_numel;
    return 0;
}

void bench_unfused_destroy(bench_unfused *u)
{
    if (!u)
        return;
    (void)fopt_dev_stream_synchronize(u->stream);
    (void)fopt_dev_free(u->gt);
    (void)fopt_dev_free(u->sq);
    cublasDestroy(u->blas);
    free(u);
}

/* Checks n against the scratch; then g_t = (maximize ? -g : g), then L2 weight decay or AdamW's
 * decay of p. */
static int prepare_grad(bench_unfused *u, size_t n, float *param, const float *grad,
                        bool maximize, double weight_decay, bool decoupled, double lr)
{
    if (n > u->capacity)
        return bench_gpu_fail("unfused scratch holds %zu elements, tensor has %zu", u->capacity, n);
    const int64_t len = (int64_t)n;
    BLAS_TRY(cublasScopy_64(u->blas, len, grad, 1, u->gt, 1));
    if (maximize) {
        const float minus_one = -1.0f;
        BLAS_TRY(cublasSscal_64(u->blas, len, &minus_one, u->gt, 1));
    }
    if (weight_decay != 0.0) {
        if (decoupled) {
            const float decay = (float)(1.0 - lr * weight_decay);
            BLAS_TRY(cublasSscal_64(u->blas, len, &decay, param, 1));
        } else {
            const float wd = (float)weight_decay;
            BLAS_TRY(cublasSaxpy_64(u->blas, len, &wd, param, 1, u->gt, 1));
        }
    }
    return 0;
}

/* x = beta * x + (1 - beta) * y (both factors rounded to float), for the moving averages. */
static int ema(bench_unfused *u, int64_t n, double beta, const float *y, float *x)
{
    const float b = (float)beta, one_minus_b = (float)(1.0 - beta);
    BLAS_TRY(cublasSscal_64(u->blas, n, &b, x, 1));
    BLAS_TRY(cublasSaxpy_64(u->blas, n, &one_minus_b, y, 1, x, 1));
    return 0;
}

int bench_unfused_adam_step(bench_unfused *u, const fopt_adam_config *cfg, int64_t step, size_t n,
                            float *param, const float *grad, float *exp_avg, float *exp_avg_sq,
                            float *max_exp_avg_sq)
{
    if (n == 0)
        return 0;
    if (prepare_grad(u, n, param, grad, cfg->maximize, cfg->weight_decay, cfg->decoupled_weight_decay,
                     cfg->lr))
        return -1;
    const int64_t len = (int64_t)n;
    cudaStream_t s = u->stream;
    if (ema(u, len, cfg->beta1, u->gt, exp_avg))
        return -1;
    LAUNCH(square_kernel, n, s, u->sq, u->gt, len);
    if (ema(u, len, cfg->beta2, u->sq, exp_avg_sq))
        return -1;

    const float *second = exp_avg_sq;
    if (cfg->amsgrad) {
        LAUNCH(max_kernel, n, s, max_exp_avg_sq, exp_avg_sq, len);
        second = max_exp_avg_sq;
    }
    const double bias1 = 1.0 - pow(cfg->beta1, (double)step);
    const float inv_bc2 = (float)(1.0 / sqrt(1.0 - pow(cfg->beta2, (double)step)));
    const float neg_step = (float)(-cfg->lr / bias1);
    LAUNCH(sqrt_kernel, n, s, u->sq, second, len);
    BLAS_TRY(cublasSscal_64(u->blas, len, &inv_bc2, u->sq, 1));
    LAUNCH(add_scalar_kernel, n, s, u->sq, (float)cfg->eps, len);
    LAUNCH(div_kernel, n, s, u->sq, exp_avg, u->sq, len);
    BLAS_TRY(cublasSaxpy_64(u->blas, len, &neg_step, u->sq, 1, param, 1));
    return 0;
}

int bench_unfused_rmsprop_step(bench_unfused *u, const fopt_rmsprop_config *cfg, size_t n,
                               float *param, const float *grad, float *square_avg,
                               float *momentum_buffer, float *grad_avg)
{
    if (n == 0)
        return 0;
    if (prepare_grad(u, n, param, grad, cfg->maximize, cfg->weight_decay, false, cfg->lr))
        return -1;
    const int64_t len = (int64_t)n;
    cudaStream_t s = u->stream;
    LAUNCH(square_kernel, n, s, u->sq, u->gt, len);
    if (ema(u, len, cfg->alpha, u->sq, square_avg))
        return -1;
    if (cfg->centered) {
        if (ema(u, len, cfg->alpha, u->gt, grad_avg))
            return -1;
        LAUNCH(square_kernel, n, s, u->sq, grad_avg, len);
        LAUNCH(sub_kernel, n, s, u->sq, square_avg, u->sq, len);
        LAUNCH(sqrt_kernel, n, s, u->sq, u->sq, len);
    } else {
        LAUNCH(sqrt_kernel, n, s, u->sq, square_avg, len);
    }
    LAUNCH(add_scalar_kernel, n, s, u->sq, (float)cfg->eps, len);
    LAUNCH(div_kernel, n, s, u->sq, u->gt, u->sq, len);
    const float neg_lr = (float)-cfg->lr;
    if (cfg->momentum > 0.0) {
        const float mu = (float)cfg->momentum, one = 1.0f;
        BLAS_TRY(cublasSscal_64(u->blas, len, &mu, momentum_buffer, 1));
        BLAS_TRY(cublasSaxpy_64(u->blas, len, &one, u->sq, 1, momentum_buffer, 1));
        BLAS_TRY(cublasSaxpy_64(u->blas, len, &neg_lr, momentum_buffer, 1, param, 1));
    } else {
        BLAS_TRY(cublasSaxpy_64(u->blas, len, &neg_lr, u->sq, 1, param, 1));
    }
    return 0;
}
