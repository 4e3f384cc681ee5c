/* The memory-access half of every optimizer kernel: which elements a thread visits and how they
 * are loaded and stored. The math half is a small functor per optimizer (kernels/adam.cu,
 * kernels/rmsprop.cu) called once per element.
 *
 * Block b updates chunk b of the table: FOPT_CHUNK consecutive elements of one tensor. When every
 * pointer of the tensor is 16-byte aligned the block walks the chunk in float4 (16-byte loads and
 * stores, coalesced across the warp), ILP float4 per array in flight per thread before the first
 * use; the last numel % 4 elements and tensors with any unaligned pointer take the scalar path.
 * Only the state buffers in MASK are loaded or stored, so no variant pays for a buffer it does not
 * keep.
 *
 * fopt_chunk_body is a __host__ __device__ function of (block, thread, launch arguments): the
 * __global__ kernels are thin wrappers, and the tests call it for every block and thread on the
 * CPU. It uses no shared memory and no barriers, so any thread order is a valid execution. */
#ifndef FUSEDOPT_CHUNK_CUH
#define FUSEDOPT_CHUNK_CUH

#include <stdint.h>

#include <cuda_runtime.h>

#include "multi_tensor.h"

#define FOPT_HD __host__ __device__ __forceinline__

/* float4 loads in flight per array per thread. */
#define FOPT_ILP 4

static_assert(FOPT_CHUNK % 4 == 0, "chunks must start float4-aligned");
static_assert(sizeof(fopt_tensor_entry) == 56, "host and device must agree on the table layout");

template <unsigned MASK>
FOPT_HD void fopt_load_state4(float4 (&dst)[FOPT_MAX_STATES], float *const *src, int64_t i)
{
#pragma unroll
    for (int k = 0; k < FOPT_MAX_STATES; k++)
        if (MASK & (1u << k))
            dst[k] = reinterpret_cast<const float4 *>(src[k])[i];
}

template <unsigned MASK>
FOPT_HD void fopt_store_state4(float *const *dst, const float4 (&src)[FOPT_MAX_STATES], int64_t i)
{
#pragma unroll
    for (int k = 0; k < FOPT_MAX_STATES; k++)
        if (MASK & (1u << k))
            reinterpret_cast<float4 *>(dst[k])[i] = src[k];
}

/* One element through the update functor: loads, update(p, g, state), stores. */
template <unsigned MASK, class Update>
FOPT_HD void fopt_scalar_element(const Update &update, float *p, const float *g,
                                 float *const *st, int64_t i)
{
    float s[FOPT_MAX_STATES] = {0.0f, 0.0f, 0.0f};
#pragma unroll
    for (int k = 0; k < FOPT_MAX_STATES; k++)
        if (MASK & (1u << k))
            s[k] = st[k][i];
    float pv = p[i];
    update(pv, g[i], s);
    p[i] = pv;
#pragma unroll
    for (int k = 0; k < FOPT_MAX_STATES; k++)
        if (MASK & (1u << k))
            st[k][i] = s[k];
}

/* The four lanes of a float4 group through the update functor. */
template <unsigned MASK, class Update>
FOPT_HD void fopt_vector_update(const Update &update, float4 &p, const float4 &g,
                                float4 (&st)[FOPT_MAX_STATES])
{
    float s[FOPT_MAX_STATES] = {0.0f, 0.0f, 0.0f};
#define FOPT_LANE(c)                                                                               \
    do {                                                                                           \
        _Pragma("unroll") for (int k = 0; k < FOPT_MAX_STATES; k++) if (MASK & (1u << k))          \
            s[k] = st[k].c;                                                                        \
        update(p.c, g.c, s);                                                                       \
        _Pragma("unroll") for (int k = 0; k < FOPT_MAX_STATES; k++) if (MASK & (1u << k))          \
            st[k].c = s[k];                                                                        \
    } while (0)
    FOPT_LANE(x);
    FOPT_LANE(y);
    FOPT_LANE(z);
    FOPT_LANE(w);
#undef FOPT_LANE
}

template <unsigned MASK, class Update>
FOPT_HD void fopt_chunk_body(uint32_t block, uint32_t thread, const fopt_table &table,
                             const Update &update)
{
    const fopt_chunk c = table.chunks[block];
    const fopt_tensor_entry &e = table.entries[c.tensor];
    const int64_t begin = (int64_t)c.chunk * FOPT_CHUNK;
    const int64_t left = e.numel - begin;
    const int64_t len = left < FOPT_CHUNK ? left : FOPT_CHUNK;

    float *const p = e.param + begin;
    const float *const g = e.grad + begin;
    float *st[FOPT_MAX_STATES];
#pragma unroll
    for (int k = 0; k < FOPT_MAX_STATES; k++)
        st[k] = (MASK & (1u << k)) ? e.state[k] + begin : nullptr;
    float *const *cst = st;

    int64_t scalar_from = 0;
    if (e.aligned) {
        const int64_t nvec = len / 4;
        const float4 *g4 = reinterpret_cast<const float4 *>(g);
        float4 *p4 = reinterpret_cast<float4 *>(p);
        for (int64_t base = thread; base < nvec; base += (int64_t)FOPT_ILP * FOPT_BLOCK_THREADS) {
            float4 rp[FOPT_ILP], rg[FOPT_ILP], rs[FOPT_ILP][FOPT_MAX_STATES];
#pragma unroll
            for (int u = 0; u < FOPT_ILP; u++) {
                const int64_t i = base + (int64_t)u * FOPT_BLOCK_THREADS;
                if (i < nvec) {
                    rp[u] = p4[i];
                    rg[u] = g4[i];
                    fopt_load_state4<MASK>(rs[u], cst, i);
                }
            }
#pragma unroll
            for (int u = 0; u < FOPT_ILP; u++) {
                const int64_t i = base + (int64_t)u * FOPT_BLOCK_THREADS;
                if (i < nvec) {
                    fopt_vector_update<MASK>(update, rp[u], rg[u], rs[u]);
                    p4[i] = rp[u];
                    fopt_store_state4<MASK>(cst, rs[u], i);
                }
            }
        }
        scalar_from = nvec * 4;
    }
    for (int64_t i = scalar_from + thread; i < len; i += FOPT_BLOCK_THREADS)
        fopt_scalar_element<MASK>(update, p, g, cst, i);
}

/* Runs a kernel body for every block and thread of a launch, on the CPU. */
template <unsigned MASK, class Update>
void fopt_chunk_run_on_host(const fopt_table &table, const Update &update)
{
    for (uint32_t b = 0; b < table.chunk_count; b++)
        for (uint32_t t = 0; t < FOPT_BLOCK_THREADS; t++)
            fopt_chunk_body<MASK>(b, t, table, update);
}

template <unsigned MASK, class Update>
__global__ void __launch_bounds__(FOPT_BLOCK_THREADS) fopt_chunk_kernel(const fopt_table table, const Update update)
{
    fopt_chunk_body<MASK>(blockIdx.x, threadIdx.x, table, update);
}

template <unsigned MASK, class Update>
cudaError_t fopt_chunk_launch(const fopt_table &table, const Update &update, cudaStream_t stream)
{
    if (table.chunk_count == 0)
        return cudaSuccess;
    fopt_chunk_kernel<MASK><<<table.chunk_count, FOPT_BLOCK_THREADS, 0, stream>>>(table, update);
    return cudaGetLastError();
}

#endif
