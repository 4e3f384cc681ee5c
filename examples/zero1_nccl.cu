/* ZeRO-1 over NCCL on the GPUs of one machine: data-parallel AdamW whose optimizer state is split
 * across the GPUs, bit-identical to one process stepping the whole model on the CPU reference.
 *
 * One process drives every local GPU (ncclCommInitAll; world = the number of GPUs, so a one-GPU
 * machine runs the same path with one rank). Every GPU holds the whole model in a flat fp32
 * buffer, padded to world * S elements (S from fopt_shard_bounds: NCCL's reduce-scatter and
 * all-gather move equal counts per rank), and a shard optimizer (fopt_adam_create_shard) over its
 * range of the list. Per step, on every GPU r, all enqueued on r's stream:
 *   1. its gradient contribution for every param (a kernel standing in for the backward pass);
 *   2. ncclReduceScatter in place: the sum over GPUs of range r's grads in r's part of the buffer;
 *   3. fopt_grad_sq_sum: the partial sum of squares of range r (a device double), ncclAllGather
 *      of the 8-byte partials, and a one-thread kernel summing them in rank order;
 *   4. fopt_step_ex with the loss scale, clipping, the inf/NaN check and that sum
 *      (fopt_step_options.grad_sq_sum, device pointers);
 *   5. ncclAllGather in place of the params.
 * The host reads the inf flag after each step to halve the loss scale, as AMP does. The same
 * training runs on the CPU reference (fopt_adam_step_ref_multi over the whole list, the norm from
 * the per-range partials summed in rank order); every GPU's params are compared with it bit for bit
 * after every step. Prints "zero1: match" and exits 0, or the first difference and exits 1.
 * Without a CUDA device it says so and exits 0. */
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <cuda_runtime.h>
#include <nccl.h>

#include "example_check.h"
#include "fusedopt.h"
#include "zero1_model.h"

#define CHECK_NCCL(x) EXAMPLE_CHECK(ncclResult_t, ncclSuccess, ncclGetErrorString, x)

__global__ void contribution_kernel(const float *w, float *g, size_t n, int r, int it, const float *scale)
{
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i < n)
        g[i] = zero1_contribution(r, it, i, w[i], *scale);
}

/* The global statistics: the gathered partials summed in rank order (every GPU the same bits). */
__global__ void rank_order_sum(const double *partials, int world, double *out)
{
    double s = 0.0;
    for (int r = 0; r < world; r++)
        s += partials[r];
    *out = s;
}

struct rank_state {
    float *w, *g, *scale, *norm;
    double *partial, *partials, *sq_sum;
    int32_t *found_inf;
    cudaStream_t stream;
    ncclComm_t comm;
    fopt_optimizer *opt;
};

int main()
{
    int world = 0;
    if (cudaGetDeviceCount(&world) != cudaSuccess || world == 0) {
        std::printf("zero1_nccl: no CUDA device: skipped (zero1_mpi runs the same algorithm on the CPU)\n");
        return 0;
    }
    size_t total = 0;
    for (size_t k = 0; k < ZERO1_COUNT; k++)
        total += ZERO1_SIZES[k];
    std::vector<uint64_t> bounds(world + 1);
    CHECK_FOPT(fopt_shard_bounds(total, world, bounds.data()));
    const size_t S = (size_t)(bounds[1] - bounds[0]); /* per-rank count of the collectives */
    const size_t padded = S * (size_t)world;

    fopt_adam_config cfg = fopt_adam_config_default(); /* AdamW */
    cfg.lr = 1e-2;
    cfg.decoupled_weight_decay = true;
    cfg.weight_decay = 0.01;
    float scale = 4096.0f;

    std::vector<float> w0(total);
    for (size_t i = 0; i < total; i++)
        w0[i] = zero1_initial_param(i);

    std::vector<int> devs(world);
    for (int r = 0; r < world; r++)
        devs[r] = r;
    std::vector<rank_state> rk(world);
    std::vector<ncclComm_t> comms(world);
    CHECK_NCCL(ncclCommInitAll(comms.data(), world, devs.data()));
    for (int r = 0; r < world; r++) {
        rank_state &s = rk[r];
        s.comm = comms[r];
        CHECK_CUDA(cudaSetDevice(r));
        CHECK_CUDA(cudaStreamCreate(&s.stream));
        CHECK_CUDA(cudaMalloc(&s.w, padded * sizeof(float)));
        CHECK_CUDA(cudaMalloc(&s.g, padded * sizeof(float)));
        CHECK_CUDA(cudaMalloc(&s.scale, sizeof(float)));
        CHECK_CUDA(cudaMalloc(&s.norm, sizeof(float)));
        CHECK_CUDA(cudaMalloc(&s.partial, sizeof(double)));
        CHECK_CUDA(cudaMalloc(&s.partials, world * sizeof(double)));
        CHECK_CUDA(cudaMalloc(&s.sq_sum, sizeof(double)));
        CHECK_CUDA(cudaMalloc(&s.found_inf, sizeof(int32_t)));
        CHECK_CUDA(cudaMemset(s.w, 0, padded * sizeof(float)));
        CHECK_CUDA(cudaMemset(s.g, 0, padded * sizeof(float)));
        CHECK_CUDA(cudaMemcpy(s.w, w0.data(), total * sizeof(float), cudaMemcpyHostToDevice));
        CHECK_CUDA(cudaMemcpy(s.scale, &scale, sizeof scale, cudaMemcpyHostToDevice));
        /* the whole list as views into the flat buffers; the optimizer steps [bounds[r], bounds[r+1]) */
        fopt_tensor t[ZERO1_COUNT];
        size_t at = 0;
        for (size_t k = 0; k < ZERO1_COUNT; k++) {
            t[k] = fopt_tensor{s.w + at, s.g + at, ZERO1_SIZES[k], FOPT_FLOAT32, 0};
            at += ZERO1_SIZES[k];
        }
        CHECK_FOPT(fopt_adam_create_shard(&s.opt, &cfg, t, ZERO1_COUNT, bounds[r], bounds[r + 1]));
    }

    /* the CPU reference: the whole list in one process */
    std::vector<float> w_ref(w0), g_ref(total), m_ref(total), v_ref(total), w_dev(total);
    std::vector<fopt_host_tensor> ref(ZERO1_COUNT);
    size_t at = 0;
    for (size_t k = 0; k < ZERO1_COUNT; k++) {
        std::memset(&ref[k], 0, sizeof ref[k]);
        ref[k].param = w_ref.data() + at;
        ref[k].grad = g_ref.data() + at;
        ref[k].numel = ZERO1_SIZES[k];
        ref[k].dtype = FOPT_FLOAT32;
        ref[k].state[0] = m_ref.data() + at;
        ref[k].state[1] = v_ref.data() + at;
        at += ZERO1_SIZES[k];
    }
    std::printf("zero1_nccl: %zu params in %zu tensors, %d GPU rank%s, %zu elements per rank\n", total, ZERO1_COUNT, world,
                world > 1 ? "s" : "", S);

    int64_t t = 0;
    for (int it = 1; it <= ZERO1_STEPS; it++) {
        for (int r = 0; r < world; r++) {
            CHECK_CUDA(cudaSetDevice(r));
            contribution_kernel<<<(unsigned)((total + 255) / 256), 256, 0, rk[r].stream>>>(rk[r].w, rk[r].g, total, r,
                                                                                            it, rk[r].scale);
            CHECK_CUDA(cudaGetLastError());
        }
        CHECK_NCCL(ncclGroupStart());
        for (int r = 0; r < world; r++)
            CHECK_NCCL(ncclReduceScatter(rk[r].g, rk[r].g + (size_t)r * S, S, ncclFloat, ncclSum, rk[r].comm,
                                         rk[r].stream));
        CHECK_NCCL(ncclGroupEnd());
        for (int r = 0; r < world; r++)
            CHECK_FOPT(fopt_grad_sq_sum(rk[r].opt, rk[r].scale, rk[r].partial, rk[r].stream));
        CHECK_NCCL(ncclGroupStart());
        for (int r = 0; r < world; r++)
            CHECK_NCCL(ncclAllGather(rk[r].partial, rk[r].partials, 1, ncclDouble, rk[r].comm, rk[r].stream));
        CHECK_NCCL(ncclGroupEnd());
        for (int r = 0; r < world; r++) {
            CHECK_CUDA(cudaSetDevice(r));
            rank_order_sum<<<1, 1, 0, rk[r].stream>>>(rk[r].partials, world, rk[r].sq_sum);
            CHECK_CUDA(cudaGetLastError());
            fopt_step_options o;
            std::memset(&o, 0, sizeof o);
            o.grad_scale = rk[r].scale;
            o.max_grad_norm = 1.0;
            o.grad_norm = rk[r].norm;
            o.found_inf = rk[r].found_inf;
            o.grad_sq_sum = rk[r].sq_sum;
            CHECK_FOPT(fopt_step_ex(rk[r].opt, &o, rk[r].stream));
        }
        /* a skipped step left every range as it was: gathering it again changes nothing */
        CHECK_NCCL(ncclGroupStart());
        for (int r = 0; r < world; r++)
            CHECK_NCCL(ncclAllGather(rk[r].w + (size_t)r * S, rk[r].w, S, ncclFloat, rk[r].comm, rk[r].stream));
        CHECK_NCCL(ncclGroupEnd());

        /* the reference step: every rank's contribution summed here, the same statistics */
        for (size_t i = 0; i < total; i++) {
            float s = 0.0f;
            for (int r = 0; r < world; r++)
                s += zero1_contribution(r, it, i, w_ref[i], scale);
            g_ref[i] = s;
        }
        double ref_sq_sum = 0.0;
        for (int r = 0; r < world; r++) {
            std::vector<fopt_host_tensor> pieces(ZERO1_COUNT);
            size_t n;
            double partial;
            CHECK_FOPT(fopt_shard_pieces(ref.data(), ZERO1_COUNT, bounds[r], bounds[r + 1], pieces.data(), &n));
            CHECK_FOPT(fopt_grad_sq_sum_ref_multi(pieces.data(), n, &scale, &partial));
            ref_sq_sum += partial;
        }
        float ref_norm;
        int32_t ref_inf;
        fopt_step_options ro;
        std::memset(&ro, 0, sizeof ro);
        ro.grad_scale = &scale;
        ro.max_grad_norm = 1.0;
        ro.grad_norm = &ref_norm;
        ro.found_inf = &ref_inf;
        ro.grad_sq_sum = &ref_sq_sum;
        CHECK_FOPT(fopt_adam_step_ref_multi(&cfg, t + 1, ref.data(), ZERO1_COUNT, &ro));

        int32_t found_inf = 0;
        float norm = 0.0f;
        for (int r = 0; r < world; r++) {
            CHECK_CUDA(cudaSetDevice(r));
            CHECK_CUDA(cudaStreamSynchronize(rk[r].stream));
            int32_t f;
            float nr;
            CHECK_CUDA(cudaMemcpy(&f, rk[r].found_inf, sizeof f, cudaMemcpyDeviceToHost));
            CHECK_CUDA(cudaMemcpy(&nr, rk[r].norm, sizeof nr, cudaMemcpyDeviceToHost));
            CHECK_CUDA(cudaMemcpy(w_dev.data(), rk[r].w, total * sizeof(float), cudaMemcpyDeviceToHost));
            if (f != ref_inf || std::memcmp(&nr, &ref_norm, sizeof nr) != 0) {
                std::printf("zero1: MISMATCH at step %d on GPU %d: found_inf %d, reference %d; norm %.9g, reference %.9g\n",
                            it, r, f, ref_inf, nr, ref_norm);
                return 1;
            }
            for (size_t i = 0; i < total; i++)
                if (std::memcmp(&w_dev[i], &w_ref[i], sizeof(float)) != 0) {
                    std::printf("zero1: MISMATCH at step %d on GPU %d: param %zu is %.9g, reference %.9g\n", it, r, i,
                                w_dev[i], w_ref[i]);
                    return 1;
                }
            found_inf = f;
            norm = nr;
        }
        std::printf("step %2d  grad norm %12.4f  loss scale %6.0f%s\n", it, norm, scale,
                    found_inf ? "  inf: skipped by every rank" : "");
        if (found_inf) {
            scale /= 2.0f;
            for (int r = 0; r < world; r++)
                CHECK_CUDA(cudaMemcpy(rk[r].scale, &scale, sizeof scale, cudaMemcpyHostToDevice));
        } else {
            t++;
        }
    }
    for (int r = 0; r < world; r++) {
        CHECK_CUDA(cudaSetDevice(r));
        fopt_destroy(rk[r].opt);
        ncclCommDestroy(rk[r].comm);
        cudaFree(rk[r].w);
        cudaFree(rk[r].g);
        cudaFree(rk[r].scale);
        cudaFree(rk[r].norm);
        cudaFree(rk[r].partial);
        cudaFree(rk[r].partials);
        cudaFree(rk[r].sq_sum);
        cudaFree(rk[r].found_inf);
        cudaStreamDestroy(rk[r].stream);
    }
    std::printf("zero1_nccl: %lld steps, %d skipped\n", (long long)t, ZERO1_STEPS - (int)t);
    std::printf("zero1: match\n");
    return 0;
}
