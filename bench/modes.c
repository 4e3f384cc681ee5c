/* Storage modes, traffic and element conversions of the benchmarks (bench/modes.h). */
#define _POSIX_C_SOURCE 200809L
#include "modes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"
#include "dtype.h"

#define SR_SEED 0x5eedULL

/* state_dtype, master_weights, stochastic_rounding, master_remainder, seed */
const bench_mode bench_modes[] = {
    {"fp32", "fp32 params+grads, fp32 states", FOPT_FLOAT32, {FOPT_FLOAT32, false, false, false, 0}},
    {"bf16_master", "bf16 params+grads, fp32 master, fp32 states", FOPT_BFLOAT16,
     {FOPT_FLOAT32, true, false, false, 0}},
    {"bf16_remainder", "bf16 params+grads, 16-bit master remainder, fp32 states", FOPT_BFLOAT16,
     {FOPT_FLOAT32, true, false, true, 0}},
    {"bf16_sr", "bf16 params+grads, bf16 states, no master, stochastic rounding", FOPT_BFLOAT16,
     {FOPT_BFLOAT16, false, true, false, SR_SEED}},
    {"fp16_master", "fp16 params+grads, fp32 master, fp32 states", FOPT_FLOAT16,
     {FOPT_FLOAT32, true, false, false, 0}},
    {"fp32_bf16_states", "fp32 params+grads, bf16 states", FOPT_FLOAT32, {FOPT_BFLOAT16, false, false, false, 0}},
};
const size_t bench_mode_count = sizeof bench_modes / sizeof bench_modes[0];

const bench_mode *bench_mode_find(const char *name)
{
    for (size_t i = 0; i < bench_mode_count; i++)
        if (!strcmp(bench_modes[i].name, name))
            return &bench_modes[i];
    return NULL;
}

bench_master bench_mode_master(const bench_mode *m)
{
    if (m->dtype == FOPT_FLOAT32 || !m->precision.master_weights)
        return BENCH_MASTER_NONE;
    return m->precision.master_remainder && m->dtype == FOPT_BFLOAT16 ? BENCH_MASTER_REMAINDER : BENCH_MASTER_F32;
}

size_t bench_dtype_size(fopt_dtype dt) { return dt == FOPT_FLOAT32 ? 4 : 2; }

size_t bench_master_size(const bench_mode *m)
{
    switch (bench_mode_master(m)) {
    case BENCH_MASTER_F32: return 4;
    case BENCH_MASTER_REMAINDER: return 2;
    default: return 0;
    }
}

/* ---- traffic ---- */

int bench_state_count(const fopt_variant *v)
{
    unsigned s = fopt_variant_states(v);
    return (int)((s & 1u) + (s >> 1 & 1u) + (s >> 2 & 1u));
}

const char *bench_state_name(const fopt_variant *v, int k)
{
    static const char *const adam[3] = {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"};
    static const char *const rms[3] = {"square_avg", "momentum_buffer", "grad_avg"};
    return k < 0 || k > 2 ? "?" : v->adam ? adam[k] : rms[k];
}

static void add(bench_traffic *t, const char *name, int width, bench_access access)
{
    if (t->count == BENCH_MAX_ARRAYS)
        bench_die("internal: more than %d arrays in a step", BENCH_MAX_ARRAYS);
    t->a[t->count++] = (bench_array){name, width, access};
    t->bytes += width * (((access & BENCH_READ) != 0) + ((access & BENCH_WRITE) != 0));
}

void bench_traffic_of(const fopt_variant *v, const bench_mode *m, bool stats_pass, bench_traffic *t)
{
    memset(t, 0, sizeof *t);
    const int wp = (int)bench_dtype_size(m->dtype), ws = (int)bench_dtype_size(m->precision.state_dtype);
    const bench_master mm = bench_mode_master(m);
    add(t, "grad", wp, BENCH_READ);
    if (stats_pass)
        add(t, "grad (statistics)", wp, BENCH_READ);
    add(t, "param", wp, mm == BENCH_MASTER_F32 ? BENCH_WRITE : BENCH_RW);
    if (mm != BENCH_MASTER_NONE)
        add(t, mm == BENCH_MASTER_F32 ? "master" : "remainder", (int)bench_master_size(m), BENCH_RW);
    unsigned states = fopt_variant_states(v);
    for (int k = 0; k < 3; k++)
        if (states >> k & 1u)
            add(t, bench_state_name(v, k), ws, BENCH_RW);
}

int bench_bytes_per_elem(const fopt_variant *v, const bench_mode *m, bool stats_pass)
{
    bench_traffic t;
    bench_traffic_of(v, m, stats_pass, &t);
    return t.bytes;
}

void bench_traffic_format(const bench_traffic *t, char *buf, size_t size)
{
    size_t len = 0;
    buf[0] = 0;
    for (int pass = 0; pass < 2; pass++) {
        bench_access want = pass == 0 ? BENCH_READ : BENCH_WRITE;
        int n = 0;
        for (int i = 0; i < t->count; i++) {
            if (!(t->a[i].access & want))
                continue;
            int w = snprintf(buf + len, len < size ? size - len : 0, "%s%s %d", n ? " + " : pass ? "; write " : "read ",
                             t->a[i].name, t->a[i].width);
            len += w > 0 ? (size_t)w : 0;
            n++;
        }
    }
}

/* ---- configs ---- */

fopt_adam_config bench_adam_config(const fopt_variant *v, const bench_mode *m, bool capturable)
{
    fopt_adam_config c = v->a;
    c.precision = m->precision;
    c.capturable = capturable;
    return c;
}

fopt_rmsprop_config bench_rmsprop_config(const fopt_variant *v, const bench_mode *m, bool capturable)
{
    fopt_rmsprop_config c = v->r;
    c.precision = m->precision;
    c.capturable = capturable;
    return c;
}

/* ---- elements ---- */

void bench_store(fopt_dtype dt, void *dst, size_t i, float x)
{
    switch (dt) {
    case FOPT_FLOAT16: ((uint16_t *)dst)[i] = fopt_f32_to_f16(x); break;
    case FOPT_BFLOAT16: ((uint16_t *)dst)[i] = fopt_f32_to_bf16(x); break;
    default: ((float *)dst)[i] = x; break;
    }
}

float bench_load(fopt_dtype dt, const void *src, size_t i)
{
    switch (dt) {
    case FOPT_FLOAT16: return fopt_f16_to_f32(((const uint16_t *)src)[i]);
    case FOPT_BFLOAT16: return fopt_bf16_to_f32(((const uint16_t *)src)[i]);
    default: return ((const float *)src)[i];
    }
}

void bench_to_float(fopt_dtype dt, const void *src, float *dst, size_t n)
{
    const uint16_t *h = src;
    switch (dt) {
    case FOPT_FLOAT16:
        for (size_t i = 0; i < n; i++)
            dst[i] = fopt_f16_to_f32(h[i]);
        break;
    case FOPT_BFLOAT16:
        for (size_t i = 0; i < n; i++)
            dst[i] = fopt_bf16_to_f32(h[i]);
        break;
    default: memcpy(dst, src, n * sizeof(float)); break;
    }
}

float bench_master_value(const bench_mode *m, const void *param, const void *master, size_t i)
{
    switch (bench_mode_master(m)) {
    case BENCH_MASTER_F32: return ((const float *)master)[i];
    case BENCH_MASTER_REMAINDER:
        return fopt_remainder_decode(((const uint16_t *)param)[i], ((const uint16_t *)master)[i]);
    default: return bench_load(m->dtype, param, i);
    }
}

fopt_status bench_cpu_multi(const fopt_variant *v, const bench_mode *m, bool ref, int64_t step,
                            const fopt_host_tensor *t, size_t count, const fopt_step_options *opts)
{
    if (v->adam) {
        fopt_adam_config c = bench_adam_config(v, m, false);
        return (ref ? fopt_adam_step_ref_multi : fopt_adam_step_cpu_multi)(&c, step, t, count, opts);
    }
    fopt_rmsprop_config c = bench_rmsprop_config(v, m, false);
    return (ref ? fopt_rmsprop_step_ref_multi : fopt_rmsprop_step_cpu_multi)(&c, step, t, count, opts);
}

static const char *mode_name(size_t i) { return bench_modes[i].name; }

void bench_modes_parse(const char *list, bool *sel, const char *option)
{
    bench_list_select(list, sel, bench_mode_count, mode_name, option, "mode");
}
