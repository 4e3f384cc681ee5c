/* The property-based layer over the GPU optimizer's public API (issue 16), on the emulated device:
 * seeded random sequences of calls with valid and invalid arguments, faults injected at random
 * device calls and captured calls replayed from graphs, against a model run on the CPU reference
 * (tests/props.h says what is checked after each call). One test per configuration; each runs
 * PROPS_SEEDS seeds of PROPS_CALLS calls (half the seeds with FOPT_TEST_LIGHT=1). Environment:
 *   FOPT_PROPS_SEEDS=n   n seeds per configuration (a local soak);
 *   FOPT_PROPS_CALLS=n   n calls per sequence;
 *   FOPT_PROPS_SEED=s    only seed s (the configuration is s modulo the number of configurations),
 *                        to replay a failure;
 *   FOPT_PROPS_DEFECTS=1,2,5 or all: run the checks of known defects that FOPT_PROPS_KNOWN_DEFECTS
 *                        (tests/props.h) still leaves out.
 * SKIPs without the emulated device (fault injection). */
#include <criterion/criterion.h>

#include "props.h"

TestSuite(gpu_props, .init = gt_require_emulation);

#define PROPS_SEEDS 32
#define PROPS_CALLS 100

static gt_cfg with_precision(gt_cfg c, fopt_precision p, bool capturable)
{
    *gt_precision(&c) = p;
    *gt_capturable(&c) = capturable;
    return c;
}

static gt_cfg adam_amsgrad(void)
{
    gt_cfg c = gt_adam();
    c.a.amsgrad = true;
    return c;
}

static gt_cfg rmsprop_plain(void)
{
    gt_cfg c = gt_rmsprop();
    c.r.centered = false;
    c.r.momentum = 0.0;
    return c;
}

static gt_cfg rmsprop_momentum(void)
{
    gt_cfg c = gt_rmsprop();
    c.r.centered = false;
    return c;
}

static const fopt_precision P_F32 = {FOPT_FLOAT32, false, false, false, 0};
static const fopt_precision P_MASTER = {FOPT_FLOAT32, true, false, false, 0};
static const fopt_precision P_MASTER_BF16_STATES = {FOPT_BFLOAT16, true, false, false, 0};
static const fopt_precision P_REMAINDER = {FOPT_FLOAT32, true, false, true, 0};
static const fopt_precision P_SR = {FOPT_FLOAT32, false, true, false, 7};

#define F32 FOPT_FLOAT32
#define BF16 FOPT_BFLOAT16
#define F16 FOPT_FLOAT16

/* The configurations; seed s runs configuration s % PROPS_CONFIGS. */
static pp_config config(size_t i)
{
    switch (i) {
    case 0: return (pp_config){"adam-amsgrad-fp32-groups", adam_amsgrad(), {{37, F32, 0, 0}, {300, F32, 1, 1}, {0, F32, 0, 0}}, 3, false, 0, 0};
    case 1: return (pp_config){"adamw-amsgrad-fp32-capturable", with_precision(gt_adamw(), P_F32, true),
                               {{64, F32, 0, 0}, {19, F32, 0, 3}, {40, F32, 1, 0}}, 3, false, 0, 0};
    case 2: return (pp_config){"adamw-bf16-master-bf16-states", with_precision(gt_adamw(), P_MASTER_BF16_STATES, false),
                               {{100, BF16, 0, 0}, {33, BF16, 1, 1}}, 2, false, 0, 0};
    case 3: return (pp_config){"rmsprop-centered-momentum-fp32", gt_rmsprop(), {{50, F32, 0, 0}, {129, F32, 2, 1}}, 2, false, 0, 0};
    case 4: return (pp_config){"rmsprop-bf16-remainder-capturable", with_precision(rmsprop_plain(), P_REMAINDER, true),
                               {{80, BF16, 0, 0}, {17, BF16, 0, 2}}, 2, false, 0, 0};
    case 5: return (pp_config){"adam-fp32-shard", gt_adam(), {{40, F32, 0, 0}, {50, F32, 1, 0}, {30, F32, 0, 1}}, 3, true, 16, 96};
    case 6: return (pp_config){"rmsprop-momentum-bf16-master-shard", with_precision(rmsprop_momentum(), P_MASTER, false),
                               {{20, BF16, 0, 0}, {45, BF16, 0, 0}}, 2, true, 8, 48};
    case 7: return (pp_config){"adam-mixed-fp32-bf16-master", with_precision(gt_adam(), P_MASTER, false),
                               {{30, F32, 0, 0}, {70, BF16, 1, 0}}, 2, false, 0, 0};
    case 8: return (pp_config){"adam-bf16-stochastic-rounding", with_precision(gt_adam(), P_SR, false),
                               {{90, BF16, 0, 0}, {31, BF16, 0, 1}}, 2, false, 0, 0};
    default: return (pp_config){"adamw-fp16-master-capturable", with_precision(gt_adamw(), P_MASTER, true),
                                {{48, F16, 0, 0}, {21, F16, 1, 1}}, 2, false, 0, 0};
    }
}
#define PROPS_CONFIGS 10

static void run(size_t i)
{
    static pp_config c; /* the sanitizer death callback may read it after the test */
    c = config(i);
    pp_run_config(&c, i, PROPS_CONFIGS, PROPS_SEEDS, PROPS_CALLS);
}

Test(gpu_props, adam_amsgrad_fp32_with_groups_and_an_empty_tensor_keeps_the_model) { run(0); }
Test(gpu_props, capturable_adamw_with_captured_steps_and_replays_keeps_the_model) { run(1); }
Test(gpu_props, adamw_bf16_params_with_master_and_bf16_states_keeps_the_model) { run(2); }
Test(gpu_props, centered_rmsprop_with_momentum_keeps_the_model) { run(3); }
Test(gpu_props, capturable_rmsprop_with_bf16_remainders_keeps_the_model) { run(4); }
Test(gpu_props, adam_shard_keeps_the_model_of_its_range) { run(5); }
Test(gpu_props, rmsprop_shard_with_bf16_masters_keeps_the_model_of_its_range) { run(6); }
Test(gpu_props, adam_over_fp32_and_bf16_params_keeps_the_model) { run(7); }
Test(gpu_props, adam_bf16_stochastic_rounding_keeps_the_model) { run(8); }
Test(gpu_props, capturable_adamw_fp16_masters_keeps_the_model) { run(9); }
