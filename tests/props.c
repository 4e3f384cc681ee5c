/* The property-based layer's model and calls (see props.h). */
#include "props.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <criterion/logging.h>

#include "checkpoint.h"

#if defined(__SANITIZE_ADDRESS__)
#include <dlfcn.h>
#include <sanitizer/common_interface_defs.h>
#define PP_DEATH_CALLBACK 1
#endif

#define PP_MAX_BUFS 48
#define PP_POISON 0xa5
#define PP_TRAIL 16384

/* A device buffer of the sequence (a param or a grad of tensor k), between poisoned guards, and
 * its host shadow. */
typedef struct pp_buf {
    void *base;
    void *host;
    size_t k;
    unsigned off;
} pp_buf;

/* What a checkpoint restores: states, masters, step count, lr and weight decay. */
typedef struct pp_saved {
    void *master[PP_MAX_TENSORS];
    void *state[FOPT_MAX_STATES][PP_MAX_TENSORS];
    int64_t step;
    double lr[FOPT_MAX_GROUPS], wd[FOPT_MAX_GROUPS];
} pp_saved;

typedef struct pp_model {
    const pp_config *c;
    uint64_t seed;
    test_rng rng;
    int call, calls;
    unsigned defects; /* known-defect checks enabled */
    size_t count;
    uint64_t begin, end, total;
    pp_buf bufs[PP_MAX_BUFS];
    size_t nbufs;
    size_t bind_p[PP_MAX_TENSORS], bind_g[PP_MAX_TENSORS]; /* the bound buffers */
    pp_saved s;                                            /* the optimizer's state as modelled */
    fopt_optimizer *opt;
    cudaStream_t stream;
    gt_dev_opts d;
    float scale;        /* the device grad_scale's value */
    uint32_t norm_bits; /* the device outputs as modelled */
    int32_t found;
    unsigned char *ckpt; /* the last checkpoint saved, and the state it holds */
    size_t ckpt_size;
    pp_saved ckpt_state;
    bool have_ckpt;
    char desc[320];
    char trail[PP_TRAIL];
} pp_model;

static pp_model *g_current; /* for the sanitizer's death callback */

/* ---- reporting ------------------------------------------------------------------------------ */

static void pp_describe(pp_model *m, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->desc, sizeof m->desc, fmt, ap);
    va_end(ap);
    size_t used = strlen(m->trail);
    if (used + 1 < PP_TRAIL)
        snprintf(m->trail + used, PP_TRAIL - used, "  %d: %s\n", m->call, m->desc);
}

static void pp_print_where(const pp_model *m, FILE *f)
{
    fprintf(f,
            "props: config %s, seed %" PRIu64 ", call %d (of about %d): %s\n"
            "props: replay with FOPT_PROPS_SEED=%" PRIu64 " --filter 'gpu_props/*'; the calls so far:\n%s",
            m->c->name, m->seed, m->call, m->calls, m->desc, m->seed, m->trail);
}

#ifdef PP_DEATH_CALLBACK
static void pp_on_death(void)
{
    if (g_current)
        pp_print_where(g_current, stderr);
}

/* ASan's runtime and GCC's libubsan each keep their own death callback: both print the call. */
static void pp_set_death_callbacks(void)
{
    __sanitizer_set_death_callback(pp_on_death);
    void *ubsan = dlopen("libubsan.so.1", RTLD_NOW | RTLD_NOLOAD);
    if (ubsan) {
        void (*set)(void (*)(void));
        void *sym = dlsym(ubsan, "__sanitizer_set_death_callback");
        memcpy(&set, &sym, sizeof set);
        if (set)
            set(pp_on_death);
        dlclose(ubsan);
    }
}
#endif

#define PP_FAIL(m, ...)                                                                            \
    do {                                                                                           \
        pp_print_where((m), stderr);                                                               \
        cr_assert_fail("props: seed %" PRIu64 ", call %d (%s): %s", (m)->seed, (m)->call, (m)->desc, \
                       pp_msg(__VA_ARGS__));                                                       \
    } while (0)
#define PP_CHECK(m, cond, ...)                                                                     \
    do {                                                                                           \
        if (!(cond))                                                                               \
            PP_FAIL(m, __VA_ARGS__);                                                               \
    } while (0)

static const char *pp_msg(const char *fmt, ...)
{
    static char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return buf;
}

/* ---- small helpers -------------------------------------------------------------------------- */

static void *pp_calloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    cr_assert_not_null(p);
    return p;
}

static uint64_t pp_rand(pp_model *m, uint64_t n) { return n ? test_rng_next(&m->rng) % n : 0; }
static bool pp_chance(pp_model *m, unsigned one_in) { return pp_rand(m, one_in) == 0; }

static const fopt_precision *pp_prec(const pp_model *m)
{
    return m->c->cfg.adam ? &m->c->cfg.a.precision : &m->c->cfg.r.precision;
}
static bool pp_capturable(const pp_model *m) { return m->c->cfg.adam ? m->c->cfg.a.capturable : m->c->cfg.r.capturable; }
static size_t pp_state_bytes(const pp_model *m) { return pp_prec(m)->state_dtype == FOPT_BFLOAT16 ? 2 : 4; }
static fopt_master_mode pp_master_mode(const pp_model *m, size_t k)
{
    return fopt_master_mode_of(pp_prec(m), m->c->spec[k].dtype);
}
static size_t pp_master_bytes(const pp_model *m, size_t k)
{
    return pp_master_mode(m, k) == FOPT_MASTER_REMAINDER ? 2 : 4;
}
static size_t pp_numel(const pp_model *m, size_t k) { return m->c->spec[k].numel; }

/* The elements [lo, hi) of tensor k that the optimizer keeps state for. */
static void pp_range(const pp_model *m, size_t k, size_t *lo, size_t *hi)
{
    uint64_t s = 0;
    for (size_t j = 0; j < k; j++)
        s += pp_numel(m, j);
    uint64_t a = m->begin > s ? m->begin - s : 0, b = m->end > s ? m->end - s : 0;
    if (b > pp_numel(m, k))
        b = pp_numel(m, k);
    *lo = (size_t)a;
    *hi = (size_t)(b > a ? b : a);
}

/* Equal bits, or NaN in both (NaN payloads are the one exception to bit identity). */
static size_t pp_first_diff(const void *a, const void *b, size_t n, fopt_dtype dt, bool raw16)
{
    size_t e = raw16 ? 2 : gt_dtype_bytes(dt);
    for (size_t i = 0; i < n; i++) {
        if (memcmp((const char *)a + i * e, (const char *)b + i * e, e) == 0)
            continue;
        if (!raw16 && isnan(gt_get(a, dt, i)) && isnan(gt_get(b, dt, i)))
            continue;
        return i;
    }
    return n;
}

/* ---- buffers and bindings ------------------------------------------------------------------- */

static size_t pp_buf_elems(const pp_model *m, const pp_buf *b) { return GT_GUARD + b->off + pp_numel(m, b->k) + GT_GUARD; }
static size_t pp_elem(const pp_model *m, size_t k) { return gt_dtype_bytes(m->c->spec[k].dtype); }
static void *pp_buf_ptr(const pp_model *m, const pp_buf *b)
{
    return (char *)b->base + (GT_GUARD + b->off) * pp_elem(m, b->k);
}

/* Writes the host shadow to the device buffer (guards poisoned). */
static void pp_buf_upload(const pp_model *m, const pp_buf *b)
{
    size_t e = pp_elem(m, b->k), total = pp_buf_elems(m, b) * e;
    unsigned char *img = pp_calloc(total, 1);
    memset(img, PP_POISON, total);
    memcpy(img + (GT_GUARD + b->off) * e, b->host, pp_numel(m, b->k) * e);
    gt_upload(b->base, img, total);
    free(img);
}

/* A new buffer for tensor k holding a copy of `from` (NULL: zeros). Returns its index. */
static size_t pp_buf_new(pp_model *m, size_t k, unsigned off, const void *from)
{
    cr_assert_lt(m->nbufs, (size_t)PP_MAX_BUFS);
    pp_buf *b = &m->bufs[m->nbufs];
    b->k = k;
    b->off = off;
    b->host = pp_calloc(pp_numel(m, k), pp_elem(m, k));
    if (from)
        memcpy(b->host, from, pp_numel(m, k) * pp_elem(m, k));
    b->base = gt_dev_alloc(pp_buf_elems(m, b) * pp_elem(m, k));
    pp_buf_upload(m, b);
    return m->nbufs++;
}

/* The bound list (param and grad of the current binding). */
static void pp_bound(const pp_model *m, fopt_tensor *t)
{
    for (size_t k = 0; k < m->count; k++) {
        memset(&t[k], 0, sizeof t[k]);
        t[k].param = pp_buf_ptr(m, &m->bufs[m->bind_p[k]]);
        t[k].grad = pp_buf_ptr(m, &m->bufs[m->bind_g[k]]);
        t[k].numel = pp_numel(m, k);
        t[k].dtype = m->c->spec[k].dtype;
        t[k].group = m->c->spec[k].group;
    }
}

/* Fresh grads (some zeros, magnitudes 10^U(-4, 1)) into the bound grad buffers. */
static void pp_new_grads(pp_model *m)
{
    for (size_t k = 0; k < m->count; k++) {
        pp_buf *b = &m->bufs[m->bind_g[k]];
        for (size_t i = 0; i < pp_numel(m, k); i++) {
            float v = 0.0f;
            if (!pp_chance(m, 40))
                v = (float)((pp_rand(m, 2) ? 1.0 : -1.0) * pow(10.0, -4.0 + 5.0 * test_rng_uniform(&m->rng)));
            gt_put(b->host, m->c->spec[k].dtype, i, v);
        }
        pp_buf_upload(m, b);
    }
}

/* ---- the model's optimizer state ------------------------------------------------------------ */

static void pp_saved_alloc(const pp_model *m, pp_saved *s)
{
    unsigned states = gt_states(&m->c->cfg);
    for (size_t k = 0; k < m->count; k++) {
        if (pp_master_mode(m, k) != FOPT_MASTER_NONE)
            s->master[k] = pp_calloc(pp_numel(m, k), pp_master_bytes(m, k));
        for (int j = 0; j < FOPT_MAX_STATES; j++)
            if (states >> j & 1u)
                s->state[j][k] = pp_calloc(pp_numel(m, k), pp_state_bytes(m));
    }
}

static void pp_saved_free(pp_saved *s)
{
    for (size_t k = 0; k < PP_MAX_TENSORS; k++) {
        free(s->master[k]);
        for (int j = 0; j < FOPT_MAX_STATES; j++)
            free(s->state[j][k]);
    }
    memset(s, 0, sizeof *s);
}

static void pp_saved_copy(const pp_model *m, pp_saved *dst, const pp_saved *src)
{
    for (size_t k = 0; k < m->count; k++) {
        if (src->master[k])
            memcpy(dst->master[k], src->master[k], pp_numel(m, k) * pp_master_bytes(m, k));
        for (int j = 0; j < FOPT_MAX_STATES; j++)
            if (src->state[j][k])
                memcpy(dst->state[j][k], src->state[j][k], pp_numel(m, k) * pp_state_bytes(m));
    }
    dst->step = src->step;
    memcpy(dst->lr, src->lr, sizeof dst->lr);
    memcpy(dst->wd, src->wd, sizeof dst->wd);
}

/* A fresh optimizer's state over the current params: zero states, masters the upcast params
 * (zero remainders), step 0, the config's lr and weight decay. */
static void pp_model_reset(pp_model *m)
{
    for (size_t k = 0; k < m->count; k++) {
        const void *param = m->bufs[m->bind_p[k]].host;
        if (m->s.master[k]) {
            memset(m->s.master[k], 0, pp_numel(m, k) * pp_master_bytes(m, k));
            if (pp_master_mode(m, k) == FOPT_MASTER_F32)
                for (size_t i = 0; i < pp_numel(m, k); i++)
                    ((float *)m->s.master[k])[i] = gt_get(param, m->c->spec[k].dtype, i);
        }
        for (int j = 0; j < FOPT_MAX_STATES; j++)
            if (m->s.state[j][k])
                memset(m->s.state[j][k], 0, pp_numel(m, k) * pp_state_bytes(m));
    }
    m->s.step = 0;
    for (int g = 0; g < FOPT_MAX_GROUPS; g++) {
        m->s.lr[g] = gt_lr(&m->c->cfg);
        m->s.wd[g] = gt_wd(&m->c->cfg);
    }
}

static fopt_status pp_ref_call(const pp_model *m, double lr, double wd, int64_t step, const fopt_host_tensor *t,
                               size_t n, const fopt_step_options *o)
{
    gt_cfg c = m->c->cfg;
    gt_set_lr_wd(&c, lr, wd);
    return c.adam ? fopt_adam_step_ref_multi(&c.a, step, t, n, o) : fopt_rmsprop_step_ref_multi(&c.r, step, t, n, o);
}

/* The host pieces of the optimizer's range over the bound buffers, masters and states pointing
 * into the model's whole-tensor buffers. */
static size_t pp_pieces(const pp_model *m, fopt_host_tensor *pieces)
{
    fopt_host_tensor whole[PP_MAX_TENSORS];
    memset(whole, 0, sizeof whole);
    for (size_t k = 0; k < m->count; k++) {
        whole[k].param = m->bufs[m->bind_p[k]].host;
        whole[k].grad = m->bufs[m->bind_g[k]].host;
        whole[k].numel = pp_numel(m, k);
        whole[k].dtype = m->c->spec[k].dtype;
    }
    size_t n = 0;
    fopt_status st = fopt_shard_pieces(whole, m->count, m->begin, m->end, pieces, &n);
    cr_assert_eq(st, FOPT_SUCCESS, "fopt_shard_pieces: %s", fopt_last_error());
    for (size_t p = 0; p < n; p++) {
        size_t k = pieces[p].tensor, at = (size_t)pieces[p].elem_offset;
        if (m->s.master[k])
            pieces[p].master = (char *)m->s.master[k] + at * pp_master_bytes(m, k);
        for (int j = 0; j < FOPT_MAX_STATES; j++)
            if (m->s.state[j][k])
                pieces[p].state[j] = (char *)m->s.state[j][k] + at * pp_state_bytes(m);
    }
    return n;
}

/* One step of the model with host options `o` (NULL: plain), the global statistics once, then one
 * reference call per group. Updates the modelled device outputs and step count. */
static void pp_ref_step(pp_model *m, const fopt_step_options *o)
{
    fopt_host_tensor pieces[PP_MAX_TENSORS], sub[PP_MAX_TENSORS];
    PP_CHECK(m, m->s.step < INT64_MAX, "the model cannot step past INT64_MAX");
    size_t n = pp_pieces(m, pieces);
    fopt_step_options opts;
    memset(&opts, 0, sizeof opts);
    double total = 0.0;
    int32_t found = 0;
    float norm = 0.0f;
    if (o) {
        opts = *o;
        opts.found_inf = o->found_inf ? &found : NULL;
        opts.grad_norm = o->grad_norm ? &norm : NULL;
        if (fopt_options_need_stats(o)) {
            if (o->grad_sq_sum)
                total = *o->grad_sq_sum;
            else
                cr_assert_eq(fopt_grad_sq_sum_ref_multi(pieces, n, o->grad_scale, &total), FOPT_SUCCESS);
            opts.grad_sq_sum = &total;
        }
    }
    for (uint32_t g = 0; g < FOPT_MAX_GROUPS; g++) {
        size_t ns = 0;
        for (size_t p = 0; p < n; p++)
            if (m->c->spec[pieces[p].tensor].group == g)
                sub[ns++] = pieces[p];
        if (!ns)
            continue;
        fopt_status st = pp_ref_call(m, m->s.lr[g], m->s.wd[g], m->s.step + 1, sub, ns, o ? &opts : NULL);
        PP_CHECK(m, st == FOPT_SUCCESS, "the reference refused the step: %s", fopt_last_error());
    }
    if (o && o->grad_norm)
        memcpy(&m->norm_bits, &norm, sizeof norm);
    if (o && o->found_inf)
        m->found = found;
    if (!found)
        m->s.step++;
}

/* ---- observing the optimizer ---------------------------------------------------------------- */

static void pp_check_bufs(pp_model *m)
{
    for (size_t i = 0; i < m->nbufs; i++) {
        const pp_buf *b = &m->bufs[i];
        size_t e = pp_elem(m, b->k), total = pp_buf_elems(m, b) * e, at = (GT_GUARD + b->off) * e;
        unsigned char *img = pp_calloc(total, 1);
        gt_download(img, b->base, total);
        for (size_t j = 0; j < total; j++)
            if (j < at || j >= at + pp_numel(m, b->k) * e)
                PP_CHECK(m, img[j] == PP_POISON, "buffer %zu (tensor %zu): guard byte %zd overwritten", i, b->k,
                         (ptrdiff_t)j - (ptrdiff_t)at);
        size_t d = pp_first_diff(img + at, b->host, pp_numel(m, b->k), m->c->spec[b->k].dtype, false);
        PP_CHECK(m, d == pp_numel(m, b->k), "buffer %zu (%s of tensor %zu) differs at element %zu: %.9g, model %.9g",
                 i, i == m->bind_p[b->k] ? "the bound param" : "a param or grad", b->k, d,
                 (double)gt_get(img + at, m->c->spec[b->k].dtype, d), (double)gt_get(b->host, m->c->spec[b->k].dtype, d));
        free(img);
    }
}

/* Compares one slot of tensor k (its range) with the model; `model` is the whole tensor's. */
static void pp_check_slot(pp_model *m, size_t k, fopt_slot slot, const void *model, size_t eb, fopt_dtype dt,
                          bool raw16)
{
    size_t lo, hi;
    pp_range(m, k, &lo, &hi);
    void *buf = pp_calloc(pp_numel(m, k) + 1, 4);
    fopt_status st = fopt_state_copy(m->opt, k, slot, buf, false);
    PP_CHECK(m, st == FOPT_SUCCESS, "fopt_state_copy(tensor %zu, slot %d): %s", k, (int)slot, fopt_last_error());
    size_t d = pp_first_diff(buf, (const char *)model + lo * eb, hi - lo, dt, raw16);
    PP_CHECK(m, d == hi - lo, "tensor %zu slot %d differs at element %zu: %.9g, model %.9g", k, (int)slot, lo + d,
             raw16 ? (double)((uint16_t *)buf)[d] : (double)gt_get(buf, dt, d),
             raw16 ? (double)((const uint16_t *)model)[lo + d] : (double)gt_get(model, dt, lo + d));
    free(buf);
}

/* fopt_step_count(), where -1 after a step the device refused at INT64_MAX (fusedopt.h,
 * fopt_step_count: until fopt_set_step_count or fopt_state_load) stands for INT64_MAX; -1 is
 * accepted only when the model is at INT64_MAX. */
static int64_t pp_step_count(pp_model *m)
{
    int64_t step = fopt_step_count(m->opt);
    return step == -1 && m->s.step == INT64_MAX ? INT64_MAX : step;
}

static void pp_check_state(pp_model *m)
{
    for (size_t k = 0; k < m->count; k++) {
        for (int j = 0; j < FOPT_MAX_STATES; j++)
            if (m->s.state[j][k])
                pp_check_slot(m, k, (fopt_slot)j, m->s.state[j][k], pp_state_bytes(m), pp_prec(m)->state_dtype, false);
        if (m->s.master[k])
            pp_check_slot(m, k, FOPT_SLOT_MASTER, m->s.master[k], pp_master_bytes(m, k), FOPT_FLOAT32,
                          pp_master_mode(m, k) == FOPT_MASTER_REMAINDER);
    }
    int64_t step = pp_step_count(m);
    PP_CHECK(m, step == m->s.step, "step count %" PRId64 ", model %" PRId64, step, m->s.step);
    /* the checkpoint: accepted, and its step, lr and weight decay the model's */
    size_t size = fopt_state_size(m->opt);
    unsigned char *ck = pp_calloc(size, 1);
    fopt_status st = fopt_state_save(m->opt, ck, size);
    PP_CHECK(m, st == FOPT_SUCCESS, "fopt_state_save: %s", fopt_last_error());
    state_header h;
    memcpy(&h, ck, sizeof h);
    PP_CHECK(m, h.step == m->s.step, "checkpoint step %" PRId64 ", model %" PRId64, h.step, m->s.step);
    for (int g = 0; g < FOPT_MAX_GROUPS; g++)
        PP_CHECK(m, h.lr[g] == m->s.lr[g] && h.wd[g] == m->s.wd[g], "group %d: checkpoint lr %g wd %g, model %g %g",
                 g, h.lr[g], h.wd[g], m->s.lr[g], m->s.wd[g]);
    free(ck);
}

/* Everything observable against the model. */
static void pp_check(pp_model *m)
{
    PP_CHECK(m, fopt_dev_synchronize() == cudaSuccess, "synchronize failed");
    pp_check_bufs(m);
    if (m->opt)
        pp_check_state(m);
    uint32_t norm;
    int32_t found;
    gt_download(&norm, m->d.grad_norm, sizeof norm);
    gt_download(&found, m->d.found_inf, sizeof found);
    float a, b;
    memcpy(&a, &norm, 4);
    memcpy(&b, &m->norm_bits, 4);
    PP_CHECK(m, norm == m->norm_bits || (isnan(a) && isnan(b)), "device grad_norm %.9g, model %.9g", (double)a,
             (double)b);
    PP_CHECK(m, found == m->found, "device found_inf %d, model %d", found, m->found);
}

/* The model takes what the optimizer holds (after a call whose result is not specified). */
static void pp_adopt(pp_model *m)
{
    CUDA_OK(fopt_dev_synchronize());
    for (size_t i = 0; i < m->nbufs; i++) {
        pp_buf *b = &m->bufs[i];
        gt_download(b->host, pp_buf_ptr(m, b), pp_numel(m, b->k) * pp_elem(m, b->k));
    }
    for (size_t k = 0; m->opt && k < m->count; k++) {
        size_t lo, hi;
        pp_range(m, k, &lo, &hi);
        for (int j = 0; j <= FOPT_SLOT_MASTER; j++) {
            void *dst = j == FOPT_SLOT_MASTER ? m->s.master[k] : m->s.state[j][k];
            size_t eb = j == FOPT_SLOT_MASTER ? pp_master_bytes(m, k) : pp_state_bytes(m);
            if (dst && hi > lo)
                FOPT_OK(fopt_state_copy(m->opt, k, (fopt_slot)j, (char *)dst + lo * eb, false));
        }
    }
    if (m->opt)
        m->s.step = pp_step_count(m);
    gt_download(&m->norm_bits, m->d.grad_norm, 4);
    gt_download(&m->found, m->d.found_inf, 4);
}

/* ---- coverage: calls per function and outcome, logged per configuration --------------------- */

typedef struct pp_stat {
    char name[40];
    long calls, ok, rejected, faulted;
} pp_stat;
static pp_stat g_stats[24];

static void pp_count(const char *desc, bool ok, bool rejected, bool faulted)
{
    if (strncmp(desc, "captured: ", 10) == 0)
        desc += 10;
    size_t len = strcspn(desc, "( ");
    for (size_t i = 0; i < sizeof g_stats / sizeof g_stats[0]; i++) {
        pp_stat *s = &g_stats[i];
        if (s->name[0] && (strlen(s->name) != len || strncmp(s->name, desc, len) != 0))
            continue;
        if (!s->name[0])
            snprintf(s->name, sizeof s->name, "%.*s", (int)len, desc);
        s->calls++;
        s->ok += ok;
        s->rejected += rejected;
        s->faulted += faulted;
        return;
    }
}

static void pp_log_stats(const char *config)
{
    char line[2048] = "", item[160];
    for (size_t i = 0; i < sizeof g_stats / sizeof g_stats[0] && g_stats[i].name[0]; i++) {
        int len = snprintf(item, sizeof item, "%s %.40s %ld (%ld ok, %ld rejected, %ld faults)", i ? ";" : "",
                           g_stats[i].name, g_stats[i].calls, g_stats[i].ok, g_stats[i].rejected, g_stats[i].faulted);
        size_t used = strlen(line);
        if (len > 0 && used + (size_t)len < sizeof line)
            memcpy(line + used, item, (size_t)len + 1);
    }
    cr_log_info("props: %s: %s", config, line);
    memset(g_stats, 0, sizeof g_stats);
}

/* ---- one call: faults, statuses, leaks ------------------------------------------------------ */

typedef enum { PP_VALID, PP_INVALID, PP_UNSETTLED, PP_REFUSED_IN_CAPTURE } pp_expect;

typedef struct pp_call {
    pp_expect expect;
    fopt_status want;  /* PP_INVALID: the status */
    long fault_at;     /* 0: none */
    long calls_before;
    long long live_before;
} pp_call;

static void pp_arm(pp_model *m, pp_call *c, pp_expect expect, bool may_fault)
{
    memset(c, 0, sizeof *c);
    c->expect = expect;
    c->want = FOPT_ERROR_INVALID_VALUE;
    if (may_fault && expect != PP_INVALID && pp_chance(m, 5))
        c->fault_at = 1 + (long)pp_rand(m, 8);
    if (c->fault_at) {
        size_t used = strlen(m->desc);
        snprintf(m->desc + used, sizeof m->desc - used, " [device call %ld fails]", c->fault_at);
        used = strlen(m->trail);
        if (used > 1 && used + 32 < PP_TRAIL)
            snprintf(m->trail + used - 1, PP_TRAIL - used + 1, " [device call %ld fails]\n", c->fault_at);
    }
    c->live_before = fopt_emu_live_bytes();
    c->calls_before = fopt_emu_calls();
    fopt_emu_fail_at(c->fault_at);
}

/* After the call: true when the model must apply it (it succeeded as a valid call). On a failure
 * the caller's pp_check then finds the optimizer unchanged. */
static bool pp_settle(pp_model *m, pp_call *c, fopt_status st)
{
    fopt_emu_fail_at(0);
    bool hit = c->fault_at && fopt_emu_calls() - c->calls_before >= c->fault_at;
    pp_count(m->desc, st == FOPT_SUCCESS, st != FOPT_SUCCESS && !hit, st != FOPT_SUCCESS && hit);
    if (st != FOPT_SUCCESS) {
        PP_CHECK(m, fopt_last_error()[0] != '\0', "failed (%s) without a message", fopt_status_string(st));
        PP_CHECK(m, fopt_emu_live_bytes() == c->live_before, "the failed call leaked %lld device bytes",
                 fopt_emu_live_bytes() - c->live_before);
    }
    switch (c->expect) {
    case PP_INVALID:
        PP_CHECK(m, st == c->want, "returned %s, want %s", fopt_status_string(st), fopt_status_string(c->want));
        return false;
    case PP_REFUSED_IN_CAPTURE:
        PP_CHECK(m, st == FOPT_ERROR_CUDA, "a synchronising call during a capture returned %s", fopt_status_string(st));
        return false;
    case PP_UNSETTLED:
        return st == FOPT_SUCCESS;
    default:
        if (hit) {
            PP_CHECK(m, st == FOPT_ERROR_CUDA || st == FOPT_ERROR_OUT_OF_MEMORY,
                     "the injected fault returned %s", fopt_status_string(st));
            return false;
        }
        PP_CHECK(m, st == FOPT_SUCCESS, "a valid call failed: %s: %s", fopt_status_string(st), fopt_last_error());
        PP_CHECK(m, !hit, "the injected fault at device call %ld was not reported", c->fault_at);
        return true;
    }
}

/* ---- step and step_ex ----------------------------------------------------------------------- */

/* Step options: device pointers in dev, the same on the host in host. */
typedef struct pp_opts {
    fopt_step_options dev, host;
    float scale, norm_out;
    int32_t found_out;
    double ext;
    bool invalid, unsettled;
    char text[160];
} pp_opts;

static void pp_opts_text(pp_opts *o)
{
    const fopt_step_options *d = &o->dev;
    snprintf(o->text, sizeof o->text, "{grad_scale %s%g, max_grad_norm %g%s%s%s, grad_sq_sum %s%g}",
             d->grad_scale ? "" : "NULL ", d->grad_scale ? (double)o->scale : 0.0, d->max_grad_norm,
             d->grad_norm ? ", grad_norm" : "", d->found_inf ? ", found_inf" : "", d->zero_grads ? ", zero_grads" : "",
             d->grad_sq_sum ? "" : "NULL ", d->grad_sq_sum ? o->ext : 0.0);
}

/* Random options; `capture`: only valid ones, no upload (the device scalars keep their values). */
static void pp_gen_opts(pp_model *m, pp_opts *o, bool capture)
{
    memset(o, 0, sizeof *o);
    o->scale = m->scale;
    if (pp_chance(m, 2)) {
        static const float scales[] = {1.0f, 64.0f, 0.25f, 1024.0f};
        if (!capture) {
            o->scale = pp_chance(m, 20) ? 0.0f : scales[pp_rand(m, 4)];
            gt_dev_set_scale(&m->d, o->scale);
            m->scale = o->scale;
        }
        o->unsettled = o->scale == 0.0f; /* a loss scale of 0: not settled */
        o->dev.grad_scale = m->d.grad_scale;
        o->host.grad_scale = &o->scale;
    }
    uint64_t r = pp_rand(m, 10);
    static const double norms[] = {0.01, 0.5, 10.0}, bad_norms[] = {-1.0, NAN, INFINITY};
    o->dev.max_grad_norm = r < 6 ? 0.0 : r < 9 || capture ? norms[pp_rand(m, 3)] : bad_norms[pp_rand(m, 3)];
    o->invalid = !(o->dev.max_grad_norm >= 0.0 && isfinite(o->dev.max_grad_norm));
    if (pp_chance(m, 2)) {
        o->dev.grad_norm = m->d.grad_norm;
        o->host.grad_norm = &o->norm_out;
    }
    if (pp_chance(m, 2)) {
        o->dev.found_inf = m->d.found_inf;
        o->host.found_inf = &o->found_out;
    }
    o->dev.zero_grads = pp_chance(m, 5);
    if (!capture && pp_chance(m, 7)) {
        if (pp_chance(m, 4)) {
            o->ext = NAN;
        } else {
            fopt_host_tensor pieces[PP_MAX_TENSORS];
            size_t n = pp_pieces(m, pieces);
            cr_assert_eq(fopt_grad_sq_sum_ref_multi(pieces, n, o->host.grad_scale, &o->ext), FOPT_SUCCESS);
            if (pp_chance(m, 2))
                o->ext *= 100.0;
        }
        gt_dev_set_sq_sum(&m->d, o->ext);
        o->dev.grad_sq_sum = m->d.grad_sq_sum;
        o->host.grad_sq_sum = &o->ext;
    }
    o->host.max_grad_norm = o->dev.max_grad_norm;
    o->host.zero_grads = o->dev.zero_grads;
    pp_opts_text(o);
}

/* One element of a bound grad set to inf or NaN (for the found_inf check). */
static void pp_poison_grad(pp_model *m)
{
    size_t k = pp_rand(m, m->count);
    if (!pp_numel(m, k))
        return;
    pp_buf *b = &m->bufs[m->bind_g[k]];
    gt_put(b->host, m->c->spec[k].dtype, pp_rand(m, pp_numel(m, k)), pp_chance(m, 2) ? INFINITY : NAN);
    pp_buf_upload(m, b);
}

/* Param dtypes that the optimizer steps (one launch each). */
static int pp_classes(const pp_model *m)
{
    unsigned seen = 0;
    int n = 0;
    for (size_t k = 0; k < m->count; k++) {
        size_t lo, hi;
        pp_range(m, k, &lo, &hi);
        if (hi > lo && !(seen >> m->c->spec[k].dtype & 1u)) {
            seen |= 1u << m->c->spec[k].dtype;
            n++;
        }
    }
    return n;
}

/* A step at step count INT64_MAX must not wrap: it fails, or succeeds without stepping. */
static void pp_step_at_max(pp_model *m, fopt_status st)
{
    if (st == FOPT_SUCCESS) { /* a skipped step may still write the outputs */
        gt_download(&m->norm_bits, m->d.grad_norm, 4);
        gt_download(&m->found, m->d.found_inf, 4);
    }
}

static void op_step(pp_model *m)
{
    const bool ex = !pp_chance(m, 3); /* step_ex two times in three */
    if (pp_chance(m, 25)) {
        pp_describe(m, ex ? "fopt_step_ex(NULL, NULL, s)" : "fopt_step(NULL, s)");
        pp_call c;
        pp_arm(m, &c, PP_INVALID, false);
        pp_settle(m, &c, ex ? fopt_step_ex(NULL, NULL, m->stream) : fopt_step(NULL, m->stream));
        return;
    }
    if (pp_chance(m, 2))
        pp_new_grads(m);
    pp_opts o;
    memset(&o, 0, sizeof o);
    if (ex)
        pp_gen_opts(m, &o, false);
    const bool at_max = m->s.step == INT64_MAX;
    if (at_max && !(m->defects & PP_DEFECT_2)) { /* known defect 2: no device-count step there */
        if (pp_capturable(m))
            return;
        o.dev.found_inf = o.host.found_inf = NULL;
        pp_opts_text(&o);
    }
    if (o.dev.found_inf && pp_chance(m, 3))
        pp_poison_grad(m);
    pp_describe(m, ex ? "fopt_step_ex(opt, %s, s) at step %" PRId64 : "fopt_step(opt, s)%.0s at step %" PRId64,
                o.text, m->s.step);
    pp_call c;
    pp_arm(m, &c, o.invalid ? PP_INVALID : o.unsettled || at_max ? PP_UNSETTLED : PP_VALID, true);
    fopt_status st = ex ? fopt_step_ex(m->opt, &o.dev, m->stream) : fopt_step(m->opt, m->stream);
    bool ok = pp_settle(m, &c, st);
    if (at_max) {
        pp_step_at_max(m, st);
        return;
    }
    if (!ok && st != FOPT_SUCCESS && c.fault_at) {
        if (ex && (o.dev.grad_norm || o.dev.found_inf) && !(m->defects & PP_DEFECT_5)) {
            gt_download(&m->norm_bits, m->d.grad_norm, 4); /* known defect 5: outputs written */
            gt_download(&m->found, m->d.found_inf, 4);
        }
        if (pp_classes(m) > 1) { /* documented: earlier launches of a mixed list ran */
            PP_CHECK(m, fopt_step_count(m->opt) == m->s.step, "a failed mixed step moved the count");
            pp_adopt(m);
        }
    }
    if (ok && c.expect == PP_UNSETTLED)
        pp_adopt(m);
    else if (ok)
        pp_ref_step(m, ex ? &o.host : NULL);
}

/* ---- hyper-parameters ----------------------------------------------------------------------- */

static double pp_value(pp_model *m, bool wd, bool *valid)
{
    static const double lrs[] = {0.0, 1e-4, 3e-3, 1e-2, 0.05}, wds[] = {0.0, 0.01, 0.1, 0.3};
    static const double bad[] = {-1e-3, NAN, INFINITY, -INFINITY};
    *valid = !pp_chance(m, 4);
    if (!*valid)
        return bad[pp_rand(m, 4)];
    return wd ? wds[pp_rand(m, 4)] : lrs[pp_rand(m, 5)];
}

static void op_set_lr(pp_model *m)
{
    bool valid;
    double lr = pp_value(m, false, &valid);
    bool null = pp_chance(m, 15);
    pp_describe(m, "fopt_set_lr(%s, %g)", null ? "NULL" : "opt", lr);
    pp_call c;
    pp_arm(m, &c, valid && !null ? PP_VALID : PP_INVALID, true);
    if (pp_settle(m, &c, fopt_set_lr(null ? NULL : m->opt, lr)))
        for (int g = 0; g < FOPT_MAX_GROUPS; g++)
            m->s.lr[g] = lr;
}

static void op_set_group(pp_model *m)
{
    const bool wd = pp_chance(m, 2);
    bool valid;
    double v = pp_value(m, wd, &valid);
    uint32_t g = pp_chance(m, 6) ? (pp_chance(m, 2) ? FOPT_MAX_GROUPS : UINT32_MAX)
                                 : (uint32_t)(pp_chance(m, 2) ? pp_rand(m, 3) : pp_rand(m, FOPT_MAX_GROUPS));
    valid = valid && g < FOPT_MAX_GROUPS;
    pp_describe(m, "fopt_set_group_%s(opt, %u, %g)", wd ? "weight_decay" : "lr", g, v);
    pp_call c;
    pp_arm(m, &c, valid ? PP_VALID : PP_INVALID, true);
    fopt_status st = wd ? fopt_set_group_weight_decay(m->opt, g, v) : fopt_set_group_lr(m->opt, g, v);
    if (pp_settle(m, &c, st))
        *(wd ? &m->s.wd[g] : &m->s.lr[g]) = v;
}

/* ---- rebind --------------------------------------------------------------------------------- */

/* A new binding: each tensor's param (one in two) and grad (three in four) in new buffers that
 * hold the bound ones' values, at random element offsets. false when the budget is spent. */
static bool pp_new_binding(pp_model *m, size_t *bp, size_t *bg)
{
    if (m->nbufs + 2 * m->count > PP_MAX_BUFS)
        return false;
    static const unsigned offs[] = {0, 1, 3, 8};
    for (size_t k = 0; k < m->count; k++) {
        bp[k] = m->bind_p[k];
        bg[k] = m->bind_g[k];
        if (pp_chance(m, 2))
            bp[k] = pp_buf_new(m, k, offs[pp_rand(m, 4)], m->bufs[m->bind_p[k]].host);
        if (!pp_chance(m, 4))
            bg[k] = pp_buf_new(m, k, offs[pp_rand(m, 4)], m->bufs[m->bind_g[k]].host);
    }
    CUDA_OK(fopt_dev_synchronize());
    return true;
}

static void pp_binding_list(const pp_model *m, const size_t *bp, const size_t *bg, fopt_tensor *t)
{
    pp_bound(m, t);
    for (size_t k = 0; k < m->count; k++) {
        t[k].param = pp_buf_ptr(m, &m->bufs[bp[k]]);
        t[k].grad = pp_buf_ptr(m, &m->bufs[bg[k]]);
    }
}

/* An invalid list for rebind (for_create: for create, where any other list is valid): its count
 * in *count; the fault named in *what. */
static void pp_bad_list(pp_model *m, fopt_tensor *t, size_t *count, const char **what, void *host_mem, bool for_create)
{
    size_t k = pp_rand(m, m->count);
    *count = m->count;
    switch (for_create ? 4 + pp_rand(m, 3) : pp_rand(m, 7)) {
    case 0: *count = m->count - 1 + 2 * pp_rand(m, 2); *what = "another count"; t[m->count] = t[0]; break;
    case 1: t[k].numel++; *what = "another numel"; break;
    case 2: t[k].dtype = t[k].dtype == FOPT_FLOAT32 ? FOPT_BFLOAT16 : FOPT_FLOAT32; *what = "another dtype"; break;
    case 3: t[k].group = t[k].group + 1; *what = "another group"; break;
    case 4: t[k].numel = t[k].numel ? t[k].numel : 1; t[k].param = NULL; *what = "a NULL param"; break;
    case 5: t[k].group = FOPT_MAX_GROUPS; *what = "group FOPT_MAX_GROUPS"; break;
    default: t[k].numel = t[k].numel ? t[k].numel : 1; t[k].grad = host_mem; *what = "a host grad"; break;
    }
}

/* Misaligned (a param one byte off) or aliased (a param that is its grad) tensors: refused
 * (src/common/buffers.c) when the tensor has elements, and for the alias when the optimizer steps
 * them (a shard may hold no element of it); *e says which. */
static const char *pp_odd_list(pp_model *m, fopt_tensor *t, pp_expect *e)
{
    size_t k = pp_rand(m, m->count);
    for (size_t tries = 0; tries < m->count && !t[k].numel; tries++)
        k = (k + 1) % m->count;
    if ((m->defects & PP_DEFECT_ALIGN) && pp_chance(m, 2)) {
        t[k].param = (char *)t[k].param + 1;
        *e = t[k].numel > 0 ? PP_INVALID : PP_UNSETTLED;
        return "a param one byte off";
    }
    t[k].param = (void *)t[k].grad;
    *e = t[k].numel > 0 && !m->c->shard ? PP_INVALID : PP_UNSETTLED;
    return "a param that is its grad";
}

static void op_rebind(pp_model *m)
{
    fopt_tensor t[PP_MAX_TENSORS + 1];
    size_t bp[PP_MAX_TENSORS], bg[PP_MAX_TENSORS], count = m->count;
    uint64_t v = pp_rand(m, 10);
    if (v < 5 && !pp_new_binding(m, bp, bg))
        v = 9;
    pp_bound(m, t);
    const char *what = "new buffers";
    pp_expect e = PP_VALID;
    char host_mem[64];
    if (v < 5) {
        pp_binding_list(m, bp, bg, t);
    } else if (v < 7) {
        what = pp_odd_list(m, t, &e);
    } else if (v == 7) {
        what = "NULL";
        e = PP_INVALID;
    } else {
        pp_bad_list(m, t, &count, &what, host_mem, false);
        e = PP_INVALID;
    }
    pp_describe(m, "fopt_rebind(opt, %s, %zu, s)", what, count);
    pp_call c;
    pp_arm(m, &c, e, true);
    bool ok = pp_settle(m, &c, fopt_rebind(m->opt, v == 7 ? NULL : t, count, m->stream));
    if (ok && e == PP_UNSETTLED) { /* accepted: back to the bound list, which must work */
        pp_bound(m, t);
        FOPT_OK(fopt_rebind(m->opt, t, m->count, m->stream));
    } else if (ok) {
        memcpy(m->bind_p, bp, sizeof bp);
        memcpy(m->bind_g, bg, sizeof bg);
    }
}

/* ---- checkpoints, state, step count --------------------------------------------------------- */

static void op_save(pp_model *m)
{
    size_t size = fopt_state_size(m->opt);
    uint64_t v = pp_rand(m, 6);
    unsigned char *buf = pp_calloc(size, 1);
    static const char *const names[] = {"NULL opt", "NULL buffer", "size - 1"};
    if (v < 3)
        pp_describe(m, "fopt_state_save(opt, buf, %zu)", size);
    else
        pp_describe(m, "fopt_state_save with %s", names[v - 3]);
    pp_call c;
    pp_arm(m, &c, v < 3 ? PP_VALID : PP_INVALID, true);
    fopt_status st = fopt_state_save(v == 3 ? NULL : m->opt, v == 4 ? NULL : buf, v == 5 ? size - 1 : size);
    if (pp_settle(m, &c, st)) {
        free(m->ckpt);
        m->ckpt = buf;
        m->ckpt_size = size;
        pp_saved_copy(m, &m->ckpt_state, &m->s);
        m->have_ckpt = true;
        return;
    }
    free(buf);
}

static void op_load(pp_model *m)
{
    if (!m->have_ckpt) {
        op_save(m);
        return;
    }
    size_t size = m->ckpt_size, len = size;
    unsigned char *buf = pp_calloc(size, 1);
    memcpy(buf, m->ckpt, size);
    uint64_t v = pp_rand(m, 5);
    if (v == 2)
        len = pp_rand(m, size);
    else if (v == 3)
        buf[pp_rand(m, size)] ^= (unsigned char)(1u << pp_rand(m, 8));
    static const char *const names[] = {"the last checkpoint", "the last checkpoint", "a truncated checkpoint",
                                        "a checkpoint with a bit flipped", "NULL"};
    pp_describe(m, "fopt_state_load(opt, %s, %zu)", names[v], len);
    /* from an exact-size heap copy, so that a read past it shows */
    unsigned char *exact = pp_calloc(len, 1);
    memcpy(exact, buf, len);
    pp_call c;
    pp_arm(m, &c, v < 2 ? PP_VALID : PP_INVALID, true);
    if (pp_settle(m, &c, fopt_state_load(m->opt, v == 4 ? NULL : exact, len)))
        pp_saved_copy(m, &m->s, &m->ckpt_state);
    free(exact);
    free(buf);
}

/* A kept slot of tensor k (states, master), or -1. */
static int pp_kept_slot(pp_model *m, size_t k)
{
    int kept[FOPT_MAX_STATES + 1], n = 0;
    for (int j = 0; j < FOPT_MAX_STATES; j++)
        if (m->s.state[j][k])
            kept[n++] = j;
    if (m->s.master[k])
        kept[n++] = FOPT_SLOT_MASTER;
    return n ? kept[pp_rand(m, (uint64_t)n)] : -1;
}

/* Random valid contents of a slot's range (non-negative states, masters near the params). */
static void pp_fill_slot(pp_model *m, size_t k, int slot, void *buf, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (slot == FOPT_SLOT_MASTER && pp_master_mode(m, k) == FOPT_MASTER_REMAINDER)
            ((uint16_t *)buf)[i] = (uint16_t)pp_rand(m, 65536);
        else if (slot == FOPT_SLOT_MASTER)
            ((float *)buf)[i] = (float)(-1.0 + 2.0 * test_rng_uniform(&m->rng));
        else
            gt_put(buf, pp_prec(m)->state_dtype, i, (float)test_rng_uniform(&m->rng));
    }
}

static void op_copy(pp_model *m)
{
    size_t k = pp_rand(m, m->count), lo, hi;
    pp_range(m, k, &lo, &hi);
    int slot = pp_kept_slot(m, k);
    uint64_t v = pp_rand(m, 8);
    void *buf = pp_calloc(pp_numel(m, k) + 1, 4);
    size_t tensor = k;
    pp_expect e = PP_VALID;
    if (v < 5 && slot >= 0) {
        pp_fill_slot(m, k, slot, buf, hi - lo);
    } else if (v == 5 || slot < 0) {
        tensor = m->count + pp_rand(m, 3);
        e = PP_INVALID;
    } else if (v == 6) {
        slot = 4 + (int)pp_rand(m, 5);
        e = PP_INVALID;
    } else {
        e = PP_INVALID;
        slot = slot < 0 ? 0 : slot;
    }
    pp_describe(m, "fopt_state_copy(opt, %zu, slot %d, %s, into the optimizer)", tensor, slot,
                v == 7 && slot >= 0 ? "NULL" : "buf");
    pp_call c;
    pp_arm(m, &c, e, true);
    fopt_status st = fopt_state_copy(m->opt, tensor, (fopt_slot)slot, v == 7 ? NULL : buf, true);
    if (pp_settle(m, &c, st)) {
        bool master = slot == FOPT_SLOT_MASTER;
        size_t eb = master ? pp_master_bytes(m, k) : pp_state_bytes(m);
        memcpy((char *)(master ? m->s.master[k] : m->s.state[slot][k]) + lo * eb, buf, (hi - lo) * eb);
    }
    free(buf);
}

static void op_set_step(pp_model *m)
{
    static const int64_t valid[] = {0, 1, 7, 1000, INT64_C(1) << 31, INT64_C(1) << 53, INT64_MAX - 2, INT64_MAX - 1,
                                    INT64_MAX};
    int64_t step;
    bool ok = !pp_chance(m, 5);
    size_t nvalid = 9;
    if (pp_capturable(m) && !(m->defects & PP_DEFECT_2))
        nvalid = 6; /* known defect 2: a replay would step a capturable optimizer past INT64_MAX */
    step = ok ? valid[pp_rand(m, nvalid)] : (pp_chance(m, 2) ? -1 : INT64_MIN);
    bool null = ok && pp_chance(m, 15);
    pp_describe(m, "fopt_set_step_count(%s, %" PRId64 ")", null ? "NULL" : "opt", step);
    pp_call c; /* INT64_MAX, a count no step can follow, may be refused */
    pp_arm(m, &c, !ok || null ? PP_INVALID : step == INT64_MAX ? PP_UNSETTLED : PP_VALID, true);
    if (pp_settle(m, &c, fopt_set_step_count(null ? NULL : m->opt, step)))
        m->s.step = step;
}

/* ---- create and destroy --------------------------------------------------------------------- */

static fopt_status pp_create(const pp_model *m, const gt_cfg *cfg, const fopt_tensor *t, size_t count,
                             fopt_optimizer **out, uint64_t begin, uint64_t end)
{
    if (!m->c->shard)
        return gt_create(cfg, t, count, out);
    return cfg->adam ? fopt_adam_create_shard(out, &cfg->a, t, count, begin, end)
                     : fopt_rmsprop_create_shard(out, &cfg->r, t, count, begin, end);
}

/* An invalid configuration: the status it must give. */
static fopt_status pp_bad_config(pp_model *m, gt_cfg *cfg, const char **what)
{
    switch (pp_rand(m, 4)) {
    case 0: gt_set_lr_wd(cfg, -1.0, gt_wd(cfg)); *what = "lr -1"; return FOPT_ERROR_INVALID_VALUE;
    case 1: gt_set_lr_wd(cfg, gt_lr(cfg), NAN); *what = "weight decay NaN"; return FOPT_ERROR_INVALID_VALUE;
    case 2:
        if (cfg->adam)
            cfg->a.beta2 = 1.0;
        else
            cfg->r.alpha = 1.5;
        *what = "beta2 1 or alpha 1.5";
        return FOPT_ERROR_INVALID_VALUE;
    default: gt_precision(cfg)->state_dtype = FOPT_FLOAT16; *what = "fp16 states"; return FOPT_ERROR_NOT_SUPPORTED;
    }
}

/* Creates an optimizer over the bound list, valid (then it replaces the old one, and the model
 * starts over) or not (then *out stays untouched and nothing leaks). */
static void op_create(pp_model *m)
{
    fopt_tensor t[PP_MAX_TENSORS + 1];
    pp_bound(m, t);
    gt_cfg cfg = m->c->cfg;
    size_t count = m->count;
    uint64_t begin = m->begin, end = m->end, v = pp_rand(m, 12);
    const char *what = "the config";
    pp_expect e = v < 5 ? PP_VALID : PP_INVALID;
    fopt_status want = FOPT_ERROR_INVALID_VALUE;
    char host_mem[64];
    if (v == 5 || v == 6)
        pp_bad_list(m, t, &count, &what, host_mem, true);
    else if (v == 7)
        want = pp_bad_config(m, &cfg, &what);
    else if (v == 8 && m->c->shard) {
        begin = m->total > 8 ? 3 : m->total + 8;
        what = "a misaligned shard";
    } else if (v == 8) {
        count = 0;
        what = "an empty list";
    } else if (v == 9 && m->count > 1 && pp_chance(m, 2)) {
        t[1] = t[0];
        what = "tensor 0 twice";
        e = t[0].numel > 0 && !m->c->shard ? PP_INVALID : PP_UNSETTLED;
    } else if (v == 9) {
        what = pp_odd_list(m, t, &e);
    } else if (v == 10) {
        what = "NULL out";
    } else if (v == 11) {
        what = "NULL tensors";
    }
    pp_describe(m, "fopt_%s_create%s(out, %s, %zu)", cfg.adam ? "adam" : "rmsprop", m->c->shard ? "_shard" : "", what,
                count);
    static char sentinel;
    fopt_optimizer *out = (fopt_optimizer *)(void *)&sentinel;
    pp_call c;
    pp_arm(m, &c, e, true);
    c.want = want;
    fopt_status st = pp_create(m, &cfg, v == 11 ? NULL : t, count, v == 10 ? NULL : &out, begin, end);
    bool ok = pp_settle(m, &c, st);
    if (st != FOPT_SUCCESS) {
        PP_CHECK(m, out == (fopt_optimizer *)(void *)&sentinel, "a failed create wrote *out");
        return;
    }
    if (!ok || e == PP_UNSETTLED) { /* an unsettled list was accepted: not the model's */
        fopt_destroy(out);
        return;
    }
    fopt_destroy(m->opt);
    fopt_destroy(NULL);
    m->opt = out;
    pp_model_reset(m);
}

/* ---- graph capture (capturable optimizers) -------------------------------------------------- */

typedef enum { PC_STEP, PC_STEP_EX, PC_SYNC, PC_REBIND } pp_captured_kind;

typedef struct pp_captured {
    pp_captured_kind kind;
    pp_opts o;
    size_t bp[PP_MAX_TENSORS], bg[PP_MAX_TENSORS];
} pp_captured;

/* A call that synchronises, refused while the stream is captured. */
static void pp_capture_sync_call(pp_model *m)
{
    pp_call c;
    uint64_t v = pp_rand(m, 3);
    size_t size = fopt_state_size(m->opt);
    unsigned char *buf = pp_calloc(size, 1);
    pp_describe(m, "captured: %s", v == 0 ? "fopt_set_lr(opt, 1e-3)" : v == 1 ? "fopt_set_step_count(opt, 3)"
                                                                               : "fopt_state_save(opt, buf, size)");
    pp_arm(m, &c, PP_REFUSED_IN_CAPTURE, false);
    fopt_status st = v == 0 ? fopt_set_lr(m->opt, 1e-3) : v == 1 ? fopt_set_step_count(m->opt, 3)
                                                                  : fopt_state_save(m->opt, buf, size);
    pp_settle(m, &c, st);
    free(buf);
}

/* The captured calls, in order; a call that fails is not recorded (becomes PC_SYNC). */
static void pp_capture_calls(pp_model *m, pp_captured *rec, int n)
{
    for (int i = 0; i < n; i++) {
        pp_call c;
        if (rec[i].kind == PC_SYNC) {
            pp_capture_sync_call(m);
            continue;
        }
        fopt_tensor t[PP_MAX_TENSORS];
        fopt_status st;
        if (rec[i].kind == PC_REBIND) {
            pp_binding_list(m, rec[i].bp, rec[i].bg, t);
            pp_describe(m, "captured: fopt_rebind(opt, new buffers, %zu, s)", m->count);
            pp_arm(m, &c, PP_UNSETTLED, false); /* may be refused during a capture */
            st = fopt_rebind(m->opt, t, m->count, m->stream);
        } else {
            const bool ex = rec[i].kind == PC_STEP_EX;
            pp_describe(m, "captured: %s%s%s", ex ? "fopt_step_ex(opt, " : "fopt_step(opt, s)", ex ? rec[i].o.text : "",
                        ex ? ", s)" : "");
            pp_arm(m, &c, PP_VALID, false);
            st = ex ? fopt_step_ex(m->opt, &rec[i].o.dev, m->stream) : fopt_step(m->opt, m->stream);
        }
        if (!pp_settle(m, &c, st))
            rec[i].kind = PC_SYNC;
    }
}

/* Replays the graph; the model applies the recorded calls in order each time (a captured rebind
 * takes effect at its place in the replay). */
static void pp_replay(pp_model *m, fopt_dev_graph *graph, const pp_captured *rec, int n)
{
    int replays = 1 + (int)pp_rand(m, 3);
    for (int r = 0; r < replays; r++) {
        m->call++;
        pp_describe(m, "fopt_dev_graph_launch (replay %d of %d) at step %" PRId64, r + 1, replays, m->s.step);
        CUDA_OK(fopt_dev_graph_launch(graph, m->stream));
        pp_count("fopt_dev_graph_launch", true, false, false);
        for (int i = 0; i < n; i++) {
            if (rec[i].kind == PC_REBIND) {
                memcpy(m->bind_p, rec[i].bp, sizeof m->bind_p);
                memcpy(m->bind_g, rec[i].bg, sizeof m->bind_g);
            } else if (rec[i].kind != PC_SYNC && m->s.step == INT64_MAX) {
                pp_step_at_max(m, FOPT_SUCCESS); /* the device cannot refuse: it must not step */
            } else if (rec[i].kind != PC_SYNC) {
                pp_ref_step(m, rec[i].kind == PC_STEP_EX ? &rec[i].o.host : NULL);
            }
        }
        pp_check(m);
    }
}

/* Captures 1 to 4 calls on the stream (steps, step_ex, refused synchronising calls, and with
 * defect 1's check a rebind then a step), checks that nothing ran, then replays the graph 1 to 3
 * times, checking the model after each replay. */
static void op_capture(pp_model *m)
{
    if (m->s.step > INT64_MAX - 64 && !(m->defects & PP_DEFECT_2))
        return;
    pp_captured rec[4];
    int n = 1 + (int)pp_rand(m, 4);
    bool rebind = (m->defects & PP_DEFECT_1) && pp_chance(m, 2);
    memset(rec, 0, sizeof rec);
    for (int i = 0; i < n; i++) {
        uint64_t v = pp_rand(m, 6);
        rec[i].kind = v < 2 ? PC_STEP : v < 5 ? PC_STEP_EX : PC_SYNC;
        if (rec[i].kind == PC_STEP_EX)
            pp_gen_opts(m, &rec[i].o, true);
    }
    if (rebind && pp_new_binding(m, rec[0].bp, rec[0].bg)) { /* defect 1's sequence: rebind, step */
        rec[0].kind = PC_REBIND;
        if (n > 1)
            rec[1].kind = PC_STEP;
    }
    pp_describe(m, "fopt_dev_capture_begin(s): %d calls captured", n);
    CUDA_OK(fopt_dev_capture_begin(m->stream));
    pp_capture_calls(m, rec, n);
    fopt_dev_graph *graph = NULL;
    CUDA_OK(fopt_dev_capture_end(m->stream, &graph));
    pp_check(m); /* nothing ran */
    pp_replay(m, graph, rec, n);
    fopt_dev_graph_destroy(graph);
}

/* ---- sequences ------------------------------------------------------------------------------ */

static void pp_model_init(pp_model *m, const pp_config *c, uint64_t seed, int calls, unsigned defects)
{
    memset(m, 0, sizeof *m);
    m->c = c;
    m->seed = seed;
    m->rng = test_rng_make(seed);
    m->calls = calls;
    m->defects = defects;
    m->count = c->count;
    for (size_t k = 0; k < c->count; k++)
        m->total += c->spec[k].numel;
    m->begin = c->shard ? c->begin : 0;
    m->end = c->shard ? c->end : m->total;
    CUDA_OK(fopt_dev_stream_create(&m->stream));
    gt_dev_opts_make(&m->d);
    m->scale = 1.0f;
    for (size_t k = 0; k < c->count; k++) {
        void *param = pp_calloc(c->spec[k].numel, gt_dtype_bytes(c->spec[k].dtype));
        for (size_t i = 0; i < c->spec[k].numel; i++)
            gt_put(param, c->spec[k].dtype, i, (float)(-1.0 + 2.0 * test_rng_uniform(&m->rng)));
        m->bind_p[k] = pp_buf_new(m, k, c->spec[k].off, param);
        m->bind_g[k] = pp_buf_new(m, k, c->spec[k].off, NULL);
        free(param);
    }
    pp_new_grads(m);
    pp_saved_alloc(m, &m->s);
    pp_saved_alloc(m, &m->ckpt_state);
    fopt_tensor t[PP_MAX_TENSORS];
    pp_bound(m, t);
    pp_describe(m, "create");
    fopt_status st = pp_create(m, &c->cfg, t, c->count, &m->opt, m->begin, m->end);
    PP_CHECK(m, st == FOPT_SUCCESS, "create: %s", fopt_last_error());
    pp_model_reset(m);
}

static void pp_model_free(pp_model *m)
{
    fopt_destroy(m->opt);
    for (size_t i = 0; i < m->nbufs; i++) {
        fopt_dev_free(m->bufs[i].base);
        free(m->bufs[i].host);
    }
    pp_saved_free(&m->s);
    pp_saved_free(&m->ckpt_state);
    free(m->ckpt);
    gt_dev_opts_free(&m->d);
    CUDA_OK(fopt_dev_stream_destroy(m->stream));
}

/* One seed's sequence of `calls` calls. */
static void pp_sequence(const pp_config *c, uint64_t seed, int calls, unsigned defects)
{
    pp_model *m = pp_calloc(1, sizeof *m);
    pp_model_init(m, c, seed, calls, defects);
    g_current = m;
    pp_check(m);
    const bool cap = pp_capturable(m);
    while (m->call < calls) {
        m->call++;
        uint64_t v = pp_rand(m, cap ? 32 : 28);
        if (v < 12) op_step(m);
        else if (v < 14) op_set_lr(m);
        else if (v < 17) op_set_group(m);
        else if (v < 20) op_rebind(m);
        else if (v < 22) op_save(m);
        else if (v < 24) op_load(m);
        else if (v < 25) op_copy(m);
        else if (v < 27) op_set_step(m);
        else if (v < 28) op_create(m);
        else op_capture(m);
        pp_check(m);
    }
    g_current = NULL;
    pp_model_free(m);
    free(m);
}

static long pp_env(const char *name, long dflt)
{
    const char *v = getenv(name);
    return v && *v ? strtol(v, NULL, 10) : dflt;
}

/* FOPT_PROPS_DEFECTS: "all", or a list of defect numbers whose checks run although listed. */
static unsigned pp_defects(void)
{
    unsigned on = ~(unsigned)(FOPT_PROPS_KNOWN_DEFECTS);
    const char *v = getenv("FOPT_PROPS_DEFECTS");
    if (v && strcmp(v, "all") == 0)
        return ~0u;
    for (; v && *v; v++)
        if (*v >= '1' && *v <= '9')
            on |= 1u << (*v - '1');
        else if (*v == 'a')
            on |= PP_DEFECT_ALIGN;
    return on;
}

void pp_run_config(const pp_config *c, size_t config_index, size_t config_count, int seeds, int calls)
{
#ifdef PP_DEATH_CALLBACK
    pp_set_death_callbacks();
#endif
    const char *light = getenv("FOPT_TEST_LIGHT");
    if (light && light[0] == '1')
        seeds = (seeds + 1) / 2;
    seeds = (int)pp_env("FOPT_PROPS_SEEDS", seeds);
    calls = (int)pp_env("FOPT_PROPS_CALLS", calls);
    long one = pp_env("FOPT_PROPS_SEED", -1);
    unsigned defects = pp_defects();
    int ran = 0;
    for (int i = 0; i < seeds || one >= 0; i++) {
        uint64_t seed = config_index + config_count * (uint64_t)i;
        if (one >= 0) {
            if ((uint64_t)one % config_count != config_index)
                break;
            seed = (uint64_t)one;
        }
        pp_sequence(c, seed, calls, defects);
        ran++;
        if (one >= 0)
            break;
    }
    cr_log_info("props: %s: %d sequences of %d calls (known-defect checks off: 0x%x)", c->name, ran, calls,
                ~defects & (PP_DEFECT_1 | PP_DEFECT_2 | PP_DEFECT_5 | PP_DEFECT_ALIGN));
    pp_log_stats(c->name);
    gt_expect_no_host_leaks(c->name);
}
