/* Golden vectors computed by real PyTorch (scripts/gen_golden.py, torch.optim single-tensor path):
 * a loader for tests/data/golden_*.bin and a replayer that runs a case through any step function
 * with the reference's signature (the CPU reference, the fast CPU path, host-run GPU kernels).
 *
 * The file format is described at the top of scripts/gen_golden.py. State slots are the public
 * fopt_slot numbers (include/fusedopt.h):
 *   Adam     0 exp_avg      1 exp_avg_sq        2 max_exp_avg_sq (amsgrad only)
 *   RMSprop  0 square_avg   1 momentum_buffer   2 grad_avg
 *            (momentum_buffer only when momentum > 0, grad_avg only when centered)
 * Unused slots hold zeros in the file and are passed as NULL by the replayer. */
#ifndef FUSEDOPT_TEST_GOLDEN_H
#define FUSEDOPT_TEST_GOLDEN_H

#include <stddef.h>
#include <stdint.h>

#include "fusedopt.h"

enum { GOLDEN_ADAM = 0, GOLDEN_RMSPROP = 1 };

typedef struct golden_case {
    char name[64];
    int optimizer;               /* GOLDEN_ADAM or GOLDEN_RMSPROP */
    fopt_adam_config adam;       /* when optimizer == GOLDEN_ADAM */
    fopt_rmsprop_config rmsprop; /* when optimizer == GOLDEN_RMSPROP */
    int64_t first_step;          /* step number of the first update (Adam; 1 for RMSprop) */
    uint32_t steps;
    size_t n;
    float *param0, *state0[3]; /* initial parameter and state */
    float *grads;              /* steps * n: the raw gradient of step k at grads + k*n */
    float *param, *state[3];   /* PyTorch's parameter and state after the last step */
    float *storage_;           /* owns every array above */
} golden_case;

/* Reads FOPT_TEST_DATA_DIR/file_name; *cases gets an array to release with golden_free().
 * Returns the number of cases (>= 1). Any format error fails the calling test (cr_assert). */
size_t golden_load(const char *file_name, golden_case **cases);
void golden_free(golden_case *cases, size_t count);

/* Whether state slot `slot` (0..2) is used by the case's variant, and its PyTorch name. */
int golden_state_used(const golden_case *c, int slot);
const char *golden_state_name(const golden_case *c, int slot);
/* The same from an optimizer and its configs (golden_ext.c's cases have these fields too). */
int golden_slot_used(int optimizer, const fopt_adam_config *adam,
                     const fopt_rmsprop_config *rmsprop, int slot);
const char *golden_slot_name(int optimizer, int slot);

/* Reading golden files of either format (golden.c, golden_ext.c): a bounded little-endian reader
 * over the whole file. Every read past its end, and every format error, fails the calling test. */
typedef struct golden_reader {
    const unsigned char *p;
    size_t left;
    const char *file;
} golden_reader;

/* Reads every case of FOPT_TEST_DATA_DIR/file_name after checking its magic and `version`: into
 * *cases, an array of case_size-byte cases (zeroed, then filled by parse() one at a time), and
 * returns the count (at least 1, at most the file's size / min_case_bytes). The file must end
 * with the last case. */
size_t golden_read_cases(const char *file_name, uint32_t version, size_t min_case_bytes,
                         size_t case_size, void (*parse)(golden_reader *r, void *c), void **cases);
/* Releases such an array: the block each case owns (the pointer at storage_offset in it), then
 * the array. */
void golden_free_cases(void *cases, size_t count, size_t case_size, size_t storage_offset);
/* Defines `load` (size_t load(const char *file_name, T **cases)) and `release` (void release(T
 * *cases, size_t count)) for a format's case type T, which keeps its block in T.storage_: the
 * cases of the format's `version`, each of at least min_case_bytes, parsed by parse(). */
#define GOLDEN_DEFINE_LOAD(load, release, T, version, min_case_bytes, parse)                       \
    size_t load(const char *file_name, T **cases)                                                  \
    {                                                                                              \
        void *cs;                                                                                  \
        size_t count = golden_read_cases(file_name, version, min_case_bytes, sizeof(T), parse, &cs); \
        *cases = cs;                                                                               \
        return count;                                                                              \
    }                                                                                              \
    void release(T *cases, size_t count)                                                           \
    {                                                                                              \
        golden_free_cases(cases, count, sizeof *cases, offsetof(T, storage_));                     \
    }
const unsigned char *golden_take(golden_reader *r, size_t bytes);
uint32_t golden_get_u32(golden_reader *r);
uint64_t golden_get_u64(golden_reader *r);
float golden_get_f32(golden_reader *r);
double golden_get_f64(golden_reader *r);
/* n elements of elem_size (2 or 4) bytes each into dst (uint16_t or float). */
void golden_get_elems(golden_reader *r, void *dst, size_t n, size_t elem_size);
/* The head both formats start a case with: the name, the optimizer, its flags and six
 * hyper-parameters, checked and written into *adam or *rmsprop, the config of the case's
 * optimizer (the other gets the defaults and the hyper-parameters both have, and is not used). */
void golden_read_head(golden_reader *r, char name[64], int *optimizer, fopt_adam_config *adam,
                      fopt_rmsprop_config *rmsprop);

typedef fopt_status (*golden_adam_fn)(const fopt_adam_config *, int64_t, size_t, float *,
                                      const float *, float *, float *, float *);
typedef fopt_status (*golden_rmsprop_fn)(const fopt_rmsprop_config *, size_t, float *,
                                         const float *, float *, float *, float *);

/* The error measure of the golden tests: NaN and infinities must sit at the same places with the
 * same values in both (else +inf); over the finite elements, max |a - b| divided by the largest
 * finite |b| (when every finite b is 0, any difference gives +inf). On all-finite data this is
 * test_max_rel_err() of util.h without its 1e-30 floor. */
double golden_rel_err(const float *a, const float *b, size_t n);

/* golden_rel_err()'s measure folded one element pair at a time (over several arrays as one flat
 * vector): start from {0}, add every pair, then read golden_err_value(). golden_err_add() returns
 * 1 when the pair is a mismatch of non-finite values or, while there is none, a new largest
 * difference. */
typedef struct golden_err {
    double scale, diff;
    int mismatch;
} golden_err;
int golden_err_add(golden_err *e, float a, float b);
double golden_err_value(const golden_err *e);

/* Replays every step of the case from its initial state through `adam` or `rmsprop` (the one the
 * case needs; unused optional buffers passed as NULL) and returns the worst golden_rel_err over
 * the parameter and the used state buffers; *what (if not NULL) names the worst array. A step
 * that does not return FOPT_SUCCESS fails the calling test. */
double golden_replay(const golden_case *c, golden_adam_fn adam, golden_rmsprop_fn rmsprop,
                     const char **what);

/* Loads file_name, replays every case and cr_expect()s each within `tol`, naming the case, the
 * array and the error on failure. Returns the worst error. With FOPT_GOLDEN_VERBOSE set in the
 * environment, prints every case's error to stderr under `label`. */
double golden_check_file(const char *file_name, golden_adam_fn adam, golden_rmsprop_fn rmsprop,
                         double tol, const char *label);

#endif
