/* A GPU training loop around the fusedopt optimizer object: two parameter tensors in device
 * memory, a gradient kernel standing in for the backward pass, one fopt_step() per iteration on
 * the training stream, a cosine learning-rate schedule through fopt_set_lr(), and a checkpoint
 * saved and restored with fopt_state_save()/fopt_state_load().
 *
 * The model minimises sum((w - target)^2) so the result is easy to check. Without a CUDA device
 * it says so and exits 0. Against a fusedopt built with the emulated device
 * (-DFOPT_DEVICE_EMULATION=ON) it runs on the CPU: example_device.h maps the runtime calls below
 * onto the library's device layer and runs the gradient kernel's body on the host. */
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include <cuda_runtime.h>

#include "example_device.h" /* before example_check.h: CHECK_CUDA's messages on the emulated device */
#include "example_check.h"
#include "fusedopt.h"

/* "Backward": d/dw sum((w - target)^2) = 2 (w - target). The kernel's body is a function of
 * (block, thread, threads per block, arguments), so it also runs on the emulated device. */
static __host__ __device__ void grad_body(unsigned block, unsigned thread, unsigned threads,
                                          const float *w, float *g, float target, size_t n)
{
    size_t i = block * (size_t)threads + thread;
    if (i < n)
        g[i] = 2.0f * (w[i] - target);
}
EXAMPLE_KERNEL(grad_kernel, grad_body)

int main()
{
    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
        std::printf("no CUDA device: nothing to train here (the CPU example runs anywhere)\n");
        return 0;
    }
#ifdef FOPT_DEVICE_EMULATION
    std::printf("emulated device (fusedopt built with FOPT_DEVICE_EMULATION): kernels run on the CPU\n");
#endif
    const size_t sizes[2] = {1 << 20, 4097};
    float *w[2], *g[2];
    fopt_tensor tensors[2];
    for (int k = 0; k < 2; k++) {
        CHECK_CUDA(cudaMalloc(&w[k], sizes[k] * sizeof(float)));
        CHECK_CUDA(cudaMalloc(&g[k], sizes[k] * sizeof(float)));
        std::vector<float> init(sizes[k]);
        for (size_t i = 0; i < sizes[k]; i++)
            init[i] = std::sin(0.001f * (float)i);
        CHECK_CUDA(cudaMemcpy(w[k], init.data(), sizes[k] * sizeof(float), cudaMemcpyHostToDevice));
        tensors[k] = fopt_tensor{w[k], g[k], sizes[k], FOPT_FLOAT32};
    }

    fopt_adam_config cfg = fopt_adam_config_default();
    cfg.lr = 0.05;
    cfg.decoupled_weight_decay = true;
    cfg.weight_decay = 0.0;
    fopt_optimizer *opt = nullptr;
    CHECK_FOPT(fopt_adam_create(&opt, &cfg, tensors, 2));

    cudaStream_t stream;
    CHECK_CUDA(cudaStreamCreate(&stream));
    const float target = 0.75f;
    const int steps = 400;
    std::vector<unsigned char> checkpoint;
    for (int it = 0; it < steps; it++) {
        for (int k = 0; k < 2; k++)
            EXAMPLE_LAUNCH(grad_kernel, (sizes[k] + 255) / 256, 256, stream, w[k], g[k], target, sizes[k]);
        CHECK_CUDA(cudaGetLastError());
        CHECK_FOPT(fopt_set_lr(opt, 0.05 * 0.5 * (1.0 + std::cos(M_PI * it / steps))));
        CHECK_FOPT(fopt_step(opt, stream));
        if (it == steps / 2) { /* checkpoint halfway, then restore it: training continues unchanged */
            checkpoint.resize(fopt_state_size(opt));
            CHECK_FOPT(fopt_state_save(opt, checkpoint.data(), checkpoint.size()));
            CHECK_FOPT(fopt_state_load(opt, checkpoint.data(), checkpoint.size()));
        }
    }
    CHECK_CUDA(cudaStreamSynchronize(stream));

    float worst = 0.0f;
    for (int k = 0; k < 2; k++) {
        std::vector<float> h(sizes[k]);
        CHECK_CUDA(cudaMemcpy(h.data(), w[k], sizes[k] * sizeof(float), cudaMemcpyDeviceToHost));
        for (float v : h)
            worst = std::fmax(worst, std::fabs(v - target));
    }
    std::printf("%lld steps, checkpoint %zu bytes, max |w - target| = %g\n",
                (long long)fopt_step_count(opt), checkpoint.size(), worst);
    fopt_destroy(opt);
    for (int k = 0; k < 2; k++) {
        cudaFree(w[k]);
        cudaFree(g[k]);
    }
    cudaStreamDestroy(stream);
    return worst < 1e-2f ? 0 : 1;
}
