#include "gpu_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mixed.h" /* mx_get, mx_put */

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

static const unsigned char POISON_BYTE = 0xa5;

void gt_expect_no_host_leaks(const char *where)
{
#if defined(__SANITIZE_ADDRESS__)
    cr_assert_eq(__lsan_do_recoverable_leak_check(), 0, "%s: host memory leaked (LeakSanitizer's report above)",
                 where);
#else
    (void)where;
#endif
}

void gt_require_device(void)
{
    if (!test_have_cuda_device())
        cr_skip_test("no CUDA device");
}

void gt_require_emulation(void)
{
    if (!fopt_dev_emulated())
        cr_skip_test("needs the emulated device (fault injection, emulated capacity)");
}

void *gt_dev_alloc(size_t bytes)
{
    void *p = NULL;
    CUDA_OK(fopt_dev_malloc(&p, bytes ? bytes : 1));
    return p;
}

void gt_upload(void *dev, const void *host, size_t bytes)
{
    if (bytes)
        CUDA_OK(fopt_dev_memcpy(dev, host, bytes));
}

void gt_download(void *host, const void *dev, size_t bytes)
{
    if (bytes)
        CUDA_OK(fopt_dev_memcpy(host, dev, bytes));
}

size_t gt_dtype_bytes(fopt_dtype dt) { return dt == FOPT_FLOAT32 ? 4 : 2; }

float gt_get(const void *buf, fopt_dtype dt, size_t i) { return mx_get(buf, dt, i); }

void gt_put(void *buf, fopt_dtype dt, size_t i, float v) { mx_put(buf, dt, i, v); }

/* ---- configurations ---- */

gt_cfg gt_adam(void)
{
    gt_cfg c;
    memset(&c, 0, sizeof c);
    c.adam = true;
    c.a = fopt_adam_config_default();
    c.a.lr = 1e-2;
    return c;
}

gt_cfg gt_adamw(void)
{
    gt_cfg c = gt_adam();
    c.a.decoupled_weight_decay = true;
    c.a.weight_decay = 0.1;
    c.a.amsgrad = true;
    return c;
}

gt_cfg gt_rmsprop(void)
{
    gt_cfg c;
    memset(&c, 0, sizeof c);
    c.adam = false;
    c.r = fopt_rmsprop_config_default();
    c.r.centered = true;
    c.r.momentum = 0.9;
    c.r.weight_decay = 0.01;
    return c;
}

fopt_precision *gt_precision(gt_cfg *c) { return c->adam ? &c->a.precision : &c->r.precision; }
bool *gt_capturable(gt_cfg *c) { return c->adam ? &c->a.capturable : &c->r.capturable; }
double gt_lr(const gt_cfg *c) { return c->adam ? c->a.lr : c->r.lr; }
double gt_wd(const gt_cfg *c) { return c->adam ? c->a.weight_decay : c->r.weight_decay; }

void gt_set_lr_wd(gt_cfg *c, double lr, double wd)
{
    if (c->adam) {
        c->a.lr = lr;
        c->a.weight_decay = wd;
    } else {
        c->r.lr = lr;
        c->r.weight_decay = wd;
    }
}

unsigned gt_states(const gt_cfg *c)
{
    if (c->adam)
        return 3u | (c->a.amsgrad ? 4u : 0u);
    return 1u | (c->r.momentum > 0.0 ? 2u : 0u) | (c->r.centered ? 4u : 0u);
}

fopt_status gt_create(const gt_cfg *c, const fopt_tensor *t, size_t count, fopt_optimizer **out)
{
    return c->adam ? fopt_adam_create(out, &c->a, t, count) : fopt_rmsprop_create(out, &c->r, t, count);
}

static fopt_status ref_call(const gt_cfg *c, int64_t step, const fopt_host_tensor *t, size_t count,
                            const fopt_step_options *o)
{
    return c->adam ? fopt_adam_step_ref_multi(&c->a, step, t, count, o)
                   : fopt_rmsprop_step_ref_multi(&c->r, step, t, count, o);
}

/* ---- problems ---- */

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    cr_assert_not_null(p);
    return p;
}

static size_t alloc_elems(const gt_spec *s) { return GT_GUARD + s->off + s->numel + GT_GUARD; }

/* Uploads the host tensor `src` into a poisoned device allocation at GT_GUARD + off. */
static void upload_guarded(void *dev_base, const gt_spec *s, const void *src)
{
    size_t b = gt_dtype_bytes(s->dtype), total = alloc_elems(s) * b;
    unsigned char *img = xcalloc(total, 1);
    memset(img, POISON_BYTE, total);
    if (src && s->numel)
        memcpy(img + (GT_GUARD + s->off) * b, src, s->numel * b);
    gt_upload(dev_base, img, total);
    free(img);
}

/* Tensor k's param and grad in new poisoned device allocations at GT_GUARD + off, and its
 * fopt_tensor pointing there. */
static void place_on_device(gt_problem *p, size_t k)
{
    const gt_spec *s = &p->spec[k];
    const size_t b = gt_dtype_bytes(s->dtype);
    p->dev_param_base[k] = gt_dev_alloc(alloc_elems(s) * b);
    p->dev_grad_base[k] = gt_dev_alloc(alloc_elems(s) * b);
    upload_guarded(p->dev_param_base[k], s, p->param[k]);
    upload_guarded(p->dev_grad_base[k], s, p->grad[k]);
    p->dev[k].param = (char *)p->dev_param_base[k] + (GT_GUARD + s->off) * b;
    p->dev[k].grad = (char *)p->dev_grad_base[k] + (GT_GUARD + s->off) * b;
}

gt_problem *gt_problem_make(const gt_cfg *cfg, const gt_spec *spec, size_t count, uint64_t seed,
                            bool create)
{
    gt_problem *p = xcalloc(1, sizeof *p);
    p->cfg = *cfg;
    p->count = count;
    p->rng = test_rng_make(seed);
    p->spec = xcalloc(count, sizeof *p->spec);
    memcpy(p->spec, spec, count * sizeof *spec);
    p->param = xcalloc(count, sizeof(void *));
    p->grad = xcalloc(count, sizeof(void *));
    p->master = xcalloc(count, sizeof(void *));
    for (int j = 0; j < FOPT_MAX_STATES; j++)
        p->state[j] = xcalloc(count, sizeof(void *));
    p->host = xcalloc(count, sizeof *p->host);
    p->dev_param_base = xcalloc(count, sizeof(void *));
    p->dev_grad_base = xcalloc(count, sizeof(void *));
    p->dev = xcalloc(count, sizeof *p->dev);
    for (int g = 0; g < FOPT_MAX_GROUPS; g++) {
        p->lr[g] = gt_lr(cfg);
        p->wd[g] = gt_wd(cfg);
    }
    const fopt_precision *pr = cfg->adam ? &cfg->a.precision : &cfg->r.precision;
    const unsigned states = gt_states(cfg);
    const size_t sb = pr->state_dtype == FOPT_BFLOAT16 ? 2 : 4;
    for (size_t k = 0; k < count; k++) {
        const gt_spec *s = &spec[k];
        const size_t n = s->numel, b = gt_dtype_bytes(s->dtype);
        p->param[k] = xcalloc(n, b);
        p->grad[k] = xcalloc(n, b);
        for (size_t i = 0; i < n; i++)
            gt_put(p->param[k], s->dtype, i, (float)(-1.0 + 2.0 * test_rng_uniform(&p->rng)));
        fopt_master_mode mm = fopt_master_mode_of(pr, s->dtype);
        if (mm == FOPT_MASTER_F32) {
            float *m = xcalloc(n, sizeof(float));
            for (size_t i = 0; i < n; i++)
                m[i] = gt_get(p->param[k], s->dtype, i);
            p->master[k] = m;
        } else if (mm == FOPT_MASTER_REMAINDER) {
            p->master[k] = xcalloc(n, sizeof(uint16_t));
        }
        for (int j = 0; j < FOPT_MAX_STATES; j++)
            if (states >> j & 1u)
                p->state[j][k] = xcalloc(n, sb);
        fopt_host_tensor *h = &p->host[k];
        h->param = p->param[k];
        h->grad = p->grad[k];
        h->numel = n;
        h->dtype = s->dtype;
        h->master = p->master[k];
        for (int j = 0; j < FOPT_MAX_STATES; j++)
            h->state[j] = p->state[j][k];

        place_on_device(p, k);
        p->dev[k].numel = n;
        p->dev[k].dtype = s->dtype;
        p->dev[k].group = s->group;
    }
    if (create)
        FOPT_OK(gt_create(cfg, p->dev, count, &p->opt));
    return p;
}

void gt_problem_free(gt_problem *p)
{
    if (!p)
        return;
    fopt_destroy(p->opt);
    for (size_t k = 0; k < p->count; k++) {
        free(p->param[k]);
        free(p->grad[k]);
        free(p->master[k]);
        for (int j = 0; j < FOPT_MAX_STATES; j++)
            free(p->state[j][k]);
        fopt_dev_free(p->dev_param_base[k]);
        fopt_dev_free(p->dev_grad_base[k]);
    }
    for (int j = 0; j < FOPT_MAX_STATES; j++)
        free(p->state[j]);
    TEST_FREE_ALL(p->param, p->grad, p->master, p->host, p->dev_param_base, p->dev_grad_base, p->dev, p->spec, p);
}

void gt_upload_grads(gt_problem *p)
{
    for (size_t k = 0; k < p->count; k++)
        gt_upload((void *)p->dev[k].grad, p->grad[k], p->spec[k].numel * gt_dtype_bytes(p->spec[k].dtype));
    CUDA_OK(fopt_dev_synchronize());
}

void gt_new_grads(gt_problem *p)
{
    for (size_t k = 0; k < p->count; k++) {
        const gt_spec *s = &p->spec[k];
        for (size_t i = 0; i < s->numel; i++) {
            float v = 0.0f;
            if (test_rng_next(&p->rng) % 50 != 0) {
                double e = -4.0 + 5.0 * test_rng_uniform(&p->rng);
                v = (float)((test_rng_next(&p->rng) & 1 ? 1.0 : -1.0) * pow(10.0, e));
            }
            gt_put(p->grad[k], s->dtype, i, v);
        }
    }
    gt_upload_grads(p);
}

void gt_set_grad(gt_problem *p, size_t k, size_t i, float v)
{
    size_t b = gt_dtype_bytes(p->spec[k].dtype);
    gt_put(p->grad[k], p->spec[k].dtype, i, v);
    gt_upload((char *)p->dev[k].grad + i * b, (char *)p->grad[k] + i * b, b);
}

void gt_ref_set_lr(gt_problem *p, double lr)
{
    for (int g = 0; g < FOPT_MAX_GROUPS; g++)
        p->lr[g] = lr;
}

int gt_ref_step(gt_problem *p, const fopt_step_options *o)
{
    const int64_t step = p->ref_step + 1;
    int32_t found = 0;
    uint64_t used[FOPT_MAX_GROUPS] = {0};
    unsigned ngroups = 0;
    for (size_t k = 0; k < p->count; k++)
        if (!used[p->spec[k].group]++)
            ngroups++;
    fopt_step_options opts;
    memset(&opts, 0, sizeof opts);
    if (o)
        opts = *o;
    if (o && o->found_inf)
        opts.found_inf = &found;

    if (ngroups <= 1) { /* one call: tensor indices (stochastic rounding) as on the device */
        gt_cfg c = p->cfg;
        uint32_t g = p->count ? p->spec[0].group : 0;
        gt_set_lr_wd(&c, p->lr[g], p->wd[g]);
        fopt_status st = ref_call(&c, step, p->host, p->count, o ? &opts : NULL);
        cr_assert_eq(st, FOPT_SUCCESS, "reference step: %s", fopt_last_error());
    } else {
        cr_assert(!gt_precision(&p->cfg)->stochastic_rounding,
                  "per-group reference calls renumber tensors: no stochastic rounding");
        double total = 0.0;
        if (o && fopt_options_need_stats(o)) { /* the global statistics, once, for every group */
            if (o->grad_sq_sum)
                total = *o->grad_sq_sum;
            else
                FOPT_OK(fopt_grad_sq_sum_ref_multi(p->host, p->count, o->grad_scale, &total));
            opts.grad_sq_sum = &total;
        }
        fopt_host_tensor *sub = xcalloc(p->count, sizeof *sub);
        for (uint32_t g = 0; g < FOPT_MAX_GROUPS; g++) {
            if (!used[g])
                continue;
            size_t n = 0;
            for (size_t k = 0; k < p->count; k++)
                if (p->spec[k].group == g)
                    sub[n++] = p->host[k];
            gt_cfg c = p->cfg;
            gt_set_lr_wd(&c, p->lr[g], p->wd[g]);
            fopt_status st = ref_call(&c, step, sub, n, o ? &opts : NULL);
            cr_assert_eq(st, FOPT_SUCCESS, "reference step (group %u): %s", g, fopt_last_error());
        }
        free(sub);
    }
    if (o && o->found_inf)
        *o->found_inf = found;
    if (!found)
        p->ref_step = step;
    return found;
}

/* Index of the first differing element of two typed buffers, or n. */
static size_t first_diff(const void *a, const void *b, size_t n, size_t elem)
{
    for (size_t i = 0; i < n; i++)
        if (memcmp((const char *)a + i * elem, (const char *)b + i * elem, elem) != 0)
            return i;
    return n;
}

static void expect_same(const void *got, const void *want, size_t n, fopt_dtype dt, bool u16, const char *where,
                        size_t k, const char *what)
{
    size_t elem = u16 ? 2 : gt_dtype_bytes(dt);
    size_t i = first_diff(got, want, n, elem);
    if (i == n)
        return;
    if (u16)
        cr_assert_fail("%s: tensor %zu %s differs at element %zu of %zu: 0x%04x, reference 0x%04x", where, k, what,
                       i, n, ((const uint16_t *)got)[i], ((const uint16_t *)want)[i]);
    cr_assert_fail("%s: tensor %zu %s differs at element %zu of %zu: %.9g, reference %.9g", where, k, what, i, n,
                   (double)gt_get(got, dt, i), (double)gt_get(want, dt, i));
}

void gt_check(const gt_problem *p, fopt_optimizer *opt, const char *where)
{
    CUDA_OK(fopt_dev_synchronize());
    const fopt_precision *pr = p->cfg.adam ? &p->cfg.a.precision : &p->cfg.r.precision;
    const fopt_dtype sdt = pr->state_dtype;
    const unsigned states = gt_states(&p->cfg);
    for (size_t k = 0; k < p->count; k++) {
        const gt_spec *s = &p->spec[k];
        const size_t n = s->numel, b = gt_dtype_bytes(s->dtype), total = alloc_elems(s) * b;
        unsigned char *img = xcalloc(total, 1);
        gt_download(img, p->dev_param_base[k], total);
        const size_t at = (GT_GUARD + s->off) * b;
        for (size_t i = 0; i < total; i++)
            if (i < at || i >= at + n * b)
                cr_assert_eq(img[i], POISON_BYTE, "%s: tensor %zu: guard byte %zd (from the param) overwritten",
                             where, k, (ptrdiff_t)i - (ptrdiff_t)at);
        expect_same(img + at, p->param[k], n, s->dtype, false, where, k, "param");
        gt_download(img, p->dev_grad_base[k], total);
        for (size_t i = 0; i < total; i++)
            if (i < at || i >= at + n * b)
                cr_assert_eq(img[i], POISON_BYTE, "%s: tensor %zu: guard byte %zd (from the grad) overwritten",
                             where, k, (ptrdiff_t)i - (ptrdiff_t)at);
        /* the uploaded grads, or zeros where the step zeroed them (the reference did too) */
        expect_same(img + at, p->grad[k], n, s->dtype, false, where, k, "grad");
        free(img);
        void *buf = xcalloc(n, 4);
        for (int j = 0; j < FOPT_MAX_STATES; j++) {
            if (!(states >> j & 1u))
                continue;
            FOPT_OK(fopt_state_copy(opt, k, (fopt_slot)j, buf, false));
            char what[32];
            snprintf(what, sizeof what, "state slot %d", j);
            expect_same(buf, p->state[j][k], n, sdt, false, where, k, what);
        }
        fopt_master_mode mm = fopt_master_mode_of(pr, s->dtype);
        if (mm != FOPT_MASTER_NONE) {
            FOPT_OK(fopt_state_copy(opt, k, FOPT_SLOT_MASTER, buf, false));
            expect_same(buf, p->master[k], n, FOPT_FLOAT32, mm == FOPT_MASTER_REMAINDER, where, k,
                        mm == FOPT_MASTER_REMAINDER ? "master remainder" : "master");
        } else {
            cr_assert_eq(fopt_state_copy(opt, k, FOPT_SLOT_MASTER, buf, false), FOPT_ERROR_INVALID_VALUE,
                         "%s: tensor %zu keeps no master, yet FOPT_SLOT_MASTER was copied", where, k);
        }
        free(buf);
    }
    cr_assert_eq(fopt_step_count(opt), p->ref_step, "%s: step count %lld, reference %lld", where,
                 (long long)fopt_step_count(opt), (long long)p->ref_step);
}

/* ---- step option scalars on the device ---- */

void gt_dev_opts_make(gt_dev_opts *o)
{
    o->block = gt_dev_alloc(64);
    CUDA_OK(fopt_dev_memset(o->block, 0, 64));
    o->grad_scale = (float *)o->block;
    o->grad_norm = (float *)((char *)o->block + 4);
    o->found_inf = (int32_t *)((char *)o->block + 8);
    o->grad_sq_sum = (double *)((char *)o->block + 16);
    gt_dev_set_scale(o, 1.0f);
}

void gt_dev_opts_free(gt_dev_opts *o) { fopt_dev_free(o->block); }
void gt_dev_set_scale(const gt_dev_opts *o, float scale) { gt_upload(o->grad_scale, &scale, sizeof scale); }
void gt_dev_set_sq_sum(const gt_dev_opts *o, double v) { gt_upload(o->grad_sq_sum, &v, sizeof v); }

float gt_dev_norm(const gt_dev_opts *o)
{
    float v;
    CUDA_OK(fopt_dev_synchronize());
    gt_download(&v, o->grad_norm, sizeof v);
    return v;
}

int32_t gt_dev_found_inf(const gt_dev_opts *o)
{
    int32_t v;
    CUDA_OK(fopt_dev_synchronize());
    gt_download(&v, o->found_inf, sizeof v);
    return v;
}

void gt_dev_poison_outputs(const gt_dev_opts *o)
{
    float n = -12345.0f;
    int32_t f = 77;
    gt_upload(o->grad_norm, &n, sizeof n);
    gt_upload(o->found_inf, &f, sizeof f);
}

/* ---- snapshots ---- */

unsigned char *gt_save(fopt_optimizer *opt, size_t *size)
{
    *size = fopt_state_size(opt);
    unsigned char *b = xcalloc(*size, 1);
    FOPT_OK(fopt_state_save(opt, b, *size));
    return b;
}

void gt_expect_load_rejected(fopt_optimizer *opt, const void *ckpt, size_t size, const char *reason,
                             const char *why)
{
    size_t n0, n1;
    unsigned char *before = gt_save(opt, &n0);
    int64_t step = fopt_step_count(opt);
    cr_expect_eq(fopt_state_load(opt, ckpt, size), FOPT_ERROR_INVALID_VALUE, "%s: accepted", why);
    if (reason)
        cr_expect(strstr(fopt_last_error(), reason) != NULL, "%s: rejected for another reason: %s", why,
                  fopt_last_error());
    unsigned char *after = gt_save(opt, &n1);
    cr_expect_eq(fopt_step_count(opt), step, "%s: step changed", why);
    cr_expect(n0 == n1 && memcmp(before, after, n0) == 0, "%s: state changed", why);
    free(before);
    free(after);
}

void gt_restore(gt_problem *p, const gt_cfg *cfg, const gt_snapshot *params, const void *ckpt,
                size_t size)
{
    fopt_destroy(p->opt);
    p->opt = NULL;
    size_t at = 0;
    for (size_t k = 0; k < p->count; k++) {
        gt_upload(p->dev_param_base[k], params->params + at, gt_alloc_bytes(p, k));
        at += gt_alloc_bytes(p, k);
    }
    FOPT_OK(gt_create(cfg, p->dev, p->count, &p->opt));
    FOPT_OK(fopt_state_load(p->opt, ckpt, size));
}

void gt_snapshot_take(gt_snapshot *s, const gt_problem *p, fopt_optimizer *opt)
{
    memset(s, 0, sizeof *s);
    CUDA_OK(fopt_dev_synchronize());
    if (opt) {
        s->ckpt = gt_save(opt, &s->size);
        s->step = fopt_step_count(opt);
    }
    for (size_t k = 0; k < p->count; k++)
        s->param_bytes += alloc_elems(&p->spec[k]) * gt_dtype_bytes(p->spec[k].dtype);
    s->grad_bytes = s->param_bytes;
    s->params = xcalloc(s->param_bytes, 1);
    s->grads = xcalloc(s->grad_bytes, 1);
    size_t at = 0;
    for (size_t k = 0; k < p->count; k++) {
        size_t bytes = alloc_elems(&p->spec[k]) * gt_dtype_bytes(p->spec[k].dtype);
        gt_download(s->params + at, p->dev_param_base[k], bytes);
        gt_download(s->grads + at, p->dev_grad_base[k], bytes);
        at += bytes;
    }
}

void gt_snapshot_free(gt_snapshot *s)
{
    free(s->ckpt);
    free(s->params);
    free(s->grads);
    memset(s, 0, sizeof *s);
}

void gt_snapshot_expect_equal(const gt_snapshot *a, const gt_snapshot *b, const char *where)
{
    cr_assert_eq(a->size, b->size, "%s: checkpoint sizes differ", where);
    if (a->size) {
        size_t i = first_diff(a->ckpt, b->ckpt, a->size, 1);
        cr_assert_eq(i, a->size, "%s: checkpoint bytes differ from byte %zu on", where, i);
    }
    cr_assert_eq(a->step, b->step, "%s: step counts differ (%lld, %lld)", where, (long long)a->step,
                 (long long)b->step);
    cr_assert_eq(a->param_bytes, b->param_bytes);
    cr_assert_eq(memcmp(a->params, b->params, a->param_bytes), 0, "%s: device params differ", where);
    cr_assert_eq(memcmp(a->grads, b->grads, a->grad_bytes), 0, "%s: device grads differ", where);
}

void gt_expect_snapshot(const gt_problem *p, fopt_optimizer *opt, const gt_snapshot *want, const char *where)
{
    gt_snapshot now;
    gt_snapshot_take(&now, p, opt);
    gt_snapshot_expect_equal(&now, want, where);
    gt_snapshot_free(&now);
}

void gt_relocate(gt_problem *p, const unsigned *off, void ***old_param, void ***old_grad)
{
    *old_param = xcalloc(p->count, sizeof(void *));
    *old_grad = xcalloc(p->count, sizeof(void *));
    for (size_t k = 0; k < p->count; k++) {
        if (off)
            p->spec[k].off = off[k];
        (*old_param)[k] = p->dev_param_base[k];
        (*old_grad)[k] = p->dev_grad_base[k];
        place_on_device(p, k);
    }
    CUDA_OK(fopt_dev_synchronize());
}

void gt_free_bases(void **bases, size_t count)
{
    for (size_t k = 0; k < count; k++)
        fopt_dev_free(bases[k]);
    free(bases);
}

size_t gt_alloc_bytes(const gt_problem *p, size_t k)
{
    return alloc_elems(&p->spec[k]) * gt_dtype_bytes(p->spec[k].dtype);
}
