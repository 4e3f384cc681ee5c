/* The GPU kernels run on the host over host arrays, behind the CPU multi-tensor signature: the
 * statistics kernel, the device-side prologue and the step kernels, each through its run_on_host
 * entry point (every block, every thread), over a table built from fopt_host_tensor entries. The
 * tests drive the reference, the fast CPU path and the kernels through one signature and compare
 * their bits, on every machine. Internal (tests only). */
#include <stdlib.h>
#include <string.h>

#include "host_run.h"
#include "launch.h"
#include "table.h"

static fopt_host_run_mode g_mode = {0, 0};

void fopt_host_run_set_mode(fopt_host_run_mode mode) { g_mode = mode; }

static fopt_status host_run(const fopt_desc *d, const fopt_any_config *cfg, int64_t step,
                            const fopt_host_tensor *tensors, size_t count, const fopt_step_options *opts)
{
    fopt_status st;
    const fopt_precision *pr = fopt_cfg_precision(d, cfg);
    const unsigned states = d->states(cfg);
    const fopt_storage sst = pr->state_dtype == FOPT_BFLOAT16 ? FOPT_ST_BF16 : FOPT_ST_F32;
    const unsigned shift = g_mode.chunk_shift ? g_mode.chunk_shift : FOPT_CHUNK_SHIFT;

    size_t nstep = 0, nstat = 0;
    for (size_t k = 0; k < count; k++) {
        nstep += (size_t)fopt_chunks_for(tensors[k].numel, shift);
        nstat += (size_t)fopt_chunks_for(tensors[k].numel, FOPT_CHUNK_SHIFT);
    }
    fopt_tensor_entry *e = calloc(count ? count : 1, sizeof *e);
    fopt_chunk *step_chunks = calloc(nstep ? nstep : 1, sizeof *step_chunks);
    fopt_chunk *stat_chunks = calloc(nstat ? nstat : 1, sizeof *stat_chunks);
    double *partials = calloc(nstat ? nstat : 1, sizeof *partials);
    fopt_step_args *a = calloc(1, sizeof *a);
    fopt_scalars *dev_scalars = calloc(1, sizeof *dev_scalars);
    if (!e || !step_chunks || !stat_chunks || !partials || !a || !dev_scalars) {
        st = fopt_fail(FOPT_ERROR_OUT_OF_MEMORY, "host allocation failed");
        goto done;
    }
    for (size_t k = 0; k < count; k++) {
        const fopt_host_tensor *t = &tensors[k];
        fopt_storage ps = fopt_storage_of(t->dtype);
        e[k].slot[FOPT_TS_PARAM] = t->param;
        e[k].slot[FOPT_TS_GRAD] = (void *)t->grad;
        e[k].storage[FOPT_TS_PARAM] = e[k].storage[FOPT_TS_GRAD] = (uint8_t)ps;
        for (unsigned j = 0; j < FOPT_MAX_STATES; j++)
            if (states >> j & 1u) {
                e[k].slot[FOPT_TS_STATE0 + j] = t->state[j];
                e[k].storage[FOPT_TS_STATE0 + j] = (uint8_t)sst;
            }
        fopt_master_mode mm = fopt_master_mode_of(pr, t->dtype);
        if (mm != FOPT_MASTER_NONE) {
            e[k].slot[FOPT_TS_MASTER] = t->master;
            e[k].storage[FOPT_TS_MASTER] = mm == FOPT_MASTER_F32 ? FOPT_ST_F32 : FOPT_ST_U16;
        }
        e[k].numel = (int64_t)t->numel;
        e[k].elem_offset = (int64_t)fopt_host_elem_offset(t);
        e[k].tensor = (uint32_t)fopt_host_tensor_index(t, k);
        fopt_entry_set_flags(&e[k]);
    }

    /* statistics, and with device-side scalars the prologue */
    fopt_step_stats stats = {0.0, 1.0f, 0};
    uint32_t done = 0;
    fopt_device_hparams hp;
    memset(&hp, 0, sizeof hp);
    hp.step = step - 1;
    const int need_stats = fopt_options_need_stats(opts);
    const int device_scalars = g_mode.device_scalars;
    fopt_prologue_args pro;
    memset(&pro, 0, sizeof pro);
    if (device_scalars) {
        pro.enabled = 1;
        pro.kind = d->kind;
        pro.cfg = *cfg;
        pro.hp = &hp;
        pro.out = dev_scalars;
        pro.host_step = -1;
        pro.group_count = 1;
        pro.lr[0] = fopt_cfg_lr(d, cfg);
        pro.wd[0] = fopt_cfg_wd(d, cfg);
    }
    if (need_stats) {
        fopt_stats_args s;
        memset(&s, 0, sizeof s);
        size_t c = 0;
        for (size_t k = 0; k < count; k++)
            for (uint64_t i = 0; i < fopt_chunks_for(tensors[k].numel, FOPT_CHUNK_SHIFT); i++)
                stat_chunks[c++] = (fopt_chunk){(uint32_t)k, (uint32_t)i};
        s.table = (fopt_table){e, stat_chunks, (uint32_t)count, (uint32_t)(opts->grad_sq_sum ? 0 : nstat),
                               FOPT_CHUNK_SHIFT, 0};
        s.partials = partials;
        s.done = &done;
        s.grad_scale = opts->grad_scale;
        s.external_sq_sum = opts->grad_sq_sum;
        s.max_grad_norm = opts->max_grad_norm;
        s.stats_out = &stats;
        s.grad_norm_out = opts->grad_norm;
        s.found_inf_out = opts->found_inf;
        s.check_inf = opts->found_inf != NULL;
        if (device_scalars) {
            s.prologue = pro;
            s.prologue.stats = &stats;
        }
        fopt_kernel k = fopt_stats_kernel();
        k.run_on_host(&s);
    } else if (device_scalars) {
        fopt_kernel k = fopt_prologue_kernel();
        k.run_on_host(&pro);
    }

    a->device_scalars = device_scalars ? dev_scalars : NULL;
    a->stats = need_stats ? &stats : NULL;
    a->grad_scale = opts ? opts->grad_scale : NULL;
    a->clip = opts && opts->max_grad_norm > 0.0;
    a->zero_grads = opts && opts->zero_grads;
    if (!device_scalars) {
        fopt_scalars_head_make(d->kind, cfg, step, &a->scalars);
        a->scalars.group[0] = fopt_cpu_scalars(d, cfg, step);
    }
    a->step_out = device_scalars ? &hp.step : NULL; /* every launch stores the same count */
    static const fopt_dtype dtypes[FOPT_CLASSES] = {FOPT_FLOAT32, FOPT_FLOAT16, FOPT_BFLOAT16};
    for (int cl = 0; cl < FOPT_CLASSES; cl++) {
        size_t c = 0;
        for (size_t k = 0; k < count; k++) {
            if (fopt_class_of(tensors[k].dtype) != cl)
                continue;
            for (uint64_t i = 0; i < fopt_chunks_for(tensors[k].numel, shift); i++)
                step_chunks[c++] = (fopt_chunk){(uint32_t)k, (uint32_t)i};
        }
        if (c == 0)
            continue;
        a->table = (fopt_table){e, step_chunks, (uint32_t)count, (uint32_t)c, shift, 0};
        fopt_kernel k = fopt_step_kernel_of(d->kind, fopt_storage_of(dtypes[cl]), sst,
                                            fopt_master_mode_of(pr, dtypes[cl]), d->variant(cfg));
        k.run_on_host(a);
    }
    st = FOPT_SUCCESS;
done:
    free(e);
    free(step_chunks);
    free(stat_chunks);
    free(partials);
    free(a);
    free(dev_scalars);
    return st;
}

FOPT_DEFINE_MULTI_ENTRIES(fopt_adam_step_kernels_host, fopt_rmsprop_step_kernels_host, host_run)
