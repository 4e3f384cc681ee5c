/* The GPU optimizer object: binds tensors, owns the device state, the multi-tensor table and the
 * per-step scalars, and enqueues the step: one kernel launch per parameter storage type present
 * (one in the usual case), plus the statistics kernel when the step options need the global
 * norm or the inf/NaN flag. Every device call goes through the device layer (device.h), so this
 * file runs unchanged on the emulated device.
 *
 * Device memory per optimizer, three allocations:
 *   state  every state buffer (each tensor's slice 16-byte aligned) then the master copies;
 *          zeroed at creation, masters initialised from the params;
 *   table  entries, step chunks by launch class, statistics chunks; built once on the host;
 *   work   statistics results, the ticket counter, device hyper-parameters (step count, each
 *          group's lr and weight decay), the device scalars block, the chunks' partial sums.
 *
 * Where the scalars come from. An eager step whose count the host knows derives every group's
 * scalars on the host (kernels/scalars.h) and passes them in the launch. A capturable optimizer,
 * and a step that may be skipped on an inf/NaN, derive them on the device (the statistics kernel's
 * last block, or a one-block prologue): the count lives on the device, and fopt_step_count() reads
 * it back when asked. Both derive with the same double arithmetic, so the bits agree.
 *
 * A shard (fopt_*_create_shard) is the same object over a range of the list's concatenated
 * elements: its table holds, for each tensor, the part the range holds (src/gpu/table.c), and
 * everything else follows from the table.
 *
 * Every CUDA failure becomes an fopt_status with the call, file and line kept for
 * fopt_last_error(); nothing ever exits the process; a failing call changes nothing. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device.h"
#include "internal.h"
#include "optimizer.h"
#include "table.h"

/* ---- CUDA errors ---------------------------------------------------------------------------- */

fopt_status fopt_cuda_fail(cudaError_t err, const char *call, const char *file, int line)
{
    (void)fopt_dev_last_error(); /* clear a non-sticky error so the caller's next call is clean */
    fopt_status st = FOPT_ERROR_CUDA;
    if (err == cudaErrorMemoryAllocation)
        st = FOPT_ERROR_OUT_OF_MEMORY;
    else if (err == cudaErrorNoDevice || err == cudaErrorInsufficientDriver)
        st = FOPT_ERROR_NO_DEVICE;
    return fopt_fail(st, "%s failed at %s:%d: %s (%s)", call, file, line, fopt_dev_error_string(err),
                     fopt_dev_error_name(err));
}

fopt_status fopt_device_enter(const fopt_optimizer *opt, fopt_device_scope *scope)
{
    fopt_status status = FOPT_SUCCESS;
    scope->switched = 0;
    FOPT_CUDA_TRY(fopt_dev_get(&scope->previous));
    if (scope->previous != opt->device) {
        FOPT_CUDA_TRY(fopt_dev_set(opt->device));
        scope->switched = 1;
    }
    return FOPT_SUCCESS;
fail:
    return status;
}

void fopt_device_leave(const fopt_device_scope *scope)
{
    if (scope->switched)
        (void)fopt_dev_set(scope->previous);
}

fopt_status fopt_sync_copy(const fopt_optimizer *opt, void *dst, const void *src, size_t bytes)
{
    fopt_device_scope scope;
    fopt_status status = fopt_device_enter(opt, &scope);
    if (status != FOPT_SUCCESS)
        return status;
    FOPT_CUDA_TRY(fopt_dev_synchronize());
    if (bytes > 0)
        FOPT_CUDA_TRY(fopt_dev_memcpy(dst, src, bytes));
    fopt_device_leave(&scope);
    return FOPT_SUCCESS;
fail:
    fopt_device_leave(&scope);
    return status;
}

/* ---- creation ------------------------------------------------------------------------------- */

uint64_t fopt_hash_bytes(uint64_t h, const void *data, size_t n)
{
    const unsigned char *b = data;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull; /* FNV-1a */
    return h;
}

/* Identifies the tensor list in checkpoints: count, and each tensor's numel, dtype and group. */
static uint64_t list_hash(const fopt_tensor *tensors, size_t count)
{
    uint64_t h = 0xcbf29ce484222325ull;
    uint64_t c = count;
    h = fopt_hash_bytes(h, &c, sizeof c);
    for (size_t k = 0; k < count; k++) {
        uint64_t v[3] = {tensors[k].numel, (uint64_t)tensors[k].dtype, tensors[k].group};
        h = fopt_hash_bytes(h, v, sizeof v);
    }
    return h;
}

static fopt_status check_tensors(const fopt_desc *d, const fopt_any_config *cfg,
                                 const fopt_tensor *tensors, size_t count)
{
    if (!tensors)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "tensors is NULL");
    if (count == 0)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "the tensor list is empty");
    const fopt_precision *pr = fopt_cfg_precision(d, cfg);
    for (size_t k = 0; k < count; k++) {
        const fopt_tensor *t = &tensors[k];
        char where[48];
        snprintf(where, sizeof where, "tensor %zu", k);
        fopt_status st = fopt_precision_check(pr, t->dtype, where);
        if (st != FOPT_SUCCESS)
            return st;
        if (t->group >= FOPT_MAX_GROUPS)
            return fopt_fail(FOPT_ERROR_INVALID_VALUE, "tensor %zu: group %u; groups are 0..%d", k,
                             t->group, FOPT_MAX_GROUPS - 1);
        if (t->numel > 0 && (!t->param || !t->grad))
            return fopt_fail(FOPT_ERROR_INVALID_VALUE, "tensor %zu: %s is NULL with numel %zu", k,
                             t->param ? "grad" : "param", t->numel);
    }
    return FOPT_SUCCESS;
}

/* A pointer the kernels can dereference on `device`: device memory of that device, or managed. */
static fopt_status check_device_pointer(const void *ptr, int device, size_t k, const char *what)
{
    fopt_mem_kind kind;
    int on;
    cudaError_t err = fopt_dev_pointer(ptr, &kind, &on);
    if (err != cudaSuccess) {
        (void)fopt_dev_last_error();
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "tensor %zu: %s is not a CUDA pointer (%s)", k,
                         what, fopt_dev_error_string(err));
    }
    if (kind == FOPT_MEM_MANAGED)
        return FOPT_SUCCESS;
    if (kind != FOPT_MEM_DEVICE)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "tensor %zu: %s is host memory, not device memory",
                         k, what);
    if (on != device)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "tensor %zu: %s is on device %d, not on device %d",
                         k, what, on, device);
    return FOPT_SUCCESS;
}

fopt_status fopt_check_device_tensors(const fopt_tensor *tensors, size_t count, int device)
{
    for (size_t k = 0; k < count; k++) {
        if (tensors[k].numel == 0)
            continue;
        fopt_status st = check_device_pointer(tensors[k].param, device, k, "param");
        if (st == FOPT_SUCCESS)
            st = check_device_pointer(tensors[k].grad, device, k, "grad");
        if (st != FOPT_SUCCESS)
            return st;
    }
    return FOPT_SUCCESS;
}

/* The part of each tensor that the range [begin, end) holds, as the ranges of its param
 * (written) and grad (read), after the whole tensors' alignment and size checks. */
static fopt_status list_ranges(const fopt_tensor *tensors, size_t count, uint64_t begin, uint64_t end,
                               fopt_range *r, size_t *n)
{
    uint64_t start = 0, lo, hi;
    *n = 0;
    for (size_t k = 0; k < count; start += tensors[k].numel, k++) {
        const fopt_tensor *t = &tensors[k];
        const size_t eb = fopt_dtype_bytes(t->dtype);
        fopt_range whole;
        if (t->numel == 0)
            continue;
        fopt_status st = fopt_buffer_range(t->param, t->numel, eb, k, "param", true, &whole);
        if (st == FOPT_SUCCESS)
            st = fopt_buffer_range(t->grad, t->numel, eb, k, "grad", false, &whole);
        if (st != FOPT_SUCCESS)
            return st;
        fopt_shard_part(start, t->numel, begin, end, &lo, &hi);
        if (hi == lo)
            continue;
        (void)fopt_buffer_range((char *)t->param + lo * eb, hi - lo, eb, k, "param", true, &r[(*n)++]);
        (void)fopt_buffer_range((const char *)t->grad + lo * eb, hi - lo, eb, k, "grad", false, &r[(*n)++]);
    }
    return FOPT_SUCCESS;
}

/* The buffers of a tensor list (creation, rebind) that an optimizer over the elements
 * [begin, end) of its concatenation steps: every param and grad aligned to its dtype and inside
 * the address space, no param overlapping another param or a grad (the parts in the range). Grads
 * may share memory; *alias then names two, for the steps with zero_grads to refuse. */
static fopt_status check_list_buffers(const fopt_tensor *tensors, size_t count, uint64_t begin,
                                      uint64_t end, fopt_grad_alias *alias)
{
    fopt_range *r = calloc(count, 2 * sizeof *r), a, b;
    size_t n;
    if (!r)
        return fopt_fail(FOPT_ERROR_OUT_OF_MEMORY, "host allocation for %zu tensors failed", count);
    fopt_status st = list_ranges(tensors, count, begin, end, r, &n);
    if (st == FOPT_SUCCESS)
        st = fopt_ranges_disjoint(r, n);
    memset(alias, 0, sizeof *alias);
    /* the params overlap nothing: with every range taken as written, an overlap is two grads */
    for (size_t i = 0; i < n; i++)
        r[i].written = true;
    if (st == FOPT_SUCCESS && fopt_ranges_overlap(r, n, &a, &b)) {
        alias->found = 1;
        alias->a = a.tensor < b.tensor ? a.tensor : b.tensor;
        alias->b = a.tensor < b.tensor ? b.tensor : a.tensor;
    }
    free(r);
    return st;
}

/* The range a creation steps ([0, total) without `range`) and its buffers (check_list_buffers). */
static fopt_status check_list_range(const fopt_tensor *tensors, size_t count, const uint64_t *range,
                                    uint64_t *begin, uint64_t *end, fopt_grad_alias *alias)
{
    uint64_t total = 0;
    for (size_t k = 0; k < count; k++) {
        if (tensors[k].numel > UINT64_MAX - total)
            return fopt_fail(FOPT_ERROR_NOT_SUPPORTED, "tensors hold too many elements in total");
        total += tensors[k].numel;
    }
    *begin = range ? range[0] : 0;
    *end = range ? range[1] : total;
    fopt_status status = range ? fopt_shard_range_check(total, *begin, *end) : FOPT_SUCCESS;
    return status != FOPT_SUCCESS ? status : check_list_buffers(tensors, count, *begin, *end, alias);
}

static void release(fopt_optimizer *opt)
{
    if (!opt)
        return;
    (void)fopt_dev_free(opt->work_mem);
    (void)fopt_dev_free(opt->table_mem);
    (void)fopt_dev_free(opt->state_mem);
    free(opt->entries);
    free(opt->list_numel);
    free(opt);
}

/* The device hyper-parameters' initial image: step 0, every group's lr and weight decay. */
static void hparams_image(const fopt_optimizer *opt, fopt_device_hparams *hp)
{
    memset(hp, 0, sizeof *hp);
    hp->step = opt->step;
    memcpy(hp->lr, opt->lr, sizeof hp->lr);
    memcpy(hp->wd, opt->wd, sizeof hp->wd);
}

/* Why the device count failed or is 0, for FOPT_ERROR_NO_DEVICE. The runtime answers a machine
 * without any CUDA driver with cudaErrorInsufficientDriver ("driver version is insufficient"),
 * which would send the user to upgrade a driver that does not exist: the driver's version, 0 when
 * none is installed, tells that case from a driver that is really too old. */
static fopt_status no_device(cudaError_t err)
{
    (void)fopt_dev_last_error();
    int driver = 0, runtime = 0;
    if (fopt_dev_versions(&driver, &runtime) != cudaSuccess)
        driver = runtime = 0;
    (void)fopt_dev_last_error();
    if (err == cudaErrorInsufficientDriver && driver > 0)
        return fopt_fail(FOPT_ERROR_NO_DEVICE,
                         "no usable CUDA device: the CUDA driver (%d.%d) is older than the CUDA runtime "
                         "this library uses (%d.%d); update the driver", driver / 1000, driver % 1000 / 10,
                         runtime / 1000, runtime % 1000 / 10);
    if (err == cudaSuccess || err == cudaErrorNoDevice || err == cudaErrorInsufficientDriver)
        return fopt_fail(FOPT_ERROR_NO_DEVICE, "no CUDA driver or device (%s)",
                         driver == 0 ? "no CUDA driver is installed" : "the CUDA driver reports no device");
    return fopt_fail(FOPT_ERROR_NO_DEVICE, "no usable CUDA device (%s: %s)", fopt_dev_error_name(err),
                     fopt_dev_error_string(err));
}

fopt_status fopt_gpu_create(fopt_optimizer **out, const fopt_desc *d, const fopt_any_config *cfg,
                            const fopt_tensor *tensors, size_t count, const uint64_t *range)
{
    if (!out)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "out is NULL");
    fopt_status status = d->check(cfg);
    if (status != FOPT_SUCCESS)
        return status;
    if ((status = check_tensors(d, cfg, tensors, count)) != FOPT_SUCCESS)
        return status;
    uint64_t begin = 0, end = 0; /* set by check_list_range (initialised: GCC cannot see it at -O3) */
    fopt_grad_alias alias;
    if ((status = check_list_range(tensors, count, range, &begin, &end, &alias)) != FOPT_SUCCESS)
        return status;

    int devices = 0;
    cudaError_t err = fopt_dev_count(&devices);
    if (err != cudaSuccess || devices == 0)
        return no_device(err);
    int device = 0, sms = 0;
    if ((err = fopt_dev_get(&device)) != cudaSuccess)
        return fopt_cuda_fail(err, "cudaGetDevice", __FILE__, __LINE__);
    if ((err = fopt_dev_sm_count(device, &sms)) != cudaSuccess)
        return fopt_cuda_fail(err, "cudaDeviceGetAttribute(multiprocessors)", __FILE__, __LINE__);
    fopt_table_plan plan;
    if ((status = fopt_table_plan_shard(d, cfg, tensors, count, begin, end, sms, &plan)) != FOPT_SUCCESS)
        return status;
    if ((status = fopt_check_device_tensors(tensors, count, device)) != FOPT_SUCCESS)
        return status;

    fopt_optimizer *opt = calloc(1, sizeof *opt);
    void *host_table = malloc(plan.table_bytes);
    if (opt) {
        opt->entries = malloc(count * sizeof *opt->entries);
        opt->list_numel = malloc(count * sizeof *opt->list_numel);
    }
    if (!opt || !host_table || !opt->entries || !opt->list_numel) {
        status = fopt_fail(FOPT_ERROR_OUT_OF_MEMORY, "host allocation of %zu bytes failed",
                           sizeof *opt + 2 * plan.table_bytes);
        goto fail;
    }
    opt->d = d;
    opt->cfg = *cfg;
    opt->device = device;
    opt->plan = plan;
    opt->tensor_count = count;
    opt->list_hash = list_hash(tensors, count);
    opt->shard_begin = begin;
    opt->shard_end = end;
    opt->grad_alias = alias;
    for (size_t k = 0; k < count; k++) {
        opt->list_numel[k] = tensors[k].numel;
        /* every tensor's group, also outside a shard's range: all shards have the same groups */
        if (tensors[k].group + 1 > opt->group_count)
            opt->group_count = tensors[k].group + 1;
    }
    for (int g = 0; g < FOPT_MAX_GROUPS; g++) {
        opt->lr[g] = fopt_cfg_lr(d, cfg);
        opt->wd[g] = fopt_cfg_wd(d, cfg);
    }
    opt->capturable = fopt_cfg_capturable(d, cfg);
    opt->step_on_device = opt->capturable;
    const fopt_precision *pr = fopt_cfg_precision(d, cfg);
    for (int c = 0; c < FOPT_CLASSES; c++) {
        static const fopt_dtype dtype_of_class[FOPT_CLASSES] = {FOPT_FLOAT32, FOPT_FLOAT16, FOPT_BFLOAT16};
        fopt_dtype dt = dtype_of_class[c];
        opt->step_kernel[c] = fopt_step_kernel_of(d->kind, fopt_storage_of(dt), plan.state_storage,
                                                  fopt_master_mode_of(pr, dt), d->variant(cfg));
    }

    size_t work_bytes = fopt_work_offset_partials + (plan.stat_chunks ? plan.stat_chunks : 1) * sizeof(double);
    if (plan.state_bytes > 0) {
        FOPT_CUDA_TRY(fopt_dev_malloc(&opt->state_mem, plan.state_bytes));
        FOPT_CUDA_TRY(fopt_dev_memset(opt->state_mem, 0, plan.state_bytes));
    }
    FOPT_CUDA_TRY(fopt_dev_malloc(&opt->table_mem, plan.table_bytes));
    FOPT_CUDA_TRY(fopt_dev_malloc(&opt->work_mem, work_bytes));
    FOPT_CUDA_TRY(fopt_dev_memset(opt->work_mem, 0, work_bytes));

    fopt_table_fill(&plan, d, cfg, tensors, opt->state_mem, host_table);
    memcpy(opt->entries, fopt_table_entries(&plan, host_table), count * sizeof *opt->entries);
    FOPT_CUDA_TRY(fopt_dev_memcpy(opt->table_mem, host_table, plan.table_bytes));
    fopt_device_hparams hp;
    hparams_image(opt, &hp);
    FOPT_CUDA_TRY(fopt_dev_memcpy(fopt_work_hparams(opt), &hp, sizeof hp));
    if (plan.master_f32_elems > 0) {
        fopt_table all = fopt_step_table(opt, -1);
        fopt_kernel init = fopt_master_init_kernel();
        FOPT_CUDA_TRY(fopt_dev_launch(&init, &all, 0));
    }
    /* The memsets, copies and the initialisation run on the legacy default stream; finish them
     * before any user stream can launch a step. */
    FOPT_CUDA_TRY(fopt_dev_synchronize());
    free(host_table);
    *out = opt;
    return FOPT_SUCCESS;

fail:
    release(opt);
    free(host_table);
    return status;
}

/* The public constructors: a copy of the caller's config of d's kind, then fopt_gpu_create. */
static fopt_status create(fopt_optimizer **out, const fopt_desc *d, const void *cfg, const fopt_tensor *tensors,
                          size_t count, const uint64_t *range)
{
    if (!cfg)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "%s config is NULL", d->name);
    fopt_any_config c = fopt_cfg_copy(d, cfg);
    return fopt_gpu_create(out, d, &c, tensors, count, range);
}

fopt_status fopt_adam_create(fopt_optimizer **out, const fopt_adam_config *cfg,
                             const fopt_tensor *tensors, size_t count)
{
    return create(out, &fopt_adam_desc, cfg, tensors, count, NULL);
}

fopt_status fopt_rmsprop_create(fopt_optimizer **out, const fopt_rmsprop_config *cfg,
                                const fopt_tensor *tensors, size_t count)
{
    return create(out, &fopt_rmsprop_desc, cfg, tensors, count, NULL);
}

fopt_status fopt_adam_create_shard(fopt_optimizer **out, const fopt_adam_config *cfg,
                                   const fopt_tensor *tensors, size_t count, uint64_t begin, uint64_t end)
{
    const uint64_t range[2] = {begin, end};
    return create(out, &fopt_adam_desc, cfg, tensors, count, range);
}

fopt_status fopt_rmsprop_create_shard(fopt_optimizer **out, const fopt_rmsprop_config *cfg,
                                      const fopt_tensor *tensors, size_t count, uint64_t begin, uint64_t end)
{
    const uint64_t range[2] = {begin, end};
    return create(out, &fopt_rmsprop_desc, cfg, tensors, count, range);
}

void fopt_destroy(fopt_optimizer *opt)
{
    if (!opt)
        return;
    fopt_device_scope scope;
    int entered = fopt_device_enter(opt, &scope) == FOPT_SUCCESS;
    /* cudaFree waits for work in flight that may still use these buffers. */
    release(opt);
    if (entered)
        fopt_device_leave(&scope);
}

/* ---- the table and work memory of a launch ---- */

fopt_table fopt_step_table(const fopt_optimizer *opt, int launch_class)
{
    fopt_table t;
    memset(&t, 0, sizeof t);
    t.entries = opt->table_mem;
    const fopt_chunk *chunks = fopt_table_step_chunks(&opt->plan, opt->table_mem);
    t.chunks = launch_class < 0 ? chunks : chunks + opt->plan.class_begin[launch_class];
    t.entry_count = (uint32_t)opt->plan.entries;
    t.chunk_count = (uint32_t)(launch_class < 0 ? opt->plan.step_chunks : opt->plan.class_count[launch_class]);
    t.chunk_shift = opt->plan.chunk_shift;
    return t;
}

static fopt_table stat_table(const fopt_optimizer *opt)
{
    fopt_table t;
    memset(&t, 0, sizeof t);
    t.entries = opt->table_mem;
    t.chunks = fopt_table_stat_chunks(&opt->plan, opt->table_mem);
    t.entry_count = (uint32_t)opt->plan.entries;
    t.chunk_count = (uint32_t)opt->plan.stat_chunks;
    t.chunk_shift = FOPT_CHUNK_SHIFT;
    return t;
}

fopt_step_stats *fopt_work_stats(const fopt_optimizer *opt)
{
    return (fopt_step_stats *)((char *)opt->work_mem + fopt_work_offset_stats);
}
static uint32_t *work_done(const fopt_optimizer *opt) { return (uint32_t *)((char *)opt->work_mem + fopt_work_offset_done); }
fopt_device_hparams *fopt_work_hparams(const fopt_optimizer *opt)
{
    return (fopt_device_hparams *)((char *)opt->work_mem + fopt_work_offset_hparams);
}
static fopt_scalars *work_scalars(const fopt_optimizer *opt) { return (fopt_scalars *)((char *)opt->work_mem + fopt_work_offset_scalars); }
static double *work_partials(const fopt_optimizer *opt) { return (double *)((char *)opt->work_mem + fopt_work_offset_partials); }

/* ---- stepping ------------------------------------------------------------------------------- */

static void prologue_fill(const fopt_optimizer *opt, fopt_prologue_args *p, const fopt_step_stats *stats)
{
    memset(p, 0, sizeof *p);
    p->enabled = 1;
    p->kind = opt->d->kind;
    p->cfg = opt->cfg;
    p->hp = fopt_work_hparams(opt);
    p->out = work_scalars(opt);
    p->stats = stats;
    p->host_step = opt->step_on_device ? -1 : opt->step;
    p->lr_on_device = opt->capturable;
    p->group_count = opt->group_count;
    p->commit = opt->plan.step_chunks == 0; /* no step launch will store the count */
    memcpy(p->lr, opt->lr, sizeof p->lr);
    memcpy(p->wd, opt->wd, sizeof p->wd);
}

/* Enqueues the statistics kernel: global sum of squares (or the caller's), norm, inf/NaN flag,
 * clip coefficient; with `prologue`, also the device-side derivation of the step's scalars. The
 * caller's grad_norm and found_inf are written by the step's last launch (a step launch, or this
 * one when no step launch follows), so that a step that fails to launch writes neither. */
static cudaError_t launch_stats(const fopt_optimizer *opt, const fopt_step_options *o, int prologue,
                                double *sq_sum_out, const float *grad_scale, cudaStream_t stream)
{
    fopt_stats_args a;
    memset(&a, 0, sizeof a);
    const int external = o && o->grad_sq_sum;
    a.table = stat_table(opt);
    if (external)
        a.table.chunk_count = 0; /* the caller's sum replaces the grads' */
    a.partials = work_partials(opt);
    a.done = work_done(opt);
    a.grad_scale = grad_scale;
    a.external_sq_sum = external ? o->grad_sq_sum : NULL;
    a.max_grad_norm = o ? o->max_grad_norm : 0.0;
    a.stats_out = fopt_work_stats(opt);
    a.sq_sum_out = sq_sum_out;
    const int last = opt->plan.step_chunks == 0;
    a.grad_norm_out = o && last ? o->grad_norm : NULL;
    a.found_inf_out = o && last ? o->found_inf : NULL;
    a.check_inf = o && o->found_inf;
    if (prologue)
        prologue_fill(opt, &a.prologue, fopt_work_stats(opt));
    fopt_kernel k = fopt_stats_kernel();
    return fopt_dev_launch(&k, &a, stream);
}

fopt_status fopt_step_ex(fopt_optimizer *opt, const fopt_step_options *opts, cudaStream_t stream)
{
    if (!opt)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "optimizer is NULL");
    fopt_status status = fopt_options_check(opts);
    if (status != FOPT_SUCCESS)
        return status;
    if (opts && opts->zero_grads && opt->grad_alias.found)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE,
                         "step options: zero_grads writes the grads, and tensor %zu's grad and tensor "
                         "%zu's grad share memory", opt->grad_alias.a, opt->grad_alias.b);
    if (!opt->step_on_device && opt->step == INT64_MAX)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE,
                         "the step count is INT64_MAX: one more step would overflow it (fopt_set_step_count "
                         "sets another)");
    const int need_stats = fopt_options_need_stats(opts);
    const int check_inf = opts && opts->found_inf;
    /* the host cannot know the count after a step that may be skipped */
    const int device_step = opt->capturable || opt->step_on_device || check_inf;

    fopt_device_scope scope;
    if ((status = fopt_device_enter(opt, &scope)) != FOPT_SUCCESS)
        return status;
    const float *grad_scale = opts ? opts->grad_scale : NULL;
    if (need_stats) {
        FOPT_CUDA_TRY(launch_stats(opt, opts, device_step, NULL, grad_scale, stream));
    } else if (device_step) {
        fopt_prologue_args p;
        prologue_fill(opt, &p, NULL);
        fopt_kernel k = fopt_prologue_kernel();
        FOPT_CUDA_TRY(fopt_dev_launch(&k, &p, stream));
    }

    /* The step's arguments (a few KB: on the heap, not the stack). */
    fopt_step_args *a = malloc(sizeof *a);
    if (!a) {
        status = fopt_fail(FOPT_ERROR_OUT_OF_MEMORY, "host allocation of %zu bytes failed", sizeof *a);
        goto fail;
    }
    memset(a, 0, sizeof *a);
    a->device_scalars = device_step ? work_scalars(opt) : NULL;
    a->stats = need_stats ? fopt_work_stats(opt) : NULL;
    a->grad_scale = grad_scale;
    a->clip = opts && opts->max_grad_norm > 0.0;
    a->zero_grads = opts && opts->zero_grads;
    if (!device_step) {
        const int64_t step = opt->step + 1;
        fopt_scalars_head_make(opt->d->kind, &opt->cfg, step, &a->scalars);
        for (uint32_t g = 0; g < opt->group_count; g++)
            a->scalars.group[g] = fopt_group_scalars_make(opt->d->kind, &opt->cfg, opt->lr[g], opt->wd[g], step);
    }
    int last_class = -1;
    for (int c = 0; c < FOPT_CLASSES; c++)
        if (opt->plan.class_count[c] > 0)
            last_class = c;
    for (int c = 0; c < FOPT_CLASSES; c++) {
        if (opt->plan.class_count[c] == 0)
            continue;
        a->table = fopt_step_table(opt, c);
        /* the device count and the caller's outputs change with the last launch: if a launch
         * fails, they have not */
        a->step_out = device_step && c == last_class ? &fopt_work_hparams(opt)->step : NULL;
        a->grad_norm_out = opts && c == last_class ? opts->grad_norm : NULL;
        a->found_inf_out = opts && c == last_class ? opts->found_inf : NULL;
        cudaError_t err = fopt_dev_launch(&opt->step_kernel[c], a, stream);
        if (err != cudaSuccess) {
            free(a);
            status = fopt_cuda_fail(err, "optimizer kernel launch", __FILE__, __LINE__);
            goto fail;
        }
    }
    free(a);
    fopt_device_leave(&scope);
    if (device_step)
        opt->step_on_device = 1;
    else
        opt->step++;
    return FOPT_SUCCESS;
fail:
    fopt_device_leave(&scope);
    return status;
}

fopt_status fopt_step(fopt_optimizer *opt, cudaStream_t stream) { return fopt_step_ex(opt, NULL, stream); }

fopt_status fopt_grad_sq_sum(fopt_optimizer *opt, const float *grad_scale, double *sq_sum, cudaStream_t stream)
{
    if (!opt || !sq_sum)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "optimizer or sq_sum is NULL");
    fopt_status status = fopt_sq_sum_pointers(grad_scale, sq_sum);
    if (status != FOPT_SUCCESS)
        return status;
    fopt_device_scope scope;
    if ((status = fopt_device_enter(opt, &scope)) != FOPT_SUCCESS)
        return status;
    FOPT_CUDA_TRY(launch_stats(opt, NULL, 0, sq_sum, grad_scale, stream));
    fopt_device_leave(&scope);
    return FOPT_SUCCESS;
fail:
    fopt_device_leave(&scope);
    return status;
}

/* ---- hyper-parameters ----------------------------------------------------------------------- */

/* Capturable optimizers keep lr and weight decay on the device: writes groups [first, last) of
 * one of the arrays there from the host's, in one copy, so that a failed copy leaves the device
 * as it was. The other groups keep the device's values (a captured schedule may write them). */
static fopt_status push_hparams(fopt_optimizer *opt, double *dev, const double *host, uint32_t first,
                                uint32_t last)
{
    if (!opt->capturable)
        return FOPT_SUCCESS;
    return fopt_sync_copy(opt, dev + first, host + first, (last - first) * sizeof *host);
}

/* Sets groups [first, last) to lr or to wd (one of them), keeping the old values when the push
 * fails. */
static fopt_status set_groups(fopt_optimizer *opt, uint32_t first, uint32_t last, const double *lr,
                              const double *wd)
{
    double old_lr[FOPT_MAX_GROUPS], old_wd[FOPT_MAX_GROUPS];
    memcpy(old_lr, opt->lr, sizeof old_lr);
    memcpy(old_wd, opt->wd, sizeof old_wd);
    for (uint32_t g = first; g < last; g++) {
        if (lr)
            opt->lr[g] = *lr;
        if (wd)
            opt->wd[g] = *wd;
    }
    fopt_device_hparams *hp = fopt_work_hparams(opt);
    fopt_status st = lr ? push_hparams(opt, hp->lr, opt->lr, first, last)
                        : push_hparams(opt, hp->wd, opt->wd, first, last);
    if (st != FOPT_SUCCESS) {
        memcpy(opt->lr, old_lr, sizeof old_lr);
        memcpy(opt->wd, old_wd, sizeof old_wd);
    }
    return st;
}

fopt_status fopt_set_lr(fopt_optimizer *opt, double lr)
{
    if (!opt)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "optimizer is NULL");
    for (uint32_t g = 0; g < FOPT_MAX_GROUPS; g++) {
        fopt_status st = fopt_group_values_check(opt->d, &opt->cfg, lr, opt->wd[g]);
        if (st != FOPT_SUCCESS)
            return st;
    }
    return set_groups(opt, 0, FOPT_MAX_GROUPS, &lr, NULL);
}

/* One group's lr (lr != NULL) or weight decay (wd != NULL), checked first. */
static fopt_status set_group(fopt_optimizer *opt, uint32_t group, const double *lr, const double *wd)
{
    if (!opt)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "optimizer is NULL");
    if (group >= FOPT_MAX_GROUPS)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "group %u; groups are 0..%d", group, FOPT_MAX_GROUPS - 1);
    fopt_status st = fopt_group_values_check(opt->d, &opt->cfg, lr ? *lr : opt->lr[group], wd ? *wd : opt->wd[group]);
    return st != FOPT_SUCCESS ? st : set_groups(opt, group, group + 1, lr, wd);
}

fopt_status fopt_set_group_lr(fopt_optimizer *opt, uint32_t group, double lr)
{
    return set_group(opt, group, &lr, NULL);
}

fopt_status fopt_set_group_weight_decay(fopt_optimizer *opt, uint32_t group, double weight_decay)
{
    return set_group(opt, group, NULL, &weight_decay);
}

double *fopt_lr_device(fopt_optimizer *opt)
{
    return opt && opt->capturable ? fopt_work_hparams(opt)->lr : NULL;
}

/* ---- the step counter ----------------------------------------------------------------------- */

_Static_assert(offsetof(fopt_device_hparams, refused) == offsetof(fopt_device_hparams, step) + sizeof(int64_t),
               "the counter pair is copied in one piece");

fopt_status fopt_sync_step(fopt_optimizer *opt)
{
    if (!opt->step_on_device)
        return FOPT_SUCCESS;
    int64_t counter[2]; /* fopt_device_hparams.step and .refused, in one copy */
    fopt_status status = fopt_sync_copy(opt, counter, &fopt_work_hparams(opt)->step, sizeof counter);
    if (status != FOPT_SUCCESS)
        return status;
    opt->step = counter[0];
    if (counter[1])
        opt->step_refused = 1;
    if (!opt->capturable) /* the host knows the count again */
        opt->step_on_device = 0;
    return FOPT_SUCCESS;
}

int64_t fopt_step_count(const fopt_optimizer *opt)
{
    if (!opt)
        return -1;
    /* reading the device's count back caches it: not an observable change of the optimizer */
    fopt_optimizer *o = (fopt_optimizer *)opt;
    if (fopt_sync_step(o) != FOPT_SUCCESS)
        return -1;
    if (o->step_refused) {
        fopt_fail(FOPT_ERROR_INVALID_VALUE,
                  "a step on the device was refused: the step count is INT64_MAX and one more step would "
                  "overflow it; nothing was updated (fopt_set_step_count or fopt_state_load sets a count)");
        return -1;
    }
    return o->step;
}

fopt_status fopt_set_step_count(fopt_optimizer *opt, int64_t step)
{
    if (!opt)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "optimizer is NULL");
    if (step < 0)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "step count must be >= 0, got %lld", (long long)step);
    const int64_t counter[2] = {step, 0}; /* fopt_device_hparams.step and .refused */
    fopt_status status = fopt_sync_copy(opt, &fopt_work_hparams(opt)->step, counter, sizeof counter);
    if (status != FOPT_SUCCESS)
        return status;
    opt->step = step;
    opt->step_refused = 0;
    opt->step_on_device = opt->capturable;
    return FOPT_SUCCESS;
}

/* ---- rebinding ------------------------------------------------------------------------------ */

/* fopt_rebind copies the new entries from a temporary host buffer. A graph captures a copy as a
 * pointer to its source, read at every replay, long after the buffer is freed; so the rebind is
 * refused while `stream` captures, before anything is enqueued (the capture goes on unharmed).
 * A graph reads the entries from the table in device memory when it replays, so a rebind before
 * or after the capture is what a graph needs. */
static fopt_status refuse_capture(cudaStream_t stream)
{
    int capturing = 0;
    cudaError_t err = fopt_dev_stream_capturing(stream, &capturing);
    if (err != cudaSuccess)
        return fopt_cuda_fail(err, "cudaStreamIsCapturing", __FILE__, __LINE__);
    if (capturing)
        return fopt_fail(FOPT_ERROR_NOT_SUPPORTED,
                         "fopt_rebind on a stream that is capturing a CUDA graph: a rebind cannot be "
                         "captured; rebind outside the capture (a replayed graph steps the addresses "
                         "bound when it replays)");
    return FOPT_SUCCESS;
}

fopt_status fopt_rebind(fopt_optimizer *opt, const fopt_tensor *tensors, size_t count, cudaStream_t stream)
{
    if (!opt || !tensors)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "optimizer or tensors is NULL");
    if (count != opt->tensor_count)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "rebind with %zu tensors; the optimizer has %zu",
                         count, opt->tensor_count);
    for (size_t k = 0; k < count; k++) {
        const fopt_tensor_entry *e = &opt->entries[k];
        const fopt_tensor *t = &tensors[k];
        if (t->numel != opt->list_numel[k] || fopt_storage_of(t->dtype) != (fopt_storage)e->storage[FOPT_TS_PARAM] ||
            t->group != e->group)
            return fopt_fail(FOPT_ERROR_INVALID_VALUE,
                             "tensor %zu: rebind needs the same numel, dtype and group (%zu, %d, %u)", k,
                             opt->list_numel[k], (int)t->dtype, e->group);
        if (t->numel > 0 && (!t->param || !t->grad))
            return fopt_fail(FOPT_ERROR_INVALID_VALUE, "tensor %zu: %s is NULL with numel %zu", k,
                             t->param ? "grad" : "param", t->numel);
    }
    fopt_grad_alias alias;
    fopt_status status = check_list_buffers(tensors, count, opt->shard_begin, opt->shard_end, &alias);
    if (status != FOPT_SUCCESS)
        return status;
    fopt_device_scope scope;
    if ((status = fopt_device_enter(opt, &scope)) != FOPT_SUCCESS)
        return status;
    fopt_tensor_entry *next = NULL;
    if ((status = refuse_capture(stream)) != FOPT_SUCCESS)
        goto fail;
    if ((status = fopt_check_device_tensors(tensors, count, opt->device)) != FOPT_SUCCESS)
        goto fail;
    next = malloc(count * sizeof *next);
    if (!next) {
        status = fopt_fail(FOPT_ERROR_OUT_OF_MEMORY, "host allocation of %zu bytes failed", count * sizeof *next);
        goto fail;
    }
    memcpy(next, opt->entries, count * sizeof *next);
    for (size_t k = 0; k < count; k++)
        fopt_entry_bind(&next[k], &tensors[k]); /* a shard's entries: their part of the tensor */
    /* In stream order: steps enqueued before read the old entries, later ones the new. The host
     * buffer is staged before the call returns (pageable memory, and no capture: see
     * refuse_capture), so it can go at once. */
    FOPT_CUDA_TRY(fopt_dev_memcpy_async(opt->table_mem, next, count * sizeof *next, stream));
    memcpy(opt->entries, next, count * sizeof *next);
    opt->grad_alias = alias;
    free(next);
    fopt_device_leave(&scope);
    return FOPT_SUCCESS;
fail:
    free(next);
    fopt_device_leave(&scope);
    return status;
}
