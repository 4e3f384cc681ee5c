/* Golden vectors of format 2, computed by real PyTorch (scripts/gen_golden.py mixed|amp):
 * multi-tensor cases with fp16/bf16 params, bf16 states, fp32 master weights, AMP loss scaling,
 * the inf/NaN check and global-norm clipping. A loader for tests/data/golden_{mixed,amp}.bin and a
 * replayer that drives any step function with the signature of fopt_adam_step_ref_multi() /
 * fopt_rmsprop_step_ref_multi() (the reference, the fast CPU path, host-run GPU kernels).
 *
 * The file format and the emulated semantics are described at the top of scripts/gen_golden.py.
 * State slots as in golden.h:
 *   Adam     0 exp_avg      1 exp_avg_sq        2 max_exp_avg_sq (amsgrad only)
 *   RMSprop  0 square_avg   1 momentum_buffer   2 grad_avg
 *            (momentum_buffer only when momentum > 0, grad_avg only when centered)
 * Only the used slots are stored in the file; unused ones are NULL here and for the step
 * function. 16-bit values (fp16, bf16) are kept as their raw bits (uint16_t). */
#ifndef FUSEDOPT_TEST_GOLDEN_EXT_H
#define FUSEDOPT_TEST_GOLDEN_EXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fusedopt.h"
#include "golden.h" /* GOLDEN_ADAM, GOLDEN_RMSPROP, golden_rel_err(), golden_slot_used() */

/* Per-step flags of the file. */
enum {
    GOLDEN_EXT_SCALE = 1,     /* grad_scale is passed (else NULL, and the stored scale is 1) */
    GOLDEN_EXT_CHECK_INF = 2, /* found_inf is asked for (else NULL: no check) */
    GOLDEN_EXT_WANT_NORM = 4  /* grad_norm is asked for (else NULL) */
};

/* Relative tolerance of grad_norm: the library sums in double in another order than torch. */
#define GOLDEN_EXT_NORM_TOL 1e-6

typedef struct golden_ext_step {
    uint32_t flags;       /* GOLDEN_EXT_* */
    float grad_scale;     /* the loss scale S (1 when GOLDEN_EXT_SCALE is clear) */
    double max_grad_norm; /* 0: no clipping */
    int32_t found_inf;    /* PyTorch's: 1 when some unscaled grad is inf/NaN (the step is
                             skipped); only with GOLDEN_EXT_CHECK_INF */
    float grad_norm;      /* PyTorch's float32(global L2 norm of the unscaled grads, in float64);
                             stored even when not asked for; non-finite when found_inf is 1 (not
                             compared then) */
} golden_ext_step;

typedef struct golden_ext_tensor {
    size_t numel;
    const void *param0; /* numel elements in the case's dtype: the parameter before step 1 */
    const void *grads;  /* steps x numel in dtype: the SCALED raw grads of step k at element
                           offset k*numel */
    const void *param;  /* expected param after the last step, in dtype */
    const float *master;  /* expected fp32 master (master weights only), else NULL */
    const void *state[3]; /* expected states in state_dtype, NULL where unused */
} golden_ext_tensor;

typedef struct golden_ext_case {
    char name[64];
    int optimizer;               /* GOLDEN_ADAM or GOLDEN_RMSPROP */
    fopt_adam_config adam;       /* when GOLDEN_ADAM; precision filled in */
    fopt_rmsprop_config rmsprop; /* when GOLDEN_RMSPROP; precision filled in */
    fopt_dtype dtype;            /* of params and grads */
    fopt_dtype state_dtype;      /* FOPT_FLOAT32 or FOPT_BFLOAT16 */
    bool master_weights;         /* only with a 16-bit dtype */
    uint32_t steps;
    size_t tensor_count;
    golden_ext_step *step;     /* [steps] */
    golden_ext_tensor *tensor; /* [tensor_count] */
    void *storage_;            /* owns every array above */
} golden_ext_case;

/* Reads FOPT_TEST_DATA_DIR/file_name; *cases gets an array to release with golden_ext_free().
 * Returns the number of cases (>= 1). Any format error fails the calling test (cr_assert). */
size_t golden_ext_load(const char *file_name, golden_ext_case **cases);
void golden_ext_free(golden_ext_case *cases, size_t count);

/* Whether state slot `slot` is used, and its PyTorch name: golden_slot_used(c->optimizer, &c->adam,
 * &c->rmsprop, slot) and golden_slot_name(c->optimizer, slot) of golden.h. */

/* Bytes per element of a storage type (4 or 2). */
size_t golden_ext_dtype_size(fopt_dtype dt);
/* The exact fp32 value of a 16-bit fp16 or bf16 bit pattern. */
float golden_ext_to_float(uint16_t bits, fopt_dtype dt);

/* Distance of two fp16/bf16 arrays in units of the type's last place: 0 where the upcast values
 * are equal (+0 and -0 too, or both NaN), else the number of representable values between them
 * plus one (sign-magnitude order), UINT32_MAX for NaN against a number or an infinity against a
 * finite value. Returns the largest distance; *differing (if not NULL) gets the count of elements
 * whose distance is not 0. */
uint32_t golden_ext_ulp16(const uint16_t *a, const uint16_t *b, size_t n, fopt_dtype dt,
                          size_t *differing);

typedef fopt_status (*golden_ext_adam_fn)(const fopt_adam_config *cfg, int64_t step,
                                          const fopt_host_tensor *tensors, size_t count,
                                          const fopt_step_options *opts);
typedef fopt_status (*golden_ext_rmsprop_fn)(const fopt_rmsprop_config *cfg, int64_t step,
                                             const fopt_host_tensor *tensors, size_t count,
                                             const fopt_step_options *opts);

/* What a replay found. Errors are maxima over the case (or, in golden_ext_check_file()'s total,
 * over the file); the counts are sums.
 *
 * "List-relative" errors apply golden_rel_err()'s measure to one kind of array (param, master or
 * one state slot) of the whole tensor list as one flat vector: max |got - want| over every tensor
 * divided by the largest finite |want| over every tensor (non-finite values must match exactly,
 * else +inf). The multi-tensor step treats its list as one parameter vector, and a tensor of one
 * element would otherwise turn a cancellation in, say, exp_avg into a large relative error. */
typedef struct golden_ext_result {
    int64_t steps_counted;       /* updates the replayer counted (found_inf 0 or not asked) */
    uint32_t found_inf_mismatch; /* steps whose found_inf differs from PyTorch's (or unwritten) */
    uint32_t skipped_changed;    /* skipped steps (found_inf 1) that changed a param/master/state */
    uint32_t norm_compared;      /* steps whose grad_norm was compared */
    double norm_err;             /* worst |grad_norm - torch| / |torch| over those steps */
    double fp32_err;             /* worst list-relative error over the fp32 kinds (params of fp32
                                    cases, masters, fp32 states) */
    char fp32_what[64];          /* e.g. "exp_avg (t2)": the kind, and the tensor of the largest
                                    difference ("" if none) */
    double fp32_tensor_err;      /* worst golden_rel_err() of one fp32 tensor (informative) */
    char fp32_tensor_what[64];
    double rel16_err;            /* worst list-relative error over the 16-bit kinds (params of
                                    fp16/bf16 cases, bf16 states), on the upcast values */
    char rel16_what[64];
    uint32_t ulp16;              /* worst golden_ext_ulp16() of one 16-bit tensor */
    char ulp16_what[64];
    size_t diff16;               /* 16-bit elements that differ from PyTorch's */
    size_t count16;              /* 16-bit elements compared */
    size_t count32;              /* fp32 elements compared */
} golden_ext_result;

/* Replays every step of the case through `adam` or `rmsprop` (the one the case needs): the
 * tensors start from param0 (master = its exact upcast) with zeroed states; each step passes the
 * stored grads and, when the step has any option, an fopt_step_options with grad_scale,
 * max_grad_norm and the grad_norm / found_inf out-pointers the step asks for (else opts = NULL).
 * The step counter starts at 1 and advances after a step only when found_inf was not asked for or
 * came back 0. Per step found_inf must equal PyTorch's and grad_norm is compared (relative) when
 * PyTorch's found_inf is 0; a skipped step must leave every buffer bit-identical. At the end every
 * param, master and state is compared (see golden_ext_result). A step function that does not
 * return FOPT_SUCCESS fails the calling test. */
void golden_ext_replay(const golden_ext_case *c, golden_ext_adam_fn adam,
                       golden_ext_rmsprop_fn rmsprop, golden_ext_result *result);

/* Tolerances of one class of cases. */
typedef struct golden_ext_tol {
    double fp32;        /* fp32_err (list-relative) */
    double rel16;       /* rel16_err (list-relative, 16-bit kinds) */
    uint32_t ulp16;     /* ulp16; UINT32_MAX: not checked */
    double diff16_frac; /* diff16 <= max(1, diff16_frac * count16) */
} golden_ext_tol;

/* Loads file_name, replays every case and cr_expect()s, per case: found_inf all equal, no
 * skipped step changing anything, grad_norm within GOLDEN_EXT_NORM_TOL, and the final arrays
 * within `bf16_states` for cases with bf16 states, within `fp32_states` otherwise (bf16 states
 * turn fp32 differences of an ulp into 16-bit ones of an ulp, which then feed back into every
 * later step). Returns the worst fp32 error; *total (if not NULL) gets the file's combined
 * result. With FOPT_GOLDEN_VERBOSE set in the environment, prints every case's figures to stderr
 * under label. */
double golden_ext_check_file(const char *file_name, golden_ext_adam_fn adam,
                             golden_ext_rmsprop_fn rmsprop, const golden_ext_tol *fp32_states,
                             const golden_ext_tol *bf16_states, const char *label,
                             golden_ext_result *total);

#endif
