/* Trains the digits MLP of digits_mlp.c on the GPU: the same model, initialisation, batch order,
 * schedule and hyper-parameters (digits_common.c), with the parameters and gradients in device
 * memory, the forward and backward pass as cuBLAS SGEMMs plus small kernels (bias add, ReLU,
 * softmax cross-entropy, bias gradient), and one fusedopt AdamW optimizer over the four tensors in
 * two parameter groups (0: weights, decayed; 1: biases, fopt_set_group_weight_decay 0), the lr of
 * each group set per step for the cosine schedule, one fopt_step() per batch. A checkpoint holds
 * the parameters and fopt_state_save()'s bytes.
 *
 * Before training, the gradients of the first batch are checked against the plain C backward pass
 * of digits_common.c (the program fails if they differ by more than 1e-3 of the tensor's largest
 * magnitude), so a wrong transpose or leading dimension cannot go unnoticed.
 *
 *   digits_mlp_gpu build/digits/digits.bin --csv gpu.csv     (same options as digits_mlp)
 *
 * Without a CUDA device it says so and exits 0, and so it does against a fusedopt built with the
 * emulated device (-DFOPT_DEVICE_EMULATION=ON), which cannot stand in for cuBLAS. */
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "digits_common.h"
#include "example_check.h"
#include "fusedopt.h"

#define CHECK_CUBLAS(x) EXAMPLE_CHECK(cublasStatus_t, CUBLAS_STATUS_SUCCESS, cublasGetStatusString, x)

/* after a kernel launch: launch errors now, execution errors at the next synchronisation */
#define LAUNCH_TRY() CHECK_CUDA(cudaGetLastError())

static const int THREADS = 256;
static unsigned blocks(size_t n) { return (unsigned)((n + THREADS - 1) / THREADS); }

/* ---------------------------------------------------------------------------------------------
 * Kernels. Matrices are row-major, as in digits_common.c.
 * ------------------------------------------------------------------------------------------- */

/* xb[r][k] = x[order[r]][k], yb[r] = y[order[r]] */
__global__ void gather_kernel(const float *x, const int32_t *y, const int32_t *order, int rows,
                              int features, float *xb, int32_t *yb)
{
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i >= (size_t)rows * features)
        return;
    int r = (int)(i / features), k = (int)(i % features);
    xb[i] = x[(size_t)order[r] * features + k];
    if (k == 0)
        yb[r] = y[order[r]];
}

/* v[r][c] += bias[c], then the ReLU when relu != 0 */
__global__ void bias_act_kernel(float *v, const float *bias, int rows, int cols, int relu)
{
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i >= (size_t)rows * cols)
        return;
    float t = v[i] + bias[i % cols];
    v[i] = relu ? (t > 0.0f ? t : 0.0f) : t;
}

/* one thread per row: loss[r] and dlogits[r][:] (digits_xent_row, shared with the CPU) */
__global__ void softmax_xent_kernel(const float *logits, const int32_t *y, int rows, int classes,
                                    float scale, float *loss, float *dlogits)
{
    int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r < rows)
        digits_xent_row(logits + (size_t)r * classes, y[r], classes, scale, &loss[r],
                        dlogits + (size_t)r * classes);
}

/* db[c] = sum over r of d[r][c]: one thread per column, rows summed in order */
__global__ void bias_grad_kernel(const float *d, int rows, int cols, float *db)
{
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= cols)
        return;
    float acc = 0.0f;
    for (int r = 0; r < rows; r++)
        acc += d[(size_t)r * cols + c];
    db[c] = acc;
}

/* dh[i] = 0 where the ReLU output h[i] is 0 */
__global__ void relu_grad_kernel(float *dh, const float *h, size_t n)
{
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i < n && !(h[i] > 0.0f))
        dh[i] = 0.0f;
}

/* ---------------------------------------------------------------------------------------------
 * Row-major products through column-major cuBLAS. A row-major [r][c] array read as column-major
 * with leading dimension c is the c x r matrix, its transpose. So a row-major C = A B is computed
 * as the column-major C^T = B^T A^T: the operands swap places, each leading dimension is the row
 * length of its row-major array, and m, n are C's columns and rows.
 * ------------------------------------------------------------------------------------------- */
static const float ONE = 1.0f, ZERO = 0.0f;

/* y[rows][out] = x[rows][in] w[in][out]       (y^T = w^T x^T) */
static int gemm_xw(cublasHandle_t h, const float *x, const float *w, float *y, int rows, int in,
                   int out)
{
    CHECK_CUBLAS(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, out, rows, in, &ONE, w, out, x, in, &ZERO,
                           y, out));
    return 0;
}

/* dw[in][out] = x[rows][in]^T dy[rows][out]   (dw^T = dy^T x) */
static int gemm_xt_dy(cublasHandle_t h, const float *x, const float *dy, float *dw, int rows,
                      int in, int out)
{
    CHECK_CUBLAS(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_T, out, in, rows, &ONE, dy, out, x, in, &ZERO,
                           dw, out));
    return 0;
}

/* dx[rows][in] = dy[rows][out] w[in][out]^T   (dx^T = w dy^T) */
static int gemm_dy_wt(cublasHandle_t h, const float *dy, const float *w, float *dx, int rows,
                      int in, int out)
{
    CHECK_CUBLAS(cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, in, rows, out, &ONE, w, out, dy, out, &ZERO,
                           dx, in));
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * The model on the device
 * ------------------------------------------------------------------------------------------- */
struct gpu_model {
    const digits_data *d;
    digits_layout l;
    cudaStream_t stream;
    cublasHandle_t blas;
    fopt_optimizer *opt;
    float *params, *grads;              /* layout.total floats each */
    float *train_x, *test_x;            /* the data set */
    int32_t *train_y, *test_y, *order;  /* order: the epoch's sample order */
    float *x, *hidden, *dhidden, *logits, *dlogits; /* rows: max(batch, n_test) */
    int32_t *y;
    float *losses;                      /* per training sample, epoch order */
};

/* hidden = relu(x W1 + b1), logits = hidden W2 + b2 for rows of x (device) */
static int forward(gpu_model *m, const float *x, int rows)
{
    const digits_layout &l = m->l;
    if (gemm_xw(m->blas, x, m->params + l.w1, m->hidden, rows, l.in, l.hidden))
        return -1;
    bias_act_kernel<<<blocks((size_t)rows * l.hidden), THREADS, 0, m->stream>>>(
        m->hidden, m->params + l.b1, rows, l.hidden, 1);
    LAUNCH_TRY();
    if (gemm_xw(m->blas, m->hidden, m->params + l.w2, m->logits, rows, l.hidden, l.out))
        return -1;
    bias_act_kernel<<<blocks((size_t)rows * l.out), THREADS, 0, m->stream>>>(
        m->logits, m->params + l.b2, rows, l.out, 0);
    LAUNCH_TRY();
    return 0;
}

/* forward, loss (into losses[start..]) and every gradient for the samples order[start..+rows) */
static int forward_backward(gpu_model *m, int start, int rows)
{
    const digits_layout &l = m->l;
    const digits_data *d = m->d;
    gather_kernel<<<blocks((size_t)rows * d->features), THREADS, 0, m->stream>>>(
        m->train_x, m->train_y, m->order + start, rows, d->features, m->x, m->y);
    LAUNCH_TRY();
    if (forward(m, m->x, rows))
        return -1;
    softmax_xent_kernel<<<blocks((size_t)rows), THREADS, 0, m->stream>>>(
        m->logits, m->y, rows, l.out, 1.0f / (float)rows, m->losses + start, m->dlogits);
    LAUNCH_TRY();
    /* layer 2: dW2 = hidden^T dlogits, db2 = column sums, dhidden = dlogits W2^T, ReLU mask */
    if (gemm_xt_dy(m->blas, m->hidden, m->dlogits, m->grads + l.w2, rows, l.hidden, l.out))
        return -1;
    bias_grad_kernel<<<blocks((size_t)l.out), THREADS, 0, m->stream>>>(m->dlogits, rows, l.out,
                                                                       m->grads + l.b2);
    LAUNCH_TRY();
    if (gemm_dy_wt(m->blas, m->dlogits, m->params + l.w2, m->dhidden, rows, l.hidden, l.out))
        return -1;
    relu_grad_kernel<<<blocks((size_t)rows * l.hidden), THREADS, 0, m->stream>>>(
        m->dhidden, m->hidden, (size_t)rows * l.hidden);
    LAUNCH_TRY();
    /* layer 1: dW1 = x^T dhidden, db1 = column sums */
    if (gemm_xt_dy(m->blas, m->x, m->dhidden, m->grads + l.w1, rows, l.in, l.hidden))
        return -1;
    bias_grad_kernel<<<blocks((size_t)l.hidden), THREADS, 0, m->stream>>>(
        m->dhidden, rows, l.hidden, m->grads + l.b1);
    LAUNCH_TRY();
    return 0;
}

/* ---- the backend callbacks (digits_common.h) ---- */
static int gpu_begin_epoch(void *ctx, const int32_t *order)
{
    gpu_model *m = (gpu_model *)ctx;
    /* the previous epoch's batches may still read m->order: the copy is ordered after them on
     * the stream, and the host array is not reused before the synchronising end_epoch */
    CHECK_CUDA(cudaMemcpyAsync(m->order, order, (size_t)m->d->n_train * sizeof(int32_t),
                             cudaMemcpyHostToDevice, m->stream));
    return 0;
}

static int gpu_train_batch(void *ctx, int start, int rows, int64_t step, double lr)
{
    gpu_model *m = (gpu_model *)ctx;
    (void)step; /* the optimizer counts its steps itself (checked at resume and at the end) */
    if (forward_backward(m, start, rows))
        return -1;
    CHECK_FOPT(fopt_set_group_lr(m->opt, 0, lr));
    CHECK_FOPT(fopt_set_group_lr(m->opt, 1, lr));
    CHECK_FOPT(fopt_step(m->opt, m->stream));
    return 0;
}

static int gpu_end_epoch(void *ctx, float *losses)
{
    gpu_model *m = (gpu_model *)ctx;
    CHECK_CUDA(cudaMemcpyAsync(losses, m->losses, (size_t)m->d->n_train * sizeof(float),
                             cudaMemcpyDeviceToHost, m->stream));
    CHECK_CUDA(cudaStreamSynchronize(m->stream));
    return 0;
}

static int gpu_predict(void *ctx, float *logits)
{
    gpu_model *m = (gpu_model *)ctx;
    if (forward(m, m->test_x, m->d->n_test))
        return -1;
    CHECK_CUDA(cudaMemcpyAsync(logits, m->logits, (size_t)m->d->n_test * m->l.out * sizeof(float),
                             cudaMemcpyDeviceToHost, m->stream));
    CHECK_CUDA(cudaStreamSynchronize(m->stream));
    return 0;
}

static int gpu_get_params(void *ctx, float *params)
{
    gpu_model *m = (gpu_model *)ctx;
    CHECK_CUDA(cudaMemcpyAsync(params, m->params, m->l.total * sizeof(float), cudaMemcpyDeviceToHost,
                             m->stream));
    CHECK_CUDA(cudaStreamSynchronize(m->stream));
    return 0;
}

static int gpu_set_params(void *ctx, const float *params)
{
    gpu_model *m = (gpu_model *)ctx;
    CHECK_CUDA(cudaMemcpyAsync(m->params, params, m->l.total * sizeof(float), cudaMemcpyHostToDevice,
                             m->stream));
    CHECK_CUDA(cudaStreamSynchronize(m->stream));
    return 0;
}

static size_t gpu_state_size(void *ctx) { return fopt_state_size(((gpu_model *)ctx)->opt); }

static int gpu_save_state(void *ctx, void *buf, size_t size)
{
    gpu_model *m = (gpu_model *)ctx;
    CHECK_CUDA(cudaStreamSynchronize(m->stream));
    CHECK_FOPT(fopt_state_save(m->opt, buf, size));
    return 0;
}

static int gpu_load_state(void *ctx, const void *buf, size_t size, int64_t step)
{
    gpu_model *m = (gpu_model *)ctx;
    CHECK_CUDA(cudaStreamSynchronize(m->stream));
    CHECK_FOPT(fopt_state_load(m->opt, buf, size)); /* state, step count, group lrs and decays */
    int64_t count = fopt_step_count(m->opt);
    if (count != step) {
        std::fprintf(stderr, "digits_mlp_gpu: the checkpoint's optimizer is at step %lld, its "
                     "header says %lld\n", (long long)count, (long long)step);
        return -1;
    }
    return 0;
}

/* ---- setup, the gradient check, teardown ---- */
static int gpu_model_init(gpu_model *m, const digits_data *d, const digits_options *o)
{
    std::memset(m, 0, sizeof *m);
    m->d = d;
    digits_layout_init(&m->l, d->features, o->hidden, d->classes);
    const digits_layout &l = m->l;
    const size_t rows = (size_t)(o->batch > d->n_test ? o->batch : d->n_test);
    const size_t nf = (size_t)d->features;

    CHECK_CUDA(cudaStreamCreate(&m->stream));
    CHECK_CUBLAS(cublasCreate(&m->blas));
    CHECK_CUBLAS(cublasSetStream(m->blas, m->stream));
    /* plain fp32 products (no TF32), the closest to the CPU front end */
    CHECK_CUBLAS(cublasSetMathMode(m->blas, CUBLAS_PEDANTIC_MATH));

    CHECK_CUDA(cudaMalloc(&m->params, l.total * sizeof(float)));
    CHECK_CUDA(cudaMalloc(&m->grads, l.total * sizeof(float)));
    CHECK_CUDA(cudaMemset(m->grads, 0, l.total * sizeof(float)));
    CHECK_CUDA(cudaMalloc(&m->train_x, (size_t)d->n_train * nf * sizeof(float)));
    CHECK_CUDA(cudaMalloc(&m->train_y, (size_t)d->n_train * sizeof(int32_t)));
    CHECK_CUDA(cudaMalloc(&m->test_x, (size_t)d->n_test * nf * sizeof(float)));
    CHECK_CUDA(cudaMalloc(&m->test_y, (size_t)d->n_test * sizeof(int32_t)));
    CHECK_CUDA(cudaMalloc(&m->order, (size_t)d->n_train * sizeof(int32_t)));
    CHECK_CUDA(cudaMalloc(&m->x, rows * nf * sizeof(float)));
    CHECK_CUDA(cudaMalloc(&m->y, rows * sizeof(int32_t)));
    CHECK_CUDA(cudaMalloc(&m->hidden, rows * l.hidden * sizeof(float)));
    CHECK_CUDA(cudaMalloc(&m->dhidden, rows * l.hidden * sizeof(float)));
    CHECK_CUDA(cudaMalloc(&m->logits, rows * l.out * sizeof(float)));
    CHECK_CUDA(cudaMalloc(&m->dlogits, rows * l.out * sizeof(float)));
    CHECK_CUDA(cudaMalloc(&m->losses, (size_t)d->n_train * sizeof(float)));
    CHECK_CUDA(cudaMemcpy(m->train_x, d->train_x, (size_t)d->n_train * nf * sizeof(float),
                        cudaMemcpyHostToDevice));
    CHECK_CUDA(cudaMemcpy(m->train_y, d->train_y, (size_t)d->n_train * sizeof(int32_t),
                        cudaMemcpyHostToDevice));
    CHECK_CUDA(cudaMemcpy(m->test_x, d->test_x, (size_t)d->n_test * nf * sizeof(float),
                        cudaMemcpyHostToDevice));
    CHECK_CUDA(cudaMemcpy(m->test_y, d->test_y, (size_t)d->n_test * sizeof(int32_t),
                        cudaMemcpyHostToDevice));

    /* one optimizer over the four tensors: group 0 the weights, group 1 the biases */
    const size_t offset[4] = {l.w1, l.b1, l.w2, l.b2};
    const size_t numel[4] = {(size_t)l.in * l.hidden, (size_t)l.hidden, (size_t)l.hidden * l.out,
                             (size_t)l.out};
    const uint32_t group[4] = {0, 1, 0, 1};
    fopt_tensor tensors[4];
    for (int t = 0; t < 4; t++) {
        std::memset(&tensors[t], 0, sizeof tensors[t]);
        tensors[t].param = m->params + offset[t];
        tensors[t].grad = m->grads + offset[t];
        tensors[t].numel = numel[t];
        tensors[t].dtype = FOPT_FLOAT32;
        tensors[t].group = group[t];
    }
    fopt_adam_config cfg = fopt_adam_config_default();
    cfg.decoupled_weight_decay = true; /* AdamW */
    cfg.weight_decay = o->weight_decay; /* every group's default ... */
    cfg.lr = o->lr;
    CHECK_FOPT(fopt_adam_create(&m->opt, &cfg, tensors, 4));
    CHECK_FOPT(fopt_set_group_weight_decay(m->opt, 1, 0.0)); /* ... but none on the biases */
    return 0;
}

static void gpu_model_free(gpu_model *m)
{
    fopt_destroy(m->opt);
    void *bufs[] = {m->params, m->grads,  m->train_x, m->train_y, m->test_x, m->test_y,
                    m->order,  m->x,      m->y,       m->hidden,  m->dhidden, m->logits,
                    m->dlogits, m->losses};
    for (void *p : bufs)
        cudaFree(p); /* NULL is fine */
    if (m->blas)
        cublasDestroy(m->blas);
    if (m->stream)
        cudaStreamDestroy(m->stream);
}

/* The first batch's loss and gradients from the initial parameters, on the device and with the
 * plain C pass of digits_common.c; fails if some tensor differs by more than 1e-3 of its largest
 * magnitude. Changes no parameter and no optimizer state. */
static int check_gradients(gpu_model *m, const digits_options *o)
{
    const digits_data *d = m->d;
    const digits_layout &l = m->l;
    const int rows = o->batch < d->n_train ? o->batch : d->n_train;
    const size_t nf = (size_t)d->features;
    std::vector<float> params(l.total), g_gpu(l.total), g_cpu(l.total), loss_gpu(rows),
        loss_cpu(rows), x((size_t)rows * nf), hidden((size_t)rows * l.hidden),
        dhidden((size_t)rows * l.hidden), logits((size_t)rows * l.out),
        dlogits((size_t)rows * l.out);
    std::vector<int32_t> order(d->n_train), y(rows);

    digits_init_params(&l, o->seed, params.data());
    digits_epoch_order(o->seed, 0, d->n_train, order.data());
    if (gpu_set_params(m, params.data()) || gpu_begin_epoch(m, order.data()) ||
        forward_backward(m, 0, rows))
        return -1;
    CHECK_CUDA(cudaMemcpyAsync(g_gpu.data(), m->grads, l.total * sizeof(float),
                             cudaMemcpyDeviceToHost, m->stream));
    CHECK_CUDA(cudaMemcpyAsync(loss_gpu.data(), m->losses, rows * sizeof(float),
                             cudaMemcpyDeviceToHost, m->stream));
    CHECK_CUDA(cudaStreamSynchronize(m->stream));

    for (int r = 0; r < rows; r++) {
        std::memcpy(&x[r * nf], d->train_x + (size_t)order[r] * nf, nf * sizeof(float));
        y[r] = d->train_y[order[r]];
    }
    digits_forward(&l, params.data(), x.data(), rows, hidden.data(), logits.data());
    digits_softmax_xent(logits.data(), y.data(), rows, l.out, 1.0f / (float)rows, loss_cpu.data(),
                        dlogits.data());
    digits_backward(&l, params.data(), x.data(), rows, hidden.data(), dlogits.data(),
                    dhidden.data(), g_cpu.data());

    const char *name[5] = {"W1", "b1", "W2", "b2", "loss"};
    const float *gpu[5] = {&g_gpu[l.w1], &g_gpu[l.b1], &g_gpu[l.w2], &g_gpu[l.b2], loss_gpu.data()};
    const float *cpu[5] = {&g_cpu[l.w1], &g_cpu[l.b1], &g_cpu[l.w2], &g_cpu[l.b2], loss_cpu.data()};
    const size_t n[5] = {(size_t)l.in * l.hidden, (size_t)l.hidden, (size_t)l.hidden * l.out,
                         (size_t)l.out, (size_t)rows};
    double worst = 0.0;
    int bad = 0;
    std::printf("gpu: gradient check, first batch (%d rows) against the C backward pass:", rows);
    for (int t = 0; t < 5; t++) {
        double big = 0.0, diff = 0.0;
        for (size_t i = 0; i < n[t]; i++) {
            double c = cpu[t][i], g = gpu[t][i];
            big = std::fabs(c) > big ? std::fabs(c) : big;
            /* written so that a NaN counts as a failure */
            double e = std::fabs(g - c);
            diff = !(e <= diff) ? e : diff;
        }
        double rel = big > 0.0 ? diff / big : diff;
        std::printf(" %s %.1e", name[t], rel);
        worst = !(rel <= worst) ? rel : worst;
        bad |= !(rel <= 1e-3) || big == 0.0;
    }
    std::printf(" (relative to each tensor's largest magnitude): %s\n", bad ? "FAILED" : "OK");
    if (bad)
        std::fprintf(stderr, "digits_mlp_gpu: the device's gradients differ from the C backward "
                     "pass (worst %.3e, limit 1e-3, or a tensor is all zero)\n", worst);
    return bad ? -1 : 0;
}

static int run(const digits_options *o, const digits_data *d, gpu_model *m)
{
    if (gpu_model_init(m, d, o) || check_gradients(m, o))
        return -1;
    cudaDeviceProp prop;
    int dev = 0;
    CHECK_CUDA(cudaGetDevice(&dev));
    CHECK_CUDA(cudaGetDeviceProperties(&prop, dev));
    std::printf("gpu: fusedopt %s on %s; %d train / %d test samples; MLP %d-%d-%d, batch %d, "
                "%d epochs; AdamW lr %g (warmup %d, cosine to %g), weight decay %g on weights "
                "(group 0), 0 on biases (group 1); seed %llu\n",
                fopt_version(), prop.name, d->n_train, d->n_test, m->l.in, m->l.hidden, m->l.out,
                o->batch, o->epochs, o->lr, o->warmup, o->min_lr, o->weight_decay,
                (unsigned long long)o->seed);

    digits_backend b = {"gpu",          m,              gpu_begin_epoch, gpu_train_batch,
                        gpu_end_epoch,  gpu_predict,    gpu_get_params,  gpu_set_params,
                        gpu_state_size, gpu_save_state, gpu_load_state};
    digits_result res;
    if (digits_train(o, d, &m->l, &b, &res))
        return -1;
    int64_t steps = fopt_step_count(m->opt);
    const int64_t per_epoch = (d->n_train + o->batch - 1) / o->batch;
    if (steps != per_epoch * res.epochs_done) {
        std::fprintf(stderr, "digits_mlp_gpu: the optimizer counted %lld steps, expected %lld\n",
                     (long long)steps, (long long)(per_epoch * res.epochs_done));
        return -1;
    }
    std::printf("gpu: %s after %d of %d epochs: test accuracy %.2f%%, train loss %.6f, %.1f ms "
                "per epoch, params checksum %016llx\n",
                res.stopped ? "stopped" : "done", res.epochs_done, o->epochs, 100.0 * res.test_acc,
                res.train_loss, res.epoch_ms, (unsigned long long)res.checksum);
    return 0;
}

int main(int argc, char **argv)
{
    digits_options o;
    digits_parse_args(argc, argv, &o);
#ifdef FOPT_DEVICE_EMULATION
    /* fusedopt's emulated device keeps "device" memory on the host; cuBLAS needs a real GPU */
    std::printf("gpu: skipped: fusedopt is built with the emulated device, which cannot run cuBLAS "
                "(digits_mlp trains the same model on the CPU)\n");
    return 0;
#endif
    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
        std::printf("gpu: no CUDA device: skipped (digits_mlp trains the same model on the CPU)\n");
        return 0;
    }
    digits_data d;
    if (digits_load(o.data_path, &d))
        return 1;
    gpu_model m;
    int rc = run(&o, &d, &m) ? 1 : 0;
    gpu_model_free(&m);
    digits_free(&d);
    return rc;
}
