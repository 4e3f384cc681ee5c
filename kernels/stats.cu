/* Global gradient statistics (sum of squares of the unscaled grads, hence the norm and the inf/NaN
 * flag) in the fixed order of kernels/stats.h, and the device-side derivation of a step's scalars
 * (the prologue: step count and bias corrections on the device, for capturable steps and steps
 * that may be skipped).
 *
 * One block per FOPT_CHUNK-element chunk of every entry. Thread t owns lanes 4t..4t+3 of the
 * chunk's 1024 lanes (one 16-byte fp32 or 8-byte fp16/bf16 load per 1024 elements) and reduces
 * them in registers (the tree's first two levels); the rest of the tree runs over shared memory.
 * The last block to finish (a ticket counter, as in CUDA's threadFenceReduction sample) reduces
 * the chunks' partials the same way, writes the results and runs the prologue. No floating-point
 * atomics: the same bits every run, on every path.
 *
 * The body is a __host__ __device__ function of (phase, block, thread, arguments, block-shared
 * data); the kernel runs the phases with a barrier between them, the host runner runs each phase
 * for every thread of a block before the next, so the emulated device and the tests execute the
 * very code the GPU does. */
#include <float.h>

#include "chunk.cuh"
#include "stats.h"

namespace {

struct StatsShared {
    double v[FOPT_BLOCK_THREADS];
    int64_t step; /* prologue: this step's number; -1 when the step is skipped */
    int32_t last;
};

constexpr int kTreeLevels = 8; /* log2(FOPT_BLOCK_THREADS) */
/* Phases: 0 lanes; 1..8 tree; 9 partial + ticket; 10 lanes of partials; 11..18 tree;
 * 19 results + prologue head; 20 prologue groups. */
constexpr int kPhases = 21;

/* Packets of lanes 4t..4t+3 loaded before the first is used. */
constexpr int kStatBatch = 8;

/* Division by the grad scale (docs/SEMANTICS.md: u = grad / grad_scale, an fp32 division). When
 * the scale is a power of two (GradScaler's always are) and normal, 1/scale is exact and
 * g * (1/scale) is the same real number as g / scale, rounded once either way: the same bits, at
 * one multiplication per element instead of a division (about 11 instructions, a slow path and,
 * before, a reload of the scale per element). Read once per thread. */
struct fopt_unscale {
    float scale, inv;
    bool use, pow2;
    FOPT_HD static fopt_unscale of(const float *grad_scale)
    {
        fopt_unscale u;
        u.use = grad_scale != nullptr;
        u.scale = u.use ? *grad_scale : 1.0f;
        const uint32_t bits = fopt_f32_bits(u.scale), exp = (bits >> 23) & 0xffu;
        u.pow2 = u.use && (bits & 0x7fffffu) == 0 && exp != 0 && exp != 0xffu;
        u.inv = u.pow2 ? 1.0f / u.scale : 1.0f;
        return u;
    }
};

/* How a lanes loop unscales its grads: not at all, by the exact inverse of a power-of-two scale,
 * or by division (fopt_unscale); a template parameter, so the loop carries no branch for it. */
enum { kUnscaleNone = 0, kUnscaleMul = 1, kUnscaleDiv = 2 };

/* fopt_stat_sq of one grad, unscaled as U says. */
template <int U>
FOPT_HD double sq_of(float g, const fopt_unscale &un)
{
    const float u = U == kUnscaleMul ? g * un.inv : U == kUnscaleDiv ? g / un.scale : g;
    return fopt_stat_sq(u, nullptr);
}

/* Lanes 4t..4t+3 of a chunk of grads of storage G, accumulated into acc: the whole 4-element
 * packets in batches of kStatBatch loads in flight (one packet per 1024 elements), then the
 * elements of a partial packet one by one. Each lane adds its elements in order. */
template <class G, int U>
FOPT_HD void lanes_of(const typename G::T *g, int64_t len, uint32_t t, bool vec, const fopt_unscale &un,
                      double (&acc)[4])
{
    int64_t base = 4 * (int64_t)t;
    if (vec) {
        const int64_t whole = len >= base + 4 ? (len - base - 4) / FOPT_STAT_LANES + 1 : 0;
        for (int64_t k0 = 0; k0 < whole; k0 += kStatBatch) {
            fopt_packet<typename G::T, 4> pk[kStatBatch] = {};
#pragma unroll
            for (int u = 0; u < kStatBatch; u++)
                if (k0 + u < whole)
                    pk[u].load(g, (base + (k0 + u) * FOPT_STAT_LANES) / 4);
#pragma unroll
            for (int u = 0; u < kStatBatch; u++)
                if (k0 + u < whole)
#pragma unroll
                    for (int l = 0; l < 4; l++)
                        acc[l] = acc[l] + sq_of<U>(G::up(pk[u].v[l]), un);
        }
        base += whole * FOPT_STAT_LANES;
    }
    for (; base < len; base += FOPT_STAT_LANES)
        for (int l = 0; l < 4; l++)
            if (base + l < len)
                acc[l] = acc[l] + sq_of<U>(G::up(g[base + l]), un);
}

/* The lanes of a chunk of an entry's grads (storage G) with the loop of the scale's kind. */
template <class G>
FOPT_HD void lanes_scaled(const void *slot, int64_t begin, int64_t len, uint32_t t, bool vec,
                          const fopt_unscale &un, double (&acc)[4])
{
    const typename G::T *g = fopt_global<const typename G::T>(slot, begin);
    if (!un.use)
        lanes_of<G, kUnscaleNone>(g, len, t, vec, un, acc);
    else if (un.pow2)
        lanes_of<G, kUnscaleMul>(g, len, t, vec, un, acc);
    else
        lanes_of<G, kUnscaleDiv>(g, len, t, vec, un, acc);
}

FOPT_HD double load_partial(const double *p)
{
#ifdef __CUDA_ARCH__
    return __ldcg(p); /* written by other blocks: read through L2, not a stale L1 line */
#else
    return *p;
#endif
}

FOPT_HD uint32_t take_ticket(uint32_t *done)
{
#ifdef __CUDA_ARCH__
    __threadfence(); /* this block's partial is visible before its ticket */
    return atomicAdd(done, 1u);
#else
    return (*done)++;
#endif
}

/* The prologue in two phases: head (thread 0: skip or not, the step number) and groups (thread g
 * derives group g). */
FOPT_HD void prologue_head(const fopt_prologue_args &a, int64_t &step_out)
{
    if (a.host_step >= 0) /* the count moves to the device: a skipped step must leave it there */
        a.hp->step = a.host_step;
    if (a.stats && a.stats->skip) {
        step_out = -1;
        return;
    }
    const int64_t before = a.host_step >= 0 ? a.host_step : a.hp->step;
    if (before == INT64_MAX) { /* refused: the count saturates and the update does not run */
        a.hp->refused = 1;
        a.out->step = 0;
        step_out = -1;
        return;
    }
    const int64_t step = before + 1;
    if (a.commit) /* else the step launch stores it: a launch that fails does not count */
        a.hp->step = step;
    fopt_scalars_head_make((fopt_kind)a.kind, &a.cfg, step, a.out);
    step_out = step;
}

FOPT_HD void prologue_group(const fopt_prologue_args &a, uint32_t g, int64_t step)
{
    if (step < 0 || g >= a.group_count)
        return;
    double lr = a.lr_on_device ? a.hp->lr[g] : a.lr[g];
    double wd = a.lr_on_device ? a.hp->wd[g] : a.wd[g];
    a.out->group[g] = fopt_group_scalars_make((fopt_kind)a.kind, &a.cfg, lr, wd, step);
}

FOPT_HD void finish(const fopt_stats_args &a, double total)
{
    total = fopt_stat_total(a.external_sq_sum ? *a.external_sq_sum : total, a.grad_scale);
    const int bad = fopt_stat_bad(total);
    if (a.sq_sum_out)
        *a.sq_sum_out = total;
    fopt_stat_publish(total, a.grad_norm_out, a.found_inf_out);
    if (a.stats_out) {
        a.stats_out->sq_sum = total;
        a.stats_out->clip_coef = fopt_stat_clip_coef(total, a.max_grad_norm);
        a.stats_out->skip = a.check_inf && bad;
    }
    *a.done = 0;
}

FOPT_HD void stats_phase(int phase, uint32_t block, uint32_t t, const fopt_stats_args &a,
                         StatsShared &sh)
{
    const uint32_t nblocks = a.table.chunk_count > 0 ? a.table.chunk_count : 1;
    if (phase == 0 && a.table.chunk_count > 0) {
        const fopt_chunk c = a.table.chunks[block];
        const fopt_tensor_entry &e = a.table.entries[c.entry];
        const int64_t begin = (int64_t)c.chunk << FOPT_CHUNK_SHIFT;
        const int64_t left = e.numel - begin;
        const int64_t len = left < FOPT_CHUNK ? left : FOPT_CHUNK;
        const bool vec = (e.flags & FOPT_ENTRY_GRAD_ALIGNED) != 0;
        double acc[4] = {0.0, 0.0, 0.0, 0.0};
        const fopt_unscale un = fopt_unscale::of(a.grad_scale);
        const void *slot = e.slot[FOPT_TS_GRAD];
        switch (e.storage[FOPT_TS_GRAD]) {
        case FOPT_ST_F32: lanes_scaled<fopt_f32_t>(slot, begin, len, t, vec, un, acc); break;
        case FOPT_ST_F16: lanes_scaled<fopt_f16_t>(slot, begin, len, t, vec, un, acc); break;
        default: lanes_scaled<fopt_bf16_t>(slot, begin, len, t, vec, un, acc); break;
        }
        sh.v[t] = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    } else if (phase == 0) {
        sh.v[t] = 0.0;
    } else if (phase >= 1 && phase <= kTreeLevels) {
        const uint32_t w = 1u << (phase - 1);
        if (t % (2 * w) == 0)
            sh.v[t] = sh.v[t] + sh.v[t + w];
    } else if (phase == kTreeLevels + 1) {
        if (t == 0) {
            if (a.table.chunk_count > 0) {
                a.partials[block] = sh.v[0];
                sh.last = take_ticket(a.done) == nblocks - 1;
            } else {
                sh.last = 1;
            }
        }
    } else if (!sh.last) {
        return;
    } else if (phase == kTreeLevels + 2) {
        double acc[4] = {0.0, 0.0, 0.0, 0.0};
        const int64_t n = a.table.chunk_count;
        for (int64_t base = 4 * (int64_t)t; base < n; base += FOPT_STAT_LANES)
            for (int l = 0; l < 4; l++)
                if (base + l < n)
                    acc[l] = acc[l] + load_partial(a.partials + base + l);
        sh.v[t] = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    } else if (phase <= 2 * kTreeLevels + 2) {
        const uint32_t w = 1u << (phase - kTreeLevels - 3);
        if (t % (2 * w) == 0)
            sh.v[t] = sh.v[t] + sh.v[t + w];
    } else if (phase == 2 * kTreeLevels + 3) {
        if (t == 0) {
            finish(a, sh.v[0]);
            if (a.prologue.enabled)
                prologue_head(a.prologue, sh.step);
        }
    } else if (a.prologue.enabled) {
        prologue_group(a.prologue, t, sh.step);
    }
}

static_assert(2 * kTreeLevels + 5 == kPhases, "phase numbering");
static_assert(FOPT_MAX_GROUPS <= FOPT_BLOCK_THREADS, "one thread per group in the prologue");

void stats_run_on_host(const void *args)
{
    const fopt_stats_args &a = *static_cast<const fopt_stats_args *>(args);
    const uint32_t nblocks = a.table.chunk_count > 0 ? a.table.chunk_count : 1;
    StatsShared sh;
    for (uint32_t b = 0; b < nblocks; b++) {
        sh.last = 0;
        sh.step = -1;
        for (int p = 0; p < kPhases; p++)
            for (uint32_t t = 0; t < FOPT_BLOCK_THREADS; t++)
                stats_phase(p, b, t, a, sh);
    }
}

void prologue_run_on_host(const void *args)
{
    fopt_prologue_run(static_cast<const fopt_prologue_args *>(args));
}

#ifndef FOPT_DEVICE_EMULATION
__global__ void __launch_bounds__(FOPT_BLOCK_THREADS, 2) stats_kernel(const __grid_constant__ fopt_stats_args a)
{
    __shared__ StatsShared sh;
    if (threadIdx.x == 0) {
        sh.last = 0;
        sh.step = -1;
    }
    __syncthreads();
    for (int p = 0; p < kPhases; p++) {
        stats_phase(p, blockIdx.x, threadIdx.x, a, sh);
        __syncthreads();
    }
}

cudaError_t stats_launch(const void *args, cudaStream_t stream)
{
    const fopt_stats_args &a = *static_cast<const fopt_stats_args *>(args);
    const uint32_t nblocks = a.table.chunk_count > 0 ? a.table.chunk_count : 1;
    stats_kernel<<<nblocks, FOPT_BLOCK_THREADS, 0, stream>>>(a);
    return cudaGetLastError();
}

__global__ void __launch_bounds__(FOPT_MAX_GROUPS) prologue_kernel(const __grid_constant__ fopt_prologue_args a)
{
    __shared__ int64_t step;
    if (threadIdx.x == 0)
        prologue_head(a, step);
    __syncthreads();
    prologue_group(a, threadIdx.x, step);
}

cudaError_t prologue_launch(const void *args, cudaStream_t stream)
{
    prologue_kernel<<<1, FOPT_MAX_GROUPS, 0, stream>>>(*static_cast<const fopt_prologue_args *>(args));
    return cudaGetLastError();
}
#define FOPT_STATS_LAUNCH (&stats_launch)
#define FOPT_PROLOGUE_LAUNCH (&prologue_launch)
#else
#define FOPT_STATS_LAUNCH nullptr
#define FOPT_PROLOGUE_LAUNCH nullptr
#endif

} // namespace

extern "C" void fopt_prologue_run(const fopt_prologue_args *a)
{
    int64_t step = -1;
    prologue_head(*a, step);
    for (uint32_t g = 0; g < FOPT_MAX_GROUPS; g++)
        prologue_group(*a, g, step);
}

extern "C" fopt_kernel fopt_stats_kernel(void)
{
    fopt_kernel k = {FOPT_STATS_LAUNCH, &stats_run_on_host, sizeof(fopt_stats_args), "grad_stats"};
    return k;
}

extern "C" fopt_kernel fopt_prologue_kernel(void)
{
    fopt_kernel k = {FOPT_PROLOGUE_LAUNCH, &prologue_run_on_host, sizeof(fopt_prologue_args), "prologue"};
    return k;
}
