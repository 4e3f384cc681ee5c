/* The property-based layer over the GPU optimizer's public API (tests/test_gpu_props.c): seeded
 * random sequences of create, step, step_ex, set_lr, set_group_lr/weight_decay, rebind, save,
 * load, state_copy, set_step_count and destroy, with valid and invalid arguments, faults injected
 * at random device calls (fopt_emu_fail_at) and, on capturable optimizers, captured calls replayed
 * from a graph. A model of everything observable runs beside the optimizer: every device buffer
 * the sequence allocated (params, grads, their guard bands), every state slot and master through
 * fopt_state_copy(), the step count, each group's lr and weight decay (the checkpoint header) and
 * the device outputs of fopt_step_ex (grad_norm, found_inf). A step of the model is the CPU
 * reference (fopt_*_step_ref_multi over the shard's pieces, one call per group). After every call:
 *   - it failed (or was expected to fail): everything observable is as before, bit for bit, and no
 *     device memory leaked;
 *   - it succeeded: everything observable is the model's, bit for bit (NaNs: any payload).
 * Where the contract is not settled (a loss scale of 0; misaligned or aliased tensors without
 * elements, or outside a shard's range) only "no crash, no sanitizer report, failure changes
 * nothing" is required; a success there makes the model adopt what the optimizer holds.
 *
 * On a failure the message names the seed, the call index and the call; FOPT_PROPS_SEED=<seed>
 * replays that one sequence. A crash (sanitizer report) prints the same from the sanitizer's death
 * callback. */
#ifndef FUSEDOPT_TEST_PROPS_H
#define FUSEDOPT_TEST_PROPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gpu_util.h"

/* Known defects of 0.2, each found by this layer on 0.2's code (the closing note of issue 16 gives
 * the seeds). Fixed and checked now: 1 (fopt_rebind is refused during a capture), 2 (the device
 * refuses a step at INT64_MAX; fopt_step_count() then says -1), 5 (fopt_step_ex's outputs are
 * written by its last launch only). While a defect's bit is set in
 * FOPT_PROPS_KNOWN_DEFECTS, the operation that triggers it is left out of the sequences (or its
 * check is relaxed); after merging the fix, clear the bit (or the whole list: 0). The environment
 * variable FOPT_PROPS_DEFECTS=1,2,5,a (or "all") enables the left-out checks without a rebuild.
 *   PP_DEFECT_1: fopt_rebind inside a graph capture (its staged host table is freed before the
 *                graph replays it): captured rebinds are not generated.
 *   PP_DEFECT_2: a step at step count INT64_MAX where the count lives on the device (capturable,
 *                or step_ex with found_inf) wraps the count: such steps are not generated (a
 *                step_ex there drops found_inf, capturable optimizers get no count above 2^53
 *                and no capture within 64 steps of INT64_MAX). With the check on, a step at
 *                INT64_MAX must fail, or succeed without stepping (outputs aside).
 *   PP_DEFECT_5: a failing fopt_step_ex writes *found_inf and *grad_norm anyway: after a failed
 *                step_ex the device outputs are not compared.
 *   PP_DEFECT_ALIGN (letter a in FOPT_PROPS_DEFECTS): a param pointer that is not a multiple of
 *                its element size was accepted, and creating a bf16 optimizer with masters over it
 *                loaded misaligned uint16 in kernels/master.cu (UBSan). Fixed (src/common/buffers.c:
 *                refused, as the same tensor twice and a param that is its grad are): no longer
 *                listed, params one byte off are generated and must be refused. */
#define PP_DEFECT_1 1u
#define PP_DEFECT_2 2u
#define PP_DEFECT_5 16u
#define PP_DEFECT_ALIGN 256u
#ifndef FOPT_PROPS_KNOWN_DEFECTS
#define FOPT_PROPS_KNOWN_DEFECTS 0
#endif

#define PP_MAX_TENSORS 4

/* One configuration the sequences run over. */
typedef struct pp_config {
    const char *name;
    gt_cfg cfg;
    gt_spec spec[PP_MAX_TENSORS];
    size_t count;
    bool shard;           /* create_shard over [begin, end) of the concatenation */
    uint64_t begin, end;
} pp_config;

/* Runs the sequences of one configuration: `seeds` seeds (config_index + config_count * i,
 * i = 0..), `calls` random calls each; FOPT_PROPS_SEED, FOPT_PROPS_SEEDS, FOPT_PROPS_CALLS and
 * FOPT_TEST_LIGHT adjust them (tests/test_gpu_props.c). */
void pp_run_config(const pp_config *c, size_t config_index, size_t config_count, int seeds, int calls);

#endif
