/* The memory-access half of every optimizer step kernel: which elements a thread visits, how each
 * typed slot is loaded and stored, and what happens to a grad before the math. The math half is a
 * small functor per optimizer (kernels/adam.cu, kernels/rmsprop.cu) called once per element on
 * fp32 registers: update(p, g, state[3]).
 *
 * Block b updates chunk b of its launch: 2^chunk_shift consecutive elements of one table entry.
 * When every used slot of the entry is 16-byte aligned the block walks the chunk in packets of
 * W = 16 / sizeof(param) elements: each array moves in 16-byte accesses (8-byte for bf16 states
 * beside fp32 params, two 16-byte ones for fp32 arrays beside 16-bit params), coalesced across
 * the warp, ILP packets per array in flight per thread before the first use. The tail and entries
 * with an unaligned slot take the scalar path. Storage types are template parameters (one
 * instantiation per combination a launch uses), so loads are sized per type and only the slots a
 * variant keeps are touched.
 *
 * Per element: p from the param (upcast), the fp32 master, or the bf16 param plus its remainder;
 * g upcast, divided by *grad_scale, multiplied by the clip coefficient; states upcast; the functor;
 * then stores rounded to each slot's type (nearest-even; stochastic for bf16 params when asked).
 *
 * fopt_step_body is a __host__ __device__ function of (block, thread, launch arguments): the
 * __global__ kernel is a thin wrapper, and the emulated device and the tests call it for every
 * block and thread on the CPU. It uses no shared memory and no barriers, so any thread order is a
 * valid execution. */
#ifndef FUSEDOPT_CHUNK_CUH
#define FUSEDOPT_CHUNK_CUH

#include <stdint.h>

#include <type_traits>

#include <cuda_runtime.h>

#include "dtype.h"
#include "launch.h"
#include "stats.h"

#define FOPT_HD __host__ __device__ __forceinline__

static_assert(sizeof(fopt_tensor_entry) == 80, "host and device must agree on the table layout");
static_assert(sizeof(fopt_step_args) <= 4096, "launch arguments must fit the classic 4 KB limit");

/* A slot pointer read from the table: global memory. Said to the compiler, else it may emit
 * generic loads and stores (LD/ST instead of LDG/STG; scripts/sass_check.sh checks). */
template <class T>
FOPT_HD T *fopt_global(const void *p, int64_t offset)
{
    T *q = static_cast<T *>(const_cast<void *>(p)) + offset;
#ifdef __CUDA_ARCH__
    __builtin_assume(__isGlobal(q));
#endif
    return q;
}

/* ---- storage types ---- */
struct fopt_f32_t {
    typedef float T;
    static FOPT_HD float up(T x) { return x; }
    static FOPT_HD T down(float x) { return x; }
};
struct fopt_f16_t {
    typedef uint16_t T;
    static FOPT_HD float up(T x) { return fopt_f16_to_f32(x); }
    static FOPT_HD T down(float x) { return fopt_f32_to_f16(x); }
};
struct fopt_bf16_t {
    typedef uint16_t T;
    static FOPT_HD float up(T x) { return fopt_bf16_to_f32(x); }
    static FOPT_HD T down(float x) { return fopt_f32_to_bf16(x); }
};

/* W elements of T moved as one 8-, 16- or 32-byte packet (llm.c's Packed128, any width). */
template <class T, int W>
struct fopt_packet {
    static constexpr int bytes = W * (int)sizeof(T);
    static_assert(bytes == 8 || bytes == 16 || bytes == 32, "packets are 8, 16 or 32 bytes");
    typedef typename std::conditional<bytes == 8, uint2, uint4>::type word;
    static constexpr int words = bytes == 8 ? 1 : bytes / 16;
    union {
        word w[words];
        T v[W];
    };
    FOPT_HD void load(const T *base, int64_t i)
    {
        const word *src = reinterpret_cast<const word *>(base) + i * words;
#pragma unroll
        for (int k = 0; k < words; k++)
            w[k] = src[k];
    }
    FOPT_HD void store(T *base, int64_t i) const
    {
        word *dst = reinterpret_cast<word *>(base) + i * words;
#pragma unroll
        for (int k = 0; k < words; k++)
            dst[k] = w[k];
    }
};

/* What happens to a raw grad before the math, and to the new param after it. */
struct fopt_grad_prep {
    float scale, clip;
    bool use_scale, use_clip;
    FOPT_HD float operator()(float g) const
    {
        if (use_scale)
            g = g / scale;
        if (use_clip)
            g = g * clip;
        return g;
    }
};

template <class P, class S, int MASTER, class Update>
struct fopt_step_walker {
    typedef typename P::T PT;
    typedef typename S::T ST;
    typedef typename std::conditional<MASTER == FOPT_MASTER_F32, float, uint16_t>::type MT;
    static constexpr unsigned STATES = Update::states; /* bits: fopt_slot 0..2 */
    static constexpr int W = 16 / (int)sizeof(PT);      /* elements per packet */
    static constexpr int ILP = W == 4 ? 4 : 2;          /* packets in flight per array */
    static constexpr bool SR_POSSIBLE = std::is_same<P, fopt_bf16_t>::value && MASTER == FOPT_MASTER_NONE;
    static_assert(MASTER == FOPT_MASTER_NONE || !std::is_same<P, fopt_f32_t>::value, "fp32 keeps no master");
    static_assert(MASTER != FOPT_MASTER_REMAINDER || std::is_same<P, fopt_bf16_t>::value, "remainders need bf16");

    PT *param;
    PT *grad;
    MT *master;
    ST *st[FOPT_MAX_STATES];
    fopt_grad_prep prep;
    bool stochastic, zero_grads;
    uint64_t sr_key;
    uint32_t sr_high;    /* fopt_sr_high of element 0 of the chunk */
    int64_t first_index; /* index in its tensor of element 0 of the chunk */

    /* The random bits of chunk element i (the high part is recomputed only when the chunk
     * crosses a multiple of 2^32 elements). */
    FOPT_HD uint32_t sr_random(int64_t i) const
    {
        const uint64_t e = (uint64_t)(first_index + i);
        const uint32_t high = (e >> 32) == ((uint64_t)first_index >> 32) ? sr_high : fopt_sr_high(sr_key, e);
        return fopt_sr_bits(sr_key, high, e);
    }

    /* The new param stored to its slots. */
    FOPT_HD void store_param(float p, PT &param_out, MT &master_out, int64_t i) const
    {
        if constexpr (MASTER == FOPT_MASTER_F32) {
            master_out = p;
            param_out = P::down(p);
        } else if constexpr (MASTER == FOPT_MASTER_REMAINDER) {
            uint16_t rem;
            fopt_remainder_encode(p, &param_out, &rem);
            master_out = rem;
        } else if constexpr (SR_POSSIBLE) {
            param_out = stochastic ? fopt_f32_to_bf16_sr(p, sr_random(i)) : P::down(p);
        } else {
            (void)master_out;
            (void)i;
            param_out = P::down(p);
        }
    }

    FOPT_HD float load_param(PT param_in, MT master_in) const
    {
        if constexpr (MASTER == FOPT_MASTER_F32) {
            (void)param_in;
            return (float)master_in;
        } else if constexpr (MASTER == FOPT_MASTER_REMAINDER) {
            return fopt_remainder_decode(param_in, (uint16_t)master_in);
        } else {
            (void)master_in;
            return P::up(param_in);
        }
    }

    /* One element through the functor: scalar loads and stores. */
    FOPT_HD void scalar_element(const Update &update, int64_t i) const
    {
        float s[FOPT_MAX_STATES] = {0.0f, 0.0f, 0.0f};
#pragma unroll
        for (int k = 0; k < FOPT_MAX_STATES; k++)
            if (STATES & (1u << k))
                s[k] = S::up(st[k][i]);
        PT pin = MASTER == FOPT_MASTER_F32 ? PT(0) : param[i];
        MT min_ = MASTER != FOPT_MASTER_NONE ? master[i] : MT(0);
        float p = load_param(pin, min_);
        float g = prep(P::up(grad[i]));
        if (zero_grads)
            grad[i] = PT(0);
        update(p, g, s);
        PT pout;
        MT mout;
        store_param(p, pout, mout, i);
        param[i] = pout;
        if (MASTER != FOPT_MASTER_NONE)
            master[i] = mout;
#pragma unroll
        for (int k = 0; k < FOPT_MAX_STATES; k++)
            if (STATES & (1u << k))
                st[k][i] = S::down(s[k]);
    }

    /* Chunk elements [0, len): packets of W where aligned, then the scalar tail. */
    FOPT_HD void walk(const Update &update, uint32_t thread, int64_t len, bool aligned) const
    {
        int64_t scalar_from = 0;
        if (aligned) {
            const int64_t npk = len / W;
            for (int64_t base = thread; base < npk; base += (int64_t)ILP * FOPT_BLOCK_THREADS) {
                fopt_packet<PT, W> pp[ILP], gp[ILP];
                fopt_packet<MT, W> mp[ILP];
                fopt_packet<ST, W> sp[ILP][FOPT_MAX_STATES];
#pragma unroll
                for (int u = 0; u < ILP; u++) {
                    const int64_t i = base + (int64_t)u * FOPT_BLOCK_THREADS;
                    if (i < npk) {
                        if (MASTER != FOPT_MASTER_F32)
                            pp[u].load(param, i);
                        gp[u].load(grad, i);
                        if (MASTER != FOPT_MASTER_NONE)
                            mp[u].load(master, i);
#pragma unroll
                        for (int k = 0; k < FOPT_MAX_STATES; k++)
                            if (STATES & (1u << k))
                                sp[u][k].load(st[k], i);
                    }
                }
#pragma unroll
                for (int u = 0; u < ILP; u++) {
                    const int64_t i = base + (int64_t)u * FOPT_BLOCK_THREADS;
                    if (i < npk) {
#pragma unroll
                        for (int l = 0; l < W; l++) {
                            float s[FOPT_MAX_STATES] = {0.0f, 0.0f, 0.0f};
#pragma unroll
                            for (int k = 0; k < FOPT_MAX_STATES; k++)
                                if (STATES & (1u << k))
                                    s[k] = S::up(sp[u][k].v[l]);
                            float p = load_param(MASTER == FOPT_MASTER_F32 ? PT(0) : pp[u].v[l],
                                                 MASTER != FOPT_MASTER_NONE ? mp[u].v[l] : MT(0));
                            float g = prep(P::up(gp[u].v[l]));
                            update(p, g, s);
                            store_param(p, pp[u].v[l], mp[u].v[l], i * W + l);
#pragma unroll
                            for (int k = 0; k < FOPT_MAX_STATES; k++)
                                if (STATES & (1u << k))
                                    sp[u][k].v[l] = S::down(s[k]);
                        }
                        pp[u].store(param, i);
                        if (MASTER != FOPT_MASTER_NONE)
                            mp[u].store(master, i);
#pragma unroll
                        for (int k = 0; k < FOPT_MAX_STATES; k++)
                            if (STATES & (1u << k))
                                sp[u][k].store(st[k], i);
                        if (zero_grads) {
#pragma unroll
                            for (int l = 0; l < W; l++)
                                gp[u].v[l] = PT(0);
                            gp[u].store(grad, i);
                        }
                    }
                }
            }
            scalar_from = npk * W;
        }
        for (int64_t i = scalar_from + thread; i < len; i += FOPT_BLOCK_THREADS)
            scalar_element(update, i);
    }
};

/* The step options' outputs, written by the last launch of a step (a skipped step included):
 * the global norm and the inf/NaN flag, from the sum of squares the statistics kernel left. */
FOPT_HD void fopt_step_publish(const fopt_step_args &a)
{
    if (a.grad_norm_out || a.found_inf_out) /* then stats is set (the step's statistics ran) */
        fopt_stat_publish(a.stats->sq_sum, a.grad_norm_out, a.found_inf_out);
}

template <class P, class S, int MASTER, class Update>
FOPT_HD void fopt_step_body(uint32_t block, uint32_t thread, const fopt_step_args &a)
{
    typedef fopt_step_walker<P, S, MASTER, Update> Walker;
    if (block == 0 && thread == 0)
        fopt_step_publish(a);
    if (a.stats && a.stats->skip)
        return;
    if (a.device_scalars && a.device_scalars->step < 1) /* the prologue refused it (INT64_MAX) */
        return;
    const fopt_scalars *sc = a.device_scalars ? a.device_scalars : &a.scalars;
    const fopt_chunk c = a.table.chunks[block];
    const fopt_tensor_entry &e = a.table.entries[c.entry];
    if (a.step_out && block == 0 && thread == 0)
        *a.step_out = sc->step; /* the step's count advances with the launched update */
    const Update update(sc->group[e.group]);
    const int64_t begin = (int64_t)c.chunk << a.table.chunk_shift;
    const int64_t left = e.numel - begin, size = (int64_t)1 << a.table.chunk_shift;
    const int64_t len = left < size ? left : size;

    Walker w;
    w.param = fopt_global<typename Walker::PT>(e.slot[FOPT_TS_PARAM], begin);
    w.grad = fopt_global<typename Walker::PT>(e.slot[FOPT_TS_GRAD], begin);
    w.master = MASTER != FOPT_MASTER_NONE ? fopt_global<typename Walker::MT>(e.slot[FOPT_TS_MASTER], begin) : nullptr;
#pragma unroll
    for (int k = 0; k < FOPT_MAX_STATES; k++)
        w.st[k] = (Walker::STATES & (1u << k)) ? fopt_global<typename Walker::ST>(e.slot[FOPT_TS_STATE0 + k], begin)
                                               : nullptr;
    w.prep.use_scale = a.grad_scale != nullptr;
    w.prep.scale = a.grad_scale ? *a.grad_scale : 1.0f;
    w.prep.use_clip = a.clip != 0;
    w.prep.clip = a.clip ? a.stats->clip_coef : 1.0f;
    w.zero_grads = a.zero_grads != 0;
    w.stochastic = Walker::SR_POSSIBLE && sc->stochastic;
    w.sr_key = w.stochastic ? fopt_sr_key(sc->seed, sc->step, e.tensor) : 0;
    w.first_index = e.elem_offset + begin;
    w.sr_high = w.stochastic ? fopt_sr_high(w.sr_key, (uint64_t)w.first_index) : 0;
    w.walk(update, thread, len, (e.flags & FOPT_ENTRY_ALIGNED) != 0);
}

/* ---- the two entry points of a step kernel ---- */

template <class P, class S, int MASTER, class Update>
void fopt_step_run_on_host(const void *args)
{
    const fopt_step_args &a = *static_cast<const fopt_step_args *>(args);
    for (uint32_t b = 0; b < a.table.chunk_count; b++)
        for (uint32_t t = 0; t < FOPT_BLOCK_THREADS; t++)
            fopt_step_body<P, S, MASTER, Update>(b, t, a);
}

#ifndef FOPT_DEVICE_EMULATION
template <class P, class S, int MASTER, class Update>
__global__ void __launch_bounds__(FOPT_BLOCK_THREADS, 2) fopt_step_kernel(const __grid_constant__ fopt_step_args a)
{
    fopt_step_body<P, S, MASTER, Update>(blockIdx.x, threadIdx.x, a);
}

template <class P, class S, int MASTER, class Update>
cudaError_t fopt_step_launch(const void *args, cudaStream_t stream)
{
    const fopt_step_args &a = *static_cast<const fopt_step_args *>(args);
    if (a.table.chunk_count == 0)
        return cudaSuccess;
    fopt_step_kernel<P, S, MASTER, Update><<<a.table.chunk_count, FOPT_BLOCK_THREADS, 0, stream>>>(a);
    return cudaGetLastError();
}
#define FOPT_STEP_LAUNCH(P, S, M, U) (&fopt_step_launch<P, S, M, U>)
#else
/* The emulated device runs kernels on the host only; no device code is built. */
#define FOPT_STEP_LAUNCH(P, S, M, U) nullptr
#endif

template <class P, class S, int MASTER, class Update>
fopt_kernel fopt_step_kernel_of()
{
    fopt_kernel k = {FOPT_STEP_LAUNCH(P, S, MASTER, Update), &fopt_step_run_on_host<P, S, MASTER, Update>,
                     sizeof(fopt_step_args), Update::name};
    return k;
}

/* The kernel of param type P and master mode MASTER with fp32 or bf16 states. */
template <class P, int MASTER, class Update>
fopt_kernel fopt_step_kernel_states(bool bf16_states)
{
    return bf16_states ? fopt_step_kernel_of<P, fopt_bf16_t, MASTER, Update>()
                       : fopt_step_kernel_of<P, fopt_f32_t, MASTER, Update>();
}

/* The kernel of param type P for a runtime master mode: none, fp32 (LAST >= FOPT_MASTER_F32) and
 * remainders (LAST == FOPT_MASTER_REMAINDER, for every mode but the other two); an empty
 * fopt_kernel for a mode P cannot have. */
template <class P, int LAST, class Update>
fopt_kernel fopt_step_kernel_master(fopt_master_mode master, bool bf16_states)
{
    if (master == FOPT_MASTER_NONE)
        return fopt_step_kernel_states<P, FOPT_MASTER_NONE, Update>(bf16_states);
    if constexpr (LAST >= FOPT_MASTER_F32)
        if (master == FOPT_MASTER_F32)
            return fopt_step_kernel_states<P, FOPT_MASTER_F32, Update>(bf16_states);
    if constexpr (LAST == FOPT_MASTER_REMAINDER)
        return fopt_step_kernel_states<P, FOPT_MASTER_REMAINDER, Update>(bf16_states);
    fopt_kernel none = {nullptr, nullptr, 0, nullptr};
    return none;
}

/* The kernel for a runtime combination of storage types (every combination a config can ask
 * for; an empty fopt_kernel for the rest, which validation rejects first). */
template <class Update>
fopt_kernel fopt_step_kernel_select(fopt_storage param, fopt_storage state, fopt_master_mode master)
{
    const bool sbf = state == FOPT_ST_BF16;
    switch (param) {
    case FOPT_ST_F32: return fopt_step_kernel_master<fopt_f32_t, FOPT_MASTER_NONE, Update>(master, sbf);
    case FOPT_ST_F16: return fopt_step_kernel_master<fopt_f16_t, FOPT_MASTER_F32, Update>(master, sbf);
    case FOPT_ST_BF16: return fopt_step_kernel_master<fopt_bf16_t, FOPT_MASTER_REMAINDER, Update>(master, sbf);
    default: {
        fopt_kernel none = {nullptr, nullptr, 0, nullptr};
        return none;
    }
    }
}

#endif
