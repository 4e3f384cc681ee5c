/* Calls of two host tensors for the buffer-rule suites (tests/test_buffers.c,
 * tests/test_gpu_buffers.c): every slot of every tensor in its own 256-byte cell of one pool,
 * filled deterministically, so that a test can move one pointer, run a CPU _multi entry point and
 * check that a refusal names the cause and leaves the pool as it was. */
#ifndef FUSEDOPT_TEST_BUFFERS_UTIL_H
#define FUSEDOPT_TEST_BUFFERS_UTIL_H

#include <stdbool.h>
#include <stddef.h>

#include "gpu_util.h"

#define BT_N 40 /* elements per tensor */

enum { BT_PARAM, BT_GRAD, BT_MASTER, BT_STATE0, BT_STATE1, BT_STATE2, BT_SLOTS };

/* Optimizer, param dtype and precision of a call. */
enum {
    BT_FP32,            /* AdamW (amsgrad), fp32 params and states */
    BT_BF16_MASTER,     /* AdamW, bf16 params, fp32 master, bf16 states */
    BT_BF16_REMAINDER,  /* AdamW, bf16 params, remainders, fp32 states */
    BT_FP16_MASTER,     /* AdamW, fp16 params, fp32 master, fp32 states */
    BT_BF16_SR,         /* AdamW, bf16 params, stochastic rounding, fp32 states */
    BT_RMS_FP32,        /* RMSprop (momentum, centered), fp32 */
    BT_RMS_BF16_MASTER, /* RMSprop, bf16 params, fp32 master, bf16 states */
    BT_RMS_FP16_MASTER, /* RMSprop, fp16 params, fp32 master, fp32 states */
    BT_VARIANTS
};

typedef struct bt_call {
    gt_cfg cfg;
    fopt_dtype dtype;
    fopt_host_tensor t[2];
    unsigned char *pool, *snap;
} bt_call;

/* A call of variant v; false (nothing allocated) when the variant keeps no such slot. */
bool bt_call_make(bt_call *c, int v, int slot);
void bt_call_free(bt_call *c);
/* Every pointer at its cell (master where the precision keeps one), the pool refilled and
 * snapshotted. */
void bt_call_reset(bt_call *c);
/* Moves tensor k's slot pointer by off bytes. */
void bt_shift(bt_call *c, size_t k, int slot, size_t off);
size_t bt_slot_bytes(const bt_call *c, int slot);
const char *bt_slot_name(const bt_call *c, int slot);
/* Tensor k of `mixed` becomes fp32 (no master) with the param and grad of plain's tensor k. */
void bt_make_fp32(bt_call *mixed, size_t k, const bt_call *plain);
/* One step (step 1) through fopt_*_step_ref_multi (which 0) or fopt_*_step_cpu_multi (1). */
fopt_status bt_call_run(bt_call *c, int which, const fopt_step_options *o);
/* The call is refused with `status`, the message holds every string of the NULL-terminated
 * `needles`, and the pool is unchanged. */
void bt_expect_refused(bt_call *c, int which, const fopt_step_options *o, fopt_status status,
                       const char *const *needles);
/* 256 floats on the heap (free()). */
float *bt_pool_floats(void);

#endif
