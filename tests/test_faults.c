/* Failure paths of the GPU optimizer object (issue 11), on the emulated device: every countable
 * device call (allocation, copy, memset, launch) that an API call makes is made to fail in turn
 * with fopt_emu_fail_at(n), n = 1 .. the number of calls the API call makes when it succeeds
 * (counted with fopt_emu_calls()). Each injected failure must
 *   - return FOPT_ERROR_OUT_OF_MEMORY (allocations) or FOPT_ERROR_CUDA, with a message from
 *     fopt_last_error() naming the failed call and its file:line;
 *   - leak nothing (fopt_emu_live_bytes() back to its value; in the sanitizer build LeakSanitizer
 *     checks host memory after each sequence, gt_expect_no_host_leaks);
 *   - leave the optimizer unchanged (checkpoint bytes, step count, device params and grads) and
 *     usable: the same call then succeeds and gives exactly what an optimizer that never saw the
 *     failure gives;
 *   - leave the caller's outputs unchanged: fopt_step_ex's grad_norm and found_inf, and
 *     fopt_grad_sq_sum's sum (poisoned before each call, compared after it, also where a later
 *     launch of a step over several dtypes failed); after the retry they equal the twin's.
 *
 * Sequences walked (each over its own fresh optimizer per fault site, and a twin that never fails):
 *   create       fp32 Adam (amsgrad); AdamW with fp32 masters over fp32 + bf16 + fp16 and bf16
 *                states; bf16 remainders; a capturable optimizer
 *   step         fp32 (the host knows the count); fp32 after a checked step (the count lives on the
 *                device); capturable; the mixed list (three launches)
 *   step_ex      every combination of grad_scale, clipping, grad_norm, found_inf, zero_grads and an
 *                external grad_sq_sum (64), on an fp32 optimizer whose count the host knows, one
 *                whose count lives on the device, and a capturable one; all options on the mixed
 *                list
 *   set_lr, set_group_lr, set_group_weight_decay on a capturable optimizer (device memory) and on
 *                an eager one (no device call)
 *   grad_sq_sum, state_save, state_load, state_copy (out and in, a state slot and the master),
 *   set_step_count, step_count (reading the device count), rebind, destroy (no countable call)
 * The number of fault sites each sequence walked is logged (cr_log_info, --verbose) and each
 * test's total checked against the FW_SITES_* counts below: 460 fault sites in all, namely
 *   create 30 (7 fp32, 8 mixed with masters, 7 remainders, 8 capturable: state malloc + memset,
 *   table malloc, work malloc + memset, table and hparams copies, the master-init launch);
 *   step 8 (1 eager, 2 with the count on the device or capturable: prologue + step, 3 mixed);
 *   step_ex 384 (193 sequences: 1 or 2 launches each, 4 for the mixed list);
 *   setters 3 (one copy each on a capturable optimizer, none on an eager one);
 *   checkpoints and state 30 (save 1 to 4, load 3, state_copy 1, set_step_count 1,
 *   step_count 1 or 0); grad_sq_sum, rebind, destroy 5 (1, 1, 0).
 *
 * A step over tensors of several dtypes is one launch per dtype: when a later launch fails, the
 * earlier ones have already run (or are enqueued on a GPU), so those tensors are stepped while the
 * step count does not advance. Such sites are checked for the status, message, leaks and the
 * count, not for unchanged params (fopt_step_ex's documentation says so).
 *
 * Also: creating an optimizer over 2^33 elements exceeds the emulated device's 80 GiB and gives
 * FOPT_ERROR_OUT_OF_MEMORY without touching the tensors' (absent) memory. Every test here SKIPs
 * on a real GPU. */
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <criterion/logging.h>

#include "gpu_util.h"
#include "multi_tensor.h"

TestSuite(faults, .init = gt_require_emulation);

/* ---- the lists walked ----------------------------------------------------------------------- */

static const gt_spec list_f32[] = {{5, FOPT_FLOAT32, 0, 0}, {FOPT_CHUNK + 3, FOPT_FLOAT32, 1, 1}, {64, FOPT_FLOAT32, 0, 0}};
static const gt_spec list_mixed[] = {
    {5, FOPT_FLOAT32, 0, 1}, {300, FOPT_BFLOAT16, 1, 0}, {33, FOPT_FLOAT16, 0, 3}, {FOPT_CHUNK + 1, FOPT_BFLOAT16, 0, 0}};
static const gt_spec list_bf16_rem[] = {{5, FOPT_FLOAT32, 0, 0}, {300, FOPT_BFLOAT16, 0, 1}, {4097, FOPT_BFLOAT16, 0, 0}};
static const gt_spec list_cap[] = {{100, FOPT_BFLOAT16, 0, 0}, {FOPT_CHUNK + 7, FOPT_BFLOAT16, 1, 1}};
#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

typedef enum { L_F32, L_MIXED, L_BF16_REM, L_CAP } list_id;

static gt_cfg cfg_of(list_id id)
{
    gt_cfg c;
    switch (id) {
    case L_F32: c = gt_adam(); c.a.amsgrad = true; return c;
    case L_MIXED: c = gt_adamw(); *gt_precision(&c) = (fopt_precision){FOPT_BFLOAT16, true, false, false, 0}; return c;
    case L_BF16_REM: c = gt_rmsprop(); *gt_precision(&c) = (fopt_precision){FOPT_FLOAT32, true, false, true, 0}; return c;
    default: c = gt_adamw(); *gt_precision(&c) = (fopt_precision){FOPT_FLOAT32, true, false, false, 0}; c.a.capturable = true; return c;
    }
}

static const gt_spec *list_of(list_id id, size_t *n)
{
    switch (id) {
    case L_F32: *n = N_OF(list_f32); return list_f32;
    case L_MIXED: *n = N_OF(list_mixed); return list_mixed;
    case L_BF16_REM: *n = N_OF(list_bf16_rem); return list_bf16_rem;
    default: *n = N_OF(list_cap); return list_cap;
    }
}

/* ---- one environment: an optimizer in a known state, and what the walked call needs ---- */

typedef enum {
    OP_CREATE, OP_STEP, OP_STEP_EX, OP_SET_LR, OP_SET_GROUP_LR, OP_SET_GROUP_WD, OP_GRAD_SQ_SUM, OP_SAVE,
    OP_LOAD, OP_COPY_OUT, OP_COPY_IN, OP_COPY_MASTER_IN, OP_SET_STEP_COUNT, OP_STEP_COUNT, OP_REBIND, OP_DESTROY
} op_id;

/* step_ex option bits */
enum { O_SCALE = 1, O_CLIP = 2, O_NORM = 4, O_INF = 8, O_ZERO = 16, O_EXTERNAL = 32 };

typedef struct walk_seq {
    const char *name;
    list_id list;
    op_id op;
    unsigned options;    /* OP_STEP_EX */
    bool device_count;   /* prepare with a checked step, so the count lives on the device */
} walk_seq;

typedef struct env {
    const walk_seq *seq;
    gt_problem *p, *q; /* q: rebind target */
    gt_dev_opts d;
    fopt_step_options opts;
    unsigned char *ckpt;
    size_t ckpt_size;
    void *buf;
} env;

static void env_make(env *e, const walk_seq *s)
{
    memset(e, 0, sizeof *e);
    e->seq = s;
    size_t n;
    const gt_spec *spec = list_of(s->list, &n);
    gt_cfg cfg = cfg_of(s->list);
    e->p = gt_problem_make(&cfg, spec, n, 1000 + s->list, s->op != OP_CREATE);
    gt_dev_opts_make(&e->d);
    gt_dev_set_scale(&e->d, 64.0f);
    if (s->op == OP_CREATE)
        return;
    gt_problem *p = e->p;
    /* a few steps, so the state is not all zeros; a checked one last when asked */
    for (int i = 0; i < 2; i++) {
        gt_new_grads(p);
        FOPT_OK(fopt_step(p->opt, 0));
    }
    if (s->device_count) {
        gt_new_grads(p);
        fopt_step_options o = {.found_inf = e->d.found_inf};
        FOPT_OK(fopt_step_ex(p->opt, &o, 0));
    }
    gt_new_grads(p);
    if (s->op == OP_LOAD) { /* an earlier state of the same optimizer, with other group values */
        FOPT_OK(fopt_set_group_lr(p->opt, 1, 3e-3));
        e->ckpt = gt_save(p->opt, &e->ckpt_size);
        FOPT_OK(fopt_set_group_lr(p->opt, 1, gt_lr(&p->cfg)));
        FOPT_OK(fopt_step(p->opt, 0));
    }
    if (s->op == OP_REBIND)
        e->q = gt_problem_make(&p->cfg, spec, n, 7, false);
    if (s->op == OP_STEP_EX) {
        unsigned o = s->options;
        double ext = 0.0;
        FOPT_OK(fopt_grad_sq_sum_ref_multi(p->host, p->count, NULL, &ext));
        gt_dev_set_sq_sum(&e->d, 2.0 * ext);
        e->opts.grad_scale = o & O_SCALE ? e->d.grad_scale : NULL;
        e->opts.max_grad_norm = o & O_CLIP ? 0.1 : 0.0;
        e->opts.grad_norm = o & O_NORM ? e->d.grad_norm : NULL;
        e->opts.found_inf = o & O_INF ? e->d.found_inf : NULL;
        e->opts.zero_grads = (o & O_ZERO) != 0;
        e->opts.grad_sq_sum = o & O_EXTERNAL ? e->d.grad_sq_sum : NULL;
    }
    e->buf = calloc(FOPT_CHUNK + 64, 4);
    cr_assert_not_null(e->buf);
    for (size_t i = 0; i < 300; i++)
        ((uint16_t *)e->buf)[i] = (uint16_t)(0x3c00 + i);
    gt_dev_poison_outputs(&e->d); /* an output the walked call writes shows */
    CUDA_OK(fopt_dev_synchronize());
}

/* The caller's option scalars (gt_dev_opts: grad_scale, grad_norm, found_inf, grad_sq_sum): what
 * the walked call writes besides the optimizer. */
typedef struct outputs {
    float scale, norm;
    int32_t found_inf, pad_;
    double sq_sum;
} outputs;

static outputs outputs_take(const env *e)
{
    outputs o;
    CUDA_OK(fopt_dev_synchronize());
    gt_download(&o, e->d.block, sizeof o);
    return o;
}

static void outputs_expect_equal(const outputs *got, const outputs *want, const char *where, const char *what)
{
    cr_assert(memcmp(got, want, sizeof *got) == 0,
              "%s: %s: grad_norm %.9g, found_inf %d, grad_sq_sum %.17g; expected %.9g, %d, %.17g", where, what,
              (double)got->norm, got->found_inf, got->sq_sum, (double)want->norm, want->found_inf, want->sq_sum);
}

static void env_free(env *e)
{
    gt_dev_opts_free(&e->d);
    gt_problem_free(e->q);
    gt_problem_free(e->p);
    free(e->ckpt);
    free(e->buf);
}

static fopt_optimizer *const SENTINEL = (fopt_optimizer *)(uintptr_t)0x5e17;

/* The walked call. */
static fopt_status run_op(env *e)
{
    gt_problem *p = e->p;
    switch (e->seq->op) {
    case OP_CREATE: {
        fopt_optimizer *out = SENTINEL;
        fopt_status st = gt_create(&p->cfg, p->dev, p->count, &out);
        if (st == FOPT_SUCCESS)
            p->opt = out;
        else
            cr_assert_eq(out, SENTINEL, "a failed create wrote *out");
        return st;
    }
    case OP_STEP: return fopt_step(p->opt, 0);
    case OP_STEP_EX: return fopt_step_ex(p->opt, &e->opts, 0);
    case OP_SET_LR: return fopt_set_lr(p->opt, 4e-3);
    case OP_SET_GROUP_LR: return fopt_set_group_lr(p->opt, 1, 5e-3);
    case OP_SET_GROUP_WD: return fopt_set_group_weight_decay(p->opt, 0, 0.25);
    case OP_GRAD_SQ_SUM: return fopt_grad_sq_sum(p->opt, e->d.grad_scale, e->d.grad_sq_sum, 0);
    case OP_SAVE: {
        size_t n = fopt_state_size(p->opt);
        void *b = malloc(n);
        cr_assert_not_null(b);
        fopt_status st = fopt_state_save(p->opt, b, n);
        free(b);
        return st;
    }
    case OP_LOAD: return fopt_state_load(p->opt, e->ckpt, e->ckpt_size);
    case OP_COPY_OUT: return fopt_state_copy(p->opt, 1, FOPT_SLOT_EXP_AVG_SQ, e->buf, false);
    case OP_COPY_IN: return fopt_state_copy(p->opt, 1, FOPT_SLOT_EXP_AVG, e->buf, true);
    case OP_COPY_MASTER_IN: return fopt_state_copy(p->opt, 1, FOPT_SLOT_MASTER, e->buf, true);
    case OP_SET_STEP_COUNT: return fopt_set_step_count(p->opt, 41);
    case OP_STEP_COUNT: {
        int64_t c = fopt_step_count(p->opt);
        return c >= 0 ? FOPT_SUCCESS : FOPT_ERROR_CUDA; /* -1 says it failed; the message tells */
    }
    case OP_REBIND: return fopt_rebind(p->opt, e->q->dev, p->count, 0);
    case OP_DESTROY: fopt_destroy(p->opt); p->opt = NULL; return FOPT_SUCCESS;
    }
    return FOPT_ERROR_INVALID_VALUE;
}

/* "<call> failed at <file>.c:<line>" */
static bool names_call_and_place(const char *msg)
{
    regex_t re;
    cr_assert_eq(regcomp(&re, "[A-Za-z_(].* failed at [^ ]+\\.c:[0-9]+", REG_EXTENDED), 0);
    bool ok = regexec(&re, msg, 0, NULL, 0) == 0;
    regfree(&re);
    return ok;
}

/* Launches of a step at the end of its calls: one per dtype present. */
static int step_launches(const walk_seq *s)
{
    if (s->op != OP_STEP && s->op != OP_STEP_EX)
        return 0;
    size_t n;
    const gt_spec *spec = list_of(s->list, &n);
    bool seen[3] = {false, false, false};
    int c = 0;
    for (size_t k = 0; k < n; k++)
        if (!seen[spec[k].dtype]) {
            seen[spec[k].dtype] = true;
            c++;
        }
    return c;
}

/* Walks every fault site of one sequence; returns how many. */
static long walk(const walk_seq *s)
{
    /* the twin that never fails: how many countable calls, and what the call gives */
    env y;
    env_make(&y, s);
    long long live0 = fopt_emu_live_bytes();
    long c0 = fopt_emu_calls();
    fopt_status st = run_op(&y);
    const long calls = fopt_emu_calls() - c0;
    cr_assert_eq(st, FOPT_SUCCESS, "%s: %s", s->name, fopt_last_error());
    if (s->op == OP_DESTROY) /* every byte the optimizer held is free again */
        cr_assert_lt(fopt_emu_live_bytes(), live0, "%s: destroy freed nothing", s->name);
    gt_snapshot want;
    gt_snapshot_take(&want, y.p, y.p->opt);
    const outputs want_out = outputs_take(&y);
    const int launches = step_launches(s);
    /* What the optimizer looks like before the call, from a third twin: a snapshot reads the
     * device count back, and the walked call must run as it does without one. */
    env z;
    env_make(&z, s);
    gt_snapshot before;
    gt_snapshot_take(&before, z.p, z.p->opt);
    const outputs before_out = outputs_take(&z);
    env_free(&z);

    for (long n = 1; n <= calls; n++) {
        env x;
        env_make(&x, s);
        char where[160];
        snprintf(where, sizeof where, "%s, fault site %ld of %ld", s->name, n, calls);
        gt_snapshot after;
        const long long live = fopt_emu_live_bytes();
        const long at = fopt_emu_calls();
        fopt_emu_fail_at(n);
        st = run_op(&x);
        fopt_emu_fail_at(0);
        cr_assert_geq(fopt_emu_calls() - at, n, "%s: the call stopped before the fault", where);
        cr_assert(st == FOPT_ERROR_OUT_OF_MEMORY || st == FOPT_ERROR_CUDA, "%s: returned %s", where,
                  fopt_status_string(st));
        const char *msg = fopt_last_error();
        cr_assert(names_call_and_place(msg), "%s: message does not name the call and place: \"%s\"", where, msg);
        const bool alloc = strstr(msg, "fopt_dev_malloc") != NULL;
        cr_assert_eq(st == FOPT_ERROR_OUT_OF_MEMORY, alloc, "%s: %s for \"%s\"", where, fopt_status_string(st), msg);
        cr_assert_eq(fopt_emu_live_bytes(), live, "%s: %lld device bytes leaked", where, fopt_emu_live_bytes() - live);
        cr_assert_eq(fopt_dev_last_error(), cudaSuccess, "%s: a CUDA error was left behind", where);

        /* the caller's outputs change only with a call that succeeds */
        const outputs failed_out = outputs_take(&x);
        outputs_expect_equal(&failed_out, &before_out, where, "the failed call wrote the caller's outputs");
        gt_snapshot_take(&after, x.p, x.p->opt);
        /* a later launch of a step over several dtypes: the earlier launches have run */
        const bool partial = launches > 1 && n > calls - launches + 1;
        if (partial)
            cr_assert_eq(after.step, before.step, "%s: the step count moved", where);
        else
            gt_snapshot_expect_equal(&after, &before, where);
        gt_snapshot_free(&after);

        /* usable: the same call now succeeds, as on the twin */
        st = run_op(&x);
        cr_assert_eq(st, FOPT_SUCCESS, "%s: the call after the fault failed: %s", where, fopt_last_error());
        if (!partial) {
            gt_snapshot_take(&after, x.p, x.p->opt);
            gt_snapshot_expect_equal(&after, &want, where);
            gt_snapshot_free(&after);
            const outputs retry_out = outputs_take(&x);
            outputs_expect_equal(&retry_out, &want_out, where, "outputs of the call after the fault");
        }
        env_free(&x);
    }
    gt_snapshot_free(&before);
    gt_snapshot_free(&want);
    env_free(&y);
    gt_expect_no_host_leaks(s->name);
    cr_log_info("fault walk: %s: %ld sites", s->name, calls);
    return calls;
}

static long walk_all(const walk_seq *seqs, size_t n)
{
    long total = 0;
    for (size_t i = 0; i < n; i++)
        total += walk(&seqs[i]);
    return total;
}

/* Site counts of this build (the calls each sequence makes), checked so that a change in the
 * library's calls is noticed here. */
#define FW_SITES_CREATE 30
#define FW_SITES_STEP 8
#define FW_SITES_STEP_EX 384
#define FW_SITES_HPARAMS 3
#define FW_SITES_STATE 30
#define FW_SITES_OTHER 5

Test(faults, create_walks_every_allocation_copy_and_launch)
{
    const walk_seq seqs[] = {
        {"create fp32 amsgrad", L_F32, OP_CREATE, 0, false},
        {"create mixed dtypes with fp32 masters", L_MIXED, OP_CREATE, 0, false},
        {"create bf16 remainders", L_BF16_REM, OP_CREATE, 0, false},
        {"create capturable", L_CAP, OP_CREATE, 0, false},
    };
    long sites = walk_all(seqs, N_OF(seqs));
    cr_log_info("fault walk: create: %ld sites", sites);
    cr_expect_eq(sites, FW_SITES_CREATE);
}

Test(faults, step_walks_every_launch)
{
    const walk_seq seqs[] = {
        {"step fp32", L_F32, OP_STEP, 0, false},
        {"step fp32, count on the device", L_F32, OP_STEP, 0, true},
        {"step capturable", L_CAP, OP_STEP, 0, false},
        {"step mixed dtypes", L_MIXED, OP_STEP, 0, false},
    };
    long sites = walk_all(seqs, N_OF(seqs));
    cr_log_info("fault walk: step: %ld sites", sites);
    cr_expect_eq(sites, FW_SITES_STEP);
}

Test(faults, step_ex_walks_every_option_combination)
{
    static char names[3 * 64][96];
    walk_seq seqs[3 * 64 + 1];
    size_t n = 0;
    for (int kind = 0; kind < 3; kind++)
        for (unsigned o = 0; o < 64; o++, n++) {
            snprintf(names[n], sizeof names[n], "step_ex %s%s%s%s%s%s%s", kind == 0 ? "fp32" : kind == 1 ? "fp32 device count" : "capturable",
                     o & O_SCALE ? " scale" : "", o & O_CLIP ? " clip" : "", o & O_NORM ? " norm" : "",
                     o & O_INF ? " found_inf" : "", o & O_ZERO ? " zero_grads" : "", o & O_EXTERNAL ? " external" : "");
            seqs[n] = (walk_seq){names[n], kind == 2 ? L_CAP : L_F32, OP_STEP_EX, o, kind == 1};
        }
    seqs[n++] = (walk_seq){"step_ex mixed dtypes, every option", L_MIXED, OP_STEP_EX, 63, true};
    long sites = walk_all(seqs, n);
    cr_log_info("fault walk: step_ex: %ld sites", sites);
    cr_expect_eq(sites, FW_SITES_STEP_EX);
}

Test(faults, hyper_parameter_setters_walk_their_device_writes)
{
    const walk_seq seqs[] = {
        {"set_lr capturable", L_CAP, OP_SET_LR, 0, false},
        {"set_group_lr capturable", L_CAP, OP_SET_GROUP_LR, 0, false},
        {"set_group_weight_decay capturable", L_CAP, OP_SET_GROUP_WD, 0, false},
        {"set_lr eager (no device call)", L_F32, OP_SET_LR, 0, false},
        {"set_group_lr eager (no device call)", L_F32, OP_SET_GROUP_LR, 0, false},
        {"set_group_weight_decay eager (no device call)", L_F32, OP_SET_GROUP_WD, 0, false},
    };
    long sites = walk_all(seqs, N_OF(seqs));
    cr_log_info("fault walk: hyper-parameters: %ld sites", sites);
    cr_expect_eq(sites, FW_SITES_HPARAMS);
}

Test(faults, checkpoints_and_state_copies_walk_every_copy)
{
    const walk_seq seqs[] = {
        {"save fp32", L_F32, OP_SAVE, 0, false},
        {"save fp32, count on the device", L_F32, OP_SAVE, 0, true},
        {"save mixed", L_MIXED, OP_SAVE, 0, false},
        {"save capturable", L_CAP, OP_SAVE, 0, false},
        {"load fp32", L_F32, OP_LOAD, 0, false},
        {"load fp32, count on the device", L_F32, OP_LOAD, 0, true},
        {"load mixed", L_MIXED, OP_LOAD, 0, false},
        {"load capturable", L_CAP, OP_LOAD, 0, false},
        {"state_copy out fp32", L_F32, OP_COPY_OUT, 0, false},
        {"state_copy in fp32", L_F32, OP_COPY_IN, 0, false},
        {"state_copy out mixed", L_MIXED, OP_COPY_OUT, 0, false},
        {"state_copy in mixed", L_MIXED, OP_COPY_IN, 0, false},
        {"state_copy master in mixed", L_MIXED, OP_COPY_MASTER_IN, 0, false},
        {"state_copy master in capturable", L_CAP, OP_COPY_MASTER_IN, 0, false},
        {"set_step_count fp32", L_F32, OP_SET_STEP_COUNT, 0, false},
        {"set_step_count capturable", L_CAP, OP_SET_STEP_COUNT, 0, false},
        {"step_count, count on the device", L_F32, OP_STEP_COUNT, 0, true},
        {"step_count capturable", L_CAP, OP_STEP_COUNT, 0, false},
        {"step_count fp32 (no device call)", L_F32, OP_STEP_COUNT, 0, false},
    };
    long sites = walk_all(seqs, N_OF(seqs));
    cr_log_info("fault walk: checkpoints and state: %ld sites", sites);
    cr_expect_eq(sites, FW_SITES_STATE);
}

Test(faults, grad_sq_sum_rebind_and_destroy_walk_their_calls)
{
    const walk_seq seqs[] = {
        {"grad_sq_sum fp32", L_F32, OP_GRAD_SQ_SUM, 0, false},
        {"grad_sq_sum mixed", L_MIXED, OP_GRAD_SQ_SUM, 0, false},
        {"rebind fp32", L_F32, OP_REBIND, 0, false},
        {"rebind mixed", L_MIXED, OP_REBIND, 0, false},
        {"rebind capturable", L_CAP, OP_REBIND, 0, false},
        {"destroy fp32", L_F32, OP_DESTROY, 0, false},
        {"destroy mixed", L_MIXED, OP_DESTROY, 0, false},
        {"destroy capturable", L_CAP, OP_DESTROY, 0, false},
    };
    long sites = walk_all(seqs, N_OF(seqs));
    cr_log_info("fault walk: grad_sq_sum, rebind, destroy: %ld sites", sites);
    cr_expect_eq(sites, FW_SITES_OTHER);
}

Test(faults, destroy_after_a_failed_step_frees_everything)
{
    long long live0 = fopt_emu_live_bytes();
    env e;
    walk_seq s = {"mixed", L_MIXED, OP_STEP_EX, 63, true};
    env_make(&e, &s);
    fopt_emu_fail_at(2);
    cr_assert_neq(run_op(&e), FOPT_SUCCESS);
    fopt_emu_fail_at(0);
    env_free(&e);
    cr_expect_eq(fopt_emu_live_bytes(), live0, "device bytes left after destroy");
    gt_expect_no_host_leaks("destroy after a failed step");
}

Test(faults, create_over_2_to_the_33_elements_is_out_of_memory_without_touching_the_tensors)
{
    /* 2^33 fp32 elements: three AMSGrad state buffers of 32 GiB exceed the emulated 80 GiB. The
     * params and grads lie in reserved address space (disjoint, as creation checks) that no access
     * may touch: nothing may read them. */
    long long live0 = fopt_emu_live_bytes();
    char *space;
    CUDA_OK(fopt_emu_reserve((void **)&space, (size_t)1 << 37));
    float *param = (float *)(void *)space, *grad = (float *)(void *)(space + ((size_t)1 << 35));
    fopt_tensor t = {param, grad, (size_t)1 << 33, FOPT_FLOAT32, 0};
    fopt_adam_config a = fopt_adam_config_default();
    a.amsgrad = true;
    fopt_optimizer *out = SENTINEL;
    long calls = fopt_emu_calls();
    cr_expect_eq(fopt_adam_create(&out, &a, &t, 1), FOPT_ERROR_OUT_OF_MEMORY, "%s", fopt_last_error());
    cr_expect(strstr(fopt_last_error(), "fopt_dev_malloc") != NULL, "%s", fopt_last_error());
    cr_expect_eq(out, SENTINEL);
    cr_expect_eq(fopt_emu_calls() - calls, 1, "only the failed allocation was attempted");
    /* the same with RMSprop's three buffers, and a mixed list with masters */
    fopt_rmsprop_config r = fopt_rmsprop_config_default();
    r.momentum = 0.9;
    r.centered = true;
    cr_expect_eq(fopt_rmsprop_create(&out, &r, &t, 1), FOPT_ERROR_OUT_OF_MEMORY, "%s", fopt_last_error());
    fopt_tensor m[2] = {t, {space + ((size_t)1 << 36), space + ((size_t)1 << 36) + ((size_t)1 << 34),
                            (size_t)1 << 33, FOPT_BFLOAT16, 0}};
    a = fopt_adam_config_default();
    a.precision.master_weights = true;
    cr_expect_eq(fopt_adam_create(&out, &a, m, 2), FOPT_ERROR_OUT_OF_MEMORY, "%s", fopt_last_error());
    cr_expect_eq(out, SENTINEL);
    CUDA_OK(fopt_dev_free(space));
    cr_expect_eq(fopt_emu_live_bytes(), live0);
    gt_expect_no_host_leaks("create over 2^33 elements");
}
