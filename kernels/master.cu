/* Initialises the fp32 master copies of fp16/bf16 params at an optimizer's creation: master =
 * upcast(param), exactly. (Remainders start at zero: a zero remainder and the bf16 param are that
 * param's value exactly.) Same shape as the step kernels: one block per step chunk, a
 * __host__ __device__ body run for every block and thread on the host by the emulated device. */
#include "chunk.cuh"

namespace {

FOPT_HD void master_init_body(uint32_t block, uint32_t thread, const fopt_table &t)
{
    const fopt_chunk c = t.chunks[block];
    const fopt_tensor_entry &e = t.entries[c.entry];
    if (e.storage[FOPT_TS_MASTER] != FOPT_ST_F32)
        return;
    const int64_t begin = (int64_t)c.chunk << t.chunk_shift;
    const int64_t left = e.numel - begin, size = (int64_t)1 << t.chunk_shift;
    const int64_t len = left < size ? left : size;
    const uint16_t *p = fopt_global<const uint16_t>(e.slot[FOPT_TS_PARAM], begin);
    float *m = fopt_global<float>(e.slot[FOPT_TS_MASTER], begin);
    const bool f16 = e.storage[FOPT_TS_PARAM] == FOPT_ST_F16;
    for (int64_t i = thread; i < len; i += FOPT_BLOCK_THREADS)
        m[i] = f16 ? fopt_f16_to_f32(p[i]) : fopt_bf16_to_f32(p[i]);
}

void master_init_run_on_host(const void *args)
{
    const fopt_table &t = *static_cast<const fopt_table *>(args);
    for (uint32_t b = 0; b < t.chunk_count; b++)
        for (uint32_t th = 0; th < FOPT_BLOCK_THREADS; th++)
            master_init_body(b, th, t);
}

#ifndef FOPT_DEVICE_EMULATION
__global__ void __launch_bounds__(FOPT_BLOCK_THREADS) master_init_kernel(const fopt_table t)
{
    master_init_body(blockIdx.x, threadIdx.x, t);
}

cudaError_t master_init_launch(const void *args, cudaStream_t stream)
{
    const fopt_table &t = *static_cast<const fopt_table *>(args);
    if (t.chunk_count == 0)
        return cudaSuccess;
    master_init_kernel<<<t.chunk_count, FOPT_BLOCK_THREADS, 0, stream>>>(t);
    return cudaGetLastError();
}
#define FOPT_MASTER_INIT_LAUNCH (&master_init_launch)
#else
#define FOPT_MASTER_INIT_LAUNCH nullptr
#endif

} // namespace

extern "C" fopt_kernel fopt_master_init_kernel(void)
{
    fopt_kernel k = {FOPT_MASTER_INIT_LAUNCH, &master_init_run_on_host, sizeof(fopt_table), "master_init"};
    return k;
}
