/* Checkpoints of the GPU optimizer and per-tensor state copies.
 *
 * A checkpoint is a header, then the state allocation byte for byte (every state buffer, then
 * the fp32 master copies or remainders). The header names the optimizer kind, its state slots,
 * its precision settings, the tensor list (count, and a hash of each tensor's numel, dtype and
 * group), the range of the list's elements it holds (a shard's; [0, total) otherwise), the step
 * count and every group's lr and weight decay; a checksum covers the header and the payload, so
 * any truncation, bit flip or edit is rejected before anything changes. The header keeps the
 * precision settings as given; a load compares them as they act on the tensor list
 * (precision_acting), so that settings no tensor uses do not refuse a checkpoint. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "optimizer.h"

static const char state_magic[8] = {'F', 'O', 'P', 'T', 'S', 'T', 'A', 'T'};

uint64_t fopt_state_checksum(const state_header *h, const void *payload, size_t n)
{
    state_header copy = *h;
    copy.checksum = 0;
    uint64_t x = fopt_hash_bytes(0xcbf29ce484222325ull, &copy, sizeof copy);
    /* 8 bytes at a time: a checkpoint can be gigabytes. */
    const unsigned char *b = payload;
    x ^= n;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, b + i, 8);
        x = (x ^ w) * 0x100000001b3ull;
        x ^= x >> 29;
    }
    return fopt_hash_bytes(x, b + i, n - i);
}

static uint32_t precision_bits(const fopt_precision *p)
{
    return (p->master_weights ? 1u : 0u) | (p->master_remainder ? 2u : 0u) | (p->stochastic_rounding ? 4u : 0u);
}

size_t fopt_state_size(const fopt_optimizer *opt)
{
    return opt ? sizeof(state_header) + opt->plan.state_bytes : 0;
}

fopt_status fopt_state_save(const fopt_optimizer *copt, void *host_buf, size_t size)
{
    if (!copt || !host_buf)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "optimizer or buffer is NULL");
    if (size < fopt_state_size(copt))
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "buffer holds %zu bytes; the state needs %zu", size,
                         fopt_state_size(copt));
    /* reading the device's count and hyper-parameters back is not an observable change */
    fopt_optimizer *opt = (fopt_optimizer *)copt;
    fopt_status status = fopt_sync_step(opt);
    if (status != FOPT_SUCCESS)
        return status;
    fopt_device_scope scope;
    if ((status = fopt_device_enter(opt, &scope)) != FOPT_SUCCESS)
        return status;
    unsigned char *payload = (unsigned char *)host_buf + sizeof(state_header);
    double lr[FOPT_MAX_GROUPS], wd[FOPT_MAX_GROUPS];
    memcpy(lr, opt->lr, sizeof lr);
    memcpy(wd, opt->wd, sizeof wd);
    FOPT_CUDA_TRY(fopt_dev_synchronize());
    if (opt->capturable) { /* a captured schedule may have written them */
        FOPT_CUDA_TRY(fopt_dev_memcpy(lr, fopt_work_hparams(opt)->lr, sizeof lr));
        FOPT_CUDA_TRY(fopt_dev_memcpy(wd, fopt_work_hparams(opt)->wd, sizeof wd));
    }
    if (opt->plan.state_bytes > 0)
        FOPT_CUDA_TRY(fopt_dev_memcpy(payload, opt->state_mem, opt->plan.state_bytes));
    fopt_device_leave(&scope);

    const fopt_precision *pr = fopt_cfg_precision(opt->d, &opt->cfg);
    state_header h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, state_magic, sizeof h.magic);
    h.version = FOPT_VERSION_NUMBER;
    h.header_bytes = sizeof h;
    h.kind = (uint32_t)opt->d->kind;
    h.states = opt->plan.states;
    h.state_dtype = (uint32_t)pr->state_dtype;
    h.precision = precision_bits(pr);
    h.seed = pr->seed;
    h.tensor_count = opt->tensor_count;
    h.list_hash = opt->list_hash;
    h.shard_begin = opt->shard_begin;
    h.shard_end = opt->shard_end;
    h.state_bytes = opt->plan.state_bytes;
    h.step = opt->step;
    h.group_count = opt->group_count;
    memcpy(h.lr, lr, sizeof lr);
    memcpy(h.wd, wd, sizeof wd);
    h.checksum = fopt_state_checksum(&h, payload, opt->plan.state_bytes);
    memcpy(host_buf, &h, sizeof h);
    return FOPT_SUCCESS;
fail:
    fopt_device_leave(&scope);
    return status;
}

/* The precision settings as they act on the optimizer's tensor list: a setting that no tensor of
 * the list uses reads as off, so that checkpoints compare only what changes the state bytes
 * (state_dtype; master_weights where fp16/bf16 params are, master_remainder where bf16 params
 * are) or the steps (stochastic_rounding and its seed where bf16 params without masters are). */
static fopt_precision precision_acting(const fopt_optimizer *opt, fopt_precision p)
{
    bool has16 = false, has_bf16 = false;
    for (size_t k = 0; k < opt->tensor_count; k++) {
        has16 |= opt->entries[k].storage[FOPT_TS_PARAM] != FOPT_ST_F32;
        has_bf16 |= opt->entries[k].storage[FOPT_TS_PARAM] == FOPT_ST_BF16;
    }
    p.stochastic_rounding = p.stochastic_rounding && !p.master_weights && has_bf16;
    p.master_remainder = p.master_remainder && p.master_weights && has_bf16;
    p.master_weights = p.master_weights && has16;
    if (!p.stochastic_rounding)
        p.seed = 0;
    return p;
}

/* A precision setting's value as the message shows it: a dtype, on/off, or the seed. */
static void setting_text(const char *name, uint64_t v, char *out, size_t n)
{
    if (strcmp(name, "state_dtype") == 0)
        snprintf(out, n, "%s", v == FOPT_FLOAT32 ? "FOPT_FLOAT32" : v == FOPT_BFLOAT16 ? "FOPT_BFLOAT16" : "unknown");
    else if (strcmp(name, "seed") == 0)
        snprintf(out, n, "%" PRIu64, v);
    else
        snprintf(out, n, "%s", v ? "on" : "off");
}

/* FOPT_ERROR_INVALID_VALUE naming the first setting acting on the list that differs between the
 * checkpoint h and the optimizer, with both values. */
static fopt_status precision_compare(const fopt_optimizer *opt, const state_header *h)
{
    fopt_precision c;
    memset(&c, 0, sizeof c);
    c.state_dtype = (fopt_dtype)h->state_dtype;
    c.master_weights = h->precision & 1u;
    c.master_remainder = h->precision >> 1 & 1u;
    c.stochastic_rounding = h->precision >> 2 & 1u;
    c.seed = h->seed;
    /* settings no optimizer can have (fopt_precision_config_check) are not ignored as inactive */
    if ((h->precision & ~7u) != 0 || (c.master_remainder && !c.master_weights) ||
        (c.stochastic_rounding && c.master_weights))
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "checkpoint with invalid precision settings (flags %#x)",
                         (unsigned)h->precision);
    c = precision_acting(opt, c);
    const fopt_precision m = precision_acting(opt, *fopt_cfg_precision(opt->d, &opt->cfg));
    const struct {
        const char *name, *what;
        uint64_t ckpt, mine;
    } set[] = {
        {"state_dtype", "the storage of every state", (uint64_t)c.state_dtype, (uint64_t)m.state_dtype},
        {"master_weights", "the fp16/bf16 params' master copies", c.master_weights, m.master_weights},
        {"master_remainder", "the bf16 params' master copies", c.master_remainder, m.master_remainder},
        {"stochastic_rounding", "how the bf16 params are rounded", c.stochastic_rounding, m.stochastic_rounding},
        {"seed", "the bf16 params' stochastic rounding", c.seed, m.seed},
    };
    for (size_t i = 0; i < sizeof set / sizeof set[0]; i++) {
        if (set[i].ckpt == set[i].mine)
            continue;
        char a[32], b[32];
        setting_text(set[i].name, set[i].ckpt, a, sizeof a);
        setting_text(set[i].name, set[i].mine, b, sizeof b);
        return fopt_fail(FOPT_ERROR_INVALID_VALUE,
                         "checkpoint with other precision settings: precision.%s (%s) is %s in the checkpoint, "
                         "%s in this optimizer", set[i].name, set[i].what, a, b);
    }
    return FOPT_SUCCESS;
}

fopt_status fopt_state_load(fopt_optimizer *opt, const void *host_buf, size_t size)
{
    if (!opt || !host_buf)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "optimizer or buffer is NULL");
    state_header h;
    if (size < sizeof h)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "buffer of %zu bytes is too small for a checkpoint", size);
    memcpy(&h, host_buf, sizeof h);
    if (memcmp(h.magic, state_magic, sizeof h.magic) != 0 || h.header_bytes != sizeof h)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "not a fusedopt checkpoint");
    if (h.version != FOPT_VERSION_NUMBER)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "checkpoint from library version %u, this is %u",
                         h.version, (unsigned)FOPT_VERSION_NUMBER);
    if (h.kind != (uint32_t)opt->d->kind || h.states != opt->plan.states)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE,
                         "checkpoint from another optimizer or variant (kind %u states %u, this is kind %d states %u)",
                         h.kind, h.states, (int)opt->d->kind, opt->plan.states);
    if (h.tensor_count != opt->tensor_count || h.list_hash != opt->list_hash || h.group_count != opt->group_count)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "checkpoint over another tensor list");
    if (h.shard_begin != opt->shard_begin || h.shard_end != opt->shard_end)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE,
                         "checkpoint holds elements [%" PRIu64 ", %" PRIu64 ") of the list; this optimizer "
                         "holds [%" PRIu64 ", %" PRIu64 ")", h.shard_begin, h.shard_end, opt->shard_begin,
                         opt->shard_end);
    /* the same list: the same dtypes, so the same settings act on both */
    fopt_status status = precision_compare(opt, &h);
    if (status != FOPT_SUCCESS)
        return status;
    if (h.state_bytes != opt->plan.state_bytes)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "checkpoint of %" PRIu64 " state bytes; this optimizer has %zu",
                         h.state_bytes, opt->plan.state_bytes);
    if (size - sizeof h < h.state_bytes)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "checkpoint is truncated");
    const unsigned char *payload = (const unsigned char *)host_buf + sizeof h;
    if (fopt_state_checksum(&h, payload, h.state_bytes) != h.checksum)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "checkpoint is corrupted (checksum mismatch)");
    if (h.step < 0)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "checkpoint has an invalid step count");
    for (uint32_t g = 0; g < FOPT_MAX_GROUPS; g++)
        if (fopt_group_values_check(opt->d, &opt->cfg, h.lr[g], h.wd[g]) != FOPT_SUCCESS)
            return fopt_fail(FOPT_ERROR_INVALID_VALUE, "checkpoint has an invalid lr or weight decay (group %u)", g);

    fopt_device_scope scope;
    if ((status = fopt_device_enter(opt, &scope)) != FOPT_SUCCESS)
        return status;
    fopt_device_hparams hp;
    memset(&hp, 0, sizeof hp);
    hp.step = h.step;
    memcpy(hp.lr, h.lr, sizeof hp.lr);
    memcpy(hp.wd, h.wd, sizeof hp.wd);
    /* Enqueued steps must not run after (or during) the copy. The counters go first, and back
     * if the state's copy fails, so that a failed load leaves the device as it was. */
    fopt_device_hparams old;
    FOPT_CUDA_TRY(fopt_dev_synchronize());
    FOPT_CUDA_TRY(fopt_dev_memcpy(&old, fopt_work_hparams(opt), sizeof old));
    FOPT_CUDA_TRY(fopt_dev_memcpy(fopt_work_hparams(opt), &hp, sizeof hp));
    if (h.state_bytes > 0) {
        cudaError_t err = fopt_dev_memcpy(opt->state_mem, payload, h.state_bytes);
        if (err != cudaSuccess) {
            status = fopt_cuda_fail(err, "fopt_dev_memcpy(opt->state_mem, payload, h.state_bytes)", __FILE__,
                                    __LINE__);
            (void)fopt_dev_memcpy(fopt_work_hparams(opt), &old, sizeof old);
            goto fail;
        }
    }
    fopt_device_leave(&scope);
    opt->step = h.step;
    opt->step_refused = 0; /* hp.refused is 0 too */
    opt->step_on_device = opt->capturable;
    memcpy(opt->lr, h.lr, sizeof h.lr);
    memcpy(opt->wd, h.wd, sizeof h.wd);
    return FOPT_SUCCESS;
fail:
    fopt_device_leave(&scope);
    return status;
}

/* Why a slot is not kept for a tensor: the setting that would keep it. */
static void slot_not_kept(const fopt_optimizer *opt, size_t tensor, fopt_slot slot, char *out, size_t n)
{
    if (slot != FOPT_SLOT_MASTER)
        snprintf(out, n, "%s: %s keeps it %s", opt->d->state_names[slot], opt->d->name, opt->d->state_kept[slot]);
    else
        snprintf(out, n, "master copy (slot %d): %s", (int)slot,
                 opt->entries[tensor].storage[FOPT_TS_PARAM] == FOPT_ST_F32 ? "fp32 params keep no master copy"
                                                                           : "precision.master_weights is off");
}

fopt_status fopt_state_copy(fopt_optimizer *opt, size_t tensor, fopt_slot slot, void *buf, bool into_optimizer)
{
    if (!opt || !buf)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "optimizer or buffer is NULL");
    if (tensor >= opt->tensor_count)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "tensor %zu; the optimizer has %zu", tensor, opt->tensor_count);
    if ((unsigned)slot > FOPT_SLOT_MASTER)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "unknown slot %d", (int)slot);
    const fopt_tensor_entry *e = &opt->entries[tensor];
    void *dev = e->slot[slot]; /* fopt_slot numbers the first slots of an entry (FOPT_TS_*) */
    /* Kept or not by the config and the dtype, not by the pointer, which is NULL where the
     * optimizer holds no state byte at all (a shard of an empty range): one answer whatever the
     * tensor's size, also 0 or outside a shard's range. */
    const fopt_precision *pr = fopt_cfg_precision(opt->d, &opt->cfg);
    const bool kept = slot == FOPT_SLOT_MASTER ? pr->master_weights && e->storage[FOPT_TS_PARAM] != FOPT_ST_F32
                                               : (opt->plan.states >> slot & 1u) != 0;
    if (!kept) {
        char why[128];
        slot_not_kept(opt, tensor, slot, why, sizeof why);
        return fopt_fail(FOPT_ERROR_INVALID_VALUE, "tensor %zu: the optimizer keeps no %s", tensor, why);
    }
    size_t bytes = (size_t)e->numel * fopt_storage_bytes((fopt_storage)e->storage[slot]);
    return into_optimizer ? fopt_sync_copy(opt, dev, buf, bytes) : fopt_sync_copy(opt, buf, dev, bytes);
}
