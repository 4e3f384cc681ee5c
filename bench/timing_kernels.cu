/* The timing kernels of fopt_bench (see bench_gpu.h): an L2 flush and a spin. Real CUDA build
 * only; bench/timing.c calls them between timed steps. */
#include "bench_gpu.h"

static unsigned flush_grid(size_t n)
{
    size_t blocks = (n + 255) / 256;
    return (unsigned)(blocks < 65535 * 8 ? blocks : 65535 * 8);
}

static int fail_cuda(cudaError_t err, const char *what)
{
    return bench_gpu_fail("%s: %s", what, cudaGetErrorString(err));
}

__global__ void flush_kernel(const float4 *buf, int64_t n4, float *sink)
{
    float acc = 0.0f;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n4;
         i += (int64_t)gridDim.x * blockDim.x) {
        float4 x = buf[i];
        acc += x.x + x.y + x.z + x.w;
    }
    if (acc == -1.2345e30f) /* never true for the data written by the host */
        *sink = acc;
}

int bench_l2_flush(const float *buf, size_t n, float *sink, cudaStream_t stream)
{
    int64_t n4 = (int64_t)(n / 4);
    if (n4 == 0)
        return 0;
    flush_kernel<<<flush_grid((size_t)n4), 256, 0, stream>>>((const float4 *)buf, n4, sink);
    cudaError_t err = cudaGetLastError();
    return err == cudaSuccess ? 0 : fail_cuda(err, "flush_kernel launch");
}

__global__ void spin_kernel(unsigned ns)
{
    const long long start = clock64();
    /* clock64 counts SM cycles; 2 cycles per ns is about right for 1.5-2 GHz parts and only
     * needs to be roughly right. */
    const long long cycles = 2LL * ns;
    while (clock64() - start < cycles) {
    }
}

int bench_spin(unsigned ns, cudaStream_t stream)
{
    spin_kernel<<<1, 1, 0, stream>>>(ns);
    cudaError_t err = cudaGetLastError();
    return err == cudaSuccess ? 0 : fail_cuda(err, "spin_kernel launch");
}
