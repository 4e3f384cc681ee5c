#include <stdlib.h>
#include <string.h>

#include "buffers_util.h"

#define BT_CELL 256 /* bytes per slot: BT_N elements of up to 4 bytes, and room to move */
#define BT_POOL (2 * BT_SLOTS * BT_CELL)

static void variant_cfg(bt_call *c, int v)
{
    static const fopt_dtype param[BT_VARIANTS] = {FOPT_FLOAT32,  FOPT_BFLOAT16, FOPT_BFLOAT16,
                                                  FOPT_FLOAT16,  FOPT_BFLOAT16, FOPT_FLOAT32,
                                                  FOPT_BFLOAT16, FOPT_FLOAT16};
    c->cfg = v >= BT_RMS_FP32 ? gt_rmsprop() : gt_adamw();
    c->dtype = param[v];
    fopt_precision *pr = gt_precision(&c->cfg);
    pr->master_weights = v == BT_BF16_MASTER || v == BT_BF16_REMAINDER || v == BT_FP16_MASTER ||
                         v == BT_RMS_BF16_MASTER || v == BT_RMS_FP16_MASTER;
    pr->master_remainder = v == BT_BF16_REMAINDER;
    pr->stochastic_rounding = v == BT_BF16_SR;
    pr->state_dtype = v == BT_BF16_MASTER || v == BT_RMS_BF16_MASTER ? FOPT_BFLOAT16 : FOPT_FLOAT32;
    pr->seed = 7;
}

bool bt_call_make(bt_call *c, int v, int slot)
{
    memset(c, 0, sizeof *c);
    variant_cfg(c, v);
    const fopt_precision *pr = gt_precision(&c->cfg);
    if (slot == BT_MASTER && fopt_master_mode_of(pr, c->dtype) == FOPT_MASTER_NONE)
        return false;
    if (slot >= BT_STATE0 && !(gt_states(&c->cfg) >> (slot - BT_STATE0) & 1u))
        return false;
    c->pool = aligned_alloc(64, BT_POOL);
    c->snap = malloc(BT_POOL);
    cr_assert(c->pool && c->snap);
    return true;
}

void bt_call_free(bt_call *c)
{
    free(c->pool);
    free(c->snap);
}

static void **slot_ptr(fopt_host_tensor *t, int slot)
{
    return slot == BT_PARAM ? &t->param
           : slot == BT_GRAD ? (void **)(void *)&t->grad
           : slot == BT_MASTER ? &t->master
                               : &t->state[slot - BT_STATE0];
}

static unsigned char *cell(const bt_call *c, size_t k, int slot)
{
    return c->pool + (k * BT_SLOTS + (size_t)slot) * BT_CELL;
}

void bt_call_reset(bt_call *c)
{
    const fopt_precision *pr = gt_precision(&c->cfg);
    const fopt_master_mode mm = fopt_master_mode_of(pr, c->dtype);
    const unsigned states = gt_states(&c->cfg);
    memset(c->pool, 0, BT_POOL);
    for (size_t k = 0; k < 2; k++) {
        fopt_host_tensor *t = &c->t[k];
        memset(t, 0, sizeof *t);
        t->dtype = c->dtype;
        t->numel = BT_N;
        t->param = cell(c, k, BT_PARAM);
        t->grad = cell(c, k, BT_GRAD);
        t->master = mm != FOPT_MASTER_NONE ? cell(c, k, BT_MASTER) : NULL;
        for (int s = 0; s < FOPT_MAX_STATES; s++)
            t->state[s] = states >> s & 1u ? cell(c, k, BT_STATE0 + s) : NULL;
        for (size_t i = 0; i < BT_N; i++) {
            float p = 0.25f + 0.01f * (float)(i + 7 * k), g = 0.001f * (float)((i * 13 + k) % 17) - 0.008f;
            gt_put(t->param, c->dtype, i, p);
            gt_put((void *)t->grad, c->dtype, i, g);
            if (mm == FOPT_MASTER_F32)
                ((float *)t->master)[i] = gt_get(t->param, c->dtype, i);
        }
    }
    memcpy(c->snap, c->pool, BT_POOL);
}

void bt_shift(bt_call *c, size_t k, int slot, size_t off)
{
    void **p = slot_ptr(&c->t[k], slot);
    *p = (char *)*p + off;
}

size_t bt_slot_bytes(const bt_call *c, int slot)
{
    const fopt_precision *pr = gt_precision((gt_cfg *)&c->cfg);
    if (slot == BT_PARAM || slot == BT_GRAD)
        return gt_dtype_bytes(c->dtype);
    if (slot == BT_MASTER)
        return fopt_master_mode_of(pr, c->dtype) == FOPT_MASTER_F32 ? 4 : 2;
    return gt_dtype_bytes(pr->state_dtype);
}

const char *bt_slot_name(const bt_call *c, int slot)
{
    static const char *const names[BT_SLOTS] = {"param", "grad", "master", "state[0]", "state[1]", "state[2]"};
    (void)c;
    return names[slot];
}

void bt_make_fp32(bt_call *mixed, size_t k, const bt_call *plain)
{
    fopt_host_tensor *t = &mixed->t[k];
    t->dtype = FOPT_FLOAT32;
    t->master = NULL;
    memcpy(t->param, plain->t[k].param, BT_N * 4);
    memcpy((void *)t->grad, plain->t[k].grad, BT_N * 4);
    /* tensor k's cells hold BT_N fp32 values; its states are zero */
    memcpy(mixed->snap, mixed->pool, BT_POOL);
}

fopt_status bt_call_run(bt_call *c, int which, const fopt_step_options *o)
{
    const gt_cfg *g = &c->cfg;
    if (g->adam)
        return which ? fopt_adam_step_cpu_multi(&g->a, 1, c->t, 2, o) : fopt_adam_step_ref_multi(&g->a, 1, c->t, 2, o);
    return which ? fopt_rmsprop_step_cpu_multi(&g->r, 1, c->t, 2, o) : fopt_rmsprop_step_ref_multi(&g->r, 1, c->t, 2, o);
}

void bt_expect_refused(bt_call *c, int which, const fopt_step_options *o, fopt_status status,
                       const char *const *needles)
{
    fopt_status st = bt_call_run(c, which, o);
    const char *msg = fopt_last_error();
    cr_expect_eq(st, status, "%s entry point: %s (%s), expected %s", which ? "cpu" : "ref",
                 fopt_status_string(st), msg, fopt_status_string(status));
    for (const char *const *n = needles; *n; n++)
        cr_expect(strstr(msg, *n), "the message lacks \"%s\": %s", *n, msg);
    cr_expect_eq(memcmp(c->pool, c->snap, BT_POOL), 0, "a refused call changed a buffer: %s", msg);
}

float *bt_pool_floats(void)
{
    float *p = aligned_alloc(64, 256 * sizeof(float));
    cr_assert(p);
    memset(p, 0, 256 * sizeof(float));
    return p;
}
